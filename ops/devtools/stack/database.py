"""The demo database on the primary: created, migrated, opened to the app role, seeded once."""

from __future__ import annotations

from devtools.stack.config import APP_ROLE, DB_NAME, StackConfig
from devtools.stack.system import Host


async def prepare_database(config: StackConfig, host: Host) -> None:
    # Imported here: only `up` needs the database drivers and the seeder.
    import asyncpg

    from app.core.migrate import create_database, grant_app_role, migrate
    from app.seed.seed import seed

    dsn = await create_database(config.superuser_dsn(config.primary_port, "postgres"), DB_NAME)
    applied = await migrate(dsn)
    for m in applied:
        host.say(f"  migrated {m.version:04d}_{m.name}")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    finally:
        await conn.close()
    await grant_app_role(dsn, APP_ROLE)
    result = await seed(dsn, products=config.products, categories=config.categories, show_progress=not host.quiet)
    if not result.skipped:
        host.say(f"  seeded {result.categories} categories, {result.products} products, {result.orders} orders")
