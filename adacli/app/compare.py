"""``adacli compare`` as one call: recipe -> checks -> run -> gate -> baseline, returning what happened.

The order is the contract of the command (DESIGN.md sections 1 and 5):

1. the recipe is read before torch is imported (a malformed one is rejected in a fraction of a second),
   the command line's overrides applied once, the reference label and a ``--baseline`` checked;
2. the preflight builds the model and takes one real step of every optimizer (exit 2 before any training);
   the dataset it loaded is handed to the run;
3. the run pipeline trains and saves the run folder; with ``--baseline`` the gate judges the run inside
   the save step, so ``report.html`` shows its verdict and every file is written once;
4. ``--save-baseline`` keeps a baseline of a run that finished without failures or regressions.

Nothing here prints: the command line passes a :class:`CompareUI` for warnings and the live display, and
prints the :class:`CompareResult`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from adacli.errors import InputError


class CompareUI(Protocol):
    """What a comparison tells its user while it runs."""

    def warning(self, text: str) -> None: ...
    def progress(self) -> contextlib.AbstractContextManager[Any]: ...  # yields an adacli.run.loop.Progress


@dataclass
class CompareRequest:
    """Everything ``adacli compare`` is asked (the command line's options)."""

    recipe_file: str
    device: str | None = None
    seeds: int | None = None
    steps: int | None = None
    out: str | None = None
    resume: str | None = None
    reference: str | None = None
    baseline: str | None = None
    save_baseline: str | None = None
    junit_xml: str | None = None
    executor: dict[str, Any] = field(default_factory=dict)  # adacli.run.pipeline.executor_options(...)
    until_decided: bool = False  # --seeds-until-decided


@dataclass
class CompareResult:
    """What a comparison did: the run (``outcome``), the gate's verdict when judged, the baseline saved."""

    outcome: Any  # adacli.run.save.RunOutcome
    name: str
    gate: Any = None  # adacli.ci.gate.GateResult
    baseline_saved: str | None = None
    baseline_refused: str | None = None  # why --save-baseline wrote nothing

    @property
    def passed(self) -> bool:
        """No trial raised and the gate (if any) found no regression."""
        return not self.outcome.failed and (self.gate is None or self.gate.passed)


def with_reference(recipe: Any, reference: str | None) -> Any:
    """The recipe with ``--reference`` applied; an unknown label (option or recipe key) is exit 2."""
    from adacli.analysis.verdict import check_reference
    from adacli.recipe import assign_labels

    try:
        labels = assign_labels(recipe.optimizers)
    except InputError as e:
        raise e.located(file=recipe.source_file, line=recipe.line_of("optimizers")) from None
    if reference is not None:
        check_reference(reference, labels, field_name="--reference")
        return recipe.model_copy(update={"reference": reference})
    check_reference(recipe.reference, labels, file=recipe.source_file, line=recipe.line_of("reference"))
    return recipe


def _baseline_for(request: CompareRequest, recipe: Any) -> Any:
    """``--baseline``: read and checked against the recipe before training (exit 2), not after."""
    if request.baseline is None:
        if request.junit_xml:
            raise InputError("needs --baseline (it holds the gate's verdicts)", field="--junit-xml")
        return None
    from adacli.ci.baselines import check_setup, load_baseline

    base = load_baseline(request.baseline)
    check_setup(base, recipe, baseline_path=request.baseline)
    return base


@dataclass
class _Prepared:
    recipe: Any
    baseline: Any
    data: Any


def prepare(request: CompareRequest, ui: CompareUI) -> _Prepared:
    """Read and check everything before training (InputError, exit 2, for any problem)."""
    from adacli.recipe import load_recipe

    # the static checks (keys, values, labels, the reference) before torch is imported: a bad recipe
    # fails in a fraction of a second
    recipe = load_recipe(request.recipe_file)
    recipe = recipe.with_overrides(
        device=request.device, seeds=request.seeds, steps=request.steps, until_decided=request.until_decided
    )
    recipe = with_reference(recipe, request.reference)
    from adacli.run.pipeline import trial_threads, warm_up_workers

    warm_up_workers([recipe], request.executor)  # the workers' imports overlap ours and the checks
    from adacli.run.preflight import check_environment, preflight

    check_environment(recipe, request.recipe_file)
    base = _baseline_for(request, recipe)
    with trial_threads([recipe], request.executor):  # the check runs as the trials will
        checked = preflight(recipe, request.recipe_file)
    for warning in checked.warnings:
        ui.warning(warning)
    return _Prepared(recipe, base, checked.data)


def _judge(request: CompareRequest, base: Any, kept: dict[str, Any]) -> Callable[[Any], dict[str, Any]]:
    """The save step's gate: judge the run, keep the verdict for the result, return gate.json's dict."""
    from adacli.ci.gate import gate_run, tolerances_for

    def judge(run: Any) -> dict[str, Any]:
        tol = tolerances_for(run.recipe)
        kept["gate"] = gate_run(run, base, tol, baseline_path=request.baseline, run_dir=run.run_dir)
        return kept["gate"].to_dict()

    return judge


def compare(request: CompareRequest, ui: CompareUI) -> CompareResult:
    """Check, run, judge and keep a baseline; raises InputError (nothing trained) or
    ``adacli.run.pipeline.RunInterrupted`` (finished trials saved)."""
    from adacli.run.pipeline import run_recipe

    prepared = prepare(request, ui)
    kept: dict[str, Any] = {}
    judge = _judge(request, prepared.baseline, kept) if prepared.baseline is not None else None
    with ui.progress() as progress:
        outcome = run_recipe(
            prepared.recipe,
            recipe_path=request.recipe_file,
            out_dir=request.out,
            resume=request.resume,
            progress=progress,
            data=prepared.data,
            judge=judge,
            **request.executor,
        )
    result = CompareResult(outcome, prepared.recipe.name, gate=kept.get("gate"))
    if request.save_baseline:
        _keep_baseline(result, request.save_baseline)
    return result


def _keep_baseline(result: CompareResult, path: str) -> None:
    """``--save-baseline``: written only for a run without failed trials and without regressions."""
    from adacli.ci.baselines import baseline_from_run, save_baseline

    if result.outcome.failed:
        result.baseline_refused = "the run has failed trials"
    elif result.gate is not None and not result.gate.passed:
        result.baseline_refused = "the run regressed"
    else:
        run = result.outcome.run
        save_baseline(baseline_from_run(run, run.run_dir), path)
        result.baseline_saved = path


def markdown(run: Any, gate: Any = None) -> str:
    """The run's verdict (and the gate's, first) as GitHub Markdown, from the run in memory."""
    from adacli.report.markdown import gate_markdown, run_markdown

    text = run_markdown(run.results())
    return text if gate is None else gate_markdown(gate.to_dict()) + "\n" + text


__all__ = ["CompareRequest", "CompareResult", "CompareUI", "compare", "markdown", "prepare", "with_reference"]
