"""Input hygiene in one place: what any text may contain, strict JSON bodies, and field paths.

No input reaches the database unchecked: request bodies are decoded strictly (``"12"`` is not an
integer) into their schema before a handler runs; every text field and query string refuses NUL,
control characters and lone surrogates (Postgres rejects NUL in text, and a lone surrogate
cannot be encoded as UTF-8); and the database errors that can still only mean "bad input"
(a value out of a column's range, text the server cannot take) are 400s, not 500s
(core/problems.py).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
from litestar import Request
from litestar.exceptions import ValidationException

# Characters no text field may hold: C0 controls but tab/newline/carriage return, and DEL.
# One-line fields (names, search words) refuse tab and newlines too. (Unpaired surrogates never get
# this far: the JSON decoder refuses them, and a query string cannot carry one. Leaving them out of
# the pattern keeps it a regex every JSON Schema tool can use.)
_NOT_TEXT = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_NOT_LINE = r"\x00-\x1f\x7f"
TEXT_PATTERN = f"^[^{_NOT_TEXT}]*$"
LINE_PATTERN = f"^[^{_NOT_LINE}]*$"
# One line holding at least one character that is not white space (a search must search for something).
WORDS_PATTERN = rf"^[^{_NOT_LINE}]*[^\s{_NOT_LINE}][^{_NOT_LINE}]*$"
TEXT_RULE = "no NUL, control characters or unpaired surrogates"


# A database error that can only come from the value a client sent (the schemas should have
# stopped it; this is the net under them).
BAD_INPUT_ERRORS: tuple[type[Exception], ...] = (
    asyncpg.exceptions.DataError,  # 22xxx: out of range, invalid text representation, NUL in text
    asyncpg.exceptions.CharacterNotInRepertoireError,
    asyncpg.exceptions.UntranslatableCharacterError,
    asyncpg.exceptions._base.DataError,  # client side: a value the column type cannot take
)

_AT = re.compile(r" - at `\$(.*)`$")
_NAMED = re.compile(r"(?:unknown|missing required) field `([^`]+)`")


def field_error(message: str, source: str = "body") -> dict[str, Any]:
    """``{"field", "message", "source"}`` from a msgspec message, the field written as a path.

    ``Object missing required field `price` - at `$.items[0]``` → ``items[0].price``.
    """
    path = ""
    match = _AT.search(message)
    if match:
        path, message = match.group(1).lstrip("."), message[: match.start()]
    named = _NAMED.search(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    return {"field": path or None, "message": message, "source": source}


def strict_body(schema: type[Any]) -> Callable[[Request[Any, Any, Any]], Awaitable[None]]:
    """A ``before_request`` hook: the body must decode into ``schema`` strictly, or it is a 400.

    Litestar converts bodies leniently (strings to numbers); a money and stock API must not.
    The decoded value is not kept: the handler still receives Litestar's (now equal) value.
    """
    decoder = msgspec.json.Decoder(schema, strict=True)

    async def check(request: Request[Any, Any, Any]) -> None:
        body = await request.body()
        try:
            decoder.decode(body)
        except msgspec.ValidationError as exc:
            if "got `float`" not in str(exc):
                raise ValidationException("the request body is not valid", extra=[field_error(str(exc))]) from None
            _integral_floats_only(body, schema)  # JSON Schema's integer includes 3.0; so do we
        except msgspec.DecodeError as exc:
            raise ValidationException("the request body is not JSON", extra=[field_error(str(exc))]) from None

    return check


def _integral_floats_only(body: bytes, schema: type[Any]) -> None:
    """Accept ``3.0`` where an integer is expected (JSON Schema calls it one), nothing looser."""
    try:
        value = _integers(msgspec.json.decode(body))
        msgspec.convert(value, schema, strict=True)
    except RecursionError:
        raise ValidationException("the request body is nested too deeply") from None
    except msgspec.ValidationError as exc:
        raise ValidationException("the request body is not valid", extra=[field_error(str(exc))]) from None


def _integers(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, list):
        return [_integers(v) for v in value]
    if isinstance(value, dict):
        return {k: _integers(v) for k, v in value.items()}
    return value
