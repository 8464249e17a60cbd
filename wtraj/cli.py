"""The ``wtraj`` command line: analyze, diff, order and demo.

Every command reads checkpoints with :func:`wtraj.open` and computes with the
public API; this module only parses arguments, formats results and turns user
errors into one line on stderr (exit status 1) unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

from wtraj.report.signals import Terminated, signals_raise

# exceptions that mean "the input is wrong", reported as one line without a traceback
USER_ERRORS = (
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
    ValueError,
    TypeError,
)
EXIT_USER_ERROR = 1
EXIT_INTERNAL_ERROR = 3
EXIT_INTERRUPTED = 130
DEMO_OUT = "wtraj-demo-report"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status (``python -m wtraj`` exits with it)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USER_ERROR
    try:
        with signals_raise():
            return args.run(args)
    except Terminated as stop:
        if args.debug:
            raise
        print(f"wtraj: {stop}; no partial output was left.", file=sys.stderr)
        return stop.code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("wtraj: interrupted; nothing was written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"wtraj {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as error:
        if args.debug:
            raise
        print(
            f"wtraj {args.command}: internal error: {type(error).__name__}: {_one_line(error)} "
            "(rerun with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL_ERROR


def run() -> NoReturn:
    """``wtraj`` and ``python -m wtraj``: :func:`main`, then exit without the interpreter's teardown.

    Once the command has returned, its files are written and closed; tearing
    down the modules it loaded (Numba, LLVM) would only add a tenth of a
    second or more. Under a profiler or a tracer (coverage) the process
    exits as usual, so that they write their results.
    """
    code = main()
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    if isinstance(error, OSError) and error.filename and str(error.filename) not in text:
        text = f"{error.filename}: {error.strerror or text}"
    return " ".join(text.split())


# argument parsing


def _version() -> str:
    import wtraj

    return wtraj.__version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wtraj",
        description="Geometry of neural-network training trajectories in weight space.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--version", action="version", version=f"wtraj {_version()}")
    parser.set_defaults(command=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    analyze = commands.add_parser(
        "analyze",
        help="distances, step norms, curvature, runs, order, shifts; plots and report.html",
        description="Analyze checkpoints and write a report folder (metrics.json, CSVs, "
        "distances.npy, PNG figures, report.html).",
    )
    analyze.add_argument("paths", nargs="+", help="run folders and/or checkpoint files")
    analyze.add_argument("--out", required=True, help="report folder to create")
    _add_report_options(analyze)
    _add_reading_options(analyze)
    analyze.set_defaults(run=_analyze, command="analyze")

    diff = commands.add_parser(
        "diff",
        help="how much did the model change between two checkpoints",
        description="Distance, relative change and cosine similarity of two checkpoints, "
        "overall and per layer (largest change first).",
    )
    diff.add_argument("a", help="first checkpoint (file or model folder)")
    diff.add_argument("b", help="second checkpoint")
    diff.add_argument("--top", type=int, default=20, help="layers to list (default 20; 0 = all)")
    _add_reading_options(diff)
    diff.set_defaults(run=_diff, command="diff")

    order = commands.add_parser(
        "order",
        help="recovered training order of one run's checkpoints, with confidence",
        description="Recover the training order of the checkpoints of one run from their "
        "distances alone, and say how sure the direction (which end is the start) is.",
    )
    order.add_argument("paths", nargs="+", help="a run folder, or checkpoint files")
    _add_reading_options(order)
    order.set_defaults(run=_order, command="order")

    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of metrics.json",
        description="Print the JSON Schema (draft 2020-12) of the metrics.json that "
        "`wtraj analyze` writes; every field is described in it.",
    )
    schema.set_defaults(run=_schema, command="schema")

    demo = commands.add_parser(
        "demo",
        help="`analyze` on the sample checkpoints shipped with wtraj",
        description="Run `wtraj analyze` on the sample checkpoints shipped with wtraj "
        "(four tiny training runs) and write the report.",
    )
    demo.add_argument("--samples", help="sample folder (default: the samples shipped with wtraj)")
    demo.add_argument("--out", default=DEMO_OUT, help=f"report folder (default ./{DEMO_OUT})")
    _add_report_options(demo)
    _add_reading_options(demo)
    demo.set_defaults(run=_demo, command="demo")
    return parser


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--runs", type=int, default=None, help="number of runs (default: inferred)")
    parser.add_argument(
        "--runs-from", choices=("recovered", "inputs"), default="recovered",
        help="recovered: find the runs from the distances (default); "
        "inputs: each input path is one run",
    )  # fmt: skip


def _add_reading_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--include", help="only tensors whose name matches this regex")
    parser.add_argument("--exclude", help="leave out tensors whose name matches this regex")
    parser.add_argument(
        "--backend", choices=("auto", "numba", "triton", "reference"), default=None,
        help="compute backend (default: auto, or WTRAJ_BACKEND)",
    )  # fmt: skip
    parser.add_argument("--memory-budget", default=None, help="bytes for read buffers, e.g. 512MB or 2GiB")
    parser.add_argument(
        "--allow-outside-shards", action="store_true",
        help="let a shard index name shard files outside its own folder (off: a downloaded model "
        "folder cannot make wtraj read other files)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bars (also off when not a terminal)"
    )


def _reading(args: argparse.Namespace) -> dict[str, Any]:
    """The options every command passes to wtraj.open / the API, checked."""
    from wtraj._memory import resolve_memory_budget

    for name in ("include", "exclude"):
        pattern = getattr(args, name)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"--{name} {pattern!r} is not a regular expression: {error}.") from None
    budget = None if args.memory_budget is None else resolve_memory_budget(args.memory_budget)
    return {
        "include": args.include,
        "exclude": args.exclude,
        "backend": args.backend,
        "memory_budget": budget,
        "progress": False if args.no_progress else None,
        "allow_outside_shards": args.allow_outside_shards,
    }


def _emit(args: argparse.Namespace, payload: dict, text: str) -> None:
    if args.json:
        from wtraj.report.writer import strict_json

        print(json.dumps(strict_json(payload), indent=1, allow_nan=False))
    else:
        print(text)


# commands


def _analyze(args: argparse.Namespace) -> int:
    return _analyze_paths(args, [str(p) for p in args.paths])


def _analyze_paths(args: argparse.Namespace, paths: list[str]) -> int:
    from wtraj._group import pass_group, torchrun_group

    if args.runs is not None and args.runs < 1:
        raise ValueError(f"--runs must be a positive number of runs; got {args.runs}.")
    # under torchrun the ranks split the pass; rank 0 alone writes and prints
    with torchrun_group() as group:
        return _analyze_in(args, paths, pass_group(group))


def _analyze_in(args: argparse.Namespace, paths: list[str], ranks) -> int:
    from wtraj.pipeline import analyze
    from wtraj.report.build import write_report
    from wtraj.report.figure_pool import MIN_PASS_BYTES, FigurePool
    from wtraj.report.output_target import prepare_output

    writer = ranks is None or ranks.rank == 0
    # refuse an --out that exists, is an input or cannot be written before the (long) analysis
    _on_rank_0(ranks, lambda: prepare_output(args.out, overwrite=args.overwrite, inputs=paths), "--out")
    options = _reading(args)
    with FigurePool() as pool:

        def opened(checkpoints) -> None:
            # workers to draw the figures, started now: they import matplotlib while the pass reads
            if writer and checkpoints.nbytes >= MIN_PASS_BYTES:
                pool.start()

        analysis = analyze(
            paths, n_runs=args.runs, runs_from=args.runs_from, group=ranks, on_open=opened, **options
        )
        out = _on_rank_0(
            ranks,
            lambda: write_report(
                analysis, args.out, inputs=analysis.inputs, overwrite=args.overwrite, pool=pool
            ),
            "writing the report",
        )
    if not writer:
        return 0
    runs = [
        {
            "run": run.label,
            "n_checkpoints": len(run.order),
            "first": run.checkpoints[0],
            "last": run.checkpoints[-1],
            "direction_confidence": run.direction_confidence,
            "events": [
                {"kind": s["kind"], "checkpoint": analysis.names[s["checkpoint"]], "score": s["score"]}
                for s in run.shifts
            ],
        }
        for run in analysis.runs
    ]
    payload = {
        "report": str(out / "report.html"),
        "out": str(out),
        "n_checkpoints": len(analysis.names),
        "n_params": analysis.n_params,
        "runs": runs,
        "notes": analysis.notes(),
    }
    lines = [
        f"{len(analysis.names)} checkpoints x {analysis.n_params:,} parameters, {len(analysis.runs)} run(s):"
    ]
    for run in runs:
        confidence = run["direction_confidence"]
        lines.append(
            f"  run {run['run']}: {run['n_checkpoints']} checkpoints, {run['first']} -> "
            f"{run['last']} (direction confidence "
            f"{'n/a' if math.isnan(confidence) else f'{confidence:.3f}'}); events: "
            + (", ".join(f"{e['kind']} at {e['checkpoint']}" for e in run["events"]) or "none")
        )
    lines.extend(f"note: {note}" for note in analysis.notes())
    lines.append(f"report: {out / 'report.html'}")
    _emit(args, payload, "\n".join(lines))
    return 0


def _on_rank_0(ranks, action, what: str):
    """``action()`` on rank 0 only (or alone), its failure raised on every rank."""
    if ranks is None:
        return action()
    result, error = None, None
    if ranks.rank == 0:
        try:
            result = action()
        except Exception as caught:
            error = caught
    ranks.agree(error, f"wtraj analyze: {what}")
    return result


def _diff(args: argparse.Namespace) -> int:
    import numpy as np

    import wtraj

    if args.top < 0:
        raise ValueError(f"--top must be >= 0; got {args.top}.")
    options = _reading(args)
    checkpoints = wtraj.open(
        [args.a, args.b],
        include=options["include"],
        exclude=options["exclude"],
        memory_budget=options["memory_budget"],
        allow_outside_shards=options["allow_outside_shards"],
    )
    stats = wtraj.trajectory_stats(
        checkpoints,
        by_layer=True,
        backend=options["backend"],
        memory_budget=options["memory_budget"],
        progress=options["progress"],
    )
    overall = _change(stats.distances[0, 1], stats.norms[0], stats.norms[1])
    layers = [
        {"name": layer.name, "shape": list(layer.shape), "size": int(np.prod(layer.shape))}
        | _change(layer.distances[0, 1], layer.norms[0], layer.norms[1])
        for layer in stats.layers.values()
    ]
    layers.sort(key=lambda layer: -layer["distance"])
    payload = {"a": args.a, "b": args.b, "n_params": int(checkpoints.n_params)} | overall
    payload["layers"] = layers
    shown = layers if args.top == 0 else layers[: args.top]
    lines = [
        f"{args.a} -> {args.b}: {checkpoints.n_params:,} parameters in {len(layers)} tensors",
        f"  distance          {overall['distance']:.6g}  (L2, ||b - a||)",
        f"  relative change   {overall['relative_change']:.6g}  (distance / ||a||)",
        f"  cosine similarity {overall['cosine_similarity']:.9f}  "
        '(cos(a, b); pairwise(metric="cosine") gives 1 - cos)',
        "",
        _layer_table(shown),
    ]
    if len(shown) < len(layers):
        lines.append(f"  ... {len(layers) - len(shown)} more (--top 0 lists all, --json gives all)")
    _emit(args, payload, "\n".join(lines))
    return 0


def _change(distance: float, norm_a: float, norm_b: float) -> dict[str, float]:
    """Distance, relative change and cosine similarity of two vectors from their norms."""
    distance, norm_a, norm_b = float(distance), float(norm_a), float(norm_b)
    relative = distance / norm_a if norm_a > 0 else math.nan
    if norm_a > 0 and norm_b > 0:
        # law of cosines; the error is ~1e-16 absolute for the similarity itself
        cosine = (norm_a**2 + norm_b**2 - distance**2) / (2 * norm_a * norm_b)
        cosine = min(1.0, max(-1.0, cosine))
    else:
        cosine = math.nan
    return {"distance": distance, "relative_change": relative, "cosine_similarity": cosine,
            "norm_a": norm_a, "norm_b": norm_b}  # fmt: skip


def _layer_table(layers: list[dict]) -> str:
    width = max([len("layer")] + [len(layer["name"]) for layer in layers])
    header = (
        f"  {'layer':<{width}}  {'shape':>16}  {'distance':>12}  {'relative':>10}  {'cos similarity':>14}"
    )
    rows = [header, "  " + "-" * (len(header) - 2)]
    for layer in layers:
        shape = "x".join(str(s) for s in layer["shape"]) or "scalar"
        rows.append(
            f"  {layer['name']:<{width}}  {shape:>16}  {layer['distance']:>12.6g}  "
            f"{layer['relative_change']:>10.4g}  {layer['cosine_similarity']:>14.8f}"
        )
    return "\n".join(rows)


def _order(args: argparse.Namespace) -> int:
    import wtraj
    from wtraj.pipeline import discover_checkpoints

    options = _reading(args)
    files, names, _ = discover_checkpoints([str(p) for p in args.paths])
    if len(files) < 3:
        raise ValueError(
            f"{args.paths[0]}: found {len(files)} checkpoint(s); recovering an order with a "
            "direction needs at least 3."
        )
    checkpoints = wtraj.open(
        files,
        include=options["include"],
        exclude=options["exclude"],
        memory_budget=options["memory_budget"],
        allow_outside_shards=options["allow_outside_shards"],
    )
    # the norms, from the same pass as the distances, are a cue of the direction
    stats = wtraj.trajectory_stats(
        checkpoints,
        backend=options["backend"],
        memory_budget=options["memory_budget"],
        progress=options["progress"],
    )
    D = stats.distances
    order, confidence = wtraj.order_checkpoints(
        D, metric="precomputed", norms=stats.norms, return_confidence=True
    )
    order = [int(i) for i in order]
    steps = [math.nan] + [float(D[a, b]) for a, b in zip(order[:-1], order[1:], strict=True)]
    payload = {
        "order": order,
        "names": [names[i] for i in order],
        "direction_confidence": float(confidence),
        "step_norms": steps,
        "input_order_kept": order == sorted(order),
    }
    lines = [f"recovered order of {len(order)} checkpoints (direction confidence {confidence:.3f}):"]
    width = max(len(n) for n in names)
    for position, (row, step) in enumerate(zip(order, steps, strict=True)):
        step_text = "" if math.isnan(step) else f"step {step:.6g}"
        lines.append(f"  {position:>4}  {names[row]:<{width}}  (input #{row})  {step_text}")
    _emit(args, payload, "\n".join(lines))
    return 0


def _schema(args: argparse.Namespace) -> int:
    from wtraj.report.schema import metrics_schema_text

    sys.stdout.write(metrics_schema_text())
    return 0


def default_samples() -> Path:
    """The shipped sample runs: in the installed package (``wtraj/_samples``) or a clone's ``samples/``."""
    import wtraj

    package = Path(wtraj.__file__).resolve().parent
    installed = package / "_samples"
    return installed if installed.is_dir() else package.parent / "samples"


def demo_inputs(samples: Path) -> list[str]:
    """The run folders of a sample folder: its subfolders holding checkpoints, or itself."""
    from wtraj.checkpoints.discovery import discover

    if not samples.is_dir():
        raise FileNotFoundError(
            f"{samples}: sample checkpoints not found; they ship with wtraj (wtraj/_samples in "
            "the installed package, samples/ in a clone): reinstall wtraj, or pass --samples PATH."
        )
    runs = []
    for folder in sorted(p for p in samples.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            if len(discover(folder)) >= 2:
                runs.append(str(folder))
        except ValueError:
            continue
    return runs or [str(samples)]


def _demo(args: argparse.Namespace) -> int:
    samples = Path(args.samples) if args.samples else default_samples()
    return _analyze_paths(args, demo_inputs(samples))


__all__ = ["main", "run"]
