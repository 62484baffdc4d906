"""The `csv` sheet backend: `DATA_DIR/sheets/orders.csv`, one row per order (SPEC §10).

Every `upsert` call is one batch: under a file lock (`orders.csv.lock`, shared with every
process on the host) it reads the file, merges the rows, and replaces the file atomically
(temp file in the same directory, fsync, `os.replace`). A row is replaced only by a
strictly newer version of the same order, so a retried batch or an out-of-order event
changes nothing; when nothing changes the file is not rewritten at all.

Cells are written through `guard_formula` (OWASP's rule against formula injection). The
Order ID (a UUID) and the Version (digits) never start with a risky character, so they are
read back exactly; an Order ID that was guarded anyway is unguarded when read.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import tempfile
from pathlib import Path

import filelock

from orderhub.delivery.integrations.base import (
    FORMULA_TRIGGERS,
    SHEET_COLUMNS,
    SheetRow,
    TransientDeliveryError,
    guard_formula,
)
from orderhub.delivery.integrations.local_files import probe_file

_ID = 0
_VERSION = len(SHEET_COLUMNS) - 1


def _unguard(cell: str) -> str:
    if cell.startswith("'") and cell[1:].startswith(FORMULA_TRIGGERS):
        return cell[1:]
    return cell


def _version_of(record: list[str]) -> int:
    """The version a stored row shows; a row without a readable one loses to any update."""
    if len(record) <= _VERSION:
        return -1
    text = _unguard(record[_VERSION]).strip()
    try:
        return int(text)
    except ValueError:
        return -1


def latest_per_order(rows: list[SheetRow]) -> list[SheetRow]:
    """One row per order id (the highest version; the first of equals), in first-seen order."""
    best: dict[str, SheetRow] = {}
    for row in rows:
        current = best.get(row.order_id)
        if current is None or row.version > current.version:
            best[row.order_id] = row
    return list(best.values())


def _record(row: SheetRow) -> list[str]:
    cells = [guard_formula(cell) for cell in row.cells[:_VERSION]]
    cells += [""] * (_VERSION - len(cells))
    return [*cells, str(row.version)]


class CsvSheetWriter:
    """`SheetWriter` + `Probe` over a local CSV file."""

    def __init__(self, path: Path, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")
        self.lock_timeout = lock_timeout

    async def upsert(self, rows: list[SheetRow]) -> None:
        if not rows:
            return
        await asyncio.to_thread(self._upsert, latest_per_order(rows))

    async def probe(self) -> None:
        await asyncio.to_thread(probe_file, self.path, os.R_OK, "not readable")

    # -- blocking work (runs in a thread) --------------------------------------------------

    def _upsert(self, rows: list[SheetRow]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.lock_path, timeout=self.lock_timeout)
        try:
            with lock:
                self._merge_and_write(rows)
        except filelock.Timeout as exc:
            raise TransientDeliveryError(f"sheet file {self.path} is locked") from exc

    def _merge_and_write(self, rows: list[SheetRow]) -> None:
        records = self._read()
        index = {_unguard(r[_ID]): i for i, r in enumerate(records) if r}
        changed = False
        for row in rows:
            at = index.get(row.order_id)
            if at is None:
                index[row.order_id] = len(records)
                records.append(_record(row))
                changed = True
            elif row.version > _version_of(records[at]):
                records[at] = _record(row)
                changed = True
        if changed:
            self._write(records)

    def _read(self) -> list[list[str]]:
        """The data rows (header dropped); [] when the file does not exist yet."""
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(handle)
                records = [record for record in reader if any(record)]
        except FileNotFoundError:
            return []
        if records and records[0] and records[0][0] == SHEET_COLUMNS[0]:
            records = records[1:]
        return records

    def _write(self, records: list[list[str]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(SHEET_COLUMNS)
        writer.writerows(records)
        try:
            mode = self.path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = 0o644
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(buffer.getvalue())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, mode)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_dir(self.path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
