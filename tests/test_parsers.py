"""OutputParser: metrics from the lines training programs print (pure unit tests)."""

from __future__ import annotations

import math
import random
import time

import pytest

from expbook.runner.parsers import (
    Event,
    OutputParser,
    Point,
    Summary,
    UserPattern,
    normalize_key,
    strip_log_prefix,
)
from expbook.runner.text import LineAssembler

ESC = "\x1b"


def parse(*lines: str, patterns: tuple[UserPattern, ...] = ()) -> list[Event]:
    """All events of ``lines`` fed to one fresh parser, then closed."""
    parser = OutputParser(patterns)
    events: list[Event] = []
    for line in lines:
        events.extend(parser.feed(line))
    return events + parser.close()


def log(text: str) -> list[str]:
    return text.strip("\n").split("\n")


# --- the examples of the spec ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("epoch 3/16 loss=0.12 acc=0.91", Point({"loss": 0.12, "acc": 0.91}, 3, 3.0)),
        (
            "Epoch 3: train_loss 0.12 valid_loss 0.15 valid_acc 0.93",
            Point({"train_loss": 0.12, "valid_loss": 0.15, "valid_acc": 0.93}, 3, 3.0),
        ),
        (
            "[Epoch 2/10] step 500 | loss: 0.5 | lr: 1e-4",
            Point({"loss": 0.5, "lr": 1e-4}, 500, 2.0),
        ),
        ("Step 1200: loss=2.31, ppl=10.1", Point({"loss": 2.31, "ppl": 10.1}, 1200)),
        ("iter 40 loss 1.234 time 12.3ms", Point({"loss": 1.234}, 40)),
        # the head names the split; the bracket counts the epoch's samples (a batch counter)
        ("Train Epoch: 1 [0/60000 (0%)]\tLoss: 2.305", Point({"train_loss": 2.305}, None, 1.0)),
        ("loss=0.5,acc=0.9", Point({"loss": 0.5, "acc": 0.9}, None)),
        ("epoch 1 acc: 91.2% loss: 0.3", Point({"acc": 91.2, "loss": 0.3}, 1, 1.0)),
        ("step 7 reward: -12.5 loss=-0.25", Point({"reward": -12.5, "loss": -0.25}, 7)),
        ("epoch=3 step=10 loss=0.1", Point({"loss": 0.1}, 10, 3.0)),
        ("global_step: 99 loss: 1.5e+00", Point({"loss": 1.5}, 99)),
        ("Iteration 12: samples: 1,024 loss: 0.5", Point({"samples": 1024.0, "loss": 0.5}, 12)),
    ],
)
def test_progress_lines(line: str, expected: Point) -> None:
    assert parse(line) == [expected]


@pytest.mark.parametrize(
    "line",
    [
        "epoch 3 loss=0.1",
        "Epoch 3/16 loss=0.1",
        "epoch=3 loss=0.1",
        "epoch: 3 loss=0.1",
        "[Epoch 3/16] loss=0.1",
        "Epoch [3/16] loss=0.1",
        "EPOCH 3 - loss: 0.1",
        "ep 3 loss=0.1",
    ],
)
def test_epoch_counter_forms(line: str) -> None:
    assert parse(line) == [Point({"loss": 0.1}, 3, 3.0)]


def test_space_separated_pairs_need_a_metric_word() -> None:
    assert parse("epoch 2 Processed 500 samples loss 0.5") == [Point({"loss": 0.5}, 2, 2.0)]
    assert parse("epoch 2 valAcc 0.8 top1_acc 0.7 rougeL 0.3") == [
        Point({"valacc": 0.8, "top1_acc": 0.7, "rougel": 0.3}, 2, 2.0)
    ]
    assert parse("Processed 500 samples") == []


def test_a_value_two_rules_read_is_one_value() -> None:
    """A key with a "/" and no separator ("valid/loss 0.5") is read by the metric-word rule and
    by the segment rule at the same place: once, never a crash (it raised TypeError)."""
    assert parse("step 0 valid/loss 0.5", "step 1 valid/loss 0.4 train/loss 0.6") == [
        Point({"valid/loss": 0.5}, 0),
        Point({"valid/loss": 0.4, "train/loss": 0.6}, 1),
    ]
    assert parse("epoch 2 valid/loss: 0.5 | time 3.1ms") == [
        Point({"valid/loss": 0.5, "time": 3.1}, 2, 2.0)
    ]


class _FailsOnMarkedLines(OutputParser):
    """The recovery under test is the parser's own: a bug in one line's rules (this subclass
    raises where a real bug did, inside ``_feed``) skips that line only."""

    def _feed(self, line: str) -> list[Event]:
        if "BUG" in line:
            raise TypeError("'<' not supported between instances of 'NoneType' and 'str'")
        return super()._feed(line)


def test_a_line_a_parser_fails_on_is_skipped_and_parsing_goes_on() -> None:
    parser = _FailsOnMarkedLines()
    lines = ["step 1 loss=0.5", "step 2 BUG loss=0.4", "step 3 loss=0.3"]
    events = parser.feed_lines(lines) + parser.feed("step 4 BUG") + parser.close()
    assert events == [Point({"loss": 0.5}, 1), Point({"loss": 0.3}, 3)]
    assert parser.failed_lines == 2
    assert (
        parser.first_failure == "'step 2 BUG loss=0.4': TypeError: '<' not supported "
        "between instances of 'NoneType' and 'str'"
    )


def test_clock_times_and_bare_fractions_are_not_metrics_but_durations_are() -> None:
    assert parse("epoch 1 loss=0.5 time=12.3ms eta: 1:23 at 12:30:45 acc=9890/10000") == [
        Point({"loss": 0.5, "time": 12.3}, 1, 1.0)  # a duration (the unit as printed)
    ]
    assert parse("epoch 1 loss=0.5 ETA 3s 3.2kg=1") == [Point({"loss": 0.5}, 1, 1.0)]


def test_nan_and_infinite_values() -> None:
    (point,) = parse("epoch 2 loss=nan grad=inf neg=-inf big: NaN")
    assert isinstance(point, Point)
    assert (point.step, point.epoch) == (2, 2.0)
    assert list(point.values) == ["loss", "grad", "neg", "big"]
    assert math.isnan(point.values["loss"]) and math.isnan(point.values["big"])
    assert point.values["grad"] == math.inf and point.values["neg"] == -math.inf


def test_one_pair_without_a_counter_is_not_a_progress_line() -> None:
    assert parse("Loading data, seed=42 and more") == []


def test_keras_epoch_line_sets_the_step_of_the_next_line() -> None:
    bar = (
        "625/625 [==============================] - 2s 3ms/step - loss: 0.1234 - accuracy: 0.9012"
        " - val_loss: 0.2100 - val_accuracy: 0.9300"
    )
    assert parse("Epoch 3/16") == []
    assert parse("Epoch 3/16", bar) == [
        Point({"loss": 0.1234, "accuracy": 0.9012, "val_loss": 0.21, "val_accuracy": 0.93}, 3, 3.0)
    ]


def test_lines_without_a_counter_use_the_step_context() -> None:
    assert parse("loss=0.5 acc=0.9") == [Point({"loss": 0.5, "acc": 0.9}, None)]
    assert parse("=== Epoch 4 ===", "loss=0.5 acc=0.9", "val_loss=0.6 val_acc=0.8") == [
        Point({"loss": 0.5, "acc": 0.9}, 4, 4.0),
        Point({"val_loss": 0.6, "val_acc": 0.8}, 4, 4.0),
    ]
    assert parse("Step 1200: loss=2.31", "eval_loss=2.0 eval_ppl=7.4") == [
        Point({"loss": 2.31}, 1200),
        Point({"eval_loss": 2.0, "eval_ppl": 7.4}, 1200),
    ]


def test_step_lines_inherit_the_epoch_of_the_context() -> None:
    assert parse("Epoch 2/10", "step 500 loss: 0.5") == [Point({"loss": 0.5}, 500, 2.0)]


def test_batch_counters() -> None:
    assert parse("batch 7 loss=0.3") == [Point({"loss": 0.3}, 7)]
    # a batch number inside an epoch is not a global step: the step is left automatic
    assert parse("Epoch 1 Batch 100/938 loss 0.5") == [Point({"loss": 0.5}, None, 1.0)]


def test_a_fractional_epoch_leaves_the_step_automatic() -> None:
    assert parse("epoch 2.5 loss=0.3") == [Point({"loss": 0.3}, None, 2.5)]
    assert parse("epoch 1,024.5 loss=0.3") == [Point({"loss": 0.3}, None, 1024.5)]


def test_lightning_progress_bar_without_its_version_number() -> None:
    line = (
        "Epoch 1: 100%|██████████| 938/938 [00:15<00:00, 60.12it/s, loss=0.123, v_num=0, "
        "val_loss=0.2, val_acc=0.91]"
    )
    # at the steps its counter shows (938 of the first epoch seen)
    assert parse(line) == [Point({"loss": 0.123, "val_loss": 0.2, "val_acc": 0.91}, 938, 1.0)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Training: 100%|██████| 50/50 [00:01<00:00, 30.1it/s]", []),
        (
            "Training: 100%|██████| 50/50 [00:01<00:00, 30.1it/s, loss=0.5, acc=0.9]",
            [Point({"loss": 0.5, "acc": 0.9}, 50)],
        ),
        # with a tqdm bar, one postfix pair is enough for a Point, at the steps the counter
        # shows (or, when drawings lag, as many as the postfix changed:
        # test_tqdm_postfix_drawings_are_each_a_step_and_a_repeated_value_still_counts)
        (
            "Training: 100%|██████| 50/50 [00:01<00:00, 30.1it/s, loss=0.5]",
            [Point({"loss": 0.5}, 50)],
        ),
        ("100%|██████| 50/50 [00:01<00:00, 30.1it/s, ppl=3.2]", [Point({"ppl": 3.2}, 50)]),
        (
            "Epoch 3:  45%|████▌     | 45/100 [00:01<00:02, 30.1it/s, loss=0.5]",
            [Point({"loss": 0.5}, 45, 3.0)],
        ),
        ("Evaluating: 100%|██████████| 313/313 [00:03<00:00, 97.12it/s]", []),
        # a percentage followed by " |" is still a value
        ("[Epoch 2/10] step 5 | acc: 91% | lr: 1e-4", [Point({"acc": 91.0, "lr": 1e-4}, 5, 2.0)]),
    ],
)
def test_a_tqdm_percentage_is_not_a_metric(line: str, expected: list[Event]) -> None:
    assert parse(line) == expected


def test_keys_with_digits_are_read_from_each_line() -> None:
    # Lines of one shape (digits masked) share a cached plan; the keys must still be their own.
    assert parse("fold1_acc=0.5 fold1_loss=0.25", "fold2_acc=0.6 fold2_loss=0.75") == [
        Point({"fold1_acc": 0.5, "fold1_loss": 0.25}, None),
        Point({"fold2_acc": 0.6, "fold2_loss": 0.75}, None),
    ]
    assert parse("epoch 1 top1=0.5 top5=0.75", "epoch 2 top5=0.8 top1=0.625") == [
        Point({"top1": 0.5, "top5": 0.75}, 1, 1.0),
        Point({"top5": 0.8, "top1": 0.625}, 2, 2.0),
    ]
    assert parse("epoch 1 top1_acc 0.5", "epoch 2 top5_acc 0.75") == [
        Point({"top1_acc": 0.5}, 1, 1.0),
        Point({"top5_acc": 0.75}, 2, 2.0),
    ]


def test_a_zero_never_starts_a_thousands_separated_number() -> None:
    # 1,512 is a number; 0,512 is not (so the pair is no pair): both orders, through the caches
    expected = [Point({"samples": 1512.0, "loss": 0.5}, None)]
    assert parse("samples=1,512 loss=0.5", "samples=0,512 loss=0.5") == expected
    assert parse("samples=0,512 loss=0.5", "samples=1,512 loss=0.5") == expected
    assert parse("Num examples = 0,512", "Num examples = 1,512") == [
        Summary("num_examples", 1512.0)
    ]
    assert parse("Num examples = 1,512", "Num examples = 0,512") == [
        Summary("num_examples", 1512.0)
    ]


def test_long_lines_are_parsed_like_short_ones() -> None:
    padding = " ".join(["word"] * 200)
    assert parse(f"epoch 2 loss=0.5 {padding}", f"epoch 3 loss=0.25 {padding}") == [
        Point({"loss": 0.5}, 2, 2.0),
        Point({"loss": 0.25}, 3, 3.0),
    ]


def test_colour_codes_are_stripped_before_parsing() -> None:
    line = f"{ESC}[1mEpoch 2{ESC}[0m loss={ESC}[32m0.5{ESC}[0m acc={ESC}[32m0.75{ESC}[0m"
    assert parse(line) == [Point({"loss": 0.5, "acc": 0.75}, 2, 2.0)]


# --- logging prefixes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-21 12:30:01,123 - INFO - epoch 3 loss=0.5 acc=0.9",
        "2026-11-21 12:30:01,123 - __main__ - INFO - epoch 3 loss=0.5 acc=0.9",
        "[2026-11-21 12:30:01] INFO: epoch 3 loss=0.5 acc=0.9",
        "2026-11-21T12:30:01.123456Z  INFO train: epoch 3 loss=0.5 acc=0.9",
        "INFO:root:epoch 3 loss=0.5 acc=0.9",
        "[INFO] epoch 3 loss=0.5 acc=0.9",
        "12:30:01 WARNING epoch 3 loss=0.5 acc=0.9",
        "2026-11-21 12:30:01.123 | INFO     | __main__:train:42 - epoch 3 loss=0.5 acc=0.9",
        "I1121 12:30:01.123456 140123 train.py:123] epoch 3 loss=0.5 acc=0.9",
    ],
)
def test_logging_prefixes_are_not_metrics(line: str) -> None:
    assert parse(line) == [Point({"loss": 0.5, "acc": 0.9}, 3, 3.0)]


def test_strip_log_prefix() -> None:
    assert strip_log_prefix("INFO:__main__:Test accuracy: 0.9") == "Test accuracy: 0.9"
    assert strip_log_prefix("2026-11-21 12:30:01 INFO loading data") == "loading data"
    assert strip_log_prefix("Epoch 3/16") == "Epoch 3/16"
    assert strip_log_prefix("123 apples") == "123 apples"


# --- JSON and Python dicts ------------------------------------------------------------------


def test_json_line() -> None:
    assert parse('{"loss": 0.5, "step": 10}') == [Point({"loss": 0.5}, 10)]


def test_hugging_face_trainer_dicts() -> None:
    assert parse("{'loss': 0.4123, 'learning_rate': 4.5e-05, 'epoch': 0.5}") == [
        Point({"loss": 0.4123, "learning_rate": 4.5e-05}, None, 0.5)
    ]
    assert parse("{'eval_loss': 0.38, 'eval_accuracy': 0.91, 'epoch': 1.0}") == [
        Point({"eval_loss": 0.38, "eval_accuracy": 0.91}, None, 1.0)
    ]


def test_dict_lines_ignore_non_numeric_values_and_give_no_event_without_numbers() -> None:
    line = '{"loss": 0.5, "name": "run-1", "tags": [1, 2], "done": true, "x": null, "iter": 3}'
    assert parse(line) == [Point({"loss": 0.5}, 3)]
    assert parse("{'flag': True, 'global_step': 7}") == []
    assert parse('{"event": "start"}') == []


def test_dict_step_keys_and_nested_dicts() -> None:
    assert parse('{"train": {"loss": 0.5, "Top 1": 0.25}, "global_step": 3, "epoch": 1}') == [
        Point({"train/loss": 0.5, "train/top_1": 0.25}, 3, 1.0)
    ]
    assert parse("{'iteration': 4.0, 'loss': 1}") == [Point({"loss": 1.0}, 4)]


def test_dict_nan_inf_and_wrapped_scalars() -> None:
    (first,) = parse("{'loss': nan, 'grad': inf, 'neg': -inf, 'step': 2}")
    assert isinstance(first, Point) and first.step == 2
    assert math.isnan(first.values["loss"])
    assert (first.values["grad"], first.values["neg"]) == (math.inf, -math.inf)
    (second,) = parse('{"loss": NaN, "acc": Infinity}')
    assert isinstance(second, Point) and math.isnan(second.values["loss"])
    assert second.values["acc"] == math.inf
    line = "{'loss': np.float64(0.5), 'grad_norm': tensor(1.25, device='cuda:0'), 'n': 'a, b'}"
    assert parse(line) == [Point({"loss": 0.5, "grad_norm": 1.25}, None)]


def test_dict_lines_are_never_evaluated() -> None:
    assert parse("{'a': __import__('os').getpid()}") == []
    assert parse("{'loss': (lambda: 1)()}") == []


@pytest.mark.parametrize(
    "line",
    [
        "{'lr': 0.1, 'epochs': 10, 'batch_size': 32}",
        "{'learning_rate': 0.001, 'weight_decay': 0.01, 'warmup_steps': 500}",
        '{"seed": 1, "num_workers": 4, "hidden": 256}',
        "{'lr': 0.0001, 'max_grad_norm': 1.0}",
        "{'lr': 0.1}",
        "{'loss': 'cross_entropy', 'lr': 0.1, 'tags': [1, 2]}",  # a metric name, but no number
    ],
)
def test_configuration_dicts_are_not_metrics(line: str) -> None:
    assert parse(line) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{'loss': 0.5}", Point({"loss": 0.5}, None)),
        ("{'lr': 0.1, 'step': 3}", Point({"lr": 0.1}, 3)),
        (
            "{'lr': 0.1, 'batch_size': 32, 'epoch': 2}",
            Point({"lr": 0.1, "batch_size": 32.0}, None, 2.0),
        ),
        ("{'valAcc': 0.9, 'lr': 0.1}", Point({"valacc": 0.9, "lr": 0.1}, None)),
        ("{'grad_norm': 1.5, 'lr': 0.1}", Point({"grad_norm": 1.5, "lr": 0.1}, None)),
        (
            "{'eval_runtime': 12.5, 'eval_samples_per_second': 200.0}",
            Point({"eval_runtime": 12.5, "eval_samples_per_second": 200.0}, None),
        ),
        ('{"val": {"rouge2": 0.25, "n": 3}}', Point({"val/rouge2": 0.25, "val/n": 3.0}, None)),
        ("{'top1_err': 0.25, 'tags': [1]}", Point({"top1_err": 0.25}, None)),
    ],
)
def test_dicts_with_a_step_epoch_or_metric_key_are_metrics(line: str, expected: Point) -> None:
    assert parse(line) == [expected]


def test_dict_integers_too_large_for_a_float_are_infinite() -> None:
    big = "1" + "0" * 400
    assert parse(f"{{'loss': {big}, 'tags': [1]}}", f"{{'loss': -{big}, 'tags': [1]}}") == [
        Point({"loss": math.inf}, None),
        Point({"loss": -math.inf}, None),
    ]


def test_dict_like_text_that_is_not_a_dict_goes_on_to_the_other_parsers() -> None:
    assert parse("{loss: 0.5} epoch 2 acc=0.5") == [Point({"loss": 0.5, "acc": 0.5}, 2, 2.0)]


# --- burn's learner summary and parameter counts --------------------------------------------

BURN_SUMMARY = """
======================== Learner Summary ========================
Model:
RegressionModel {
  input_layer: Linear {d_input: 13, d_output: 64, bias: true, params: 896}
  output_layer: Linear {d_input: 64, d_output: 1, bias: true, params: 65}
  activation: Relu
  params: 961
}
Total Epochs: 16


| Split | Metric   | Min.     | Epoch    | Max.     | Epoch    |
|-------|----------|----------|----------|----------|----------|
| Train | Loss     | 0.032    | 53       | 0.106    | 1        |
| Train | Accuracy | 80.500   | 1        | 98.122   | 53       |
| Valid | Loss     | 0.041    | 50       | 0.130    | 1        |
"""

BURN_EXPECTED = [
    Summary("model.params", 961.0),
    Summary("total_epochs", 16.0),
    Summary("train/loss", 0.032, None, 53, 53.0, 0.032, 53, 53.0, 0.106, 1, 1.0),
    Summary("train/accuracy", 98.122, None, 53, 53.0, 80.5, 1, 1.0, 98.122, 53, 53.0),
    Summary("valid/loss", 0.041, None, 50, 50.0, 0.041, 50, 50.0, 0.13, 1, 1.0),
]


def test_burn_learner_summary() -> None:
    assert parse(*log(BURN_SUMMARY)) == BURN_EXPECTED


def test_burn_training_log_with_its_per_epoch_output() -> None:
    preamble = """
   Compiling burn-train v0.16.0
   Compiling regression v0.1.0 (/home/me/regression)
    Finished `release` profile [optimized] target(s) in 1m 02s
     Running `target/release/regression`
Starting training for 16 epochs.
Starting split 'train' with 404 items.
TrainingProgress { progress: Progress { items_processed: 64, items_total: 404 }, epoch: 1, epoch_total: 16, iteration: 2 }
[crates/burn-train/src/renderer/cli.rs:27:9] item = TrainingProgress {
    progress: Progress {
        items_processed: 32,
        items_total: 404,
    },
    epoch: 1,
    epoch_total: 16,
    iteration: 1,
}
2026-11-21T12:30:01.123456Z  INFO burn_train::learner::epoch: Executing training step for epoch 1 on devices [Cuda(0)]
Split ended.
Training ended.
"""  # noqa: E501
    assert parse(*log(preamble), *log(BURN_SUMMARY), "Inference accuracy: 26.14%") == [
        *BURN_EXPECTED,
        Summary("inference_accuracy", 26.14, "%"),
    ]


def test_summary_table_variants() -> None:
    table = """
Metric | Min. | Epoch | Max. | Epoch
-------|------|-------|------|------
Loss | 0.5 | 3 | 0.9 | 1
Learning Rate | 1e-4 | 3 | 2e-4 | 3
| Valid | NaN | 2 | NaN | 2 |
done 5
"""
    events = parse(*log(table))
    assert events[:2] == [
        Summary("loss", 0.5, None, 3, 3.0, 0.5, 3, 3.0, 0.9, 1, 1.0),
        Summary("learning_rate", 2e-4, None, 3, 3.0, 1e-4, 3, 3.0, 2e-4, 3, 3.0),  # tie: max
    ]
    assert len(events) == 3 and math.isnan(events[2].value)  # type: ignore[union-attr]


def test_a_non_table_line_ends_the_table() -> None:
    table = "| Split | Metric | Min. | Epoch | Max. | Epoch |\n| Train | Loss | 1 | 1 | 2 | 2 |"
    assert parse(*table.split("\n"), "epoch 9 loss=0.5", "| Train | Acc | 1 | 1 | 2 | 2 |") == [
        Summary("train/loss", 2.0, None, 2, 2.0, 1.0, 1, 1.0, 2.0, 2, 2.0),
        Point({"loss": 0.5}, 9, 9.0),
    ]


def test_nested_model_blocks_give_only_the_top_level_params() -> None:
    model = """
Model {
  conv: ConvBlock {
    conv: Conv2d {stride: [1, 1], kernel_size: [3, 3], params: 80}
    norm: BatchNorm {num_features: 8, params: 32}
    params: 112
  }
  fc: Linear {d_input: 8, d_output: 2, bias: true, params: 18}
  params: 130
}
"""
    assert parse(*log(model)) == [Summary("model.params", 130.0)]


def test_a_model_block_still_open_at_the_end_is_closed_by_close() -> None:
    parser = OutputParser()
    for line in ("Net {", "  fc: Linear {params: 18}", "  params: 18"):
        assert parser.feed(line) == []
    assert parser.close() == [Summary("model.params", 18.0)]


def test_a_params_line_not_followed_by_the_closing_brace_is_not_the_total() -> None:
    assert parse("Net {", "  params: 18", "  fc: Linear {params: 18}", "}") == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Total params: 1,234,567", Summary("model.params", 1234567.0)),
        ("Trainable params: 1,234,567 (4.71 MB)", Summary("model.trainable_params", 1234567.0)),
        ("Non-trainable params: 0 (0.00 B)", Summary("model.non_trainable_params", 0.0)),
        (" Total params: 101,770 (397.54 KB)", Summary("model.params", 101770.0)),
        ("Total params: 961", Summary("model.params", 961.0)),
        ("2.0 M     Total params", Summary("model.params", 2_000_000.0)),
        ("1.5 K     Trainable params", Summary("model.trainable_params", 1500.0)),
    ],
)
def test_parameter_counts(line: str, expected: Summary) -> None:
    assert parse(line) == [expected]


# --- summary lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Inference accuracy: 26.14%", Summary("inference_accuracy", 26.14, "%")),
        ("Test accuracy = 0.9421", Summary("test_accuracy", 0.9421)),
        (
            "Accuracey over the entire ~3M dataset: 0.048536944850279914",
            Summary("accuracey_over_the_entire_3m_dataset", 0.048536944850279914),
        ),
        ("Total Epochs: 16", Summary("total_epochs", 16.0)),
        ("INFO:root:Test loss: -0.25", Summary("test_loss", -0.25)),
        ("  Num examples = 25,000", Summary("num_examples", 25000.0)),
        ("Throughput (samples/s): 1,234.5", Summary("throughput_samples/s", 1234.5)),
        ("Valid Acc: 91 %", Summary("valid_acc", 91.0, "%")),
    ],
)
def test_summary_lines(line: str, expected: Summary) -> None:
    assert parse(line) == [expected]


def test_summary_of_nan_without_a_digit() -> None:
    (summary,) = parse("Final loss: nan")
    assert isinstance(summary, Summary) and summary.key == "final_loss"
    assert math.isnan(summary.value)


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-21 12:30:01 INFO loading data",
        "Using device: cuda:0",
        "Step 5: 0.3",
        "Version: 2.13.0",
        "ETA: 1:23",
        "Serving on localhost:8080",
    ],
)
def test_not_summaries(line: str) -> None:
    assert parse(line) == []


@pytest.mark.parametrize(
    "line",
    [
        "Seed: 42",
        "Random seed = 1234",
        "Batch size: 32",
        "Version: 2",
        "Downloading: 45",
        "rank: 0",
        "local_rank: 1",
        "world size: 8",
        "num_workers: 4",
        "Epochs: 10",
        "GPUs: 8",
        "device: 0",
        "PID: 12345",
        "MASTER_PORT = 29500",
        "Job ID: 123456",
    ],
)
def test_settings_printed_as_summary_lines_are_not_metrics(line: str) -> None:
    assert parse(line) == []


def test_settings_do_not_touch_the_epoch_context() -> None:
    assert parse("Epochs: 10", "loss=0.5 acc=0.9") == [Point({"loss": 0.5, "acc": 0.9}, None)]
    assert parse("epoch: 3", "loss=0.5 acc=0.9") == [Point({"loss": 0.5, "acc": 0.9}, 3, 3.0)]
    assert parse("Epoch 3/10", "Epochs: 10", "loss=0.5 acc=0.9") == [
        Point({"loss": 0.5, "acc": 0.9}, 3, 3.0)
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Total Epochs: 16", Summary("total_epochs", 16.0)),
        ("  Num Epochs = 3", Summary("num_epochs", 3.0)),
        ("Total params: 1,234", Summary("model.params", 1234.0)),
        ("Number of parameters: 1,234", Summary("number_of_parameters", 1234.0)),
        ("Best seed score: 0.5", Summary("best_seed_score", 0.5)),
        ("GPU: 85%", Summary("gpu", 85.0, "%")),
    ],
)
def test_names_not_in_the_settings_list_still_count(line: str, expected: Summary) -> None:
    assert parse(line) == [expected]


# --- noise ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "2026-11-21 12:30:45,123 - INFO - Loading shard 12 of 100 from /data/part-00012",
        "12:30:45",
        "[12:30:45] started",
        "/data/bbs_20u7_model4/model.ckpt-99327",
        "Restoring parameters from /data/bbs_20u7_model4/model.ckpt-99327",
        "torch 2.13.0",
        "Python 3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]",
        "transformers==4.40.0",
        "Saving checkpoint to ckpt-500",
        "Saving model checkpoint to output/checkpoint-500",
        "https://example.com:8080/train?lr=0.1&bs=32",
        "Connecting to 192.168.0.12:29500",
        "MASTER_ADDR=10.0.0.1 MASTER_PORT=29500",
        "Processed 500 samples",
        "Downloading model.safetensors: 100%|██████████| 548M/548M [00:12<00:00, 45.2MB/s]",
        "100%|██████████| 9375/9375 [05:00<00:00, 31.20it/s]",
        "Namespace(lr=0.001, batch_size=64, epochs=10, seed=1)",
        "  (fc1): Linear(in_features=9216, out_features=128, bias=True)",
        " dense (Dense)               (None, 128)               100480",
        "Epoch 1, saving checkpoint at step 500",
        "  --> src/main.rs:12:5",
        "INFO: Elapsed time: 0.523s, Critical Path: 0.02s",
        "INFO: Analyzed target //train:train (0 packages loaded, 0 targets configured).",
        "warning: unused variable: `x` at line 3",
        "",
    ],
)
def test_noise_lines_yield_nothing(line: str) -> None:
    assert parse(line) == []


def test_cargo_build_preamble_yields_nothing() -> None:
    preamble = f"""
{ESC}[1m{ESC}[32m   Compiling{ESC}[0m libc v0.2.155
{ESC}[1m{ESC}[32m   Compiling{ESC}[0m foo v0.1.0 (/home/me/foo)
    Finished release [optimized] target(s) in 12.34s
    Finished `release` profile [optimized] target(s) in 12.34s
     Running `target/release/train`
     Running target/release/train
"""
    assert parse(*log(preamble)) == []


# --- realistic logs -------------------------------------------------------------------------

KERAS_LOG = """
Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 flatten (Flatten)           (None, 784)               0

 dense (Dense)               (None, 128)               100480

 dense_1 (Dense)             (None, 10)                1290

=================================================================
Total params: 101,770
Trainable params: 101,770
Non-trainable params: 0
_________________________________________________________________
Epoch 1/2
1875/1875 [==============================] - 3s 1ms/step - loss: 0.2587 - accuracy: 0.9262 - val_loss: 0.1416 - val_accuracy: 0.9577
Epoch 2/2
 100/1875 [>.............................] - ETA: 2s - loss: 0.1200 - accuracy: 0.9600
1875/1875 [==============================] - 2s 1ms/step - loss: 0.1135 - accuracy: 0.9663 - val_loss: 0.0985 - val_accuracy: 0.9697
313/313 [==============================] - 0s 763us/step - loss: 0.0985 - accuracy: 0.9697
Test accuracy: 0.9697
"""  # noqa: E501


def test_realistic_keras_log() -> None:
    assert parse(*log(KERAS_LOG)) == [
        Summary("model.params", 101770.0),
        Summary("model.trainable_params", 101770.0),
        Summary("model.non_trainable_params", 0.0),
        Point(
            {"loss": 0.2587, "accuracy": 0.9262, "val_loss": 0.1416, "val_accuracy": 0.9577},
            1,
            1.0,
        ),
        Point(
            {"loss": 0.1135, "accuracy": 0.9663, "val_loss": 0.0985, "val_accuracy": 0.9697},
            2,
            2.0,
        ),
        # model.evaluate(): not a point of the training series
        Summary("evaluate/loss", 0.0985),
        Summary("evaluate/accuracy", 0.9697),
        Summary("test_accuracy", 0.9697),
    ]


def test_keras_3_log_through_a_terminal() -> None:
    raw = (
        "Epoch 1/2\r\n"
        f"\r{ESC}[1m 10/625{ESC}[0m {ESC}[32m━{ESC}[0m{ESC}[37m━━━━{ESC}[0m {ESC}[1m3s{ESC}[0m "
        "5ms/step - accuracy: 0.5000 - loss: 1.2000"
        f"\r{ESC}[1m625/625{ESC}[0m {ESC}[32m━━━━━{ESC}[0m {ESC}[1m2s{ESC}[0m 3ms/step - "
        "accuracy: 0.9012 - loss: 0.1234\r\n"
    ).encode()
    assembler = LineAssembler()
    lines = assembler.feed(raw) + assembler.flush()
    assert parse(*lines) == [Point({"accuracy": 0.9012, "loss": 0.1234}, 1, 1.0)]


HF_LOG = """
***** Running training *****
  Num examples = 25,000
  Num Epochs = 3
  Instantaneous batch size per device = 8
  Gradient Accumulation steps = 1
  Total optimization steps = 9,375
  Number of trainable parameters = 66,955,010
  0%|          | 0/9375 [00:00<?, ?it/s]
{'loss': 0.4123, 'grad_norm': 5.25, 'learning_rate': 4.5e-05, 'epoch': 0.16}
{'eval_loss': 0.38, 'eval_accuracy': 0.91, 'eval_runtime': 12.5, 'eval_samples_per_second': 200.0, 'eval_steps_per_second': 25.0, 'epoch': 1.0}
Saving model checkpoint to out/checkpoint-3125
{'train_runtime': 300.5, 'train_samples_per_second': 249.6, 'train_steps_per_second': 31.2, 'train_loss': 0.35, 'epoch': 3.0}
100%|██████████| 9375/9375 [05:00<00:00, 31.20it/s]
"""  # noqa: E501


def test_realistic_hugging_face_trainer_log() -> None:
    assert parse(*log(HF_LOG)) == [
        Summary("num_examples", 25000.0),
        Summary("num_epochs", 3.0),
        Summary("instantaneous_batch_size_per_device", 8.0),
        Summary("gradient_accumulation_steps", 1.0),
        Summary("total_optimization_steps", 9375.0),
        Summary("number_of_trainable_parameters", 66955010.0),
        Point({"loss": 0.4123, "grad_norm": 5.25, "learning_rate": 4.5e-05}, None, 0.16),
        Point(
            {
                "eval_loss": 0.38,
                "eval_accuracy": 0.91,
                "eval_runtime": 12.5,
                "eval_samples_per_second": 200.0,
                "eval_steps_per_second": 25.0,
            },
            None,
            1.0,
        ),
        Point(
            {
                "train_runtime": 300.5,
                "train_samples_per_second": 249.6,
                "train_steps_per_second": 31.2,
                "train_loss": 0.35,
            },
            None,
            3.0,
        ),
    ]


# --- keys -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Valid Acc", "valid_acc"),
        ("val_loss", "val_loss"),
        ("valid/acc", "valid/acc"),
        ("Accuracy over the entire ~3M dataset", "accuracy_over_the_entire_3m_dataset"),
        ("acc@1", "acc@1"),
        ("gpu.0.util", "gpu.0.util"),
        ("__Loss (train)__", "loss_train"),
        ("/train/loss/", "train/loss"),
        ('say "hi" `now`\t\x01', "say_hi_now"),
        ("", None),
        ("***", None),
        ("a//b", None),
        ("x" * 251, None),
        ("x" * 250, "x" * 250),
    ],
)
def test_normalize_key(raw: str, key: str | None) -> None:
    assert normalize_key(raw) == key


def test_keys_that_cannot_be_normalised_are_skipped() -> None:
    assert parse("epoch 1 loss=0.5 a//b=3") == [Point({"loss": 0.5}, 1, 1.0)]


# --- user patterns --------------------------------------------------------------------------


def test_user_pattern_with_a_key_group() -> None:
    pattern = UserPattern(r"(?P<key>[A-Za-z ]+) -> (?P<value>\S+)")
    assert parse("Mean Reward -> 12.5", patterns=(pattern,)) == [
        Point({"mean_reward": 12.5}, None)
    ]


def test_user_pattern_with_a_fixed_key_and_a_step_group() -> None:
    pattern = UserPattern(r"it(?P<step>\d+) val=(?P<value>[-\d.]+)", key="Val Score")
    assert parse("it42 val=-0.5", patterns=(pattern,)) == [Point({"val_score": -0.5}, 42)]


def test_user_pattern_uses_the_step_context() -> None:
    pattern = UserPattern(r"custom (?P<value>[\d.]+)", key="custom")
    assert parse("Epoch 3/16", "custom 0.25", patterns=(pattern,)) == [
        Point({"custom": 0.25}, 3, 3.0)
    ]


def test_user_summary_pattern() -> None:
    pattern = UserPattern(r"FINAL (?P<key>\w+) (?P<value>\S+)", kind="summary")
    assert parse("FINAL acc 91.5% FINAL loss 0.2", patterns=(pattern,)) == [
        Summary("acc", 91.5, "%"),
        Summary("loss", 0.2),
    ]


def test_user_patterns_win_over_the_built_in_parsers() -> None:
    pattern = UserPattern(r"loss=(?P<value>[\d.]+)", key="my_loss")
    assert parse("epoch 3 loss=0.5 acc=0.9", patterns=(pattern,)) == [
        Point({"my_loss": 0.5}, None)
    ]


def test_lines_user_patterns_do_not_match_go_to_the_built_in_parsers() -> None:
    pattern = UserPattern(r"reward (?P<value>[\d.]+)", key="reward")
    assert parse("epoch 3 loss=0.5", "reward x", patterns=(pattern,)) == [
        Point({"loss": 0.5}, 3, 3.0)
    ]


def test_user_patterns_see_lines_without_colour_codes() -> None:
    pattern = UserPattern(r"^score (?P<value>\d+)$", key="score")
    assert parse(f"{ESC}[1mscore 7{ESC}[0m", patterns=(pattern,)) == [Point({"score": 7.0}, None)]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (UserPattern(r"loss=(?P<value>[\d.]+", key="x"), "does not compile"),
        (UserPattern(r"loss=(?P<val>[\d.]+)", key="x"), "no named group 'value'"),
        (UserPattern(r"loss=(?P<value>[\d.]+)"), "needs a named group 'key'"),
        (UserPattern(r"loss=(?P<value>[\d.]+)", key="x", kind="table"), "kind must be"),
        (UserPattern(r"loss=(?P<value>[\d.]+)", key="//"), "not a valid key"),
    ],
)
def test_bad_user_patterns_are_refused(pattern: UserPattern, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        OutputParser([pattern])
    assert repr(pattern.regex) in str(raised.value)


# --- throughput -----------------------------------------------------------------------------

NOISE = [
    "2026-11-21 12:30:{s:02d},123 - INFO - Loading shard {i} from /data/shards/part-{i:05d}",
    "[2026-11-21 12:30:{s:02d}] WARNING: gradient overflow, skipping step {i}",
    "Downloading model.safetensors: 100%|██████████| 548M/548M [00:{s:02d}<00:00, 210MB/s]",
    "INFO:root:Saving checkpoint to /ckpt/model.ckpt-{i}",
    "   Compiling tokio v1.{s}.0",
    "Using device: cuda:0",
    "the quick brown fox jumps over the lazy dog and keeps going",
    "  warnings.warn(",
    "torch 2.13.0, cuda 12.1, cudnn 8.9.{s}",
    "Processed {i} samples in {s}.5s",
]
PROGRESS = [
    "epoch {e}/16 loss={f:.4f} acc={g:.4f}",
    "Step {i}: loss={f:.4f}, ppl={g:.3f}",
    "{i}/625 [==============================] - 2s 3ms/step - loss: {f:.4f} - accuracy: {g:.4f}"
    " - val_loss: {f:.4f} - val_accuracy: {g:.4f}",
    "[Epoch {e}/10] step {i} | loss: {f:.4f} | lr: 1e-4 | grad_norm: {g:.3f}",
    "iter {i} loss {f:.4f} time 12.3ms",
    "{{'loss': {f:.4f}, 'learning_rate': 4.5e-05, 'epoch': {g:.2f}}}",
]


def realistic_lines(count: int) -> list[str]:
    """70% log messages with no metric, 30% progress lines of several frameworks."""
    rng = random.Random(1)
    lines = []
    for n in range(count):
        template = rng.choice(PROGRESS if rng.random() < 0.3 else NOISE)
        values = {"i": n, "s": n % 60, "e": n % 16 + 1, "f": rng.random(), "g": rng.random()}
        lines.append(template.format(**values))
    return lines


def best_rate(run: object, amount: float, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        run()  # type: ignore[operator]
        best = min(best, time.perf_counter() - start)
    return amount / best


@pytest.mark.slow
def test_parser_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    lines = realistic_lines(200_000)

    def run() -> None:
        parser = OutputParser()
        for line in lines:
            parser.feed(line)

    rate = best_rate(run, len(lines))
    with capsys.disabled():
        print(f"\nOutputParser: {rate:,.0f} lines/s (70% log messages, 30% progress lines)")
    assert rate >= 50_000


@pytest.mark.slow
def test_line_assembler_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    text = "\n".join(realistic_lines(20_000)) + "\n"
    piped = text.encode() * 32
    pty = text.replace("\n", "\r\n").encode() * 32

    def run(data: bytes) -> None:
        assembler = LineAssembler()
        for start in range(0, len(data), 65536):
            assembler.feed(data[start : start + 65536])
        assembler.flush()

    pipe_rate = best_rate(lambda: run(piped), len(piped) / 1e6)
    pty_rate = best_rate(lambda: run(pty), len(pty) / 1e6)
    with capsys.disabled():
        print(f"\nLineAssembler: {pipe_rate:,.0f} MB/s from a pipe, {pty_rate:,.0f} MB/s (pty)")
    assert pipe_rate >= 30 and pty_rate >= 30


def test_ignored_metric_keys_are_dropped_from_every_event() -> None:
    lines = [
        "seed=42 batch_size=32",  # a line of settings, read as a point: dropped whole
        "epoch 1 loss=0.5 acc=0.25 data_time=0.1 step_time=0.2",
        "Seed: 42",
        "Test accuracy: 91.5%",
        "Batch size: 32",
        "{'loss': 0.4, 'epoch': 2.0, 'train_time': 3.5}",
        *(f"step {n} loss={n / 100:.2f} iter_time=0.01" for n in range(10, 30)),  # a PointRows
    ]
    ignore = ["seed", "batch_size", "*_time", "test_accuracy"]
    got = OutputParser(ignore=ignore).feed_lines(lines)
    points = [point for event in got for point in _flat(event)]
    assert points[:2] == [Point({"loss": 0.5, "acc": 0.25}, 1, 1.0),
                          Point({"loss": 0.4}, None, 2.0)]  # fmt: skip
    assert points[2:] == [Point({"loss": n / 100}, n, 1.0) for n in range(10, 30)]
    one_by_one = OutputParser(ignore=ignore)
    assert [e for line in lines for e in one_by_one.feed(line)] == points
    assert OutputParser(ignore=["acc"]).feed("Test acc: 91%") == [Summary("test_acc", 91, "%")]


def _flat(event: object) -> list[object]:
    from expbook.runner.parsers import PointRows

    return event.points() if isinstance(event, PointRows) else [event]  # type: ignore[return-value]


def test_a_number_too_long_for_a_step_is_no_counter() -> None:
    nines = "9" * 400
    lines = [f"epoch {nines} loss=0.5 acc=0.1", f"step 1{nines[:18]} loss=0.5 acc=0.1"]
    expected = [Point({"loss": 0.5, "acc": 0.1}, None)] * 2
    assert parse(*lines) == expected
    assert OutputParser().feed_lines(lines) == expected
    assert parse(f"step {nines[:18]} loss=0.5 acc=0.1") == [
        Point({"loss": 0.5, "acc": 0.1}, int(nines[:18]))
    ]


def test_feed_lines_gives_the_events_of_feed_line_by_line() -> None:
    from tests.test_parser_cache import realistic_log, same

    for seed in range(6):
        log = realistic_log(seed)
        lines = [*log[:500], *BURN_SUMMARY.splitlines(), *log[500:], "x" * 600,
                 f"{ESC}[32mepoch 1 loss=0.5 acc=0.1{ESC}[0m"]  # fmt: skip
        expected: list[Event] = []
        plain = OutputParser(cache=False)
        for line in lines:
            expected += plain.feed(line)
        assert same(OutputParser().feed_lines(lines), expected)
    patterns = (UserPattern(regex=r"val (?P<key>\w+) -> (?P<value>[\d.]+)"),)
    lines = ["val acc -> 0.93", "epoch 2 loss=0.5 acc=0.1", "epoch 3 loss=0.4 acc=0.2"]
    assert OutputParser(patterns).feed_lines(lines) == parse(*lines, patterns=patterns)


# --- progress bars drawn over and over (tqdm), as the recorder reads them ---------------------


def drawn(*chunks: tuple[str, bytes]) -> list[Event]:
    """The events of output chunks of two streams (``"o"``/``"e"``), each stream put into
    lines with its redraws as the recorder does, all lines through one parser in order."""
    assemblers = {s: LineAssembler(redraws=True) for s in "oe"}
    parser = OutputParser()
    events: list[Event] = []
    for stream, data in chunks:
        for line in assemblers[stream].feed(data):
            events.extend(parser.feed(line))
    for assembler in assemblers.values():
        for line in assembler.flush():
            events.extend(parser.feed(line))
    return events + parser.close()


def test_tqdm_postfix_drawings_are_each_a_step_and_a_repeated_value_still_counts() -> None:
    bar = "\rEpoch 1/5:   0%|          | 0/40 [00:00<?, ?batch/s, acc={}, loss={}]"
    chunks = [("e", b"\rEpoch 1/5:   0%|          | 0/40 [00:00<?, ?batch/s]")]
    values = [(0.625, 0.68), (0.547, 0.722), (0.547, 0.701), (0.547, 0.701), (0.6, 0.69)]
    for acc, loss in values:
        chunks.append(("e", bar.format(acc, loss).encode()))
    chunks.append(("e", b"\n"))
    chunks.append(("o", b"epoch 1: val_loss=0.6076 val_acc=0.6813\n"))
    assert drawn(*chunks) == [
        Point({"acc": 0.625, "loss": 0.68}, 1, 1.0),
        Point({"acc": 0.547, "loss": 0.722}, 2, 1.0),
        # acc did not change (3 digits), loss did: a step, with acc as drawn
        Point({"acc": 0.547, "loss": 0.701}, 3, 1.0),
        # an identical drawing (the counter moved, or the bar was closed) is no step
        Point({"acc": 0.6, "loss": 0.69}, 4, 1.0),
        Point({"val_loss": 0.6076, "val_acc": 0.6813}, 4, 1.0),  # at the step the bar is at
    ]


def test_lightning_bar_pairs_set_at_an_epochs_end_stay_at_its_step() -> None:
    line = "\rEpoch {}: {:3d}%| {}/2 [00:00<00:00, 9.1it/s, v_num=0, train_loss_step={}{}]"
    chunks = [
        line.format(0, 50, 1, 0.655, ""),
        line.format(0, 100, 2, 0.655, ""),  # the counter moved: no new value
        line.format(0, 100, 2, 0.670, ""),
        line.format(0, 100, 2, 0.670, ", val_loss=0.662, val_acc=0.625"),
        line.format(0, 100, 2, 0.670, ", val_loss=0.662, val_acc=0.625, train_loss_epoch=0.66"),
        line.format(1, 50, 1, 0.643, ", val_loss=0.662, val_acc=0.625, train_loss_epoch=0.66"),
        line.format(1, 100, 2, 0.640, ", val_loss=0.650, val_acc=0.700, train_loss_epoch=0.66"),
    ]
    assert drawn(*[("o", chunk.encode()) for chunk in chunks]) == [
        Point({"train_loss_step": 0.655}, 1, 0.0),
        Point({"train_loss_step": 0.670}, 2, 0.0),
        Point({"val_loss": 0.662, "val_acc": 0.625}, 2, 0.0),
        Point({"train_loss_epoch": 0.66}, 2, 0.0),
        Point({"train_loss_step": 0.643}, 3, 1.0),
        # a step, and epoch pairs that changed with it: all in the step's point
        Point({"train_loss_step": 0.640, "val_loss": 0.650, "val_acc": 0.700}, 4, 1.0),
    ]


def test_transformers_dicts_take_the_step_the_bar_shows_after_tqdm_write() -> None:
    # pipe mode: the bar on stderr, the dicts on stdout; the drawing before a dict may lag
    bar = " {:2d}%|█         | {}/60 [00:02<00:40,  1.34it/s]"
    chunks = [
        ("e", ("\r" + bar.format(5, 3)).encode()),
        ("e", b"\r                              "),  # tqdm.write clears the bar
        ("o", b"{'loss': '0.6905', 'grad_norm': '0.07009', 'epoch': '0.25'}\n"),
        ("e", ("\r\r" + bar.format(8, 5)).encode()),  # and draws it again, up to date
        ("e", ("\r" + bar.format(12, 7)).encode()),
        ("e", ("\r" + bar.format(15, 9)).encode()),
        ("o", b"{'loss': '0.6972', 'grad_norm': '0.2138', 'epoch': '0.5'}\n"),
        ("e", ("\r" + bar.format(17, 10) + "\r          \r\r" + bar.format(17, 10)).encode()),
        ("e", ("\r" + bar.format(20, 12)).encode()),
        ("e", ("\r" + bar.format(99, 60) + "\n").encode()),
        ("o", b"{'eval_loss': '0.4518', 'epoch': '3'}\n"),  # after training: its last step
    ]
    assert drawn(*chunks) == [
        Point({"loss": 0.6905, "grad_norm": 0.07009}, 5, 0.25),
        Point({"loss": 0.6972, "grad_norm": 0.2138}, 10, 0.5),
        Point({"eval_loss": 0.4518}, 60, 3.0),
    ]


# --- general mechanisms the corpus showed (tests/corpus), each on a corpus line and variants --


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # a split word before a key names it (nanoGPT), in any case and with any separator
        (
            ["step 50: train loss 1.8599, val loss 1.8614"],
            [Point({"train_loss": 1.8599, "val_loss": 1.8614}, 50)],
        ),
        (
            ["epoch 2 Valid Acc: 0.9 test acc=0.8"],
            [Point({"valid_acc": 0.9, "test_acc": 0.8}, 2, 2.0)],
        ),
        # the line's head names the split of the keys that do not (burn, the PyTorch example)
        (
            ["[Valid - Epoch 3] Loss 0.349 | Accuracy 87.50 %"],
            [Point({"valid_loss": 0.349, "valid_accuracy": 87.5}, 3, 3.0)],
        ),
        (
            ["eval @ 100: acc=0.8613 f1=0.8542"],
            [Point({"eval_acc": 0.8613, "eval_f1": 0.8542}, None)],
        ),
        (
            ["Test set: Average loss: 0.0548, Accuracy: 494/500 (99%)"],
            [Point({"test_loss": 0.0548, "test_accuracy": 99.0}, None)],
        ),
        # a logger named like a split is no split; nor is a file name
        (["train: epoch 3 loss=0.5 acc=0.9"], [Point({"loss": 0.5, "acc": 0.9}, 3, 3.0)]),
        (["train.py:42 step 7 loss=0.5 acc=0.9"], [Point({"loss": 0.5, "acc": 0.9}, 7)]),
        # one space-separated pair after a split word is a point at the context
        (
            ["epoch 5/20  train_loss=2.42", "  validation: mse 2.156969"],
            [Point({"train_loss": 2.42}, 5, 5.0), Point({"validation_mse": 2.156969}, 5, 5.0)],
        ),
    ],
)
def test_keys_named_by_their_split(lines: list[str], expected: list[Event]) -> None:
    assert parse(*lines) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # XGBoost and LightGBM print the round in brackets; LightGBM's keys are possessive
        (
            "[10]\ttrain-logloss:0.36545\tvalid-auc:0.91501",
            [Point({"train-logloss": 0.36545, "valid-auc": 0.91501}, 10)],
        ),
        (
            "[54]\ttrain's binary_logloss: 0.0768775\tvalid_0's auc: 0.81",
            [Point({"train/binary_logloss": 0.0768775, "valid_0/auc": 0.81}, 54)],
        ),
        # the PyTorch tutorial's [epoch, batch] and a [epoch][batch/total] form
        ("[1,  2000] loss: 2.186", [Point({"loss": 2.186}, None, 1.0)]),
        ("[2][ 5/19] loss: 0.5 acc: 0.25", [Point({"loss": 0.5, "acc": 0.25}, None, 2.0)]),
        # not a counter: a bracket inside the line, or one before a word
        ("loss=[5] acc=0.5 val_acc=0.25", [Point({"acc": 0.5, "val_acc": 0.25}, None)]),
    ],
)
def test_counters_in_brackets(line: str, expected: list[Event]) -> None:
    assert parse(line) == expected


def test_durations_rates_and_name_value_segments() -> None:
    assert parse("iter 10: loss 2.9501, time 29.48ms, mfu 0.02%") == [
        Point({"loss": 2.9501, "time": 29.48, "mfu": 0.02}, 10)
    ]
    assert parse("it     25 | loss 0.642769 | grad_norm 2.38e-01 | lr 1.5e-02 | 6.03 ms/it") == [
        Point({"loss": 0.642769, "grad_norm": 0.238, "lr": 0.015, "ms/it": 6.03}, 25)
    ]
    # no list of segments without a metric among them; no speed of a progress bar
    assert parse("Processed 500 files, skipped 3, took 2.5s") == []
    keras = "32/32 ━━━━━━━━━━━━━━━━━━━━ 0s 5ms/step - accuracy: 0.87 - loss: 0.26"
    assert parse("Epoch 1/3", keras) == [Point({"accuracy": 0.87, "loss": 0.26}, 1, 1.0)]


@pytest.mark.parametrize(
    "line",
    [
        "optimizer: sgd momentum=0.90 base_lr=3.0e-02 warmup=50 decay_at=200",
        "config: epochs=20 lr=0.05 samples=64 seed=7",
        "Dataset: train=960 items, valid=240 items, classes=3",
        "[LightGBM] [Info] Number of positive: 417, number of negative: 383",
        "[LightGBM] [Info] [binary:BoostFromScore]: pavg=0.521250 -> initscore=0.085051",
        "dropout = 0.1",
        "max_iters = 200",
    ],
)
def test_settings_and_library_information_are_not_metrics(line: str) -> None:
    assert parse(line) == []


def test_results_follow_the_settings_of_a_search_candidate() -> None:
    line = "[CV 2/3] END .................C=0.1, gamma=0.01;, score=0.710 total time=   0.0s"
    assert parse(line) == [Point({"score": 0.71, "time": 0.0}, None)]
    # without a result after the ";", the pairs before it stay
    assert parse("epoch 1 loss=0.5; lr=0.1 momentum=0.9") == [
        Point({"loss": 0.5, "lr": 0.1, "momentum": 0.9}, 1, 1.0)
    ]


def test_a_result_right_after_a_steps_line_is_that_steps_point() -> None:
    assert parse(
        "Iteration 3, loss = 0.39560682", "Validation score: 0.895833", "Training done."
    ) == [Point({"loss": 0.39560682}, 3), Point({"validation_score": 0.895833}, 3)]
    # the results printed together after a step's line (the Trainer's metrics table)
    assert parse("epoch = 3.0", "eval_accuracy = 0.9583", "eval_samples = 96", "eval_loss = 0.45")[
        1:
    ] == [Point({"eval_loss": 0.45}, 3, 3.0)]
    # not a setting, and not a result printed after other lines
    assert parse("Iteration 3, loss = 0.39", "Seed: 42") == [Point({"loss": 0.39}, 3)]
    assert parse("Iteration 3, loss = 0.39", "Test accuracy: 94.2%")[1:] == [
        Summary("test_accuracy", 94.2, "%")  # a final result
    ]


def test_rich_bar_and_its_wrapped_postfix_lines_are_one_bar() -> None:
    bar = (
        "Epoch {}/2  ━━━━━━━━━━━━━━━━━━━━ {}/10 0:00:00 • 0:00:00 671.70it/s v_num: 0.000 "
        "train_loss_step: {}"
    )
    wrapped = " " * 80 + "val_loss: {} val_acc: {}"
    lines = [
        bar.format(0, 5, 0.655),
        bar.format(0, 10, 0.643),
        bar.format(1, 0, 0.643),  # a drawing skipped: the next epoch already shows
        wrapped.format(0.662, 0.625),
        bar.format(1, 0, 0.643),  # the same drawing again (Rich redraws): nothing new
        wrapped.format(0.662, 0.625),
        bar.format(1, 4, 0.612),
    ]
    assert parse(*lines) == [
        Point({"train_loss_step": 0.655}, 5, 0.0),
        Point({"train_loss_step": 0.643}, 10, 0.0),
        Point({"val_loss": 0.662, "val_acc": 0.625}, 10, 0.0),  # they end epoch 0
        Point({"train_loss_step": 0.612}, 14, 1.0),
    ]


def test_two_column_tables_give_summary_values() -> None:
    lines = [
        "┏━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┓",
        "┃        Test metric        ┃       DataLoader 0        ┃",
        "┡━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━┩",
        "│         test_acc          │         0.6171875         │",
        "│         test_loss         │    0.6351768970489502     │",
        "└───────────────────────────┴───────────────────────────┘",
        "| f1 | 91.5% |",
        "| a | b | 3 |",  # three columns: not a key and its value
    ]
    assert parse(*lines) == [
        Summary("test_acc", 0.6171875),
        Summary("test_loss", 0.6351768970489502),
        Summary("f1", 91.5, "%"),
    ]


def test_facts_after_a_model_summarys_parameter_counts_are_model_facts() -> None:
    lines = [
        "Trainable params: 610",
        "Non-trainable params: 0",
        "Total params: 610",
        "Total estimated model params size (MB): 0.002",
        "Modules in train mode: 4",
        "Total FLOPs: 0",
        "Test accuracy: 0.5",  # after a line that is no fact: a summary again
    ]
    assert parse(*lines) == [
        Summary("model.trainable_params", 610.0),
        Summary("model.non_trainable_params", 0.0),
        Summary("model.params", 610.0),
        Summary("model.size_mb", 0.002),
        Summary("model.train_modules", 4.0),
        Summary("model.flops", 0.0),
        Summary("test_accuracy", 0.5),
    ]


def test_a_fixed_width_table_with_a_counter_column() -> None:
    lines = [
        "== GradientBoostingClassifier",
        "      Iter       Train Loss   Remaining Time ",
        "         1           1.3061            0.88s",
        "         2           1.2318            1.05m",
        "       100           0.2904            0.00s",
        "done in 3 s",
        "         3           1.1000            0.50s",  # the table has ended
    ]
    assert parse(*lines) == [
        Point({"train_loss": 1.3061}, 1),
        Point({"train_loss": 1.2318}, 2),
        Point({"train_loss": 0.2904}, 100),
    ]
    # two spaces in a line of text is no table; nor a header without a counter and a result
    assert parse("Hello  world  again", "  1  2  3") == []
    assert parse("  Name    Size", "  1  2") == []


def test_other_ranks_and_duplicated_lines_are_stored_once() -> None:
    lines = [
        "[rank0]: epoch 1 loss=11.4321",
        "[rank1]: epoch 1 loss=11.4321",
        "epoch 2 loss=5.3012",  # every rank printing the same line without a prefix
        "epoch 2 loss=5.3012",
        "epoch 3 loss=4.5569epoch 3 loss=4.5569",  # two ranks' writes interleaved
        "(trainable pid=10711) step 4 loss=4.1",
        "(pid=12, ip=10.0.0.2) step 5 loss=4.0",
        "[1,1]<stdout>: step 6 loss=3.9",  # mpirun --tag-output: rank 1's
        "[1,0]<stdout>: step 6 loss=3.8",
    ]
    assert parse(*lines) == [
        Point({"loss": 11.4321}, 1, 1.0),
        Point({"loss": 5.3012}, 2, 2.0),
        Point({"loss": 4.5569}, 3, 3.0),
        Point({"loss": 4.1}, 4, 3.0),
        Point({"loss": 4.0}, 5, 3.0),
        Point({"loss": 3.8}, 6, 3.0),
    ]
    # without a step, a repeated line is a point each time (the automatic step counts them)
    assert parse("loss=0.5 acc=0.25", "loss=0.5 acc=0.25") == [
        Point({"loss": 0.5, "acc": 0.25}, None),
        Point({"loss": 0.5, "acc": 0.25}, None),
    ]
