"""Which words of a command line are params: a ``key=value`` word is a Hydra-style override
only for a program that takes settings, and only when it holds one assignment."""

from __future__ import annotations

import pytest

from expbook.runner.argv import command_params
from expbook.runner.rewrite import with_flags


@pytest.mark.parametrize(
    "argv",
    [
        ["echo", "loss=0.1 acc=0.9"],
        ["echo", "loss=0.1"],
        ["echo", "-n", "epoch 3 loss=0.12"],
        ["/bin/echo", "lr=0.1", "--lr", "2"],
        ["printf", "%s\\n", "loss=0.1 acc=0.9"],
        ["env", "A=1", "echo", "loss=0.1"],
        ["python", "train.py", "loss=0.1 acc=0.9"],  # one word, two assignments: text
        ["make", "report", "MSG=loss=0.1 acc=0.9"],
    ],
)
def test_words_that_are_not_overrides(argv: list[str]) -> None:
    params = command_params(argv, cwd="/nonexistent-expbook-dir")
    assert {k: v for k, v in params.items() if not k.startswith("env.")} == {}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["python", "train.py", "lr=0.1", "model=resnet"], {"lr": 0.1, "model": "resnet"}),
        (["python", "train.py", "+trainer.max_epochs=5"], {"trainer.max_epochs": 5}),
        (["python", "train.py", "tags=a b"], {"tags": ["a", "b"]}),
        (["make", "train", "LR=0.1"], {"LR": 0.1}),
        (["./train", "--lr", "0.1", "note=first try"], {"lr": 0.1, "note": ["first", "try"]}),
        (["python", "train.py", "--note", "loss=0.1 acc=0.9"], {"note": ["loss=0.1", "acc=0.9"]}),
    ],
)
def test_overrides_and_flags_stay_params(argv: list[str], expected: dict[str, object]) -> None:
    assert command_params(argv, cwd="/nonexistent-expbook-dir") == expected


def test_set_leaves_a_text_word_alone() -> None:
    # the word is not an override, so --set adds one instead of rewriting inside the text
    assert with_flags(["python", "t.py", "a=1 b=2", "c=3"], ["a=5"]) == [
        "python", "t.py", "a=1 b=2", "c=3", "a=5",
    ]  # fmt: skip
