"""Fine-tune a (tiny, randomly initialised) BERT classifier with the Hugging Face Trainer.

Configured the way the official examples are (run_glue.py): model/data arguments in a dataclass,
everything else from TrainingArguments, both parsed by HfArgumentParser from the command line.
No hub access: the model is built from a config and the data are synthetic token sequences of
two "topics" (token blocks of the vocabulary).

The ground truth (the Trainer's own state.log_history) goes to $EXPBOOK_CORPUS_TRUTH at the end.
"""

import json
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
import transformers
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    HfArgumentParser,
    ProgressCallback,
    Trainer,
    TrainingArguments,
    set_seed,
)


@dataclass
class ModelArguments:
    hidden_size: int = field(default=32, metadata={"help": "hidden size of the tiny BERT"})
    num_hidden_layers: int = field(default=2, metadata={"help": "number of encoder layers"})
    num_attention_heads: int = field(default=2)
    vocab_size: int = field(default=64)


@dataclass
class DataArguments:
    max_seq_length: int = field(default=24)
    num_train_samples: int = field(default=320)
    num_eval_samples: int = field(default=96)


class SyntheticTopicDataset(torch.utils.data.Dataset):
    """Random token sequences of two "topics": about 30 % of a sequence's tokens come from
    the topic's own block of the vocabulary, the rest from the whole vocabulary."""

    def __init__(self, n, length, vocab, seed):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 2, size=n)
        ids = rng.integers(7, vocab, size=(n, length))
        block = (vocab - 7) // 4
        topical = rng.random((n, length)) < 0.3
        starts = 7 + labels * block
        own = starts[:, None] + rng.integers(0, block, size=(n, length))
        ids = np.where(topical, own, ids)
        ids[:, 0] = 2  # [CLS]-like
        self.input_ids = torch.tensor(ids, dtype=torch.long)
        self.labels = torch.tensor(labels, dtype=torch.long)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {
            "input_ids": self.input_ids[i],
            "attention_mask": torch.ones_like(self.input_ids[i]),
            "labels": self.labels[i],
        }


def compute_metrics(eval_pred):
    logits, labels = eval_pred
    predictions = np.argmax(logits, axis=-1)
    return {"accuracy": float((predictions == labels).mean())}


def main():
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    model_args, data_args, training_args = parser.parse_args_into_dataclasses()
    set_seed(training_args.seed)
    torch.set_num_threads(2)

    config = BertConfig(
        vocab_size=model_args.vocab_size,
        hidden_size=model_args.hidden_size,
        num_hidden_layers=model_args.num_hidden_layers,
        num_attention_heads=model_args.num_attention_heads,
        intermediate_size=4 * model_args.hidden_size,
        max_position_embeddings=64,
        num_labels=2,
    )
    model = BertForSequenceClassification(config)
    train_dataset = SyntheticTopicDataset(data_args.num_train_samples, data_args.max_seq_length,
                                    model_args.vocab_size, seed=1)
    eval_dataset = SyntheticTopicDataset(data_args.num_eval_samples, data_args.max_seq_length,
                                   model_args.vocab_size, seed=2)

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        compute_metrics=compute_metrics,
    )

    train_result = trainer.train()
    metrics = train_result.metrics
    metrics["train_samples"] = len(train_dataset)
    trainer.log_metrics("train", metrics)
    logged_in_training = len(trainer.state.log_history)

    metrics = trainer.evaluate()
    metrics["eval_samples"] = len(eval_dataset)
    trainer.log_metrics("eval", metrics)

    write_truth(trainer, logged_in_training)


def write_truth(trainer, logged_in_training):
    """Every metric of every log_history entry, at the entry's global step and epoch.

    What was printed follows the Trainer's print path: with tqdm on, ProgressCallback.on_log
    writes each log dict (floats as '%.4g' strings, without total_flos) while the training bar is
    open, i.e. for the entries logged inside train(); the evaluate() after training is printed
    only by trainer.log_metrics, which shows *_runtime as a duration (h:mm:ss) and total_flos
    in GF, so those are not printed as their values.
    """
    path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
    if not path:
        return
    progress = any(isinstance(cb, ProgressCallback) for cb in trainer.callback_handler.callbacks)
    points = []
    for index, entry in enumerate(trainer.state.log_history):
        in_training = index < logged_in_training
        for key, value in entry.items():
            if key in ("step", "epoch") or not isinstance(value, (int, float)):
                continue
            if in_training:
                printed = progress and key != "total_flos"
            else:
                printed = "_runtime" not in key and key != "total_flos"
            points.append({"key": key, "step": entry["step"], "epoch": entry.get("epoch"),
                           "value": float(value), "printed": printed})
    truth = {
        "framework": "transformers",
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__},
        "points": points,
        "notes": (
            "Truth is Trainer.state.log_history: each entry's metrics at its 'step' (global step) "
            "and 'epoch' (fractional, as logged); 'step' and 'epoch' themselves are positions, "
            "not metrics. Printed: ProgressCallback (tqdm on) prints every log dict written inside "
            "train() except total_flos, floats as quoted '%.4g' strings; the final summary dict "
            "(train_runtime, train_samples_per_second, train_steps_per_second, train_loss) is "
            "printed and then again by trainer.log_metrics('train') as a '***** train metrics *****' "
            "table. The evaluate() after train() is not printed by the callback (the training bar "
            "is closed) but by trainer.log_metrics('eval'), where eval_runtime appears as a "
            "duration (0:00:00.05) and is marked not printed. train_samples/eval_samples are added "
            "by the script to the log_metrics tables only (as in run_glue.py), not in log_history."
        ),
    }
    with open(path, "w") as handle:
        json.dump(truth, handle, indent=1)


if __name__ == "__main__":
    sys.exit(main())
