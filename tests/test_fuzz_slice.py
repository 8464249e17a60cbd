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


# cases of the full runs (bench/RESULTS.md) that were findings before their fixes
RECORDED_FINDINGS = [
    "npz:10",  # a damaged int64 member wtraj never reads
    "npz:148",  # a zip local header offset before the file's start
    "lightning:102",  # a storage record's local header signature damaged
    "safetensors:1861",  # a tensor floating point in one checkpoint only
    "torch:12004",  # the byteorder record marked as encrypted
    "torch:13497",  # a storage larger than its record
    "torch:13797",  # a storage record marked as encrypted
    "torch:14376",  # a record shorter than its storage
    "lightning:17067",  # a storage record's name damaged
    "lightning:17871",  # a storage record marked as a directory: torch reads no bytes
]


def test_recorded_findings_stay_fixed(tmp_path):
    harness = load_harness()
    for recorded in RECORDED_FINDINGS:
        fmt, seed = recorded.split(":")
        case = harness.build_case(fmt, int(seed), tmp_path)
        got = harness.run_wtraj(case)
        try:
            reference, reference_error = harness.reference_checkpoints(case), None
        except Exception as error:
            reference, reference_error = None, repr(error)
        outcome, detail = harness.classify(case, got, reference, reference_error)
        assert outcome != "finding", f"{recorded} ({case['mutation']}): {detail}"
