"""Double buffering: fill the next buffer on a thread while the caller works on the current one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

Task = TypeVar("Task")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetched(
    tasks: Iterable[Task],
    make_buffer: Callable[[], Any],
    fill: Callable[[Any, Task], None],
    n_buffers: int = 2,
) -> Iterator[tuple[Task, Any]]:
    """Yield ``(task, buffer)`` with ``fill(buffer, task)`` already run, in task order.

    A background thread fills up to ``n_buffers`` buffers ahead of the caller.
    The buffer handed out is not written again until the caller asks for the
    next one, so it may be used freely until then (and must not be kept
    beyond). An exception raised by ``fill`` is re-raised in the caller; when
    the caller stops early the thread is stopped and joined.

    Parameters
    ----------
    tasks : iterable
        What to fill, in order (consumed on the background thread).
    make_buffer : callable
        Allocates one buffer; called ``n_buffers`` times up front.
    fill : callable
        ``fill(buffer, task)`` writes the task's data into the buffer.
    n_buffers : int
        Buffers in rotation: 2 means one being read while one is filled.
    """
    free: queue.Queue = queue.Queue()
    # never more filled buffers than exist, so the worker never blocks on put
    ready: queue.Queue = queue.Queue(maxsize=n_buffers + 1)
    for _ in range(n_buffers):
        free.put(make_buffer())
    stop = threading.Event()

    def work() -> None:
        try:
            for task in tasks:
                buffer = free.get()
                if stop.is_set():
                    return
                fill(buffer, task)
                ready.put((task, buffer))
            ready.put(_DONE)
        except BaseException as error:
            ready.put(_Failure(error))

    worker = threading.Thread(target=work, name="wtraj-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            task, buffer = item
            yield task, buffer
            # the caller asked for the next block: it is done with this buffer
            free.put(buffer)
    finally:
        stop.set()
        # wake the worker if it waits for a free buffer
        free.put(None)
        worker.join()
