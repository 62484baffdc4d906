"""The `csv` sheet backend: `DATA_DIR/sheets/orders.csv`, one row per order (SPEC §10).

Every `upsert` call is one batch, under a file lock (`orders.csv.lock`, shared with every
process on the host). A row is replaced only by a newer version of the same order, or by
the same version when its cells differ (a row edited by hand is put right by a resync),
so a retried batch or an out-of-order event changes nothing; further rows of an order (a
row copied by hand) are dropped. When nothing changes the file is not written at all.

Rows of new orders are appended. A newer version of a row has to move the rows after it
(a CSV row has no fixed length), so the file is rewritten from that row on; but only the
rows that change are encoded and parsed: the others are copied byte for byte (by the
kernel's `copy_file_range` where it can, else 256 KiB at a time), and their offsets in
the writer's index move by how much the changed row grew or shrank. So an update of an
old order in a large sheet costs copying the bytes after it (at disk speed, in the
writer's thread, with bounded memory), not parsing them. The writer keeps the byte
offset, version and cell digest of every row between batches, and reads the whole file
again only when someone else changed it since (another process, a person). Each write is
guarded by a journal (`orders.csv.journal`: the offset it writes from and the bytes it
replaces, fsynced first), so a crash in the middle of a batch is rolled back by the next
one, and the file always holds either the batch or none of it.

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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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
_CHUNK = 1 << 18  # bytes copied at a time when rows move


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
    position: int  # of the row in `_Index.starts`
    version: int
    digest: int  # hash of its cells: the same version with other cells was edited by hand


@dataclass
class _Index:
    """Where each order's row is, as of the file with `identity`."""

    identity: tuple[int, int, int]  # inode, size, mtime (ns) after the last write
    rows: dict[str, _Stored] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)  # every record's byte offset, in order
    owners: list[str] = field(default_factory=list)  # beside `starts`: whose row ("": none)
    copies: set[int] = field(default_factory=set)  # positions of further rows of an order

    def end_of(self, position: int) -> int:
        """The byte offset just after the record at `position` (its line ending included)."""
        following = position + 1
        return self.starts[following] if following < len(self.starts) else self.identity[1]


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
        # What changes, in file order: a replaced row (its new bytes) or a copy (dropped,
        # no bytes). Every other row is copied byte for byte, never parsed.
        changes = sorted(
            [
                (index.rows[order_id].position, order_id, _encode([_record(row)]))
                for order_id, row in replaced.items()
            ]
            + [(position, "", b"") for position in index.copies]
        )
        size = index.identity[1]
        start = index.starts[changes[0][0]] if changes else size
        pieces: list[bytes | tuple[int, int]] = []  # new bytes, or a range of the old file
        cursor = start
        for position, _order_id, data in changes:
            if cursor < index.starts[position]:
                pieces.append((cursor, index.starts[position]))
            if data:
                pieces.append(data)
            cursor = index.end_of(position)
        if cursor < size:
            pieces.append((cursor, size))
        added = [_encode([_record(row)]) for row in appended]
        with self.path.open("r+b") as handle:
            last = pieces[-1] if pieces else (start, start)
            if added and isinstance(last, tuple) and last[1] > 0:
                handle.seek(last[1] - 1)
                if handle.read(1) != b"\n":  # a last line without its newline (hand-edited)
                    added.insert(0, _NEWLINE.encode())
            journal_start = self._write_journal(handle, start, size - start)
            handle.seek(start)
            with self.journal_path.open("rb") as journal:
                for piece in [*pieces, *added]:
                    if isinstance(piece, bytes):
                        handle.write(piece)
                    else:  # old bytes, from the journal's copy of them
                        journal.seek(journal_start + piece[0] - start)
                        _copy(journal, handle, piece[1] - piece[0])
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        self._drop_journal()
        if index.copies:  # only after a hand edit: the next batch reads the file again
            self._index = None
            return
        offset = self._move_rows(index, changes)
        for data in added:
            self._add_rows(index, data, offset)
            offset += len(data)
        index.identity = _identity(self.path.stat())

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
            position = len(index.starts)
            index.starts.append(offset)
            if not any(record) or (record[_ID] == SHEET_COLUMNS[0] and offset <= len(_BOM)):
                index.owners.append("")
                continue  # a blank line or the header
            order_id = _unguard(record[_ID])
            if order_id in index.rows:
                index.copies.add(position)
                index.owners.append("")
            else:
                index.rows[order_id] = _Stored(position, _version_of(record), _digest(record))
                index.owners.append(order_id)

    @staticmethod
    def _move_rows(index: _Index, changes: list[tuple[int, str, bytes]]) -> int:
        """The index after each replaced row took its new bytes (no copies dropped): the
        rows after one move by how much it grew or shrank. Returns the new file size."""
        starts = index.starts
        old_lengths = [index.end_of(position) - starts[position] for position, _, _ in changes]
        moved = 0
        begin = changes[0][0] if changes else len(starts)
        for (position, order_id, data), old_length in zip(changes, old_lengths, strict=True):
            if moved:
                starts[begin : position + 1] = [s + moved for s in starts[begin : position + 1]]
            moved += len(data) - old_length
            (_offset, record), *_ = _records_with_offsets(data, 0)
            index.rows[order_id] = _Stored(position, _version_of(record), _digest(record))
            begin = position + 1
        if moved:
            starts[begin:] = [s + moved for s in starts[begin:]]
        return index.identity[1] + moved

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

    def _write_journal(self, handle: BinaryIO, start: int, length: int) -> int:
        """Copy the `length` bytes from `start` on, which the batch replaces, to the
        journal (fsynced); the offset in the journal where they begin."""
        header = f"{start} {length}\n".encode()
        with self.journal_path.open("wb") as journal:
            journal.write(header)
            handle.seek(start)
            _copy(handle, journal, length)
            journal.flush()
            os.fsync(journal.fileno())
        _fsync_dir(self.path.parent)
        return len(header)

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


class _ShorterThanIndexed(OSError):
    """The sheet file ends before the bytes its index says are there."""


def _copy(source: BinaryIO, target: BinaryIO, length: int) -> None:
    """`length` bytes from `source`'s position to `target`'s, both left after them: by
    the kernel (`copy_file_range`, no bytes through Python) where it can, else a chunk
    at a time."""
    start, at = source.tell(), target.tell()
    target.flush()
    copy_range = getattr(os, "copy_file_range", None)  # Linux only
    copied = 0
    while copied < length:
        try:
            if copy_range is None:
                raise OSError("copy_file_range is not available here")
            done = copy_range(
                source.fileno(), target.fileno(), length - copied, start + copied, at + copied
            )
        except OSError:
            if copied:
                raise
            source.seek(start)  # this file system (or platform) cannot: copy it here
            target.seek(at)
            _copy_chunks(source, target, length)
            return
        if done == 0:
            raise _ShorterThanIndexed(f"the sheet file ends before byte {start + length}")
        copied += done
    source.seek(start + length)
    target.seek(at + length)


def _copy_chunks(source: BinaryIO, target: BinaryIO, length: int) -> None:
    while length > 0:
        chunk = source.read(min(length, _CHUNK))
        if not chunk:
            raise _ShorterThanIndexed("the sheet file ends before its index says")
        target.write(chunk)
        length -= len(chunk)


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
