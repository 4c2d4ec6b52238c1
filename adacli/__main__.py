"""``python -m adacli``: the command line."""

from adacli.cli import main

main()
