"""Bad checkpoints: a clear error naming the file and the tensor, never a crash, never code run."""

from __future__ import annotations

import json
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from checkpoints_fixtures import dense, make_state, to_torch, write_sharded_safetensors
from safetensors.numpy import save_file

import wtraj


def two_checkpoints(tmp_path, second=None):
    first = make_state(0)
    save_file(first, str(tmp_path / "a.safetensors"))
    save_file(second if second is not None else make_state(1), str(tmp_path / "b.safetensors"))
    return [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]


def test_different_shapes_name_the_tensor_and_both_shapes(tmp_path):
    second = make_state(1)
    second["fc.weight"] = np.zeros((37, 10), np.float32)
    with pytest.raises(ValueError, match=r"b\.safetensors.*'fc\.weight'.*\(37, 10\).*\(10, 37\)"):
        wtraj.open(two_checkpoints(tmp_path, second))


def test_missing_tensor_is_named(tmp_path):
    second = make_state(1)
    del second["bn.bias"]
    with pytest.raises(ValueError, match=r"b\.safetensors.*no tensor 'bn\.bias'.*a\.safetensors.*\(4,\)"):
        wtraj.open(two_checkpoints(tmp_path, second))


def test_extra_tensor_is_named(tmp_path):
    second = make_state(1)
    second["head.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"b\.safetensors.*'head\.weight'.*\(2, 2\)"):
        wtraj.open(two_checkpoints(tmp_path, second))


def test_truncated_safetensors(tmp_path):
    paths = two_checkpoints(tmp_path)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"b\.safetensors.*truncated"):
        wtraj.open(paths)


def test_too_short_and_garbage_safetensors(tmp_path):
    paths = two_checkpoints(tmp_path)
    paths[1].write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match=r"b\.safetensors.*not a safetensors file"):
        wtraj.open(paths)
    paths[1].write_bytes(struct.pack("<Q", 6) + b"{nope}" + b"\0" * 16)
    with pytest.raises(ValueError, match=r"b\.safetensors.*not valid JSON"):
        wtraj.open(paths)
    paths[1].write_bytes(struct.pack("<Q", 1 << 40) + b"{}")
    with pytest.raises(ValueError, match=r"b\.safetensors.*header claims"):
        wtraj.open(paths)


def rewrite_header(path, edit):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    edit(header)
    raw = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(raw) == n
    path.write_bytes(data[:8] + raw + data[8 + n :])


def test_header_that_lies_about_sizes(tmp_path):
    paths = two_checkpoints(tmp_path)

    def grow_shape(header):
        header["fc.weight"]["shape"] = [10, 38]

    rewrite_header(paths[1], grow_shape)
    with pytest.raises(ValueError, match=r"b\.safetensors.*'fc\.weight'.*lies about its size"):
        wtraj.open(paths)


def test_header_offsets_past_the_end_of_the_file(tmp_path):
    paths = two_checkpoints(tmp_path)

    def shift(header):
        begin, end = header["fc.weight"]["data_offsets"]
        header["fc.weight"]["data_offsets"] = [begin + 10**6, end + 10**6]

    rewrite_header(paths[1], shift)
    with pytest.raises(ValueError, match=r"b\.safetensors.*'fc\.weight'.*truncated or corrupted"):
        wtraj.open(paths)


def test_index_pointing_to_a_missing_shard(tmp_path):
    for i in range(2):
        write_sharded_safetensors(tmp_path / f"checkpoint-{i}", make_state(i))
    (tmp_path / "checkpoint-1" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ValueError, match=r"checkpoint-1.*index\.json.*missing shard 'model-00002-of-00002"):
        wtraj.open(tmp_path)


def test_corrupted_index(tmp_path):
    index = write_sharded_safetensors(tmp_path / "m", make_state(0))
    index.write_text("{")
    with pytest.raises(ValueError, match=r"index\.json.*not valid JSON"):
        wtraj.open(tmp_path / "m")
    index.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(ValueError, match=r"index\.json.*weight_map"):
        wtraj.open(tmp_path / "m")


def test_empty_folder(tmp_path):
    with pytest.raises(ValueError, match=r"no checkpoints found"):
        wtraj.open(tmp_path)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere"):
        wtraj.open(tmp_path / "nothere")


def test_trainer_checkpoint_without_weights(tmp_path):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match=r"checkpoint-10.*no model weights"):
        wtraj.open(tmp_path)


def test_folder_with_mixed_formats(tmp_path):
    save_file(make_state(0), str(tmp_path / "epoch1.safetensors"))
    torch.save(to_torch(make_state(1)), tmp_path / "epoch2.pt")
    with pytest.raises(ValueError, match=r"mixes checkpoint formats.*epoch1\.safetensors.*epoch2\.pt"):
        wtraj.open(tmp_path)


def test_unrecognized_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"notes\.txt.*unrecognized checkpoint format"):
        wtraj.open(tmp_path / "notes.txt")


def test_list_element_with_several_checkpoints(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for i in range(2):
        save_file(make_state(i), str(run / f"{i}.safetensors"))
    with pytest.raises(ValueError, match=r"run: holds 2 checkpoints"):
        wtraj.open([run, run / "0.safetensors"])


def test_truncated_torch_file(tmp_path):
    for i in range(2):
        torch.save(to_torch(make_state(i)), tmp_path / f"{i}.pt")
    data = (tmp_path / "1.pt").read_bytes()
    (tmp_path / "1.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"1\.pt: not a readable PyTorch checkpoint"):
        wtraj.open(tmp_path)


def test_truncated_npy(tmp_path):
    for i in range(2):
        np.save(tmp_path / f"{i}.npy", np.ones(1000, np.float32))
    data = (tmp_path / "1.npy").read_bytes()
    (tmp_path / "1.npy").write_bytes(data[:500])
    with pytest.raises(ValueError, match=r"1\.npy"):
        wtraj.open(tmp_path)


def test_corrupted_compressed_npz_fails_when_read(tmp_path):
    for i in range(2):
        np.savez_compressed(tmp_path / f"{i}.npz", w=np.random.default_rng(i).standard_normal(5000))
    path = tmp_path / "1.npz"
    data = bytearray(path.read_bytes())
    # flip bytes in the middle of the deflate stream: the header still parses at open
    for j in range(20000, 20040):
        data[j] ^= 0xFF
    path.write_bytes(bytes(data))
    ck = wtraj.open(tmp_path)
    with pytest.raises(ValueError, match=r"1\.npz: member 'w\.npy' is corrupted"):
        dense(ck)


class _Marker:
    """Pickles to a call that would create a file if unpickling ran code."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_and_never_run(tmp_path, how):
    marker = tmp_path / "pwned"
    payload = {"fc.weight": torch.zeros(3), "evil": _Marker(marker)}
    path = tmp_path / "model.pt"
    if how == "torch.save":
        torch.save(payload, path)
    else:
        with path.open("wb") as f:
            pickle.dump(payload, f)
    assert not marker.exists()
    with pytest.raises(ValueError, match=r"model\.pt"):
        wtraj.open(path)
    assert not marker.exists()


def test_pickle_needing_more_than_tensors_is_refused_with_the_reason(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"fc.weight": torch.zeros(3), "config": _Config()}, path)
    with pytest.raises(ValueError, match=r"model\.pt: refused to load.*never runs code"):
        wtraj.open(path)


class _Config:
    pass


def test_nothing_left_after_filtering(tmp_path):
    with pytest.raises(ValueError, match=r"a\.safetensors.*no floating-point tensor.*include='nomatch'"):
        wtraj.open(two_checkpoints(tmp_path), include="nomatch")


def test_prefix_collision(tmp_path):
    state = {"module.w": np.zeros(2, np.float32), "w": np.ones(2, np.float32)}
    save_file(state, str(tmp_path / "a.safetensors"))
    with pytest.raises(ValueError, match=r"'module\.w' and 'w' both become 'w'"):
        wtraj.open(tmp_path / "a.safetensors")


def test_memory_budget_values(tmp_path):
    paths = two_checkpoints(tmp_path)
    assert wtraj.open(paths, memory_budget="64MiB").memory_budget == 64 << 20
    with pytest.raises(ValueError, match="memory_budget"):
        wtraj.open(paths, memory_budget=0)
    with pytest.raises(ValueError, match="memory_budget"):
        wtraj.open(paths, memory_budget="lots")


def test_nan_is_located_by_describe(tmp_path):
    second = make_state(1)
    second["fc.weight"][3, 7] = np.nan
    ck = wtraj.open(two_checkpoints(tmp_path, second))
    X = dense(ck)
    row, column = map(int, np.argwhere(np.isnan(X))[0])
    text = ck.describe(row, column)
    assert "checkpoint 1 ('b.safetensors')" in text
    assert "tensor 'fc.weight' at index (3, 7)" in text


def test_files_are_not_modified(tmp_path):
    paths = two_checkpoints(tmp_path)
    before = [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths]
    dense(wtraj.open(paths))
    assert [(p.read_bytes(), os.stat(p).st_mtime_ns) for p in paths] == before


def test_file_truncated_after_opening(tmp_path):
    paths = two_checkpoints(tmp_path)
    ck = wtraj.open(paths)
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[: len(data) - 100])
    with pytest.raises(ValueError, match=r"b\.safetensors: the file changed size from \d+ to \d+ bytes"):
        dense(ck)
