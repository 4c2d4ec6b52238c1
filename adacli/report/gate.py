"""The regression gate's verdict as a rich table and as JUnit XML for CI test reporters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree as ET

from rich.table import Table

_VERDICT_STYLE = {
    "pass": "[green]PASS[/]",
    "fail": "[bold red]FAIL[/]",
    "info": "[cyan]info[/]",
    "skip": "[dim]skip[/]",
}


def gate_table(result: Any, title: str = "regression gate") -> Table:
    """A rich table of every check (``adacli.ci.gate.GateResult``): baseline, current, allowed, verdict
    and why."""
    table = Table(title=title, show_lines=False)
    for col, kw in (
        ("optimizer", {"style": "bold"}),
        ("check", {}),
        ("baseline", {"justify": "right"}),
        ("current", {"justify": "right"}),
        ("allowed", {"justify": "right"}),
        ("verdict", {}),
        ("detail", {"overflow": "fold"}),
    ):
        table.add_column(col, **kw)
    last = None
    for c in result.checks:
        if last is not None and c.optimizer != last:
            table.add_section()
        table.add_row(
            c.optimizer if c.optimizer != last else "",
            c.check,
            c.baseline,
            c.current,
            c.allowed,
            _VERDICT_STYLE.get(c.verdict, c.verdict),
            c.detail,
        )
        last = c.optimizer
    n_fail = len(result.failures)
    table.caption = (
        f"[bold red]{n_fail} regression{'s' if n_fail != 1 else ''}[/]"
        if n_fail
        else "[green]no regression[/]"
    )
    return table


def _junit_suite(result: Any, name: str = "adacli.gate") -> ET.Element:
    """One ``testsuite`` element: a testcase per check (info rows are passing cases)."""
    suite = ET.Element(
        "testsuite",
        name=name,
        tests=str(len(result.checks)),
        failures=str(len(result.failures)),
        errors="0",
        skipped=str(sum(c.verdict == "skip" for c in result.checks)),
    )
    for c in result.checks:
        case = ET.SubElement(suite, "testcase", classname=f"{name}.{c.optimizer}", name=c.check)
        text = f"baseline {c.baseline}; current {c.current}; allowed {c.allowed}" + (
            f"; {c.detail}" if c.detail else ""
        )
        if c.verdict == "fail":
            ET.SubElement(case, "failure", message=c.detail or "regression", type="regression").text = text
        elif c.verdict == "skip":
            ET.SubElement(case, "skipped", message=c.detail or "skipped")
        else:
            ET.SubElement(case, "system-out").text = text
    if result.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(result.notes)
    return suite


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(root, encoding="unicode") + "\n"


def gate_junit(result: Any) -> str:
    """JUnit XML of one gate verdict: one testcase per check."""
    root = ET.Element("testsuites", name="adacli")
    root.append(_junit_suite(result))
    return _xml(root)


def suite_gate_junit(verdicts: Sequence[tuple[str, Any]]) -> str:
    """JUnit XML of a suite's gate: a ``testsuite`` per workload (``adacli.gate.<workload>``)."""
    root = ET.Element("testsuites", name="adacli.suite")
    for name, result in verdicts:
        root.append(_junit_suite(result, f"adacli.gate.{name}"))
    return _xml(root)


__all__ = ["gate_junit", "gate_table", "suite_gate_junit"]
