"""The evaluation zoo: a catalogue of small real training runs, built once and cached on disk.

Each seed set is about 60 runs of small networks (MLP and CNN on digits, MLP
on wine, GRU on a sequence task) over every optimiser, schedule and
checkpoint cadence, with sibling groups, fine-tunes, data shifts, loss
spikes, resumed and early-stopped runs (see :func:`catalogue`). Runs with a
family value in :data:`HELD_OUT` form the held-out split.

Usage::

    python bench/zoo.py [--out DIR] [--seed-sets 0 1 2 3] [--size full|small] [--jobs 2]

or, from Python (``sys.path.insert(0, "bench")``)::

    import zoo
    zoo.build_zoo("bench/.zoo", seed_sets=(0,))
    runs = zoo.load_zoo("bench/.zoo", split="dev")

The default folder is ``bench/.zoo``, or ``$WTRAJ_ZOO_DIR`` when set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the zoo's modules sit beside this file, which also runs as a script
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo_checks  # noqa: E402
import zoo_store  # noqa: E402
import zoo_training  # noqa: E402
from zoo_catalogue import FAMILY_KEYS, HELD_OUT, KINDS, SIZES, catalogue, split_of  # noqa: E402, F401


def default_dir() -> Path:
    """``$WTRAJ_ZOO_DIR`` when set, else ``bench/.zoo``."""
    return Path(os.environ.get("WTRAJ_ZOO_DIR") or Path(__file__).resolve().parent / ".zoo")


@dataclass
class ZooRun:
    """One run of the zoo.

    Attributes
    ----------
    id : str
        ``"s{seed_set}/{dataset}-{arch}-{optimizer}-{schedule}-{cadence}-{kind}-{letter}"``.
    weights : ndarray, shape (n, D), float32
        The saved checkpoints, in training order.
    steps : ndarray, shape (n,), int64
        Training iteration of each row; for a fine-tune, iterations since its
        start (all > 0: its starting point is not among its rows).
    meta : dict
        What the run is, JSON-serialisable. A "row" is an index into
        ``weights``; an event's row is the first row whose weights include
        an update made under the new regime.

        - ``seed_set``; ``split``: ``"dev"`` or ``"heldout"`` (:data:`HELD_OUT`);
        - ``family``: ``{"dataset", "arch", "optimizer", "schedule", "cadence"}``;
        - ``kind``: one of :data:`KINDS`;
        - ``init_id``: shared by the runs whose row 0 is the same
          initialisation, bit for bit; a fine-tune's own id;
        - ``group``: the sibling group, or None;
        - ``parent``: None, or ``{"run", "row"}`` of the parent checkpoint a
          fine-tune starts from (not among the fine-tune's rows);
        - ``shift``: None, or ``{"kind", "strength", "row"}``;
        - ``spike``: None, or ``{"row"}`` (learning rate x20 for 3 updates);
        - ``lr_drops``: rows after each x0.1 drop of a step schedule;
        - ``resume_row``: None, or the first row after the restart (fresh
          optimiser state and data order from row ``resume_row - 1``);
        - ``train_accuracy``: per row, on the data trained on at that time;
        - ``config``: the arguments of ``zoo_training.train``;
        - ``n_params``, ``train_seconds``: size and training time.
    """

    id: str
    weights: np.ndarray
    steps: np.ndarray
    meta: dict


def _cached_meta(out_dir: Path, spec: dict) -> dict | None:
    meta = zoo_store.read_meta(zoo_store.run_file(out_dir, spec["id"]))
    return meta if meta is not None and meta.get("config") == spec["config"] else None


def build_zoo(out_dir=None, seed_sets=(0, 1, 2, 3), size: str = "full", jobs: int = 2) -> Path:
    """Train the runs of ``seed_sets`` that ``out_dir`` does not hold yet, and write its catalogue.

    A run whose file holds the same config is not retrained. Runs train in
    ``jobs`` processes (one torch thread each); fine-tunes wait for their
    parent. ``catalogue.json`` is rewritten after each run, so a folder
    being built can already be loaded.

    Returns
    -------
    pathlib.Path
        The folder.
    """
    out_dir = Path(out_dir) if out_dir is not None else default_dir()
    if not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be a positive int; got {jobs!r}.")
    stored = zoo_store.read_catalogue(out_dir)
    if stored["size"] not in (None, size):
        raise ValueError(
            f"{out_dir} holds a zoo of size {stored['size']!r}; build size {size!r} into another folder."
        )
    # the catalogue lists the runs of every seed set in the folder that hold
    # the config asked for now, in catalogue order; stale ones drop out
    present = {entry["meta"]["seed_set"] for entry in stored["runs"]}
    specs = [spec for seed_set in sorted(present | set(seed_sets)) for spec in catalogue(seed_set, size)]
    order = {spec["id"]: i for i, spec in enumerate(specs)}
    entries, pending = {}, []
    for spec in specs:
        meta = _cached_meta(out_dir, spec)
        if meta is not None:
            entries[spec["id"]] = _entry(out_dir, spec["id"], meta)
        elif spec["meta"]["seed_set"] in set(seed_sets):
            pending.append(spec)

    def current() -> dict:
        runs = sorted(entries.values(), key=lambda entry: order[entry["id"]])
        return {"size": size, "runs": runs}

    def record(spec: dict, meta: dict) -> None:
        entries[spec["id"]] = _entry(out_dir, spec["id"], meta)
        zoo_store.write_catalogue(out_dir, current())

    if current() != stored:
        zoo_store.write_catalogue(out_dir, current())
    if jobs == 1:
        for spec in pending:
            record(spec, zoo_training.train_and_store(spec, out_dir))
    else:
        _build_parallel(out_dir, pending, jobs, record)
    return out_dir


def _entry(out_dir: Path, run_id: str, meta: dict) -> dict:
    return {"id": run_id, "file": str(zoo_store.run_file(out_dir, run_id).relative_to(out_dir)), "meta": meta}


def _build_parallel(out_dir: Path, pending: list[dict], jobs: int, record) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if not pending:
        return
    waiting = list(pending)
    unfinished = {spec["id"] for spec in pending}
    running = {}
    # spawn: a fresh interpreter per worker, no torch state inherited from the parent
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while waiting or running:
            ready = [
                s
                for s in waiting
                if s["config"]["start"] is None or s["config"]["start"]["run"] not in unfinished
            ]
            for spec in ready:
                waiting.remove(spec)
                running[pool.submit(zoo_training.train_and_store, spec, out_dir)] = spec
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                spec = running.pop(future)
                record(spec, future.result())
                unfinished.discard(spec["id"])


def load_zoo(out_dir=None, seed_sets=None, split: str | None = None) -> list[ZooRun]:
    """The runs built in ``out_dir``, in catalogue order.

    Parameters
    ----------
    out_dir : path, optional
        The zoo folder (:func:`default_dir` by default).
    seed_sets : iterable of int, optional
        Only these seed sets (all by default).
    split : {None, "dev", "heldout"}
        Only the runs of this split (all by default).
    """
    out_dir = Path(out_dir) if out_dir is not None else default_dir()
    if split not in (None, "dev", "heldout"):
        raise ValueError(f"split must be None, 'dev' or 'heldout'; got {split!r}.")
    if not (out_dir / zoo_store.CATALOGUE).exists():
        raise FileNotFoundError(
            f"no zoo in {out_dir} ({zoo_store.CATALOGUE} missing); build it with build_zoo."
        )
    wanted = None if seed_sets is None else set(seed_sets)
    runs = []
    for entry in zoo_store.read_catalogue(out_dir)["runs"]:
        meta = entry["meta"]
        if (wanted is not None and meta["seed_set"] not in wanted) or (
            split is not None and meta["split"] != split
        ):
            continue
        weights, steps = zoo_store.read_arrays(out_dir / entry["file"])
        runs.append(ZooRun(entry["id"], weights, steps, meta))
    return runs


def summary(runs: list[ZooRun]) -> str:
    """A table of the zoo by family value: runs, split, checkpoints, parameters, final accuracy, time."""
    lines = [
        "| family | value | runs | heldout | checkpoints | params | final acc. min / median | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    groups: dict[tuple[str, str], list[ZooRun]] = {}
    for run in runs:
        for key in FAMILY_KEYS:
            groups.setdefault((key, run.meta["family"][key]), []).append(run)
        groups.setdefault(("kind", run.meta["kind"]), []).append(run)
    rank = {key: i for i, key in enumerate(FAMILY_KEYS + ("kind",))}
    groups = dict(sorted(groups.items(), key=lambda item: (rank[item[0][0]], item[0][1])))
    groups[("all", "")] = runs
    for (key, value), members in groups.items():
        rows = [len(r.steps) for r in members]
        params = [r.weights.shape[1] for r in members]
        final = [r.meta["train_accuracy"][-1] for r in members]
        lines.append(
            f"| {key} | {value} | {len(members)} | {sum(r.meta['split'] == 'heldout' for r in members)} "
            f"| {sum(rows)} ({min(rows)}-{max(rows)}) | {min(params)}-{max(params)} "
            f"| {min(final):.3f} / {np.median(final):.3f} "
            f"| {sum(r.meta['train_seconds'] for r in members):.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Build (or complete) the evaluation zoo and print its summary."
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="zoo folder (default: $WTRAJ_ZOO_DIR or bench/.zoo)"
    )
    parser.add_argument("--seed-sets", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--size", choices=SIZES, default="full")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    out_dir = build_zoo(args.out, tuple(args.seed_sets), args.size, args.jobs)
    wall = time.perf_counter() - began
    runs = load_zoo(out_dir, seed_sets=args.seed_sets)
    print(f"zoo in {out_dir}: {len(runs)} runs, seed sets {args.seed_sets}, size {args.size}")
    print(summary(runs))
    for seed_set in args.seed_sets:
        seconds = sum(r.meta["train_seconds"] for r in runs if r.meta["seed_set"] == seed_set)
        print(f"seed set {seed_set}: {seconds:.1f} s of training (one process)")
    print(f"this call: {wall:.1f} s wall with {args.jobs} jobs (cached runs are not retrained)")
    found = zoo_checks.problems(runs)
    print("checks: " + ("every run is what its meta says" if not found else f"{len(found)} problems"))
    for line in found:
        print(f"  {line}")


if __name__ == "__main__":
    main()
