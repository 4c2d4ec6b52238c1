"""The documentation: a short README that keeps the quick start, a site that builds strictly, and
reference pages that cover everything the code accepts (they are generated from it at build time)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from adacli.cli import app, docgen
from adacli.recipe import recipe_schema

ROOT = Path(__file__).resolve().parents[2]
QUICK_START = (
    "```bash\n"
    "pip install -e . && adacli compare recipes/quickstart.yaml\n"
    'pip install -e ".[test]" && pytest\n'
    "```\n"
)


def test_readme_is_short_and_keeps_the_two_quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) <= 12_000, f"README.md has {len(text)} characters; move detail to docs/"
    start = text.index("## Quick start")
    assert QUICK_START in text[start:], "the quick start must be exactly the two commands"
    assert "quickstart\n┏" in text, "the quick start shows the table it prints"


def test_shell_completion_is_offered():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "--install-completion" in result.output and "--show-completion" in result.output


def test_cli_reference_names_every_command_and_option():
    page = docgen.cli_reference()
    group = typer.main.get_command(app)
    ctx = typer.Context(group, info_name="adacli")
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert f"## `adacli {name}`" in page
        for param in command.get_params(typer.Context(command, info_name=name, parent=ctx)):
            shown = [o for o in param.opts if o.startswith("-")] or [param.metavar or param.name]
            for opt in shown:
                assert f"`{opt}" in page or f", {opt}" in page, f"{name}: {opt} not in the CLI reference"
    assert "--install-completion" in page
    assert "runs/&lt;name&gt;/" in page, "help text is escaped, so <name> is shown, not taken for HTML"


def test_recipe_reference_lists_every_key_with_a_description():
    schema = recipe_schema()
    page = docgen.recipe_reference()
    sections = page.split("\n## ")
    models = [(name, d) for name, d in schema["$defs"].items() if "properties" in d]  # not value types
    for title, section in [("Top level", schema), *models]:
        described = section.get("description") if section is not schema else "top level"
        assert described, f"{title}: the section needs a docstring (it is the section's description)"
        for key, prop in section["properties"].items():
            rows = [line for s in sections for line in s.splitlines() if line.startswith(f"| `{key}` |")]
            assert rows, f"{title}.{key} missing from the recipe reference"
            has_text = prop.get("description") or "$ref" in str(prop)
            assert has_text, f"{title}.{key}: give the field a description (it is the reference's text)"


def test_recipe_reference_shows_types_defaults_and_allowed_values():
    page = docgen.recipe_reference()
    assert "| `precision` | string | `\"fp32\"` | `fp32`, `bf16`, `fp16` |" in page
    assert "| `batch_size` | integer | `64` | ≥ 1, ≤ 1048576 |" in page
    assert "| `name` | string | **required** |" in page
    assert "*any other key*" in page  # optimizer hyperparameters


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs-material is not installed (it is in the test extra: pip install -e '.[test]')",
)
def test_mkdocs_build_strict(tmp_path):
    """The site builds with --strict: every page in the nav, no broken link, generated pages present."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    site = tmp_path / "site"
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    recipe = (site / "reference" / "recipe" / "index.html").read_text(encoding="utf-8")
    assert "adacli step-test" in cli and "--install-completion" in cli
    assert "eval_every" in recipe and "val_fraction" in recipe
    assert (site / "timings" / "index.html").exists()
