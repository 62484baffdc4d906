"""The documentation inside the repository is complete and stands alone.

- every `Settings` field has a row in docs/configuration.md and a commented line in
  `.env.example`, whose values are the defaults;
- no Markdown file links to a path that does not exist or lies outside the repository,
  names a path outside it, or refers the reader to material they do not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orderhub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
ENV_EXAMPLE = ROOT / ".env.example"

# Folders that are not the project's own documentation (tools, caches, local data).
SKIPPED_DIRS = {"data", "build", "dist", "node_modules", "htmlcov", "__pycache__"}

SETTING_NAMES = sorted(name.upper() for name in Settings.model_fields)
# Variables documented beside the settings but read by boto3, not by orderhub.
EXTERNAL_VARIABLES = {"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SNS"}


def markdown_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*.md"):
        parts = path.relative_to(ROOT).parts[:-1]
        if any(part.startswith(".") or part in SKIPPED_DIRS for part in parts):
            continue
        if any(part.endswith(".egg-info") for part in parts):
            continue
        found.append(path)
    return sorted(found)


def documented_rows() -> set[str]:
    """The variables in the first column of the reference's tables."""
    rows = re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", CONFIGURATION.read_text(), re.M)
    return set(rows)


def env_example_values() -> dict[str, str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    pairs = [re.fullmatch(r"#\s?([A-Z][A-Z0-9_]*)=(.*)", line) for line in lines]
    return {m.group(1): m.group(2) for m in pairs if m}


# --- the configuration reference ---------------------------------------------------


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_setting_has_a_row_in_the_reference(name: str) -> None:
    assert name in documented_rows(), (
        f"{name} is a setting but has no row `| `{name}` | default | meaning | example | "
        "belongs to |` in docs/configuration.md"
    )


def test_the_reference_documents_no_setting_that_does_not_exist() -> None:
    stale = documented_rows() - set(SETTING_NAMES) - EXTERNAL_VARIABLES
    assert not stale, f"docs/configuration.md documents unknown settings: {sorted(stale)}"


def test_every_row_of_the_reference_has_all_five_columns() -> None:
    for line in CONFIGURATION.read_text().splitlines():
        if re.match(r"^\|\s*`[A-Z][A-Z0-9_]*`", line):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            assert len(cells) == 5 and all(cells[2:]), f"incomplete row: {line}"


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_setting_is_in_env_example_commented(name: str) -> None:
    assert name in env_example_values(), f"{name} has no line `# {name}=default` in .env.example"
    uncommented = re.findall(rf"^{name}=", ENV_EXAMPLE.read_text(), re.M)
    assert not uncommented, f"{name} is set in .env.example: every line there is a comment"


def test_env_example_names_only_settings() -> None:
    unknown = set(env_example_values()) - set(SETTING_NAMES)
    assert not unknown, f".env.example names unknown settings: {sorted(unknown)}"


def test_env_example_values_are_the_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Uncommenting every line of .env.example changes nothing."""
    monkeypatch.chdir(tmp_path)  # no .env of the developer's
    defaults = Settings().model_dump()
    (tmp_path / ".env").write_text(
        "".join(f"{name}={value}\n" for name, value in env_example_values().items())
    )
    assert Settings().model_dump() == defaults


# --- every Markdown file stands alone ----------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
EXTERNAL_SCHEMES = ("http://", "https://", "mailto:")
# Text that refers the reader to something outside the repository.
OUTSIDE_POINTERS = [
    (re.compile(r"\.\./shared\b"), "the shared folder"),
    (re.compile(r"/work/"), "a path on the author's machine"),
    (re.compile(r"(?:^|[\s`(\"'])(?:/home/|/Users/|/root/|~/)"), "a home directory"),
    (re.compile(r"\bSPEC(?:\.md)?\b"), "the product contract"),
    (re.compile(r"ARCHITECTURE\.md"), "the architecture notes"),
    (re.compile(r"(?<!RFC )(?<!RFC \d{3} )(?<!RFC \d{4} )§\s*\d"), "a section of another text"),
    (re.compile(r"\bissues? (?:#?\d+|notes?)\b|\bissues show\b", re.I), "an issue"),
    (re.compile(r"\bthe seed\b|\bseed's\b|\bseed/API\.md\b", re.I), "the seed"),
]


def link_targets(text: str) -> list[str]:
    return LINK.findall(text) + REFERENCE.findall(text)


def link_problem(source: Path, target: str) -> str | None:
    if target.startswith(EXTERNAL_SCHEMES) or target.startswith("#"):
        return None
    if "://" in target or target.startswith("file:"):
        return "a URL scheme that is not http(s)"
    path = target.split("#", 1)[0].split("?", 1)[0]
    if path.startswith("/"):
        return "an absolute path"
    resolved = (source.parent / path).resolve()
    if not resolved.is_relative_to(ROOT):
        return "a path outside the repository"
    if not resolved.exists():
        return "a path that does not exist"
    return None


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_stay_inside_the_repository(path: Path) -> None:
    problems = [
        f"{target}: {problem}"
        for target in link_targets(path.read_text())
        if (problem := link_problem(path, target))
    ]
    assert not problems, f"{path.relative_to(ROOT)} links to {problems}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_points_to_nothing_outside_the_repository(path: Path) -> None:
    problems = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        for pattern, what in OUTSIDE_POINTERS:
            if pattern.search(line):
                problems.append(f"line {number} points to {what}: {line.strip()}")
        for relative in re.findall(r"(?:\.\./)+[\w./-]*", line):
            if not (path.parent / relative).resolve().is_relative_to(ROOT):
                problems.append(f"line {number} names a path outside the repository: {relative}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("target", "problem"),
    [
        ("../shared/SPEC.md", "a path outside the repository"),
        ("/work/main/README.md", "an absolute path"),
        ("docs/nope.md", "a path that does not exist"),
        ("file:///etc/passwd", "a URL scheme that is not http(s)"),
        ("docs/configuration.md#raising-the-rate-limit", None),
        ("https://example.com/x", None),
        ("#decisions", None),
    ],
)
def test_the_link_check_tells_good_from_bad(target: str, problem: str | None) -> None:
    assert link_problem(ROOT / "README.md", target) == problem


@pytest.mark.parametrize(
    "line",
    [
        "every other setting of `../shared/SPEC.md` §2",
        "See `ARCHITECTURE.md` for the layers",
        "see the issue notes",
        "as issue 12 asks",
        "the seed's example",
        "cd /work/main",
    ],
)
def test_the_pointer_check_finds_references_outside(line: str) -> None:
    assert any(pattern.search(line) for pattern, _what in OUTSIDE_POINTERS)


@pytest.mark.parametrize(
    "line",
    ["the tables it seeds", "seeded figures", "RFC 7518 §3.2", "`/var/lib/orderhub`"],
)
def test_the_pointer_check_lets_ordinary_text_through(line: str) -> None:
    assert not any(pattern.search(line) for pattern, _what in OUTSIDE_POINTERS)
