"""TrajectoryMonitor: exact quantities against a float64 NumPy reference, estimates within
their stated error, the memory it holds, and clear errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the monitor follows torch models")

from truth import turning_angle_truth  # noqa: E402

from wtraj._count_sketch import CHUNK, CountSketch, HashTables  # noqa: E402
from wtraj.monitor import TrajectoryMonitor  # noqa: E402


def _model(dtype=torch.float32, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.Tanh(), torch.nn.Linear(96, 5)).to(dtype)
    return model


def _flat(model) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1).double() for p in model.parameters()]).numpy()


def _train(model, monitor, n_steps, lr=0.05, scale=1.0, seed=1):
    """A few SGD-with-momentum steps; returns the float64 parameters before and after each."""
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    dtype = next(model.parameters()).dtype
    X, metrics = [_flat(model)], []
    for _ in range(n_steps):
        x = torch.randn(16, 64, generator=generator).to(dtype)
        loss = (model(x).float() * scale).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        metrics.append(monitor.step())
        X.append(_flat(model))
    return np.array(X), metrics


def _assert_exact_metrics(metrics, X, names=None, layers=None):
    """Snapshot-mode step norms, turning angles and norms of each step against the float64 truth.

    ``X`` holds the flattened parameters before the first step and after each;
    ``layers`` maps parameter names to their slices of it.
    """
    parts = {None: slice(None), **(layers or {})}
    for name, part in parts.items():
        got = [m if name is None else m.layers[name] for m in metrics]
        Xp = X[:, part]
        steps = np.linalg.norm(np.diff(Xp, axis=0), axis=1)
        np.testing.assert_allclose([m.step_norm for m in got], steps, rtol=1e-12)
        np.testing.assert_allclose([m.norm for m in got], np.linalg.norm(Xp[1:], axis=1), rtol=1e-12)
        # the monitor's angle is arccos of a float64 cosine: resolved to ~1e-8 rad
        angles = [m.turning_angle for m in got[1:]]
        np.testing.assert_allclose(angles, turning_angle_truth(Xp), rtol=0, atol=1e-7)


def _layer_slices(model):
    slices, offset = {}, 0
    for name, p in model.named_parameters():
        slices[name] = slice(offset, offset + p.numel())
        offset += p.numel()
    return slices


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16], ids=str)
def test_snapshot_mode_step_norms_and_angles_are_exact(dtype):
    model = _model(dtype)
    monitor = TrajectoryMonitor(model, sketch_dim=64)
    X, metrics = _train(model, monitor, 5)
    expected_steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    got_steps = np.array([m.step_norm for m in metrics])
    np.testing.assert_allclose(got_steps, expected_steps, rtol=1e-12)
    got_angles = np.array([m.turning_angle for m in metrics])
    assert math.isnan(got_angles[0])
    np.testing.assert_allclose(got_angles[1:], turning_angle_truth(X), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(metrics[-1].norm, np.linalg.norm(X[-1]), rtol=1e-12)
    np.testing.assert_allclose(
        metrics[-1].relative_step, expected_steps[-1] / np.linalg.norm(X[-2]), rtol=1e-12
    )
    assert metrics[-1].estimated == ("distance_from_init", "distance_from_reference")


def test_snapshot_mode_resolves_tiny_steps():
    # consecutive checkpoints about 1e-7 apart relative: the float32 parameters differ
    # in their last bits, and the step norm must still be exact
    model = _model()
    monitor = TrajectoryMonitor(model)
    generator = torch.Generator().manual_seed(0)
    X, metrics = [_flat(model)], []
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(p * 2e-7 * torch.randn(p.shape, generator=generator))
        metrics.append(monitor.step())
        X.append(_flat(model))
    X = np.array(X)
    steps = np.linalg.norm(np.diff(X, axis=0), axis=1)
    assert np.all(steps > 0) and np.all(steps / np.linalg.norm(X[0]) < 1e-6)
    np.testing.assert_allclose([m.step_norm for m in metrics], steps, rtol=1e-12)
    np.testing.assert_allclose([m.turning_angle for m in metrics[1:]], turning_angle_truth(X), rtol=1e-9)


def test_per_layer_metrics_match_reference():
    model = _model()
    monitor = TrajectoryMonitor(model, sketch_dim=1 << 14)
    before = {n: p.detach().double().numpy().copy() for n, p in model.named_parameters()}
    _, metrics = _train(model, monitor, 1)
    for name, p in model.named_parameters():
        layer = metrics[0].layers[name]
        expected = np.linalg.norm(p.detach().double().numpy() - before[name])
        np.testing.assert_allclose(layer.step_norm, expected, rtol=1e-12)
        # sketch_dim exceeds every tensor's size: kept whole, so distances are exact too
        np.testing.assert_allclose(layer.distance_from_init, expected, rtol=1e-12)
        # relative to the tensor's norm before the step
        np.testing.assert_allclose(layer.relative_step, expected / np.linalg.norm(before[name]), rtol=1e-12)
    flat = metrics[0].as_dict(by_layer=True)
    assert flat["wtraj/step_norm/0.weight"] == metrics[0].layers["0.weight"].step_norm
    assert flat["wtraj/relative_step/0.weight"] == metrics[0].layers["0.weight"].relative_step


def test_distance_from_init_and_reference_small_tensors_exact():
    model = _model()
    monitor = TrajectoryMonitor(model, sketch_dim=1 << 14)
    X, _ = _train(model, monitor, 3)
    monitor.mark_tested()
    X2, metrics = _train(model, monitor, 2, seed=7)
    last = metrics[-1]
    np.testing.assert_allclose(last.distance_from_init, np.linalg.norm(X2[-1] - X[0]), rtol=1e-12)
    np.testing.assert_allclose(last.distance_from_reference, np.linalg.norm(X2[-1] - X[-1]), rtol=1e-12)


def test_count_sketch_is_unbiased_with_stated_spread():
    # the documented error: E||Sx||² = ||x||², relative std <= sqrt(2/k)
    k, size, n_seeds = 256, 300_000, 40
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(size) * np.linspace(0.1, 3, size))
    ratios = []
    for seed in range(n_seeds):
        sketch = CountSketch(size, HashTables(k, seed, "cpu"), seed + 1000, "cpu")
        out = sketch.empty()
        for start in sketch.chunks():
            sketch.add_chunk(out, x[start : start + (1 << 18)], start)
        ratios.append(float(out.square().sum() / x.square().sum()))
    ratios = np.array(ratios)
    bound = math.sqrt(2 / k)
    assert abs(ratios.mean() - 1) < 4 * bound / math.sqrt(n_seeds), ratios.mean()
    assert 0.5 * bound < ratios.std() < 1.3 * bound, (ratios.std(), bound)


def test_estimated_distances_within_stated_error():
    torch.manual_seed(0)
    model = torch.nn.Linear(512, 512)
    monitor = TrajectoryMonitor(model, sketch_dim=4096)
    with torch.no_grad():
        model.weight.add_(torch.randn_like(model.weight) * 0.01)
    metrics = monitor.step()
    exact = metrics.step_norm
    # relative std of the squared distance is sqrt(2/k); allow 4 standard deviations
    bound = 4 * math.sqrt(2 / 4096)
    assert abs(metrics.distance_from_init**2 / exact**2 - 1) < bound


def test_sketch_mode_estimates_within_error_and_small_memory():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(1024, 1024), torch.nn.Linear(1024, 512))
    monitor = TrajectoryMonitor(model, mode="sketch", sketch_dim=2048)
    X, metrics = _train_wide(model, monitor)
    expected = np.linalg.norm(np.diff(X, axis=0), axis=1)
    got = np.array([m.step_norm for m in metrics])
    bound = 4 * math.sqrt(2 / 2048)
    assert np.all(np.abs(got**2 / expected**2 - 1) < bound), (got, expected)
    angles = np.array([m.turning_angle for m in metrics[1:]])
    assert np.all(np.abs(np.cos(angles) - np.cos(turning_angle_truth(X))) < 4 * math.sqrt(2 / 2048))
    memory = monitor.memory_bytes()
    param_bytes = sum(p.numel() * 4 for p in model.parameters())
    assert memory["snapshots"] == 0
    sketch_bound = 4 * 8 * sum(min(p.numel(), 2048) for p in model.parameters())
    assert memory["sketches"] <= sketch_bound
    # the bound does not grow with the tensors' size: sketches plus the fixed 2 MiB hash tables
    assert memory["hash_tables"] == 8 * CHUNK == 2 << 20
    assert memory["total"] <= sketch_bound + 8 * CHUNK < param_bytes


def _train_wide(model, monitor, n_steps=3):
    generator = torch.Generator().manual_seed(3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    X, metrics = [_flat(model)], []
    for _ in range(n_steps):
        loss = model(torch.randn(8, 1024, generator=generator)).square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()
        metrics.append(monitor.step())
        X.append(_flat(model))
    return np.array(X), metrics


def test_snapshot_memory_is_at_most_two_copies_in_own_dtype():
    model = _model(torch.bfloat16)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    monitor = TrajectoryMonitor(model, sketch_dim=128)
    assert monitor.memory_bytes()["snapshots"] == param_bytes
    _train(model, monitor, 4)
    memory = monitor.memory_bytes()
    assert memory["snapshots"] == 2 * param_bytes
    assert memory["sketches"] <= 2 * 8 * sum(min(p.numel(), 128) for p in model.parameters())
    assert all(b.dtype == torch.bfloat16 for b in monitor._previous + monitor._before_previous)


def test_offload_keeps_snapshots_on_cpu_and_gives_same_results():
    model = _model()
    on_device = TrajectoryMonitor(model, sketch_dim=256)
    offloaded = TrajectoryMonitor(model, offload=True, sketch_dim=256)
    generator = torch.Generator().manual_seed(0)
    X, got = [_flat(model)], {"device": [], "offloaded": []}
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * 1e-3)
        got["device"].append(on_device.step())
        got["offloaded"].append(offloaded.step())
        X.append(_flat(model))
    for metrics in got.values():
        _assert_exact_metrics(metrics, np.array(X), layers=_layer_slices(model))
    assert all(buffer.device.type == "cpu" for buffer in offloaded._previous)


@pytest.mark.parametrize("mode", ["snapshot", "sketch"])
def test_numba_and_torch_paths_agree(mode):
    # tensors larger than one sketch chunk, so that several hash chunks are used
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(600, 500), torch.nn.Linear(500, 3))
    fused = TrajectoryMonitor(model, mode=mode, sketch_dim=512)
    plain = TrajectoryMonitor(model, mode=mode, sketch_dim=512, backend="torch")
    generator = torch.Generator().manual_seed(1)
    X, got = [_flat(model)], {"fused": [], "plain": []}
    for _ in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=generator) * 1e-3)
        a, b = fused.step(), plain.step()
        got["fused"].append(a)
        got["plain"].append(b)
        X.append(_flat(model))
        # the estimates are one estimator computed twice: they must agree
        assert a.as_dict(by_layer=True) == pytest.approx(
            b.as_dict(by_layer=True), rel=1e-12, abs=1e-15, nan_ok=True
        )
    X = np.array(X)
    for metrics in got.values():
        if mode == "snapshot":
            _assert_exact_metrics(metrics, X, layers=_layer_slices(model))
        else:
            np.testing.assert_allclose([m.norm for m in metrics], np.linalg.norm(X[1:], axis=1), rtol=1e-12)
    for x, y in zip(fused._init_sketch, plain._init_sketch, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_mark_tested_and_needs_retest():
    model = _model()
    monitor = TrajectoryMonitor(model, sketch_dim=1 << 14)
    X, metrics = _train(model, monitor, 2)
    distance = metrics[-1].distance_from_reference
    assert monitor.needs_retest(threshold=distance / 2)
    assert not monitor.needs_retest(threshold=distance * 2)
    monitor.mark_tested()
    assert not monitor.needs_retest(threshold=0.0)
    X2, metrics = _train(model, monitor, 1, seed=5)
    moved = np.linalg.norm(X2[-1] - X[-1])
    np.testing.assert_allclose(metrics[-1].distance_from_reference, moved, rtol=1e-12)
    relative = moved / np.linalg.norm(X[-1])
    assert monitor.needs_retest(relative_threshold=relative * 0.9)
    assert not monitor.needs_retest(relative_threshold=relative * 1.1)


def test_mapping_of_tensors_and_include_exclude():
    model = _model()
    params = dict(model.named_parameters())
    monitor = TrajectoryMonitor(params, include=r"weight", exclude=r"^2\.")
    assert monitor.names == ["0.weight"]
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[2].weight.add_(5.0)
    metrics = monitor.step()
    # w + 1 rounds in float32, so the step is 1 per element only to float32 precision
    np.testing.assert_allclose(metrics.step_norm, math.sqrt(model[0].weight.numel()), rtol=1e-6)


def test_zero_step_gives_nan_angle():
    model = _model()
    monitor = TrajectoryMonitor(model)
    monitor.step()
    metrics = monitor.step()
    assert metrics.step_norm == 0.0 and math.isnan(metrics.turning_angle)


# bad input


def test_metrics_before_any_step_raise():
    monitor = TrajectoryMonitor(_model())
    with pytest.raises(RuntimeError, match=r"no step yet: call mon\.step\(\)"):
        _ = monitor.latest
    with pytest.raises(RuntimeError, match="no step yet"):
        monitor.needs_retest(threshold=1.0)


def test_parameter_changing_shape_is_refused():
    model = _model()
    monitor = TrajectoryMonitor(model)
    monitor.step()
    model[2] = torch.nn.Linear(96, 7)
    with pytest.raises(ValueError, match=r"'2\.weight' changed shape from \(5, 96\) to \(7, 96\)"):
        monitor.step()


def test_parameter_appearing_or_disappearing_is_refused():
    model = _model()
    monitor = TrajectoryMonitor(model)
    model.append(torch.nn.Linear(5, 2))
    with pytest.raises(ValueError, match="'3.weight' appeared"):
        monitor.step()
    del model[3]
    del model[2]
    with pytest.raises(ValueError, match="'2.weight' disappeared"):
        monitor.step()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"mode": "exact"}, ValueError, "not a monitor mode"),
        ({"sketch_dim": 0}, ValueError, "sketch_dim must be a positive integer"),
        ({"include": "nothing-matches"}, ValueError, "no floating-point parameters"),
        ({"backend": "cuda"}, ValueError, "not a monitor backend"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        TrajectoryMonitor(_model(), **kwargs)


def test_bad_model_type():
    with pytest.raises(TypeError, match="torch.nn.Module or a mapping"):
        TrajectoryMonitor([torch.zeros(3)])
    with pytest.raises(TypeError, match=r"model\['w'\] must be a torch tensor"):
        TrajectoryMonitor({"w": np.zeros(3)})


def test_bad_thresholds():
    monitor = TrajectoryMonitor(_model())
    monitor.step()
    with pytest.raises(ValueError, match="exactly one"):
        monitor.needs_retest()
    with pytest.raises(ValueError, match="exactly one"):
        monitor.needs_retest(1.0, relative_threshold=0.1)
    with pytest.raises(ValueError, match="finite number >= 0"):
        monitor.needs_retest(threshold=-1.0)


def test_monitor_repr_is_one_line():
    torch = pytest.importorskip("torch")
    from wtraj import TrajectoryMonitor

    model = torch.nn.Linear(3, 2)
    mon = TrajectoryMonitor(model)
    assert repr(mon) == "<TrajectoryMonitor mode='snapshot': 2 tensors, 8 parameters, 0 step(s)>"
    with torch.no_grad():
        model.weight.add_(1.0)
    mon.step()
    start = "<TrajectoryMonitor mode='snapshot': 2 tensors, 8 parameters, 1 step(s); latest: "
    assert repr(mon).startswith(start)
    assert "step_norm 2.449" in repr(mon) and "\n" not in repr(mon)


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_a_nonfinite_parameter_is_loud(bad):
    model = _model()
    monitor = TrajectoryMonitor(model, sketch_dim=64)
    _train(model, monitor, 2)
    monitor.mark_tested()
    with torch.no_grad():
        model[2].bias[1] = bad
    with pytest.warns(RuntimeWarning, match=r"parameter '2.bias' holds NaN or Inf"):
        metrics = monitor.step()
    assert metrics.nonfinite == ("2.bias",)
    # never an angle of pi or a distance of inf that reads like a number
    assert math.isnan(metrics.turning_angle) and math.isnan(metrics.distance_from_reference)
    assert math.isnan(metrics.layers["2.bias"].turning_angle)
    assert monitor.needs_retest(threshold=1e30)
    assert monitor.needs_retest(relative_threshold=1e30)
