"""The `orderhub` command (SPEC §1): serve, migrate, keys."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, NoReturn, TypeVar

import structlog
import typer
import uvicorn
from fastapi import FastAPI
from sqlalchemy.exc import SQLAlchemyError

from orderhub.bootstrap import Container, build_container, migrate
from orderhub.delivery.model import DeliveryStatus, Integration
from orderhub.kit.clock import iso_ms
from orderhub.kit.errors import AppError
from orderhub.kit.failures import in_words
from orderhub.kit.logging import configure_logging
from orderhub.settings import Settings, SettingsError, load_settings
from orderhub.store.protocol import StoreError

T = TypeVar("T")

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="orderhub service")
keys_cli = typer.Typer(no_args_is_help=True, help="API keys kept hashed in the store")
cli.add_typer(keys_cli, name="keys")
deliveries_cli = typer.Typer(no_args_is_help=True, help="Inspect and replay side-effect deliveries")
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


def _with_container(settings: Settings, work: Callable[[Container], Awaitable[T]]) -> T:
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
        typer.echo(f"orderhub: the store does not answer ({exc}); check DATABASE_URL", err=True)
        raise typer.Exit(1) from None


def _container(settings: Settings) -> Container:
    try:
        return build_container(settings)
    except SettingsError as exc:
        _fail(str(exc))


def _migrate(settings: Settings) -> None:
    try:
        migrate(settings)
    except SettingsError as exc:
        _fail(str(exc))
    except (SQLAlchemyError, OSError) as exc:
        typer.echo(
            f"orderhub: cannot migrate the store ({in_words(exc)}); check DATABASE_URL",
            err=True,
        )
        raise typer.Exit(1) from None


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
    host: Annotated[str | None, typer.Option(help="bind address (default HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default PORT)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
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
        _fail("DATABASE_URL: --workers needs a scale-out store (postgresql://), not SQLite")
    if settings.sqlite_path is not None:
        _migrate(settings)
    created = _with_container(settings, lambda c: c.api_keys.ensure_one_exists(settings.api_keys))
    if created is not None:
        print(
            f"orderhub: created API key '{created.record.name}' (shown once, store it now):\n"
            f"  {created.key}",
            file=sys.stderr,
            flush=True,
        )
    if workers > 1:
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
    _migrate(_settings())
    typer.echo("orderhub: store is up to date")


@keys_cli.command("create")
def keys_create(name: Annotated[str, typer.Option("--name", help="what the key is for")]) -> None:
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
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
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
    if settings.sqlite_path is not None:
        _migrate(settings)

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


@deliveries_cli.command("list")
def deliveries_list(
    status: Annotated[
        str | None, typer.Option(help="pending, in_flight, delivered or dead")
    ] = None,
    order: Annotated[str | None, typer.Option("--order", help="an order id")] = None,
    integration: Annotated[str | None, typer.Option(help="email, sheets or notifications")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 50,
) -> None:
    """List deliveries, newest first."""
    settings = _settings()
    try:
        wanted_status = DeliveryStatus(status) if status else None
        wanted_integration = Integration(integration) if integration else None
    except ValueError as exc:
        typer.echo(f"orderhub: {exc}", err=True)
        raise typer.Exit(2) from None
    page = _with_container(
        settings,
        lambda c: c.deliveries.list(
            limit=limit,
            last_key=None,
            status=wanted_status,
            order_id=order,
            integration=wanted_integration,
        ),
    )
    header = ("ID", "ORDER", "EVENT", "INTEGRATION", "STATUS")
    widths = (36, 36, 24, 13, 9)
    typer.echo(
        "  ".join(f"{h:{w}}" for h, w in zip(header, widths, strict=True)) + "  TRIES  ERROR"
    )
    for d in page.deliveries:
        typer.echo(
            f"{d.id!s:36}  {d.order_id!s:36}  {d.event_type.value:24}  {d.integration.value:13}  "
            f"{d.status.value:9}  {d.attempts:5}  {(d.last_error or '')[:60]}"
        )


@deliveries_cli.command("retry")
def deliveries_retry(
    delivery_id: Annotated[
        str | None, typer.Argument(help="the delivery's id (or --all-dead)")
    ] = None,
    all_dead: Annotated[
        bool, typer.Option("--all-dead", help="every dead delivery (narrowed by the options)")
    ] = False,
    integration: Annotated[
        str | None, typer.Option(help="with --all-dead: email, sheets or notifications")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="with --all-dead: created since (30m, 24h, 7d or ISO time)")
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


def main() -> None:
    cli()
