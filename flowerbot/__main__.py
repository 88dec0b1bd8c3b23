"""`python -m flowerbot ...` is the `flowerbot` command."""

import sys

from flowerbot.cli import main

sys.exit(main())
