"""The response of a paged list route (`GET /api/orders`, `GET /api/monitoring/deliveries`)."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel
from starlette.responses import Response

from orderhub.kit.envelope import EnvelopeResponse
from orderhub.kit.wire import Page, pagination_out


def page_response(list_out: type[BaseModel], items: Sequence[BaseModel], page: Page) -> Response:
    """One page of a list: `list_out` is the route's response model (`data`, the page's
    items as the wire shows them, and `pagination`, where the next page starts)."""
    body = list_out(data=items, pagination=pagination_out(page))
    return EnvelopeResponse(body.model_dump(mode="json"))
