from __future__ import annotations

import pytest

from app.core.settings import SettingsError, load_settings, variables


def test_reads_typed_values_into_their_groups() -> None:
    s = load_settings(
        {
            "CATALOG_REPLICA_DSNS": "postgresql://a/x, postgresql://b/x",
            "CATALOG_POOL_MAX_SIZE": "7",
            "CATALOG_RYW_COOKIE_SECURE": "false",
            "CATALOG_RELAY_POLL_INTERVAL_S": "0.5",
            "CATALOG_CACHE_FENCE_TTL_S": "600",
        }
    )
    assert s.replicas.dsns == ("postgresql://a/x", "postgresql://b/x")
    assert s.db.pool_max_size == 7
    assert s.ryw.cookie_secure is False
    assert s.relay.poll_interval_s == 0.5
    assert s.cache.fence_ttl_s == 600


def test_a_multi_host_dsn_is_one_item_of_a_list_and_other_lists_split_at_every_comma() -> None:
    s = load_settings(
        {
            "CATALOG_REPLICA_DSNS": "postgresql://u@h:1,h:2/x?target_session_attrs=standby,postgresql://u@h:2,h:1/x",
            "CATALOG_ADMIN_TOKENS": "one-token-long-enough,two-token-long-enough",
        }
    )
    assert s.replicas.dsns == ("postgresql://u@h:1,h:2/x?target_session_attrs=standby", "postgresql://u@h:2,h:1/x")
    assert len(s.admin_tokens) == 2


def test_overrides_use_the_variable_name_and_win_over_the_environment() -> None:
    s = load_settings({"CATALOG_RELAY_BATCH_SIZE": "10"}, relay_batch_size=20, primary_dsn="postgresql://x/y")
    assert s.relay.batch_size == 20
    assert s.db.primary_dsn == "postgresql://x/y"


def test_an_unknown_override_is_an_error() -> None:
    with pytest.raises(SettingsError, match="relay_bogus"):
        load_settings({}, relay_bogus=1)


def test_every_variable_name_is_unique_and_prefixed() -> None:
    names = list(variables())
    assert len(names) == len(set(names))
    assert all(name.startswith("CATALOG_") for name in names)
    assert {"CATALOG_PRIMARY_DSN", "CATALOG_REPLICA_DSNS", "CATALOG_REDIS_URL", "CATALOG_ADMIN_TOKEN"} <= set(names)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CATALOG_POOL_MAX_SIZE": "lots"}, "CATALOG_POOL_MAX_SIZE"),
        ({"CATALOG_RYW_COOKIE_SECURE": "maybe"}, "CATALOG_RYW_COOKIE_SECURE"),
        ({"CATALOG_LOG_FORMAT": "xml"}, "CATALOG_LOG_FORMAT"),
        ({"CATALOG_RELAY_BATCH_SIZE": "0"}, "CATALOG_RELAY_BATCH_SIZE"),
        ({"CATALOG_POOL_MAX_SIZE": "0"}, "CATALOG_POOL_MAX_SIZE"),
        ({"CATALOG_ACQUIRE_TIMEOUT_MS": "0"}, "CATALOG_ACQUIRE_TIMEOUT_MS"),
        ({"CATALOG_POOL_MIN_SIZE": "2"}, "CATALOG_POOL_MIN_SIZE is gone"),
        ({"CATALOG_RYW_TTL_S": "1", "CATALOG_REPLICA_MAX_LAG_MS": "5000"}, "CATALOG_RYW_TTL_S"),
        ({"CATALOG_ENV": "production"}, "CATALOG_ADMIN_TOKEN"),
        ({"CATALOG_COOKIE_SECURE": "false"}, "CATALOG_RYW_COOKIE_SECURE"),
        ({"CATALOG_ADMIN_TOKENS": "sha256:abc"}, "CATALOG_ADMIN_TOKENS"),
    ],
)
def test_bad_values_fail_with_the_variable_named(env: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names):
        load_settings(env)
