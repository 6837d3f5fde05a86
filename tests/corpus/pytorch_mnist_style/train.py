"""The official pytorch/examples MNIST script (mnist/main.py), on synthetic MNIST-shaped data.

Same loop, same prints, same flags as the original; what differs: the data are 2,000 train and
500 test images of 1x28x28 made here (ten noisy class templates, normalised like MNIST), since
torchvision and the download are not available, and the CNN is narrower so it runs in seconds
on a CPU. At the end it writes the values it printed, at full precision, to
$EXPBOOK_CORPUS_TRUTH (the corpus's ground truth).
"""

import argparse
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, TensorDataset

RECORDS = []  # (key, step, epoch, value): the values formatted into the lines below


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(2304, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.conv1(x)
        x = F.relu(x)
        x = self.conv2(x)
        x = F.relu(x)
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = self.fc1(x)
        x = F.relu(x)
        x = self.dropout2(x)
        x = self.fc2(x)
        output = F.log_softmax(x, dim=1)
        return output


def synthetic_mnist(train_size, test_size, seed):
    """MNIST-shaped data: each digit class is a fixed random blob pattern, each sample that
    pattern shifted by up to 2 pixels from the centre, scaled and covered in noise; pixel values in [0, 1],
    then normalised with MNIST's mean and std as the original's transform does."""
    g = torch.Generator().manual_seed(seed)
    templates = (torch.rand(10, 1, 7, 7, generator=g) > 0.6).float()
    templates = F.interpolate(templates, size=(20, 20), mode="bilinear", align_corners=False)

    def make(n):
        labels = torch.randint(0, 10, (n,), generator=g)
        images = torch.zeros(n, 1, 28, 28)
        shifts = torch.randint(2, 7, (n, 2), generator=g)
        for i in range(n):
            r, c = shifts[i].tolist()
            images[i, :, r:r + 20, c:c + 20] = templates[labels[i]]
        scale = 0.6 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
        images = (images * scale + 0.3 * torch.randn(n, 1, 28, 28, generator=g)).clamp(0, 1)
        return TensorDataset((images - 0.1307) / 0.3081, labels)

    return make(train_size), make(test_size)


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))
            global_batch = (epoch - 1) * len(train_loader) + batch_idx
            RECORDS.append(("train_loss", global_batch, epoch, loss.item()))
            if args.dry_run:
                break


def test(model, device, test_loader, epoch):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
            pred = output.argmax(dim=1, keepdim=True)  # get the index of the max log-probability
            correct += pred.eq(target.view_as(pred)).sum().item()

    test_loss /= len(test_loader.dataset)

    print('\nTest set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)\n'.format(
        test_loss, correct, len(test_loader.dataset),
        100. * correct / len(test_loader.dataset)))
    RECORDS.append(("test_loss", None, epoch, test_loss))
    RECORDS.append(("test_correct", None, epoch, float(correct)))
    RECORDS.append(("test_acc", None, epoch, 100. * correct / len(test_loader.dataset)))


def main():
    # Training settings
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64, metavar='N',
                        help='input batch size for training (default: 64)')
    parser.add_argument('--test-batch-size', type=int, default=1000, metavar='N',
                        help='input batch size for testing (default: 1000)')
    parser.add_argument('--epochs', type=int, default=14, metavar='N',
                        help='number of epochs to train (default: 14)')
    parser.add_argument('--lr', type=float, default=1.0, metavar='LR',
                        help='learning rate (default: 1.0)')
    parser.add_argument('--gamma', type=float, default=0.7, metavar='M',
                        help='Learning rate step gamma (default: 0.7)')
    parser.add_argument('--no-accel', action='store_true',
                        help='disables accelerator')
    parser.add_argument('--dry-run', action='store_true',
                        help='quickly check a single pass')
    parser.add_argument('--seed', type=int, default=1, metavar='S',
                        help='random seed (default: 1)')
    parser.add_argument('--log-interval', type=int, default=10, metavar='N',
                        help='how many batches to wait before logging training status')
    parser.add_argument('--save-model', action='store_true',
                        help='For Saving the current Model')
    args = parser.parse_args()

    use_accel = not args.no_accel and torch.accelerator.is_available()

    torch.manual_seed(args.seed)

    if use_accel:
        device = torch.accelerator.current_accelerator()
    else:
        device = torch.device("cpu")

    train_kwargs = {'batch_size': args.batch_size, 'shuffle': True}
    test_kwargs = {'batch_size': args.test_batch_size}

    dataset1, dataset2 = synthetic_mnist(2000, 500, args.seed)
    train_loader = DataLoader(dataset1, **train_kwargs)
    test_loader = DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)

    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader, epoch)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.pt")

    write_truth(args, len(train_loader))


def write_truth(args, batches_per_epoch):
    path = os.environ.get("EXPBOOK_CORPUS_TRUTH")
    if not path:
        return
    points = [{"key": key, "step": step, "epoch": epoch, "value": value, "printed": True}
              for key, step, epoch, value in RECORDS]
    notes = (
        "pytorch/examples mnist/main.py loop and prints. 'Train Epoch: E [N/2000 (P%)]\\tLoss: X' "
        "every --log-interval batches: key train_loss (the head names the split), step = the "
        "global batch index "
        f"(epoch - 1) * {batches_per_epoch} + batch_idx, 0-based, where batch_idx = N / "
        f"batch size ({args.batch_size}; the last batch of an epoch is smaller), epoch = E. "
        "'Test set: Average loss: L, Accuracy: C/500 (A%)' after each epoch: test_loss = L, "
        "test_correct = C, test_acc = 100 * C / 500 (printed rounded to a whole percent), "
        "step null, epoch = the epoch just trained. The sample counter N, the dataset size and "
        "the percentages in the brackets are progress, not metrics. The step is not printed "
        "(the brackets count samples, and the batch size is not printed): placement is by "
        "epoch."
    )
    with open(path, "w") as f:
        json.dump({"framework": "torch", "versions": {"torch": torch.__version__},
                   "placement": "epoch", "points": points, "notes": notes}, f, indent=1)


if __name__ == '__main__':
    main()
