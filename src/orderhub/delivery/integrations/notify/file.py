"""The `file` notifier: `DATA_DIR/notifications.jsonl`, one JSON line per delivery.

Each line is `{"deliveryId": ..., "id": ..., "type": ..., "createdAt": ..., "data": {...}}`
(`notification_payload` with the delivery id in front). The sink keys by delivery id
(SPEC §10): a retried delivery never adds a second line, across processes too.

De-duplication: the JSONL file itself is the only record (no sidecar index that could
disagree with it after a crash). Every append happens under a file lock
(`notifications.jsonl.lock`); before appending, the notifier reads only the bytes added
since it last looked (its own appends and other processes'), keeping the delivery ids it
has seen in memory together with that byte offset. So the file is scanned once per
process (cheaply: the id is the first key of every line), and after that each publish
reads just the new tail. If the file is replaced or truncated (rotation), the index is
rebuilt from the new file. A line torn by a crash mid-write is not a delivery: it is
terminated and ignored (unless it parses as a whole record), and the delivery is written
again on retry. Cost: memory of
about 100 bytes per delivered id per process, which suits this local/development sink.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import filelock

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    TransientDeliveryError,
    notification_payload,
)
from orderhub.delivery.integrations.local_files import probe_file

_PREFIX = b'{"deliveryId":"'


def delivery_id_of(line: bytes) -> str | None:
    """The `deliveryId` of one JSONL line; None for a line that is not a record."""
    if line.startswith(_PREFIX):
        end = line.find(b'"', len(_PREFIX))
        candidate = line[len(_PREFIX) : end]
        if end > 0 and b"\\" not in candidate:
            try:
                return candidate.decode("utf-8")
            except UnicodeDecodeError:
                return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    value = record.get("deliveryId") if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def notification_line(message: DeliveryMessage) -> bytes:
    record = {"deliveryId": message.delivery_id, **notification_payload(message)}
    # ASCII-only: no U+2028/U+0085 etc. that line readers (str.splitlines) would split on
    text = json.dumps(record, ensure_ascii=True, separators=(",", ":"), default=str)
    return text.encode("ascii") + b"\n"


class FileNotifier:
    """`Notifier` + `Probe` appending to a local JSONL file, idempotent by delivery id."""

    def __init__(self, path: Path, *, lock_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.lock_path = Path(f"{self.path}.lock")
        self.lock_timeout = lock_timeout
        self._mutex = threading.Lock()
        self._seen: set[str] = set()
        self._offset = 0
        self._identity: tuple[int, int] | None = None

    async def publish(self, message: DeliveryMessage) -> None:
        line = notification_line(message)
        await asyncio.to_thread(self._append, message.delivery_id, line)

    async def probe(self) -> None:
        await asyncio.to_thread(probe_file, self.path, os.W_OK, "not writable")

    # -- blocking work ------------------------------------------------------------------

    def _append(self, delivery_id: str, line: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(self.lock_path, timeout=self.lock_timeout)
        try:
            with self._mutex, lock:
                torn = self._catch_up()
                if delivery_id in self._seen:
                    return
                with self.path.open("ab") as handle:
                    if torn:
                        handle.write(b"\n")
                    handle.write(line)
                    handle.flush()
                    os.fsync(handle.fileno())
                    self._offset = handle.tell()
                    stat = os.fstat(handle.fileno())
                    self._identity = (stat.st_dev, stat.st_ino)
                self._seen.add(delivery_id)
        except filelock.Timeout as exc:
            raise TransientDeliveryError(f"notification file {self.path} is locked") from exc

    def _catch_up(self) -> bool:
        """Index the lines added since the last look; True if the file ends mid-line."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            self._seen.clear()
            self._offset = 0
            self._identity = None
            return False
        with handle:
            stat = os.fstat(handle.fileno())
            identity = (stat.st_dev, stat.st_ino)
            if identity != self._identity or stat.st_size < self._offset:
                self._seen.clear()
                self._offset = 0
                self._identity = identity
            handle.seek(self._offset)
            tail = handle.read()
        end = tail.rfind(b"\n") + 1  # only complete lines
        for raw in tail[:end].split(b"\n"):
            if raw:
                found = delivery_id_of(raw)
                if found is not None:
                    self._seen.add(found)
        self._offset += end
        partial = tail[end:]
        if not partial:
            return False
        # a crash mid-append: count the line only if it is a whole record
        try:
            record = json.loads(partial)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("deliveryId"), str):
            self._seen.add(record["deliveryId"])
        return True
