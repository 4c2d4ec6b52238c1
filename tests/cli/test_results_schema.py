"""The published schema, pinned with literal key names: results.json, trial files, summary.csv and
``compare --json``, for a plain run and a sweep.

Users' scripts and dashboards read these names. Round-trip tests go through the same dataclasses that
write them (and ``from_dict`` drops unknown keys), so a rename would pass every other test: here every
name is written out, and an unknown or missing key fails. Adding a key to the schema is one line in
the sets below (and a line in the docs).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from adacli.cli import app

VERDICT_KEYS = {"comparisons", "best", "reference", "primary", "headline", "families", "seeds"}
RESULTS_KEYS = {
    "schema_version", "status", "recipe", "environment", "trials", "summary", "target",
} | VERDICT_KEYS  # fmt: skip
COMPARISON_KEYS = {
    "metric", "a", "b", "n", "mean_diff", "ci95", "p_value", "p_adjusted", "significant", "test",
    "wilcoxon_p", "censored", "better", "outcome", "scale", "estimate", "margin", "ci_level", "family",
    "family_size", "seeds_to_decide", "identical", "ci_clipped",
}  # fmt: skip
FAMILY_KEYS = {"name", "role", "metrics", "pairs", "tested", "alpha", "method", "how"}
SWEEP_RESULTS_KEYS = RESULTS_KEYS | {"sweep"}
TRIAL_KEYS = {
    "label", "optimizer", "optimizer_class", "hparams", "seed", "status", "error", "losses", "times",
    "evals", "step_time_ms", "optimizer_step_ms", "state_bytes", "peak_memory_bytes", "extra",
}  # fmt: skip
TRIAL_EXTRA_KEYS = {
    "device", "precision", "budget", "total_steps", "steps_per_epoch", "schedule", "stop_reason",
    "epochs", "init_fingerprint", "trial_key", "role", "optimizer_label", "config_index", "worker", "val",
    "code", "finished_at",
}  # fmt: skip
TRIAL_FILE_EXTRA_KEYS = TRIAL_EXTRA_KEYS | {"setup"}  # a trial file also says which setup it belongs to
SWEEP_TRIAL_EXTRA_KEYS = TRIAL_EXTRA_KEYS | {"sweep", "reused", "earlier_run"}
# only on a final trial reused from the selection (earlier_run: whether from an earlier run of the folder)
SWEEP_TRIAL_EXTRA_OPTIONAL = frozenset({"reused", "earlier_run"})
EVAL_KEYS = {"step", "seconds", "train_eval_loss", "train_eval_accuracy", "test_loss", "test_accuracy"}
STAT_KEYS = {"mean", "std", "n", "ci95", "ci95_clipped"}
STAT_METRICS = {
    "final_test_accuracy", "best_test_accuracy", "final_train_eval_accuracy", "generalization_gap",
    "loss_gap", "steps_to_target", "seconds_to_target", "mean_train_loss", "final_train_loss",
    "step_time_ms", "optimizer_step_ms",
}  # fmt: skip
SUMMARY_KEYS = STAT_METRICS | {
    "optimizer", "optimizer_class", "hparams", "n_trials", "n_diverged", "n_failed", "reached_fraction",
    "state_bytes", "peak_memory_bytes",
}  # fmt: skip
TARGET_KEYS = {"metric", "value", "source", "description"}
RECIPE_KEYS = {
    "path", "name", "model", "dataset", "budget", "seeds", "device", "precision", "target", "schedule",
    "optimizers", "gate", "sweep", "reference", "verdict",
}  # fmt: skip
COMPARE_JSON_KEYS = {"run_dir", "status", "target", "summary"} | VERDICT_KEYS
SWEEP_KEYS = {
    "split", "val_size", "metric", "tie_break", "seed_policy", "selection_seeds", "seeds", "equal_budget",
    "budgets_differ", "optimizers", "trials",
}  # fmt: skip
SWEEP_OPTIMIZER_KEYS = {
    "label", "name", "n_configs", "fixed", "axes", "chosen_index", "chosen", "val_accuracy", "val_loss",
    "note", "configs",
}  # fmt: skip
SWEEP_CONFIG_KEYS = {"index", "label", "hparams", "val_accuracy", "val_loss", "n", "n_usable", "statuses"}
# summary.csv: the exact header, in order (stat columns are <metric>_mean, _std, _n)
CSV_COLUMNS = [
    "optimizer", "optimizer_class", "n_trials", "n_diverged", "n_failed", "reached_fraction", "target",
    "final_test_accuracy_mean", "final_test_accuracy_std", "final_test_accuracy_n",
    "final_test_accuracy_ci95_lo", "final_test_accuracy_ci95_hi",
    "best_test_accuracy_mean", "best_test_accuracy_std", "best_test_accuracy_n",
    "best_test_accuracy_ci95_lo", "best_test_accuracy_ci95_hi",
    "final_train_eval_accuracy_mean", "final_train_eval_accuracy_std", "final_train_eval_accuracy_n",
    "final_train_eval_accuracy_ci95_lo", "final_train_eval_accuracy_ci95_hi",
    "generalization_gap_mean", "generalization_gap_std", "generalization_gap_n",
    "generalization_gap_ci95_lo", "generalization_gap_ci95_hi",
    "loss_gap_mean", "loss_gap_std", "loss_gap_n",
    "loss_gap_ci95_lo", "loss_gap_ci95_hi",
    "steps_to_target_mean", "steps_to_target_std", "steps_to_target_n",
    "steps_to_target_ci95_lo", "steps_to_target_ci95_hi",
    "seconds_to_target_mean", "seconds_to_target_std", "seconds_to_target_n",
    "seconds_to_target_ci95_lo", "seconds_to_target_ci95_hi",
    "mean_train_loss_mean", "mean_train_loss_std", "mean_train_loss_n",
    "mean_train_loss_ci95_lo", "mean_train_loss_ci95_hi",
    "final_train_loss_mean", "final_train_loss_std", "final_train_loss_n",
    "final_train_loss_ci95_lo", "final_train_loss_ci95_hi",
    "step_time_ms_mean", "step_time_ms_std", "step_time_ms_n",
    "step_time_ms_ci95_lo", "step_time_ms_ci95_hi",
    "optimizer_step_ms_mean", "optimizer_step_ms_std", "optimizer_step_ms_n",
    "optimizer_step_ms_ci95_lo", "optimizer_step_ms_ci95_hi",
    "state_bytes", "peak_memory_bytes", "hparams",
]  # fmt: skip

RECIPE = """\
name: {name}
model: {{name: test_resnet}}
dataset: {{name: digits, image_size: 8}}
budget: {{steps: 3, batch_size: 16, eval_every: 2}}
seeds: {seeds}
device: cpu
optimizers: {optimizers}
"""


def _compare(folder: Path, name: str, seeds: int, optimizers: str) -> tuple[Path, dict]:
    recipe = folder / f"{name}.yaml"
    recipe.write_text(RECIPE.format(name=name, seeds=seeds, optimizers=optimizers))
    out = folder / name
    threads = torch.get_num_threads()
    try:
        result = CliRunner().invoke(
            app, ["compare", str(recipe), "--out", str(out), "--json", "--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return _compare(tmp_path_factory.mktemp("schema"), "plain", 2, "[adabelief, {name: sgd, lr: 0.1}]")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    return _compare(tmp_path_factory.mktemp("schema"), "swept", 1, "[{name: sgd, lr: [0.1, 0.01]}]")


def _same(found, expected: set[str], where: str, optional: frozenset[str] = frozenset()) -> None:
    """The keys are exactly ``expected`` (keys in ``optional`` may be absent)."""
    found = set(found)
    unknown, missing = sorted(found - expected), sorted(expected - found - optional)
    assert not unknown and not missing, f"{where}: unknown {unknown}, missing {missing}"


def _check_trial(trial: dict, extra_keys: set[str], where: str) -> None:
    _same(trial, TRIAL_KEYS, where)
    _same(trial["extra"], extra_keys, f"{where}.extra", SWEEP_TRIAL_EXTRA_OPTIONAL)
    assert trial["evals"], where
    for e in trial["evals"]:
        _same(e, EVAL_KEYS, f"{where}.evals[]")


def _check_summary(summary: list[dict], where: str) -> None:
    assert summary, where
    for row in summary:
        _same(row, SUMMARY_KEYS, f"{where}[]")
        for metric in STAT_METRICS:
            _same(row[metric], STAT_KEYS, f"{where}[].{metric}")


def test_results_json_of_a_plain_run(plain):
    out, printed = plain
    data = json.loads((out / "results.json").read_text())
    _same(data, RESULTS_KEYS, "results.json")
    assert data["comparisons"], "a run of two optimizers has paired comparisons"
    for record in data["comparisons"]:
        _same(record, COMPARISON_KEYS, "results.json comparisons[]")
    for family in data["families"]:
        _same(family, FAMILY_KEYS, "results.json families[]")
    assert data["seeds"] == {"mode": "fixed", "n": 2} and isinstance(data["headline"], str)
    assert data["schema_version"] == 1 and data["status"] == "complete"
    _same(data["recipe"], RECIPE_KEYS, "results.json recipe")
    _same(data["target"], TARGET_KEYS, "results.json target")
    assert len(data["trials"]) == 4
    for trial in data["trials"]:
        _check_trial(trial, TRIAL_EXTRA_KEYS, "results.json trials[]")
    _check_summary(data["summary"], "results.json summary")
    files = sorted((out / "trials").glob("*.json"))
    assert [f.name for f in files] == [
        "000-adabelief-seed0.json", "001-sgd-seed0.json", "002-adabelief-seed1.json", "003-sgd-seed1.json"
    ]  # fmt: skip
    for f in files:
        _check_trial(json.loads(f.read_text()), TRIAL_FILE_EXTRA_KEYS, f"trials/{f.name}")
    # compare --json prints the run's summary (its own, smaller schema)
    _same(printed, COMPARE_JSON_KEYS, "compare --json")
    _check_summary(printed["summary"], "compare --json summary")
    _same(printed["target"], TARGET_KEYS, "compare --json target")


def test_summary_csv_columns(plain):
    out, _ = plain
    with (out / "summary.csv").open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_COLUMNS, [c for c in rows[0] if c not in CSV_COLUMNS]
    assert [r[0] for r in rows[1:]] == ["adabelief", "sgd"] and all(len(r) == len(CSV_COLUMNS) for r in rows)


def test_results_json_of_a_sweep(swept):
    out, printed = swept
    data = json.loads((out / "results.json").read_text())
    _same(data, SWEEP_RESULTS_KEYS, "sweep results.json")
    sweep = data["sweep"]
    _same(sweep, SWEEP_KEYS, "sweep")
    for opt in sweep["optimizers"]:
        _same(opt, SWEEP_OPTIMIZER_KEYS, "sweep.optimizers[]")
        for config in opt["configs"]:
            _same(config, SWEEP_CONFIG_KEYS, "sweep.optimizers[].configs[]")
    for trial in [*data["trials"], *sweep["trials"]]:
        _check_trial(trial, SWEEP_TRIAL_EXTRA_KEYS, "sweep trials[]")
    _check_summary(data["summary"], "sweep summary")
    _same(printed, COMPARE_JSON_KEYS | {"sweep"}, "compare --json of a sweep")
