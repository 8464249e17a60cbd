"""Degrade a kernel on purpose and check that the accuracy tests notice (issue 11, item 18).

Each mutation replaces one exact piece of source text, runs the tests that
should catch it with a fresh Numba cache (a cached kernel would hide a changed
constant of another module), and restores the file whatever happens. A
mutation that no test catches is reported as SURVIVED and the script exits 1.

    python bench/mutation_check.py            # every mutation
    python bench/mutation_check.py tile-1e30  # one, by name

Run it on a clean working tree: it edits and restores files of the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    path: str
    # (old, new) replacements in ``path``, each of text found there exactly once
    edits: tuple[tuple[str, str], ...]
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "tile-1e30",
        "float32 tile widened to whole blocks (TILE = 1 << 30)",
        "kernels/numba/_common.py",
        (("TILE = 1024\n", "TILE = 1 << 30\n"),),
        ("tests/test_pairwise.py", "tests/test_stats.py"),
    ),
    Mutation(
        "naive-arccos",
        "Kahan's triangle formula replaced by the law of cosines, arccos((a^2 + b^2 - c^2) / 2ab)",
        "wtraj/path.py",
        ((
            "    a, b = np.maximum(a, b), np.minimum(a, b)\n",
            "    return np.arccos(np.clip((a * a + b * b - c * c) / (2 * a * b), -1, 1))\n",
        ),),
        ("tests/test_steps.py", "tests/test_stats.py"),
    ),
    Mutation(
        "angle-by-dot-only",
        "turning angle always arccos(u.v / |u||v|) of the directly summed u.v (Kahan's sides never used)",
        "wtraj/path.py",
        ((
            "    return np.where(sides_error <= cosine_error, by_sides, by_cosine)\n",
            "    return by_cosine\n",
        ),),
        ("tests/test_steps.py", "tests/test_stats.py"),
    ),
    Mutation(
        "angle-by-sides-only",
        "turning angle always from the three sides (the summed u.v never used)",
        "wtraj/path.py",
        ((
            "    return np.where(sides_error <= cosine_error, by_sides, by_cosine)\n",
            "    return by_sides\n",
        ),),
        ("tests/test_steps.py",),
    ),
    Mutation(
        "steps-float32",
        "path sums from float32 values (the widening to float64 before the subtraction dropped)",
        "kernels/numba/steps.py",
        (("    return np.float64(load(x[row, k]))\n", "    return load(x[row, k])\n"),),
        ("tests/test_steps.py",),
    ),
    Mutation(
        "fused-steps-dropped",
        "the path sums pairwise_block adds on each tile (trajectory_stats) left out",
        "kernels/numba/pairwise.py",
        ((
            "                    tile_sums(steps_mask, x, x_start + k0, x_start + k0 + tile_width,"
            " steps_partial[c])\n",
            "                    pass\n",
        ),),
        ("tests/test_stats.py",),
    ),
    Mutation(
        "unit-float32",
        "cosine's unit-scaled values rounded to float32 (float64 scaling dropped)",
        "kernels/numba/pairwise.py",
        ((
            "        d = np.float64(load(x[i, xk0 + k])) * si - np.float64(load(y[j, yk0 + k])) * sj\n",
            "        d = np.float64(np.float32(load(x[i, xk0 + k]) * si))"
            " - np.float64(np.float32(load(y[j, yk0 + k]) * sj))\n",
        ),),
        ("tests/test_pairwise.py",),
    ),
    Mutation(
        "cosine-old-formula",
        "cosine as (|a-b|^2 - (|a|-|b|)^2) / 2|a||b| from float32 tile sums (no unit scaling)",
        "wtraj/metrics.py",
        (
            (
                '"cosine", ("cos",), PairOp.UNITDIFF, True, _cosine,',
                '"cosine", ("cos",), PairOp.SQDIFF, True, _cosine,',
            ),
            (
                "    distance = np.multiply(pairs, 0.5, out=pairs)\n",
                "    x_norm, y_norm = np.sqrt(x_norm2)[:, None], np.sqrt(y_norm2)[None, :]\n"
                "    radial = (x_norm2[:, None] - y_norm2[None, :]) / (x_norm + y_norm)\n"
                "    distance = (pairs - radial**2) / (2 * x_norm * y_norm)\n",
            ),
        ),
        ("tests/test_pairwise.py",),
    ),
    Mutation(
        "no-float64-recompute",
        "float32 tile sums that overflowed or underflowed kept as they are (no float64 pass)",
        "wtraj/_pass.py",
        ((
            "            if x_rows.size:\n",
            "            if False:\n",
        ),),
        ("tests/test_pairwise.py", "tests/test_properties.py", "tests/test_stats.py"),
    ),
    Mutation(
        "triton-unit-float32",
        "Triton's unit-scaled values rounded to float32 and summed in float32",
        "kernels/triton/pairwise.py",
        (
            (
                "            x = x * tl.load(x_scale_ptr + offs_n, mask=mask_n, other=0.0)[:, None]\n",
                "            x = (x * tl.load(x_scale_ptr + offs_n, mask=mask_n, other=0.0)[:, None])"
                ".to(tl.float32)\n",
            ),
            (
                "            y = y * tl.load(y_scale_ptr + offs_m, mask=mask_m, other=0.0)[:, None]\n",
                "            y = (y * tl.load(y_scale_ptr + offs_m, mask=mask_m, other=0.0)[:, None])"
                ".to(tl.float32)\n",
            ),
        ),
        ("tests/test_pairwise.py",),
    ),
)


def run(mutation: Mutation) -> tuple[bool, list[str]]:
    """Apply, test, restore. Returns (caught, the failing test ids)."""
    path = ROOT / mutation.path
    original = path.read_text()
    mutated = original
    for old, new in mutation.edits:
        if mutated.count(old) != 1:
            raise SystemExit(f"{mutation.name}: {old!r} is not in {mutation.path} exactly once")
        mutated = mutated.replace(old, new)
    try:
        path.write_text(mutated)
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
            result = subprocess.run(
                [sys.executable, "-m", "pytest", *mutation.tests, "-q", "-p", "no:cacheprovider", "-rf"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
            )
    finally:
        path.write_text(original)
    failed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    return result.returncode != 0, failed


def main(names: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not names or m.name in names]
    survived = 0
    for mutation in chosen:
        caught, failed = run(mutation)
        survived += not caught
        verdict = "caught" if caught else "SURVIVED"
        print(f"{mutation.name}: {verdict} ({len(failed)} tests failed): {mutation.what}")
        for test in failed:
            print(f"    {test}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
