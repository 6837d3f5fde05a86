"""Metrics from the lines a training program prints, with no change to the program.

:class:`OutputParser` takes one complete line at a time (as :class:`~expbook.runner.text.
LineAssembler` returns them) and turns the lines that report metrics into events: a
:class:`Point` (one step of one or more metric series) or a :class:`Summary` (one final value).

Each line goes to small line parsers in a fixed order; the first that recognises the line wins,
so a line yields events from one parser only:

1. the user's patterns from ``expbook.toml`` (:class:`UserPattern`), if any;
2. JSON and Python-dict lines (``{"loss": 0.5, "step": 10}``, the Hugging Face Trainer's dicts)
   that have a step or epoch key or a metric's name (not a printed configuration);
3. tables: burn's "Learner Summary", the parameter counts of Keras, torchinfo and Lightning
   model summaries and the facts after them, two-column tables of names and values (Lightning's
   ``trainer.test`` table), fixed-width tables with a counter column (GradientBoosting);
4. progress lines with an epoch/step counter and metric pairs (``epoch 3/16 loss=0.12``, Keras'
   ``Epoch 3/16`` followed by its progress bar line, ``[10]\ttrain's auc: 0.9``), tqdm and Rich
   bars drawing by drawing (the assembler's :class:`~expbook.runner.text.Redraw` states), keys
   named by the split a line names (``train loss 2.7, val loss 2.8``), not settings;
5. whole-line summaries (``Test accuracy: 94.2%``), but not settings (``Seed: 42``); a result
   right after a step's line is that step's point.

Before the built-in parsers see a line, its ANSI escape sequences, a worker's prefix (another
rank's line is skipped) and a leading logging prefix (timestamp, level, logger name; see
:func:`strip_log_prefix`) are removed. The parsers keep one shared step context: an ``Epoch
3/16`` line, a progress line with its own counter, or a progress bar, sets the step (and epoch)
that later lines without a counter report at. A point equal to the one before it, at a step, is
given once. Each rule was added for a miss measured on ``tests/corpus`` (docs/design.md).

Speed matters here: a program may print hundreds of thousands of lines, most of them log
messages with no metric. A line with no digit is only looked at when it could be part of a table
or a dict, and every parser starts with a cheap check (substring searches, one regular
expression) before the work that costs. Lines repeat with only their digits changing, so the
parser remembers line shapes (digits masked) that gave nothing, and for the shapes of progress
lines where their counters and values are (such a line then goes straight to the progress
parser and is read by slicing); these caches never change a result.

The package: ``_common`` (events, keys, numbers, shapes, the step context and the current
line), ``_prefixes`` (logging prefixes), one module per line parser (``_patterns``, ``_dicts``,
``_tables``, ``_progress``, ``_summaries``) and ``_output`` (:class:`OutputParser`).
"""

from __future__ import annotations

from expbook.runner.parsers._common import Event, Point, PointRows, Summary, normalize_key
from expbook.runner.parsers._output import OutputParser
from expbook.runner.parsers._patterns import UserPattern
from expbook.runner.parsers._prefixes import strip_log_prefix

__all__ = [
    "Event",
    "OutputParser",
    "Point",
    "PointRows",
    "Summary",
    "UserPattern",
    "normalize_key",
    "strip_log_prefix",
]
