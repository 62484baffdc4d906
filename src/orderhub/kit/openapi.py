"""The OpenAPI document and the pages that show it.

Request bodies that routes parse themselves (to keep numbers exact) are documented here:
their JSON Schemas go into the OpenAPI components like any FastAPI model's. `/docs`
(Swagger UI) and `/redoc` (ReDoc) are served with every asset from orderhub itself (the
files of the `fastapi-offline` package), so they work without the internet."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.responses import FileResponse, HTMLResponse, Response

from orderhub.kit.envelope import ERROR_DESCRIPTIONS

_body_schemas: dict[str, dict[str, Any]] = {}

# The body parser refuses NUL anywhere in a body (no store keeps it): every string of a
# request body says so.
NO_NUL = "^[^\\u0000]*$"
ERROR_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}


class SchemaNameClash(ValueError):
    """Two different schemas would share one name in the OpenAPI components."""


def not_nullable(*fields: str) -> Any:
    """A model's `json_schema_extra` that documents `fields` as values, not `null`: the
    model takes `null` for "not given", and the schema asks for a value instead."""

    def edit(schema: dict[str, Any]) -> None:
        properties = schema.get("properties", {})
        for name in fields:
            field = properties.get(name, {})
            options = [o for o in field.pop("anyOf", []) if o.get("type") != "null"]
            field.pop("default", None)
            if len(options) == 1:
                field.update(options[0])
        schema["minProperties"] = 1

    return edit


def _strings_without_nul(schema: Any) -> None:
    if isinstance(schema, list):
        for item in schema:
            _strings_without_nul(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not {"enum", "pattern", "const"} & set(schema):
        schema["pattern"] = NO_NUL
    if "propertyNames" in schema:
        schema["propertyNames"].setdefault("type", "string")
    for value in schema.values():
        _strings_without_nul(value)


def _register(name: str, definition: dict[str, Any]) -> None:
    known = _body_schemas.get(name)
    if known is not None and known != definition:
        raise SchemaNameClash(f"two different request schemas are named {name}")
    _body_schemas[name] = definition


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` from a JSON body."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        _strings_without_nul(definition)
        _register(name, definition)
    _strings_without_nul(schema)
    _register(model.__name__, schema)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
    }


# An Idempotency-Key: 1-255 printable characters, no space at either end (HTTP drops it).
IDEMPOTENCY_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": 255,
    "pattern": "^[!-~]([ -~]*[!-~])?$",
}
# `<n>m`, `<n>h` or `<n>d`, at most 90 days (129600 minutes, 2160 hours).
TIME_RANGE_PATTERN = (
    "^(?:(?:[1-9]|[1-9][0-9]{1,4}|1[01][0-9]{4}|12[0-8][0-9]{3}|129[0-5][0-9]{2}|129600)m"
    "|(?:[1-9]|[1-9][0-9]{1,2}|1[0-9]{3}|20[0-9]{2}|21[0-5][0-9]|2160)h"
    "|(?:[1-9]|[1-8][0-9]|90)d)$"
)
PARAMETER_NOTES = {
    "lastKey": "opaque: pass back the pagination.lastKey of the previous page as it is",
    "timeRange": "30m, 24h, 7d...: minutes, hours or days, at most 90 days",
}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in _body_schemas.items():
            if name in components and components[name] != definition:
                raise SchemaNameClash(f"a request and a response schema are both named {name}")
            components[name] = definition
        security = schema["components"].setdefault("securitySchemes", {})
        security["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        security["Bearer"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                _drop_fastapi_422(operation)
                _describe_parameters(operation)
                _add_pipeline_responses(path, operation)
                if path.startswith("/api/"):
                    operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _describe_parameters(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters", []):
        name = parameter["name"]
        if name == "Idempotency-Key":
            parameter["schema"] = dict(IDEMPOTENCY_KEY_SCHEMA)
            parameter["description"] = (
                "Replays the first answer for the same request; the same key with another "
                "request is 422, while the first still runs 409"
            )
        elif name == "timeRange":
            parameter["schema"]["pattern"] = TIME_RANGE_PATTERN
        if name in PARAMETER_NOTES:
            parameter["description"] = PARAMETER_NOTES[name]


def _add_pipeline_responses(path: str, operation: dict[str, Any]) -> None:
    """The answers every route may give because of the request pipeline (body limit,
    rate limit, credentials, parameter validation, idempotency, the store), documented
    on each operation that can give them."""
    parameters = operation.get("parameters", [])
    codes = {413, 500}
    if path.startswith(("/api/", "/sandbox/")):
        codes.add(429)
    if path.startswith("/api/") or path == "/metrics":
        codes.add(401)
    if path != "/health" and not path.startswith("/sandbox/assets/"):
        codes.add(503)
    validated = not path.startswith("/sandbox/")  # the sandbox reads its forms itself
    if validated and ("requestBody" in operation or any(p["in"] != "path" for p in parameters)):
        codes.add(400)
    if any(p["in"] == "path" for p in parameters):
        codes.add(404)
    if any(p["name"] == "Idempotency-Key" for p in parameters):
        codes |= {400, 409, 422}
    responses = operation.setdefault("responses", {})
    for code in sorted(codes):
        responses.setdefault(
            str(code), {"description": ERROR_DESCRIPTIONS[code], "content": ERROR_ENVELOPE}
        )
    operation["responses"] = dict(sorted(responses.items()))


def _drop_fastapi_422(operation: dict[str, Any]) -> None:
    """orderhub answers validation errors with 400, never FastAPI's 422."""
    responses = operation.get("responses", {})
    default_422 = responses.get("422", {})
    schema_ref = (
        default_422.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    )
    if schema_ref == "#/components/schemas/HTTPValidationError":
        del responses["422"]


# The assets the two pages load, all served under DOCS_ASSETS (same origin).
DOCS_ASSETS = "/docs/assets"
_ASSET_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def _asset_dir() -> Path:
    return Path(str(files("fastapi_offline").joinpath("static")))


# The pages load nothing from elsewhere (ReDoc's footer would fetch a logo otherwise);
# their own small inline script and styles are allowed, as are ReDoc's blob workers.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'"
)


def install_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Swagger UI at `docs_url` and ReDoc at `redoc_url`, from local assets only."""
    assets = _asset_dir()
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{DOCS_ASSETS}/favicon.png"
    pages = {
        docs_url: get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},
        ),
        redoc_url: get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        ),
    }

    def page(html: HTMLResponse) -> Any:
        body = bytes(html.body)

        async def show() -> Response:
            return HTMLResponse(body, headers={"Content-Security-Policy": DOCS_CSP})

        return show

    def asset(name: str, media_type: str) -> Any:
        path = assets / name

        async def send() -> Response:
            return FileResponse(
                path, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
            )

        return send

    for url, html in pages.items():
        app.add_api_route(url, page(html), methods=["GET"], include_in_schema=False)
    for name, media_type in _ASSET_TYPES.items():
        app.add_api_route(
            f"{DOCS_ASSETS}/{name}",
            asset(name, media_type),
            methods=["GET"],
            include_in_schema=False,
        )
