"""Fuzz the checkpoint readers: mutate valid files of every format, read them, compare with the references.

Each case writes two checkpoints of one format, the second one mutated (bit
flips, truncation, inserted bytes, and format-aware edits of the safetensors
header, the shard index, the torch pickle, the .npy header and .npz members),
then runs ``wtraj.open`` + ``wtraj.trajectory_stats`` in a worker subprocess
under a memory limit (RLIMIT_AS) and a time limit. Acceptable outcomes:

* ``match``: wtraj's values equal, bit for bit, those the reference reader
  (``safetensors``, ``torch.load(weights_only=True)``, ``numpy.load``) reads
  from the same bytes, and ``trajectory_stats`` agrees with the same function
  on the reference values held in memory;
* ``error``: a ValueError or OSError whose message names a file of the case.

Anything else is a finding: another exception type, an error not naming the
file, a signal death, a hang, a memory blow-up, a result differing from the
reference, or a result where the reference refuses the bytes.

Usage::

    python bench/fuzz_checkpoints.py --cases 1000 --workers 2 [--formats safetensors,npy] [--seed 0]

prints one table row per format and writes the findings (with the seed of
each case, to replay it with ``--replay FORMAT:SEED``) to ``--findings``.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import zipfile
import zlib
from pathlib import Path

import numpy as np

# a worker's address space: ~1 GiB after importing torch and numba, plus 2 GiB for a case
WORKER_ADDRESS_SPACE = 3 << 30
CASE_TIMEOUT_S = 60.0
FORMATS = ("safetensors", "sharded", "torch", "lightning", "npy", "npz", "npz_compressed", "hf_folder")
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "module")
INTERESTING_INTS = (
    *(0, 1, -1, 2, 7, 8, 255, 2**16, 2**31 - 1, 2**31, 2**32, 2**32 + 8, 2**53),
    *(2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, 10**16),
)
INTERESTING_VALUES = (
    *INTERESTING_INTS,
    *(1.5, -0.0, "F32", "BF16", "F64", "I64", "X9", ["F32"], [], {}, None, True, ""),
    *("../outside.safetensors", "model-00001-of-00002.safetensors"),
)


# ---------------------------------------------------------------- seed checkpoints


def seed_state(rng: np.random.Generator, kind: str) -> dict[str, np.ndarray]:
    """A small state dict: float32 and float16 tensors (bfloat16 added by the torch/safetensors writers)."""
    return {
        "conv.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float32),
        "conv.bias": rng.standard_normal(3).astype(np.float32),
        "fc.weight": rng.standard_normal((4, 5)).astype(np.float16 if kind != "npy" else np.float32),
        "fc.bias": rng.standard_normal(4).astype(np.float64),
        "steps": np.arange(3, dtype=np.int64),
    }


def write_seed(fmt: str, folder: Path, label: str, seed: int) -> tuple[Path, Path]:
    """Write checkpoint ``label`` of format ``fmt``: (the path to open, the file to mutate)."""
    import torch
    from safetensors.torch import save_file

    rng = np.random.default_rng(seed)
    state = seed_state(rng, fmt)
    tensors = {k: torch.from_numpy(v) for k, v in state.items()}
    tensors["emb.weight"] = torch.from_numpy(rng.standard_normal((2, 3)).astype(np.float32)).to(
        torch.bfloat16
    )
    if fmt == "safetensors":
        path = folder / f"{label}.safetensors"
        save_file(tensors, str(path))
        return path, path
    if fmt == "hf_folder":
        step = folder / f"checkpoint-{1 if label == 'a' else 2}"
        step.mkdir()
        save_file(tensors, str(step / "model.safetensors"))
        (step / "config.json").write_text('{"model_type": "toy"}')
        return folder, step / "model.safetensors"
    if fmt == "sharded":
        model = folder / label
        model.mkdir()
        names = list(tensors)
        weight_map = {}
        for s in range(2):
            shard = f"model-{s + 1:05d}-of-00002.safetensors"
            save_file({n: tensors[n] for n in names[s::2]}, str(model / shard))
            weight_map.update(dict.fromkeys(names[s::2], shard))
        index = model / "model.safetensors.index.json"
        index.write_text(json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}))
        return index, index
    if fmt in ("torch", "lightning"):
        path = folder / f"{label}.{'pt' if fmt == 'torch' else 'ckpt'}"
        nested = {"conv": {"weight": tensors.pop("conv.weight"), "bias": tensors.pop("conv.bias")}, **tensors}
        # a transposed tensor: its storage is not in C order
        nested["fc.weight"] = nested["fc.weight"].t().contiguous().t()
        payload = nested if fmt == "torch" else {"epoch": 3, "state_dict": nested, "optimizer_states": [{}]}
        torch.save(payload, path)
        return path, path
    if fmt == "npy":
        path = folder / f"{label}.npy"
        np.save(path, state["conv.weight"])
        return path, path
    path = folder / f"{label}.npz"
    (np.savez if fmt == "npz" else np.savez_compressed)(path, **state)
    return path, path


# ---------------------------------------------------------------- mutations


def mutate_bytes(rng: random.Random, data: bytes, hot: int) -> tuple[bytes, str]:
    """One generic byte-level mutation; positions fall in ``[0, hot)`` (the header) half of the time."""
    data = bytearray(data)
    if not data:
        return bytes(rng.randbytes(rng.randint(1, 16))), "random bytes"

    def pos() -> int:
        return rng.randrange(min(hot, len(data)) if hot and rng.random() < 0.5 else len(data))

    kind = rng.choice(["flip", "flip", "byte", "u64", "truncate", "insert", "delete", "duplicate", "zero"])
    if kind == "flip":
        n = rng.randint(1, 8)
        for _ in range(n):
            data[pos()] ^= 1 << rng.randrange(8)
        return bytes(data), f"{n} bit flips"
    if kind == "byte":
        data[pos()] = rng.choice([0, 0xFF, 0x7F, 0x80, ord("9"), ord("{"), ord('"'), ord("-")])
        return bytes(data), "interesting byte"
    if kind == "u64":
        at = pos()
        data[at : at + 8] = struct.pack("<Q", rng.choice(INTERESTING_INTS) % 2**64)
        return bytes(data), "u64 overwrite"
    if kind == "truncate":
        return bytes(data[: rng.randrange(len(data))]), "truncated"
    if kind == "insert":
        at = pos()
        return bytes(data[:at] + rng.randbytes(rng.randint(1, 64)) + data[at:]), "inserted bytes"
    if kind == "delete":
        at = pos()
        return bytes(data[:at] + data[at + rng.randint(1, 64) :]), "deleted bytes"
    if kind == "duplicate":
        at = pos()
        return bytes(data[:at] + data[at : at + rng.randint(1, 256)] + data[at:]), "duplicated slice"
    at = pos()
    data[at : at + rng.randint(1, 64)] = bytes(min(64, len(data) - at))
    return bytes(data), "zeroed run"


def mutate_json(rng: random.Random, obj, depth: int = 0):
    """A copy of ``obj`` with one value replaced, removed or duplicated somewhere in the tree."""
    if isinstance(obj, dict) and obj and rng.random() < 0.8:
        key = rng.choice(list(obj))
        out = dict(obj)
        roll = rng.random()
        if roll < 0.1:
            del out[key]
        elif roll < 0.2:
            out[key + rng.choice(["", "x", ".1"])] = obj[key]
        else:
            out[key] = mutate_json(rng, obj[key], depth + 1)
        return out
    if isinstance(obj, list) and obj and rng.random() < 0.8:
        out = list(obj)
        i = rng.randrange(len(out))
        roll = rng.random()
        if roll < 0.15:
            del out[i]
        elif roll < 0.3:
            out.insert(i, out[i])
        else:
            out[i] = mutate_json(rng, out[i], depth + 1)
        return out
    if isinstance(obj, int) and not isinstance(obj, bool) and rng.random() < 0.5:
        return obj + rng.choice([-8, -4, -2, -1, 1, 2, 4, 8])
    if rng.random() < 0.03:
        # replaced by deeply nested brackets when the JSON is written
        return "[DEEP]"
    return rng.choice(INTERESTING_VALUES)


def dump_json(rng: random.Random, obj) -> bytes:
    text = json.dumps(obj)
    # a few structural edits json.dumps cannot express: deep nesting, a repeated key
    if "[DEEP]" in text:
        text = text.replace('"[DEEP]"', "[" * 100_000 + "]" * 100_000, 1)
    if rng.random() < 0.05 and text.startswith('{"'):
        first = text[1 : text.index(":", 1)]
        text = "{" + first + ": 0, " + text[1:]
    return text.encode()


def mutate_safetensors(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    (n,) = struct.unpack("<Q", data[:8]) if len(data) >= 8 else (0,)
    if rng.random() < 0.5 and 8 + n <= len(data):
        header = json.loads(data[8 : 8 + n])
        raw = dump_json(rng, mutate_json(rng, header))
        # mostly a consistent length prefix, sometimes the old one
        if rng.random() < 0.9:
            return struct.pack("<Q", len(raw)) + raw + data[8 + n :], "header JSON edit"
        return data[:8] + raw + data[8 + n :], "header JSON edit, stale length"
    return mutate_bytes(rng, data, 8 + n)


def mutate_index(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    if rng.random() < 0.7:
        return dump_json(rng, mutate_json(rng, json.loads(data))), "index JSON edit"
    return mutate_bytes(rng, data, len(data))


def rezip(members: list[tuple[zipfile.ZipInfo, bytes]], compression: int | None = None) -> bytes:
    """A zip archive of ``members`` with fresh CRCs, so that edits reach the parsers behind the zip."""
    import io

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info, content in members:
            fresh = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            fresh.compress_type = info.compress_type if compression is None else compression
            archive.writestr(fresh, content)
    return out.getvalue()


def mutate_torch(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    import io

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = [(info, archive.read(info)) for info in archive.infolist()]
    roll = rng.random()
    if roll < 0.45:
        # the pickle: byte edits of the opcode stream, CRC fixed so torch unpickles it
        i = next(i for i, (info, _) in enumerate(members) if info.filename.endswith("data.pkl"))
        edited, what = mutate_bytes(rng, members[i][1], 0)
        members[i] = (members[i][0], edited)
        return rezip(members), f"pickle: {what}"
    if roll < 0.65:
        # a storage record: value bytes, or its length
        records = [i for i, (info, _) in enumerate(members) if "/data/" in info.filename]
        i = rng.choice(records)
        content = bytearray(members[i][1])
        if rng.random() < 0.5 and content:
            content[rng.randrange(len(content))] ^= 1 << rng.randrange(8)
            what = "flipped a value bit"
        else:
            content = content[: rng.randrange(len(content) + 1)]
            what = "shortened"
        members[i] = (members[i][0], bytes(content))
        return rezip(members), f"storage record {what}"
    if roll < 0.7:
        return rezip(members, zipfile.ZIP_DEFLATED), "storage records compressed"
    return mutate_bytes(rng, data, len(data))


def mutate_npy_header(rng: random.Random, content: bytes) -> tuple[bytes, str]:
    """An edit of the dict literal of an .npy header (the length field kept consistent)."""
    if len(content) < 10 or content[:6] != b"\x93NUMPY":
        return mutate_bytes(rng, content, 128)
    major = content[6]
    size_len = 2 if major == 1 else 4
    (n,) = struct.unpack("<H" if size_len == 2 else "<I", content[8 : 8 + size_len])
    start = 8 + size_len
    text = content[start : start + n].decode("latin1")
    edits = [
        (
            "'<f4'",
            rng.choice(["'<f8'", "'>f4'", "'|O'", "'<f2'", "'V8'", "[('a', '<f4')]", "'<U4'", "'<f4", "''"]),
        ),
        ("False", rng.choice(["True", "0", "None"])),
        ("(", rng.choice(["(2**70, ", "(-1, ", "(10000000000000000, ", "((", "(1.5, ", "('''", "(True, "])),
        ("{", rng.choice(["{{", "{'x': 1, ", "{" * 2000])),
        ("'shape'", rng.choice(["'shap'", "'shape':(), 'shape'"])),
    ]
    old, new = rng.choice(edits)
    if old in text:
        text = text.replace(old, new, 1)
    raw = text.encode("latin1")
    raw += b" " * (-(start + len(raw) + 1) % 64) + b"\n"
    length = struct.pack("<H" if size_len == 2 and len(raw) < 65536 else "<I", len(raw))
    if len(length) != size_len:
        return mutate_bytes(rng, content, 128)
    return content[:8] + length + raw + content[start + n :], f"npy header {old!r} -> {new[:20]!r}"


def mutate_npz(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    import io

    if rng.random() < 0.6:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = [(info, archive.read(info)) for info in archive.infolist()]
        i = rng.randrange(len(members))
        info, content = members[i]
        if rng.random() < 0.6:
            content, what = mutate_npy_header(rng, content)
        else:
            content, what = mutate_bytes(rng, content, 128)
        members[i] = (info, content)
        return rezip(members), f"member {info.filename}: {what}"
    return mutate_bytes(rng, data, len(data))


def mutate_npy(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    if rng.random() < 0.5:
        return mutate_npy_header(rng, data)
    return mutate_bytes(rng, data, 128)


MUTATORS = {
    "safetensors": mutate_safetensors,
    "hf_folder": mutate_safetensors,
    "sharded": mutate_index,
    "torch": mutate_torch,
    "lightning": mutate_torch,
    "npy": mutate_npy,
    "npz": mutate_npz,
    "npz_compressed": mutate_npz,
}


def build_case(fmt: str, seed: int, root: Path) -> dict:
    """Write case ``seed`` of ``fmt`` under ``root``: a valid checkpoint and a mutated one."""
    rng = random.Random(f"{fmt}:{seed}")
    folder = root / f"case-{fmt}-{seed}"
    folder.mkdir(parents=True)
    open_a, _ = write_seed(fmt, folder, "a", 2 * seed)
    open_b, target = write_seed(fmt, folder, "b", 2 * seed + 1)
    # sometimes mutate a shard of a sharded checkpoint, or the first checkpoint
    if fmt == "sharded" and rng.random() < 0.3:
        target = target.parent / "model-00002-of-00002.safetensors"
        mutated, what = mutate_safetensors(rng, target.read_bytes())
    else:
        mutated, what = MUTATORS[fmt](rng, target.read_bytes())
    target.write_bytes(mutated)
    if fmt == "sharded" and b"../outside" in mutated:
        shutil.copy(target.parent / "model-00001-of-00002.safetensors", folder / "outside.safetensors")
    paths = str(open_a) if fmt == "hf_folder" else [str(open_a), str(open_b)]
    return {"format": fmt, "seed": seed, "folder": str(folder), "paths": paths, "mutation": what}


# ---------------------------------------------------------------- reference readers


def reference_checkpoints(case: dict) -> list[dict[str, np.ndarray]]:
    """The float tensors of each checkpoint as the format's own library reads them, as float64."""
    fmt = case["format"]
    if fmt == "hf_folder":
        folder = Path(case["paths"])
        files = [folder / "checkpoint-1" / "model.safetensors", folder / "checkpoint-2" / "model.safetensors"]
    else:
        files = [Path(p) for p in case["paths"]]
    return [reference_tensors(fmt, f) for f in files]


def reference_tensors(fmt: str, path: Path) -> dict[str, np.ndarray]:
    import torch
    from safetensors import safe_open

    def floats(tensors: dict) -> dict[str, np.ndarray]:
        out = {}
        for k, v in tensors.items():
            if isinstance(v, torch.Tensor):
                if v.layout != torch.strided:
                    raise ValueError("sparse")
                if v.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
                    out[k] = v.double().numpy()
            elif np.issubdtype(v.dtype, np.floating) and v.dtype.itemsize in (2, 4, 8):
                out[k] = v.astype(np.float64)
        return {k: v for k, v in out.items() if v.size}

    if fmt in ("safetensors", "hf_folder"):
        with safe_open(str(path), framework="pt") as f:
            return floats({k: f.get_tensor(k) for k in f.keys()})
    if fmt == "sharded":
        weight_map = json.loads(path.read_text())["weight_map"]
        out = {}
        for shard in sorted(set(weight_map.values())):
            with safe_open(os.path.join(path.parent, shard), framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in f.keys() if weight_map.get(k) == shard})
        missing = set(weight_map) - set(out)
        if missing:
            raise KeyError(missing)
        return floats(out)
    if fmt in ("torch", "lightning"):
        loaded = torch.load(path, map_location="cpu", weights_only=True)
        while isinstance(loaded, dict):
            key = next((k for k in WRAPPER_KEYS if isinstance(loaded.get(k), dict)), None)
            if key is None:
                break
            loaded = loaded[key]
        flat: dict[str, object] = {}

        def walk(node, prefix):
            if isinstance(node, torch.Tensor):
                if prefix[:-1] in flat:
                    raise ValueError("collision")
                flat[prefix[:-1]] = node
            elif isinstance(node, dict):
                for k, v in node.items():
                    walk(v, f"{prefix}{k}.")

        walk(loaded, "")
        return floats(flat)
    if fmt == "npy":
        return floats({"array": np.load(path, allow_pickle=False)})
    # NpzFile reads each member on demand: a damaged member fails alone, and a tensor
    # wtraj never reads (an int64 counter) may be damaged without touching any result
    readable = {}
    with np.load(path, allow_pickle=False) as archive:
        for k in archive.files:
            try:
                readable[k] = archive[k]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error):
                continue
    return floats(readable)


# ---------------------------------------------------------------- one case, in a worker


def run_wtraj(case: dict) -> dict:
    """wtraj's outcome on a case: its values and stats, or the error it raised."""
    import wtraj
    from wtraj._dtypes import host_floats

    try:
        ck = wtraj.open(case["paths"], strip_prefix=())
        X = np.full((ck.n_checkpoints, ck.n_params), np.nan)
        for block in ck.blocks(1 << 16):
            X[:, block.offset : block.offset + block.width] = host_floats(
                block.data[:, block.start : block.stop]
            )
        stats = wtraj.trajectory_stats(ck)
    except Exception as error:
        return {
            "error": type(error).__name__,
            "message": str(error)[:400],
            "ok_type": isinstance(error, (ValueError, OSError)),
        }
    return {
        "layers": [(layer.name, list(layer.shape)) for layer in ck.layers],
        "dtype": ck.dtype,
        "X": X,
        "stats": {"distances": stats.distances, "step_norms": stats.step_norms, "norms": stats.norms},
    }


def compare(case: dict, got: dict, reference: list[dict[str, np.ndarray]]) -> str | None:
    """None if wtraj's result equals the reference's, else what differs."""
    import wtraj

    first = reference[0]
    names = {name for name, _ in got["layers"]}
    if any(set(r) != set(first) for r in reference) or any(
        r[n].shape != first[n].shape for r in reference for n in first
    ):
        return "wtraj read checkpoints whose tensors differ in the reference"
    if names != set(first):
        return f"tensors {sorted(names ^ set(first))[:4]} differ from the reference's"
    for name, shape in got["layers"]:
        if tuple(shape) != first[name].shape:
            return f"tensor {name!r}: shape {shape} but {first[name].shape} in the reference"
    expected = np.stack(
        [np.concatenate([r[name].reshape(-1) for name, _ in got["layers"]]) for r in reference]
    )
    if not np.array_equal(got["X"], expected, equal_nan=True):
        i, j = np.argwhere(~((got["X"] == expected) | (np.isnan(got["X"]) & np.isnan(expected))))[0]
        return f"value [{i}, {j}]: wtraj {got['X'][i, j]!r}, reference {expected[i, j]!r}"
    truth = wtraj.trajectory_stats(expected.astype(np.float64 if got["dtype"] == "float64" else np.float32))
    rtol = 1e-12 if got["dtype"] == "float64" else 1e-5
    for key, value in got["stats"].items():
        if not np.allclose(value, getattr(truth, key), rtol=rtol, atol=0, equal_nan=True):
            return f"trajectory_stats {key}: {value!r} but {getattr(truth, key)!r} on the reference values"
    return None


def names_a_file(case: dict, message: str) -> bool:
    folder = Path(case["folder"])
    return folder.name in message or any(p.name in message for p in folder.rglob("*"))


def worker() -> None:
    """Serve cases from stdin (one JSON line each), answer one JSON line each on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
    import torch  # noqa: F401  (imported once, outside the measured cases)

    import wtraj

    wtraj.trajectory_stats(np.ones((2, 8), np.float32))
    wtraj.trajectory_stats(np.ones((2, 8), np.float64))
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        Path("/proc/self/clear_refs").write_text("5")
        rss_before = _status_kib("VmRSS")
        start = time.perf_counter()
        try:
            got = run_wtraj(case)
        except BaseException as error:  # MemoryError, RecursionError, ... : a finding
            got = {"error": type(error).__name__, "message": str(error)[:400], "ok_type": False}
        seconds = time.perf_counter() - start
        peak = _status_kib("VmHWM") - rss_before
        # tell the parent wtraj is done before the reference runs: a crash after this is the reference's
        print(json.dumps({"phase": "reference"}), flush=True)
        try:
            reference = reference_checkpoints(case)
            reference_error = None
        except BaseException as error:
            reference, reference_error = None, f"{type(error).__name__}: {str(error)[:200]}"
        outcome, detail = classify(case, got, reference, reference_error)
        print(
            json.dumps({"outcome": outcome, "detail": detail, "seconds": seconds, "peak_kib": peak}),
            flush=True,
        )


def classify(case, got, reference, reference_error) -> tuple[str, str]:
    if "error" in got:
        if not got["ok_type"]:
            return "finding", f"{got['error']}: {got['message']}"
        if not names_a_file(case, got["message"]):
            return "finding", f"error not naming the file: {got['error']}: {got['message']}"
        return ("error (reference too)" if reference is None else "error (reference reads it)"), got[
            "message"
        ][:160]
    if reference is None:
        return "finding", f"wtraj read bytes the reference refuses ({reference_error})"
    try:
        difference = compare(case, got, reference)
    except Exception as error:
        difference = f"comparison failed: {type(error).__name__}: {traceback.format_exc(limit=2)}"
    return ("match", "") if difference is None else ("finding", difference)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- the parent


class Worker:
    """A worker subprocess and a thread turning its stdout lines into a queue (for timeouts)."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        ready = self._line(600)
        if ready is None or not ready.get("ready"):
            raise RuntimeError("a fuzz worker did not start")

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def run(self, case: dict, timeout: float) -> dict:
        self.process.stdin.write(json.dumps(case) + "\n")
        self.process.stdin.flush()
        start = time.perf_counter()
        first = self._line(timeout)
        if first is None:
            return self._died("hang" if self.process.poll() is None else "crash", "in wtraj", start)
        second = self._line(timeout)
        if second is None:
            died = self._died("reference failure", "in the reference reader", start)
            died["outcome"] = "reference crashed"
            return died
        return second

    def _died(self, what: str, where: str, start: float) -> dict:
        self.process.kill()
        code = self.process.wait()
        seconds = time.perf_counter() - start
        detail = f"{what} {where} (exit {code})"
        return {"outcome": "finding", "detail": detail, "seconds": seconds, "peak_kib": 0, "dead": True}

    def _line(self, timeout: float) -> dict | None:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def fuzz(formats, n_cases: int, first_seed: int, n_workers: int, timeout: float, findings_path: Path | None):
    todo: queue.Queue = queue.Queue()
    for fmt in formats:
        for seed in range(first_seed, first_seed + n_cases):
            todo.put((fmt, seed))
    results: dict[str, list[dict]] = {fmt: [] for fmt in formats}
    lock = threading.Lock()
    root = Path(tempfile.mkdtemp(prefix="wtraj-fuzz-"))

    def serve() -> None:
        current = Worker()
        try:
            while True:
                try:
                    fmt, seed = todo.get_nowait()
                except queue.Empty:
                    return
                case = build_case(fmt, seed, root)
                result = current.run(case, timeout)
                if result.get("dead"):
                    current = Worker()
                result.update(seed=seed, mutation=case["mutation"])
                with lock:
                    results[fmt].append(result)
                    done = sum(map(len, results.values()))
                    if done % 100 == 0:
                        print(f"{done} cases", file=sys.stderr, flush=True)
                shutil.rmtree(case["folder"], ignore_errors=True)
        finally:
            current.close()

    threads = [threading.Thread(target=serve) for _ in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shutil.rmtree(root, ignore_errors=True)
    findings = [dict(r, format=fmt) for fmt, rs in results.items() for r in rs if r["outcome"] == "finding"]
    if findings_path is not None:
        findings_path.write_text(json.dumps(findings, indent=1))
        log = findings_path.with_suffix(".all.jsonl")
        log.write_text(
            "".join(json.dumps(dict(r, format=fmt)) + "\n" for fmt, rs in results.items() for r in rs)
        )
    return results, findings


def table(results: dict[str, list[dict]]) -> str:
    lines = [
        "| format | cases | match | error, reference reads it | error, reference refuses too | findings "
        "| slowest (s) | peak memory (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fmt, rs in results.items():
        count = {k: sum(r["outcome"] == k for r in rs) for k in
                 ("match", "error (reference reads it)", "error (reference too)", "finding")}  # fmt: skip
        slowest = max((r["seconds"] for r in rs), default=0.0)
        peak = max((r["peak_kib"] for r in rs), default=0) / 1024
        lines.append(
            f"| {fmt} | {len(rs)} | {count['match']} | {count['error (reference reads it)']} | "
            f"{count['error (reference too)']} | {count['finding']} | {slowest:.2f} | {peak:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200, help="cases per format")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--seed", type=int, default=0, help="first case seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT_S, help="seconds per case")
    parser.add_argument("--findings", type=Path, default=None, help="write the findings here (JSON)")
    parser.add_argument("--replay", default=None, help="FORMAT:SEED: run one case here, print everything")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return 0
    if args.replay:
        fmt, seed = args.replay.split(":")
        root = Path(tempfile.mkdtemp(prefix="wtraj-fuzz-"))
        case = build_case(fmt, int(seed), root)
        print(case)
        got = run_wtraj(case)
        print({k: v for k, v in got.items() if k not in ("X",)})
        try:
            reference, reference_error = reference_checkpoints(case), None
        except Exception as error:
            reference, reference_error = None, repr(error)
        print(classify(case, got, reference, reference_error))
        print("files kept in", root)
        return 0
    formats = [f for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    start = time.perf_counter()
    results, findings = fuzz(formats, args.cases, args.seed, args.workers, args.timeout, args.findings)
    print(table(results))
    n_cases = sum(map(len, results.values()))
    print(f"{n_cases} cases in {time.perf_counter() - start:.0f} s; {len(findings)} findings")
    for finding in findings[:20]:
        print(f"  {finding['format']}:{finding['seed']} ({finding['mutation']}): {finding['detail'][:300]}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
