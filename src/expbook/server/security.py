"""What keeps ``expbook ui`` safe on a laptop and ``expbook server`` safe for a team: one ASGI
middleware in front of the app.

``expbook ui`` has no login, so the browser's same-origin policy is what keeps other web pages
out, and these checks make it hold:

- **Host**: a page on ``evil.example`` can make that name resolve to 127.0.0.1 (DNS rebinding)
  and then read the store through it as "same origin". Its requests carry ``Host:
  evil.example``; only the loopback names, the address the server listens on and the names
  given with ``--allowed-hosts`` are served (400 otherwise).
- **Origin**: a write (POST, PUT, PATCH, DELETE) sent by another site's page carries that
  site's ``Origin`` and is refused (403); scripts and curl send none.
- **Body size**: a request body over ``max_body`` bytes (or the limit ``BODY_LIMITS`` gives its
  path) is refused (413) before the app reads it, whether or not it declares its length. Paths
  in ``STREAMED`` (uploads) reach the app as they arrive, never held in memory here, and are cut
  off with 413 at their own cap.
- **Headers**: every answer has a Content-Security-Policy (only our own scripts, styles and
  API; no inline script, no framing; no eval but on the compare page) and the usual no-sniff
  and no-framing headers; a policy the app set itself is kept.

With ``tokens`` (``expbook server``), every request also needs an API token (``expbook token``):

- **Who**: ``Authorization: Bearer TOKEN``, or HTTP Basic with the token as the password and any
  user name (how MLflow clients send ``MLFLOW_TRACKING_TOKEN`` and
  ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``, and the only way a browser can: a 401 carries
  ``WWW-Authenticate: Basic realm="expbook"``, so the browser asks for it and sends it with
  every later request to the server, the pages' own API calls included). No token, an unknown
  or a revoked one: 401. The token is put in ``scope["expbook.token"]`` (None without auth).
- **What**: a read-only token (and any caller of a ``--read-only`` server) may use GET, HEAD
  and OPTIONS, and POST only to paths at or below one of ``READ_POSTS`` (requests that read,
  like a search with a body); any other change is 403. Prefixes match whole path segments.
- **Cache**: a verified token is trusted for ``TOKEN_CACHE_SECONDS`` (``$EXPBOOK_TOKEN_CACHE``)
  per server process, so a revoked token still works for at most that long; a token check is a
  query to the store's database, run in a worker thread (docs/design.md, "The team server").

Errors are JSON ``{"detail": ...}`` like every other error of the API.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from expbook.model import TokenRecord
    from expbook.store.base import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"
MAX_BODY_BYTES = 1 << 20  # 1 MiB: a note of ~500 pages; a run page stays small

READ_POSTS: set[str] = set()
"""Path prefixes whose POSTs only read (a search with a body): a read-only token may send them.
Each part of the server adds its own when it installs its routes."""
BODY_LIMITS: dict[str, int] = {}
"""Path prefix -> the largest body (bytes) its requests may have, read before the app runs;
other paths get ``MAX_BODY_BYTES``. The longest matching prefix counts."""
STREAMED: dict[str, int] = {}
"""Path prefix -> the largest body (bytes) of uploads that reach the app as they arrive (never
held in memory here); over it the request is cut off with 413."""
TOKEN_CACHE_SECONDS = 5.0
"""How long a server process trusts a token it verified (``$EXPBOOK_TOKEN_CACHE`` overrides):
a revoked token keeps working this long at most."""
REALM = "expbook"
CHALLENGES = [  # one header each: a browser picks Basic, the one it can answer
    (b"www-authenticate", f'Basic realm="{REALM}", charset="UTF-8"'.encode()),
    (b"www-authenticate", f'Bearer realm="{REALM}"'.encode()),
]
TOKEN_SCOPE_KEY = "expbook.token"


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
        max_body: the largest request body accepted, in bytes, where ``BODY_LIMITS`` and
            ``STREAMED`` say nothing.
        tokens: the store whose API tokens every request must carry (``expbook server``);
            None serves without tokens (``expbook ui``).
        read_only: refuse every change, as for a read-only token.
    """

    def __init__(
        self, app: App, *, allowed_hosts: Iterable[str] = (), max_body: int = MAX_BODY_BYTES,
        tokens: Store | None = None, read_only: bool = False,
    ) -> None:  # fmt: skip
        self.app = app
        names = [host_name(host) or host for host in allowed_hosts]
        self.any_host = ANY_HOST in names
        self.hosts = frozenset([*LOOPBACK_HOSTS, *names])
        self.max_body = max_body
        self.tokens = None if tokens is None else TokenCache(tokens)
        self.read_only = read_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]
        }
        refusal = self.refusal(scope["method"], headers)
        if refusal is None and self.tokens is not None:
            refusal = await self.authenticate(scope, headers)
        if refusal is None:
            refusal = self.permission(scope)
        if refusal:
            await _error(send, *refusal)
            return
        limit, streamed = self.body_limit(scope["path"])
        if streamed:
            await self.stream(scope, receive, send, headers, limit)
            return
        body = await self.read_body(receive, headers, limit)
        if body is None:
            await _too_large(send, limit)
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

    async def authenticate(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | tuple[int, str] | None:
        """Put the request's token in the scope, or say why it gets none: 401 with the
        challenges, or 503 when the database cannot say."""
        secret = token_of(headers.get("authorization", ""))
        if secret is None:
            return (
                401,
                (
                    "this server needs an API token: send it as 'Authorization: Bearer TOKEN' "
                    "(EXPBOOK_TOKEN) or as the password of HTTP Basic; create one with "
                    "'expbook token create NAME' where the server's database is"
                ),
                CHALLENGES,
            )
        from expbook.errors import StoreError

        assert self.tokens is not None
        try:
            record = await self.tokens.check(secret)
        except StoreError as exc:
            return 503, f"cannot check the API token now: {exc}"
        if record is None:
            return 401, "the API token is not valid (unknown, or revoked)", CHALLENGES
        scope[TOKEN_SCOPE_KEY] = record
        return None

    def permission(self, scope: Scope) -> tuple[int, str] | None:
        """403 for a change by a read-only token (or on a read-only server)."""
        token = scope.setdefault(TOKEN_SCOPE_KEY, None)
        method, path = scope["method"], scope["path"]
        if method in SAFE_METHODS or any(under(path, prefix) for prefix in tuple(READ_POSTS)):
            return None
        if token is not None and token.read_only:
            return 403, f"the API token {token.name!r} is read-only: {method} {path} is refused"
        if self.read_only:
            return 403, "this server is read-only (started with --read-only)"
        return None

    def body_limit(self, path: str) -> tuple[int, bool]:
        """The largest body a request to ``path`` may have, and whether it is streamed."""
        streamed = _longest_prefix(STREAMED, path)
        if streamed is not None:
            return STREAMED[streamed], True
        limited = _longest_prefix(BODY_LIMITS, path)
        return (self.max_body if limited is None else BODY_LIMITS[limited]), False

    def same_site(self, origin: str, host: str) -> bool:
        """Whether a page at ``origin`` is this UI (as addressed by ``host``)."""
        netloc = urlsplit(origin).netloc.lower()
        if not netloc:
            return False  # "null": a sandboxed frame, a file
        return netloc == host.strip().lower() or (
            not self.any_host and host_name(netloc) in self.hosts
        )

    async def read_body(
        self, receive: Receive, headers: dict[str, str], limit: int | None = None
    ) -> list[Message] | None:
        """The request's body messages, or None when they add up to more than allowed."""
        limit = self.max_body if limit is None else limit
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            return None
        if not length and "transfer-encoding" not in headers:
            return []
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > limit:
                return None
            if message["type"] != "http.request" or not message.get("more_body"):
                return messages

    async def stream(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], cap: int
    ) -> None:
        """Pass the body to the app as it arrives; past ``cap`` bytes the app reads a
        disconnect, its answer is dropped and the client gets 413."""
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > cap:
            await _too_large(send, cap)
            return
        over, started, size = False, False, 0

        async def counted() -> Message:
            nonlocal over, size
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            size += len(message.get("body", b""))
            if size > cap:
                over = True
                return {"type": "http.disconnect"}
            return message

        async def sent(message: Message) -> None:
            nonlocal started
            if over and not started:
                return  # the answer of an app that read a cut-off body
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, sent)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await _too_large(send, cap)


class TokenCache:
    """Verified tokens of one server process, each trusted for ``seconds``; the check itself
    (``Store.check_token``, a database query) runs in a worker thread."""

    SIZE = 10_000  # tokens remembered at most: past it, the cache starts again

    def __init__(self, store: Store, seconds: float | None = None) -> None:
        self.store = store
        if seconds is None:
            seconds = float(os.environ.get("EXPBOOK_TOKEN_CACHE", TOKEN_CACHE_SECONDS))
        self.seconds = seconds
        self.known: dict[str, tuple[float, TokenRecord]] = {}

    async def check(self, secret: str) -> TokenRecord | None:
        """The token's record, or None: unknown or revoked (``StoreError``: cannot say)."""
        from starlette.concurrency import run_in_threadpool

        now = time.monotonic()
        known = self.known.get(secret)
        if known is not None and known[0] > now:
            return known[1]
        record = await run_in_threadpool(self.store.check_token, secret)
        if record is None or self.seconds <= 0:
            self.known.pop(secret, None)
            return record
        if len(self.known) >= self.SIZE:
            self.known.clear()
        self.known[secret] = (now + self.seconds, record)
        return record


def token_of(authorization: str) -> str | None:
    """The token an ``Authorization`` header carries: ``Bearer TOKEN``, or HTTP Basic with the
    token as the password (any user name) or, with an empty password, as the user name."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, _, password = decoded.partition(":")
    return password or user or None


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, segment by segment: ``/api/store/read``
    covers ``/api/store/read`` and ``/api/store/read/x``, not ``/api/store/readme``."""
    return path.startswith(prefix) and (
        len(path) == len(prefix) or prefix.endswith("/") or path[len(prefix)] == "/"
    )


def _longest_prefix(prefixes: Mapping[str, int], path: str) -> str | None:
    matching = [prefix for prefix in tuple(prefixes) if under(path, prefix)]
    return max(matching, key=len) if matching else None


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


async def _too_large(send: Send, limit: int) -> None:
    await _error(send, 413, f"the request body is over the limit of {limit:,} bytes")


_MLFLOW_CODES = {
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "ENDPOINT_NOT_FOUND",
    503: "TEMPORARILY_UNAVAILABLE",
}


async def _error(
    send: Send,
    status: int,
    detail: str,
    extra: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    # ``detail`` for expbook's clients and pages; ``error_code`` and ``message`` as the MLflow
    # tracking API answers, so an MLflow client raises UNAUTHENTICATED, not INTERNAL_ERROR
    code = _MLFLOW_CODES.get(status, "INVALID_PARAMETER_VALUE")
    body = json.dumps({"detail": detail, "error_code": code, "message": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
