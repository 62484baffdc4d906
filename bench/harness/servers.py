"""Starting and stopping the servers under test, each pinned to the server core.

orderhub runs through its own CLI (`python -m orderhub serve`) on the embedded defaults,
in a temporary `DATA_DIR`, with a clean environment (nothing inherited from the shell or
a `.env`) plus what the scenario sets; the only default every scenario changes is
`RATE_LIMIT_MAX`, since the default 100 requests per 15 minutes would answer 429 within
the first second. The API key is the one `serve` creates and prints on its first start.
The baselines run under uvicorn with the same defaults orderhub's `serve` uses.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
SERVER_CPU = 0
LOAD_CPU = 1
UNLIMITED = "1000000000"
_KEY_LINE = re.compile(r"^\s+(oh_\S+)\s*$", re.MULTILINE)
_KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    env = {name: os.environ[name] for name in _KEPT_ENV if name in os.environ}
    # BENCH_SRC: another checkout's `src` to serve instead (to compare two versions)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("BENCH_SRC"), str(REPO)]))
    return {**env, **settings}


def pinned(command: list[str], cpu: int | None) -> list[str]:
    return command if cpu is None else ["taskset", "-c", str(cpu), *command]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path | None = None
    api_key: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def db_path(self) -> Path | None:
        """The SQLite file of an orderhub server on the embedded store."""
        if self.data_dir is None or "DATABASE_URL" in self.extra:
            return None
        return self.data_dir / "orderhub.db"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def rss_kib(self) -> int:
        """Resident memory of the server and its children (uvicorn workers), in KiB."""
        return sum(rss_kib(pid) for pid in [self.pid, *children(self.pid)])

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server and its children used so far."""
        return sum(cpu_seconds(pid) for pid in [self.pid, *children(self.pid)])

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        for task in tasks:
            text = (task / "children").read_text().split()
            for child in map(int, text):
                found += [child, *children(child)]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def _spawn(
    name: str, command: list[str], env: dict[str, str], cwd: Path, log_path: Path, port: int
) -> Server:
    log = log_path.open("wb")
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    log.close()
    return Server(name, f"http://127.0.0.1:{port}", process, log_path)


def wait_ready(server: Server, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{server.name} did not answer /health in {timeout:.0f} s")


def start_orderhub(
    data_dir: Path,
    *,
    name: str = "orderhub",
    args: tuple[str, ...] = (),
    cpu: int | None = SERVER_CPU,
    api_key: str = "",
    **settings: str,
) -> Server:
    """`orderhub serve` on `data_dir`; the API key is the one it prints on its first start
    there (pass `api_key` when starting it again on the same store)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_env(
        DATA_DIR=str(data_dir),
        HOST="127.0.0.1",
        PORT=str(port),
        RATE_LIMIT_MAX=UNLIMITED,
        **settings,
    )
    command = pinned([sys.executable, "-m", "orderhub", "serve", *args], cpu)
    log_path = data_dir / f"{name}.log"
    server = _spawn(name, command, env, data_dir, log_path, port)
    server.data_dir = data_dir
    server.extra = dict(settings)
    wait_ready(server)
    if api_key:
        server.api_key = api_key
        return server
    match = _KEY_LINE.search(log_path.read_text(encoding="utf-8", errors="replace"))
    if match is None:
        server.stop()
        raise RuntimeError(f"{name}: no API key printed on start:\n{server.log_tail()}")
    server.api_key = match.group(1)
    return server


def start_baseline(module: str, workdir: Path, *, cpu: int | None = SERVER_CPU) -> Server:
    """`bench.baseline.<module>:app` under uvicorn (the same loop and HTTP parser orderhub's
    `serve` picks: uvicorn's defaults)."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = clean_env(BASELINE_DB=str(workdir / "baseline.db"))
    command = pinned(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench.baseline.{module}:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cpu,
    )
    server = _spawn(module, command, env, workdir, workdir / f"{module}.log", port)
    wait_ready(server)
    return server


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


# -- what the store holds (read straight from the SQLite file, read-only) ----------------


def delivery_counts(db_path: Path) -> dict[str, int]:
    """Deliveries by status, and `sheets:<status>` for the sheet's."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        counts: dict[str, int] = {}
        for integration, status, count in conn.execute(
            "SELECT integration, status, count(*) FROM deliveries GROUP BY integration, status"
        ):
            counts[status] = counts.get(status, 0) + count
            counts[f"{integration}:{status}"] = count
        return counts
    finally:
        conn.close()


def backlog(counts: dict[str, int], integration: str | None = None) -> int:
    prefix = f"{integration}:" if integration else ""
    return counts.get(f"{prefix}pending", 0) + counts.get(f"{prefix}in_flight", 0)


def delivered(counts: dict[str, int], integration: str | None = None) -> int:
    prefix = f"{integration}:" if integration else ""
    return counts.get(f"{prefix}delivered", 0)
