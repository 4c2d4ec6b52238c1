"""``adacli report`` as one call: a saved run folder (or suite folder) read back and its files re-rendered.

The run is read through the store; its plots and page are rendered from the run in memory by the same
function the save step uses (:func:`adacli.run.save.rendered_files`), so a re-rendered folder looks like
a fresh one. A read-only folder (a shared baseline run) only loses the re-drawn files: the caller gets
the reason and the tables are shown anyway. A folder whose results.json was lost or damaged gets it back,
rebuilt from its trial files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adacli.errors import AdacliError


@dataclass
class Rerendered:
    """What ``adacli report`` read and wrote."""

    run: Any = None  # adacli.run.store.RunData (a run folder)
    suite: dict[str, Any] | None = None  # a suite folder's results.json
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files that could not be written, and why


def load(folder: str | Path, reference: str | None = None) -> Rerendered:
    """A run or suite folder read back (InputError when it is neither); ``reference`` changes the run
    verdict's reference label."""
    from adacli.run import store

    if store.results_kind(Path(folder)) == store.SUITE_KIND:
        return Rerendered(suite=store.load_suite_results(Path(folder)))
    run = store.load_run(folder)
    if reference is not None and run.verdict is not None:
        from adacli.analysis import verdict

        verdict.check_reference(reference, [s.optimizer for s in run.summaries], field_name="--reference")
        # the comparisons are the same; the headline and the Δ column are about the new reference (the
        # target stays the stored one: the figures of the run do not change with the reading)
        settings = verdict.Settings.of_run(run.recipe, run.environment, run.verdict.seeds)
        settings.reference = reference
        run.verdict = verdict.analyze(run.trials, run.summaries, run.target, settings=settings)
    return Rerendered(run=run)


def rerender(loaded: Rerendered, folder: str | Path, *, plots: bool, html_file: str | None) -> None:
    """Draw the folder's plots and page again (``plots=False``: only ``--html FILE`` if given)."""
    if loaded.suite is not None:
        if plots:
            _rerender_suite(loaded, Path(folder))
        return
    run = loaded.run
    from adacli.run import store
    from adacli.run.save import rendered_files

    if run.rebuilt and run.trials:  # results.json was lost or damaged: the store writes it again
        try:
            loaded.written.append(store.write_results(run.run_dir, run.results()))
        except AdacliError as e:
            loaded.problems.append(f"{store.RESULTS_FILE} not rebuilt ({e})")
    if not run.trials:
        return

    files = rendered_files(run)
    for name, content in files.items():
        if name == store.REPORT_HTML and html_file is not None:
            _write(loaded, Path(html_file), content)
        elif plots:
            _write(loaded, run.run_dir / name, content)


def _rerender_suite(loaded: Rerendered, folder: Path) -> None:
    from adacli.app.suite import rendered_suite_files

    for name, content in rendered_suite_files(loaded.suite or {}).items():
        _write(loaded, folder / name, content)


def _write(loaded: Rerendered, path: Path, content: str | bytes) -> None:
    from adacli.files import write_atomic

    try:
        loaded.written.append(write_atomic(path, content))
    except AdacliError as e:
        loaded.problems.append(f"{path.name} not written ({e})")


__all__ = ["Rerendered", "load", "rerender"]
