"""The ``seccrm`` command line: `main` and one thin file per command."""

from seccrm.cli.app import CLIError, build_parser, main

__all__ = ["CLIError", "build_parser", "main"]
