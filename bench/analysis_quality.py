"""Quality of trajectory analysis on the evaluation zoo: the figures in bench/RESULTS.md.

The zoo (:mod:`zoo`, beside this file) holds real small networks trained on
the CPU in many regimes: optimizers, schedules, checkpoint cadences, run
lengths, shared starts, fine-tunes, data shifts and loss spikes. Its regime
families are split in two: the development part, on which methods and
constants are chosen, and the held-out part (``zoo.HELD_OUT``: whole
families never looked at while choosing). Every table is printed for both
parts and for the whole zoo.

Tasks, each on shuffled checkpoints, against the truth the zoo records:

- ordering: Kendall's tau of each run's recovered order, its direction and
  the confidence given (a calibration table: confidence bins against the
  fraction of right directions);
- separation: single runs (never split), mixes of runs from different
  initialisations with mixed cadences, lengths, optimizers and schedules
  (ARI, different starts never merged), groups sharing a start (ARI without
  the shared rows), parents with their fine-tunes (ARI, and the branch point
  of :func:`wtraj.trajectory_tree` within one checkpoint, beside the
  MoTHer-style tree of ``mother_baseline.py`` on the same checkpoints);
- shifts: recall of the zoo's data shifts within one checkpoint, false
  "shift" flags on runs without one (warm-ups, schedule steps, loss spikes,
  resumed runs, cadence changes), and a precision/recall table over the
  threshold;
- assignment: held-out checkpoints of known runs, and checkpoints of runs
  that are not known.

Run: ``python bench/analysis_quality.py [--seed-sets 0 1 2 3] [--zoo DIR]``
(builds the missing zoo runs first, see ``python bench/zoo.py --help``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau
from sklearn.metrics import adjusted_rand_score

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zoo  # noqa: E402
from mother_baseline import mother_tree  # noqa: E402

import wtraj  # noqa: E402

ZOO_DIR = Path(__file__).resolve().parent / ".zoo"
SPLITS = ("dev", "heldout")
# runs per mix of different initialisations
MIX_SIZE = 6
# checkpoints held out of each known run for assignment
HELD_OUT_ROWS = 5
# thresholds of the shift precision/recall table (log10 of the step ratio)
SHIFT_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
CONFIDENCE_BINS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0001)


def shuffled(weights: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``weights`` in a random order, and the permutation (new row -> old row)."""
    permutation = np.random.default_rng(seed).permutation(weights.shape[0])
    return weights[permutation], permutation


def shared_rows(X: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Rows whose exact copies belong to several runs (a shared start): left out of ARI."""
    _, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    runs_of = defaultdict(set)
    for row, value in enumerate(inverse):
        runs_of[value].add(int(truth[row]))
    return np.array([len(runs_of[v]) > 1 for v in inverse])


def stack(runs: list[zoo.ZooRun]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All rows of ``runs``, the run index of each and its row within its run."""
    X = np.concatenate([r.weights for r in runs])
    truth = np.repeat(np.arange(len(runs)), [r.weights.shape[0] for r in runs])
    position = np.concatenate([np.arange(r.weights.shape[0]) for r in runs])
    return X, truth, position


def split_of(runs: list[zoo.ZooRun]) -> str:
    """ "heldout" when any run of a case is held out, else "dev"."""
    return "heldout" if any(r.meta["split"] == "heldout" for r in runs) else "dev"


def evaluate_ordering(runs, rows):
    for r in runs:
        if r.weights.shape[0] < 4:
            continue
        X, permutation = shuffled(r.weights, seed=r.weights.shape[0])
        order, confidence = wtraj.order_checkpoints(X, return_confidence=True)
        tau = kendalltau(permutation[order], np.arange(X.shape[0])).statistic
        rows["ordering"].append(dict(split=r.meta["split"], run=r.id, tau=tau, confidence=confidence))


def evaluate_single(runs, rows):
    for r in runs:
        X, permutation = shuffled(r.weights, seed=1)
        labels = wtraj.separate_trajectories(X)
        rows["single"].append(dict(split=r.meta["split"], run=r.id, k=int(labels.max() + 1)))
        parent = wtraj.trajectory_tree(X)
        later = np.flatnonzero(permutation > 0)
        before = permutation[np.maximum(parent[later], 0)]
        previous = (parent[later] >= 0) & (before == permutation[later] - 1)
        rows["tree"].append(
            dict(split=r.meta["split"], run=r.id, right=int(previous.sum()), total=len(later))
        )


def separation_case(case_runs, seed):
    X, truth, _ = stack(case_runs)
    X, permutation = shuffled(X, seed)
    truth = truth[permutation]
    labels = wtraj.separate_trajectories(X)
    keep = ~shared_rows(X, truth)
    ari = adjusted_rand_score(truth[keep], labels[keep])
    # a found run holding checkpoints of two different starts merges them
    merged = sum(
        len({case_runs[t].meta["init_id"] for t in np.unique(truth[labels == k])}) > 1
        for k in np.unique(labels)
    )
    return ari, int(labels.max() + 1), merged


def independent_runs(runs):
    """Runs of their own start: neither siblings nor fine-tunes."""
    return [r for r in runs if r.meta["group"] is None and r.meta["parent"] is None]


def pools(runs, split):
    """Runs of one part of the zoo that can be stacked: one list per architecture (parameter count)."""
    by_width = defaultdict(list)
    for r in runs:
        if r.meta["split"] == split:
            by_width[r.weights.shape[1]].append(r)
    return list(by_width.values())


def evaluate_mixes(runs, rows, seed_set):
    for split in SPLITS:
        for pool in pools(independent_runs(runs), split):
            order = np.random.default_rng(seed_set).permutation(len(pool))
            for start in range(0, len(pool), MIX_SIZE):
                case = [pool[i] for i in order[start : start + MIX_SIZE]]
                if len(case) < 2:
                    continue
                ari, k, merged = separation_case(case, seed=start)
                rows["mixed"].append(
                    dict(split=split, runs=[r.id for r in case], ari=ari, k=k, merged=merged)
                )


def evaluate_groups(runs, rows):
    groups = defaultdict(list)
    for r in runs:
        if r.meta["group"] is not None:
            groups[r.meta["group"]].append(r)
    for name, case in groups.items():
        ari, k, merged = separation_case(case, seed=len(case))
        kinds = sorted({r.meta["kind"] for r in case} - {"sibling"})
        rows["groups"].append(
            dict(split=split_of(case), group=name, runs=len(case), ari=ari, k=k, extra=",".join(kinds))
        )


def family_of(run, by_id):
    """The fine-tunes descending from ``run``."""
    children = [r for r in by_id.values() if r.meta["parent"] and r.meta["parent"]["run"] == run.id]
    return children + [d for c in children for d in family_of(c, by_id)]


def evaluate_finetunes(runs, rows):
    by_id = {r.id: r for r in runs}
    for parent in runs:
        if parent.meta["parent"] is not None:
            continue
        tunes = family_of(parent, by_id)
        if not tunes:
            continue
        case = [parent, *tunes]
        X, truth, position = stack(case)
        X, permutation = shuffled(X, seed=len(case))
        truth, position = truth[permutation], position[permutation]
        labels = wtraj.separate_trajectories(X)
        ari = adjusted_rand_score(truth, labels)
        trees = {
            "branches": wtraj.trajectory_tree(X),
            "branches_mother": mother_tree(X, wtraj.pairwise(X)),
        }
        for t, tune in enumerate(case[1:], start=1):
            first = int(np.flatnonzero((truth == t) & (position == 0))[0])
            source = case.index(by_id[tune.meta["parent"]["run"]])
            for task, tree in trees.items():
                found = tree[first]
                ok = (
                    found >= 0
                    and truth[found] == source
                    and abs(position[found] - tune.meta["parent"]["row"]) <= 1
                )
                rows[task].append(dict(split=split_of([tune]), run=tune.id, parent=parent.id, ok=bool(ok)))
        rows["finetunes"].append(dict(split=split_of(case), parent=parent.id, runs=len(case), ari=ari))


def evaluate_shifts(runs, rows):
    for r in runs:
        if r.meta["parent"] is not None and r.meta["kind"] != "shift":
            continue
        X, permutation = shuffled(r.weights, seed=2)
        n = X.shape[0]
        if n < 5:
            continue
        scored = wtraj.detect_shifts(X, np.zeros(n, dtype=np.int64), threshold=min(SHIFT_THRESHOLDS))
        events = [(int(permutation[e.index]), e.kind, e.score) for e in scored]
        expected = r.meta["shift"]["row"] if r.meta["shift"] else None
        shift_kind = "{kind}, strength {strength}".format(**r.meta["shift"]) if r.meta["shift"] else None
        rows["shifts"].append(
            dict(
                split=r.meta["split"], run=r.id, expected=expected, events=events,
                lr_drops=r.meta["lr_drops"], shift_kind=shift_kind,
            )
        )  # fmt: skip


def evaluate_assignment(runs, rows, seed_set):
    for split in SPLITS:
        for pool in pools(independent_runs(runs), split):
            pool = [r for r in pool if r.weights.shape[0] >= 12]
            order = np.random.default_rng(100 + seed_set).permutation(len(pool))
            # half of the pool known (at most a mix), the other half never seen
            half = min(MIX_SIZE, len(pool) // 2)
            known = [pool[i] for i in order[:half]]
            unseen = [pool[i] for i in order[half:]]
            if len(known) < 2 or not unseen:
                continue
            kept, held, labels = [], [], []
            for t, r in enumerate(known):
                n = r.weights.shape[0]
                out = np.unique(np.linspace(1, n - 1, HELD_OUT_ROWS + 2).round().astype(int)[1:-1])
                inside = np.setdiff1d(np.arange(n), out)
                kept.append(r.weights[inside])
                labels.append(np.full(inside.shape[0], t))
                held.append((t, r.weights[out]))
            X = np.concatenate(kept)
            labels = np.concatenate(labels)
            for t, rows_out in held:
                assigned, _ = wtraj.assign(rows_out, X, labels)
                rows["assign_known"].append(
                    dict(split=split, right=int(np.sum(assigned == t)), total=len(assigned))
                )
            for r in unseen:
                assigned, _ = wtraj.assign(r.weights, X, labels)
                rows["assign_unseen"].append(
                    dict(split=split, right=int(np.sum(assigned == -1)), total=len(assigned))
                )


def _finds(flag, event):
    """Whether a flag at row ``flag`` lies within one checkpoint of the event at ``event`` (None: none)."""
    return event is not None and abs(flag - event) <= 1


def shift_counts(shift_rows, threshold):
    """(found, shifts, false flags, clean runs, LR drops flagged as shifts, right flags) at ``threshold``.

    A flag is right within one checkpoint of a shift; every other "shift" flag is false.
    """
    found = shifts = false = clean = lr_as_shift = right = 0
    for row in shift_rows:
        flagged = [i for i, kind, score in row["events"] if kind == "shift" and score >= threshold]
        if row["expected"] is None:
            clean += 1
            false += len(flagged)
        else:
            shifts += 1
            near = [_finds(i, row["expected"]) for i in flagged]
            found += any(near)
            right += sum(near)
            false += len(near) - sum(near)
        lr_as_shift += sum(any(_finds(i, d) for i in flagged) for d in row["lr_drops"])
    return found, shifts, false, clean, lr_as_shift, right


def by_split(rows):
    """``{"dev": [...], "heldout": [...], "all": [...]}`` of result rows."""
    parts = {split: [r for r in rows if r["split"] == split] for split in SPLITS}
    parts["all"] = list(rows)
    return parts


def report(rows, threshold) -> list[str]:
    """Markdown tables of every task, one column per part of the zoo."""
    lines = ["| task | target | " + " | ".join(["dev", "held-out", "all"]) + " |", "|---|---|---|---|---|"]

    def line(task, target, cell):
        cells = [cell(part) if part else "—" for part in by_split(rows[task_key[task]]).values()]
        lines.append(f"| {task} | {target} | " + " | ".join(cells) + " |")

    task_key = {
        "ordering: Kendall tau": "ordering",
        "ordering: direction": "ordering",
        "ordering: confidence when wrong": "ordering",
        "separation: single runs": "single",
        "separation: different starts mixed": "mixed",
        "separation: different starts merged": "mixed",
        "separation: groups sharing a start": "groups",
        "tree: parent is the previous checkpoint": "tree",
        "fine-tunes: separated": "finetunes",
        "fine-tunes: branch point ±1": "branches",
        "fine-tunes: branch point ±1, MoTHer-style peer": "branches_mother",
        "shifts": "shifts",
        "assignment: held-out checkpoints of known runs": "assign_known",
        "assignment: checkpoints of unseen runs -> -1": "assign_unseen",
    }
    line(
        "ordering: Kendall tau",
        "≥ 0.99 every run",
        lambda p: f"min {min(r['tau'] for r in p):.4f} ({sum(r['tau'] >= 0.99 for r in p)}/{len(p)})",
    )
    line("ordering: direction", "every run", lambda p: f"{sum(r['tau'] > 0 for r in p)}/{len(p)}")
    line(
        "ordering: confidence when wrong",
        "≤ 0.6",
        lambda p: (
            f"max {max(r['confidence'] for r in p if r['tau'] <= 0):.3f}"
            if any(r["tau"] <= 0 for r in p)
            else "none wrong"
        ),
    )
    line("separation: single runs", "0 split", lambda p: f"{sum(r['k'] > 1 for r in p)} split of {len(p)}")
    line(
        "separation: different starts mixed",
        "ARI ≥ 0.98",
        lambda p: (
            f"min {min(r['ari'] for r in p):.3f}, mean {np.mean([r['ari'] for r in p]):.3f} ({len(p)} mixes)"
        ),
    )
    line(
        "separation: different starts merged",
        "0",
        lambda p: f"{sum(r['merged'] for r in p)} in {len(p)} mixes",
    )
    line(
        "separation: groups sharing a start",
        "ARI ≥ 0.95",
        lambda p: ", ".join(f"{r['ari']:.3f}" + (f" ({r['extra']})" if r["extra"] else "") for r in p),
    )
    line(
        "tree: parent is the previous checkpoint",
        "(single runs)",
        lambda p: f"{sum(r['right'] for r in p)}/{sum(r['total'] for r in p)}",
    )
    line("fine-tunes: separated", "ARI ≥ 0.98", lambda p: ", ".join(f"{r['ari']:.3f}" for r in p))
    line("fine-tunes: branch point ±1", "≥ 90 %", lambda p: f"{sum(r['ok'] for r in p)}/{len(p)}")
    line(
        "fine-tunes: branch point ±1, MoTHer-style peer",
        "(peer)",
        lambda p: f"{sum(r['ok'] for r in p)}/{len(p)}",
    )
    line(
        "shifts",
        f"recall ≥ 0.9, ≤ 1 false per 50 clean (threshold {threshold})",
        lambda p: "recall {}/{}, {} false on {} clean, {} LR drops as shifts".format(
            *shift_counts(p, threshold)[:5]
        ),
    )
    line(
        "assignment: held-out checkpoints of known runs",
        "≥ 98 %",
        lambda p: f"{sum(r['right'] for r in p)}/{sum(r['total'] for r in p)}",
    )
    line(
        "assignment: checkpoints of unseen runs -> -1",
        "≥ 98 %",
        lambda p: f"{sum(r['right'] for r in p)}/{sum(r['total'] for r in p)}",
    )
    return lines


def finetune_table(rows) -> list[str]:
    """Each parent's family of fine-tunes: its part, ARI in each seed set, branch points found."""
    lines = ["| parent (and its fine-tunes) | part | ARI by seed set | branch point ±1 |"]
    lines.append("|---|---|---|---|")
    families = defaultdict(list)
    for r in rows["finetunes"]:
        families[r["parent"].split("/", 1)[1]].append(r)
    for name, found in families.items():
        branches = [b for b in rows["branches"] if b["parent"].split("/", 1)[1] == name]
        aris = ", ".join(f"{r['ari']:.3f}" for r in found)
        right = sum(b["ok"] for b in branches)
        lines.append(f"| {name} | {found[0]['split']} | {aris} | {right}/{len(branches)} |")
    return lines


def calibration(rows) -> list[str]:
    lines = ["| direction confidence | runs | right direction |", "|---|---|---|"]
    for low, high in zip(CONFIDENCE_BINS[:-1], CONFIDENCE_BINS[1:]):
        inside = [r for r in rows["ordering"] if low <= r["confidence"] < high]
        right = sum(r["tau"] > 0 for r in inside)
        share = f"{right / len(inside):.2f}" if inside else "—"
        bracket = "]" if high > 1 else ")"
        lines.append(f"| [{low:.2f}, {min(high, 1.0):.2f}{bracket} | {len(inside)} | {right} ({share}) |")
    return lines


def shift_table(rows) -> list[str]:
    lines = [
        "| threshold | part | recall | precision (right flags / all) | false flags / clean runs | "
        "false per 50 clean | LR drops as shifts |",
        "|---|---|---|---|---|---|---|",
    ]
    for threshold in SHIFT_THRESHOLDS:
        for name, part in by_split(rows["shifts"]).items():
            found, shifts, false, clean, lr, right = shift_counts(part, threshold)
            precision = f"{right / (right + false):.2f} ({right}/{right + false})" if right + false else "—"
            per_50 = f"{50 * false / clean:.2f}" if clean else "—"
            cells = [threshold, name, f"{found}/{shifts}", precision, f"{false}/{clean}", per_50, lr]
            lines.append("| " + " | ".join(map(str, cells)) + " |")
    return lines


def failures(rows, threshold) -> list[str]:
    """The cases behind every missed target, to read before changing a method."""
    out = []
    out += [
        f"ordering {r['run']}: tau {r['tau']:.4f} confidence {r['confidence']:.3f}"
        for r in rows["ordering"]
        if r["tau"] < 0.99
    ]
    out += [f"split {r['run']}: {r['k']} runs" for r in rows["single"] if r["k"] > 1]
    out += [
        f"mix ARI {r['ari']:.3f} k {r['k']} merged {r['merged']}: {' '.join(r['runs'])}"
        for r in rows["mixed"]
        if r["ari"] < 0.98 or r["merged"]
    ]
    out += [
        f"group {r['group']}: ARI {r['ari']:.3f} k {r['k']} of {r['runs']}"
        for r in rows["groups"]
        if r["ari"] < 0.95
    ]
    out += [
        f"finetune family of {r['parent']}: ARI {r['ari']:.3f}" for r in rows["finetunes"] if r["ari"] < 0.98
    ]
    out += [f"branch {r['run']}: missed" for r in rows["branches"] if not r["ok"]]
    out += shift_failures(rows["shifts"], threshold)
    return out


def shift_failures(shift_rows, threshold) -> list[str]:
    """Missed shifts and false "shift" flags at ``threshold``, with each flag's row and score."""
    out = []
    for row in shift_rows:
        flagged = [(i, score) for i, kind, score in row["events"] if kind == "shift" and score >= threshold]
        expected = row["expected"]
        false = [(i, score) for i, score in flagged if not _finds(i, expected)]
        out += [f"shift flagged {row['run']}: row {i}, score {score:.2f}" for i, score in false]
        if expected is not None and len(false) == len(flagged):
            out.append(f"shift missed {row['run']}: row {expected} ({row['shift_kind']})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed-sets", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--zoo", default=None, help="zoo folder (default: zoo.py's)")
    parser.add_argument("--size", default="full", choices=("full", "small"))
    parser.add_argument("--split", default=None, choices=(*SPLITS, None), help="evaluate one part only")
    parser.add_argument("--failures", action="store_true", help="list the cases behind missed targets")
    args = parser.parse_args()
    folder = zoo.build_zoo(
        args.zoo or os.environ.get("WTRAJ_ZOO_DIR", ZOO_DIR), seed_sets=args.seed_sets, size=args.size
    )
    rows = defaultdict(list)
    started = time.perf_counter()
    for seed_set in args.seed_sets:
        runs = zoo.load_zoo(folder, seed_sets=[seed_set], split=args.split)
        evaluate_ordering(runs, rows)
        evaluate_single(runs, rows)
        evaluate_mixes(runs, rows, seed_set)
        evaluate_groups(runs, rows)
        evaluate_finetunes(runs, rows)
        evaluate_shifts(runs, rows)
        evaluate_assignment(runs, rows, seed_set)
    elapsed = time.perf_counter() - started
    from wtraj.analysis.shifts import DEFAULT_THRESHOLD

    print(
        f"wtraj analysis quality on the zoo, {date.today()}, {platform.machine()}, "
        f"seed sets {args.seed_sets}, {elapsed:.0f} s (held out: {zoo.HELD_OUT})\n"
    )
    print("\n".join(report(rows, DEFAULT_THRESHOLD)))
    print("\nFine-tunes by parent (in the zoo's order: bench/RESULTS.md says which were added blind):\n")
    print("\n".join(finetune_table(rows)))
    print("\nDirection confidence against the fraction right (all parts):\n")
    print("\n".join(calibration(rows)))
    print("\nShift detection over the threshold:\n")
    print("\n".join(shift_table(rows)))
    if args.failures:
        print("\n" + "\n".join(failures(rows, DEFAULT_THRESHOLD)))


if __name__ == "__main__":
    main()
