"""Files that change under a pass and hostile files: a clear error naming the file, never a wrong number.

Cases that could kill or exhaust the interpreter (SIGBUS, unbounded memory,
the open-file limit) run in a subprocess with the limit set there.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from checkpoints_fixtures import dense, flatten, make_state, to_torch, write_sharded_safetensors
from safetensors.numpy import save_file

import wtraj
from wtraj.cli import main as cli_main

REPO = Path(__file__).resolve().parents[1]


def run_python(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter importing this tree's wtraj."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests'}")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def write_safetensors(path: Path, header: dict | str, data: bytes, pad_to: int | None = None) -> None:
    """A safetensors file from a header (dict, or raw JSON text) and data bytes, written as given."""
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    if pad_to is not None:
        raw = raw.ljust(pad_to)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def two_safetensors(tmp_path):
    states = [make_state(0), make_state(1)]
    paths = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for state, path in zip(states, paths):
        save_file(state, str(path))
    return states, paths


# ---- item 4: a file that changes between open() and a pass, or during one


def test_file_replaced_by_rename_after_open_is_refused(tmp_path):
    states, paths = two_safetensors(tmp_path)
    ck = wtraj.open(paths)
    # the same values, with the header padded by 8 bytes: every offset moves
    data = paths[1].read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    padded = tmp_path / "b.new.safetensors"
    write_safetensors(padded, data[8 : 8 + n].decode(), data[8 + n :], pad_to=n + 8)
    np.testing.assert_array_equal(
        dense(wtraj.open([paths[0], padded]))[1], flatten(states[1], [lay.name for lay in ck.layers])
    )
    os.replace(padded, paths[1])
    with pytest.raises(ValueError, match=r"b\.safetensors: the file (was replaced|changed size)"):
        dense(ck)


def test_file_modified_in_place_after_open_is_refused(tmp_path):
    _, paths = two_safetensors(tmp_path)
    ck = wtraj.open(paths)
    # let the clock move past the modification time recorded at open
    time.sleep(0.05)
    with paths[1].open("r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\x00\x00\x80\x7f")
    with pytest.raises(ValueError, match=r"b\.safetensors: the file was modified"):
        dense(ck)


def test_file_modified_in_place_during_a_pass_is_refused(tmp_path):
    _, paths = two_safetensors(tmp_path)
    ck = wtraj.open(paths)
    blocks = ck.blocks(max_width=64)
    next(blocks)
    time.sleep(0.05)
    # the last bytes of the data: read by a later block, after this modification
    with paths[0].open("r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\x00\x00\x80\x3f")
    with pytest.raises(ValueError, match=r"a\.safetensors: the file was modified"):
        for _ in blocks:
            pass


def test_unchanged_files_pass_twice(tmp_path):
    states, paths = two_safetensors(tmp_path)
    ck = wtraj.open(paths)
    names = [layer.name for layer in ck.layers]
    expected = np.stack([flatten(s, names) for s in states])
    np.testing.assert_array_equal(dense(ck), expected)
    np.testing.assert_array_equal(dense(ck, max_width=64), expected)


# ---- item 3: torch files truncated after open(): an error, never SIGBUS

TRUNCATE_TORCH = """
    import os, sys, torch
    from checkpoints_fixtures import make_state, to_torch
    import wtraj
    folder = sys.argv[1] if len(sys.argv) > 1 else {folder!r}
    paths = [os.path.join(folder, f"{{i}}.pt") for i in range(2)]
    for i, p in enumerate(paths):
        torch.save(to_torch(make_state(i, shapes={{"w": (1 << 18,), "b": (8,)}})), p)

    def truncate():
        os.truncate(paths[1], os.path.getsize(paths[1]) // 2)
"""


def test_torch_file_truncated_after_open_is_an_error_not_sigbus(tmp_path):
    result = run_python(
        TRUNCATE_TORCH.format(folder=str(tmp_path))
        + """
    ck = wtraj.open(paths)
    truncate()
    try:
        wtraj.trajectory_stats(ck)
    except ValueError as error:
        print("ERROR", error)
    """
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" in result.stdout and "1.pt" in result.stdout


def test_torch_file_truncated_during_a_pass_is_an_error_not_sigbus(tmp_path):
    result = run_python(
        TRUNCATE_TORCH.format(folder=str(tmp_path))
        + """
    ck = wtraj.open(paths)
    blocks = ck.blocks(max_width=1 << 12)
    next(blocks)
    truncate()
    try:
        for _ in blocks:
            pass
    except ValueError as error:
        print("ERROR", error)
    """
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" in result.stdout and "1.pt" in result.stdout
    assert "ended" in result.stdout or "changed size" in result.stdout


def test_cli_on_torch_file_truncated_after_open_exits_1(tmp_path):
    result = run_python(
        TRUNCATE_TORCH.format(folder=str(tmp_path))
        + """
    from wtraj.cli import main
    opened = wtraj.open

    def open_then_truncate(*args, **kwargs):
        ck = opened(*args, **kwargs)
        truncate()
        return ck

    wtraj.open = open_then_truncate
    sys.exit(main(["diff", paths[0], paths[1]]))
    """
    )
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "1.pt" in result.stderr and "internal error" not in result.stderr


def test_torch_values_are_read_in_place_exactly(tmp_path):
    states = [make_state(i) for i in range(2)]
    for i, state in enumerate(states):
        tensors = to_torch(state)
        # a transposed (non-contiguous) tensor and a view with a storage offset
        tensors["fc.weight"] = torch.from_numpy(state["fc.weight"].T.copy()).t()
        tensors["fc.bias"] = torch.from_numpy(np.concatenate([[7.0], state["fc.bias"]]).astype(np.float32))[
            1:
        ]
        torch.save(tensors, tmp_path / f"{i}.pt")
    ck = wtraj.open(tmp_path)
    names = [layer.name for layer in ck.layers]
    np.testing.assert_array_equal(dense(ck), np.stack([flatten(s, names) for s in states]))


# ---- item 6: safetensors header rules


def f32(n: int) -> bytes:
    return np.arange(n, dtype="<f4").tobytes()


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        pytest.param(
            {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}},
            f32(4), r"tensor '[ab]'.*starts at byte 0.*ends at byte 16", id="overlap",
        ),
        pytest.param(
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
             "b": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}},
            f32(5), r"tensor 'b'.*starts at byte 12.*ends at byte 8", id="gap",
        ),
        pytest.param(
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
            f32(3), r"tensor 'a'.*starts at byte 4", id="not-from-0",
        ),
        pytest.param(
            {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            f32(3), r"data ends at byte 8.*holds 12 bytes", id="trailing-bytes",
        ),
        pytest.param(
            {"a": {"dtype": "F32", "shape": [2**32, 2**32], "data_offsets": [0, 0]}},
            b"", r"tensor 'a'.*(shape must be|lies about its size)", id="shape-product-overflows-u64",
        ),
        pytest.param(
            {"a": {"dtype": "F32", "shape": [2**70], "data_offsets": [0, 0]}},
            b"", r"tensor 'a'.*shape must be", id="shape-2**70",
        ),
        pytest.param(
            {"a": {"dtype": ["F32"], "shape": [2], "data_offsets": [0, 8]}},
            f32(2), r"tensor 'a'.*unknown safetensors dtype \['F32'\]", id="dtype-list",
        ),
        pytest.param(
            {"a": {"dtype": "F32", "shape": [True, 2], "data_offsets": [0, 8]}},
            f32(2), r"tensor 'a'.*shape must be", id="shape-bool",
        ),
        pytest.param(
            '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
            '"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
            f32(2), r"repeats the key 'a'", id="duplicate-key",
        ),
        pytest.param("[" * 100_000 + "]" * 100_000, b"", r"nested too deeply", id="deep-json"),
        pytest.param({"__metadata__": {"x": 1}}, b"", r"__metadata__", id="metadata-not-strings"),
    ],
)  # fmt: skip
def test_safetensors_header_rules(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, header, data)
    with pytest.raises(ValueError, match=r"bad\.safetensors.*" + message):
        wtraj.open(path)
    assert cli_main(["diff", str(path), str(path)]) == 1


def test_header_over_the_size_limit(tmp_path):
    path = tmp_path / "big.safetensors"
    with path.open("wb") as f:
        f.write(struct.pack("<Q", 100_000_001))
        f.truncate(8 + 100_000_001 + 8)
    with pytest.raises(ValueError, match=r"big\.safetensors.*limited to 100000000"):
        wtraj.open(path)


# ---- item 7: shards outside the index's folder


def index_to(folder: Path, shard: str | int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"w": shard}}))
    return index


@pytest.mark.parametrize("how", ["parent", "absolute", "symlink"])
def test_shards_outside_the_index_folder_are_refused_unless_allowed(tmp_path, how):
    outside = tmp_path / "outside.safetensors"
    save_file({"w": np.arange(3, dtype=np.float32)}, str(outside))
    model = tmp_path / "model"
    if how == "parent":
        index = index_to(model, "../outside.safetensors")
    elif how == "absolute":
        index = index_to(model, str(outside))
    else:
        index = index_to(model, "link.safetensors")
        (model / "link.safetensors").symlink_to(outside)
    with pytest.raises(ValueError, match=r"index\.json: shard '.*' lies outside the index's folder"):
        wtraj.open(index)
    assert cli_main(["diff", str(index), str(index)]) == 1
    ck = wtraj.open(index, allow_outside_shards=True)
    np.testing.assert_array_equal(dense(ck)[0], np.arange(3))
    # the command line opts in the same way
    assert cli_main(["diff", str(index), str(index), "--allow-outside-shards"]) == 0


def test_shard_symlink_inside_the_folder_is_read(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    save_file({"w": np.arange(3, dtype=np.float32)}, str(model / "real.safetensors"))
    (model / "link.safetensors").symlink_to(model / "real.safetensors")
    np.testing.assert_array_equal(dense(wtraj.open(index_to(model, "link.safetensors")))[0], np.arange(3))


# ---- item 8: malformed headers and indexes, each a clear error naming the file


def test_index_with_an_integer_shard_value(tmp_path):
    index = index_to(tmp_path / "m", 3)
    with pytest.raises(ValueError, match=r"index\.json.*tensor 'w' maps to 3, not a shard file name"):
        wtraj.open(index)
    assert cli_main(["diff", str(index), str(index)]) == 1


def test_index_nested_too_deeply(tmp_path):
    index = write_sharded_safetensors(tmp_path / "m", make_state(0))
    index.write_text('{"weight_map": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match=r"index\.json.*nested too deeply"):
        wtraj.open(index)
    assert cli_main(["diff", str(index), str(index)]) == 1


def test_index_over_the_size_limit(tmp_path):
    index = write_sharded_safetensors(tmp_path / "m", make_state(0))
    with index.open("r+b") as f:
        f.truncate(200_000_000)
    with pytest.raises(ValueError, match=r"index\.json: the shard index takes 200000000 bytes"):
        wtraj.open(index)


def npy_with_header(path: Path, header: str) -> None:
    text = header.encode("latin1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\0" * 64)


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '''",  # tokenize.TokenError in NumPy's Python 2 header filter
        "{" * 3000,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2**70,), }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
        "{'descr': [('a', '<f4', (2**40,))], 'fortran_order': False, 'shape': (2,), }",
    ],
    ids=["token-error", "deep", "shape-2**70", "negative-shape", "huge-subarray"],
)
def test_malformed_npy_header(tmp_path, header):
    path = tmp_path / "bad.npy"
    npy_with_header(path, header)
    with pytest.raises(ValueError, match=r"bad\.npy"):
        wtraj.open(path)
    assert cli_main(["diff", str(path), str(path)]) == 1


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_sparse_tensor_in_a_torch_file(tmp_path):
    path = tmp_path / "sparse.pt"
    sparse = torch.sparse_coo_tensor(torch.tensor([[0, 2]]), torch.tensor([1.0, 2.0]), (4,))
    torch.save({"w": torch.ones(3), "s": sparse}, path)
    with pytest.raises(ValueError, match=r"sparse\.pt: tensor 's' is sparse_coo"):
        wtraj.open(path)
    assert cli_main(["diff", str(path), str(path)]) == 1


def test_colliding_flattened_torch_keys(tmp_path):
    path = tmp_path / "collide.pt"
    torch.save({"a.b": torch.ones(2), "a": {"b": torch.zeros(2)}}, path)
    with pytest.raises(ValueError, match=r"collide\.pt: two tensors are both named 'a\.b'"):
        wtraj.open(path)


# ---- item 5: a compressed .npz member claiming a huge size


def npz_claiming(path: Path, n_values: int, central_size: int | None = None) -> None:
    """A compressed .npz whose member's .npy header claims ``n_values`` float32 values."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({n_values},), }}"
    text = header.encode() + b" " * (-(len(header) + 11) % 64) + b"\n"
    member = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + b"\0" * 64
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("w.npy", member)
    if central_size is not None:
        # make the zip's own records claim the size too (central directory and local header)
        data = bytearray(path.read_bytes())
        for signature, at in ((b"PK\x01\x02", 24), (b"PK\x03\x04", 22)):
            start = data.index(signature)
            data[start + at : start + at + 4] = struct.pack("<L", central_size)
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("zip_claims_it_too", [False, True])
def test_npz_member_claiming_1e16_values_fails_fast_in_bounded_memory(tmp_path, zip_claims_it_too):
    path = tmp_path / "bomb.npz"
    npz_claiming(path, 10**16, central_size=0xFFFFFFFE if zip_claims_it_too else None)
    assert path.stat().st_size < 400
    result = run_python(
        f"""
        import resource
        import wtraj
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        try:
            ck = wtraj.open({str(path)!r})
            wtraj.trajectory_stats([{str(path)!r}, {str(path)!r}])
        except ValueError as error:
            print("ERROR", error)
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "ERROR" in result.stdout and "bomb.npz" in result.stdout


# ---- item 9: more files than the open-file limit


def test_more_files_than_the_open_file_limit(tmp_path):
    n_files = 300
    result = run_python(
        f"""
        import resource
        import numpy as np
        from safetensors.numpy import save_file
        import wtraj
        from checkpoints_fixtures import dense
        folder = {str(tmp_path)!r}
        for i in range({n_files}):
            save_file({{"w": np.full(100, i, np.float32), "b": np.full(3, -i, np.float32)}},
                      f"{{folder}}/{{i:04d}}.safetensors")
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        ck = wtraj.open(folder)
        X = dense(ck, max_width=64)
        expected = np.array([[i] * 100 + [-i] * 3 for i in range({n_files})], float)
        layout = [layer.name for layer in ck.layers]
        if layout == ["b", "w"]:
            expected = np.concatenate([expected[:, 100:], expected[:, :100]], axis=1)
        assert np.array_equal(X, expected), "wrong values"
        print("OK", ck.n_checkpoints)
        """
    )
    assert result.returncode == 0, result.stderr
    assert f"OK {n_files}" in result.stdout


def test_tensor_floating_in_one_checkpoint_only(tmp_path):
    first = {"w": np.ones(3, np.float32), "steps": np.arange(3, dtype=np.int64)}
    second = {"w": np.ones(3, np.float32), "steps": np.arange(3, dtype=np.float64)}
    save_file(first, str(tmp_path / "a.safetensors"))
    save_file(second, str(tmp_path / "b.safetensors"))
    with pytest.raises(
        ValueError, match=r"b\.safetensors: tensor 'steps' is float64 but int64 in .*a\.safetensors"
    ):
        wtraj.open(tmp_path)


# ---- item 10: per-file metadata stays compact


def test_metadata_of_many_tensors_is_compact(tmp_path):
    import tracemalloc

    n = 50_000
    header = {
        f"layers.{i}.w": {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i in range(n)
    }
    write_safetensors(tmp_path / "many.safetensors", header, f32(n))
    tracemalloc.start()
    try:
        ck = wtraj.open(tmp_path / "many.safetensors")
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ck.n_params == n
    # a StoredTensor, a Layer, the name and shape: ~510 bytes a tensor (a memory-mapped
    # view per tensor took ~1070)
    assert retained / n < 800, retained / n


def test_a_pass_holds_a_bounded_number_of_descriptors(tmp_path, monkeypatch):
    from wtraj.checkpoints import file_reads

    monkeypatch.setattr(file_reads, "open_files_limit", lambda: 4)
    for i in range(12):
        save_file({"w": np.full(5000, i, np.float32)}, str(tmp_path / f"{i:02d}.safetensors"))
    ck = wtraj.open(tmp_path)

    def open_here() -> int:
        return sum(
            os.path.realpath(f"/proc/self/fd/{fd}").startswith(str(tmp_path))
            for fd in os.listdir("/proc/self/fd")
        )

    most = 0
    for block in ck.blocks(max_width=4096):
        most = max(most, open_here())
        columns = block.data[:, block.start : block.stop]
        np.testing.assert_array_equal(columns, np.broadcast_to(np.arange(12)[:, None], columns.shape))
    # the limit, plus the descriptors the reading threads hold while they read
    assert 0 < most <= 4 + 2
    assert open_here() == 0
