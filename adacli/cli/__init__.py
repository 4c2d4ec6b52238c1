"""The command line: parse options, call one workflow, print, map errors to exit codes."""

from adacli.cli.main import app, main

__all__ = ["app", "main"]
