"""What keeps ``expbook ui`` safe on a laptop: one ASGI middleware in front of the app.

The UI has no login, so the browser's same-origin policy is what keeps other web pages out, and
these checks make it hold:

- **Host**: a page on ``evil.example`` can make that name resolve to 127.0.0.1 (DNS rebinding)
  and then read the store through it as "same origin". Its requests carry ``Host:
  evil.example``; only the loopback names, the address the server listens on and the names
  given with ``--allowed-hosts`` are served (400 otherwise).
- **Origin**: a write (POST, PUT, PATCH, DELETE) sent by another site's page carries that
  site's ``Origin`` and is refused (403); scripts and curl send none.
- **Body size**: a request body over ``max_body`` bytes is refused (413) before the app reads
  it, whether or not it declares its length.
- **Headers**: every answer has a Content-Security-Policy (only our own scripts, styles and
  API; no inline script, no framing; no eval but on the compare page) and the usual no-sniff
  and no-framing headers; a policy the app set itself is kept.

Errors are JSON ``{"detail": ...}`` like every other error of the API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a note of ~500 pages; a run page stays small


def content_security_policy(*, allow_eval: bool = False) -> str:
    """The policy of every answer: our own scripts, styles and API only; no inline script, no
    framing. ``allow_eval`` is for the compare page alone: plotly's parallel-coordinates chart
    (WebGL, through regl) compiles its drawing code with ``new Function``, and the plotly
    package ships no bundle without it."""
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'" + (" 'unsafe-eval'" if allow_eval else ""),
            "style-src 'self' 'unsafe-inline'",  # plotly and Swagger UI set style attributes
            "img-src 'self' data:",  # Swagger UI's icons are data: URLs
            "font-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


SECURITY_HEADERS = [
    (b"content-security-policy", content_security_policy().encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def host_name(host: str) -> str | None:
    """The name of a ``Host`` header value, lower case, without its port (``[::1]:5005`` ->
    ``::1``); None when it is not a well-formed host."""
    host = host.strip().lower()
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket:
            return None
    elif host.count(":") == 1:
        name, port = host.split(":")
        rest = f":{port}"
    else:
        name, rest = host, ""
    if rest and not (rest.startswith(":") and rest[1:].isdigit()):
        return None
    name = name.removesuffix(".")  # "localhost." is localhost
    return name or None


class Guard:
    """The checks above, around ``app``.

    Args:
        allowed_hosts: host names or addresses served besides the loopback ones; ``"*"``
            serves every name (behind a proxy that checks them).
        max_body: the largest request body accepted, in bytes.
    """

    def __init__(
        self, app: App, *, allowed_hosts: Iterable[str] = (), max_body: int = MAX_BODY_BYTES
    ) -> None:
        self.app = app
        names = [host_name(host) or host for host in allowed_hosts]
        self.any_host = ANY_HOST in names
        self.hosts = frozenset([*LOOPBACK_HOSTS, *names])
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        refusal = self.refusal(scope["method"], headers)
        if refusal:
            await _error(send, *refusal)
            return
        body = await self.read_body(receive, headers)
        if body is None:
            limit = f"{self.max_body:,}"
            await _error(send, 413, f"the request body is over the limit of {limit} bytes")
            return
        await self.app(scope, _replay(body, receive), send)

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if not self.any_host and host_name(host) not in self.hosts:
            return 400, (
                f"this server does not answer to the host name {host!r} (a page of another "
                "site may be trying to reach it); start it with --allowed-hosts NAME to "
                "use that name"
            )
        origin = headers.get("origin")
        if method not in SAFE_METHODS and origin is not None and not self.same_site(origin, host):
            return 403, f"a change sent by the page of another site ({origin}) is refused"
        return None

    def same_site(self, origin: str, host: str) -> bool:
        """Whether a page at ``origin`` is this UI (as addressed by ``host``)."""
        netloc = urlsplit(origin).netloc.lower()
        if not netloc:
            return False  # "null": a sandboxed frame, a file
        return netloc == host.strip().lower() or (
            not self.any_host and host_name(netloc) in self.hosts
        )

    async def read_body(self, receive: Receive, headers: dict[str, str]) -> list[Message] | None:
        """The request's body messages, or None when they add up to more than allowed."""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            return None
        if not length and "transfer-encoding" not in headers:
            return []
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_body:
                return None
            if message["type"] != "http.request" or not message.get("more_body"):
                return messages


def _with_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {key.lower() for key, _ in message.get("headers", [])}
            extra = [(key, value) for key, value in SECURITY_HEADERS if key not in present]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return send_with_headers


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first returns the body messages already read."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


async def _error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
