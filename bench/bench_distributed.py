"""1 rank against 2 (or more) on this machine: a checkpoint folder through ``trajectory_stats(group=...)``.

    python bench/bench_distributed.py            # WTRAJ_BENCH_PARAMS, WTRAJ_BENCH_N, WTRAJ_BENCH_RANKS

Writes N safetensors checkpoints of D float32 parameters to a temporary folder
(``WTRAJ_BENCH_DIR``), then for each number of ranks runs a gloo process
group on localhost, cold (page cache dropped, where this process may) and
warm. Each rank runs its kernels on ``cores / ranks`` Numba threads
(``NUMBA_NUM_THREADS``), so that the ranks share the cores rather than each
starting a thread per core. Each rank reports the bytes of its columns, its
pass time, the time and bytes of its all-reduces; the table gives the
slowest rank and the result's largest relative difference from the one-rank
distances. Prints a Markdown table for bench/RESULTS.md. Do not run it on a
loaded machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def write_folder(folder: Path, n: int, d: int) -> None:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    x = rng.standard_normal(d, dtype=np.float32)
    # tensors of a transformer-like spread of sizes
    sizes = [d // 2, d // 4, d // 8, d - d // 2 - d // 4 - d // 8]
    for i in range(n):
        x += 1e-3 * rng.standard_normal(d, dtype=np.float32)
        parts, at = {}, 0
        for k, size in enumerate(sizes):
            parts[f"layer{k}.weight"] = x[at : at + size].copy()
            at += size
        save_file(parts, str(folder / f"step{i:04d}.safetensors"))


def drop_caches() -> bool:
    """Drop the page cache (root only); False where this process may not."""
    try:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def worker(rank: int, size: int, port: int, folder: str) -> None:
    """One rank: time trajectory_stats over the folder, print a JSON line."""
    from datetime import timedelta

    import torch.distributed as dist

    import wtraj
    from wtraj._blocks import ColumnCost
    from wtraj._group import PassGroup
    from wtraj._split import split_columns

    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
        timeout=timedelta(seconds=600),
    )  # fmt: skip
    ranks = PassGroup(dist.group.WORLD)
    # compile the kernels before timing
    wtraj.trajectory_stats(np.random.default_rng(0).standard_normal((8, 100_000)).astype(np.float32))
    checkpoints = wtraj.open(folder)
    cost = ColumnCost(checkpoints)
    columns = split_columns(checkpoints, size, by_layer=False)[rank]
    dist.barrier()
    start = time.perf_counter()
    stats = wtraj.trajectory_stats(checkpoints, group=ranks)
    seconds = time.perf_counter() - start
    result = {
        "rank": rank, "seconds": seconds, "bytes": sum(cost.between(lo, hi) for lo, hi in columns),
        "reduce_seconds": ranks.reduce_seconds, "reduced_bytes": ranks.reduced_bytes,
    }  # fmt: skip
    if rank == 0:
        np.save(Path(folder).parent / f"distances-{size}.npy", stats.distances)
    print(json.dumps(result), flush=True)
    dist.destroy_process_group()


def threads_per_rank(size: int) -> int:
    return max(1, (os.cpu_count() or 1) // size)


def run(size: int, folder: Path) -> list[dict]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # the ranks share the cores: without this each would start one kernel thread per core
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": str(threads_per_rank(size))}
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", str(rank), str(size), str(port), str(folder)],
            env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        for rank in range(size)
    ]
    results = []
    for p in processes:
        out, _ = p.communicate(timeout=3600)
        if p.returncode != 0:
            raise RuntimeError(f"a rank failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    n_params = int(os.environ.get("WTRAJ_BENCH_PARAMS", 62_500_000))
    n = int(os.environ.get("WTRAJ_BENCH_N", 16))
    sizes = [int(s) for s in os.environ.get("WTRAJ_BENCH_RANKS", "1,2").split(",")]
    root = Path(tempfile.mkdtemp(prefix="wtraj-bench-dist-", dir=os.environ.get("WTRAJ_BENCH_DIR")))
    folder = root / "run"
    folder.mkdir()
    try:
        write_folder(folder, n, n_params)
        total = sum(p.stat().st_size for p in folder.iterdir())
        print(f"{n} checkpoints x {n_params:,} float32 parameters: {total / 1e9:.2f} GB in {folder}; "
              f"{os.cpu_count()} cores, Numba threads per rank: "
              f"{', '.join(f'{threads_per_rank(size)} with {size}' for size in sizes)}\n")
        print("| ranks | cache | slowest rank (s) | GB/s (all ranks) | bytes per rank (GB) | "
              "all-reduce (s) | all-reduced (kB per rank) | max rel. diff vs 1 rank |")
        print("|---|---|---|---|---|---|---|---|")
        for size in sizes:
            for cache in ("cold", "warm"):
                if cache == "cold" and not drop_caches():
                    print(f"| {size} | cold | not measured: the page cache cannot be dropped here |||||")
                    continue
                results = run(size, folder)
                slowest = max(r["seconds"] for r in results)
                distances = np.load(root / f"distances-{size}.npy")
                one = np.load(root / f"distances-{sizes[0]}.npy")
                scale = np.abs(one).max()
                diff = float(np.abs(distances - one).max() / scale) if scale else 0.0
                per_rank = "/".join(f"{r['bytes'] / 1e9:.2f}" for r in results)
                reduce = max(r["reduce_seconds"] for r in results)
                reduced = max(r["reduced_bytes"] for r in results) / 1e3
                print(f"| {size} | {cache} | {slowest:.2f} | {total / slowest / 1e9:.2f} | {per_rank} | "
                      f"{reduce:.4f} | {reduced:.3f} | {diff:.1e} |")
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        main()
