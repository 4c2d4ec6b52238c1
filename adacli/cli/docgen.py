"""Reference pages written from the code itself, so the documentation cannot drift from the program.

The CLI reference comes from the Typer app (Typer's own Markdown generator, the one behind
``typer MODULE utils docs``), the recipe reference from the recipe's JSON Schema (``adacli schema``).
MkDocs builds them on every ``mkdocs build`` through ``docs/hooks.py``; nothing generated is committed,
so there is no stale copy to forget. ``python -m adacli.cli.docgen DIR`` writes both pages for a look
without MkDocs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

CLI_PAGE = "reference/cli.md"
RECIPE_PAGE = "reference/recipe.md"

_CLI_INTRO = """\
Generated from the command-line app itself on every build of this site; `adacli COMMAND --help` prints
the same.

Exit codes, for every command: **0** success, **1** a check failed (a gate regression, a step-test
failure, a trial that raised an exception), **2** bad input (one line naming the file, field and
allowed values; no traceback), **130** interrupted by Ctrl-C (finished trials are saved).

**Shell completion.** `adacli --install-completion` installs tab completion of commands and options for
the current shell (bash, zsh, fish, PowerShell); open a new shell afterwards.
`adacli --show-completion` prints the script instead, to install it by hand.
"""

_RECIPE_INTRO = """\
Generated from the recipe's JSON Schema on every build of this site, so it lists exactly the keys
`adacli validate` accepts. A key that is not listed is an error, reported with the closest known key.
[Recipes](../recipes.md) explains how they fit together.

`adacli schema -o recipe.schema.json` writes the schema itself: with the YAML language server (VS Code's
YAML extension, and others) a first line `# yaml-language-server: $schema=recipe.schema.json` in a recipe
gives completion and checking while you type.
"""

_EXTRA_KEYS_ROW = (
    "*any other key*",
    "any",
    "the class's default",
    "an argument of the optimizer class's constructor (`adacli list optimizers`)",
    "a hyperparameter; a list, `{grid: [...]}` or `{log_range: [lo, hi], n: N}` makes it a sweep "
    "(for tuple defaults such as `betas`, a list of numbers is the value and a list of lists a grid)",
)


def cli_reference() -> str:
    """The CLI reference page (Markdown) from the Typer app: every command, argument and option."""
    import typer
    from typer.cli import MARKUP_MODE_KEY, get_docs_for_click

    from adacli.cli import app

    command = typer.main.get_command(app)
    ctx = typer.Context(command, info_name="adacli")
    ctx.obj = {MARKUP_MODE_KEY: app.rich_markup_mode}  # as `typer ... utils docs` does: text HTML-escaped
    body = get_docs_for_click(obj=command, ctx=ctx, name="adacli", title="CLI reference")
    title, _, rest = body.strip().partition("\n")
    return f"{title}\n\n{_CLI_INTRO}\n{rest.strip()}\n"


def recipe_reference() -> str:
    """The recipe reference page (Markdown) from the JSON Schema: every key's type, default, allowed
    values and description, one table per section."""
    from adacli.recipe import recipe_schema

    schema = recipe_schema()
    defs = schema.get("$defs", {})
    sections: list[tuple[str, str, dict[str, Any]]] = [("Top level", "top-level", schema)]
    anchors: dict[str, str] = {}
    for key, prop in schema["properties"].items():
        ref = _ref_of(prop)
        if ref and ref not in anchors:
            entry = f"`{key}[]`" if prop.get("type") == "array" else f"`{key}`"
            anchors[ref] = key
            sections.append((entry, key, defs[ref]))
    out = ["# Recipe reference", "", _RECIPE_INTRO]
    for title, anchor, section in sections:
        out += [f"## {title} {{ #{anchor} }}", ""]
        if section.get("description") and section is not schema:
            out += [_one_line(section["description"]), ""]
        out += _table(section, anchors, defs)
    return "\n".join(out).rstrip() + "\n"


def _table(section: dict[str, Any], anchors: dict[str, str], defs: dict[str, Any]) -> list[str]:
    rows = ["| key | type | default | allowed | description |", "| --- | --- | --- | --- | --- |"]
    required = set(section.get("required", []))
    for key, prop in section["properties"].items():
        ref = _ref_of(prop)
        description = prop.get("description") or (defs[ref].get("description", "") if ref else "")
        if key in required:
            default = "**required**"
        elif "default" in prop:
            default = f"`{json.dumps(prop['default'])}`"
        else:  # a default_factory: a section at its own defaults, or an empty mapping
            default = "its keys' defaults" if ref else "empty"
        cells = (f"`{key}`", _type(prop, anchors), default, _allowed(prop), _one_line(description))
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if section.get("additionalProperties") not in (None, False):  # True, or the type of the extra values
        rows.append("| " + " | ".join(_cell(c) for c in _EXTRA_KEYS_ROW) + " |")
    return [*rows, ""]


def _ref_of(prop: dict[str, Any]) -> str | None:
    """The $defs name a property points to, directly, through anyOf (optional) or as list items."""
    for candidate in [prop, prop.get("items", {}), *prop.get("anyOf", [])]:
        if "$ref" in candidate:
            return candidate["$ref"].rsplit("/", 1)[-1]
    return None


def _type(prop: dict[str, Any], anchors: dict[str, str]) -> str:
    if "$ref" in prop:
        key = anchors[prop["$ref"].rsplit("/", 1)[-1]]
        return f"[`{key}` section](#{key})"
    if "anyOf" in prop:
        return " or ".join(_type(p, anchors) for p in prop["anyOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type(prop.get('items', {}), anchors)}"
    return {"object": "mapping", "null": "null"}.get(kind, kind)


def _allowed(prop: dict[str, Any]) -> str:
    """Enumerations and constraints, e.g. `` `fp32`, `bf16` `` or ``≥ 1``."""
    if "anyOf" in prop:
        return "; ".join(filter(None, (_allowed(p) for p in prop["anyOf"])))
    if "enum" in prop:
        return ", ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    bounds = {"minimum": "≥", "exclusiveMinimum": ">", "maximum": "≤", "exclusiveMaximum": "<"}
    parts = [f"{sign} {prop[k]}" for k, sign in bounds.items() if k in prop]
    if "pattern" in prop:
        parts.append(f"matches `{prop['pattern']}`")
    if "minItems" in prop:
        parts.append(f"at least {prop['minItems']} item(s)")
    if "items" in prop and "$ref" not in prop["items"]:
        parts.append(_allowed(prop["items"]))
    return ", ".join(filter(None, parts))


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _cell(text: str) -> str:
    """Make text safe in a Markdown table cell: a bare ``|`` would end the cell, ``<x>`` look like HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;")


def pages() -> dict[str, str]:
    """Every generated page: its path in the site's docs folder -> its Markdown."""
    return {CLI_PAGE: cli_reference(), RECIPE_PAGE: recipe_reference()}


def write_pages(folder: str | Path) -> list[Path]:
    """Write the generated pages under ``folder`` (as they sit in the site); returns their paths."""
    written = []
    for rel, text in pages().items():
        path = Path(folder) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write_pages(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(p)
