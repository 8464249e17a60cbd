"""Every checkpoint layout wtraj.open reads, written with the real libraries, read back exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from checkpoints_fixtures import (
    MODEL_SHAPES,
    dense,
    flatten,
    make_state,
    to_torch,
    write_sharded_safetensors,
    write_sharded_torch,
)
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch_file

import wtraj
from wtraj._dtypes import BFLOAT16_BITS
from wtraj.checkpoints import natural_key

N_CKPT = 3


def expected(states, ck):
    return np.stack([flatten(s, [layer.name for layer in ck.layers]) for s in states])


def check_layers(ck, shapes=MODEL_SHAPES):
    offset = 0
    for layer in ck.layers:
        assert layer.shape == shapes[layer.name]
        assert layer.offset == offset
        offset += layer.size
    assert offset == ck.n_params
    assert sorted(layer.name for layer in ck.layers) == sorted(shapes)


def test_natural_key_orders_numbers_by_value():
    names = ["epoch10.pt", "epoch2.pt", "epoch1.pt", "Epoch3.pt"]
    assert sorted(names, key=natural_key) == ["epoch1.pt", "epoch2.pt", "Epoch3.pt", "epoch10.pt"]


def test_safetensors_folder_in_natural_order(tmp_path):
    states = {}
    for epoch in (10, 2, 1):
        states[epoch] = make_state(epoch)
        save_file(states[epoch], str(tmp_path / f"epoch{epoch}.safetensors"))
    ck = wtraj.open(tmp_path)
    assert ck.names == ["epoch1.safetensors", "epoch2.safetensors", "epoch10.safetensors"]
    assert (ck.n_checkpoints, ck.dtype, ck.device) == (3, "float32", "cpu")
    check_layers(ck)
    np.testing.assert_array_equal(dense(ck), expected([states[1], states[2], states[10]], ck))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_safetensors_dtypes_read_in_their_own_precision(tmp_path, dtype):
    paths, states = [], []
    for i in range(N_CKPT):
        tensors = to_torch(make_state(i), dtype)
        states.append({k: t.double().numpy() for k, t in tensors.items()})
        paths.append(tmp_path / f"c{i}.safetensors")
        save_torch_file(tensors, str(paths[-1]))
    ck = wtraj.open(paths)
    assert ck.stored_dtypes == {str(dtype).removeprefix("torch.")}
    block_dtypes = {torch.float64: "float64", torch.bfloat16: "bfloat16"}
    assert ck.dtype == block_dtypes.get(dtype, "float32")
    if dtype == torch.bfloat16:
        # handed out as bit patterns, half the bytes, for the kernels to widen
        assert {b.data.dtype for b in ck.blocks(1 << 20)} == {BFLOAT16_BITS}
    # widening half precision to float32 is exact
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


def test_mixed_dtypes_in_one_checkpoint_share_the_widest_block_dtype(tmp_path):
    paths, states = [], []
    for i in range(2):
        tensors = to_torch(make_state(i))
        tensors["fc.weight"] = tensors["fc.weight"].to(torch.bfloat16)
        tensors["conv.bias"] = tensors["conv.bias"].to(torch.float16)
        states.append({k: t.double().numpy() for k, t in tensors.items()})
        paths.append(tmp_path / f"c{i}.safetensors")
        save_torch_file(tensors, str(paths[-1]))
    ck = wtraj.open(paths)
    assert ck.dtype == "float32"
    np.testing.assert_array_equal(dense(ck), expected(states, ck))
    tensors["bn.bias"] = tensors["bn.bias"].to(torch.float64)
    save_torch_file(tensors, str(paths[-1]))
    states[-1] = {k: t.double().numpy() for k, t in tensors.items()}
    ck = wtraj.open(paths)
    assert ck.dtype == "float64"
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


def test_sharded_safetensors(tmp_path):
    states = [make_state(i) for i in range(N_CKPT)]
    for i, state in enumerate(states):
        write_sharded_safetensors(tmp_path / f"step{i}", state, n_shards=3)
    ck = wtraj.open(tmp_path)
    assert ck.names == ["step0", "step1", "step2"]
    check_layers(ck)
    np.testing.assert_array_equal(dense(ck), expected(states, ck))
    # the index file itself and a lone model folder open too
    single = wtraj.open(tmp_path / "step1" / "model.safetensors.index.json")
    np.testing.assert_array_equal(dense(single), expected(states[1:2], single))
    assert wtraj.open(tmp_path / "step2").names == ["step2"]


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_torch_state_dicts(tmp_path, suffix):
    states = [make_state(i) for i in range(N_CKPT)]
    for i, state in enumerate(states):
        sd = to_torch(state)
        sd["bn.num_batches_tracked"] = torch.tensor(100 * i)
        torch.save(sd, tmp_path / f"model_{i}{suffix}")
    ck = wtraj.open(tmp_path)
    assert ck.skipped == {"bn.num_batches_tracked": "int64"}
    check_layers(ck)
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda sd: {"model": sd, "epoch": 3}, id="model"),
        pytest.param(lambda sd: {"state_dict": sd, "optimizer": {"lr": 0.1}}, id="state_dict"),
        pytest.param(lambda sd: {"module." + k: v for k, v in sd.items()}, id="ddp-prefix"),
        pytest.param(
            lambda sd: {
                "epoch": 4,
                "global_step": 400,
                "pytorch-lightning_version": "2.4.0",
                "state_dict": {"model." + k: v for k, v in sd.items()},
                "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3}]}],
                "lr_schedulers": [],
            },
            id="lightning-ckpt",
        ),
    ],
)
def test_torch_wrappers_and_prefixes(tmp_path, wrap):
    states = [make_state(i) for i in range(2)]
    for i, state in enumerate(states):
        torch.save(wrap(to_torch(state)), tmp_path / f"epoch={i}.ckpt")
    ck = wtraj.open(tmp_path)
    check_layers(ck)
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


def test_prefix_stripping_can_be_turned_off(tmp_path):
    for i in range(2):
        torch.save({"module." + k: v for k, v in to_torch(make_state(i)).items()}, tmp_path / f"{i}.pt")
    ck = wtraj.open(tmp_path, strip_prefix=())
    assert all(layer.name.startswith("module.") for layer in ck.layers)


def test_bfloat16_torch_file(tmp_path):
    states = []
    for i in range(2):
        sd = to_torch(make_state(i), torch.bfloat16)
        states.append({k: t.double().numpy() for k, t in sd.items()})
        torch.save(sd, tmp_path / f"{i}.pt")
    ck = wtraj.open(tmp_path)
    assert ck.stored_dtypes == {"bfloat16"}
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin", "sharded-bin"])
def test_hugging_face_trainer_folders_ordered_by_step(tmp_path, weights):
    steps = [1000, 500, 1500]
    states = {}
    for step in steps:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        states[step] = make_state(step)
        if weights == "model.safetensors":
            save_file(states[step], str(folder / weights))
        elif weights == "pytorch_model.bin":
            torch.save(to_torch(states[step]), folder / weights)
        else:
            write_sharded_torch(folder, to_torch(states[step]))
        # what the Trainer saves beside the weights must be ignored
        torch.save({"state": {}}, folder / "optimizer.pt")
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    ck = wtraj.open(tmp_path)
    assert ck.names == ["checkpoint-500", "checkpoint-1000", "checkpoint-1500"]
    np.testing.assert_array_equal(dense(ck), expected([states[s] for s in sorted(steps)], ck))


def test_peft_adapters(tmp_path):
    shapes = {
        "base_model.model.q_proj.lora_A.weight": (4, 32),
        "base_model.model.q_proj.lora_B.weight": (32, 4),
    }
    states = []
    for step in (20, 10):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        states.insert(0, make_state(step, shapes=shapes))
        save_file(states[0], str(folder / "adapter_model.safetensors"))
        (folder / "adapter_config.json").write_text("{}")
    ck = wtraj.open(tmp_path, strip_prefix=())
    check_layers(ck, shapes)
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


def test_npy_files(tmp_path):
    rows = [np.random.default_rng(i).standard_normal(1000).astype(np.float16) for i in range(4)]
    for i, row in enumerate(rows):
        np.save(tmp_path / f"w{i}.npy", row)
    ck = wtraj.open(tmp_path)
    assert [layer.name for layer in ck.layers] == ["array"]
    np.testing.assert_array_equal(dense(ck), np.stack(rows).astype(np.float64))


@pytest.mark.parametrize("compressed", [False, True], ids=["savez", "savez_compressed"])
def test_npz_files(tmp_path, compressed):
    states = [make_state(i) for i in range(N_CKPT)]
    save = np.savez_compressed if compressed else np.savez
    for i, state in enumerate(states):
        save(tmp_path / f"{i}.npz", **state)
    ck = wtraj.open(tmp_path)
    check_layers(ck)
    # a narrow block width makes the compressed reader stream each member in several steps
    np.testing.assert_array_equal(dense(ck, max_width=1), expected(states, ck))
    np.testing.assert_array_equal(dense(ck), expected(states, ck))


def test_include_and_exclude(tmp_path):
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"{i}.safetensors")
        save_file(make_state(i), str(paths[-1]))
    ck = wtraj.open(paths, include=r"\.weight$", exclude=r"bn\.")
    assert sorted(layer.name for layer in ck.layers) == ["conv.weight", "fc.weight"]
    assert ck.n_params == 4 * 3 * 3 * 3 + 10 * 37


def test_list_of_paths_keeps_the_given_order(tmp_path):
    paths = []
    for name in ("b", "a", "c"):
        paths.append(tmp_path / f"{name}.safetensors")
        save_file(make_state(ord(name)), str(paths[-1]))
    assert wtraj.open(paths).names == ["b.safetensors", "a.safetensors", "c.safetensors"]
    assert wtraj.open([str(p) for p in paths]).n_checkpoints == 3


def test_describe_names_checkpoint_tensor_and_index(tmp_path):
    for i in range(3):
        save_file(make_state(i), str(tmp_path / f"epoch{i}.safetensors"))
    ck = wtraj.open(tmp_path)
    k = next(i for i, layer in enumerate(ck.layers) if layer.name == "fc.weight")
    text = ck.describe(2, ck.layers[k].offset + 2 * 37 + 5)
    assert text.startswith("checkpoint 2 ('epoch2.safetensors'), tensor 'fc.weight' at index (2, 5)")
    assert "epoch2.safetensors" in text


def test_big_endian_npy_and_scalar_tensors(tmp_path):
    rows = [np.random.default_rng(i).standard_normal(300).astype(">f4") for i in range(3)]
    for i, row in enumerate(rows):
        np.save(tmp_path / f"w{i}.npy", row)
    np.testing.assert_array_equal(dense(wtraj.open(tmp_path)), np.stack(rows).astype(np.float64))
    scalars = tmp_path / "scalars"
    scalars.mkdir()
    for i in range(2):
        save_file({"temperature": np.array(1.5 + i, np.float32)}, str(scalars / f"{i}.safetensors"))
    ck = wtraj.open(scalars)
    assert ck.layers[0].shape == () and ck.n_params == 1
    np.testing.assert_array_equal(dense(ck), [[1.5], [2.5]])
    assert "tensor 'temperature' at index ()" in ck.describe(1, 0)


def test_non_contiguous_torch_tensor(tmp_path):
    states = []
    for i in range(2):
        weight = torch.randn(7, 5, generator=torch.Generator().manual_seed(i))
        torch.save({"w": weight.t()}, tmp_path / f"{i}.pt")
        states.append({"w": weight.t().numpy()})
    ck = wtraj.open(tmp_path)
    assert ck.layers[0].shape == (5, 7)
    np.testing.assert_array_equal(dense(ck), expected(states, ck))
