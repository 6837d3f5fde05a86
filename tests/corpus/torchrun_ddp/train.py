"""DDP on CPU (gloo), launched by torchrun with two processes.

Like many quick scripts, every rank prints its per-epoch line (the loss is all-reduced first, so
the ranks print the same numbers); only rank 0 prints the final line and writes the truth
(the all-reduced epoch losses it printed, at full precision) to $EXPBOOK_CORPUS_TRUTH.
"""

import argparse
import json
import os
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    # synthetic regression: y = sin(x @ a) * 3 + x @ b + noise
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(2048, 16, generator=g)
    a, b = torch.randn(16, 1, generator=g), torch.randn(16, 1, generator=g)
    y = 3 * torch.sin(x @ a) + x @ b + 0.3 * torch.randn(2048, 1, generator=g)
    data = TensorDataset(x, y)
    sampler = DistributedSampler(data, num_replicas=world, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(data, batch_size=args.batch_size, sampler=sampler)

    model = DDP(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    loss_fn = nn.MSELoss()

    losses = []
    start = time.time()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        total = torch.zeros(2)
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            total += torch.tensor([loss.item() * len(xb), len(xb)])
        dist.all_reduce(total)  # the epoch's mean loss over all ranks' samples
        epoch_loss = (total[0] / total[1]).item()
        losses.append(epoch_loss)
        print(f"epoch {epoch} loss={epoch_loss:.4f}")

    dist.barrier()
    if rank == 0:
        print(f"done: {args.epochs} epochs on {world} processes in {time.time() - start:.1f}s")
        path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
        if path:
            points = [{"key": "loss", "step": None, "epoch": e, "value": v, "printed": True}
                      for e, v in enumerate(losses, start=1)]
            notes = ("Rank 0's values: the epoch's mean training loss, all-reduced over both "
                     "ranks, as it printed them. Every rank (2 under torchrun) printed the same "
                     "'epoch N loss=X' lines; the truth is one point per epoch and key, no "
                     "duplicates. The final 'done' line (a duration) is not a metric.")
            with open(path, "w") as f:
                json.dump({"framework": "torch", "versions": {"torch": torch.__version__},
                           "points": points, "notes": notes}, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
