"""MkDocs hook: add the generated reference pages (CLI, recipe) to the site at build time.

They are written from the Typer app and the recipe's JSON Schema by ``adacli.cli.docgen`` on every build,
never committed, so they cannot fall behind the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's adacli, installed or not

from adacli.cli import docgen


def on_files(files: Files, config) -> Files:
    """Add (or replace) docs/reference/cli.md and docs/reference/recipe.md with freshly generated text."""
    for uri, text in docgen.pages().items():
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=text))
    return files
