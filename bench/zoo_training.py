"""One training run of the evaluation zoo: a small real network trained with torch on the CPU.

A run is described by a JSON-serialisable ``config`` (see :func:`train`) and
is deterministic for the same config: torch runs on one thread and every
random choice comes from a generator seeded by the config.

Iterations are counted as updates: the weights saved at iteration ``u`` are
those after ``u`` optimiser steps (iteration 0 is the initialisation). An
event "at iteration ``i``" (a shift, a learning-rate drop, a spike, a
restart) changes update ``i + 1`` and later ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import zoo_data
import zoo_models
import zoo_optim

from wtraj.toy import flat_weights, load_flat_weights, one_torch_thread

CADENCES = ("iteration", "every_k", "epoch", "log")


@dataclass(frozen=True)
class TrainedRun:
    """The saved checkpoints of one run.

    Attributes
    ----------
    weights : ndarray, shape (n_rows, n_params), float32
        Flattened weights (``state_dict`` order) of each saved checkpoint.
    steps : ndarray, shape (n_rows,), int64
        Iteration of each row, strictly increasing.
    accuracy : ndarray, shape (n_rows,), float64
        Accuracy on the data the run was training on at that row.
    """

    weights: np.ndarray
    steps: np.ndarray
    accuracy: np.ndarray


def saved_iterations(config: dict, iterations_per_epoch: int) -> np.ndarray:
    """The iterations whose weights a run with ``config`` saves, in increasing order.

    ``iteration``: every one; ``every_k``: multiples of ``config["every_k"]``;
    ``epoch``: multiples of ``iterations_per_epoch``; ``log``: 0, 1, 2, 4, ...
    up to ``config["log_interval"]``, then its multiples (as Pythia's
    checkpoints). A fine-tune (``config["start"]`` set) does not save
    iteration 0, its starting point; a run stopped early
    (``config["stop_iteration"]``) none after its stop.
    """
    total = config.get("stop_iteration") or config["iterations"]
    cadence = config["cadence"]
    if cadence == "iteration":
        every = 1
    elif cadence == "every_k":
        every = config["every_k"]
    elif cadence == "epoch":
        every = iterations_per_epoch
    elif cadence == "log":
        every = config["log_interval"]
    else:
        raise ValueError(f"cadence must be one of {CADENCES}; got {cadence!r}.")
    saved = set(range(0, total + 1, every))
    if cadence == "log":
        saved |= {2**i for i in range(int(math.log2(every)) + 1)}
    if config.get("start") is not None:
        saved.discard(0)
    return np.array(sorted(saved), dtype=np.int64)


class _BatchOrder:
    """Mini-batches of whole batches drawn from a fresh permutation each epoch."""

    def __init__(self, n_samples: int, batch_size: int, seed: int):
        import torch

        self.n_samples, self.batch_size = n_samples, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.position = None, n_samples

    def next(self):
        import torch

        if self.position + self.batch_size > self.n_samples:
            self.order = torch.randperm(self.n_samples, generator=self.generator)
            self.position = 0
        batch = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch


def iterations_per_epoch(config: dict) -> int:
    """Whole batches in one pass over the run's (unshifted) training set."""
    return len(zoo_data.load(config["dataset"])[1]) // config["batch_size"]


def train(config: dict, start: np.ndarray | None = None) -> TrainedRun:
    """Train one run and return its saved checkpoints.

    Parameters
    ----------
    config : dict
        ``dataset``, ``arch``, ``optimizer``, ``schedule``, ``cadence`` (see
        the module constants), ``lr``, ``batch_size``, ``iterations`` (updates
        in all), ``every_k``, ``log_interval``, ``lr_drop_iterations`` (step
        schedule), ``init_seed``, ``data_seed``, and the events, each ``None``
        or a dict: ``transform`` (``{"kind", "strength"}``: train on shifted
        data from the start, as a fine-tune on other data), ``shift``
        (``{"kind", "strength", "iteration"}``), ``spike`` (``{"iteration",
        "length", "factor"}``), ``resume_iteration`` (an int: a fresh optimiser
        and a freshly seeded data order from there on), ``start`` (the
        parent's checkpoint, described for the cache; its weights come in
        ``start``).
    start : ndarray, shape (n_params,), optional
        Weights to start from instead of a fresh initialisation.

    Returns
    -------
    TrainedRun
    """
    import torch

    if (start is None) != (config.get("start") is None):
        raise ValueError("config['start'] and the start weights must be given together.")
    # a run stopped early keeps the schedule planned for all its iterations
    total = config.get("stop_iteration") or config["iterations"]
    saved = saved_iterations(config, iterations_per_epoch(config))
    rates, momenta = zoo_optim.learning_rates(config)
    dataset = config["dataset"]

    def tensors(inputs, labels):
        return torch.from_numpy(np.ascontiguousarray(inputs)), torch.from_numpy(labels)

    transform = config.get("transform")
    data = tensors(
        *(
            zoo_data.shifted(dataset, transform["kind"], transform["strength"], config["data_seed"])
            if transform
            else zoo_data.load(dataset)
        )
    )
    shift = config.get("shift")
    with one_torch_thread():
        init_rng = torch.Generator().manual_seed(config["init_seed"])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=init_rng)))
            net = zoo_models.build_model(config["arch"], dataset)
        if start is not None:
            load_flat_weights(net, np.asarray(start, dtype=np.float32))
        optimizer = zoo_optim.make_optimizer(config["optimizer"], net.parameters(), config["lr"])
        order = _BatchOrder(len(data[1]), config["batch_size"], 10_000 + config["data_seed"])
        loss_fn = torch.nn.CrossEntropyLoss()

        def accuracy() -> float:
            with torch.no_grad():
                return float((net(data[0]).argmax(1) == data[1]).float().mean())

        saved_set = set(saved.tolist())
        resume = config.get("resume_iteration")
        weights, accuracies = [], []
        if saved[0] == 0:
            weights.append(flat_weights(net))
            accuracies.append(accuracy())
        for u in range(1, total + 1):
            if shift is not None and u == shift["iteration"] + 1:
                data = tensors(
                    *zoo_data.shifted(dataset, shift["kind"], shift["strength"], config["data_seed"])
                )
                order = _BatchOrder(len(data[1]), config["batch_size"], 20_000 + config["data_seed"])
            if resume is not None and u == resume + 1:
                optimizer = zoo_optim.make_optimizer(config["optimizer"], net.parameters(), config["lr"])
                order = _BatchOrder(len(data[1]), config["batch_size"], 30_000 + config["data_seed"])
            for group in optimizer.param_groups:
                group["lr"] = float(rates[u - 1])
                if momenta is not None and "betas" in group:
                    group["betas"] = (float(momenta[u - 1]), group["betas"][1])
                elif momenta is not None:
                    group["momentum"] = float(momenta[u - 1])
            batch = order.next()
            optimizer.zero_grad(set_to_none=True)
            loss_fn(net(data[0][batch]), data[1][batch]).backward()
            optimizer.step()
            if u in saved_set:
                weights.append(flat_weights(net))
                accuracies.append(accuracy())
    result = TrainedRun(np.stack(weights), saved, np.asarray(accuracies))
    if not np.isfinite(result.weights).all():
        raise FloatingPointError(f"run diverged (non-finite weights); config {config}.")
    return result


def first_row_after(steps: np.ndarray, iteration: int) -> int:
    """The first row whose weights include an update after ``iteration``."""
    row = int(np.searchsorted(steps, iteration, side="right"))
    if row >= len(steps):
        raise ValueError(f"an event at iteration {iteration} falls after the last saved row ({steps[-1]}).")
    return row


def train_and_store(spec: dict, out_dir) -> dict:
    """Train the run of ``spec`` (from ``zoo.catalogue``), write its file atomically, return its meta.

    A fine-tune reads its parent's weights from the parent's file in ``out_dir``.
    """
    import time

    import zoo_store

    config = spec["config"]
    start = None
    if config.get("start") is not None:
        parent_weights, _ = zoo_store.read_arrays(zoo_store.run_file(out_dir, config["start"]["run"]))
        start = parent_weights[config["start"]["row"]]
    began = time.perf_counter()
    run = train(config, start)
    seconds = time.perf_counter() - began
    shift, spike = config.get("shift"), config.get("spike")
    meta = dict(spec["meta"])
    meta.update(
        shift=None
        if shift is None
        else {
            "kind": shift["kind"],
            "strength": shift["strength"],
            "row": first_row_after(run.steps, shift["iteration"]),
        },
        spike=None if spike is None else {"row": first_row_after(run.steps, spike["iteration"])},
        lr_drops=[
            first_row_after(run.steps, i) for i in config.get("lr_drop_iterations") or [] if i < run.steps[-1]
        ]
        if config["schedule"] == "step"
        else [],
        resume_row=None
        if config.get("resume_iteration") is None
        else first_row_after(run.steps, config["resume_iteration"]),
        train_accuracy=[round(float(a), 6) for a in run.accuracy],
        config=config,
        n_params=int(run.weights.shape[1]),
        train_seconds=round(seconds, 3),
    )
    zoo_store.write_run(out_dir, spec["id"], run.weights, run.steps, meta)
    return meta
