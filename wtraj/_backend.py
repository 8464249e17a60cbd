"""Which backend runs a call: ``backend=`` and the ``WTRAJ_BACKEND`` override."""

from __future__ import annotations

import os

BACKENDS = ("auto", "numba", "triton", "reference")


def triton_interpreted() -> bool:
    """True when Triton runs its kernels on the CPU (``TRITON_INTERPRET=1``), as in CI."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str | None, device: str) -> str:
    """Pick the backend for data living on ``device`` ("cpu" or "cuda").

    An explicit ``backend`` argument wins; otherwise ``WTRAJ_BACKEND``; otherwise
    ``"auto"``, which sends CUDA data to Triton and everything else to Numba.
    A backend that cannot run on the data raises ``ValueError``.
    """
    chosen = backend if backend is not None else os.environ.get("WTRAJ_BACKEND", "auto")
    chosen = chosen.strip().lower()
    if chosen not in BACKENDS:
        source = "backend" if backend is not None else "WTRAJ_BACKEND"
        raise ValueError(f"{source}={chosen!r} is not a backend; choose one of {', '.join(BACKENDS)}.")
    if chosen == "auto":
        return "triton" if device == "cuda" else "numba"
    if device == "cuda" and chosen != "triton":
        raise ValueError(
            f"backend={chosen!r} runs on the CPU but the data is a CUDA tensor; "
            "use backend='triton' (or 'auto'), or move the data with .cpu()."
        )
    if chosen == "triton" and device != "cuda" and not triton_interpreted():
        raise ValueError(
            "backend='triton' needs CUDA tensors but the data is on the CPU; move it with "
            ".cuda(), use backend='numba', or set TRITON_INTERPRET=1 to run Triton's interpreter."
        )
    return chosen
