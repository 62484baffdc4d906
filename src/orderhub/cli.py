"""The `orderhub` command: serve, worker, migrate, keys, deliveries."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import structlog
import typer
import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from orderhub.bootstrap import Container, Migration, build_container, migrate, needs_migration
from orderhub.delivery.model import Delivery, DeliveryStatus, Integration
from orderhub.kit.clock import iso_ms
from orderhub.kit.durations import parse_duration
from orderhub.kit.errors import AppError
from orderhub.kit.failures import in_words
from orderhub.kit.logging import configure_logging
from orderhub.settings import (
    Settings,
    SettingsError,
    load_settings,
    prepare_worker_processes_environment,
)
from orderhub.store.protocol import StoreError

T = TypeVar("T")


def _typer(help_text: str) -> typer.Typer:
    """Plain help (click's layout: no type labels such as `<bool>` beside flags) and no
    tracebacks with local variables (they could show secrets) if something fails."""
    return typer.Typer(
        no_args_is_help=True,
        add_completion=False,
        help=help_text,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )


cli = _typer("orderhub service")
keys_cli = _typer("API keys kept hashed in the store")
cli.add_typer(keys_cli, name="keys")
deliveries_cli = _typer("Inspect and replay side-effect deliveries")
cli.add_typer(deliveries_cli, name="deliveries")


def _settings(**overrides: object) -> Settings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        typer.echo(f"orderhub: configuration error: {exc}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


def _fail(line: str) -> NoReturn:
    typer.echo(f"orderhub: configuration error: {line}", err=True)
    raise typer.Exit(2)


def _store_setting(settings: Settings) -> str:
    """The setting that places the SQLite store: DATABASE_URL when it was given, else
    DATA_DIR (the default store lives in it)."""
    return "DATABASE_URL" if "database_url" in settings.model_fields_set else "DATA_DIR"


def _path_problem(settings: Settings, problem: str) -> NoReturn:
    typer.echo(f"orderhub: {problem}; check {_store_setting(settings)}", err=True)
    raise typer.Exit(1)


def _reason(exc: OSError) -> str:
    return (exc.strerror or in_words(exc)).lower()


def _sqlite_ready(settings: Settings, path: Path) -> None:
    """The SQLite file's folder exists (created if need be) and can be written; the file,
    if there, is a file orderhub can read and write. Problems name the path and setting."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _path_problem(settings, f"cannot create the folder {folder} ({_reason(exc)})")
    if not folder.is_dir():
        _path_problem(settings, f"{folder} is not a folder")
    if path.exists() and not path.is_file():
        _path_problem(settings, f"{path} is not a file")
    if not os.access(folder, os.W_OK | os.X_OK):
        _path_problem(settings, f"cannot write in the folder {folder} (permission denied)")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        _path_problem(settings, f"cannot read and write {path} (permission denied)")


def _prepare_store(settings: Settings) -> None:
    """Before a command opens the store: a SQLite store is checked and migrated (as
    `serve` always did), saying so on stderr when that changed its schema."""
    if settings.sqlite_path is None:
        return
    done = _migrate(settings)
    if done.changed:
        typer.echo(f"orderhub: {done.describe()}", err=True)


def _store_failed(settings: Settings, exc: StoreError) -> NoReturn:
    try:
        unmigrated = needs_migration(settings)
    except Exception:  # the store does not answer that question either
        unmigrated = False
    if unmigrated:
        line = "the store has no schema for this version of orderhub; run `orderhub migrate`"
    elif settings.sqlite_path is not None:
        where = _store_setting(settings)
        line = f"cannot use the SQLite store {settings.sqlite_path} ({exc}); check {where}"
    else:
        line = f"the store does not answer ({exc}); check DATABASE_URL"
    typer.echo(f"orderhub: {line}", err=True)
    raise typer.Exit(1)


def _with_container(settings: Settings, work: Callable[[Container], Awaitable[T]]) -> T:
    _prepare_store(settings)

    async def run() -> T:
        container = _container(settings)
        try:
            await container.start()
            return await work(container)
        finally:
            await container.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        _store_failed(settings, exc)


def _container(settings: Settings) -> Container:
    try:
        return build_container(settings)
    except SettingsError as exc:
        _fail(str(exc))


def _migrate(settings: Settings) -> Migration:
    if settings.sqlite_path is not None:
        _sqlite_ready(settings, settings.sqlite_path)
    try:
        return migrate(settings)
    except SettingsError as exc:
        _fail(str(exc))
    except (SQLAlchemyError, OSError, StoreError) as exc:
        words = str(exc) if isinstance(exc, StoreError) else in_words(exc)
        if settings.sqlite_path is not None:
            _path_problem(
                settings, f"cannot migrate the SQLite store {settings.sqlite_path} ({words})"
            )
        typer.echo(f"orderhub: cannot migrate the store ({words}); check DATABASE_URL", err=True)
        raise typer.Exit(1) from None


def _port_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on (None if it can): asked before anything
    starts, so a busy port stops `serve` with one line instead of a half-started server."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (socket.gaierror, UnicodeError):
        return f"cannot listen on {host}:{port}: no such address; check HOST"
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use; stop what listens there "
                    "or choose another port (PORT or --port)"
                )
            return f"cannot listen on {host}:{port} ({_reason(exc)}); check HOST and PORT"
    return None


def _check_port(settings: Settings) -> None:
    problem = _port_problem(settings.host, settings.port)
    if problem is not None:
        typer.echo(f"orderhub: {problem}", err=True)
        raise typer.Exit(1)


def _app_for_worker_process(run_worker: bool) -> FastAPI:
    from orderhub.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings, run_worker=run_worker)


def app_with_worker() -> FastAPI:
    """Factory for uvicorn worker processes (`serve --workers N`)."""
    return _app_for_worker_process(run_worker=True)


def app_without_worker() -> FastAPI:
    """Factory for uvicorn worker processes (`serve --workers N --no-worker`)."""
    return _app_for_worker_process(run_worker=False)


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(metavar="HOST", help="bind address (default HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(metavar="PORT", help="port (default PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, metavar="N", help="uvicorn worker processes")] = 1,
    no_worker: Annotated[
        bool, typer.Option("--no-worker", help="do not run the delivery worker in this process")
    ] = False,
) -> None:
    """Serve the HTTP API (and the delivery worker, unless --no-worker)."""
    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    settings = _settings(**overrides)
    if workers > 1 and settings.sqlite_path is not None:
        _fail(
            "DATABASE_URL: --workers needs a scale-out store "
            "(postgresql:// or dynamodb://), not SQLite"
        )
    _check_port(settings)
    created = _with_container(settings, lambda c: c.api_keys.ensure_one_exists(settings.api_keys))
    if created is not None:
        print(
            f"orderhub: created API key '{created.record.name}' (shown once, store it now):\n"
            f"  {created.key}",
            file=sys.stderr,
            flush=True,
        )
    if workers > 1:
        prepare_worker_processes_environment(settings)
        factory = "app_without_worker" if no_worker else "app_with_worker"
        uvicorn.run(
            f"orderhub.cli:{factory}",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        )
        return
    from orderhub.app import create_app

    app = create_app(settings, _container(settings), run_worker=not no_worker)
    structlog.get_logger("orderhub").info(
        "serving",
        url=f"http://{settings.host}:{settings.port}",
        store=settings.database_url.split(":", 1)[0],
        payments=settings.provider_name,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


@cli.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the store's schema (idempotent)."""
    typer.echo(f"orderhub: {_migrate(_settings()).describe()}")


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", metavar="NAME", help="what the key is for")],
) -> None:
    """Create an API key and print it once."""
    settings = _settings()
    created = _with_container(settings, lambda c: c.api_keys.create(name))
    typer.echo(f"id:   {created.record.id}")
    typer.echo(f"name: {created.record.name}")
    typer.echo(f"key:  {created.key}")
    typer.echo("The key is shown only now; orderhub keeps only its hash.", err=True)


@keys_cli.command("list")
def keys_list() -> None:
    """List API keys (never the keys themselves)."""
    settings = _settings()
    records = _with_container(settings, lambda c: c.api_keys.list_all())
    typer.echo(f"{'ID':36}  {'NAME':20}  {'PREFIX':10}  {'CREATED':24}  {'LAST USED':24}  STATE")
    for r in records:
        typer.echo(
            f"{r.id!s:36}  {r.name[:20]:20}  {r.prefix:10}  {iso_ms(r.created_at):24}  "
            f"{(iso_ms(r.last_used_at) if r.last_used_at else '-'):24}  "
            f"{'revoked' if r.revoked_at else 'active'}"
        )


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(metavar="ID", help="the key's id")]) -> None:
    """Revoke an API key."""
    settings = _settings()
    if not _with_container(settings, lambda c: c.api_keys.revoke(key_id)):
        typer.echo(f"orderhub: no active key with id {key_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {key_id}")


@cli.command()
def worker() -> None:
    """Run the delivery worker alone (any number of them may share one store)."""
    settings = _settings()
    _prepare_store(settings)

    async def run() -> None:
        container = _container(settings)
        await container.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await container.run_worker(stop)
        finally:
            await container.close()

    asyncio.run(run())


def _one_of(values: type[StrEnum], help_text: str) -> Any:
    """An option taking one of `values`: help lists them, and anything else is refused
    with a line naming them all."""
    names = [v.value for v in values]

    def check(value: str | None) -> str | None:
        if value is not None and value not in names:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(names)}")
        return value

    return typer.Option(metavar="[" + "|".join(names) + "]", callback=check, help=help_text)


def _delivery_id(value: str | None) -> uuid.UUID | None:
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a delivery id") from None


_DELIVERY_COLUMNS = (("ID", 36), ("ORDER", 36), ("EVENT", 24), ("INTEGRATION", 13), ("STATUS", 9))


def _delivery_row(d: Delivery) -> str:
    return (
        f"{d.id!s:36}  {d.order_id!s:36}  {d.event_type.value:24}  {d.integration.value:13}  "
        f"{d.status.value:9}  {d.attempts:5}  {(d.last_error or '')[:60]}"
    )


@deliveries_cli.command("list")
def deliveries_list(
    status: Annotated[str | None, _one_of(DeliveryStatus, "only deliveries in this state")] = None,
    order: Annotated[str | None, typer.Option("--order", metavar="ID", help="an order id")] = None,
    integration: Annotated[
        str | None, _one_of(Integration, "only deliveries to this integration")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=100, metavar="N", help="deliveries per page (1-100)")
    ] = 50,
    after: Annotated[
        str | None,
        typer.Option(
            metavar="ID",
            help="start after this delivery (the last one of the previous page)",
            callback=_delivery_id,
        ),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="every page, one after the other")] = False,
) -> None:
    """List deliveries, newest first, a page at a time (or --all)."""
    settings = _settings()
    after_id = _delivery_id(after) if isinstance(after, str) else after

    async def show(container: Container) -> uuid.UUID | None:
        """Print the pages; return where the next page would start (None at the end)."""
        start = after_id
        typer.echo("  ".join(f"{h:{w}}" for h, w in _DELIVERY_COLUMNS) + "  TRIES  ERROR")
        while True:
            page = await container.deliveries.list(
                limit=limit,
                last_key=None,
                after=start,
                status=DeliveryStatus(status) if status else None,
                order_id=order,
                integration=Integration(integration) if integration else None,
            )
            for d in page.deliveries:
                typer.echo(_delivery_row(d))
            if not page.has_more or not page.deliveries:
                return None
            start = page.deliveries[-1].id
            if not every:
                return start

    more = _with_container(settings, show)
    if more is not None:
        typer.echo(f"orderhub: more deliveries follow: add --after {more} (or --all)", err=True)


@deliveries_cli.command("retry")
def deliveries_retry(
    delivery_id: Annotated[
        str | None, typer.Argument(metavar="ID", help="the delivery's id (or --all-dead)")
    ] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="every dead delivery (narrowed by the options)")
    ] = False,
    integration: Annotated[
        str | None, _one_of(Integration, "with --all-dead: only deliveries to this integration")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            metavar="DURATION", help="with --all-dead: created since (30m, 24h, 7d or ISO time)"
        ),
    ] = None,
) -> None:
    """Put a dead delivery, or every matching dead one, back in the queue."""
    if all_dead == (delivery_id is not None):
        typer.echo("orderhub: give a delivery id or --all-dead (not both)", err=True)
        raise typer.Exit(2)
    if not all_dead and (integration is not None or since is not None):
        typer.echo("orderhub: --integration and --since go with --all-dead", err=True)
        raise typer.Exit(2)
    settings = _settings()
    try:
        wanted = Integration(integration) if integration else None
    except ValueError as exc:
        typer.echo(f"orderhub: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        if delivery_id is None:
            count = _with_container(
                settings, lambda c: c.deliveries.retry_matching(integration=wanted, since=since)
            )
            typer.echo(f"queued {count} dead {'delivery' if count == 1 else 'deliveries'}")
            return
        delivery = _with_container(settings, lambda c: c.deliveries.retry(delivery_id))
    except AppError as exc:
        typer.echo(f"orderhub: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"queued {delivery.id} ({delivery.integration.value}, {delivery.event_type.value})")


@cli.command()
def reconcile(
    since: Annotated[
        str | None,
        typer.Option(help="look back this far (30m, 24h, 7d; events: 30 days at most)"),
    ] = None,
) -> None:
    """Heal what missed webhooks left behind: read unsettled payments and the provider's
    events, apply what orderhub missed, send unacknowledged refunds again."""
    span = parse_duration(since) if since is not None else None
    if since is not None and span is None:
        typer.echo("orderhub: --since must look like 30m, 24h or 7d", err=True)
        raise typer.Exit(2)
    settings = _settings()
    try:
        run = _with_container(settings, lambda c: c.reconcile.run(span))
    except AppError as exc:
        typer.echo(f"orderhub: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"reconciled: checked {run.checked}, changed {run.changed}, errors {run.errors}")
    if run.error:
        typer.echo(f"orderhub: {run.error}", err=True)
        raise typer.Exit(1)


@cli.command()
def resync(
    integration: Annotated[str, typer.Argument(help="sheets or notifications")],
    since: Annotated[
        str | None, typer.Option(help="orders created since (30m, 24h, 7d or an ISO time)")
    ] = None,
    order: Annotated[str | None, typer.Option("--order", help="only this order id")] = None,
) -> None:
    """Send the current state of orders to the sheet (rebuilding it) or the notifications
    again, through the outbox; the worker delivers them."""
    settings = _settings()
    try:
        count = _with_container(
            settings, lambda c: c.resync.resync(integration, since=since, order_id=order)
        )
    except AppError as exc:
        typer.echo(f"orderhub: {exc.message}", err=True)
        raise typer.Exit(2 if exc.status_code == 400 else 1) from None
    typer.echo(f"queued {count} {integration} {'delivery' if count == 1 else 'deliveries'}")


def main() -> None:
    cli()
