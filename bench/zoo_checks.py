"""Checks that built zoo runs are what their metas say, for the CLI's summary and the tests."""

from __future__ import annotations

import numpy as np

# a zoo member must learn: final training accuracy at least this, and (from
# an initialisation) this much above its starting accuracy
MIN_FINAL_ACCURACY = 0.5
MIN_GAIN = 0.3


def problems(runs: list) -> list[str]:
    """One line per broken promise among ``runs`` (``zoo.ZooRun``); empty when all hold."""
    found = []
    by_id = {run.id: run for run in runs}
    starts: dict[str, np.ndarray] = {}
    for run in runs:
        meta, steps = run.meta, run.steps
        if not np.isfinite(run.weights).all():
            found.append(f"{run.id}: non-finite weights")
        if not (np.diff(steps) > 0).all():
            found.append(f"{run.id}: steps not strictly increasing")
        accuracy = meta["train_accuracy"]
        if accuracy[-1] < MIN_FINAL_ACCURACY:
            found.append(f"{run.id}: final train accuracy {accuracy[-1]:.3f} < {MIN_FINAL_ACCURACY}")
        if meta["parent"] is None:
            if steps[0] != 0:
                found.append(f"{run.id}: row 0 is iteration {steps[0]}, not the initialisation")
            if accuracy[-1] < accuracy[0] + MIN_GAIN:
                found.append(f"{run.id}: accuracy {accuracy[0]:.3f} -> {accuracy[-1]:.3f} (did not learn)")
            shared = starts.setdefault(meta["init_id"], run.weights[0])
            if shared.shape != run.weights[0].shape or not np.array_equal(shared, run.weights[0]):
                found.append(f"{run.id}: row 0 differs from the other runs of init_id {meta['init_id']}")
        else:
            found += _finetune_problems(run, by_id.get(meta["parent"]["run"]))
    distinct = list(starts.items())
    for i, (first_id, first) in enumerate(distinct):
        for second_id, second in distinct[i + 1 :]:
            if first.shape == second.shape and np.array_equal(first, second):
                found.append(f"init_ids {first_id} and {second_id} hold the same initialisation")
    return found


def _finetune_problems(run, parent) -> list[str]:
    if parent is None:
        return [f"{run.id}: parent {run.meta['parent']['run']} not loaded"]
    row = run.meta["parent"]["row"]
    found = []
    if run.steps[0] <= 0:
        found.append(f"{run.id}: a fine-tune's rows must start after its starting point")
    if any(np.array_equal(parent.weights[row], weights) for weights in run.weights):
        found.append(f"{run.id}: holds its parent's row {row}")
    nearest = int(np.argmin(np.linalg.norm(parent.weights.astype(np.float64) - run.weights[0], axis=1)))
    if nearest != row:
        found.append(f"{run.id}: first row nearest parent row {nearest}, not its start {row}")
    return found
