"""The `csv` sheet backend: `DATA_DIR/sheets/orders.csv`, one row per order (SPEC §10).

Every `upsert` call is one batch, under a file lock (`orders.csv.lock`, shared with every
process on the host). A row is replaced only by a newer version of the same order, or by
the same version when its cells differ (a row edited by hand is put right by a resync),
so a retried batch or an out-of-order event changes nothing; further rows of an order (a
row copied by hand) are dropped. When nothing changes the file is not written at all.

A batch costs what it changes, not the size of the sheet: rows of new orders are
appended, and a newer version of a row rewrites the file from that row on (orders change
soon after they are created, so that is the last few rows). The writer keeps the byte
offset and version of every row between batches, and reads the whole file again only
when someone else changed it since (another process, a person). Each write is guarded
by a journal (`orders.csv.journal`: the offset it writes from and the bytes it replaces,
fsynced first), so a crash in the middle of a batch is rolled back by the next one, and
the file always holds either the batch or none of it.

Cells are written through `guard_formula` (OWASP's rule against formula injection). The
Order ID (a UUID) and the Version (digits) never start with a risky character, so they are
read back exactly; an Order ID that was guarded anyway is unguarded when read.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import csv
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
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
_BOM = b"\xef\xbb\xbf"
_NEWLINE = "\r\n"


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


def _digest(record: list[str]) -> int:
    return hash(tuple(record))


def _encode(records: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=_NEWLINE).writerows(records)
    return buffer.getvalue().encode("utf-8")


@dataclass(frozen=True, slots=True)
class _Stored:
    start: int  # byte offset of the row in the file
    version: int
    digest: int  # hash of its cells: the same version with other cells was edited by hand


@dataclass
class _Index:
    """Where each order's row is, as of the file with `identity`."""

    identity: tuple[int, int, int]  # inode, size, mtime (ns) after the last write
    rows: dict[str, _Stored] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)  # every record's offset, in order
    owners: list[str] = field(default_factory=list)  # beside `starts`: whose row ("": none)
    copies: set[int] = field(default_factory=set)  # offsets of further rows of an order


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _records_with_offsets(data: bytes, base: int) -> Iterator[tuple[int, list[str]]]:
    """(offset, cells) of every record in `data`, which starts at byte `base` of the file;
    a record may span lines (quoted newlines)."""
    position = base

    def lines() -> Iterator[str]:
        nonlocal position
        for raw in data.splitlines(keepends=True):
            position += len(raw)
            yield raw.decode("utf-8")

    source = lines()
    reader = csv.reader(source)
    start = base
    for record in reader:
        yield start, record
        start = position


class CsvSheetWriter:
    """`SheetWriter` + `Probe` over a local CSV file."""

    def __init__(self, path: Path, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")
        self.journal_path = Path(f"{self.path}.journal")
        self.lock_timeout = lock_timeout
        self._index: _Index | None = None  # only read or changed under the file lock

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
                self._recover()
                self._merge(rows)
        except filelock.Timeout as exc:
            raise TransientDeliveryError(f"sheet file {self.path} is locked") from exc
        except BaseException:
            self._index = None  # the file may not be what the index says: read it again
            raise

    def _merge(self, rows: list[SheetRow]) -> None:
        if not self.path.exists():
            self._create([_record(row) for row in rows])
            return
        index = self._current_index()
        appended: list[SheetRow] = []
        replaced: dict[str, SheetRow] = {}
        for row in rows:
            stored = index.rows.get(row.order_id)
            if stored is None:
                appended.append(row)
            elif row.version > stored.version or (
                row.version == stored.version and _digest(_record(row)) != stored.digest
            ):
                replaced[row.order_id] = row
        if not appended and not replaced and not index.copies:
            return
        size = index.identity[1]
        start = min([index.rows[i].start for i in replaced] + list(index.copies), default=size)
        with self.path.open("r+b") as handle:
            handle.seek(start)
            old_tail = handle.read()
            prefix = b""
            if not replaced and old_tail == b"" and start > 0:
                handle.seek(start - 1)
                if handle.read(1) != b"\n":  # a last line without its newline (hand-edited)
                    prefix = _NEWLINE.encode()
            records: list[list[str]] = []
            if start < size:
                for offset, record in _records_with_offsets(old_tail, start):
                    order_id = _unguard(record[_ID]) if record else ""
                    if offset in index.copies:
                        continue  # a second row of an order: dropped
                    if order_id in replaced:
                        records.append(_record(replaced[order_id]))
                    else:
                        records.append(record)
            records += [_record(row) for row in appended]
            new_tail = prefix + _encode(records)
            self._write_journal(start, old_tail)
            handle.seek(start)
            handle.write(new_tail)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        self._drop_journal()
        self._reindex_from(index, start, new_tail)

    # -- the index of rows ----------------------------------------------------------------

    def _current_index(self) -> _Index:
        identity = _identity(self.path.stat())
        if self._index is not None and self._index.identity == identity:
            return self._index
        data = self.path.read_bytes()
        skip = len(_BOM) if data.startswith(_BOM) else 0
        index = _Index(identity=identity)
        self._add_rows(index, data[skip:], skip)
        self._index = index
        return index

    @staticmethod
    def _add_rows(index: _Index, data: bytes, base: int) -> None:
        for offset, record in _records_with_offsets(data, base):
            index.starts.append(offset)
            if not any(record) or (record[_ID] == SHEET_COLUMNS[0] and offset <= len(_BOM)):
                index.owners.append("")
                continue  # a blank line or the header
            order_id = _unguard(record[_ID])
            if order_id in index.rows:
                index.copies.add(offset)
                index.owners.append("")
            else:
                index.rows[order_id] = _Stored(offset, _version_of(record), _digest(record))
                index.owners.append(order_id)

    def _reindex_from(self, index: _Index, start: int, tail: bytes) -> None:
        """The index after `tail` replaced everything from `start` on: only the rows from
        `start` on are forgotten and read again (a batch that appends costs what it
        writes, however long the sheet)."""
        cut = bisect.bisect_left(index.starts, start)
        for order_id in index.owners[cut:]:
            if order_id:
                del index.rows[order_id]
        del index.starts[cut:]
        del index.owners[cut:]
        if index.copies:
            index.copies = {offset for offset in index.copies if offset < start}
        self._add_rows(index, tail, start)
        index.identity = _identity(self.path.stat())
        self._index = index

    # -- a new file, and the journal --------------------------------------------------------

    def _create(self, records: list[list[str]]) -> None:
        """The first batch: header and rows, written to a temp file and renamed in place."""
        data = _encode([list(SHEET_COLUMNS), *records])
        fd, temp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temp, 0o644)
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        _fsync_dir(self.path.parent)
        index = _Index(identity=(0, 0, 0))
        self._add_rows(index, data, 0)
        index.identity = _identity(self.path.stat())
        self._index = index

    def _write_journal(self, start: int, old_tail: bytes) -> None:
        with self.journal_path.open("wb") as handle:
            handle.write(f"{start} {len(old_tail)}\n".encode() + old_tail)
            handle.flush()
            os.fsync(handle.fileno())
        _fsync_dir(self.path.parent)

    def _drop_journal(self) -> None:
        self.journal_path.unlink()
        _fsync_dir(self.path.parent)

    def _recover(self) -> None:
        """Undo a batch a crash left half written: put back the bytes it replaced."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return
        head, _newline, old_tail = data.partition(b"\n")
        start, _space, length = head.decode("ascii", "replace").partition(" ")
        if start.isdigit() and length.isdigit() and len(old_tail) == int(length):
            with self.path.open("r+b") as handle:
                handle.seek(int(start))
                handle.write(old_tail)
                handle.truncate()
                handle.flush()
                os.fsync(handle.fileno())
        # else the journal is incomplete: the crash came while it was written, before the
        # file was touched
        self._index = None
        self._drop_journal()


def _fsync_dir(directory: Path) -> None:
    """Make a rename or removal durable (POSIX); a no-op where directories cannot be opened."""
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
