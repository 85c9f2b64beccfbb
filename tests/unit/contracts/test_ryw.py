from __future__ import annotations

from app.contracts.ryw import RywCodec, RywToken

CODEC = RywCodec("a-secret-of-enough-length", ttl_s=30, max_products=3)


def test_round_trip() -> None:
    token = CODEC.after_write(None, lsn=1234, writes=[(7, 2)], now=1000)
    assert CODEC.decode(CODEC.encode(token), now=1001) == RywToken(lsn=1234, expires_at=1030, writes=((7, 2),))


def test_tampered_payload_is_rejected() -> None:
    value = CODEC.encode(CODEC.after_write(None, lsn=1, writes=[(1, 1)], now=1000))
    payload, sig = value.split(".")
    forged = CODEC.encode(RywToken(lsn=999_999, expires_at=1030, writes=((1, 9),))).split(".")[0]
    assert CODEC.decode(f"{forged}.{sig}", now=1001) == "bad_signature"
    assert CODEC.decode(f"{payload}.{sig[:-2]}xx", now=1001) == "bad_signature"
    assert CODEC.decode("garbage", now=1001) == "malformed"


def test_other_secret_is_rejected() -> None:
    other = RywCodec("another-secret-entirely", ttl_s=30, max_products=3)
    value = other.encode(other.after_write(None, lsn=1, writes=[(1, 1)], now=1000))
    assert CODEC.decode(value, now=1001) == "bad_signature"


def test_expired_is_rejected() -> None:
    value = CODEC.encode(CODEC.after_write(None, lsn=1, writes=[(1, 1)], now=1000))
    assert CODEC.decode(value, now=1030) == "expired"


def test_merge_keeps_latest_lsn_and_versions_bounded() -> None:
    token = None
    for pid in range(1, 6):
        token = CODEC.after_write(token, lsn=100 * pid, writes=[(pid, pid + 1)], now=1000)
    assert token is not None
    assert token.writes == ((3, 4), (4, 5), (5, 6))
    assert token.lsn == 500
    again = CODEC.after_write(token, lsn=50, writes=[(4, 9)], now=1000)
    assert again.lsn == 500  # never moves backwards
    assert again.version_of(4) == 9
    assert again.writes[-1] == (4, 9)
