"""The calls that tests/test_distributed.py runs in one process and across ranks, and their data.

Each case is a function of the ``group`` argument (None: one process) that
returns a dict of float64 arrays; the test compares every rank's dict with
the one-process dict. Kept out of the test module so that the worker
processes (tests/distributed_worker.py) import neither pytest nor conftest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import wtraj

COLUMN_ALIGN = 4096
METRICS = ("euclidean", "sqeuclidean", "cosine", "inner", "cityblock")
# a model whose tensors do not fall on the column grid, some wider than a block
SHAPES = {
    "emb.weight": (50, 200),
    "fc.weight": (64, 130),
    "fc.bias": (64,),
    "ln.weight": (7,),
    "head.weight": (3, COLUMN_ALIGN),
}


def walk(n: int, d: int, seed: int, dtype=np.float32) -> np.ndarray:
    """A drifting random walk of ``n`` checkpoints: nearby rows, so tile sums matter."""
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(d)
    steps = 1e-3 * (rng.standard_normal((n, d)) + rng.standard_normal(d))
    return (start + np.cumsum(steps, axis=0)).astype(dtype)


def states(n: int, seed: int) -> list[dict[str, np.ndarray]]:
    rows = walk(n, sum(int(np.prod(s)) for s in SHAPES.values()), seed)
    out = []
    for row in rows:
        state, at = {}, 0
        for name, shape in SHAPES.items():
            size = int(np.prod(shape))
            state[name] = row[at : at + size].reshape(shape).copy()
            at += size
        out.append(state)
    return out


def write_data(folder: Path) -> None:
    """Arrays, a run of sharded safetensors checkpoints and a run of torch files."""
    import torch
    from checkpoints_fixtures import write_sharded_safetensors

    np.save(folder / "walk.npy", walk(7, 5 * COLUMN_ALIGN + 321, 1))
    np.save(folder / "small.npy", walk(3, 1000, 2))
    np.save(folder / "wide.npy", walk(2, 3 * COLUMN_ALIGN, 3, np.float64))
    nan = walk(7, 5 * COLUMN_ALIGN + 321, 1)
    # the lowest row with a NaN is 4, in the last columns; row 5 has one in the first
    nan[4, 4 * COLUMN_ALIGN + 5] = np.nan
    nan[5, 100] = np.nan
    np.save(folder / "nan.npy", nan)
    # squares near 1e38 overflow float32 tiles: rows recomputed from float64 copies
    huge = walk(5, 3 * COLUMN_ALIGN, 4)
    huge[2] *= 3e18
    np.save(folder / "huge.npy", huge)
    for i, state in enumerate(states(5, 5)):
        write_sharded_safetensors(folder / "sharded" / f"checkpoint-{i + 1}", state, n_shards=2)
    (folder / "torch").mkdir()
    for i, state in enumerate(states(4, 6)):
        torch.save({k: torch.from_numpy(v) for k, v in state.items()}, folder / "torch" / f"epoch{i}.pt")


def _stats(st) -> dict[str, np.ndarray]:
    out = {
        "distances": st.distances, "step_norms": st.step_norms, "norms": st.norms,
        "turning_angles": st.turning_angles, "menger_curvature": st.menger_curvature,
    }  # fmt: skip
    for name, layer in st.layers.items():
        out[f"{name}/distances"] = layer.distances
        out[f"{name}/step_norms"] = layer.step_norms
        out[f"{name}/norms"] = layer.norms
    return out


def cases(folder: Path) -> dict:
    """Name -> function of ``group`` giving a dict of arrays."""
    X = np.load(folder / "walk.npy")
    small = np.load(folder / "small.npy")
    wide = np.load(folder / "wide.npy")
    huge, nan = np.load(folder / "huge.npy"), np.load(folder / "nan.npy")
    sharded, torch_files = str(folder / "sharded"), str(folder / "torch")
    out = {}
    for metric in METRICS:
        out[f"pairwise-{metric}"] = lambda g, m=metric: {"D": wtraj.pairwise(X, metric=m, group=g)}
    for metric in METRICS:
        out[f"pairs-{metric}"] = lambda g, m=metric: {"D": wtraj.pairwise(X, None, m, split="pairs", group=g)}
    out.update({
        "pairs-cross": lambda g: {"D": wtraj.pairwise(X[:3], X[2:], "cosine", group=g, split="pairs")},
        "pairs-small": lambda g: {"D": wtraj.pairwise(small, group=g, split="pairs")},
        "pairs-list": lambda g: {"D": wtraj.pairwise(list(X), metric="sqeuclidean", group=g, split="pairs")},
        "pairs-sharded": lambda g: {"D": wtraj.pairwise(sharded, metric="cosine", group=g, split="pairs")},
        "pairs-nan": lambda g: {"D": wtraj.pairwise(nan, split="pairs", group=g)},
        "pairs-overflow": lambda g: {"D": wtraj.pairwise(huge, split="pairs", group=g)},
        "pairwise-cross-cosine": lambda g: {"D": wtraj.pairwise(X[:3], X[3:], "cosine", group=g)},
        "pairwise-list": lambda g: {"D": wtraj.pairwise(list(X), metric="cityblock", group=g)},
        "step_norms": lambda g: {"s": wtraj.step_norms(X, group=g)},
        "curvature-angle": lambda g: {"c": wtraj.curvature(X, group=g)},
        "curvature-menger": lambda g: {"c": wtraj.curvature(X, "menger", group=g)},
        "stats": lambda g: _stats(wtraj.trajectory_stats(X, group=g)),
        "stats-small": lambda g: _stats(wtraj.trajectory_stats(small, by_layer=True, group=g)),
        "pairwise-small": lambda g: {"D": wtraj.pairwise(small, metric="cosine", group=g)},
        "pairwise-float64": lambda g: {"D": wtraj.pairwise(wide, group=g)},
        "pairwise-overflow": lambda g: {"D": wtraj.pairwise(huge, group=g)},
        "nan": lambda g: {"D": wtraj.pairwise(nan, group=g)},
        "sharded-pairwise": lambda g: {"D": wtraj.pairwise(sharded, group=g)},
        "sharded-stats": lambda g: _stats(wtraj.trajectory_stats(sharded, by_layer=True, group=g)),
        "sharded-step_norms": lambda g: {"s": wtraj.step_norms(sharded, group=g)},
        "torch-stats": lambda g: _stats(wtraj.trajectory_stats(torch_files, by_layer=True, group=g)),
        "torch-cosine": lambda g: {"D": wtraj.pairwise(torch_files, metric="cosine", group=g)},
        "order": lambda g: {"order": wtraj.order_checkpoints(X, group=g)},
        "separate": lambda g: {"labels": wtraj.separate_trajectories(sharded, group=g)},
    })  # fmt: skip
    return out


def run_case(function, group) -> dict:
    """The case's arrays, or its error as ``{"error": "Type: message"}``."""
    try:
        return {k: np.asarray(v, dtype=np.float64) for k, v in function(group).items()}
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
