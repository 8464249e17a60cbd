"""Separating groups of runs that share a start, by group size: time and adjusted Rand index.

Synthetic runs (:mod:`synthetic_runs`) from one start, shuffled, as
precomputed distances; the number of runs is inferred. The rows of the start
(one per run) are left out of the score. Prints a markdown table.

Run: ``python bench/shared_start_groups.py`` (about 2 minutes on 2 cores).
"""

import argparse
import platform
import time
from datetime import date

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import adjusted_rand_score
from synthetic_runs import shared_start_runs

import wtraj

# (runs, checkpoints per run): few long runs to many short ones, up to N = 10,000
GROUPS = [(3, 40), (10, 40), (20, 40), (50, 40), (10, 200), (20, 100), (50, 200), (5, 2000), (10, 1000)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    print(f"wtraj shared-start separation, {date.today()}, {platform.machine()}, seed {args.seed}\n")
    print("| runs x checkpoints | N | time (s) | runs inferred | ARI |")
    print("|---|---|---|---|---|")
    for n_runs, length in GROUPS:
        X, truth, is_start = shared_start_runs(np.random.default_rng(args.seed), n_runs, length)
        D = cdist(X, X)
        started = time.perf_counter()
        labels = wtraj.separate_trajectories(D, metric="precomputed")
        elapsed = time.perf_counter() - started
        score = adjusted_rand_score(truth[~is_start], labels[~is_start])
        print(f"| {n_runs} x {length} | {D.shape[0]:,} | {elapsed:.1f} | {labels.max() + 1} | {score:.4f} |")


if __name__ == "__main__":
    main()
