"""The two ceilings the cached product GET is compared against (``ops/bench http``).

- :func:`bare_litestar`: Litestar's hello world, one async handler returning a small JSON body,
  no middleware, no dependencies: what the framework itself costs per request.
- :func:`raw_asgi`: the same body from a bare ASGI callable: what the server (uvicorn, uvloop,
  httptools) costs per request; nothing written in Python can answer much faster.

Both run under the same server command and flags as the service (``devtools.bench.http``).
"""

from __future__ import annotations

from typing import Any

from litestar import Litestar, get

HELLO_PATH = "/hello"
_BODY = b'{"hello":"world"}'


@get(HELLO_PATH)
async def hello() -> dict[str, str]:
    return {"hello": "world"}


def bare_litestar() -> Litestar:
    return Litestar(route_handlers=[hello])


_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())],
}
_BODY_MESSAGE = {"type": "http.response.body", "body": _BODY}


def raw_asgi() -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send(_START)
        await send(_BODY_MESSAGE)

    return app
