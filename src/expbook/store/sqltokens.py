"""API tokens on SQL stores: ``SqlTokens``, the token methods of ``SqlStore``.

A token's secret is ``ebk_`` + ``secrets.token_urlsafe(32)``: 256 random bits. The database keeps
only its sha256 (hex), which is also the key a request's token is looked up by: one indexed
equality query, no secret in the database, nothing to compare in Python. A slow password hash
(bcrypt, scrypt, argon2) protects guessable passwords against a stolen table; a 256-bit random
secret cannot be guessed from its sha256 however fast the hash, and a slow hash would need a
per-token salt, so the secret could no longer be the lookup key (docs/design.md, "The team
server: tokens").
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from expbook.errors import InvalidValueError, StoreError, TokenExistsError, TokenNotFoundError
from expbook.model import TokenRecord
from expbook.store.schema import api_tokens
from expbook.validation import shorten

SECRET_PREFIX = "ebk_"
"""What every secret starts with: it tells a leaked secret for what it is (secret scanners)."""
LAST_USED_EVERY = 60.0
"""Seconds between two writes of a token's ``last_used_at``."""
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_MAX_SECRET = 200
_COLUMNS = [api_tokens.c[name] for name in ("name", "read_only", "created_at", "last_used_at",
                                             "revoked_at")]  # fmt: skip


def check_token_name(name: object) -> str:
    """A token name: 1-64 letters, digits and ``. _ @ -``, starting with a letter or digit
    (a person, a machine, a CI job: ``ana``, ``ci-nightly``, ``gpu-box-3``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidValueError(
            f"invalid token name {shorten(name)}: use 1-64 letters, digits, '.', '_', '@' or "
            "'-', starting with a letter or digit"
        )
    return name


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _record(row: Any) -> TokenRecord:
    return TokenRecord(
        name=row.name, read_only=bool(row.read_only), created_at=row.created_at,
        last_used_at=row.last_used_at, revoked_at=row.revoked_at,
    )  # fmt: skip


class SqlTokens:
    """The token methods of the Store contract, for ``SqlStore`` (which provides ``_write``,
    ``_query`` and ``_insert``)."""

    _write: Callable[..., Any]
    _query: Callable[..., Any]
    _insert: Callable[[sa.Table], Any]

    def create_token(self, name: str, read_only: bool = False) -> tuple[TokenRecord, str]:
        check_token_name(name)
        if not isinstance(read_only, bool):
            raise InvalidValueError(f"read_only {shorten(read_only)} is not a bool")
        secret = new_secret()
        digest = secret_sha256(secret)

        def create(connection: Connection) -> TokenRecord:
            # A retry after a lost COMMIT answer finds its own token (the digest is unique).
            mine = connection.execute(
                sa.select(*_COLUMNS).where(api_tokens.c.secret_sha256 == digest)
            ).first()
            if mine is not None:
                return _record(mine)
            connection.execute(
                api_tokens.delete().where(
                    api_tokens.c.name == name, api_tokens.c.revoked_at.is_not(None)
                )
            )
            row = connection.execute(
                self._insert(api_tokens)
                .values(
                    name=name, secret_sha256=digest, read_only=read_only, created_at=time.time()
                )
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(*_COLUMNS)
            ).first()
            if row is None:
                raise TokenExistsError(
                    f"a token named {name!r} exists; revoke it first (expbook token revoke "
                    f"{name}) or choose another name"
                )
            return _record(row)

        return self._write(create), secret

    def list_tokens(self) -> list[TokenRecord]:
        statement = sa.select(*_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.name)
        return self._query(lambda c: [_record(row) for row in c.execute(statement)])

    def revoke_token(self, name: str) -> TokenRecord:
        check_token_name(name)

        def revoke(connection: Connection) -> TokenRecord:
            connection.execute(
                api_tokens.update()
                .where(api_tokens.c.name == name, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            row = connection.execute(sa.select(*_COLUMNS).where(api_tokens.c.name == name)).first()
            if row is None:
                from expbook.columns import did_you_mean

                names = connection.scalars(sa.select(api_tokens.c.name)).all()
                raise TokenNotFoundError(f"no token named {name!r}{did_you_mean(name, names)}")
            return _record(row)

        return self._write(revoke)

    def check_token(self, secret: str) -> TokenRecord | None:
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
            return None  # not one of ours: no query
        if len(secret) > _MAX_SECRET:
            return None
        digest = secret_sha256(secret)
        statement = sa.select(api_tokens.c.id, *_COLUMNS).where(
            api_tokens.c.secret_sha256 == digest
        )
        row = self._query(lambda connection: connection.execute(statement).first())
        if row is None or row.revoked_at is not None:
            return None
        record = _record(row)
        now = time.time()
        if record.last_used_at is None or now - record.last_used_at >= LAST_USED_EVERY:
            self._note_use(row.id, now)
        return record

    def _note_use(self, pk: int, now: float) -> None:
        """Write ``last_used_at``: bookkeeping, so a database that is busy or refuses the write
        (a read-only replica) does not refuse the request."""
        cutoff = now - LAST_USED_EVERY
        statement = (
            api_tokens.update()
            .where(
                api_tokens.c.id == pk,
                sa.or_(api_tokens.c.last_used_at.is_(None), api_tokens.c.last_used_at < cutoff),
            )
            .values(last_used_at=now)
        )
        with contextlib.suppress(StoreError):
            self._write(lambda connection: connection.execute(statement), timeout=1.0)
