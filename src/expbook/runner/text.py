"""Turn a program's raw output bytes into the complete lines a text log should keep.

The recorder reads a child's output from a pipe or a pseudo-terminal, in chunks that split lines,
UTF-8 characters and escape sequences anywhere. :class:`LineAssembler` puts them back together
and replays what a terminal would do with the few controls that rewrite a line:

* ``\\n``, ``\\r\\n`` (and ``\\r\\r\\n``, which a pseudo-terminal makes of a program's ``\\r\\n``)
  end a line, also when the ``\\r`` and the ``\\n`` arrive in different chunks;
* a lone ``\\r`` followed by more text starts the line again: only the text after the last one is
  kept, so a tqdm, Keras or cargo progress bar redrawn a thousand times is stored once, in its
  final state (with ``redraws=True``, each state it overwrote comes too, as a :class:`Redraw`:
  a bar's postfix may show a value in one redraw only, and the parsers must see it);
* ``\\b`` deletes the character before it;
* colours (SGR, ``ESC [ ... m``) and hyperlinks (``ESC ] 8 ; ...``) are kept, while the escape
  sequences that move the cursor, erase, switch modes or set the window title are dropped,
  since a text log cannot replay them.

Memory stays bounded: a line longer than ``max_line`` characters comes out in pieces of
``max_line`` characters, so a program that redraws a progress bar for hours without a newline
costs at most one line (plus one chunk) of memory.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["LineAssembler", "Redraw", "strip_ansi"]

# Every escape sequence: CSI (ESC [ params final), OSC (ESC ] text, ended by BEL or ESC \, or by
# the end of the text when cut short) and the two-character forms (ESC 7, ESC ( B, ESC M...).
_ANY_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b\n]*(?:\x07|\x1b\\)?|[ -/]*[0-~])"
)

# The sequences a text log cannot replay: CSI other than SGR ("m"), OSC other than hyperlinks
# (OSC 8), and two-character forms. "[", "]" and "\" are left out of the last class so that an
# unfinished CSI/OSC is not half-eaten and the ESC \ ending a kept hyperlink survives.
_DROPPED_ESCAPE = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-ln-~]|\](?!8;)[^\x07\x1b\n]*(?:\x07|\x1b\\)|[ -/]*[0-Z^-~])"
)

# An escape sequence cut off by the end of a chunk: held back until the next chunk completes it.
_UNFINISHED_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b\n]*\x1b?|[ -/]*)\Z")
_ESCAPE_WINDOW = 4096  # longest unfinished sequence held back; a longer one passes as text

# For backspace: a kept escape sequence is one unit that "\b" steps over, not into.
_BACKSPACE_UNIT = re.compile(r"\x1b\[[0-?]*[ -/]*m|\x1b\]8;[^\x07\x1b]*(?:\x07|\x1b\\)|.", re.S)


def strip_ansi(text: str) -> str:
    """Remove every ANSI/VT100 escape sequence (CSI, OSC and two-character ``ESC x`` forms).

    Args:
        text: Text that may contain escape sequences.

    Returns:
        The text without them; ``text`` itself when it has no ESC character.
    """
    if "\x1b" not in text:
        return text
    return _ANY_ESCAPE.sub("", text)


class Redraw(str):
    """A state of a line that a lone ``\\r`` overwrote (a progress bar's earlier drawing): for
    the parsers to read, not for the text log. A blank one is a bar being cleared (``tqdm.write``
    clears the bar, prints its message and draws the bar again)."""

    __slots__ = ()


class LineAssembler:
    """Feed raw output bytes; get back complete, readable lines.

    Not thread-safe: one assembler per output stream, fed by one reader.

    Args:
        max_line: The longest line kept whole, in characters; longer lines are returned in pieces
            of this length. Must be at least 1.
        redraws: Also return each overwritten state of a line, as a :class:`Redraw`, before the
            line (or the next state) that replaced it; :attr:`redrawn` says whether the last
            :meth:`feed` or :meth:`flush` returned any.

    Raises:
        ValueError: If ``max_line`` is less than 1.
    """

    def __init__(self, max_line: int = 1 << 20, *, redraws: bool = False) -> None:
        if max_line < 1:
            raise ValueError(f"max_line must be at least 1, not {max_line}")
        self._max = max_line
        self._redraws = redraws
        self.redrawn = False
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # the unfinished line, settled; may end in one unresolved "\r"
        self._escape = ""  # an escape sequence cut off at the end of the last chunk

    def feed(self, data: bytes) -> list[str]:
        """Take the next chunk of output.

        Args:
            data: Raw bytes, cut anywhere (inside a line, a character or an escape sequence).

        Returns:
            The lines this chunk completed, in order, without their line endings.
        """
        return self._consume(self._decoder.decode(data))

    def pending(self) -> str:
        """Return the unfinished last line as a terminal would show it now (for display)."""
        return self._pending.rstrip("\r")

    def flush(self) -> list[str]:
        """End the output: return what is left as lines and reset the assembler.

        An incomplete UTF-8 character at the end becomes U+FFFD; an unfinished escape sequence is
        dropped; the unfinished last line is returned as a line if it is not empty.

        Returns:
            The remaining lines (possibly none).
        """
        lines = self._consume(self._decoder.decode(b"", final=True))
        last = self._pending.rstrip("\r")
        if last:
            lines.append(last)
        self._decoder.reset()
        self._pending = ""
        self._escape = ""
        return lines

    def _consume(self, text: str) -> list[str]:
        self.redrawn = False
        if self._escape:
            text = self._escape + text
            self._escape = ""
        if "\x1b" in text:
            text = self._filter_escapes(text)
        parts, overwrites = _split_lines(text)
        if len(parts) == 1:
            lines: list[str] = []
            self._pending = self._settle(self._pending + text, lines)
            return lines
        lines = self._finish(self._pending + parts[0])
        middle = parts[1:-1]
        if overwrites:
            if self._redraws:
                kept: list[str] = []
                for line in middle:
                    kept.append(self._overwrite(line, kept))  # after the states it replaced
                middle = kept
            else:
                middle = [_overwrite(line) for line in middle]
        if len(text) > self._max and any(len(line) > self._max for line in middle):
            for line in middle:
                lines.extend(self._finish(line))
        else:
            lines.extend(middle)
        self._pending = self._settle(parts[-1], lines)
        return lines

    def _filter_escapes(self, text: str) -> str:
        unfinished = _UNFINISHED_ESCAPE.search(text, max(0, len(text) - _ESCAPE_WINDOW))
        if unfinished:
            self._escape = unfinished.group()
            text = text[: unfinished.start()]
        return _DROPPED_ESCAPE.sub("", text)

    def _overwrite(self, line: str, out: list[str]) -> str:
        """:func:`_overwrite`, appending each overwritten state that is not empty to ``out`` as a
        :class:`Redraw` when redraws are asked for."""
        if not self._redraws or "\r" not in line:
            return _overwrite(line)
        *states, line = line.split("\r")
        for state in states:
            if "\b" in state:
                state = _apply_backspaces(state)
            if state:
                out.append(Redraw(state))
                self.redrawn = True
        return _apply_backspaces(line) if "\b" in line else line

    def _finish(self, raw: str) -> list[str]:
        """Return a completed line (its ending already removed) as one or more pieces."""
        redrawn: list[str] = []
        line = self._overwrite(raw.rstrip("\r"), redrawn)
        if redrawn:
            return [*redrawn, *self._finish(line)]
        size = self._max
        if len(line) <= size:
            return [line]
        return [line[i : i + size] for i in range(0, len(line), size)]

    def _settle(self, raw: str, lines: list[str]) -> str:
        """Apply overwrites to the unfinished line; emit full pieces; return the new pending."""
        tail = ""
        if raw.endswith("\r"):  # lone or the first half of "\r\n": decided by the next chunk
            raw = raw.rstrip("\r")
            tail = "\r"
        line = self._overwrite(raw, lines)
        size = self._max
        if len(line) > size:
            cut = (len(line) - 1) // size * size  # leaves 1..size characters pending
            lines.extend(line[i : i + size] for i in range(0, cut, size))
            line = line[cut:]
        return line + tail


def _split_lines(text: str) -> tuple[list[str], bool]:
    """Split at line endings; also say whether lone "\r" or "\b" may need applying."""
    if "\r" not in text:
        return text.split("\n"), "\b" in text
    crlf = text.count("\r\n")
    if not crlf:  # progress bars redrawn with "\r"
        return text.split("\n"), True
    if crlf == text.count("\n") == text.count("\r"):  # a terminal's plain lines
        return text.split("\r\n"), "\b" in text
    text = text.replace("\r\n", "\n")
    while "\r\n" in text:  # "\r\r\n"; the "\r"s left are lone ones (or end the chunk)
        text = text.replace("\r\n", "\n")
    return text.split("\n"), True


def _overwrite(line: str) -> str:
    """Apply lone carriage returns and backspaces to a line without line endings."""
    if "\r" in line:
        line = line[line.rfind("\r") + 1 :]
    if "\b" in line:
        line = _apply_backspaces(line)
    return line


def _apply_backspaces(line: str) -> str:
    kept: list[str] = []
    for unit in _BACKSPACE_UNIT.findall(line):
        if unit != "\b":
            kept.append(unit)
            continue
        for i in range(len(kept) - 1, -1, -1):  # the last character that is not a sequence
            if not kept[i].startswith("\x1b"):
                del kept[i]
                break
    return "".join(kept)
