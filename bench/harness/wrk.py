"""Running `wrk` and reading what it prints.

`wrk --latency` ends with its summary: a "Thread Stats" table, a "Latency
Distribution" (50%, 75%, 90%, 99%), `N requests in 10.00s, ... read`, optional "Socket
errors: connect A, read B, write C, timeout D" and "Non-2xx or 3xx responses: N" lines,
and `Requests/sec:`. Its units vary with the magnitude: `us`, `ms`, `s`, `m` for times,
`k`, `M` for counts (`6.17k`). The unit tests hold a full example.

`parse_wrk` turns that into a `WrkResult`; the parsing functions are pure so the unit
tests can check them without running anything.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Seconds per time unit as wrk prints them (`format_time_us` / `format_time_s`).
_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# Multipliers of wrk's metric suffixes (`format_metric`).
_COUNT_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}

_TIME = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|ms|s|m|h)\s*$")
_COUNT = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([kMGT]?)\s*(?:req/s)?\s*$")


class WrkOutputError(ValueError):
    """wrk printed something the harness cannot read (usually: it did not run)."""


def parse_time(text: str) -> float:
    """A wrk duration in seconds: `5.6us`, `1.2ms`, `3.4s`, `1.00m`."""
    match = _TIME.match(text)
    if match is None:
        raise WrkOutputError(f"not a wrk time: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_time_ms(text: str) -> float:
    """A wrk duration in milliseconds."""
    return parse_time(text) * 1000.0


def parse_count(text: str) -> float:
    """A wrk count: `812`, `6.17k`, `1.2k req/s`, `3.1M`."""
    match = _COUNT.match(text)
    if match is None:
        raise WrkOutputError(f"not a wrk count: {text!r}")
    return float(match.group(1)) * _COUNT_UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_REQUESTS = re.compile(r"^\s*(\d+) requests in ([0-9.]+\s*(?:us|ms|s|m|h)),")
_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+(\S+)\s*$")
_RPS = re.compile(r"^Requests/sec:\s+([0-9.]+[kMGT]?)\s*$")
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$")
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$"
)


def parse_wrk(output: str) -> WrkResult:
    """The figures of one `wrk --latency` run."""
    requests: int | None = None
    seconds: float | None = None
    rps: float | None = None
    percentiles: dict[str, float] = {}
    non_2xx = 0
    socket_errors = 0
    for line in output.splitlines():
        if match := _REQUESTS.match(line):
            requests = int(match.group(1))
            seconds = parse_time(match.group(2))
        elif match := _PERCENTILE.match(line):
            percentiles[match.group(1)] = parse_time_ms(match.group(2))
        elif match := _RPS.match(line):
            rps = parse_count(match.group(1))
        elif match := _NON_2XX.match(line):
            non_2xx = int(match.group(1))
        elif match := _SOCKET.match(line):
            socket_errors = sum(int(n) for n in match.groups())
    missing = [
        name for name, value in (("requests", requests), ("Requests/sec", rps)) if value is None
    ] + [f"{p}%" for p in ("50", "75", "90", "99") if p not in percentiles]
    if missing or requests is None or seconds is None or rps is None:
        raise WrkOutputError(f"wrk output lacks {', '.join(missing)}:\n{output.strip()}")
    return WrkResult(
        requests=requests,
        seconds=seconds,
        rps=rps,
        p50_ms=percentiles["50"],
        p75_ms=percentiles["75"],
        p90_ms=percentiles["90"],
        p99_ms=percentiles["99"],
        non_2xx=non_2xx,
        socket_errors=socket_errors,
    )


LUA_DIR = Path(__file__).resolve().parent.parent / "lua"


@dataclass(frozen=True)
class Load:
    """What wrk sends: a Lua script from bench/lua and the environment it reads."""

    script: str
    env: dict[str, str]


def wrk_command(
    url: str, load: Load, *, seconds: int, connections: int, cpu: int | None
) -> list[str]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(LUA_DIR / load.script),
        url,
    ]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    return command


def run_wrk(
    url: str, load: Load, *, seconds: int, connections: int = 32, cpu: int | None = 1
) -> WrkResult:
    command = wrk_command(url, load, seconds=seconds, connections=connections, cpu=cpu)
    done = subprocess.run(
        command,
        env={**os.environ, **load.env},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    if done.returncode != 0:
        raise WrkOutputError(f"wrk failed ({done.returncode}): {done.stderr.strip()}")
    return parse_wrk(done.stdout)
