"""A plain PyTorch training loop that logs wtraj's trajectory metrics to TensorBoard.

Run it, then look at the curves::

    python examples/tensorboard_loop.py --logdir runs/wtraj-example
    tensorboard --logdir runs/wtraj-example

It trains a small MLP on scikit-learn's digits on the CPU (a few seconds), asks
for a retest whenever the model has moved more than 10 % from the last tested
version, and "tests" it (here: the validation accuracy) when asked.
"""

from __future__ import annotations

import argparse
import math

import torch
from sklearn.datasets import load_digits
from torch.utils.tensorboard import SummaryWriter

from wtraj import TrajectoryMonitor


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", default="runs/wtraj-example")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--retest-at", type=float, default=0.1, help="relative distance")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    train_x, train_y, val_x, val_y = x[:1400], y[:1400], x[1400:], y[1400:]
    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    monitor = TrajectoryMonitor(model)
    writer = SummaryWriter(args.logdir)
    step = 0
    for _ in range(args.epochs):
        for batch in torch.randperm(len(train_x)).split(64):
            loss = torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            metrics = monitor.step()
            writer.add_scalar("train/loss", loss.item(), step)
            for name, value in metrics.as_dict(prefix="wtraj/").items():
                # the first turning angle is undefined (NaN): no point rather than a gap in the curve
                if not math.isnan(value):
                    writer.add_scalar(name, value, step)
            if monitor.needs_retest(relative_threshold=args.retest_at):
                with torch.no_grad():
                    accuracy = (model(val_x).argmax(1) == val_y).float().mean().item()
                writer.add_scalar("test/accuracy", accuracy, step)
                monitor.mark_tested()
    writer.close()
    return monitor.latest.as_dict()


if __name__ == "__main__":
    for name, value in main().items():
        print(f"{name:32s} {value:.6g}")
