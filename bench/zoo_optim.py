"""Optimisers of the evaluation zoo and the learning rate of each update under its schedules."""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw")
SCHEDULES = ("constant", "step", "warmup_cosine", "onecycle")
MOMENTUM = 0.9
WEIGHT_DECAY = 0.05
# warm-up length as a fraction of the run, and the floor of the cosine (a zero
# learning rate would make the last checkpoints identical)
WARMUP_FRACTION = 0.1
COSINE_FLOOR = 0.02


def learning_rates(config: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """Learning rate of each update (index ``u - 1``) and, for one-cycle, its momentum (or Adam's beta1).

    Includes the spike (``config["spike"]``: the updates after its iteration
    run at ``factor`` times the rate for ``length`` updates).
    """
    total, lr, schedule = config["iterations"], config["lr"], config["schedule"]
    updates = np.arange(1, total + 1)
    momenta = None
    if schedule == "constant":
        rates = np.full(total, lr)
    elif schedule == "step":
        drops = np.asarray(config["lr_drop_iterations"])
        rates = lr * 0.1 ** (updates[:, None] > drops[None, :]).sum(1)
    elif schedule == "warmup_cosine":
        warm = max(1, round(WARMUP_FRACTION * total))
        progress = np.clip((updates - warm) / max(total - warm, 1), 0.0, 1.0)
        cosine = COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + np.cos(np.pi * progress))
        rates = lr * np.where(updates <= warm, updates / warm, cosine)
    elif schedule == "onecycle":
        rates, momenta = _one_cycle(config)
    else:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}.")
    spike = config.get("spike")
    if spike is not None:
        hit = (updates > spike["iteration"]) & (updates <= spike["iteration"] + spike["length"])
        rates = np.where(hit, rates * spike["factor"], rates)
    return rates, momenta


def _one_cycle(config: dict) -> tuple[np.ndarray, np.ndarray | None]:
    # torch's OneCycleLR driven on a stand-in parameter: the same values as in
    # a real run, and a restart can pick them up at any iteration
    import torch

    param = torch.zeros(1, requires_grad=True)
    optimizer = make_optimizer(config["optimizer"], [param], config["lr"])
    has_momentum = config["optimizer"] != "sgd"
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config["lr"], total_steps=config["iterations"], cycle_momentum=has_momentum
    )
    rates, momenta = [], []
    for _ in range(config["iterations"]):
        group = optimizer.param_groups[0]
        rates.append(group["lr"])
        momenta.append(group["betas"][0] if "betas" in group else group["momentum"])
        optimizer.step()
        scheduler.step()
    return np.array(rates), (np.array(momenta) if has_momentum else None)


def make_optimizer(name: str, params, lr: float):
    """A fresh torch optimiser ``name`` over ``params`` (its state empty)."""
    import torch

    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if name == "sgd_momentum":
        return torch.optim.SGD(params, lr=lr, momentum=MOMENTUM)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=WEIGHT_DECAY)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}; got {name!r}.")
