"""The collectives of a pass split across processes (torch.distributed), with failures agreed on.

Every rank runs the same calls in the same order: open the input, agree
that every rank could; run the pass over its own columns, agree that every
rank could; all-reduce the float64 sums once. A rank whose file cannot be
read therefore raises on every rank, naming the rank and the file, instead
of leaving the others waiting in a collective. A rank that dies cannot
report: the others get an error from the collective they wait in, at the
latest after the process group's ``timeout`` (``init_process_group(timeout=...)``;
``wtraj analyze`` under torchrun sets ``WTRAJ_DIST_TIMEOUT``, default 600 s).

torch is imported here only, and only when a group is given.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np


class PassGroup:
    """One torch.distributed process group, as the passes of wtraj use it.

    Attributes
    ----------
    rank, size : int
        This process's rank in the group, and the number of ranks.
    device : str
        Where collectives' tensors live: "cuda" for NCCL, else "cpu".
    reduce_seconds, reduced_bytes : float, int
        Time spent in, and bytes sent to, the all-reduces so far (for benchmarks).
    """

    def __init__(self, group: Any):
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise ValueError(
                "group= needs torch.distributed initialised first "
                "(torch.distributed.init_process_group('gloo' or 'nccl'), or run under torchrun)."
            )
        self._dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        if self.rank < 0:
            raise ValueError("this process is not a member of the process group given as group=.")
        self.device = "cuda" if dist.get_backend(group) == "nccl" else "cpu"
        self.reduce_seconds = 0.0
        self.reduced_bytes = 0

    def agree(self, error: Exception | None, what: str) -> None:
        """Raise on every rank if ``error`` is set on any: the first failed rank's error, naming it.

        The error keeps its type where it is a built-in one (``ValueError``,
        ``OSError``, ...), else becomes a ``RuntimeError``; on the rank that
        failed it chains the original.
        """
        status = None if error is None else (type(error).__name__, str(error))
        statuses = self.gather(status, what)
        failed = [(rank, s) for rank, s in enumerate(statuses) if s is not None]
        if not failed:
            return
        rank, (kind, message) = failed[0]
        others = [r for r, _ in failed[1:]]
        noun = "rank" if len(others) == 1 else "ranks"
        also = f" ({noun} {', '.join(map(str, others))} failed too)" if others else ""
        text = f"{what} failed on rank {rank} of {self.size}{also}: {kind}: {message}"
        cls = getattr(builtins, kind, None)
        if not (isinstance(cls, type) and issubclass(cls, Exception)):
            cls = RuntimeError
        try:
            raised = cls(text)
        except TypeError:
            raised = RuntimeError(text)
        raise raised from error

    def gather(self, value: Any, what: str) -> list[Any]:
        """Every rank's ``value`` (a small picklable object), in rank order, on every rank."""
        out: list[Any] = [None] * self.size
        self._collective(what, lambda: self._dist.all_gather_object(out, value, group=self.group))
        return out

    def all_reduce(self, arrays: list[np.ndarray], what: str) -> None:
        """Sum float64 arrays over the ranks, in place, in one all-reduce."""
        import torch

        if not arrays:
            return
        flat = np.concatenate([a.reshape(-1) for a in arrays]).astype(np.float64, copy=False)
        tensor = torch.from_numpy(flat).to(self.device)
        start = time.perf_counter()
        self._collective(
            what, lambda: self._dist.all_reduce(tensor, op=self._dist.ReduceOp.SUM, group=self.group)
        )
        self.reduce_seconds += time.perf_counter() - start
        self.reduced_bytes += flat.nbytes
        flat = tensor.cpu().numpy()
        at = 0
        for a in arrays:
            np.copyto(a, flat[at : at + a.size].reshape(a.shape))
            at += a.size

    def _collective(self, what: str, call) -> None:
        try:
            call()
        except Exception as error:
            raise RuntimeError(
                f"{what}: a collective failed on rank {self.rank} of {self.size}: another rank "
                "stopped answering (it died, was killed, or took longer than the process group's "
                f"timeout). {type(error).__name__}: {error}"
            ) from error


def pass_group(group: Any) -> PassGroup | None:
    """The :class:`PassGroup` of a ``group=`` argument: None stays None (one process)."""
    if group is None:
        return None
    if isinstance(group, PassGroup):
        return group
    return PassGroup(group)


# seconds a rank waits in a collective for the others, for groups wtraj starts itself
DEFAULT_TIMEOUT_S = 600


@contextlib.contextmanager
def torchrun_group() -> Iterator[Any]:
    """The world group of a ``torchrun`` launch (``WORLD_SIZE`` > 1), or None outside one.

    Started here if need be, with gloo (the command line reads checkpoint
    files on the CPU) and a timeout of ``WTRAJ_DIST_TIMEOUT`` seconds (default
    600): a rank that dies makes the others fail after at most that long. A
    group started here is destroyed on leaving, before the interpreter's
    teardown (which otherwise may abort with gloo's threads still running).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        yield None
        return
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:
        value = os.environ.get("WTRAJ_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"WTRAJ_DIST_TIMEOUT must be a positive number of seconds; got {value!r}.")
        dist.init_process_group("gloo", timeout=timedelta(seconds=int(value)))
    try:
        yield dist.group.WORLD
    finally:
        if started:
            dist.destroy_process_group()
