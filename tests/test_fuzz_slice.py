"""A short slice of the checkpoint fuzzing harness (bench/fuzz_checkpoints.py): no findings allowed.

Every format gets the same mutations as the full run, with seeds the full runs
recorded in bench/RESULTS.md also start from; each case runs in a worker
subprocess under the harness's time and memory limits.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES_PER_FORMAT = 25


def load_harness():
    spec = importlib.util.spec_from_file_location("fuzz_checkpoints", REPO / "bench" / "fuzz_checkpoints.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzz_slice_has_no_findings(monkeypatch):
    # the workers import this tree's wtraj
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    harness = load_harness()
    results, findings = harness.fuzz(
        harness.FORMATS, CASES_PER_FORMAT, first_seed=0, n_workers=2, timeout=60, findings_path=None
    )
    assert not findings, "\n".join(
        f"{f['format']}:{f['seed']} ({f['mutation']}): {f['detail'][:300]}" for f in findings
    )
    outcomes = [r["outcome"] for rs in results.values() for r in rs]
    assert len(outcomes) == CASES_PER_FORMAT * len(harness.FORMATS)
    # the slice reaches both acceptable outcomes: values equal to the reference's, and errors
    assert outcomes.count("match") > 0
    assert sum(o.startswith("error") for o in outcomes) > 0
