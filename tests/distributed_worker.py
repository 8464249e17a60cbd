"""One rank of a gloo process group on localhost, run by tests/test_distributed.py as a real process.

    python distributed_worker.py SCENARIO RANK WORLD_SIZE PORT DATA_FOLDER OUT_FOLDER

Writes ``OUT_FOLDER/rank<RANK>.pkl``: a dict of case name -> arrays or error.
Scenarios: ``cases`` (every case of distributed_cases.py, then a file that
one rank cannot open and one it cannot read), ``killed`` (the last rank
dies in the middle of a pass; the others report how they ended).
"""

from __future__ import annotations

import errno
import os
import pickle
import sys
import time
from datetime import timedelta
from pathlib import Path

import torch.distributed as dist
from distributed_cases import cases, run_case

import wtraj

# the group's timeout: a rank that dies unseen makes the others fail after at most this
TIMEOUT_S = 30


def failing_reads(path_part: str, action):
    """Patch os.preadv so that reads of files whose path contains ``path_part`` call ``action``."""
    real = os.preadv

    def preadv(fd, buffers, offset):
        if path_part in os.readlink(f"/proc/self/fd/{fd}"):
            action()
        return real(fd, buffers, offset)

    os.preadv = preadv
    return real


def eio():
    raise OSError(errno.EIO, "Input/output error")


def main() -> None:
    scenario, rank, size, port, data, out = sys.argv[1:]
    rank, size, data, out = int(rank), int(size), Path(data), Path(out)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size,
        timeout=timedelta(seconds=TIMEOUT_S),
    )  # fmt: skip
    group = dist.group.WORLD
    results = {}
    sharded = str(data / "sharded")
    if scenario == "cases":
        for name, function in cases(data).items():
            results[name] = run_case(function, group)
        # one rank is given a run with a truncated file: opening it fails there only
        given = str(data / "broken") if rank == 1 else sharded
        results["open-fails"] = run_case(lambda g: {"D": wtraj.pairwise(given, group=g)}, group)
        # the last rank cannot read one shard in the middle of the pass
        if rank == size - 1:
            real = failing_reads("checkpoint-3/model-00002", eio)
        results["read-fails"] = run_case(lambda g: {"D": wtraj.pairwise(sharded, group=g)}, group)
        if rank == size - 1:
            os.preadv = real
        # the group still works after agreed failures
        results["after-failures"] = run_case(lambda g: {"s": wtraj.step_norms(sharded, group=g)}, group)
    elif scenario == "killed":
        if rank == size - 1:
            failing_reads("checkpoint-2", lambda: os._exit(3))
        start = time.monotonic()
        results["killed"] = run_case(lambda g: {"D": wtraj.pairwise(sharded, group=g)}, group)
        results["seconds"] = time.monotonic() - start
    with open(out / f"rank{rank}.pkl", "wb") as f:
        pickle.dump(results, f)
    if scenario == "killed":
        # the group is broken: leave without the collective teardown
        os._exit(0)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
