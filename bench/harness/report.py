"""What a bench run found, as tables: one row per wrk run, one row per target check, and
the figures that are not request rates (drain rates, backlog, RSS). Pure: formatting and
ratios only, so the unit tests can check them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.wrk import WrkResult


@dataclass(frozen=True)
class Run:
    """One wrk run against one server."""

    scenario: str
    server: str
    result: WrkResult
    note: str = ""
    cpu_seconds: float | None = None  # the server's CPU time during the run

    @property
    def cpu_ms_per_request(self) -> float | None:
        if self.cpu_seconds is None or not self.result.requests:
            return None
        return 1000 * self.cpu_seconds / self.result.requests


def ratio(value: float, baseline: float) -> float | None:
    """value / baseline, or None when there is no baseline to divide by."""
    if baseline == 0:
        return None
    return value / baseline


@dataclass(frozen=True)
class Check:
    """A measured ratio against its target: `value / baseline` must be at least (`at_least`)
    or at most (`at_most`) `limit`. `limit` None means there is no target (just a figure)."""

    name: str
    value: float
    baseline: float
    unit: str
    limit: float | None = None
    at_least: bool = True
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.baseline)

    @property
    def target(self) -> str:
        if self.limit is None:
            return "-"
        return f"{'≥' if self.at_least else '≤'} {self.limit:g}x"

    @property
    def met(self) -> bool | None:
        if self.limit is None:
            return None
        r = self.ratio
        if r is None:
            return False
        return r >= self.limit if self.at_least else r <= self.limit


@dataclass(frozen=True)
class AbsoluteCheck:
    """A measured figure against an absolute bound (the backlog after a run: 0)."""

    name: str
    value: float
    unit: str
    at_most: float
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.at_most


@dataclass
class Report:
    runs: list[Run] = field(default_factory=list)
    checks: list[Check | AbsoluteCheck] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt_number(value: float) -> str:
    """`12,345` for big numbers, `123.4`, `1.23`, `0.123` for smaller ones."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_met(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "-"}[met]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub table; numbers right-aligned (every column but the first two)."""
    align = ["---" if i < 2 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def runs_table(runs: list[Run]) -> str:
    rows = [
        [
            run.scenario,
            run.server,
            fmt_number(run.result.rps),
            fmt_number(run.result.p50_ms),
            fmt_number(run.result.p99_ms),
            str(run.result.requests),
            str(run.result.errors),
            "-" if run.cpu_ms_per_request is None else fmt_number(run.cpu_ms_per_request),
            run.note,
        ]
        for run in runs
    ]
    header = ["scenario", "server", "req/s", "p50 ms", "p99 ms", "requests", "non-2xx/errors"]
    return markdown_table([*header, "CPU ms/req", "note"], rows)


def cpu_note(run: Run, baseline: Run) -> str:
    """The ratio by CPU time per request (baseline's / this one's, so it reads like the
    req/s ratio): steadier than req/s when other work shares the server's core."""
    mine, theirs = run.cpu_ms_per_request, baseline.cpu_ms_per_request
    if not mine or not theirs:
        return ""
    return f"by CPU time per request: {theirs / mine:.2f}x"


def checks_table(checks: list[Check | AbsoluteCheck]) -> str:
    rows = []
    for check in checks:
        if isinstance(check, Check):
            rows.append(
                [
                    check.name,
                    f"{fmt_number(check.value)} / {fmt_number(check.baseline)} {check.unit}",
                    fmt_ratio(check.ratio),
                    check.target,
                    fmt_met(check.met),
                    check.note,
                ]
            )
        else:
            rows.append(
                [
                    check.name,
                    f"{fmt_number(check.value)} {check.unit}",
                    "-",
                    f"≤ {fmt_number(check.at_most)} {check.unit}",
                    fmt_met(check.met),
                    check.note,
                ]
            )
    return markdown_table(["check", "measured", "ratio", "target", "result", "note"], rows)


def figures_table(figures: list[tuple[str, str]]) -> str:
    return markdown_table(["figure", "value"], [[name, value] for name, value in figures])


def render(report: Report, *, heading: str, context: list[tuple[str, str]]) -> str:
    parts = [f"## {heading}", ""]
    parts += [f"- **{name}:** {value}" for name, value in context]
    if report.runs:
        parts += ["", "### wrk runs", "", runs_table(report.runs)]
    if report.checks:
        parts += ["", "### Targets", "", checks_table(report.checks)]
    if report.figures:
        parts += ["", "### Other figures", "", figures_table(report.figures)]
    if report.notes:
        parts += ["", "### Notes", ""] + [f"- {note}" for note in report.notes]
    return "\n".join(parts) + "\n"


BEGIN = "<!-- bench:run:begin (written by `make bench`; everything outside is kept) -->"
END = "<!-- bench:run:end -->"
_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)


def splice(document: str, block: str) -> str:
    """`document` with its run block replaced by `block` (added at the top, under the
    first heading, when there is none yet)."""
    wrapped = f"{BEGIN}\n{block.rstrip()}\n{END}"
    if _BLOCK.search(document):
        return _BLOCK.sub(lambda _match: wrapped, document, count=1)
    lines = document.splitlines()
    if lines and lines[0].startswith("# "):
        head, rest = lines[0], "\n".join(lines[1:]).lstrip("\n")
        return f"{head}\n\n{wrapped}\n\n{rest}".rstrip() + "\n"
    return f"{wrapped}\n\n{document}".rstrip() + "\n"


def write_results(path: Path, block: str) -> None:
    document = path.read_text(encoding="utf-8") if path.exists() else "# Bench results\n"
    path.write_text(splice(document, block), encoding="utf-8")
