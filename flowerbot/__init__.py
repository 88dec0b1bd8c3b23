"""The `flowerbot` command line (flowerbot/cli.py), the top of the import graph: it imports bot,
model_training, storage and web, and none of them imports it."""
