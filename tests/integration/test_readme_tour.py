"""The README's tour runs as written, top to bottom, against a live `orderhub serve`.

The tour is every ```sh block of the README's `## Tour` section. It is cut into steps at
its `# -> ...` lines; each step runs in one bash session (so `KEY`, `ID`, `PI`, `SECRET`,
`LAST_KEY`, `DELIVERY`, ... carry over, set by the tour's own commands), and its answer is
checked against the `# ->` line that ends it:

- `# -> 201 ...`: the HTTP status of the step's last `curl`;
- then either a JSON sketch (`{...}` / `[...]`), which the answer must contain: each key
  with its value (`...` in a string stands for any text, `...` as a value or an element
  for anything), lists by elements that some element of the answer matches;
- or quoted phrases (`"Payment received"`), each of which the output must contain
  (case-insensitively).

The answer is the step's output, or the body of its last `curl` when the step printed
nothing (it only set variables). Only two things differ from a reader's terminal: the
server listens on a free port of its own (`localhost:3000` is rewritten to it), and
`.venv/bin/orderhub` is this interpreter's `orderhub`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import cli_env, free_port, start_cli, wait_healthy

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
ANY = "\x00any"


@dataclass
class Step:
    number: int
    code: str
    check: str | None  # the text after `# ->`, continuation lines joined

    @property
    def title(self) -> str:
        lines = [line for line in self.code.splitlines() if line and not line.startswith("#")]
        return lines[-1] if lines else self.code.strip()


def tour_section(text: str) -> str:
    start = text.index("\n## Tour\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tour_steps(text: str) -> list[Step]:
    blocks = re.findall(r"^```sh\n(.*?)^```", tour_section(text), re.M | re.S)
    steps: list[Step] = []
    code: list[str] = []
    check: list[str] | None = None
    for line in "\n".join(blocks).splitlines():
        if check is not None and re.match(r"#\s{2,}\S", line):
            check.append(line.lstrip("#").strip())  # the check goes on
            continue
        if check is not None:
            steps.append(Step(len(steps) + 1, "\n".join(code), " ".join(check)))
            code, check = [], None
        if line.startswith("# -> "):
            check = [line.removeprefix("# -> ").strip()]
        else:
            code.append(line)
    if check is not None:
        steps.append(Step(len(steps) + 1, "\n".join(code), " ".join(check)))
    elif any(line.strip() and not line.startswith("#") for line in code):
        steps.append(Step(len(steps) + 1, "\n".join(code), None))
    return steps


# -- the checks ----------------------------------------------------------------------


def sketch(text: str) -> Any:
    """A `# ->` JSON sketch as a value: `...` in a value position means any value,
    `{...}` any object, an element `...` is dropped; strings keep their `...`."""
    parts = re.split(r'("(?:[^"\\]|\\.)*")', text)
    for i in range(0, len(parts), 2):  # the text outside strings
        outside = re.sub(r":\s*\.\.\.", f': "{ANY}"', parts[i])
        outside = outside.replace("...", "")
        parts[i] = outside
    joined = "".join(parts)
    for _ in range(3):
        joined = re.sub(r",\s*([}\]])", r"\1", joined)
        joined = re.sub(r"([{\[])\s*,", r"\1", joined)
        joined = re.sub(r",\s*,", ",", joined)
    return json.loads(joined.replace(ANY, "\\u0000any"))


def matches(expected: Any, actual: Any) -> bool:
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return isinstance(actual, list) and all(
            any(matches(item, candidate) for candidate in actual) for item in expected
        )
    if isinstance(expected, str) and "..." in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split("..."))
        return isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    return bool(expected == actual)


def answer_json(output: str) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        return json.loads(output.strip().split("\n\n")[-1])  # after `curl -i`'s headers


def check_step(step: Step, status: str, output: str) -> None:
    assert step.check is not None
    expected = re.match(r"(\d{3})\b\s*(.*)", step.check)
    rest = step.check
    if expected:
        assert status == expected.group(1), (
            f"step {step.number} ({step.title}) answered HTTP {status or 'nothing'}, "
            f"the README says {expected.group(1)}:\n{output}"
        )
        rest = expected.group(2)
    if rest.startswith(("{", "[")):
        want = sketch(rest)
        got = answer_json(output)
        assert matches(want, got), (
            f"step {step.number} ({step.title}): the answer does not contain what the README "
            f"shows\nREADME: {rest}\nanswer: {output}"
        )
    for phrase in re.findall(r'"([^"]+)"', rest) if not rest.startswith(("{", "[")) else []:
        assert phrase.lower() in output.lower(), (
            f"step {step.number} ({step.title}): {phrase!r} not in the output:\n{output}"
        )


# -- running it -----------------------------------------------------------------------

# `curl` as the tour calls it, which also keeps the HTTP status and body of its last call.
CURL_WRAPPER = r"""
curl() {
  local out rc
  out=$(command curl "$@" -w '\n@@status:%{http_code}'); rc=$?
  printf '%s' "${out##*@@status:}" > "$TOUR_DIR/status"
  printf '%s' "${out%$'\n'@@status:*}" > "$TOUR_DIR/body"
  cat "$TOUR_DIR/body"
  return $rc
}
set -o pipefail
"""


def tour_script(steps: list[Step], port: int, tour_dir: Path) -> str:
    orderhub = f"{shlex.quote(sys.executable)} -m orderhub"
    lines = [CURL_WRAPPER]
    for step in steps:
        code = step.code.replace("localhost:3000", f"127.0.0.1:{port}")
        code = code.replace(".venv/bin/orderhub", orderhub)
        n = step.number
        lines += [
            'rm -f "$TOUR_DIR/status" "$TOUR_DIR/body"',
            "{",
            code,
            f'}} > "$TOUR_DIR/out.{n}" 2> "$TOUR_DIR/err.{n}"',
            f'echo $? > "$TOUR_DIR/rc.{n}"',
            f'cp "$TOUR_DIR/status" "$TOUR_DIR/status.{n}" 2>/dev/null || true',
            f'cp "$TOUR_DIR/body" "$TOUR_DIR/body.{n}" 2>/dev/null || true',
            f'[ "$(cat "$TOUR_DIR/rc.{n}")" = 0 ] || exit 0',
        ]
    return "\n".join(lines) + "\n"


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[int, dict[str, str], Path]]:
    """`orderhub serve` on the embedded defaults, a free port and a fresh DATA_DIR, with
    a working directory of its own (so no developer's `.env` is read)."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = cli_env(home / "data", PORT=str(port))
    server = start_cli(["serve"], env, cwd=home)
    try:
        assert wait_healthy(f"http://127.0.0.1:{port}", 60), "orderhub serve did not start"
        yield port, env, home
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_tour_is_found() -> None:
    steps = tour_steps(README.read_text())
    assert len(steps) >= 20
    assert all(step.check for step in steps[1:]), "every step but the setup shows its answer"
    joined = "\n".join(step.code for step in steps)
    for variable in ("KEY", "ID", "PI", "SECRET", "LAST_KEY", "DELIVERY"):
        assert re.search(rf"^{variable}=", joined, re.M), f"the tour never sets ${variable}"
    commands = [line for line in joined.splitlines() if not line.lstrip().startswith("#")]
    uses_open = [line for line in commands if re.search(r"(^|[;&|(]\s*)open\s", line.strip())]
    assert not uses_open, f"the tour must not use macOS's `open`: {uses_open}"


def test_the_readme_tour_runs_as_written(
    live_server: tuple[int, dict[str, str], Path], tmp_path: Path
) -> None:
    port, env, home = live_server
    steps = tour_steps(README.read_text())
    tour_dir = tmp_path / "tour"
    tour_dir.mkdir()
    script = tour_dir / "tour.sh"
    script.write_text(tour_script(steps, port, tour_dir))
    subprocess.run(
        ["bash", str(script)],
        env={**env, "TOUR_DIR": str(tour_dir)},
        cwd=home,
        timeout=300,
        check=True,
    )
    for step in steps:
        n = step.number
        rc = read(tour_dir / f"rc.{n}").strip()
        output = read(tour_dir / f"out.{n}")
        assert rc == "0", (
            f"step {n} ({step.title}) failed (exit {rc or 'not run'}):\n{output}\n"
            f"{read(tour_dir / f'err.{n}')}"
        )
        if step.check is None:
            continue
        answer = output if output.strip() else read(tour_dir / f"body.{n}")
        check_step(step, read(tour_dir / f"status.{n}").strip(), answer)


# -- the checker itself ------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "answer"),
    [
        (
            '200 {"a": 1, "b": {...}, "c": "pi_..._secret_..."}',
            '{"a":1,"b":{"x":2},"c":"pi_1_secret_2"}',
        ),
        ('200 {"data": [{"s": "x", ...}], ...}', '{"data":[{"s":"y"},{"s":"x","t":1}],"more":1}'),
        ('201 {"n": ..., "m": null}', '{"n": 5, "m": null}'),
        ('200 "Payment received"', "<h2>Payment received</h2>"),
    ],
)
def test_the_checker_accepts_a_matching_answer(check: str, answer: str) -> None:
    check_step(Step(1, "curl x", check), "200" if check.startswith("200") else "201", answer)


@pytest.mark.parametrize(
    ("check", "status", "answer"),
    [
        ('200 {"a": 1}', "201", '{"a": 1}'),
        ('200 {"a": 1}', "200", '{"a": 2}'),
        ('200 {"a": "pi_..."}', "200", '{"a": "re_1"}'),
        ('200 {"d": [{"s": "x"}]}', "200", '{"d": [{"s": "y"}]}'),
        ('200 {"ok": true}', "200", '{"ok": 1}'),
        ('200 "Payment received"', "200", "<h2>Payment declined</h2>"),
    ],
)
def test_the_checker_refuses_a_different_answer(check: str, status: str, answer: str) -> None:
    with pytest.raises(AssertionError):
        check_step(Step(1, "curl x", check), status, answer)
