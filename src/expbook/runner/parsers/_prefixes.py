"""Logging prefixes (timestamp, level, logger) before the message of a line."""

from __future__ import annotations

import re

_TIME = r"\[?(?:\d{4}[-/]\d\d[-/]\d\d[ T])?\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?\]?"
_LEVEL = r"\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\]?"
_SEP = r"(?:\s*[-|:]\s*|\s+)"
_LOGURU_PLACE = rf"(?:[\w.<>]+:[\w.<>]+:\d+{_SEP})?"
_LOG_PREFIX = re.compile(
    rf"[IWEF]\d{{4}} \d\d:\d\d:\d\d\.\d+\s+\d+\s+[\w.-]+:\d+\]\s*"  # absl / glog
    rf"|{_TIME}{_SEP}(?:[\w.]+{_SEP}(?={_LEVEL}))?(?:{_LEVEL}(?::[\w.]*:|{_SEP}))?{_LOGURU_PLACE}"
    rf"|{_LEVEL}(?::[\w.]*:|{_SEP}){_LOGURU_PLACE}"
)
_LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "CRITICAL", "FATAL")
_BRACKETED_LEVELS = tuple(f"[{level}" for level in _LEVELS)


def _may_have_prefix(line: str) -> bool:
    """Cheap test of the first characters, to spare the regex for "Epoch 3", "[Epoch 3]"..."""
    first, second = line[:1], line[1:2]
    if first.isdigit() or (first == "[" and second.isdigit()):
        return True  # a timestamp
    if first in "IWEF" and second.isdigit():
        return True  # absl: I1121 12:30:01.123456 ...
    return line.startswith(_LEVELS) or line.startswith(_BRACKETED_LEVELS)


def strip_log_prefix(line: str) -> str:
    """Remove a leading logging prefix: timestamp, level, logger name or source location.

    Handles the usual shapes: ``2026-11-21 12:30:01,123 - INFO - ``, ``INFO:root:``,
    ``[INFO] ``, loguru's ``... | INFO | module:function:42 - `` and absl's
    ``I1121 12:30:01.123456 140 train.py:12] ``.

    Args:
        line: One line of output.

    Returns:
        The message after the prefix, or ``line`` itself when it has none.
    """
    if not _may_have_prefix(line):
        return line
    match = _LOG_PREFIX.match(line)
    return line[match.end() :] if match else line
