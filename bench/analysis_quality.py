"""Quality of trajectory analysis on real training runs: the figures in bench/RESULTS.md.

Trains tiny networks on scikit-learn's digits with :mod:`wtraj.toy` (CPU,
25 epochs, a checkpoint per epoch), for each of ``--repeats`` sets of seeds:

- six runs from different initialisations: three plain MLPs, one with the
  images inverted after epoch 12, one with them rotated after epoch 14, one
  with the learning rate cut 10x after epoch 12;
- a small CNN;
- two, three and five runs from one shared initialisation (different data order);
- beyond the targets, runs from one initialisation where one has a data shift,
  where all have a learning-rate cut, or where one stops early, and three
  runs from one initialisation beside two others.

It then shuffles the checkpoints and measures, against the known truth:
ordering (Kendall's tau, direction, confidence), separation (adjusted Rand
index, shared initialisation rows left out), shift detection (found within
one checkpoint, false flags), and assignment of held-out checkpoints and of
an unseen run's checkpoints. Prints a markdown table.

Run: ``python bench/analysis_quality.py [--repeats 2] [--shuffles 1]`` (about
15 s per repeat and shuffle).
"""

from __future__ import annotations

import argparse
import platform
import time
from datetime import date

import numpy as np
from scipy.spatial.distance import cdist
from scipy.stats import kendalltau
from sklearn.metrics import adjusted_rand_score

import wtraj
from wtraj import toy

COMMON = dict(n_checkpoints=25, batch_size=64, lr=0.2)
SHIFT_AT = {"shift_invert": 12, "shift_rotate": 14}
LR_STEP_AT = 12
# the extra runs of the five-run shared initialisation: separation only, so
# that the ordering and shift rows count the same runs as before
SEPARATION_ONLY = (
    "sibling_3",
    "sibling_4",
    "sibling_invert",
    "sibling_rotate",
    "lr_sibling_0",
    "lr_sibling_1",
    "lr_sibling_2",
)
NOT_A_TARGET = "(not a target)"
# orders the checkpoints of each separation row are shuffled in (--shuffles)
SHUFFLE_SEEDS = (7, 0, 1, 2, 3, 4, 5, 6)


def run_set(offset: int) -> dict[str, toy.TrainedRun]:
    """The runs of one repeat; ``offset`` moves every seed."""
    s = 100 * offset
    configs = {
        "mlp_a": dict(init_seed=s, data_seed=s),
        "mlp_b": dict(init_seed=s + 1, data_seed=s + 1),
        "mlp_c": dict(init_seed=s + 2, data_seed=s + 2),
        "shift_invert": dict(init_seed=s + 3, data_seed=s + 3, shift_at=12),
        "shift_rotate": dict(init_seed=s + 4, data_seed=s + 4, shift_at=14, shift="rotate"),
        "lr_step": dict(init_seed=s + 5, data_seed=s + 5, lr_steps={LR_STEP_AT: 0.1}),
        "cnn": dict(model="cnn", init_seed=s + 6, data_seed=s + 6),
        "sibling_1": dict(init_seed=s, data_seed=s + 50),
        "sibling_2": dict(init_seed=s, data_seed=s + 51),
        "sibling_3": dict(init_seed=s, data_seed=s + 52),
        "sibling_4": dict(init_seed=s, data_seed=s + 53),
        "sibling_invert": dict(init_seed=s, data_seed=s + 52, shift_at=12),
        "sibling_rotate": dict(init_seed=s, data_seed=s + 53, shift_at=14, shift="rotate"),
        **{
            f"lr_sibling_{i}": dict(init_seed=s, data_seed=s + 60 + i, lr_steps={LR_STEP_AT: 0.1})
            for i in range(3)
        },
    }
    return {name: toy.train_run(**COMMON, **config) for name, config in configs.items()}


def shuffle(X: np.ndarray, seed: int):
    permutation = np.random.default_rng(seed).permutation(X.shape[0])
    X = np.asarray(X[permutation], dtype=np.float64)
    return cdist(X, X), permutation


def shared_rows(X: np.ndarray, truth: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(X, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return np.array([np.unique(truth[inverse == inverse[i]]).shape[0] > 1 for i in range(len(X))])


def ordering(runs, rows):
    for name, run in runs.items():
        if name in SEPARATION_ONLY:
            continue
        D, permutation = shuffle(run.weights, seed=len(name))
        order, confidence = wtraj.order_checkpoints(D, metric="precomputed", return_confidence=True)
        tau = kendalltau(permutation[order], np.arange(D.shape[0])).statistic
        rows["ordering"].append((name, tau, confidence))


def separation(runs, rows, shuffles=1):
    weights = {name: run.weights for name, run in runs.items()}
    weights["sibling_2 to epoch 15"] = weights["sibling_2"][:16]
    sets = {
        "different inits (6 runs)": (
            ["mlp_a", "mlp_b", "mlp_c", "shift_invert", "shift_rotate", "lr_step"],
            "1.0",
        ),
        "shared init (2 runs)": (["mlp_a", "sibling_1"], ">= 0.95"),
        "shared init (3 runs)": (["mlp_a", "sibling_1", "sibling_2"], ">= 0.95"),
        "shared init (5 runs)": (["mlp_a", "sibling_1", "sibling_2", "sibling_3", "sibling_4"], ">= 0.95"),
        "2 shared + 2 different": (["mlp_a", "sibling_1", "mlp_b", "shift_invert"], ">= 0.95"),
        "3 shared + 2 different": (["mlp_a", "sibling_1", "sibling_2", "mlp_b", "shift_invert"], ">= 0.95"),
        "shared init (3 runs), one inverted at epoch 12": (
            ["mlp_a", "sibling_1", "sibling_invert"],
            NOT_A_TARGET,
        ),
        "shared init (3 runs), one rotated at epoch 14": (
            ["mlp_a", "sibling_1", "sibling_rotate"],
            NOT_A_TARGET,
        ),
        "shared init (3 runs), all with the LR cut 10x": (
            ["lr_sibling_0", "lr_sibling_1", "lr_sibling_2"],
            NOT_A_TARGET,
        ),
        "shared init (3 runs), one stopped at epoch 15": (
            ["mlp_a", "sibling_1", "sibling_2 to epoch 15"],
            NOT_A_TARGET,
        ),
    }
    for label, (names, target) in sets.items():
        X = np.concatenate([weights[n] for n in names])
        in_order = np.repeat(np.arange(len(names)), [weights[n].shape[0] for n in names])
        for seed in SHUFFLE_SEEDS[:shuffles]:
            D, permutation = shuffle(X, seed=seed)
            truth = in_order[permutation]
            shared = shared_rows(X[permutation], truth)
            for given in (None, len(names)):
                labels = wtraj.separate_trajectories(D, given, metric="precomputed")
                score = adjusted_rand_score(truth[~shared], labels[~shared])
                rows["separation"].append((label, target, given, labels.max() + 1, score))


def shifts(runs, rows):
    for name, run in runs.items():
        if name in SEPARATION_ONLY:
            continue
        D, permutation = shuffle(run.weights, seed=3)
        events = wtraj.detect_shifts(D, metric="precomputed")
        found = sorted(int(permutation[e.index]) for e in events if e.kind == "shift")
        slow = sorted(int(permutation[e.index]) for e in events if e.kind == "slowdown")
        expected = SHIFT_AT.get(name)
        rows["shifts"].append((name, None if expected is None else expected + 1, found, slow))


def assignment(runs, rows):
    known = ["mlp_a", "mlp_b", "shift_invert"]
    held = [3, 9, 13, 20, 24]
    kept = np.setdiff1d(np.arange(26), held)
    X = np.concatenate([runs[n].weights[kept] for n in known]).astype(np.float64)
    labels = np.repeat(np.arange(len(known)), kept.shape[0])
    D = cdist(X, X)
    correct = total = 0
    for run_label, name in enumerate(known):
        assigned, _ = wtraj.assign(cdist(runs[name].weights[held], X), D, labels, metric="precomputed")
        correct += int(np.sum(assigned == run_label))
        total += len(held)
    rows["assign"].append(("held-out checkpoints of known runs", "all", correct, total))
    for name in ("mlp_c", "lr_step", "sibling_1"):
        assigned, _ = wtraj.assign(cdist(runs[name].weights, X), D, labels, metric="precomputed")
        # a run from a known run's initialisation is not one of the targets
        target = NOT_A_TARGET if name.startswith("sibling") else "all"
        rows["assign"].append(
            (f"unseen run {name} -> -1", target, int(np.sum(assigned == -1)), assigned.shape[0])
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--shuffles", type=int, default=1, help="orders per separation row and seed set (at most 8)"
    )
    args = parser.parse_args()
    rows = {"ordering": [], "separation": [], "shifts": [], "assign": []}
    started = time.perf_counter()
    for offset in range(args.repeats):
        runs = run_set(offset)
        ordering(runs, rows)
        separation(runs, rows, args.shuffles)
        shifts(runs, rows)
        assignment(runs, rows)
    elapsed = time.perf_counter() - started
    print(
        f"wtraj analysis quality, {date.today()}, {platform.machine()}, "
        f"{args.repeats} seed sets, {args.shuffles} shuffle(s) per separation row, {elapsed:.0f} s\n"
    )
    taus = np.array([t for _, t, _ in rows["ordering"]])
    confidences = np.array([c for _, _, c in rows["ordering"]])
    print("| task | case | target | measured |")
    print("|---|---|---|---|")
    print(
        f"| ordering | {len(taus)} shuffled runs (MLP, CNN, shifts, LR step) | tau >= 0.99, "
        f"right direction | min tau {taus.min():.4f}, mean {taus.mean():.4f}; "
        f"{int(np.sum(taus > 0))}/{len(taus)} right direction; "
        f"confidence min {confidences.min():.3f} |"
    )
    for label, target in dict.fromkeys((r[0], r[1]) for r in rows["separation"]):
        for given in (None, "k"):
            results = [
                (k, score)
                for lab, _, g, k, score in rows["separation"]
                if lab == label and (g is None) == (given is None)
            ]
            mode = "k inferred" if given is None else "k given"
            target_text = target if target == NOT_A_TARGET else f"ARI {target}"
            print(
                f"| separation | {label}, {mode} | {target_text} | "
                f"ARI {', '.join(f'{s:.3f}' for _, s in results)} (k found {[int(k) for k, _ in results]}) |"
            )
    hits = [(n, e, f) for n, e, f, _ in rows["shifts"] if e is not None]
    found = sum(1 for _, e, f in hits if len(f) == 1 and abs(f[0] - e) <= 1)
    false = sum(len(f) for _, e, f, _ in rows["shifts"] if e is None)
    clean = sum(1 for _, e, _, _ in rows["shifts"] if e is None)
    lr = [(s, n) for n, _, _, s in rows["shifts"] if n == "lr_step"]
    lr_found = sum(1 for s, _ in lr if any(abs(x - (LR_STEP_AT + 1)) <= 1 for x in s))
    print(f"| shifts | induced data shifts | found within +-1 | {found}/{len(hits)} |")
    print(f"| shifts | runs without a shift | no flag | {false} false flags on {clean} runs |")
    print(f"| shifts | learning-rate step 10x | reported as slowdown | {lr_found}/{len(lr)} |")
    for label, target in dict.fromkeys((r[0], r[1]) for r in rows["assign"]):
        good = sum(c for lab, _, c, _ in rows["assign"] if lab == label)
        total = sum(t for lab, _, _, t in rows["assign"] if lab == label)
        print(f"| assignment | {label} | {target} | {good}/{total} |")


if __name__ == "__main__":
    main()
