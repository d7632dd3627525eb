"""Command-line recipes, run as `python -m recipes.<name> --help`."""
