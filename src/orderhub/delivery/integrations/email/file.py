"""`EMAIL_BACKEND=file`: one RFC 5322 `.eml` per delivery, for development and tests.

The file is named by delivery id and written atomically (temp file in the same folder,
then `os.replace`), so a retried delivery overwrites its own file and never adds a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from pathlib import Path

from orderhub.delivery.integrations.base import (
    EmailMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from orderhub.delivery.integrations.email.render import mime_bytes

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class FileEmailSender:
    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir

    def path_for(self, delivery_id: str) -> Path:
        if not _SAFE_NAME.fullmatch(delivery_id):
            raise PermanentDeliveryError(f"unusable delivery id for a file name: {delivery_id!r}")
        return self.mail_dir / f"{delivery_id}.eml"

    async def send(self, message: EmailMessage) -> None:
        target = self.path_for(message.delivery_id)
        data = mime_bytes(message)
        try:
            await asyncio.to_thread(self._write, target, data)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write {target}: {exc}") from exc

    def _write(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    async def probe(self) -> None:
        """The folder exists (or can be created) and a file can be written in it."""
        await asyncio.to_thread(self._probe)

    def _probe(self) -> None:
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=self.mail_dir, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(temp)
