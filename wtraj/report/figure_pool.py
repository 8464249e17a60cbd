"""The report's figures drawn in worker processes, started early so that matplotlib loads during the pass.

In ``wtraj analyze`` the figures come after the streamed pass, and drawing
them was serial: importing matplotlib (a quarter of a second or more), then
the five figures one after another (about a second), all on one core. The
workers start with the command, import matplotlib while the pass reads,
then draw the figures side by side, each taking the next one when it has
finished one, while the command writes the tables.

A worker only hands back PNG bytes; the command writes every file, into the
report's work folder (:mod:`wtraj.report.writer`), so a worker that fails or
dies leaves nothing behind, and a figure a worker did not deliver is drawn
by the command itself: the report is the same in every case. Workers end
when the command closes their pipe, ignore Ctrl-C (the command stops them),
and end too if the command dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection, wait
from pathlib import Path

# workers at most: more cores than this draw the five figures little faster, and
# each worker is one more process importing matplotlib (~100 MB)
MAX_WORKERS = 2
# bytes a pass reads at least for workers to pay: below, it is too short to hide
# their start (about half a second of CPU each), and the figures are drawn in-process
MIN_PASS_BYTES = 1 << 30
# scheduling priority below the command's: workers use the cores the pass leaves
WORKER_NICENESS = 10
# seconds a worker may take to end once its pipe is closed, before it is killed
EXIT_SECONDS = 5.0

_WORKER = (
    "import sys; sys.path.insert(0, {root!r}); "
    "from wtraj.report.figure_pool import serve; serve({read}, {write})"
)


class FigurePool:
    """Worker processes that draw the report's figures; a context manager that stops them on leaving.

    Starts none until :meth:`start`; with none, :meth:`collect` returns nothing
    and every figure is drawn by the caller.
    """

    def __init__(self):
        self._workers: list[_Worker] = []
        self._queue: list[str] = []
        self._drawn: dict[str, bytes] = {}

    def start(self, n_workers: int | None = None) -> None:
        """Start ``n_workers`` processes (default ``min(MAX_WORKERS, cores)``), or as many as can be."""
        if n_workers is None:
            n_workers = min(MAX_WORKERS, os.cpu_count() or 1)
        for _ in range(n_workers):
            try:
                self._workers.append(_Worker())
            except OSError:
                # no more processes or pipes: the figures are drawn by fewer workers, or here
                break

    def __enter__(self) -> FigurePool:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        # on an error nothing they draw is wanted: stop them at once
        self.close(kill=exc_type is not None)

    def send(self, analysis, names: list[str]) -> None:
        """Give every worker ``analysis`` and the first figures to draw (one each)."""
        self._queue = list(names)
        self._drawn = {}
        payload = pickle.dumps(analysis, protocol=pickle.HIGHEST_PROTOCOL)
        for worker in list(self._workers):
            if not worker.ask(("analysis", payload)):
                self._workers.remove(worker)
        for worker in self._workers:
            self._next(worker)

    def collect(self) -> dict[str, bytes]:
        """PNG bytes of the figures the workers drew, by name; those they could not draw are missing."""
        busy = {worker.replies: worker for worker in self._workers if worker.drawing is not None}
        while busy:
            for replies in wait(list(busy)):
                worker = busy.pop(replies)
                reply = worker.reply()
                if reply is None:
                    # the worker died: the command draws what it had and what is left
                    self._workers.remove(worker)
                    continue
                kind, name, body = reply
                if kind == "png":
                    self._drawn[name] = body
                if self._next(worker):
                    busy[worker.replies] = worker
        return self._drawn

    def _next(self, worker: _Worker) -> bool:
        """Ask ``worker`` for the next figure in the queue; False when none is left or it died."""
        worker.drawing = None
        if not self._queue:
            return False
        name = self._queue.pop(0)
        if worker.ask(("draw", name)):
            worker.drawing = name
            return True
        self._queue.insert(0, name)
        return False

    def close(self, kill: bool = False) -> None:
        """Stop every worker and wait: its pipe closed (it ends), killed if it does not, or if ``kill``."""
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close_pipes()
            if kill:
                worker.process.kill()
        for worker in workers:
            worker.wait()


class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self):
        import wtraj

        root = str(Path(wtraj.__file__).resolve().parent.parent)
        read_here, write_there = os.pipe()
        read_there, write_here = os.pipe()
        try:
            command = _WORKER.format(root=root, read=read_there, write=write_there)
            self.process = subprocess.Popen(
                [sys.executable, "-c", command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(read_there, write_there),
            )
        except BaseException:
            for fd in (read_here, write_there, read_there, write_here):
                os.close(fd)
            raise
        os.close(read_there)
        os.close(write_there)
        self.requests = Connection(write_here, readable=False)
        self.replies = Connection(read_here, writable=False)
        self.drawing: str | None = None

    def ask(self, message: tuple) -> bool:
        """Send ``message``; False if the worker is gone."""
        try:
            self.requests.send(message)
            return True
        except OSError:
            return False

    def reply(self) -> tuple | None:
        """The worker's answer to the last request; None if it died."""
        try:
            return self.replies.recv()
        except (EOFError, OSError):
            return None

    def close_pipes(self) -> None:
        self.requests.close()
        self.replies.close()

    def wait(self) -> None:
        try:
            self.process.wait(EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        except BaseException:
            # Ctrl-C while waiting: nothing may outlive the command
            self.process.kill()
            self.process.wait()
            raise


def serve(read_fd: int, write_fd: int) -> None:
    """A worker's life: import matplotlib, then draw the figures asked for until the pipe closes."""
    # the command stops its workers on Ctrl-C; a traceback from each would only be noise
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # importing matplotlib must not take the cores from the pass, whose kernels load meanwhile
    os.nice(WORKER_NICENESS)
    requests = Connection(read_fd, writable=False)
    replies = Connection(write_fd, readable=False)
    from wtraj.report import plots
    from wtraj.report.figures import report_figure

    analysis = None
    try:
        while True:
            kind, body = requests.recv()
            if kind == "analysis":
                analysis = pickle.loads(body)
                continue
            try:
                replies.send(("png", body, plots.png_bytes(report_figure(analysis, body))))
            except Exception:
                # the command draws this figure itself, and reports the error if it recurs
                replies.send(("error", body, traceback.format_exc()))
    except (EOFError, OSError):
        pass
    sys.stderr.flush()
    # nothing to clean up: skip the interpreter's teardown of matplotlib
    os._exit(0)
