"""`EMAIL_BACKEND=smtp`: deliver through an SMTP server (`SMTP_URL`).

`smtp://user:pass@host:port` upgrades with STARTTLS when the server offers it (port 587
unless given), `smtps://` speaks TLS from the start (port 465 unless given); the user and
password, when present, are used to log in. SMTP 4yz answers are transient, 5yz permanent;
connection failures, timeouts and disconnects are transient.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import unquote, urlsplit

import aiosmtplib

from orderhub.delivery.integrations.base import (
    DeliveryError,
    EmailMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
    smtp_error,
)
from orderhub.delivery.integrations.email.render import envelope_sender, mime_bytes
from orderhub.kit.failures import in_words

DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


class SmtpEmailSender:
    def __init__(
        self,
        smtp_url: str,
        timeout: float = 10,
        *,
        tls_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        """`tls_context` replaces the system trust store (e.g. a private CA)."""
        parts = urlsplit(smtp_url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError("SMTP_URL: must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP_URL: has no host")
        try:
            port = parts.port
        except ValueError:
            raise ValueError("SMTP_URL: invalid port") from None
        self.hostname = parts.hostname
        self.port = port or DEFAULT_PORTS[scheme]
        self.use_tls = scheme == "smtps"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.tls_context = tls_context
        self.local_hostname = local_hostname

    def __repr__(self) -> str:  # never shows the password
        scheme = "smtps" if self.use_tls else "smtp"
        return f"SmtpEmailSender({scheme}://{self.hostname}:{self.port})"

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=None,  # STARTTLS when offered (never on smtps://)
            tls_context=self.tls_context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )

    async def send(self, message: EmailMessage) -> None:
        data = mime_bytes(message)  # flattened here: aiosmtplib would fold at 78 columns
        client = self._client()
        try:
            await client.connect()
            await client.sendmail(envelope_sender(message), [message.to], data)
        except Exception as exc:
            raise _classify(exc) from exc
        finally:
            await _close(client)

    async def probe(self) -> None:
        """Connect (with STARTTLS and login as configured), NOOP, QUIT within the timeout."""
        client = self._client()
        try:
            await client.connect()
            await client.noop()
        except Exception as exc:
            raise _classify(exc) from exc
        finally:
            await _close(client)


async def _close(client: aiosmtplib.SMTP) -> None:
    if not client.is_connected:
        return
    try:
        await asyncio.wait_for(client.quit(), timeout=client.timeout or 5)
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        client.close()


def _classify(exc: Exception) -> DeliveryError:
    """SMTP replies by their code (4yz transient, 5yz permanent); network trouble transient."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refused = exc.recipients
        if refused:
            first = refused[0]
            return smtp_error(first.code, f"recipient {first.recipient} refused: {first.message}")
        return TransientDeliveryError("SMTP recipients refused")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 400 <= exc.code < 600:
            return smtp_error(exc.code, exc.message)
        return TransientDeliveryError(f"SMTP {exc.code}: {exc.message[:500]}")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        # e.g. credentials configured but the server offers no AUTH: a setup problem
        return PermanentDeliveryError(f"SMTP: {exc.message[:500]}")
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return TransientDeliveryError(f"SMTP timeout: {exc}")
    if isinstance(exc, aiosmtplib.SMTPException):
        return TransientDeliveryError(f"SMTP: {exc.message[:500]}")
    if isinstance(exc, OSError):
        return TransientDeliveryError(f"SMTP connection error: {exc}")
    return TransientDeliveryError(f"SMTP: {in_words(exc)}")
