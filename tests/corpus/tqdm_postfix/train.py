"""A plain PyTorch classifier loop with a tqdm bar per epoch, the way many training scripts do it:
`bar.set_postfix(loss=..., acc=...)` after every batch and `tqdm.write(...)` with the validation
numbers at each epoch's end. Synthetic tabular data (two interleaved spirals with two noise features),
seeded. At the end it writes the values it printed, at full precision, to $EXPBOOK_CORPUS_TRUTH.
"""

import argparse
import json
import math
import os

import torch
import torch.nn as nn
import tqdm as tqdm_module
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm


def spirals(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    t = torch.rand(n, generator=g) * 1.5 * math.pi + 0.5
    angle = t + labels * math.pi
    xy = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], 1) / 10
    xy = xy + 0.04 * torch.randn(n, 2, generator=g)
    noise = torch.randn(n, 2, generator=g)
    return TensorDataset(torch.cat([xy, noise], 1), labels)


def evaluate(model, loader, criterion):
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:
            logits = model(x)
            total_loss += criterion(logits, y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    return total_loss / seen, correct / seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    train_set, val_set = spirals(1280, args.seed), spirals(320, args.seed + 1)
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=128)

    model = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    criterion = nn.CrossEntropyLoss()

    records = []  # (key, step, epoch, value) of every value formatted into the output
    global_step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        correct, seen = 0, 0
        with tqdm(train_loader, desc=f"Epoch {epoch}/{args.epochs}", unit="batch") as bar:
            for x, y in bar:
                optimizer.zero_grad()
                logits = model(x)
                loss = criterion(logits, y)
                loss.backward()
                optimizer.step()
                global_step += 1
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
                acc = correct / seen
                bar.set_postfix(loss=loss.item(), acc=acc)
                records.append(("loss", global_step, epoch, loss.item()))
                records.append(("acc", global_step, epoch, acc))
        val_loss, val_acc = evaluate(model, val_loader, criterion)
        tqdm.write(f"epoch {epoch}: val_loss={val_loss:.4f} val_acc={val_acc:.4f}")
        records.append(("val_loss", None, epoch, val_loss))
        records.append(("val_acc", None, epoch, val_acc))

    path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
    if path:
        notes = (
            "tqdm bar per epoch ('Epoch E/N: ...| k/40 [..., loss=X, acc=Y]'); set_postfix after "
            "every batch, and set_postfix refreshes the bar, so every value is displayed (tqdm "
            "formats floats with 3 significant digits). loss = that batch's loss, acc = the "
            "epoch's running training accuracy so far; step = the global batch count (1-based, "
            "optimizer steps done, 40 per epoch), epoch = E. The counter k the bar shows next to "
            "a postfix can lag behind (tqdm's iterator updates n only when mininterval allows). "
            "val_loss / val_acc from the tqdm.write line after each epoch: step null, epoch = E."
        )
        points = [{"key": k, "step": s, "epoch": e, "value": v, "printed": True}
                  for k, s, e, v in records]
        with open(path, "w") as f:
            json.dump({"framework": "tqdm",
                       "versions": {"tqdm": tqdm_module.__version__, "torch": torch.__version__},
                       "points": points, "notes": notes}, f, indent=1)


if __name__ == "__main__":
    main()
