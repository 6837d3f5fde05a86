"""Tokens for servers: ``EXPBOOK_TOKEN``, else what ``expbook login URL`` saved.

The file is ``$XDG_CONFIG_HOME/expbook/credentials.json`` (``~/.config/expbook/...``), mode
0600, ``{"https://host:port": {"token": "ebk_..."}}``. Standard library only.
"""

from __future__ import annotations

import json
import os


def credentials_path() -> str:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config, "expbook", "credentials.json")


def normalized(url: str) -> str:
    return url.rstrip("/")


def _saved() -> dict[str, dict[str, str]]:
    try:
        with open(credentials_path()) as file:
            data = json.load(file)
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def token_for(url: str) -> str | None:
    """The token to send to the server at ``url``: ``EXPBOOK_TOKEN``, else the saved one."""
    explicit = os.environ.get("EXPBOOK_TOKEN")
    if explicit:
        return explicit.strip()
    entry = _saved().get(normalized(url))
    token = entry.get("token") if isinstance(entry, dict) else None
    return token or None


def save_token(url: str, token: str) -> str:
    """Remember ``token`` for ``url`` (readable by this user only); returns the file."""
    data = _saved()
    data[normalized(url)] = {"token": token}
    return _write(data)


def _write(data: dict[str, dict[str, str]]) -> str:
    """Replace the file with ``data``, readable by this user only; returns its path."""
    path = credentials_path()
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(data, file, indent=2)
    os.replace(temporary, path)
    return path
