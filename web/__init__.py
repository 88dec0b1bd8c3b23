"""The camera web page: its static files, the TF.js exporter, local server and browser launcher."""
