"""What the file backends (notifications file, CSV sheet) share: the health probe."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def probe_file(path: Path, access: int, problem: str) -> None:
    """`path`'s folder exists (made if need be) and takes a new file, and `path`, if it
    exists, allows `access` (`os.R_OK`, `os.W_OK`); else PermissionError `<path> is
    <problem>`. Blocking: run it in a thread."""
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=directory, prefix=".probe."):
        pass
    if path.exists() and not os.access(path, access):
        raise PermissionError(f"{path} is {problem}")
