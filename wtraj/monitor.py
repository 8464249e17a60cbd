"""Live monitoring of a model's trajectory in weight space during training.

:class:`TrajectoryMonitor` follows the parameters of a PyTorch model from one
call of :meth:`TrajectoryMonitor.step` to the next and reports how far they
moved (step norm), how sharply the path turned (turning angle), and how far the
model is from its initial parameters and from the last version that passed its
tests (the reference, set with :meth:`TrajectoryMonitor.mark_tested`).

What is stored, and what is exact
---------------------------------
======================  =============================  ==================================
quantity                ``mode="snapshot"`` (default)  ``mode="sketch"``
======================  =============================  ==================================
step norm               exact                          estimated
turning angle           exact                          estimated
distance from init      estimated                      estimated
distance from reference estimated                      estimated
parameter norm          exact                          exact
extra memory            2 copies of the parameters     ``4 · 8 · min(size, k)`` bytes per
                        in their own dtype, sketches   tensor (``k`` = ``sketch_dim``) and
                        and hash tables                the hash tables, independent of D
======================  =============================  ==================================

"Exact" means: differences of the stored values taken directly, element by
element, in float64 (``(a.double() - b.double())``, exact for float16,
bfloat16 and float32 parameters) and summed in float64, never through
``||a||² + ||b||² - 2 a·b``; consecutive checkpoints that differ by 1e-7
relative still get step norms correct to about 1e-12 relative. The turning angle
is ``arccos`` of a float64 cosine, resolved to about 1e-7 rad near zero.

"Estimated" means: a count sketch of ``k = sketch_dim`` float64 buckets per
tensor (:mod:`wtraj._count_sketch`). Squared distances are unbiased with
relative standard deviation at most ``sqrt(2 / k)`` per tensor (k = 4096: 2.2 %
on the squared distance, about 1.1 % on the distance); the whole-model estimate
is the sum of the per-tensor ones, and since standard deviations add at most
linearly, its relative standard deviation obeys the same bound. The hash
tables take 2 MiB (:class:`wtraj._count_sketch.HashTables`), shared by all tensors.
Estimated cosines (turning angle in sketch mode) are off by about
``sqrt((1 + cos²) / k)``. Tensors with at most ``k`` elements are kept whole in
float64 instead of sketched, so every quantity on them is exact.

Speed: float32/float64 parameters on the CPU are read by one fused numba pass
per tensor (:mod:`wtraj._monitor_kernel`: about 4-7 ns per parameter, see
``bench/bench_monitor.py``); CUDA and half-precision parameters by torch
operations on chunks of :data:`wtraj._count_sketch.CHUNK` elements, on their
device. Both compute the same float64 sums.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wtraj._count_sketch import CHUNK, CountSketch, HashTables

MODES = ("snapshot", "sketch")
# "auto": the one-pass numba kernel for float32/float64 CPU tensors, torch for the rest
BACKENDS = ("auto", "torch")
# quantities the count sketch estimates, per mode (the rest is exact)
ESTIMATED = {
    "snapshot": ("distance_from_init", "distance_from_reference"),
    "sketch": ("step_norm", "turning_angle", "distance_from_init", "distance_from_reference"),
}

_LAYER_QUANTITIES = (
    "step_norm",
    "relative_step",
    "turning_angle",
    "distance_from_init",
    "distance_from_reference",
)


@dataclass(frozen=True)
class LayerMetrics:
    """The metrics of one parameter tensor at one monitored step."""

    name: str
    step_norm: float
    turning_angle: float
    distance_from_init: float
    distance_from_reference: float
    norm: float
    # step_norm / this tensor's norm before the step (NaN when that norm is 0)
    relative_step: float


@dataclass(frozen=True)
class MonitorMetrics:
    """What :meth:`TrajectoryMonitor.step` returns.

    Attributes
    ----------
    step : int
        How many times :meth:`TrajectoryMonitor.step` has run (1 for the first).
    step_norm : float
        ``||θ_t - θ_{t-1}||`` (L2, over all monitored parameters).
    relative_step : float
        ``step_norm / ||θ_{t-1}||`` (NaN when the previous parameters are all zero).
    turning_angle : float
        Angle in radians between the previous step and this one, in ``[0, π]``;
        NaN on the first step and when either step is zero.
    distance_from_init : float
        ``||θ_t - θ_0||`` where ``θ_0`` are the parameters when the monitor was created.
    distance_from_reference : float
        ``||θ_t - θ_ref||`` where ``θ_ref`` are the parameters at the last
        :meth:`TrajectoryMonitor.mark_tested` (``θ_0`` before the first).
    norm : float
        ``||θ_t||``.
    estimated : tuple of str
        Names of the fields above that are count-sketch estimates (see the module docs).
    nonfinite : tuple of str
        Parameters holding NaN or Inf at this step (their metrics, and the
        totals, are then NaN; :meth:`TrajectoryMonitor.needs_retest` says True).
    layers : dict of str to LayerMetrics
        The same quantities per parameter tensor, by parameter name.
    """

    step: int
    step_norm: float
    relative_step: float
    turning_angle: float
    distance_from_init: float
    distance_from_reference: float
    norm: float
    estimated: tuple[str, ...]
    layers: dict[str, LayerMetrics] = field(repr=False)
    nonfinite: tuple[str, ...] = ()

    def as_dict(self, prefix: str = "wtraj/", by_layer: bool = False) -> dict[str, float]:
        """Flat ``{name: value}`` for a logger, e.g. ``{"wtraj/step_norm": 0.01, ...}``.

        With ``by_layer=True`` per-tensor values are added as
        ``"{prefix}{quantity}/{parameter name}"``.
        """
        quantities = (
            "step_norm",
            "relative_step",
            "turning_angle",
            "distance_from_init",
            "distance_from_reference",
            "norm",
        )
        flat = {f"{prefix}{q}": float(getattr(self, q)) for q in quantities}
        if by_layer:
            for name, layer in self.layers.items():
                for q in _LAYER_QUANTITIES:
                    flat[f"{prefix}{q}/{name}"] = float(getattr(layer, q))
        return flat


class TrajectoryMonitor:
    """Follow a model's parameters through training, step by step.

    Parameters
    ----------
    model : torch.nn.Module or Mapping[str, torch.Tensor]
        The model whose ``named_parameters()`` are followed, or a mapping from
        names to the live parameter tensors. It is read again at every step.
    mode : {"snapshot", "sketch"}
        ``"snapshot"`` keeps two copies of the parameters (exact step norms and
        turning angles); ``"sketch"`` keeps only count sketches, for models that
        do not fit in memory twice. See the module docstring for what is exact.
    offload : bool
        Keep the snapshots and sketches on the CPU instead of the parameters' device.
    sketch_dim : int
        Buckets per tensor in the count sketches (``k``); larger is more accurate.
    seed : int
        Seeds the sketches' hash tables (results are deterministic for a seed).
    include, exclude : str, optional
        Regular expressions (``re.search``) on parameter names: follow only
        names matching ``include`` and not matching ``exclude``.
    backend : {"auto", "torch"}
        ``"auto"`` reads float32/float64 CPU tensors with one fused numba pass
        (:mod:`wtraj._monitor_kernel`) and everything else (CUDA, half
        precision) with torch operations; ``"torch"`` always uses torch. Both
        compute the same float64 sums.

    Raises
    ------
    ValueError
        For an unknown ``mode``, a non-positive ``sketch_dim``, or when no
        floating-point parameter is left to follow.
    TypeError
        When ``model`` is neither a module nor a mapping of tensors.

    Examples
    --------
    >>> mon = TrajectoryMonitor(model)
    >>> for batch in data:
    ...     loss = model(batch).sum(); loss.backward(); opt.step(); opt.zero_grad()
    ...     metrics = mon.step()
    >>> mon.mark_tested()
    >>> mon.needs_retest(relative_threshold=0.05)
    """

    def __init__(
        self,
        model: Any,
        *,
        mode: str = "snapshot",
        offload: bool = False,
        sketch_dim: int = 4096,
        seed: int = 0,
        include: str | None = None,
        exclude: str | None = None,
        backend: str = "auto",
    ):
        import torch

        if backend not in BACKENDS:
            raise ValueError(
                f"backend={backend!r} is not a monitor backend; choose one of {', '.join(BACKENDS)}."
            )
        self.backend = backend
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not a monitor mode; choose one of {', '.join(MODES)}.")
        if not isinstance(sketch_dim, int) or sketch_dim < 1:
            raise ValueError(f"sketch_dim must be a positive integer; got {sketch_dim!r}.")
        self.mode = mode
        self.offload = offload
        self._model = model
        self._include = re.compile(include) if include else None
        self._exclude = re.compile(exclude) if exclude else None
        params = self._read_parameters()
        if not params:
            raise ValueError(
                "the model has no floating-point parameters to monitor"
                + (" after include/exclude filtering" if include or exclude else "")
                + "."
            )
        self.names = [name for name, _ in params]
        self.shapes = {name: tuple(p.shape) for name, p in params}
        self._device = torch.device("cpu") if offload else params[0][1].device
        self._tables = HashTables(sketch_dim, seed, self._device)
        self._sketches = [
            CountSketch(p.numel(), self._tables, seed + 1 + i, self._device)
            for i, (_, p) in enumerate(params)
        ]
        self._n_steps = 0
        self._latest: MonitorMetrics | None = None
        self._reference_step = 0
        # squared norm of the previous step, per tensor (for the turning angle)
        self._previous_step_sq: list[float] | None = None
        with torch.no_grad():
            initial, norm_sq = self._sketch_all([p for _, p in params])
            self._init_sketch = initial
            # squared parameter norms per tensor before the next step (for relative steps)
            self._previous_norm_sq = norm_sq
            self._reference_norm_sq = sum(norm_sq)
            self._reference_sketch = initial
            if mode == "snapshot":
                self._previous = [self._copy(p) for _, p in params]
                self._before_previous: list[Any] | None = None
            else:
                self._previous_sketch = initial
                self._before_previous_sketch: list[Any] | None = None

    # reading the model

    def _read_parameters(self) -> list[tuple[str, Any]]:
        import torch

        if isinstance(self._model, torch.nn.Module):
            items = list(self._model.named_parameters())
        elif isinstance(self._model, Mapping):
            items = list(self._model.items())
            for name, value in items:
                if not isinstance(value, torch.Tensor):
                    raise TypeError(f"model[{name!r}] must be a torch tensor; got {type(value).__name__}.")
        else:
            raise TypeError(
                "model must be a torch.nn.Module or a mapping from names to tensors; "
                f"got {type(self._model).__name__}."
            )
        return [
            (name, p)
            for name, p in items
            if p.is_floating_point()
            and (self._include is None or self._include.search(name))
            and (self._exclude is None or not self._exclude.search(name))
        ]

    def _checked_parameters(self) -> list[Any]:
        params = dict(self._read_parameters())
        for name in self.names:
            if name not in params:
                raise ValueError(
                    f"parameter {name!r} disappeared from the model since the monitor started; "
                    "a TrajectoryMonitor follows one fixed set of parameters: create a new one "
                    "after changing the model."
                )
            shape = tuple(params[name].shape)
            if shape != self.shapes[name]:
                raise ValueError(
                    f"parameter {name!r} changed shape from {self.shapes[name]} to {shape} since "
                    "the monitor started; distances between differently shaped models are "
                    "undefined: create a new TrajectoryMonitor after changing the model."
                )
        extra = [name for name in params if name not in self.shapes]
        if extra:
            raise ValueError(
                f"parameter {extra[0]!r} appeared in the model after the monitor started; "
                "create a new TrajectoryMonitor after changing the model."
            )
        return [params[name] for name in self.names]

    def _copy(self, p: Any) -> Any:
        return p.detach().reshape(-1).to(self._device, copy=True)

    def _sketch_all(self, params: list[Any]) -> tuple[list[Any], list[float]]:
        """Sketch every tensor; also return the exact squared norm of each."""
        sketches, norm_sq = [], []
        for p, sketch in zip(params, self._sketches, strict=True):
            out, norm = self._sketch_tensor(p, sketch)
            sketches.append(out)
            norm_sq.append(float(norm))
        return sketches, norm_sq

    # public API

    def __repr__(self) -> str:
        n_params = sum(math.prod(shape) for shape in self.shapes.values())
        latest = ""
        if self._latest is not None:
            m = self._latest
            latest = (
                f"; latest: step_norm {m.step_norm:.4g}, turning_angle {m.turning_angle:.4g} rad, "
                f"distance_from_init {m.distance_from_init:.4g}"
            )
        return (
            f"<TrajectoryMonitor mode={self.mode!r}: {len(self.names)} tensors, {n_params:,} parameters, "
            f"{self._n_steps} step(s){latest}>"
        )

    @property
    def n_steps(self) -> int:
        """How many times :meth:`step` has run."""
        return self._n_steps

    @property
    def latest(self) -> MonitorMetrics:
        """The metrics of the last :meth:`step`.

        Raises
        ------
        RuntimeError
            Before the first :meth:`step`.
        """
        if self._latest is None:
            raise RuntimeError(_NO_STEP)
        return self._latest

    def memory_bytes(self) -> dict[str, int]:
        """Extra memory held by the monitor, in bytes, counted from the buffers it holds.

        Returns
        -------
        dict
            ``{"snapshots": ..., "sketches": ..., "hash_tables": ..., "total": ...}``.
            In snapshot mode ``snapshots`` is at most twice the bytes of the
            monitored parameters; ``sketches`` is at most
            ``4 · 8 · sum(min(size, sketch_dim))`` over the tensors in either mode;
            ``hash_tables`` is 2 MiB.
        """
        snapshots = 0
        sketches: dict[int, Any] = {}
        if self.mode == "snapshot":
            for buffers in (self._previous, self._before_previous or []):
                snapshots += sum(b.numel() * b.element_size() for b in buffers)
            held = [self._init_sketch, self._reference_sketch]
        else:
            held = [
                self._init_sketch,
                self._reference_sketch,
                self._previous_sketch,
                self._before_previous_sketch or [],
            ]
        # shared sketches (the reference is the init one until mark_tested) count once
        for group in held:
            for s in group:
                sketches[id(s)] = s
        sketch_bytes = sum(s.numel() * 8 for s in sketches.values())
        tables = self._tables.nbytes
        return {
            "snapshots": snapshots,
            "sketches": sketch_bytes,
            "hash_tables": tables,
            "total": snapshots + sketch_bytes + tables,
        }

    def step(self) -> MonitorMetrics:
        """Record the model's current parameters as the next point of its trajectory.

        Call it after ``optimizer.step()`` (every step, or every n-th: the
        metrics are then between monitored steps).

        Returns
        -------
        MonitorMetrics
            Step norm, turning angle, distances from init and reference, per tensor too.

        Raises
        ------
        ValueError
            When a parameter changed shape, disappeared or appeared since the
            monitor was created.
        """
        import torch

        params = self._checked_parameters()
        with torch.no_grad():
            if self.mode == "snapshot":
                sums = self._snapshot_pass(params)
            else:
                sums = self._sketch_pass(params)
        self._n_steps += 1
        self._latest = self._metrics(*sums)
        return self._latest

    def mark_tested(self) -> None:
        """Make the model's current parameters the reference ("this version passed its tests").

        :attr:`MonitorMetrics.distance_from_reference` and :meth:`needs_retest`
        measure from here on.
        """
        import torch

        params = self._checked_parameters()
        with torch.no_grad():
            self._reference_sketch, norm_sq = self._sketch_all(params)
            self._reference_norm_sq = sum(norm_sq)
        self._reference_step = self._n_steps

    def needs_retest(
        self, threshold: float | None = None, *, relative_threshold: float | None = None
    ) -> bool:
        """Has the model moved far enough from the tested version to need testing again?

        Compares the distance from the reference at the last :meth:`step` with
        the threshold (0 when :meth:`mark_tested` ran after that step); a model
        that held NaN or Inf at the last step always needs a retest. The
        distance is a count-sketch estimate (see the module docs): choose
        thresholds well above ``sqrt(2 / sketch_dim)`` relative.

        Parameters
        ----------
        threshold : float, optional
            Absolute L2 distance in parameter units.
        relative_threshold : float, optional
            Distance as a fraction of the reference's norm ``||θ_ref||``.
            Give exactly one of the two.

        Raises
        ------
        ValueError
            When neither or both thresholds are given, or one is negative or not finite.
        RuntimeError
            Before the first :meth:`step`.
        """
        if (threshold is None) == (relative_threshold is None):
            raise ValueError("give exactly one of threshold= or relative_threshold=.")
        limit = threshold if threshold is not None else relative_threshold
        name = "threshold" if threshold is not None else "relative_threshold"
        if not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {limit!r}.")
        latest = self.latest
        if latest.nonfinite:
            return True
        if self._reference_step >= latest.step:
            return False
        if threshold is not None:
            return latest.distance_from_reference > threshold
        reference_norm = math.sqrt(self._reference_norm_sq)
        return latest.distance_from_reference > relative_threshold * reference_norm

    # the passes

    def _snapshot_pass(self, params: list[Any]) -> tuple:
        step_sq, dot, norm_sq, current_sketch = [], [], [], []
        before = self._before_previous
        new_before = []
        for i, p in enumerate(params):
            flat = p.detach().reshape(-1)
            sketch = self._sketches[i]
            cur_sketch = sketch.empty()
            oldest = None if before is None else before[i]
            if self._numba_ok(flat, self._previous[i]):
                sums = self._snapshot_tensor_numba(flat, self._previous[i], oldest, sketch, cur_sketch)
            else:
                sums = self._snapshot_tensor_torch(flat, self._previous[i], oldest, sketch, cur_sketch)
            step_sq.append(sums[0])
            dot.append(sums[1])
            norm_sq.append(sums[2])
            current_sketch.append(cur_sketch)
            if before is None:
                new_before.append(self._copy(p))
        newest = before if before is not None else new_before
        self._before_previous, self._previous = self._previous, newest
        has_dot = before is not None
        return step_sq, dot if has_dot else None, norm_sq, current_sketch

    def _numba_ok(self, flat: Any, snapshot: Any) -> bool:
        """Whether the one-pass numba kernel can read these tensors in place."""
        if self.backend == "torch":
            return False
        return (
            flat.device.type == "cpu"
            and snapshot.device.type == "cpu"
            and flat.dtype == snapshot.dtype
            and str(flat.dtype) in _NUMBA_DTYPES
            and flat.is_contiguous()
        )

    def _snapshot_tensor_numba(self, flat, previous, oldest, sketch, cur_sketch) -> tuple:
        import torch

        from wtraj.kernels.numba.monitor import snapshot_step

        has_before = oldest is not None
        # an unused stand-in keeps the kernel's signature (and its compiled version) fixed
        before = oldest.numpy() if has_before else previous.numpy()[:0]
        sums = snapshot_step(
            flat.numpy(), previous.numpy(), before, has_before, cur_sketch.numpy(),
            *sketch.kernel_tables(),
        )  # fmt: skip
        return tuple(torch.tensor(v, dtype=torch.float64) for v in sums)

    def _snapshot_tensor_torch(self, flat, previous, oldest, sketch, cur_sketch) -> tuple:
        import torch

        acc = torch.zeros(3, dtype=torch.float64, device=self._device)
        for start in sketch.chunks():
            stop = start + CHUNK
            # float64 copies: differences of float16/bfloat16/float32 values are exact
            cur = flat[start:stop].to(self._device).double()
            prev = previous[start:stop].double()
            diff = cur - prev
            acc[0] += torch.dot(diff, diff)
            if oldest is not None:
                acc[1] += torch.dot(prev - oldest[start:stop].double(), diff)
            acc[2] += torch.dot(cur, cur)
            sketch.add_chunk(cur_sketch, cur, start)
            # the oldest snapshot is no longer needed: reuse its memory for the newest
            if oldest is not None:
                oldest[start:stop].copy_(flat[start:stop])
        return acc[0], acc[1], acc[2]

    def _sketch_pass(self, params: list[Any]) -> tuple:
        import torch

        step_sq, dot, norm_sq, current_sketch = [], [], [], []
        before = self._before_previous_sketch
        for i, p in enumerate(params):
            cur_sketch, norm = self._sketch_tensor(p, self._sketches[i])
            diff = cur_sketch - self._previous_sketch[i]
            step_sq.append(torch.dot(diff, diff))
            if before is not None:
                dot.append(torch.dot(self._previous_sketch[i] - before[i], diff))
            norm_sq.append(norm)
            current_sketch.append(cur_sketch)
        self._before_previous_sketch = self._previous_sketch
        self._previous_sketch = current_sketch
        return step_sq, dot if before is not None else None, norm_sq, current_sketch

    def _sketch_tensor(self, p: Any, sketch: CountSketch) -> tuple[Any, Any]:
        """The float64 sketch of one tensor and its exact squared norm (a 0-d tensor)."""
        import torch

        flat = p.detach().reshape(-1)
        out = sketch.empty()
        if self._numba_ok(flat, flat):
            from wtraj.kernels.numba.monitor import sketch_step

            norm = sketch_step(flat.numpy(), out.numpy(), *sketch.kernel_tables())
            return out, torch.tensor(norm, dtype=torch.float64)
        norm = torch.zeros((), dtype=torch.float64, device=self._device)
        for start in sketch.chunks():
            values = flat[start : start + CHUNK].to(self._device).double()
            norm += torch.dot(values, values)
            sketch.add_chunk(out, values, start)
        return out, norm

    def _metrics(self, step_sq, dot, norm_sq, current_sketch) -> MonitorMetrics:
        import torch

        init_sq = _squared_distances(current_sketch, self._init_sketch)
        ref_sq = _squared_distances(current_sketch, self._reference_sketch)
        n = len(self.names)
        zeros = [torch.zeros((), dtype=torch.float64, device=self._device)] * n
        # one device-to-host transfer for every scalar of this step
        table = torch.stack(
            [torch.stack(col) for col in (step_sq, dot or zeros, norm_sq, init_sq, ref_sq)]
        ).tolist()
        step_sq, dots, norm_sq, init_sq, ref_sq = table
        previous_sq = self._previous_step_sq
        previous_norm_sq = self._previous_norm_sq
        layers = {}
        for i, name in enumerate(self.names):
            angle = _angle(dots[i], previous_sq[i], step_sq[i]) if dot is not None else math.nan
            layers[name] = LayerMetrics(
                name=name,
                step_norm=math.sqrt(step_sq[i]),
                turning_angle=angle,
                distance_from_init=math.sqrt(init_sq[i]),
                distance_from_reference=math.sqrt(ref_sq[i]),
                norm=math.sqrt(norm_sq[i]),
                relative_step=_relative(step_sq[i], previous_norm_sq[i]),
            )
        nonfinite = tuple(
            name for i, name in enumerate(self.names) if not math.isfinite(norm_sq[i] + step_sq[i])
        )
        if nonfinite:
            warnings.warn(
                f"parameter {nonfinite[0]!r}"
                + (f" (and {len(nonfinite) - 1} more)" if len(nonfinite) > 1 else "")
                + f" holds NaN or Inf values at monitored step {self._n_steps}: its metrics and the "
                "totals are NaN, and needs_retest() is True.",
                RuntimeWarning,
                stacklevel=3,
            )
            for name in nonfinite:
                layers[name] = LayerMetrics(name, *(math.nan,) * 6)
        total_step_sq = sum(step_sq)
        if dot is not None:
            turning = _angle(sum(dots), sum(previous_sq), total_step_sq)
        else:
            turning = math.nan
        relative = _relative(total_step_sq, sum(previous_norm_sq))
        self._previous_step_sq = step_sq
        self._previous_norm_sq = norm_sq
        # an Inf parameter would give totals of inf, or angles of pi: say NaN, as for NaN
        total = (lambda value: math.nan) if nonfinite else (lambda value: value)
        return MonitorMetrics(
            step=self._n_steps,
            step_norm=total(math.sqrt(total_step_sq)),
            relative_step=total(relative),
            turning_angle=total(turning),
            distance_from_init=total(math.sqrt(sum(init_sq))),
            distance_from_reference=total(math.sqrt(sum(ref_sq))),
            norm=total(math.sqrt(sum(norm_sq))),
            estimated=ESTIMATED[self.mode],
            layers=layers,
            nonfinite=nonfinite,
        )


# dtypes the numba kernels read in place (torch dtype names)
_NUMBA_DTYPES = ("torch.float32", "torch.float64")

_NO_STEP = (
    "the monitor has no step yet: call mon.step() after optimizer.step() at least once "
    "before reading metrics or asking needs_retest()."
)


def _relative(step_sq: float, previous_norm_sq: float) -> float:
    """``||step|| / ||θ before the step||``; NaN when the parameters were all zero."""
    return math.sqrt(step_sq / previous_norm_sq) if previous_norm_sq > 0 else math.nan


def _angle(dot: float, previous_sq: float, current_sq: float) -> float:
    """Angle between two steps from their dot product and squared norms; NaN for a zero or non-finite step."""
    if not math.isfinite(dot + previous_sq + current_sq) or previous_sq <= 0 or current_sq <= 0:
        return math.nan
    cosine = dot / math.sqrt(previous_sq * current_sq)
    return math.acos(min(1.0, max(-1.0, cosine)))


def _squared_distances(sketches: list[Any], others: list[Any]) -> list[Any]:
    """Per-tensor ``||a - b||²`` of two lists of float64 sketches (0-d tensors)."""
    return [(a - b).square().sum() for a, b in zip(sketches, others, strict=True)]
