"""`python -m bench.harness` (what `make bench` runs): the scenarios, the table, and
bench/RESULTS.md.

    .venv/bin/python -m bench.harness                                 # everything (~20 min)
    .venv/bin/python -m bench.harness --scenarios create,get --duration 10
    .venv/bin/python -m bench.harness --results /tmp/results.md       # keep bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.harness import scenarios, servers
from bench.harness.report import render, write_results
from bench.harness.scenarios import ALL, REQUEST_SCENARIOS, SCENARIOS, Bench


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.harness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL),
        help=f"comma-separated, from: {', '.join(ALL)} (default: all)",
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per wrk run (default 20)")
    parser.add_argument(
        "--saturate-seconds",
        type=int,
        default=60,
        help="the drain scenario's saturating create run (default 60)",
    )
    parser.add_argument(
        "--soak-seconds", type=int, default=150, help="the rss scenario's run (default 150)"
    )
    parser.add_argument("--sheet-rows", type=int, default=100_000)
    parser.add_argument(
        "--orders",
        default="1000,100000",
        help="the size scenario's two store sizes (default 1000,100000)",
    )
    parser.add_argument(
        "--pg-url",
        default="postgresql://postgres@127.0.0.1:5432/test",
        help="the workers scenario's database (a fresh schema is used)",
    )
    parser.add_argument("--results", type=Path, default=servers.REPO / "bench" / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = sorted(set(args.scenarios) - set(ALL))
    if unknown:
        parser.error(f"unknown scenarios {', '.join(unknown)}; known: {', '.join(ALL)}")
    return args


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=servers.REPO, capture_output=True, text=True)
    return done.stdout.strip()


def _wrk_version() -> str:
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (
        (done.stdout or done.stderr).splitlines()[0].strip() if done.stdout or done.stderr else "?"
    )


def context(args: argparse.Namespace, started: datetime, loads: list[str]) -> list[tuple[str, str]]:
    rev = _git("rev-parse", "--short", "HEAD")
    dirty = " (with uncommitted changes)" if _git("status", "--porcelain", "--", "src") else ""
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("fastapi", "starlette", "uvicorn", "pydantic", "sqlalchemy", "psycopg")
    )
    rows = [
        ("when", started.strftime("%Y-%m-%d %H:%M UTC")),
        ("machine", f"{os.cpu_count()} CPUs ({_cpu_model()}), Linux {platform.release()}"),
        ("load average (start, end)", " → ".join(loads)),
        ("orderhub", f"git {rev}{dirty}"),
        ("python", platform.python_version()),
        ("sqlite", sqlite3.sqlite_version),
        ("wrk", _wrk_version()),
        ("libraries", versions),
        ("command", "`" + shlex.join(["python", "-m", "bench.harness", *sys.argv[1:]]) + "`"),
        (
            "setup",
            f"server pinned to CPU {servers.SERVER_CPU}, wrk (1 thread, 32 connections) and "
            f"this harness to CPU {servers.LOAD_CPU}; {args.duration} s per wrk run; orderhub "
            "via `orderhub serve` on the embedded defaults in a fresh DATA_DIR (worker on), "
            f"RATE_LIMIT_MAX={servers.UNLIMITED}",
        ),
    ]
    if "workers" in args.scenarios:
        try:
            rows.append(("postgresql", scenarios.pg_version(args.pg_url)))
        except Exception as exc:
            rows.append(("postgresql", f"not reachable ({type(exc).__name__})"))
    return rows


def _loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {servers.LOAD_CPU})
    started = datetime.now(UTC)
    loads = [_loadavg()]
    workdir = Path(tempfile.mkdtemp(prefix="orderhub-bench-"))
    small, big = (int(n.replace("_", "")) for n in args.orders.split(","))
    bench = Bench(workdir=workdir, duration=args.duration, log=lambda s: print(s, flush=True))
    for option in ("saturate_seconds", "soak_seconds", "sheet_rows", "pg_url"):
        setattr(bench, option, getattr(args, option))
    bench.small_orders, bench.big_orders = small, big
    failed: list[str] = []
    t0 = time.monotonic()
    try:
        wanted_requests = [s for s in args.scenarios if s in REQUEST_SCENARIOS]
        if wanted_requests:
            _guarded(
                bench,
                failed,
                "requests",
                lambda: scenarios.request_scenarios(bench, wanted_requests),
            )
        for name in args.scenarios:
            if name in SCENARIOS:
                _guarded(bench, failed, name, lambda name=name: SCENARIOS[name](bench))
    finally:
        if args.keep:
            print(f"bench: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    loads.append(_loadavg())
    bench.report.notes.append(f"the run took {time.monotonic() - t0:.0f} s")
    block = render(bench.report, heading="Latest run", context=context(args, started, loads))
    print()
    print(block)
    write_results(args.results, block)
    print(f"bench: written to {args.results}")
    return 1 if failed else 0


def _guarded(bench: Bench, failed: list[str], name: str, work: object) -> None:
    """Run one scenario; a failure is reported in the results, and the others still run."""
    assert callable(work)
    try:
        work()
    except Exception as exc:
        failed.append(name)
        bench.report.notes.append(f"scenario `{name}` failed: {type(exc).__name__}: {exc}")
        print(f"bench: scenario {name} failed: {exc}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
