"""Streaming checkpoints from disk: ``trajectory_stats`` memory and throughput against a plain read.

Writes ``N`` safetensors checkpoints of ``P`` parameters each (float32, then
bfloat16) into a temporary folder, and for each dtype measures, with the page
cache dropped before every run (when allowed) and each run in a fresh process:

- the read floor, the fastest of four plain reads of every file: ``cat`` (GNU
  cat, output to /dev/null), ``dd`` (``dd bs=16M`` per file), ``parallel``
  (the files shared out to one thread per core, each read into a reused
  16 MiB buffer) and ``ahead`` (the same after asking the page cache for every
  file at once, as wtraj's reader asks for the blocks ahead), each run before
  and after wtraj's runs;
- ``blocks``: wtraj's reader alone, every block of ``wtraj.open(folder)`` produced
  (``blocks-1``: the same with one reading thread, ``WTRAJ_READ_THREADS=1``);
- ``stats``: ``wtraj.trajectory_stats(folder)``, the full computation.

It reports wall time, GB/s of checkpoint bytes, the ratio to the read floor,
the peak anonymous memory (``RssAnon``, sampled from outside the process every
5 ms: memory-mapped file pages are page cache and do not count) and the
largest relative error of the distances against the exact ones, known from
how the checkpoints were built. The folder is removed afterwards.

Run ``python bench/bench_checkpoints.py``; the environment sets the sizes:

==========================  ===========  ==============================================
variable                    default      meaning
==========================  ===========  ==============================================
``WTRAJ_BENCH_PARAMS``      250000000    parameters per checkpoint
``WTRAJ_BENCH_N``           16           checkpoints
``WTRAJ_BENCH_DTYPES``      float32,     stored dtypes to run, comma-separated
                            bfloat16
``WTRAJ_BENCH_DIR``         system tmp   where the temporary folder is made
==========================  ===========  ==============================================

A plain script rather than a pytest-benchmark suite: the data is written once,
is larger than memory can cache across runs, and every run needs a fresh
process and a cold page cache.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

READ_BUFFER_BYTES = 16 << 20
SAMPLE_SECONDS = 0.005
# distances are exact up to the rounding of the stored values
MAX_RELATIVE_ERROR = {"float32": 1e-5, "bfloat16": 2e-2}


def model_shapes(n_params: int) -> dict[str, tuple[int, ...]]:
    """Transformer-like tensors (12 attention + MLP blocks, an embedding), ``n_params`` in all."""
    n_blocks = 12
    hidden = max(8, int(math.sqrt(0.85 * n_params / (12 * n_blocks))) // 8 * 8)
    shapes: dict[str, tuple[int, ...]] = {}
    for b in range(n_blocks):
        prefix = f"blocks.{b}"
        shapes[f"{prefix}.ln1.weight"] = (hidden,)
        shapes[f"{prefix}.attn.qkv.weight"] = (3 * hidden, hidden)
        shapes[f"{prefix}.attn.qkv.bias"] = (3 * hidden,)
        shapes[f"{prefix}.attn.out.weight"] = (hidden, hidden)
        shapes[f"{prefix}.ln2.weight"] = (hidden,)
        shapes[f"{prefix}.mlp.up.weight"] = (4 * hidden, hidden)
        shapes[f"{prefix}.mlp.up.bias"] = (4 * hidden,)
        shapes[f"{prefix}.mlp.down.weight"] = (hidden, 4 * hidden)
    used = sum(math.prod(s) for s in shapes.values())
    if used >= n_params:
        raise ValueError(f"WTRAJ_BENCH_PARAMS={n_params} is too small for the benchmark model.")
    shapes["embed.weight"] = (n_params - used,)
    return shapes


def coefficients(n: int) -> np.ndarray:
    """(n, 2) coordinates of checkpoint i along two directions: a path that turns."""
    i = np.arange(n, dtype=np.float64)
    return np.stack([i, np.sin(i)], axis=1)


def write_checkpoints(folder: Path, n: int, n_params: int, dtype: str) -> np.ndarray:
    """Write checkpoint i = base + c[i, 0] d1 + c[i, 1] d2; return the exact (n, n) distances."""
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(0)
    shapes = model_shapes(n_params)
    base = {k: rng.random(s, dtype=np.float32) * 2 - 1 for k, s in shapes.items()}
    directions = [
        {k: (rng.random(s, dtype=np.float32) - 0.5) * 0.1 for k, s in shapes.items()} for _ in range(2)
    ]
    gram = np.zeros((2, 2))
    for k in shapes:
        flat = [d[k].reshape(-1).astype(np.float64) for d in directions]
        gram += np.array([[a @ b for b in flat] for a in flat])
    c = coefficients(n)
    diff = c[:, None, :] - c[None, :, :]
    exact = np.sqrt(np.einsum("ija,ab,ijb->ij", diff, gram, diff))
    torch_dtype = getattr(torch, dtype)
    for i in range(n):
        state = {
            k: torch.from_numpy(
                base[k] + np.float32(c[i, 0]) * directions[0][k] + np.float32(c[i, 1]) * directions[1][k]
            ).to(torch_dtype)
            for k in shapes
        }
        save_file(state, str(folder / f"step{i}.safetensors"))
        del state
    return exact


def drop_caches() -> bool:
    """Empty the page cache so the next run reads from disk (needs root)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def read_anon_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def run_worker(kind: str, folder: Path) -> dict:
    """Run one measurement in a fresh process, sampling its RssAnon from here."""
    env = dict(os.environ)
    if kind == "blocks-1":
        env["WTRAJ_READ_THREADS"] = "1"
    child = subprocess.Popen(
        [sys.executable, __file__, "--worker", kind, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, read_anon_kib(child.pid))
        except (FileNotFoundError, ProcessLookupError):
            break
        time.sleep(SAMPLE_SECONDS)
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"worker {kind} failed with exit code {child.returncode}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_anon_bytes"] = peak * 1024
    return result


def _read_into_buffer(paths: list[Path]) -> None:
    buffer = bytearray(READ_BUFFER_BYTES)
    for path in paths:
        with path.open("rb", buffering=0) as f:
            while f.readinto(buffer):
                pass


def read_with_cat(files: list[Path]) -> None:
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)


def read_with_dd(files: list[Path]) -> None:
    for path in files:
        subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=16M"], stderr=subprocess.DEVNULL, check=True)


def read_in_parallel(files: list[Path]) -> None:
    """The files shared out round-robin to one reading thread per core (reads release the GIL)."""
    n_threads = min(len(files), os.cpu_count() or 1)
    with ThreadPoolExecutor(n_threads) as pool:
        list(pool.map(_read_into_buffer, [files[t::n_threads] for t in range(n_threads)]))


def read_ahead_in_parallel(files: list[Path]) -> None:
    """Every file asked of the page cache at once (fadvise WILLNEED: deep disk queues), then read in parallel.

    wtraj's reader asks for the blocks ahead of the one it reads; a floor
    without such requests is beaten by it on this disk.
    """
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
        finally:
            os.close(fd)
    read_in_parallel(files)


# the read floor is the fastest of these plain reads of the same files
READ_FLOOR_KINDS = {
    "cat": read_with_cat,
    "dd": read_with_dd,
    "parallel": read_in_parallel,
    "ahead": read_ahead_in_parallel,
}


def worker(kind: str, folder: Path) -> None:
    """One measurement; prints a JSON line with the wall time (and distances for stats)."""
    files = sorted(folder.glob("*.safetensors"))
    result: dict = {"kind": kind, "bytes": sum(p.stat().st_size for p in files)}
    if kind in READ_FLOOR_KINDS:
        start = time.perf_counter()
        READ_FLOOR_KINDS[kind](files)
        result["seconds"] = time.perf_counter() - start
    else:
        import torch

        import wtraj
        from wtraj._engine import load_backend
        from wtraj._pass import Pass

        # compile the kernels (for this many rows and the stored dtype, the folder's name) before timing
        warm_up = torch.rand((len(files), 100_000), dtype=getattr(torch, folder.name))
        wtraj.trajectory_stats(warm_up)
        start = time.perf_counter()
        if kind.startswith("blocks"):
            source = wtraj.open(folder)
            # the block width a pass over it would take from the default budget
            for _block in source.blocks(Pass(source, load_backend("numba")).width):
                pass
        else:
            stats = wtraj.trajectory_stats(folder)
            result["distances"] = stats.distances.tolist()
        result["seconds"] = time.perf_counter() - start
    result["resident_anon_after"] = read_anon_kib(os.getpid()) * 1024
    print(json.dumps(result))


def main() -> None:
    n_params = int(os.environ.get("WTRAJ_BENCH_PARAMS", 250_000_000))
    n = int(os.environ.get("WTRAJ_BENCH_N", 16))
    dtypes = os.environ.get("WTRAJ_BENCH_DTYPES", "float32,bfloat16").split(",")
    root = Path(tempfile.mkdtemp(prefix="wtraj-bench-", dir=os.environ.get("WTRAJ_BENCH_DIR")))
    print(
        f"# {platform.node()}: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM, "
        f"N={n} x P={n_params:,}, folder {root}"
    )
    rows = []
    try:
        for dtype in dtypes:
            folder = root / dtype
            folder.mkdir()
            start = time.perf_counter()
            exact = write_checkpoints(folder, n, n_params, dtype)
            print(f"# wrote {dtype} in {time.perf_counter() - start:.0f} s")
            # the floor is the fastest plain read, each kind run before and after wtraj's runs
            reads = []
            for kind in (*READ_FLOOR_KINDS, "blocks", "blocks-1", "stats", *READ_FLOOR_KINDS):
                cold = drop_caches()
                result = run_worker(kind, folder)
                gbps = result["bytes"] / result["seconds"] / 1e9
                if kind in READ_FLOOR_KINDS:
                    reads.append(gbps)
                error = ""
                if "distances" in result:
                    got = np.array(result["distances"])
                    off = ~np.eye(n, dtype=bool)
                    rel = float(np.max(np.abs(got[off] - exact[off]) / exact[off]))
                    error = f"{rel:.1e}"
                    if rel > MAX_RELATIVE_ERROR[dtype]:
                        raise AssertionError(f"{dtype}: distances off by {rel:.2e} (relative)")
                rows.append(
                    (
                        dtype,
                        kind,
                        result["bytes"],
                        result["seconds"],
                        gbps,
                        result["peak_rss_anon_bytes"],
                        cold,
                        error,
                    )
                )
                print(
                    f"{dtype:9s} {kind:8s} {result['bytes'] / 1e9:6.2f} GB "
                    f"{result['seconds']:7.2f} s {gbps:6.3f} GB/s "
                    f"peak RssAnon {result['peak_rss_anon_bytes'] / 2**20:7.0f} MiB "
                    f"cold={cold} {error}",
                    flush=True,
                )
            floor = max(reads)
            for row in rows:
                if row[0] == dtype and row[1] not in READ_FLOOR_KINDS:
                    print(f"# {dtype} {row[1]}: {row[4] / floor:.0%} of the read floor ({floor:.3f} GB/s, "
                          f"the fastest of {', '.join(READ_FLOOR_KINDS)}; cold page cache: {rows[-1][6]})")
            shutil.rmtree(folder)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
