"""The project's own packaging metadata installs without deprecation warnings."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _pyproject() -> dict[str, object]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def test_license_is_an_spdx_expression_not_a_table() -> None:
    # setuptools warns (once per build step: three times in `make run`) about the table form
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    assert isinstance(project["license"], str)
    assert re.fullmatch(r"[A-Za-z0-9.+-]+( (AND|OR|WITH) [A-Za-z0-9.+-]+)*", project["license"])
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))


def test_build_needs_a_setuptools_that_reads_spdx_licenses() -> None:
    system = _pyproject()["build-system"]
    assert isinstance(system, dict)
    [setuptools] = [r for r in system["requires"] if r.startswith("setuptools")]
    minimum = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", setuptools)
    assert minimum is not None and int(minimum.group(1)) >= 77
