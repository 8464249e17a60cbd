"""The small slice of the evaluation zoo (``bench/zoo.py``), trained once per test session.

13 short runs that hold every dataset, architecture, optimiser, schedule,
cadence and kind (siblings, fine-tunes, shift, spike, restart, early stop);
they train in about 5 s on one core. The slice is built under the session's
temporary folder, or in ``$WTRAJ_ZOO_DIR/small`` when that is set (then it
is kept, and later sessions load it without training).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

import zoo  # noqa: E402


@pytest.fixture(scope="session")
def zoo_small_dir(tmp_path_factory) -> Path:
    """The folder of the built small slice (seed set 0)."""
    root = os.environ.get("WTRAJ_ZOO_DIR")
    out_dir = Path(root) / "small" if root else tmp_path_factory.mktemp("zoo_small")
    return zoo.build_zoo(out_dir, seed_sets=(0,), size="small", jobs=1)


@pytest.fixture(scope="session")
def zoo_small(zoo_small_dir) -> list:
    """The runs of the small slice, as ``zoo.ZooRun`` in catalogue order."""
    return zoo.load_zoo(zoo_small_dir)
