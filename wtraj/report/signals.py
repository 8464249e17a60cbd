"""Signals that end a run turned into exceptions, so that cleanup code runs.

Python turns SIGINT into :class:`KeyboardInterrupt`, but SIGTERM (``kill``, a
job scheduler, a container stop) and SIGHUP (a closed terminal) end the process
at once, skipping every ``finally`` and ``__exit__``: a half-written output
folder would stay behind. Inside :func:`signals_raise` they raise
:class:`Terminated` instead; :func:`signals_deferred` holds all three back
during the few renames that must not be cut in half.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# the signals that ask a process to end and that Python code can catch
ENDING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
# the ones whose default action kills the process without running Python code
RAISED_SIGNALS = tuple(s for s in ENDING_SIGNALS if s != signal.SIGINT)


class Terminated(SystemExit):
    """SIGTERM or SIGHUP arrived inside :func:`signals_raise`.

    A :class:`SystemExit` (not an ``Exception``), so that only cleanup code
    sees it; uncaught, the process exits with status ``128 + signum`` as a
    shell reports a process killed by that signal.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


@contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    Only signals left at their default action are changed (a handler the
    program installed, or an ignored SIGHUP under ``nohup``, is kept), and
    the previous handlers come back on leaving. Outside the main thread, where
    Python cannot set handlers, the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    replaced = {}
    try:
        for signum in RAISED_SIGNALS:
            if signal.getsignal(signum) == signal.SIG_DFL:
                replaced[signum] = signal.signal(signum, _raise_terminated)
        yield
    finally:
        for signum, previous in replaced.items():
            signal.signal(signum, previous)


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back during the block; the first one acts after it.

    For steps that must not stop halfway (a report moved aside and the new
    one not yet in its place). A signal that arrives is recorded, and on
    leaving its previous handler runs (raising :class:`KeyboardInterrupt` or
    :class:`Terminated`), or its default action ends the process. A signal
    mask would not do: Python runs handlers in the main thread whichever
    thread the signal was delivered to. Ignored signals stay ignored; outside
    the main thread the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def record(signum, frame) -> None:
        pending.append(signum)

    previous = {}
    try:
        for signum in ENDING_SIGNALS:
            handler = signal.getsignal(signum)
            if handler is not None and handler != signal.SIG_IGN:
                previous[signum] = signal.signal(signum, record)
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if pending:
        signum = pending[0]
        handler = previous[signum]
        if callable(handler):
            handler(signum, None)
        else:
            signal.raise_signal(signum)
