from __future__ import annotations

import pytest

from app.core.settings import SettingsError, load_settings


def test_reads_typed_values_from_the_environment() -> None:
    s = load_settings(
        {
            "CATALOG_REPLICA_DSNS": "postgresql://a/x, postgresql://b/x",
            "CATALOG_POOL_MAX_SIZE": "7",
            "CATALOG_COOKIE_SECURE": "false",
            "CATALOG_RELAY_POLL_INTERVAL_S": "0.5",
        }
    )
    assert s.replica_dsns == ("postgresql://a/x", "postgresql://b/x")
    assert s.pool_max_size == 7
    assert s.cookie_secure is False
    assert s.relay_poll_interval_s == 0.5


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CATALOG_POOL_MAX_SIZE": "lots"}, "CATALOG_POOL_MAX_SIZE"),
        ({"CATALOG_COOKIE_SECURE": "maybe"}, "CATALOG_COOKIE_SECURE"),
        ({"CATALOG_LOG_FORMAT": "xml"}, "log_format"),
        ({"CATALOG_POOL_MIN_SIZE": "9", "CATALOG_POOL_MAX_SIZE": "2"}, "CATALOG_POOL_MIN_SIZE"),
        ({"CATALOG_RYW_TTL_S": "1", "CATALOG_MAX_REPLICA_LAG_MS": "5000"}, "CATALOG_RYW_TTL_S"),
        ({"CATALOG_ENV": "production"}, "CATALOG_ADMIN_TOKEN"),
    ],
)
def test_bad_values_fail_with_the_variable_named(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        load_settings(env)
