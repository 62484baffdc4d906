"""Request bodies that routes parse themselves (to keep numbers exact) are documented
here: their JSON Schemas go into the OpenAPI components like any FastAPI model's."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

_body_schemas: dict[str, dict[str, Any]] = {}


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` for a route that reads `model` from a JSON body."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, definition in schema.pop("$defs", {}).items():
        _body_schemas[name] = definition
    _body_schemas[model.__name__] = schema
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
            },
        }
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
            components.setdefault(name, definition)
        security = schema["components"].setdefault("securitySchemes", {})
        security["ApiKey"] = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
        security["Bearer"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                _drop_fastapi_422(operation)
                if path.startswith("/api/"):
                    operation["security"] = [{"ApiKey": []}, {"Bearer": []}]
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _drop_fastapi_422(operation: dict[str, Any]) -> None:
    """orderhub answers validation errors with 400 (SPEC §3), never FastAPI's 422."""
    responses = operation.get("responses", {})
    default_422 = responses.get("422", {})
    schema_ref = (
        default_422.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    )
    if schema_ref == "#/components/schemas/HTTPValidationError":
        del responses["422"]
