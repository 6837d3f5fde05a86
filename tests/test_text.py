"""LineAssembler and strip_ansi: raw terminal bytes to the lines a text log keeps."""

from __future__ import annotations

import pytest

from expbook.runner.text import LineAssembler, Redraw, strip_ansi

ESC = "\x1b"


def assemble(*chunks: bytes, max_line: int = 1 << 20) -> list[str]:
    """Feed every chunk, then flush; return all the lines."""
    assembler = LineAssembler(max_line=max_line)
    lines: list[str] = []
    for chunk in chunks:
        lines.extend(assembler.feed(chunk))
    return lines + assembler.flush()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# --- line endings ---------------------------------------------------------------------------


def test_newlines_end_lines_and_the_last_line_waits_for_flush() -> None:
    assembler = LineAssembler()
    assert assembler.feed(b"one\ntwo\nthr") == ["one", "two"]
    assert assembler.pending() == "thr"
    assert assembler.feed(b"ee") == []
    assert assembler.flush() == ["three"]
    assert assembler.flush() == []


def test_empty_lines_are_kept() -> None:
    assert assemble(b"a\n\n\nb\n") == ["a", "", "", "b"]


def test_crlf_ends_a_line_like_lf() -> None:
    assert assemble(b"epoch 1\r\nepoch 2\r\n") == ["epoch 1", "epoch 2"]


def test_crlf_split_across_chunks_is_one_line_ending_not_an_overwrite() -> None:
    assembler = LineAssembler()
    assert assembler.feed(b"loss=0.5\r") == []
    assert assembler.pending() == "loss=0.5"
    assert assembler.feed(b"\nnext\r") == ["loss=0.5"]
    assert assembler.feed(b"\n") == ["next"]


def test_pty_doubled_carriage_return_before_newline_is_one_line_ending() -> None:
    # A program writing "\r\n" through a pseudo-terminal (ONLCR) arrives as "\r\r\n".
    assert assemble(b"done\r\r\n", b"x\r", b"\r\n") == ["done", "x"]


def test_crlf_lines_mixed_with_redraws_and_backspaces() -> None:
    assert assemble(b"a\r\nb\rc\r\nd\ne\r\n") == ["a", "c", "d", "e"]
    assert assemble(b"ab\bc\r\nd\r\n") == ["ac", "d"]
    assert assemble(b"x\ry\nz\n") == ["y", "z"]


def test_trailing_carriage_return_at_the_end_of_output_keeps_the_text() -> None:
    assert assemble(b"100%|##########| 3/3\r") == ["100%|##########| 3/3"]


# --- carriage-return redraws, backspace -------------------------------------------------------


TQDM = (
    "\r  0%|          | 0/3 [00:00<?, ?it/s]"
    "\r 33%|███▎      | 1/3 [00:00<00:00,  9.98it/s]"
    "\r 67%|██████▋   | 2/3 [00:00<00:00,  9.97it/s]"
    "\r100%|██████████| 3/3 [00:00<00:00,  9.96it/s]"
    "\r100%|██████████| 3/3 [00:00<00:00,  9.95it/s]\n"
    "after\n"
).encode()


def test_tqdm_redraws_collapse_to_the_final_state() -> None:
    assert assemble(TQDM) == ["100%|██████████| 3/3 [00:00<00:00,  9.95it/s]", "after"]


def test_tqdm_redraws_collapse_the_same_when_fed_byte_by_byte() -> None:
    assert assemble(*bytewise(TQDM)) == assemble(TQDM)


def test_lone_carriage_return_in_the_previous_chunk_overwrites() -> None:
    assembler = LineAssembler()
    assert assembler.feed(b"Epoch 1/3 [=>   ]\r") == []
    assert assembler.feed(b"Epoch 1/3 [====]") == []
    assert assembler.pending() == "Epoch 1/3 [====]"
    assert assembler.feed(b"\n") == ["Epoch 1/3 [====]"]


def test_pending_shows_the_redrawn_line() -> None:
    assembler = LineAssembler()
    assembler.feed(b"\r 10%|#         |\r 20%|##        |")
    assert assembler.pending() == " 20%|##        |"


def test_backspace_deletes_the_previous_character() -> None:
    assert assemble(b"abc\b\bX\n") == ["aX"]


def test_spinner_with_backspaces() -> None:
    assert assemble(b"Loading |\b/\b-\b\\\b \bdone\n") == ["Loading done"]


def test_backspace_at_the_start_of_a_line_does_nothing() -> None:
    assert assemble(b"\b\bab\n", b"\r\bc\n") == ["ab", "c"]


def test_backspace_reaches_into_the_previous_chunk() -> None:
    assert assemble(b"ab", b"\b", b"c\n") == ["ac"]


def test_backspace_steps_over_colour_codes() -> None:
    line = f"{ESC}[32mab{ESC}[0m\bc\n".encode()
    assert assemble(line) == [f"{ESC}[32ma{ESC}[0mc"]


def test_keras_backspaces_then_carriage_return() -> None:
    first = " 10/625 [..............................] - ETA: 3s - loss: 0.9"
    final = "625/625 [==============================] - 2s 3ms/step - loss: 0.1234"
    data = (first + "\b" * len(first) + "\r" + final + "\n").encode()
    assert assemble(data) == [final]


# --- UTF-8 --------------------------------------------------------------------------------


def test_multibyte_characters_split_across_chunks_survive() -> None:
    text = "héllo wörld █ 日本 🚀\n"
    assert assemble(*bytewise(text.encode())) == [text[:-1]]


def test_invalid_utf8_becomes_replacement_characters() -> None:
    assert assemble(b"bad \xff\xfe byte\n") == ["bad \ufffd\ufffd byte"]


def test_a_truncated_character_at_the_end_becomes_a_replacement_character() -> None:
    assert assemble(b"cut \xe6\x97") == ["cut \ufffd"]


# --- escape sequences -----------------------------------------------------------------------


def test_colours_are_kept_and_cursor_movement_and_erase_are_dropped() -> None:
    raw = (
        f"{ESC}[2K{ESC}[1A{ESC}[1;32mgreen{ESC}[0m {ESC}[?25lx{ESC}[?25h"
        f"{ESC}7{ESC}8{ESC}[10G{ESC}[3;4H{ESC}[J{ESC}[5C{ESC}[2f{ESC}(B!\n"
    )
    assert assemble(raw.encode()) == [f"{ESC}[1;32mgreen{ESC}[0m x!"]


def test_cargo_progress_is_erased_and_overwritten() -> None:
    raw = (
        f"{ESC}[1m{ESC}[32m   Compiling{ESC}[0m foo v0.1.0\n"
        f"{ESC}[1m{ESC}[36m    Building{ESC}[0m [=====>     ] 3/10: foo\r{ESC}[K"
        f"{ESC}[1m{ESC}[32m    Finished{ESC}[0m release [optimized] target(s) in 12.34s\n"
    )
    assert assemble(raw.encode()) == [
        f"{ESC}[1m{ESC}[32m   Compiling{ESC}[0m foo v0.1.0",
        f"{ESC}[1m{ESC}[32m    Finished{ESC}[0m release [optimized] target(s) in 12.34s",
    ]


def test_escape_sequences_split_across_chunks() -> None:
    assert assemble(b"\x1b[", b"31mred\x1b", b"[0m\n") == [f"{ESC}[31mred{ESC}[0m"]
    assert assemble(b"a\x1b[1", b"Kb\n") == ["ab"]
    assert assemble(*bytewise(b"x\x1b[2Ky\x1b[0;33mz\n")) == [f"xy{ESC}[0;33mz"]


def test_window_title_is_dropped_and_hyperlinks_are_kept() -> None:
    link = f"{ESC}]8;;https://example.com{ESC}\\docs{ESC}]8;;{ESC}\\"
    raw = f"{ESC}]0;training{chr(7)}see {link}\n"
    assert assemble(raw.encode()) == [f"see {link}"]


def test_an_unfinished_escape_sequence_at_the_end_is_dropped() -> None:
    assert assemble(b"text\x1b[3") == ["text"]


def test_strip_ansi_removes_every_escape_sequence() -> None:
    raw = (
        f"{ESC}[1;32mgreen{ESC}[0m {ESC}]0;title{chr(7)}{ESC}]8;;http://x{ESC}\\link"
        f"{ESC}]8;;{ESC}\\ {ESC}[2K{ESC}7{ESC}(B{ESC}[?25lend"
    )
    assert strip_ansi(raw) == "green link end"


def test_strip_ansi_returns_plain_text_unchanged() -> None:
    text = "epoch 3 loss=0.5"
    assert strip_ansi(text) is text


# --- bounded memory -------------------------------------------------------------------------


def test_an_overlong_line_comes_out_in_pieces() -> None:
    assert assemble(b"x" * 25 + b"\nok\n", max_line=10) == ["x" * 10, "x" * 10, "x" * 5, "ok"]


def test_a_line_of_exactly_max_line_characters_is_one_line() -> None:
    assert assemble(b"y" * 10 + b"\n", max_line=10) == ["y" * 10]
    assert assemble(b"y" * 20 + b"\n", max_line=10) == ["y" * 10, "y" * 10]


def test_pieces_are_emitted_while_a_line_without_newline_grows() -> None:
    assembler = LineAssembler(max_line=10)
    assert assembler.feed(b"z" * 25) == ["z" * 10, "z" * 10]
    assert assembler.pending() == "z" * 5
    assert assembler.feed(b"z" * 5) == []
    assert assembler.feed(b"\n") == ["z" * 10]


def test_a_long_middle_line_is_cut_too() -> None:
    assert assemble(b"a\n" + b"b" * 12 + b"\nc\n", max_line=5) == [
        "a",
        "bbbbb",
        "bbbbb",
        "bb",
        "c",
    ]


def test_redrawn_progress_without_newline_keeps_memory_bounded() -> None:
    assembler = LineAssembler(max_line=1 << 16)
    chunk = b"".join(b"\r%3d%%|#####     | %6d/100000 [00:01<00:02]" % (i, i) for i in range(200))
    total = 0
    while total < 100 << 20:  # 100 MB, never a newline
        assert assembler.feed(chunk) == []
        assert len(assembler.pending()) < 64
        total += len(chunk)
    assert assembler.flush() == ["199%|#####     |    199/100000 [00:01<00:02]"]


def test_output_without_any_newline_is_cut_at_max_line() -> None:
    assembler = LineAssembler(max_line=1000)
    emitted = 0
    for _ in range(2000):
        emitted += len(assembler.feed(b"." * 777))
        assert len(assembler.pending()) <= 1000
    assert emitted == (2000 * 777 - 1) // 1000  # what is left pending is 1 to 1000 chars


def test_max_line_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line"):
        LineAssembler(max_line=0)


# --- redraws: the states a "\r" overwrote, for the parsers -----------------------------------


def test_redraws_come_before_the_line_that_replaced_them_and_only_when_asked() -> None:
    chunks = [b"\rbar 1", b"\rbar 2\rbar 3", b"\r    ", b"\rbar 4\n", b"x\ry\rz\nq\r", b"w\n"]
    assembler = LineAssembler(redraws=True)
    got = []
    for chunk in chunks:
        lines = assembler.feed(chunk)
        assert assembler.redrawn == any(type(line) is Redraw for line in lines)
        got += [(type(line).__name__, str(line)) for line in lines]
    assert got == [
        ("Redraw", "bar 1"),
        ("Redraw", "bar 2"),
        ("Redraw", "bar 3"),
        ("Redraw", "    "),  # a bar cleared (tqdm.write), itself a state the parsers see
        ("str", "bar 4"),
        ("Redraw", "x"),
        ("Redraw", "y"),
        ("str", "z"),
        ("Redraw", "q"),
        ("str", "w"),
    ]
    plain = LineAssembler()
    assert [line for chunk in chunks for line in plain.feed(chunk)] == ["bar 4", "z", "w"]


def test_redraws_cut_anywhere_are_the_same_states() -> None:
    data = b"\rEpoch 1: 10%| 1/10 [loss=0.5]\rEpoch 1: 20%| 2/10 [loss=0.4]\r\r\x08x\nend\n"
    whole = LineAssembler(redraws=True).feed(data)
    assembler = LineAssembler(redraws=True)
    pieces = [line for byte in bytewise(data) for line in assembler.feed(byte)]
    assert pieces == whole
    assert [type(line) for line in whole] == [Redraw, Redraw, str, str]
