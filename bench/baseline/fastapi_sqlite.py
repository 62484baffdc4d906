"""Bare FastAPI over SQLite: what an order API costs with nothing but validation and one
statement per request. It validates the API's example order body with Pydantic, inserts it
(`POST /api/orders`), reads it by id (`GET /api/orders/{id}`), lists the newest
(`GET /api/orders?limit=`) and changes its metadata (`PATCH /api/orders/{id}`).

SQLite is set up as orderhub sets it up (WAL, synchronous=NORMAL), each write is its own
committed transaction, so an acknowledged order is as durable as orderhub's. The database
is `BASELINE_DB` (default `baseline.db` in the working directory).

    BASELINE_DB=/tmp/b.db .venv/bin/uvicorn bench.baseline.fastapi_sqlite:app --port 3102
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from decimal import Decimal
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Response
from pydantic import BaseModel, EmailStr, Field

DB_PATH = os.environ.get("BASELINE_DB", "baseline.db")


class Address(BaseModel):
    street: str
    city: str
    state: str
    zipCode: str
    country: str


class Item(BaseModel):
    id: str
    name: str
    quantity: Annotated[int, Field(gt=0)]
    price: Annotated[Decimal, Field(ge=0)]


class OrderIn(BaseModel):
    customerId: str
    customerEmail: EmailStr
    customerName: str
    items: Annotated[list[Item], Field(min_length=1)]
    totalAmount: Annotated[Decimal, Field(ge=0)]
    currency: Annotated[str, Field(min_length=3, max_length=3)]
    shippingAddress: Address
    billingAddress: Address | None = None
    metadata: dict[str, str] | None = None


class OrderPatch(BaseModel):
    metadata: dict[str, str] | None = None


def _connect() -> sqlite3.Connection:
    conn = sqlite3.connect(DB_PATH, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, status TEXT NOT NULL, "
        "body TEXT NOT NULL)"
    )
    return conn


db = _connect()
app = FastAPI()


def _envelope(data: Any, status: int = 200) -> Response:
    body = json.dumps({"success": True, "data": data}, default=str)
    return Response(body, status_code=status, media_type="application/json")


@app.post("/api/orders")
async def create(order: OrderIn, x_api_key: Annotated[str, Header()] = "") -> Response:
    order_id = str(uuid.uuid4())
    body = {"id": order_id, "status": "pending", **order.model_dump(mode="json")}
    db.execute(
        "INSERT INTO orders (id, status, body) VALUES (?, ?, ?)",
        (order_id, "pending", json.dumps(body)),
    )
    return _envelope({"order": body}, 201)


@app.get("/api/orders/{order_id}")
async def read(order_id: str, x_api_key: Annotated[str, Header()] = "") -> Response:
    row = db.execute("SELECT body FROM orders WHERE id = ?", (order_id,)).fetchone()
    if row is None:
        raise HTTPException(404, "Order not found")
    return _envelope(json.loads(row[0]))


@app.get("/api/orders")
async def newest(limit: int = 20, x_api_key: Annotated[str, Header()] = "") -> Response:
    rows = db.execute("SELECT body FROM orders ORDER BY rowid DESC LIMIT ?", (limit,)).fetchall()
    return _envelope([json.loads(body) for (body,) in rows])


@app.patch("/api/orders/{order_id}")
async def change(
    order_id: str, patch: OrderPatch, x_api_key: Annotated[str, Header()] = ""
) -> Response:
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute("SELECT body FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            raise HTTPException(404, "Order not found")
        body = json.loads(row[0])
        body["metadata"] = {**(body.get("metadata") or {}), **(patch.metadata or {})}
        db.execute("UPDATE orders SET body = ? WHERE id = ?", (json.dumps(body), order_id))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return _envelope(body)


@app.get("/health")
async def health() -> Response:
    return _envelope({"status": "ok"})
