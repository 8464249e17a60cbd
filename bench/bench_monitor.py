"""TrajectoryMonitor overhead: a monitored training step beside the training step alone.

A small MLP (784-1024-1024-10, 1.85M float32 parameters, batch 128, SGD with
momentum) on the CPU. Providers, all in one run:

- ``training step``: forward, backward, ``optimizer.step()`` (the baseline);
- ``training step + monitor (snapshot)``: the same plus ``mon.step()`` in the
  default mode (two exact snapshots, count sketches for init/reference);
- ``training step + monitor (sketch)``: plus ``mon.step()`` in sketch mode;
- ``monitor.step() alone (snapshot)``: the monitor's own cost;
- ``monitor.step() alone (snapshot, torch path)``: the same with ``backend="torch"``
  (the path CUDA and half-precision parameters take), the baseline of the fused kernel.

torch runs on one thread (``torch.set_num_threads(1)``) for every provider, so
that the ratio measures work, not contention for cores with other processes.

The "vs wtraj" column of the table is the ratio to the first provider, the
training step: ``1.10x`` means 10 % overhead per monitored step. The error
column gives the sketch mode's relative error on the step norm against the
snapshot mode's exact value, measured in the same run.

Run: python -m pytest bench/bench_monitor.py --benchmark-only -s
"""

from __future__ import annotations

import pytest
from conftest import record

torch = pytest.importorskip("torch")

from wtraj import TrajectoryMonitor  # noqa: E402

GROUP = "TrajectoryMonitor overhead per step (MLP 1.85M params, batch 128, CPU)"
BATCH = 128
ROUNDS = 30


def _setup():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(784, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 1024), torch.nn.ReLU(),
        torch.nn.Linear(1024, 10),
    )  # fmt: skip
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, 784)
    y = torch.randint(10, (BATCH,))

    def train_step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return model, train_step


def _time(benchmark, fn):
    # warm-up: allocator, first snapshot rotation, momentum buffers
    for _ in range(3):
        fn()
    benchmark.pedantic(fn, rounds=ROUNDS, iterations=1)


def test_training_step(benchmark):
    _, train_step = _setup()
    _time(benchmark, train_step)
    record(GROUP, "training step", benchmark)


def test_training_step_with_snapshot_monitor(benchmark):
    model, train_step = _setup()
    monitor = TrajectoryMonitor(model)

    def monitored():
        train_step()
        monitor.step()

    _time(benchmark, monitored)
    memory = monitor.memory_bytes()
    record(
        GROUP, "training step + monitor (snapshot)", benchmark,
        note=f"extra memory {memory['total'] / 2**20:.1f} MiB",
    )  # fmt: skip


def test_training_step_with_sketch_monitor(benchmark):
    model, train_step = _setup()
    exact = TrajectoryMonitor(model)
    monitor = TrajectoryMonitor(model, mode="sketch")

    def monitored():
        train_step()
        monitor.step()

    _time(benchmark, monitored)
    # the sketch's error on one step, against the exact step norm of the same step
    train_step()
    exact.step()
    monitor.step()
    train_step()
    truth, estimate = exact.step().step_norm, monitor.step().step_norm
    memory = monitor.memory_bytes()
    record(
        GROUP, "training step + monitor (sketch)", benchmark, abs(estimate / truth - 1),
        note=f"extra memory {memory['total'] / 2**20:.1f} MiB",
    )  # fmt: skip


def test_monitor_step_alone(benchmark):
    model, train_step = _setup()
    monitor = TrajectoryMonitor(model)

    # time only mon.step(): the parameters change between rounds through setup
    benchmark.pedantic(monitor.step, setup=lambda: train_step(), rounds=ROUNDS, iterations=1, warmup_rounds=3)
    record(GROUP, "monitor.step() alone (snapshot)", benchmark)


def test_monitor_step_alone_torch_path(benchmark):
    model, train_step = _setup()
    monitor = TrajectoryMonitor(model, backend="torch")
    benchmark.pedantic(monitor.step, setup=lambda: train_step(), rounds=ROUNDS, iterations=1, warmup_rounds=3)
    record(GROUP, "monitor.step() alone (snapshot, torch path)", benchmark)
