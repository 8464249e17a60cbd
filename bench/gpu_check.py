"""One prepared GPU check: every Triton kernel against the float64 reference, then timed.

Run on a machine with a CUDA GPU:  python bench/gpu_check.py [--quick]

1. Correctness: each Triton kernel (pairwise: sqdiff / absdiff / dot, self and
   cross; steps) on float32, float16 and bfloat16 random walks with steps of
   1e-3 to 1e-7 of the norm, against wtraj's float64 reference.
2. Speed: triton.testing.do_bench for N in {8, 64, 256} and D = 2**27 (float32
   and bfloat16; sizes that do not fit in 80% of the GPU's memory are skipped
   and said so), beside torch.cdist on the same GPU, each with its error.
   Floors: memory = bytes / measured bandwidth (a torch sum of the same
   tensor); compute = 3 flops per pair and column / measured float32 matmul
   rate (TF32 off). The table prints the fraction of the larger floor reached.
"""

import argparse
import sys

import numpy as np
import torch
import triton
import triton.testing

import wtraj

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def walk(n, d, step, dtype, device="cuda", seed=0):
    gen = torch.Generator(device=device).manual_seed(seed)
    start = torch.randn(d, device=device, generator=gen)
    steps = torch.randn(n - 1, d, device=device, generator=gen)
    steps *= step * start.norm() / steps.norm(dim=1, keepdim=True)
    X = torch.empty(n, d, device=device, dtype=dtype)
    X[0] = start.to(dtype)
    X[1:] = (start + steps.cumsum(0)).to(dtype)
    return X


def check_correctness():
    failures = 0
    for dtype_name, dtype in DTYPES.items():
        for step in (1e-3, 1e-5, 1e-7):
            X = walk(9, 1_000_003, step, dtype, seed=1)
            host = X.cpu()
            for metric in ("euclidean", "sqeuclidean", "cosine", "inner", "cityblock"):
                got = wtraj.pairwise(X, metric=metric, backend="triton")
                ref = wtraj.pairwise(host, metric=metric, backend="reference")
                failures += report(f"pairwise {metric} {dtype_name} step {step:g}", got, ref, metric)
            got = wtraj.pairwise(X[:4], X[3:], backend="triton")
            ref = wtraj.pairwise(host[:4], host[3:], backend="reference")
            failures += report(f"pairwise cross {dtype_name} step {step:g}", got, ref, "euclidean")
            got = wtraj.step_norms(X, backend="triton")
            ref = wtraj.step_norms(host, backend="reference")
            failures += report(f"step_norms {dtype_name} step {step:g}", got, ref, "euclidean")
            got = wtraj.curvature(X, backend="triton")
            ref = wtraj.curvature(host, backend="reference")
            failures += report(f"turning angle {dtype_name} step {step:g}", got, ref, "euclidean")
    # weight decay: rows shrinking by 0.1% a step while turning by 1e-6 (issue 11)
    gen = torch.Generator(device="cuda").manual_seed(2)
    rows = [torch.randn(1_000_003, device="cuda", generator=gen, dtype=torch.float64)]
    for _ in range(5):
        rows.append(0.999 * rows[-1] + 1e-6 * torch.randn(rows[0].shape, device="cuda", generator=gen,
                                                          dtype=torch.float64))
    X = torch.stack(rows).float()
    got = wtraj.pairwise(X, metric="cosine", backend="triton")
    ref = wtraj.pairwise(X.cpu(), metric="cosine", backend="reference")
    failures += report("pairwise cosine, radial change, float32", got, ref, "radial cosine")
    return failures


def report(what, got, ref, metric):
    if metric in ("inner", "angle", "cosine"):
        scale = 1.0 if metric == "angle" else float(np.max(np.abs(ref)))
        error = float(np.max(np.abs(got - ref))) / scale
        limit = 1e-6 if metric != "cosine" else 1e-5
    else:
        mask = ref != 0
        error = float(np.max(np.abs(got[mask] - ref[mask]) / ref[mask]))
        # float32 tiles; 1 - cos from float64 differences of unit vectors
        limit = 1e-9 if metric == "radial cosine" else 1e-6
    status = "ok" if error <= limit else "FAIL"
    print(f"  {status:4} {what:45} max error {error:.2e} (limit {limit:g})")
    return status == "FAIL"


def measured_bandwidth(X):
    ms = triton.testing.do_bench(lambda: X.sum(dtype=torch.float32))
    return X.numel() * X.element_size() / (ms * 1e-3)


def measured_fp32_flops():
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(8192, 8192, device="cuda")
    ms = triton.testing.do_bench(lambda: a @ a)
    return 2 * 8192**3 / (ms * 1e-3)


def time_kernels(quick):
    d = 2**20 if quick else 2**27
    free = torch.cuda.get_device_properties(0).total_memory * 0.8
    flops = measured_fp32_flops()
    print(f"\nmeasured float32 matmul rate: {flops / 1e12:.1f} TFLOP/s (TF32 off)")
    print("| op | N | D | dtype | wtraj ms | floor ms (which) | % of floor | torch.cdist ms "
          "| cdist max rel err | wtraj max rel err |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for dtype_name in ("float32", "bfloat16"):
        dtype = DTYPES[dtype_name]
        for n in (8, 64, 256):
            nbytes = n * d * torch.tensor([], dtype=dtype).element_size()
            if nbytes * 1.5 > free:
                print(f"| pairwise | {n} | {d} | {dtype_name} | skipped: "
                      f"{nbytes / 2**30:.0f} GiB does not fit |")
                continue
            X = walk(n, d, 1e-5, dtype)
            bandwidth = measured_bandwidth(X)
            pairs = n * (n - 1) / 2
            memory_floor = nbytes / bandwidth * 1e3
            compute_floor = 3 * pairs * d / flops * 1e3
            floor, which = max((memory_floor, "memory"), (compute_floor, "compute"))
            ms = triton.testing.do_bench(lambda X=X: wtraj.pairwise(X, backend="triton"))
            Xf = X.float()
            cdist_ms = triton.testing.do_bench(lambda Xf=Xf: torch.cdist(Xf, Xf))
            sample = X[:, : 2**20].cpu()
            ref = wtraj.pairwise(sample, backend="reference")
            mask = ref != 0
            ours = wtraj.pairwise(X[:, : 2**20].contiguous(), backend="triton")
            theirs = torch.cdist(sample.float().cuda(), sample.float().cuda()).double().cpu().numpy()
            err = np.max(np.abs(ours[mask] - ref[mask]) / ref[mask])
            cerr = np.max(np.abs(theirs[mask] - ref[mask]) / ref[mask])
            print(f"| pairwise | {n} | {d} | {dtype_name} | {ms:.2f} | {floor:.2f} ({which}) | "
                  f"{100 * floor / ms:.0f}% | {cdist_ms:.2f} | {cerr:.1e} | {err:.1e} |")
            steps_ms = triton.testing.do_bench(lambda X=X: wtraj.trajectory_stats(X, backend="triton"))
            print(f"| trajectory_stats | {n} | {d} | {dtype_name} | {steps_ms:.2f} | "
                  f"{max(memory_floor, compute_floor):.2f} (pairwise floor) | "
                  f"{100 * max(memory_floor, compute_floor) / steps_ms:.0f}% | | | |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="D = 2**20 instead of 2**27")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        sys.exit("gpu_check.py needs a CUDA GPU.")
    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, triton {triton.__version__}")
    print("correctness against the float64 reference:")
    failures = check_correctness()
    time_kernels(args.quick)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
