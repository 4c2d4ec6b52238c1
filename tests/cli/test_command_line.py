"""The console script's own parsing errors (``adacli compare r.yaml --jobs nan``): one line naming the
command and the option, exit 2, no traceback and no framed usage block, as bad input in a recipe is.

``main()`` is called in-process with ``sys.argv`` set, as the ``adacli`` script calls it (the in-process
CliRunner of the other tests goes around ``main``); one subprocess checks the real script.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO

from adacli.cli import main

QUICKSTART = str(REPO / "recipes" / "quickstart.yaml")


def _main(args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["adacli", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["compare", QUICKSTART, "--jobs", "nan"], "adacli compare: Invalid value for '--jobs'"),
        (["compare", QUICKSTART, "--bogus"], "adacli compare: No such option: --bogus"),
        (["compare"], "adacli compare: Missing argument 'RECIPE'"),
        (["nosuch"], "adacli: No such command 'nosuch'"),
        (["suite", "x.yaml", "--seeds", "-3"], "adacli suite: Invalid value for '--seeds'"),
        (["gate"], "adacli gate: Missing argument"),
    ],
)
def test_a_command_line_that_does_not_parse_is_one_line_exit_2(args, words, monkeypatch, capsys):
    code, out, err = _main(args, monkeypatch, capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and words in lines[0] and "--help" in lines[0]
    assert "Traceback" not in err and "╭" not in err


def test_help_and_no_arguments_still_show_the_help(monkeypatch, capsys):
    code, out, _ = _main(["compare", "--help"], monkeypatch, capsys)
    assert code == 0 and "--jobs" in out
    code, out, err = _main([], monkeypatch, capsys)
    assert code == 2 and "compare" in out + err  # Click's answer to no command: the help, exit 2


def test_the_real_script_reports_a_bad_option_in_one_line(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "adacli", "compare", QUICKSTART, "--threads", "two"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: python -m adacli compare: Invalid value for '--threads'"), line
    assert line.endswith("(see python -m adacli compare --help)"), line
