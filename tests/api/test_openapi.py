"""The OpenAPI document matches the server, and its pages work offline.

- `/docs` (Swagger UI) and `/redoc` (ReDoc) reference only assets of orderhub's own
  origin, and every one of them is served;
- no two schemas share a name, every `$ref` resolves;
- every operation documents the answers the request pipeline can give (body limit, rate
  limit, credentials, validation, idempotency, the store);
- nothing in the document points a reader outside orderhub.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, create_model

from orderhub.kit.openapi import SchemaNameClash, json_body

ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, methods in openapi["paths"].items()
        for method, operation in methods.items()
    ]


# -- the pages ---------------------------------------------------------------------------


def referenced_urls(html: str) -> list[str]:
    """Every URL the page makes the browser load: src, href, spec-url, and Swagger UI's
    `url:` option."""
    attributes = re.findall(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']""", html)
    options = re.findall(r"""\burl\s*:\s*["']([^"']+)["']""", html)
    return attributes + options


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_only_same_origin_assets(api: httpx.AsyncClient, page: str) -> None:
    response = await api.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), (
        "the page names another origin"
    )
    urls = referenced_urls(html)
    assert "/openapi.json" in urls
    scripts = [url for url in urls if url.endswith(".js")]
    assert scripts, "the page loads no script"
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url
        asset = await api.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url
        for suffix, media_type in ASSET_TYPES.items():
            if url.endswith(suffix):
                assert asset.headers["content-type"].startswith(media_type), url


async def test_swagger_ui_and_redoc_are_the_real_bundles(api: httpx.AsyncClient) -> None:
    swagger = await api.get("/docs/assets/swagger-ui-bundle.js")
    redoc = await api.get("/docs/assets/redoc.standalone.js")
    assert "SwaggerUIBundle" in swagger.text
    assert "Redoc" in redoc.text
    assert len(swagger.content) > 500_000 and len(redoc.content) > 500_000


async def test_an_unknown_docs_asset_is_a_404_in_the_envelope(api: httpx.AsyncClient) -> None:
    response = await api.get("/docs/assets/nope.js")
    assert response.status_code == 404
    assert response.json()["success"] is False


# -- names and references --------------------------------------------------------------


async def test_no_two_schemas_share_a_name(openapi: dict[str, Any]) -> None:
    names = list(openapi["components"]["schemas"])
    # FastAPI names two models of one name after their modules (`a__b__Model`): a client
    # generator then drops one of them.
    assert [n for n in names if "__" in n or "-" in n] == []
    assert len({n.lower() for n in names}) == len(names)


async def test_every_reference_resolves(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(openapi))
    assert refs
    assert sorted({r for r in refs if r not in schemas}) == []


def test_a_second_request_schema_of_the_same_name_is_refused() -> None:
    clashing: type[BaseModel] = create_model("RefundIn", note=(str, ...))
    with pytest.raises(SchemaNameClash):
        json_body(clashing)


# -- the answers of the request pipeline -----------------------------------------------


async def test_every_operation_documents_the_pipelines_answers(
    openapi: dict[str, Any],
) -> None:
    missing = []
    for path, method, operation in operations(openapi):
        codes = set(operation["responses"])
        parameters = operation.get("parameters", [])
        expected = {"413", "500"}
        if path.startswith(("/api/", "/sandbox/")):
            expected.add("429")
        if path.startswith("/api/"):
            expected |= {"401", "503"}
        if any(p["in"] == "path" for p in parameters):
            expected.add("404")
        if path.startswith("/api/") and (
            "requestBody" in operation or any(p["in"] in ("query", "header") for p in parameters)
        ):
            expected.add("400")
        if any(p["name"] == "Idempotency-Key" for p in parameters):
            expected |= {"400", "409", "422"}
        if not expected <= codes:
            missing.append(f"{method.upper()} {path}: {sorted(expected - codes)}")
    assert missing == []


async def test_the_retry_of_a_delivery_documents_a_bad_idempotency_key(
    api: httpx.AsyncClient, openapi: dict[str, Any]
) -> None:
    from tests.fixtures.app import AUTH

    path = "/api/monitoring/deliveries/{delivery_id}/retry"
    answer = await api.post(
        path.format(delivery_id="nope"), headers={**AUTH, "Idempotency-Key": "k" * 256}
    )
    assert answer.status_code == 400
    assert "400" in openapi["paths"][path]["post"]["responses"]
    key = next(
        p for p in openapi["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"
    )
    assert key["schema"]["maxLength"] == 255


# -- constraints the server checks are in the schemas ------------------------------------


async def test_request_constraints_are_in_the_schemas(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    create = schemas["OrderCreateIn"]["properties"]
    assert "usd" in create["currency"]["enum"] and "xyz" not in create["currency"]["enum"]
    assert create["customerId"]["pattern"] == "^[^\\u0000]*$"
    assert schemas["RefundIn"]["properties"]["amount"]["anyOf"][0]["exclusiveMinimum"] == 0
    update = schemas["OrderUpdateIn"]
    assert update["minProperties"] == 1
    assert "anyOf" not in update["properties"]["status"]
    metrics = openapi["paths"]["/api/monitoring/metrics"]["get"]["parameters"]
    pattern = next(p for p in metrics if p["name"] == "timeRange")["schema"]["pattern"]
    for good in ("1m", "129600m", "2160h", "24h", "90d"):
        assert re.fullmatch(pattern, good), good
    for bad in ("0h", "91d", "2161h", "129601m", "01h", "1w", "24"):
        assert not re.fullmatch(pattern, bad), bad


# -- user-facing text ------------------------------------------------------------------


async def test_the_document_points_nowhere_outside_orderhub(openapi: dict[str, Any]) -> None:
    text = json.dumps(openapi, ensure_ascii=False)
    for pointer in (r"\bSPEC\b", "§", r"\bthe seed\b", r"\bseed's\b", r"\bissue \d", r"\.\./"):
        assert not re.search(pointer, text), pointer


def _shape(path: str) -> str:
    """A path with its parameters blanked: `/api/orders/{order_id}` and
    `/api/orders/:id` are the same endpoint."""
    return re.sub(r"\{[^/]+\}|:[A-Za-z_]+", "*", path.rstrip("/."))


async def test_every_endpoint_is_documented_in_docs(openapi: dict[str, Any]) -> None:
    """A reader with only the repository finds every endpoint in `docs/`."""
    docs = Path(__file__).resolve().parents[2] / "docs"
    text = "\n".join(page.read_text() for page in sorted(docs.glob("*.md")))
    roots = "api|webhooks|sandbox|health|ready|metrics|openapi|docs|redoc"
    mentioned = {_shape(p) for p in re.findall(rf"(/(?:{roots})[\w/{{}}:.-]*)", text)}
    missing = sorted(path for path in openapi["paths"] if _shape(path) not in mentioned)
    assert missing == [], f"endpoints no page of docs/ names: {missing}"
