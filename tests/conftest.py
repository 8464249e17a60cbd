"""Shared test set-up: Triton's interpreter without a GPU, hypothesis profiles, walks and tolerances."""

import os

import numpy as np
import pytest

try:
    import torch

    HAS_CUDA = torch.cuda.is_available()
except ImportError:
    torch = None
    HAS_CUDA = False

# Without a GPU the Triton kernels run in Triton's interpreter; this must be
# set before triton is first imported.
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

try:
    import triton  # noqa: F401

    HAS_TRITON = torch is not None
except ImportError:
    HAS_TRITON = False

from hypothesis import settings  # noqa: E402

# the evaluation zoo's small slice, for any test module that asks for it
from zoo_fixtures import zoo_small, zoo_small_dir  # noqa: E402, F401

settings.register_profile("ci", derandomize=True, max_examples=30, deadline=None)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ["reference", "numba"] + (["triton"] if HAS_TRITON else [])
FAST_BACKENDS = [b for b in BACKENDS if b != "reference"]

# Relative tolerance against the float64 truth of the same values, by quantity and
# input dtype: what the fast backends deliver (measured worst over the walks of
# these tests, bench/RESULTS.md) with about 3x headroom, so that a kernel that
# degrades by 10x fails. float16 and bfloat16 are widened to float32 and summed
# like it. "inner" is relative to |a||b|.
_FLOAT32_TILES = {
    # float32 sums over tiles of 1024 columns, float64 across: measured 6e-8, 1.2e-7, 2.4e-8, 3.2e-8
    "euclidean": 2e-7,
    "sqeuclidean": 4e-7,
    "cityblock": 1e-7,
    "inner": 1e-7,
}
_FLOAT64_SUMS = {
    # float64 sums of exact (or once-rounded) terms: measured below 6e-16
    "euclidean": 1e-14,
    "sqeuclidean": 1e-14,
    "cityblock": 1e-14,
    "inner": 1e-14,
    "step_norm": 1e-14,
    # Kahan's angle from three float64 sides: measured 4e-16 (small angles: test_steps.py)
    "angle": 1e-12,
    "menger": 1e-12,
    # float64 differences of unit vectors for every input dtype: measured 2e-11, which is
    # the float64 truth's own rounding when 1 - cos is 1e-14
    "cosine": 1e-9,
}
TOLERANCE = {
    (quantity, dtype): tolerance
    for dtype in ("float64", "float32", "float16", "bfloat16")
    for quantity, tolerance in {
        **_FLOAT64_SUMS,
        **({} if dtype == "float64" else _FLOAT32_TILES),
    }.items()
}


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


def random_walk(n, d, step=1e-3, dtype=np.float32, drift=False, seed=0):
    """A trajectory of n checkpoints in d dimensions whose steps are ``step`` of the norm.

    With ``drift`` every step shares one direction (plus 20% noise), so the
    path is nearly straight and its turning angles are small.
    """
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(d)
    scale = step * np.linalg.norm(start)
    direction = rng.standard_normal(d)
    direction /= np.linalg.norm(direction)
    steps = rng.standard_normal((max(n - 1, 0), d))
    steps /= np.linalg.norm(steps, axis=1, keepdims=True)
    if drift:
        steps = direction + 0.2 * steps
    steps *= scale
    walk = np.vstack([start, start + np.cumsum(steps, axis=0)])
    return walk.astype(dtype)


def to_backend(X, backend):
    """X as the backend takes it: a torch tensor for Triton (on CUDA when there is one)."""
    if backend != "triton":
        return X
    tensor = torch.from_numpy(np.ascontiguousarray(X)) if isinstance(X, np.ndarray) else X
    return tensor.cuda() if HAS_CUDA else tensor


def as_float64(X):
    """The exact float64 values of X (NumPy or torch, any float dtype)."""
    if torch is not None and isinstance(X, torch.Tensor):
        return X.detach().to("cpu", torch.float64).numpy()
    return np.asarray(X, dtype=np.float64)


def assert_close(actual, expected, rtol, atol=0.0, what="value"):
    """Elementwise |actual - expected| <= atol + rtol |expected|, naming the worst entry."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual - expected)
    allowed = atol + rtol * np.abs(expected)
    nan_match = np.isnan(actual) & np.isnan(expected)
    excess = np.where(nan_match, -np.inf, error - allowed)
    excess = np.where(np.isnan(excess), np.inf, excess)
    worst = np.unravel_index(np.argmax(excess), excess.shape) if excess.size else ()
    assert excess.size == 0 or excess[worst] <= 0, (
        f"{what} at {worst}: got {actual[worst]!r}, float64 truth {expected[worst]!r}, "
        f"relative error {error[worst] / max(abs(expected[worst]), 1e-300):.3e} "
        f"(rtol {rtol:g}, atol {atol:g})"
    )


@pytest.fixture(autouse=True)
def _metrics_json_follow_the_schema(tmp_path_factory):
    """Every metrics.json a test writes (under pytest's temporary folders) follows the shipped schema."""
    yield
    try:
        import jsonschema
    except ImportError:
        return
    import json

    from wtraj.report.schema import metrics_schema

    root = tmp_path_factory.getbasetemp()
    checked = _metrics_json_follow_the_schema.checked
    validator = jsonschema.Draft202012Validator(
        metrics_schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for path in root.rglob("metrics.json"):
        stamp = (path, path.stat().st_mtime_ns)
        if stamp in checked or ".partial-" in str(path):
            continue
        checked.add(stamp)
        errors = sorted(validator.iter_errors(json.loads(path.read_text())), key=lambda e: list(e.path))
        assert not errors, f"{path}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5]
        )


_metrics_json_follow_the_schema.checked = set()
