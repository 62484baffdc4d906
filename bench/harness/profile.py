"""Profile orderhub under wrk with py-spy: `python -m bench.harness.profile create`.

Starts orderhub as `make bench` does (pinned to CPU 0, worker on), drives it with one
scenario's Lua script from CPU 1, and samples it with `py-spy record --format raw
--gil` for the run: collapsed stacks of the thread holding the GIL, i.e. the Python
work (`--all-threads` samples every thread, but py-spy cannot tell a thread blocked in
C, such as a driver thread waiting for work, from a busy one). Prints the functions with
the largest share of samples, inclusive ("total": the function or anything it called)
and exclusive ("self"), so the excerpt can go into bench/RESULTS.md. `pip install
py-spy` into the venv first.

    .venv/bin/python -m bench.harness.profile create --seconds 20
    .venv/bin/python -m bench.harness.profile get --top 40 --filter orderhub
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.harness import servers
from bench.harness.scenarios import Bench, pg_schema

SCRIPTS = {"create": "create.lua", "get": "get.lua", "mix": "mix.lua", "list": "get_path.lua"}
PATHS = {"list": "/api/orders?limit=20"}
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def frame_name(frame: str) -> str:
    """`handle (orderhub/orders/service.py:42)` -> `orderhub/orders/service.py:handle`, with
    site-packages and the line dropped, so the same function adds up across lines."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    file = match.group("file")
    for marker in ("site-packages/", "/src/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{file}:{match.group('func')}"


def aggregate(raw: str) -> tuple[Counter[str], Counter[str], int]:
    """(inclusive samples, exclusive samples, all samples) per function from py-spy's raw
    output: one `frame;frame;...;leaf COUNT` line per distinct stack, root first."""
    total: Counter[str] = Counter()
    own: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        frames = [frame_name(f) for f in stack.split(";") if f]
        for name in set(frames):
            total[name] += count
        if frames:
            own[frames[-1]] += count
    return total, own, samples


def excerpt(raw: str, top: int, only: str | None) -> str:
    total, own, samples = aggregate(raw)
    if not samples:
        return "no samples"
    lines = [f"{samples} samples", "", "  total%   self%  function"]
    for name, count in total.most_common():
        if only and only not in name:
            continue
        lines.append(f"  {100 * count / samples:6.1f}  {100 * own[name] / samples:6.1f}  {name}")
        if len(lines) >= top + 3:
            break
    lines += ["", "  by self time:"]
    for name, count in own.most_common(top // 2):
        lines.append(f"  {100 * total[name] / samples:6.1f}  {100 * count / samples:6.1f}  {name}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.harness.profile")
    parser.add_argument("scenario", choices=sorted(SCRIPTS))
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--filter", default=None, help="only functions whose name has this")
    parser.add_argument("--out", type=Path, default=None, help="keep the raw stacks here")
    parser.add_argument("--subprocesses", action="store_true")
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="sample every thread, not only the one holding the GIL (py-spy cannot tell a "
        "thread blocked in C, such as aiosqlite's idle queue.get, from a busy one)",
    )
    parser.add_argument(
        "--pg-url",
        default=None,
        help="profile on PostgreSQL (a fresh schema of this database) instead of SQLite",
    )
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(py_spy).exists():
        print("profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    os.sched_setaffinity(0, {servers.LOAD_CPU})
    workdir = Path(tempfile.mkdtemp(prefix="orderhub-profile-"))
    bench = Bench(workdir=workdir, duration=args.seconds)
    try:
        with contextlib.ExitStack() as stack:
            env: dict[str, str] = {}
            if args.pg_url:
                env["DATABASE_URL"] = stack.enter_context(pg_schema(args.pg_url))
                subprocess.run(
                    [sys.executable, "-m", "orderhub", "migrate"],
                    env=servers.clean_env(**env),
                    check=True,
                    capture_output=True,
                )
            hub = stack.enter_context(
                servers.running(servers.start_orderhub(bench.fresh_dir("orderhub"), **env))
            )
            ids = bench.ids_file(hub, "profile") if args.scenario in ("get", "mix") else None
            raw_path = args.out or workdir / "stacks.txt"
            command = [
                py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "--duration",
                str(args.seconds),
                "--output",
                str(raw_path),
                "--pid",
                str(hub.pid),
            ]
            if not args.all_threads:
                command.append("--gil")
            if args.subprocesses:
                command.append("--subprocesses")
            spy = threading.Thread(
                target=subprocess.run, args=(command,), kwargs={"capture_output": True}
            )
            spy.start()
            bench.wrk(
                args.scenario,
                hub,
                SCRIPTS[args.scenario],
                path=PATHS.get(args.scenario, "/"),
                ids=ids,
                seconds=args.seconds,
            )
            spy.join()
            print(excerpt(raw_path.read_text(), args.top, args.filter))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
