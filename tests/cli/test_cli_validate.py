"""CLI: validate / schema / list; bad input exits 2 with one line and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from adacli.cli import app

runner = CliRunner()
RECIPES = Path(__file__).resolve().parents[2] / "recipes"

GOOD = """\
name: tiny
model: {name: test_resnet}
dataset: {name: digits, image_size: 16}
budget: {steps: 20, batch_size: 32}
seeds: [0, 3]
optimizers:
  - adabelief
  - {name: adam, lr: 1.0e-3}
  - {name: adam, lr: 1.0e-2}
"""


def _recipe(tmp_path: Path, text: str) -> str:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return str(p)


def test_validate_ok(tmp_path):
    r = runner.invoke(app, ["validate", _recipe(tmp_path, GOOD)])
    assert r.exit_code == 0, r.output
    assert "OK" in r.output and "2 seed(s) x 3 optimizer(s) = 6 trials" in r.output
    assert "adam(lr=0.01): torch.optim.adam.Adam" in r.output
    assert "adacli.optim.adabelief.AdaBelief" in r.output


def test_validate_bad_exits_2_one_line(tmp_path):
    path = _recipe(tmp_path, GOOD.replace("image_size: 16", "image_sise: 16"))
    r = runner.invoke(app, ["validate", path])
    assert r.exit_code == 2
    text = r.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1
    assert f"{path}:3: dataset.image_sise: unknown key" in text and "did you mean 'image_size'" in text
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_validate_subprocess_no_traceback(tmp_path):
    """The real console script path: exit code 2, one stderr line, nothing on stdout."""
    path = _recipe(tmp_path, GOOD.replace("adabelief\n", "adabelif\n"))
    p = subprocess.run(
        [sys.executable, "-m", "adacli", "validate", path], capture_output=True, text=True, timeout=120
    )
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1 and "did you mean 'adabelief'" in p.stderr
    missing = runner.invoke(app, ["validate", str(tmp_path / "none.yaml")])
    assert missing.exit_code == 2 and "not found" in missing.output and "Traceback" not in missing.output


def test_schema_prints_json():
    r = runner.invoke(app, ["schema"])
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    assert schema["title"] == "adacli recipe" and "optimizers" in schema["properties"]


def test_list_commands():
    r = runner.invoke(app, ["list", "optimizers"])
    assert r.exit_code == 0 and "adabelief" in r.output and "timm:adabelief" in r.output
    assert "torch.optim.adamw.AdamW" in r.output
    r = runner.invoke(app, ["list", "datasets"])
    assert r.exit_code == 0 and all(n in r.output for n in ("digits", "cifar10", "imagefolder"))
    r = runner.invoke(app, ["list", "models", "test_res"])
    assert r.exit_code == 0 and "test_resnet" in r.output and "vit" not in r.output
    r = runner.invoke(app, ["list", "modles"])
    assert r.exit_code == 2 and "did you mean 'models'" in r.output


def test_shipped_quickstart_validates():
    r = runner.invoke(app, ["validate", str(RECIPES / "quickstart.yaml")])
    assert r.exit_code == 0, r.output


def test_schema_to_an_unwritable_path_is_one_line_exit_2(tmp_path):
    r = runner.invoke(app, ["schema", "-o", str(tmp_path / "no" / "such" / "s.json")])
    assert r.exit_code == 2 and isinstance(r.exception, SystemExit), r.output
    assert r.output.count("\n") == 1 and "cannot write the schema: No such file or directory" in r.output
    out = tmp_path / "s.json"
    assert runner.invoke(app, ["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text())["title"] == "adacli recipe"


MALFORMED_NO_TORCH = """
import sys
from adacli.cli import app
for argv in {argvs!r}:
    try:
        app(argv)
    except SystemExit as e:
        assert e.code == 2, (argv, e.code)
print("HEAVY", sorted(m for m in ("torch", "timm", "torchvision") if m in sys.modules))
"""


def test_a_malformed_recipe_is_rejected_before_torch_is_imported(tmp_path):
    """DESIGN: a malformed recipe is rejected in < 2 s; importing torch alone takes more than a second."""
    import subprocess
    import sys

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {name: test_resnet}\ndataset: {name: digits}\nbudget: {stepz: 5}\n")
    argvs = [["validate", str(bad)], ["compare", str(bad)]]
    code = MALFORMED_NO_TORCH.format(argvs=argvs)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert "budget.stepz: unknown key 'stepz' (did you mean 'steps'?)" in proc.stderr


def test_labels_references_and_suite_structure_are_checked_before_torch_is_imported(tmp_path):
    """Duplicate labels, an unknown reference (in the recipe or --reference) and a suite's structure are
    static: rejected without importing torch (they took ~3.5 s, torch's import, before)."""
    import subprocess
    import sys

    body = "name: x\nmodel: {name: test_resnet}\ndataset: {name: digits}\nbudget: {steps: 5}\n"
    dup = tmp_path / "dup.yaml"
    dup.write_text(body + "optimizers: [{name: adam, label: a}, {name: sgd, label: a}]\n")
    ref = tmp_path / "ref.yaml"
    ref.write_text(body + "optimizers: [adam, sgd]\nreference: adma\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\noptimizers: [adam]\nworkloads: [{recipe: suite.yaml}]\n")
    argvs = [
        ["validate", str(dup)],
        ["compare", str(dup)],
        ["compare", str(ref)],
        ["compare", str(tmp_path / "ref.yaml"), "--reference", "sgdd"],
        ["suite", str(suite)],
    ]
    proc = subprocess.run(
        [sys.executable, "-c", MALFORMED_NO_TORCH.format(argvs=argvs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 5, proc.stderr
    assert "dup.yaml:5: optimizers: two optimizers have the label 'a'" in errors[0]
    assert "ref.yaml:6: reference: unknown optimizer label 'adma'" in errors[2]
    assert "--reference: unknown optimizer label 'sgdd'" in errors[3]
    assert "'suite.yaml' is this suite file itself, not a recipe" in errors[4]
