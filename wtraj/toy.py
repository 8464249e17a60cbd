"""Real, tiny training runs for tests, benchmarks and the sample trajectories.

Trains small MLPs or CNNs with torch on scikit-learn's bundled ``digits``
dataset (1,797 greyscale 8x8 images, 10 classes) on the CPU and keeps a
checkpoint, the flattened float32 weights, every ``steps_per_checkpoint``
optimisation steps (one epoch by default). Checkpoint 0 is the
initialisation, before any step.

The options reproduce the situations trajectory analysis has to handle:

- ``init_seed``: the weight initialisation. Runs with the same ``init_seed``
  share checkpoint 0 exactly.
- ``data_seed``: the order in which mini-batches are drawn.
- ``start``: flattened weights to start from instead of a fresh
  initialisation (a fine-tune of a parent run's checkpoint).
- ``shift_at`` / ``shift``: from that checkpoint on, the training images are
  changed (``"invert"``: ``1 - x``; ``"rotate"``: turned by 90 degrees), a
  data shift in the middle of training.
- ``lr_steps``: ``{checkpoint: factor}``, multiply the learning rate by
  ``factor`` from that checkpoint on (a step schedule).

Every run is deterministic for the same arguments: torch runs on one thread
and all randomness comes from generators seeded by the arguments.

torch and scikit-learn are imported inside the functions, so importing
``wtraj`` does not need them. A run of 25 epochs of the default MLP takes
about a quarter of a second.

Examples
--------
>>> from wtraj import toy
>>> run = toy.train_run(init_seed=0, data_seed=0, n_checkpoints=20)
>>> run.weights.shape            # (n_checkpoints + 1, n_params), float32
(21, 2410)
>>> toy.save_run(run, "samples/run_seed0")   # one safetensors file per checkpoint
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

SHIFTS = ("invert", "rotate")
MODELS = ("mlp", "cnn")


@dataclass(frozen=True)
class TrainedRun:
    """The checkpoints of one training run.

    Attributes
    ----------
    weights : ndarray, shape (n_checkpoints + 1, n_params), float32
        Row ``t`` holds the flattened weights after ``t`` checkpoint
        intervals; row 0 is the starting point.
    tensors : list of (str, tuple of int)
        Name and shape of each tensor in the flattened vector, in order, as in
        the model's ``state_dict``.
    accuracy : ndarray, shape (n_checkpoints + 1,), float64
        Training-set accuracy at each checkpoint (on the data the run was
        training on at that time).
    config : dict
        The arguments the run was trained with.
    """

    weights: np.ndarray
    tensors: list[tuple[str, tuple[int, ...]]]
    accuracy: np.ndarray
    config: dict = field(default_factory=dict)

    def state_dict(self, checkpoint: int) -> dict[str, np.ndarray]:
        """The tensors of one checkpoint, named as in the model's ``state_dict``."""
        flat = self.weights[checkpoint]
        tensors = {}
        offset = 0
        for name, shape in self.tensors:
            size = int(np.prod(shape))
            tensors[name] = flat[offset : offset + size].reshape(shape).copy()
            offset += size
        return tensors


@lru_cache(maxsize=1)
def load_digits_data() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ``(images (1797, 8, 8) float32 in [0, 1], labels (1797,) int64)``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return images, digits.target.astype(np.int64)


def shifted_images(images: np.ndarray, shift: str) -> np.ndarray:
    """``images`` (n, 8, 8) after a data shift: ``"invert"`` or ``"rotate"`` (90 degrees)."""
    if shift == "invert":
        return 1.0 - images
    if shift == "rotate":
        return np.ascontiguousarray(np.rot90(images, k=1, axes=(1, 2)))
    raise ValueError(f"shift must be one of {SHIFTS}; got {shift!r}.")


def build_model(model: str = "mlp", hidden: int = 32):
    """A fresh, untrained ``torch.nn.Module`` for 8x8 digit images.

    ``"mlp"``: 64 -> ``hidden`` -> 10 with ReLU. ``"cnn"``: a 3x3 convolution
    to 8 channels, ReLU, 2x2 max-pooling, then a linear layer to 10 classes.
    Both take input of shape (batch, 1, 8, 8).
    """
    from collections import OrderedDict

    from torch import nn

    # named layers, so that state_dict keys read "fc1.weight", "conv1.bias", ...
    if model == "mlp":
        layers = [
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(64, hidden)),
            ("relu", nn.ReLU()),
            ("fc2", nn.Linear(hidden, 10)),
        ]
        return nn.Sequential(OrderedDict(layers))
    if model == "cnn":
        layers = [
            ("conv1", nn.Conv2d(1, 8, kernel_size=3, padding=1)),
            ("relu", nn.ReLU()),
            ("pool", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
            ("fc1", nn.Linear(8 * 4 * 4, 10)),
        ]
        return nn.Sequential(OrderedDict(layers))
    raise ValueError(f"model must be one of {MODELS}; got {model!r}.")


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread inside the block: the float sums, hence a whole run, are reproducible."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def flat_weights(module) -> np.ndarray:
    """The module's ``state_dict`` as one flat float32 vector, tensors in order."""
    return np.concatenate([t.detach().reshape(-1).numpy() for t in module.state_dict().values()]).astype(
        np.float32
    )


def load_flat_weights(module, flat: np.ndarray) -> None:
    """Load a flat vector of :func:`flat_weights` into ``module`` (ValueError for a wrong length)."""
    import torch

    state = module.state_dict()
    expected = sum(t.numel() for t in state.values())
    if flat.shape != (expected,):
        raise ValueError(
            f"start must be a flat vector of {expected} weights for this model; got shape {flat.shape}."
        )
    offset = 0
    for name, tensor in state.items():
        size = tensor.numel()
        state[name] = torch.from_numpy(flat[offset : offset + size].copy()).reshape(tensor.shape)
        offset += size
    module.load_state_dict(state)


def train_run(
    *,
    model: str = "mlp",
    init_seed: int = 0,
    data_seed: int = 0,
    n_checkpoints: int = 20,
    steps_per_checkpoint: int | None = None,
    batch_size: int = 32,
    lr: float = 0.1,
    momentum: float = 0.0,
    hidden: int = 32,
    lr_steps: dict[int, float] | None = None,
    shift_at: int | None = None,
    shift: str = "invert",
    start: np.ndarray | None = None,
) -> TrainedRun:
    """Train one small network on digits with SGD and keep its checkpoints.

    Parameters
    ----------
    model : {"mlp", "cnn"}
        Architecture, see :func:`build_model`.
    init_seed : int
        Seed of the weight initialisation (ignored when ``start`` is given).
    data_seed : int
        Seed of the mini-batch order.
    n_checkpoints : int
        Checkpoints kept after the starting point; the run has
        ``n_checkpoints + 1`` rows.
    steps_per_checkpoint : int, optional
        SGD steps between checkpoints; one epoch (``ceil(1797 / batch_size)``)
        by default.
    batch_size, lr, momentum, hidden : see ``torch.optim.SGD`` and :func:`build_model`.
    lr_steps : dict of int to float, optional
        ``{t: factor}``: the learning rate is multiplied by ``factor`` for the
        steps that lead to checkpoint ``t + 1`` and after.
    shift_at : int, optional
        Checkpoint after which the images change: the steps leading to
        checkpoint ``shift_at + 1`` and all later ones train on
        ``shifted_images(images, shift)``.
    shift : {"invert", "rotate"}
        Kind of data shift.
    start : ndarray, shape (n_params,), optional
        Weights to start from (for example a parent run's checkpoint).

    Returns
    -------
    TrainedRun
    """
    import torch

    if n_checkpoints < 1:
        raise ValueError(f"n_checkpoints must be at least 1; got {n_checkpoints}.")
    if shift_at is not None and not 0 <= shift_at < n_checkpoints:
        raise ValueError(f"shift_at must lie in [0, n_checkpoints); got {shift_at}.")
    if shift not in SHIFTS:
        raise ValueError(f"shift must be one of {SHIFTS}; got {shift!r}.")
    lr_steps = dict(lr_steps or {})
    config = dict(
        model=model,
        init_seed=init_seed,
        data_seed=data_seed,
        n_checkpoints=n_checkpoints,
        steps_per_checkpoint=steps_per_checkpoint,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        hidden=hidden,
        lr_steps=lr_steps,
        shift_at=shift_at,
        shift=shift,
        from_start=start is not None,
    )
    images, labels = load_digits_data()
    n_samples = len(labels)
    if steps_per_checkpoint is None:
        steps_per_checkpoint = -(-n_samples // batch_size)
    clean = torch.from_numpy(images)[:, None]
    shifted = torch.from_numpy(shifted_images(images, shift))[:, None]
    targets = torch.from_numpy(labels)

    with one_torch_thread():
        init_rng = torch.Generator().manual_seed(init_seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=init_rng)))
            net = build_model(model, hidden)
        if start is not None:
            load_flat_weights(net, np.asarray(start, dtype=np.float32))
        tensors = [(name, tuple(t.shape)) for name, t in net.state_dict().items()]
        optimizer = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        loss_fn = torch.nn.CrossEntropyLoss()
        order_rng = torch.Generator().manual_seed(10_000 + data_seed)

        def accuracy(inputs) -> float:
            with torch.no_grad():
                return float((net(inputs).argmax(1) == targets).float().mean())

        weights = [flat_weights(net)]
        accuracies = [accuracy(clean)]
        order = torch.randperm(n_samples, generator=order_rng)
        position = 0
        for t in range(n_checkpoints):
            if t in lr_steps:
                for group in optimizer.param_groups:
                    group["lr"] *= lr_steps[t]
            inputs = shifted if shift_at is not None and t >= shift_at else clean
            for _ in range(steps_per_checkpoint):
                if position >= n_samples:
                    order = torch.randperm(n_samples, generator=order_rng)
                    position = 0
                batch = order[position : position + batch_size]
                position += batch_size
                optimizer.zero_grad(set_to_none=True)
                loss_fn(net(inputs[batch]), targets[batch]).backward()
                optimizer.step()
            weights.append(flat_weights(net))
            accuracies.append(accuracy(inputs))
    return TrainedRun(np.stack(weights), tensors, np.asarray(accuracies), config)


def save_run(run: TrainedRun, folder: str | os.PathLike, prefix: str = "epoch") -> list[Path]:
    """Write each checkpoint of ``run`` to ``folder/{prefix}_{t:03d}.safetensors``.

    Tensors are named as in the model's ``state_dict`` (``"fc1.weight"``, ...).
    Each file is written to a temporary name and renamed, so an interrupted
    call never leaves a truncated checkpoint behind.

    Returns
    -------
    list of pathlib.Path
        The files written, in checkpoint order.
    """
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t in range(run.weights.shape[0]):
        path = folder / f"{prefix}_{t:03d}.safetensors"
        handle, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        os.close(handle)
        try:
            save_file(run.state_dict(t), tmp, metadata={"checkpoint": str(t)})
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths
