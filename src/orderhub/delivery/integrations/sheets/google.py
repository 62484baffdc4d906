"""The `google` sheet backend: Google Sheets API v4 through google-api-python-client.

One `upsert` call is one batch (SPEC §10):

1. one `spreadsheets.values.batchGet` reads the rows, column A through the last column
   (`majorDimension=ROWS`, `UNFORMATTED_VALUE`): text written RAW comes back as strings and
   the Version as a number, the types the writer sends, so a stored row is compared with
   what would be written for it cell by cell (the read costs the whole used grid, not
   two columns);
2. one `spreadsheets.values.batchUpdate` with `valueInputOption=RAW` (customer text is never
   parsed as a formula) writes, with explicit A1 ranges, the header row when row 1 is
   empty, every existing row whose version is older than the new one or equal to it with
   cells that differ, and the new orders as one contiguous block after the last used row.

So, as for the CSV sheet, a row is replaced only by a newer version of the same order, or
by the same version when its cells differ (a row edited by hand is put right by a
resync); a retried batch or an out-of-order event changes nothing, and when nothing
differs no `batchUpdate` is sent at all. Cells right of the last column are not read or
written.

A batch of more than `max_rows_per_request` rows (default 500) is written by several
`batchUpdate` requests of at most that many rows each, keeping every request far inside
Google's payload limits; they all come from the one read, and a retry after a partial
failure re-reads and skips what was already written (an equal, unchanged row is a no-op).

Further rows of an order in the batch (a row copied by hand, or left by two processes
appending at once) are cleared: the row with the highest version (the first of equals)
is kept and the others are blanked (empty strings) in the same request. Within one
process upserts are serialised; across processes the read-then-write is not atomic
(Sheets has no conditional write), so the delivery worker should not run two sheets
batches at the same time on one spreadsheet.

The client is blocking (httplib2), so every call runs in `asyncio.to_thread`, each with a
fresh authorised `httplib2.Http` (they are not thread-safe). The SDK does not retry
(`num_retries=0`): the outbox owns retries. Errors: `HttpError` by status through
`http_error` (honouring `Retry-After`), token refresh failures, socket errors and timeouts
are transient.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import google.auth
import google.auth.exceptions
import google_auth_httplib2  # type: ignore[import-untyped]
import httplib2  # type: ignore[import-untyped]
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from orderhub.delivery.integrations.base import (
    SHEET_COLUMNS,
    DeliveryError,
    SheetRow,
    TransientDeliveryError,
    http_error,
)
from orderhub.delivery.integrations.sheets.csv import latest_per_order
from orderhub.kit.failures import reason

SCOPES = ("https://www.googleapis.com/auth/spreadsheets",)
MAX_ROWS_PER_REQUEST = 500
_WIDTH = len(SHEET_COLUMNS)
_VERSION = _WIDTH - 1

T = TypeVar("T")


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


_LAST = column_letter(_WIDTH - 1)


def quote_sheet(name: str) -> str:
    """A sheet name as A1 notation wants it: always quoted, quotes doubled."""
    return "'" + name.replace("'", "''") + "'"


def _version_of(value: Any) -> int:
    if isinstance(value, bool):
        return -1
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else -1
    text = str(value).strip().lstrip("'")
    try:
        return int(text)
    except ValueError:
        return -1


def _values(row: SheetRow) -> list[Any]:
    cells: list[Any] = list(row.cells[:_VERSION])
    cells += [""] * (_VERSION - len(cells))
    return [*cells, row.version]


def _runs(writes: Sequence[tuple[int, list[Any]]]) -> list[tuple[int, list[list[Any]]]]:
    """Consecutive row numbers merged into blocks: [(first row, [values...])]."""
    blocks: list[tuple[int, list[list[Any]]]] = []
    for number, values in sorted(writes, key=lambda w: w[0]):
        if blocks and blocks[-1][0] + len(blocks[-1][1]) == number:
            blocks[-1][1].append(values)
        else:
            blocks.append((number, [values]))
    return blocks


class GoogleSheetWriter:
    """`SheetWriter` + `Probe` over one sheet (tab) of a Google spreadsheet."""

    def __init__(
        self,
        spreadsheet_id: str,
        credentials_file: str,
        api_base: str = "",
        sheet_name: str = "Orders",
        *,
        timeout: float = 30.0,
        max_rows_per_request: int = MAX_ROWS_PER_REQUEST,
        credentials: Any = None,
    ) -> None:
        if not spreadsheet_id:
            raise ValueError("GOOGLE_SHEETS_SPREADSHEET_ID is required for SHEETS_BACKEND=google")
        if max_rows_per_request < 1:
            raise ValueError("max_rows_per_request must be at least 1")
        self.spreadsheet_id = spreadsheet_id
        self.sheet_name = sheet_name
        self.timeout = timeout
        self.max_rows_per_request = max_rows_per_request
        if credentials is None:
            if credentials_file:
                credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                    credentials_file, scopes=list(SCOPES)
                )
            else:  # Application Default Credentials (e.g. workload identity)
                credentials, _project = google.auth.default(scopes=list(SCOPES))
        self._credentials = credentials
        options: dict[str, str] = {}
        if api_base:
            options["api_endpoint"] = api_base if api_base.endswith("/") else api_base + "/"
        self._service: Any = build(
            "sheets",
            "v4",
            http=self._http(),
            static_discovery=True,
            cache_discovery=False,
            client_options=options or None,
        )
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._resources: tuple[Any, Any] | None = None
        self._resources_lock = threading.Lock()
        self._quoted = quote_sheet(sheet_name)

    # -- public API ---------------------------------------------------------------------

    async def upsert(self, rows: list[SheetRow]) -> None:
        if not rows:
            return
        latest = latest_per_order(rows)
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        async with self._lock[1]:
            await self._call(lambda http: self._upsert(http, latest))

    async def probe(self) -> None:
        await self._call(
            lambda http: (
                self._api()[0]
                .get(spreadsheetId=self.spreadsheet_id, fields="spreadsheetId")
                .execute(http=http, num_retries=0)
            )
        )

    # -- blocking work ------------------------------------------------------------------

    def _http(self) -> Any:
        return google_auth_httplib2.AuthorizedHttp(
            self._credentials, http=httplib2.Http(timeout=self.timeout)
        )

    def _api(self) -> tuple[Any, Any]:
        """`spreadsheets()` and `spreadsheets().values()`, made once: the client builds
        every method's docstring from the schema when a resource is made (~0.3 s)."""
        with self._resources_lock:
            if self._resources is None:
                spreadsheets = self._service.spreadsheets()
                self._resources = (spreadsheets, spreadsheets.values())
            return self._resources

    async def _call(self, work: Callable[[Any], T]) -> T:
        return await asyncio.to_thread(self._guarded, work)

    def _guarded(self, work: Callable[[Any], T]) -> T:
        http = self._http()
        try:
            return work(http)
        except DeliveryError:
            raise
        except HttpError as exc:
            raise _http_error(exc) from exc
        except google.auth.exceptions.GoogleAuthError as exc:
            # token refresh failed (credentials rotated, token endpoint down): retry later
            raise TransientDeliveryError(f"Google auth: {exc}") from exc
        except (OSError, httplib2.HttpLib2Error) as exc:  # incl. timeouts, refused
            raise TransientDeliveryError(f"Google Sheets is unreachable: {reason(exc)}") from exc
        finally:
            close = getattr(getattr(http, "http", None), "close", None)
            if callable(close):
                close()

    def _upsert(self, http: Any, rows: list[SheetRow]) -> None:
        values = self._api()[1]
        answer = values.batchGet(
            spreadsheetId=self.spreadsheet_id,
            ranges=[f"{self._quoted}!A:{_LAST}"],
            majorDimension="ROWS",
            valueRenderOption="UNFORMATTED_VALUE",
        ).execute(http=http, num_retries=0)
        ranges = answer.get("valueRanges") or [{}]
        stored = _rows(ranges[0])
        used = len(stored)

        writes: list[tuple[int, list[Any]]] = []
        if not stored or stored[0][0] in ("", None):
            writes.append((1, list(SHEET_COLUMNS)))
            used = max(used, 1)

        where: dict[str, list[int]] = {}
        for number, cells in enumerate(stored[1:], start=2):
            if cells[0] not in ("", None):
                where.setdefault(str(cells[0]), []).append(number)

        def version_at(number: int) -> int:
            return _version_of(stored[number - 1][_VERSION])

        next_row = used + 1
        for row in rows:
            numbers = where.get(row.order_id)
            if not numbers:
                writes.append((next_row, _values(row)))
                next_row += 1
                continue
            keep = max(numbers, key=lambda n: (version_at(n), -n))
            for extra in numbers:
                if extra != keep:
                    writes.append((extra, [""] * _WIDTH))
            version = version_at(keep)
            wanted = _values(row)
            if row.version > version or (row.version == version and stored[keep - 1] != wanted):
                writes.append((keep, wanted))

        if not writes:
            return
        writes.sort(key=lambda w: w[0])
        step = self.max_rows_per_request
        for start in range(0, len(writes), step):
            chunk = writes[start : start + step]
            data = [
                {
                    "range": f"{self._quoted}!A{first}:{_LAST}{first + len(block) - 1}",
                    "majorDimension": "ROWS",
                    "values": block,
                }
                for first, block in _runs(chunk)
            ]
            values.batchUpdate(
                spreadsheetId=self.spreadsheet_id,
                body={"valueInputOption": "RAW", "data": data},
            ).execute(http=http, num_retries=0)


def _rows(value_range: Any) -> list[list[Any]]:
    """The rows read, each padded to the sheet's width with "" (the API trims trailing
    empty cells and rows, and returns RAW-written text as strings, numbers as numbers:
    the same types `_values` writes, so a stored row equals its rewrite when untouched)."""
    found = value_range.get("values") if isinstance(value_range, dict) else None
    rows: list[list[Any]] = []
    for cells in found if isinstance(found, list) else []:
        padded = [("" if c is None else c) for c in cells] if isinstance(cells, list) else []
        rows.append([*padded[:_WIDTH], *[""] * (_WIDTH - len(padded))])
    return rows


def _http_error(exc: HttpError) -> DeliveryError:
    status = int(getattr(exc.resp, "status", 0) or 0)
    retry_after = exc.resp.get("retry-after") if hasattr(exc.resp, "get") else None
    detail = ""
    try:
        body = json.loads(exc.content)
        detail = str(body.get("error", {}).get("message", ""))
    except (ValueError, AttributeError, TypeError):
        pass
    if not detail:
        detail = exc.content.decode("utf-8", "replace") if isinstance(exc.content, bytes) else ""
    if status == 0:
        return TransientDeliveryError(f"Google Sheets: {detail or reason(exc)}")
    return http_error("Google Sheets", status, detail, retry_after)
