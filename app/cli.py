"""The ``catalog`` command: serve, migrate, seed."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from app.core.settings import SettingsError, get_settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()  # fail fast on bad settings, before binding the port
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips="127.0.0.1",
    )
    del settings
    return 0


def _dsn(args: argparse.Namespace) -> str:
    return str(args.dsn or os.environ.get("CATALOG_PRIMARY_DSN") or get_settings().db.primary_dsn)


def _migrate(args: argparse.Namespace) -> int:
    from app.core.migrate import grant_app_role, migrate

    applied = asyncio.run(migrate(_dsn(args)))
    if applied:
        for m in applied:
            print(f"applied {m.version:04d}_{m.name}")
    else:
        print("schema is up to date")
    if args.grant_to:
        password = os.environ.get("CATALOG_APP_DB_PASSWORD") or None
        asyncio.run(grant_app_role(_dsn(args), args.grant_to, password=password))
        print(f"granted table access to role {args.grant_to}")
    if args.seed_if_empty:
        from app.seed.seed import seed

        result = asyncio.run(seed(_dsn(args), products=10_000, categories=16, show_progress=False))
        print("catalog already has products" if result.skipped else f"seeded {result.products} products")
    return 0


def _seed(args: argparse.Namespace) -> int:
    from app.seed.seed import seed

    result = asyncio.run(
        seed(
            _dsn(args),
            products=args.products,
            categories=args.categories,
            seed_value=args.seed,
            only_if_empty=not args.force,
            batch_size=args.batch_size,
            show_progress=sys.stderr.isatty(),
        )
    )
    if result.skipped:
        print("catalog already has products; not seeding (use --force to add more)")
    else:
        print(f"seeded {result.categories} categories, {result.products} products and {result.orders} orders")
    return 0


def _relay(args: argparse.Namespace) -> int:
    import signal

    import uvloop

    from app.core.logging import configure_logging
    from app.core.redis import create_redis
    from app.invalidation.relay import OutboxRelay

    settings = get_settings()
    configure_logging(settings)

    async def run() -> None:
        redis = create_redis(settings.redis, timeout_ms=settings.relay.redis_timeout_ms)
        relay = OutboxRelay(args.name, settings.db.primary_dsn, redis, settings.relay, settings.cache, db=settings.db)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await relay.run(stop)
        finally:
            await redis.aclose()

    uvloop.run(run())  # the loop an instance's relay runs on (uvicorn's)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog", description="Catalog service")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP API (uvicorn + uvloop)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=_serve)

    mig = sub.add_parser("migrate", help="apply pending SQL migrations (a no-op when up to date)")
    mig.add_argument("--dsn", help="superuser/owner DSN (default: $CATALOG_PRIMARY_DSN)")
    mig.add_argument(
        "--grant-to",
        metavar="ROLE",
        help="create/grant the app's least-privilege role (password from $CATALOG_APP_DB_PASSWORD, if set)",
    )
    mig.add_argument("--seed-if-empty", action="store_true", help="then load the demo catalog if it has no products")
    mig.set_defaults(func=_migrate)

    relay = sub.add_parser("relay", help="run the outbox relay alone (app instances also run one)")
    relay.add_argument("--name", default="relay", help="recorded in outbox.processed_by")
    relay.set_defaults(func=_relay)

    sd = sub.add_parser("seed", help="load demo categories and products with COPY")
    sd.add_argument("--dsn", help="DSN (default: $CATALOG_PRIMARY_DSN)")
    sd.add_argument("--products", type=int, default=10_000)
    sd.add_argument("--categories", type=int, default=16)
    sd.add_argument("--seed", type=int, default=42, help="random seed; the same seed gives the same catalog")
    sd.add_argument("--batch-size", type=int, default=20_000)
    sd.add_argument("--force", action="store_true", help="seed even if products exist")
    sd.set_defaults(func=_seed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"catalog: configuration error: {exc}", file=sys.stderr)
        return 2
