"""Email content for order events (SPEC §10): subject, HTML and plain text from templates.

Templates live in `templates/` beside this module; a folder given as `EMAIL_TEMPLATES_DIR`
overrides them file by file (a file there with the same name wins). HTML templates
(`*.html.j2`) are autoescaped, so customer-supplied text is data, never markup; text and
subject templates are not. Every template sees the same context (see `template_context`)
and a `money(value, currency)` filter that formats a JSON amount for its currency.
"""

from __future__ import annotations

import binascii
import email.policy
import re
import secrets
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email import quoprimime
from email.headerregistry import Address
from email.message import EmailMessage as MimeMessage
from email.utils import format_datetime, formatdate, parseaddr
from pathlib import Path
from typing import Any

import jinja2

from orderhub.delivery.integrations.base import (
    DeliveryMessage,
    EmailMessage,
    PermanentDeliveryError,
)
from orderhub.delivery.model import EMAIL_EVENTS as ROUTED_EMAIL_EVENTS
from orderhub.kit.currencies import UnknownCurrency, currency_exponent

BUILTIN_TEMPLATES = Path(__file__).parent / "templates"

# event type -> template base name: `{name}.subject.j2`, `{name}.txt.j2`, `{name}.html.j2`
EVENT_TEMPLATES: Mapping[str, str] = {
    "order.created": "confirmation",
    "order.paid": "receipt",
    "order.payment_failed": "payment_failed",
    "order.shipped": "shipped",
    "order.tracking_updated": "tracking",
    "order.cancelled": "cancelled",
    "order.partially_refunded": "refund",
    "order.refunded": "refund",
}

# The routing table (delivery/model.py) decides which events are mailed; every one of
# them needs a template here.
EMAIL_EVENTS: frozenset[str] = frozenset(event.value for event in ROUTED_EMAIL_EVENTS)
assert frozenset(EVENT_TEMPLATES) == EMAIL_EVENTS, "a mailed event without a template"

_COUNTED_REFUNDS = ("succeeded", "pending")
# How many characters of the order id a subject shows (the body has the whole id): its
# last 8, which are random in a UUIDv7 (its first 8 are the creation time, shared by every
# order of the same minute).
ORDER_REF_CHARS = 8
# The refund reasons (Stripe's three) as a customer reads them.
REFUND_REASONS: Mapping[str, str] = {
    "requested_by_customer": "requested by you",
    "duplicate": "a duplicate payment",
    "fraudulent": "a fraudulent payment",
}
# asked of the provider (or accepted) but not yet completed: "on its way"
_UNDER_WAY_REFUNDS = ("requested", "pending")


def format_amount(value: object, currency: str) -> str:
    """A JSON amount in major units, with exactly the currency's decimals.

    `109.97, usd` -> `109.97`; `100, jpy` -> `100`; `1.5, kwd` -> `1.500`. A float is read
    through its shortest repr, which is exact for every amount the API writes.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise TypeError(f"not an amount: {value!r}")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    try:
        exponent = currency_exponent(currency)
    except UnknownCurrency:
        return f"{amount:f}"
    return f"{amount.quantize(Decimal(1).scaleb(-exponent)):f}"


def _line_total(price: object, quantity: object, currency: str) -> str:
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise TypeError(f"not a quantity: {quantity!r}")
    return format_amount(Decimal(format_amount(price, currency)) * quantity, currency)


def _optional_amount(value: object, currency: str) -> str | None:
    if value is None or (not isinstance(value, bool) and value == 0):
        return None
    return format_amount(value, currency)


def _latest_refund(order: Mapping[str, Any]) -> Mapping[str, Any] | None:
    refunds = [r for r in order.get("refunds") or () if r.get("status") in _COUNTED_REFUNDS]
    if not refunds:
        return None
    # newest by createdAt; on a tie, the later one in the list
    latest: Mapping[str, Any]
    _, latest = max(enumerate(refunds), key=lambda p: (str(p[1].get("createdAt") or ""), p[0]))
    return latest


def _refund_under_way(order: Mapping[str, Any], currency: str) -> str | None:
    """The refunds not completed yet (None without any): what a cancellation promises."""
    amounts = [
        Decimal(format_amount(r["amount"], currency))
        for r in order.get("refunds") or ()
        if r.get("status") in _UNDER_WAY_REFUNDS
    ]
    return format_amount(sum(amounts, Decimal(0)), currency) if amounts else None


def _reason_in_words(reason: object) -> str | None:
    if not reason:
        return None
    return REFUND_REASONS.get(str(reason), str(reason).replace("_", " "))


def template_context(message: DeliveryMessage, shop_name: str = "orderhub") -> dict[str, Any]:
    """What every template sees. Amounts are strings already formatted for the currency."""
    order = message.order
    currency = str(order["currency"]).lower()
    refund = _latest_refund(order)
    refunded = order.get("refundedAmount") or 0
    return {
        "order": order,
        "shop_name": shop_name,
        "event_type": message.event_type,
        "event_id": message.event_id,
        "occurred_at": message.occurred_at,
        "order_id": str(order["id"]),
        # what subjects show: short enough to read, the whole id is in the body
        "order_ref": str(order["id"])[-ORDER_REF_CHARS:],
        "customer_name": str(order.get("customerName") or ""),
        "currency": currency.upper(),
        "items": [
            {
                "id": item.get("id"),
                "name": str(item["name"]),
                "quantity": item["quantity"],
                "price": format_amount(item["price"], currency),
                "line_total": _line_total(item["price"], item["quantity"], currency),
            }
            for item in order["items"]
        ],
        "total": format_amount(order["totalAmount"], currency),
        # None when zero or absent, so templates can leave the line out
        "shipping": _optional_amount(order.get("shippingAmount"), currency),
        "tax": _optional_amount(order.get("taxAmount"), currency),
        "discount": _optional_amount(order.get("discountAmount"), currency),
        "tracking_number": order.get("trackingNumber"),
        "refunded_amount": format_amount(refunded, currency),
        # this event's refund: the latest one that counts, else everything refunded so far
        "refund_amount": format_amount(refund["amount"] if refund else refunded, currency),
        "refund_reason": refund.get("reason") if refund else None,  # as the API has it
        "refund_reason_text": _reason_in_words(refund.get("reason")) if refund else None,
        "fully_refunded": message.event_type == "order.refunded",
        # the refund a cancellation started (None for an order that was never paid)
        "refund_under_way": _refund_under_way(order, currency),
    }


def _one_line(text: str) -> str:
    return " ".join(text.split())


def shop_sender(email_from: str, shop_name: str) -> str:
    """`EMAIL_FROM` as the From header: a bare address gets the shop's name as its display
    name (quoted where the name needs it); a name given in `EMAIL_FROM` is kept."""
    name, address = parseaddr(email_from)
    if name or not address:
        return email_from
    local, _, domain = address.rpartition("@")
    return str(Address(display_name=shop_name, username=local, domain=domain))


class EmailRenderer:
    """Renders the email for an order event, or None for events that send no email."""

    def __init__(self, templates_dir: Path | None = None, shop_name: str = "orderhub") -> None:
        self.shop_name = shop_name
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir is not None:
            if not templates_dir.is_dir():
                raise ValueError(f"EMAIL_TEMPLATES_DIR: not a directory: {templates_dir}")
            loaders.append(jinja2.FileSystemLoader(templates_dir))
        loaders.append(jinja2.FileSystemLoader(BUILTIN_TEMPLATES))
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2", "html", "htm"),
                disabled_extensions=("txt.j2", "subject.j2", "txt"),
                default_for_string=False,
                default=False,
            ),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["money"] = format_amount

    def render(self, message: DeliveryMessage, sender: str) -> EmailMessage | None:
        """The email for `message`, from `sender` to the order's `customerEmail`.

        None when the event sends no email. Raises `PermanentDeliveryError` when the order
        has no usable address, or when the templates cannot render it (a broken override
        template or a malformed order: retrying the same input cannot help).
        """
        name = EVENT_TEMPLATES.get(message.event_type)
        if name is None:
            return None
        to = str(message.order.get("customerEmail") or "").strip()
        if not to:
            raise PermanentDeliveryError("missing address")
        if re.search(r"[\r\n\x00]", to) or "@" not in to:
            raise PermanentDeliveryError("invalid address")
        try:
            context = template_context(message, self.shop_name)
            subject = _one_line(self.env.get_template(f"{name}.subject.j2").render(context))
            context["subject"] = subject
            text = self.env.get_template(f"{name}.txt.j2").render(context)
            html = self.env.get_template(f"{name}.html.j2").render(context)
        except (jinja2.TemplateError, KeyError, TypeError, ValueError) as exc:
            raise PermanentDeliveryError(
                f"cannot render the {message.event_type} email: {_template_problem(exc)}"
            ) from exc
        return EmailMessage(
            delivery_id=message.delivery_id,
            event_id=message.event_id,
            sender=shop_sender(sender, self.shop_name),
            to=to,
            subject=subject,
            text=text,
            html=html,
        )


def message_id(message: EmailMessage) -> str:
    """`<delivery-id@sender-domain>`: the same for every attempt of one delivery."""
    local = re.sub(r"[^A-Za-z0-9.\-_+]", "-", message.delivery_id) or "delivery"
    domain = parseaddr(message.sender)[1].rpartition("@")[2]
    if not re.fullmatch(r"[A-Za-z0-9.\-]+", domain or ""):
        domain = "orderhub.invalid"
    return f"<{local}@{domain}>"


def envelope_sender(message: EmailMessage) -> str:
    """The bare address of `EMAIL_FROM` (which may be `Name <addr>`)."""
    return parseaddr(message.sender)[1] or message.sender


def _transfer_encoding(body: str) -> str | None:
    return None if body.isascii() else "quoted-printable"


# RFC 5322's hard limit instead of its 78-character advice: Python's folding of a long
# header can break right after the header's name, and some readers then see a leading
# space in the Subject; without a fold every reader sees the subject as written.
WIRE_POLICY = email.policy.SMTP.clone(max_line_length=998)


def mime_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire (CRLF line ends), for every backend."""
    fast = plain_mime_bytes(message)
    if fast is not None:
        return fast
    return build_mime(message).as_bytes(policy=WIRE_POLICY)


# The common message written directly, byte for byte what `build_mime` + `WIRE_POLICY`
# write (tests/integration/test_email.py compares the two), without the header registry's
# parsing and refolding: when every header value is printable ASCII that the registry
# would write back unchanged (an address as `addr` or `Name <addr>` of plain words; text
# of single-spaced words, no encoded-word lookalike) and fits one line.
_ATOM_TEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR = rf"{_ATOM_TEXT}(?:\.{_ATOM_TEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_ADDRESS = re.compile(rf"{_ADDR}|{_ATOM_TEXT}(?: {_ATOM_TEXT})* <{_ADDR}>")
_PLAIN_TEXT = re.compile(r"[!-~]+(?: [!-~]+)*")
_LINE_END = re.compile(r"\r\n|\r|\n")  # the generator's, which writes each as CRLF
_WIRE_LINE = 998  # WIRE_POLICY.max_line_length
_MIME_LINE = 78  # `email.policy.default.max_line_length`, what `set_content` encodes for
_BOUNDARY_WIDTH = len(repr(sys.maxsize - 1))


def _plain_header(name: str, value: str, pattern: re.Pattern[str]) -> str | None:
    if len(name) + 2 + len(value) > _WIRE_LINE or "=?" in value:
        return None
    return f"{name}: {value}\r\n" if pattern.fullmatch(value) else None


def _plain_part(subtype: str, body: str, last_header: str) -> str:
    """A text part as `set_content` makes it: `set_content`'s choice of transfer
    encoding (7bit, else quoted-printable or base64, whichever is shorter) and body."""
    lines = body.encode("utf-8").splitlines()
    cte, data = "", ""
    if body.isascii() and max((len(x) for x in lines), default=0) <= _MIME_LINE:
        cte, data = "7bit", b"\n".join(lines).decode("ascii") + "\n"
    else:
        cte = "quoted-printable"
        if body.isascii():  # a long line: whichever of the two encodes it shorter
            sniff = b"\n".join(lines[:10]) + b"\n"
            sniff_qp = quoprimime.body_encode(sniff.decode("latin-1"), _MIME_LINE)
            if len(sniff_qp) > len(binascii.b2a_base64(sniff)):
                cte = "base64"
        whole = b"\n".join(lines) + b"\n"
        if cte == "base64":
            data = _base64_lines(whole)
        else:
            data = quoprimime.body_encode(whole.decode("latin-1"), _MIME_LINE)
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {cte}\r\n{last_header}\r\n"
    )
    return head + "\r\n".join(_LINE_END.split(data))


def _base64_lines(data: bytes) -> str:
    unencoded = _MIME_LINE * 3 // 4
    return "".join(
        binascii.b2a_base64(data[i : i + unencoded]).decode("ascii")
        for i in range(0, len(data), unencoded)
    )


def plain_mime_bytes(message: EmailMessage) -> bytes | None:
    """The message written directly (see above) when that gives the email package's own
    bytes; None when it might not (`mime_bytes` then lets the package write it)."""
    headers = [
        _plain_header("From", message.sender, _PLAIN_ADDRESS),
        _plain_header("To", message.to, _PLAIN_ADDRESS),
        _plain_header("Subject", message.subject, _PLAIN_TEXT),
        f"Date: {format_datetime(datetime.now(UTC))}\r\n",
        _plain_header("Message-ID", message_id(message), _PLAIN_TEXT),
        _plain_header("X-Orderhub-Event-Id", message.event_id, _PLAIN_TEXT),
        _plain_header("X-Orderhub-Delivery-Id", message.delivery_id, _PLAIN_TEXT),
    ]
    if any(header is None for header in headers):
        return None
    parts = [
        _plain_part("plain", message.text, ""),
        _plain_part("html", message.html, "MIME-Version: 1.0\r\n"),
    ]
    boundary = "=" * 15 + f"{secrets.randbelow(sys.maxsize):0{_BOUNDARY_WIDTH}d}" + "=="
    if any(boundary in part for part in parts):
        return None  # the library picks another boundary then; let it
    body = "".join(f"--{boundary}\r\n{part}\r\n" for part in parts)
    return (
        "".join(h for h in headers if h is not None)
        + "MIME-Version: 1.0\r\n"
        + f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'
        + body
        + f"--{boundary}--\r\n"
    ).encode("ascii")


def build_mime(message: EmailMessage) -> MimeMessage:
    """RFC 5322 multipart/alternative (text, then HTML) with the orderhub headers."""
    mime = MimeMessage()
    try:
        mime["From"] = message.sender
        mime["To"] = message.to
        mime["Subject"] = message.subject
        mime["Date"] = formatdate(usegmt=True)
        mime["Message-ID"] = message_id(message)
        mime["X-Orderhub-Event-Id"] = message.event_id
        mime["X-Orderhub-Delivery-Id"] = message.delivery_id
    except ValueError as exc:  # CR/LF or similar in a header value
        raise PermanentDeliveryError(f"invalid header: {exc}") from exc
    # 7bit when ASCII; quoted-printable otherwise, so no server needs 8BITMIME
    mime.set_content(message.text, cte=_transfer_encoding(message.text))
    mime.add_alternative(message.html, subtype="html", cte=_transfer_encoding(message.html))
    return mime


def _template_problem(exc: Exception) -> str:
    """Why a template could not render, in words (the template's name and line when known)."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = f" ({exc.name or 'template'}, line {exc.lineno})"
        return f"a template has a syntax error{where}: {exc.message}"
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"the template {exc.name} does not exist"
    if isinstance(exc, jinja2.UndefinedError):
        return f"a template uses a value that does not exist ({exc.message or 'no reason given'})"
    if isinstance(exc, jinja2.TemplateError):
        return f"a template could not be rendered ({exc.message or 'no reason given'})"
    return "the order's values could not be put into the template"
