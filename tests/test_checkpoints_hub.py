"""``hf://ORG/NAME@REVISION`` paths, offline, on a Hugging Face cache built here in huggingface_hub's layout.

The layout (``models--ORG--NAME/{blobs,snapshots/<commit>,refs/<revision>}``) is
the one ``huggingface_hub`` writes when it downloads; with ``HF_HUB_OFFLINE=1``
it reads revisions and files from there alone, as on a machine without network.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("huggingface_hub", reason="hf:// paths need huggingface_hub (the [hf] extra)")
safetensors_numpy = pytest.importorskip("safetensors.numpy", reason="the cached weights are safetensors")

from truth import pairwise_truth  # noqa: E402

import wtraj  # noqa: E402

STEPS = [0, 500, 1000, 2000, 10000]
SHAPES = {
    "gpt_neox.embed_in.weight": (50, 16),
    "gpt_neox.layers.0.mlp.dense.weight": (16, 16),
    "embed_out.bias": (50,),
}


def _states(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    # a path like training's: a drift whose steps shrink, and a little noise
    rng = np.random.default_rng(seed)
    state = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    drift = {name: rng.standard_normal(shape).astype(np.float32) for name, shape in SHAPES.items()}
    states = []
    for t in range(n):
        noise = {name: rng.standard_normal(value.shape).astype(np.float32) for name, value in state.items()}
        state = {name: v + 0.3 / (1 + t) * drift[name] + 0.01 * noise[name] for name, v in state.items()}
        states.append(state)
    return states


def _flat(state: dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([state[name].ravel() for name in sorted(state)]).astype(np.float64)


def _cache_revision(cache: Path, repo_id: str, revision: str, files: dict[str, bytes]) -> None:
    """Store ``files`` as ``repo_id`` at ``revision`` the way huggingface_hub's cache does."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    commit = hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))


def _safetensors_bytes(state: dict[str, np.ndarray]) -> bytes:
    return safetensors_numpy.save(state)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A cache with ``org/tiny`` at step0 ... step10000 (and main), and ``org/sharded`` in two shards."""
    cache = tmp_path_factory.mktemp("hf-cache")
    states = _states(len(STEPS))
    for step, state in zip(STEPS, states, strict=True):
        files = {"model.safetensors": _safetensors_bytes(state), "config.json": b"{}"}
        _cache_revision(cache, "org/tiny", f"step{step}", files)
    _cache_revision(cache, "org/tiny", "main", {"model.safetensors": _safetensors_bytes(states[-1])})
    names = sorted(SHAPES)
    shards = {"model-00001-of-00002.safetensors": names[:1], "model-00002-of-00002.safetensors": names[1:]}
    index = {"metadata": {}, "weight_map": {name: shard for shard, part in shards.items() for name in part}}
    for step, state in zip(STEPS[:3], states[:3], strict=True):
        files = {shard: _safetensors_bytes({n: state[n] for n in part}) for shard, part in shards.items()}
        files["model.safetensors.index.json"] = json.dumps(index).encode()
        _cache_revision(cache, "org/sharded", f"step{step}", files)
    return cache, states


@pytest.fixture
def offline(hub_cache, monkeypatch):
    import huggingface_hub.constants

    cache, states = hub_cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache, states


def test_revision_pattern_is_a_run_in_natural_order(offline):
    _, states = offline
    ck = wtraj.open("hf://org/tiny@step*")
    assert ck.names == [f"org/tiny@step{s}" for s in STEPS]
    X = np.stack([_flat(s) for s in states])
    np.testing.assert_allclose(wtraj.pairwise(ck), pairwise_truth(X), rtol=1e-6)
    # a path works wherever X does
    np.testing.assert_allclose(
        wtraj.step_norms("hf://org/tiny@step*"), np.diag(pairwise_truth(X), 1), rtol=1e-6
    )


def test_revisions_argument_and_single_revisions(offline):
    _, states = offline
    ck = wtraj.open("hf://org/tiny", revisions=["step1000", "step0"])
    assert ck.names == ["org/tiny@step1000", "org/tiny@step0"]
    D = wtraj.pairwise(["hf://org/tiny@step0", "hf://org/tiny"])
    assert D[0, 1] == pytest.approx(np.linalg.norm(_flat(states[0]) - _flat(states[-1])), rel=1e-6)


def test_sharded_revisions_read_every_shard(offline):
    _, states = offline
    sharded = wtraj.pairwise("hf://org/sharded@step*")
    X = np.stack([_flat(s) for s in states[:3]])
    np.testing.assert_allclose(sharded, pairwise_truth(X), rtol=1e-6)


def test_hub_errors_name_the_path(offline):
    with pytest.raises(FileNotFoundError, match=r"hf://org/tiny@step7: not in the Hugging Face cache"):
        wtraj.open(["hf://org/tiny@step0", "hf://org/tiny@step7"])
    with pytest.raises(ValueError, match=r"no branch or tag of org/tiny matches 'epoch\*'"):
        wtraj.open("hf://org/tiny@epoch*")
    with pytest.raises(ValueError, match="a Hub path is hf://ORG/NAME or hf://ORG/NAME@REVISION"):
        wtraj.open("hf://tiny")
    with pytest.raises(ValueError, match="give the revision either in the path or in revisions="):
        wtraj.open("hf://org/tiny@step0", revisions=["step500"])
    with pytest.raises(FileNotFoundError, match="hf://org/absent: not in the Hugging Face cache"):
        wtraj.open("hf://org/absent@step*")


def test_analyze_command_on_hub_revisions(hub_cache, tmp_path):
    cache, _ = hub_cache
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    out = tmp_path / "report"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "wtraj",
            "analyze",
            "hf://org/tiny@step*",
            "--out",
            str(out),
            "--json",
            "--runs",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    payload = json.loads(completed.stdout)
    assert payload["n_checkpoints"] == len(STEPS)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["runs"][0]["order_names"] == [f"org/tiny@step{s}" for s in STEPS]
