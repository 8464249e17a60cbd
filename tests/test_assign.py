"""assign: held-out checkpoints go to their run, checkpoints of unseen runs to none."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_fixtures import weights
from scipy.spatial.distance import cdist

import wtraj

KNOWN = ["init0", "init1", "shift_invert"]
HELD_OUT = [3, 9, 13, 20, 24]


def known_set():
    kept = np.setdiff1d(np.arange(26), HELD_OUT)
    X = np.concatenate([weights(name)[kept] for name in KNOWN]).astype(np.float64)
    labels = np.repeat(np.arange(len(KNOWN)), kept.shape[0])
    return X, labels


@pytest.mark.parametrize("run", range(len(KNOWN)))
def test_held_out_checkpoints_go_to_their_run(run):
    X, labels = known_set()
    new = weights(KNOWN[run])[HELD_OUT]
    assigned, distance = wtraj.assign(new, X, labels)
    np.testing.assert_array_equal(assigned, run)
    np.testing.assert_allclose(distance, cdist(new, X).min(axis=1), rtol=1e-6)


@pytest.mark.parametrize("unseen", ["init2", "lr_step", "cnn_sized_like_mlp"])
def test_checkpoints_of_an_unseen_run_go_nowhere(unseen):
    X, labels = known_set()
    if unseen == "cnn_sized_like_mlp":
        # an unrelated point cloud of the same size
        new = np.random.default_rng(0).standard_normal((5, X.shape[1])) * 0.1
    else:
        new = weights(unseen)
    D = cdist(X, X)
    assigned, _ = wtraj.assign(cdist(new, X), D, labels, metric="precomputed")
    np.testing.assert_array_equal(assigned, -1)


def test_single_checkpoint_gives_scalars():
    X, labels = known_set()
    run, distance = wtraj.assign(weights("init1")[HELD_OUT[2]], X, labels)
    assert run == 1 and isinstance(run, int) and isinstance(distance, float)


def test_bad_input():
    X, labels = known_set()
    D = cdist(X, X)
    with pytest.raises(ValueError, match="labels must be an int array of shape"):
        wtraj.assign(X[0], X, labels[:-1])
    with pytest.raises(ValueError, match="labels must be an int array"):
        wtraj.assign(X[0], X, labels.astype(float))
    with pytest.raises(ValueError, match="distances to the"):
        wtraj.assign(np.ones(3), D, labels, metric="precomputed")
    with pytest.raises(ValueError, match="finite and non-negative"):
        wtraj.assign(np.full(D.shape[0], np.nan), D, labels, metric="precomputed")
    with pytest.raises(ValueError, match="1-D"):
        wtraj.assign(np.ones((1, 1, 3)), X, labels)
    with pytest.raises(ValueError, match="max_ratio"):
        wtraj.assign(X[0], X, labels, max_ratio=0)


def test_new_checkpoints_as_files_and_folders(tmp_path):
    from safetensors.numpy import save_file

    X, labels = known_set()
    new = weights("init1")[HELD_OUT]
    known_files = []
    for i, row in enumerate(X.astype(np.float32)):
        known_files.append(tmp_path / "known" / f"ckpt_{i:03d}.safetensors")
        known_files[-1].parent.mkdir(exist_ok=True)
        save_file({"w": row}, known_files[-1])
    folder = tmp_path / "new"
    folder.mkdir()
    for i, row in enumerate(new):
        save_file({"w": row}, folder / f"ckpt_{i:03d}.safetensors")
    # one file: one checkpoint, scalars back
    run, distance = wtraj.assign(folder / "ckpt_002.safetensors", tmp_path / "known", labels)
    assert run == 1 and isinstance(run, int)
    assert distance == pytest.approx(cdist(new[2:3], X.astype(np.float32).astype(np.float64)).min(), rel=1e-6)
    # a folder, a list of paths (as strings): one answer per checkpoint
    assigned, _ = wtraj.assign(folder, known_files, labels)
    np.testing.assert_array_equal(assigned, 1)
    assigned, _ = wtraj.assign([str(p) for p in sorted(folder.iterdir())], X, labels)
    np.testing.assert_array_equal(assigned, 1)
    with pytest.raises(FileNotFoundError):
        wtraj.assign(tmp_path / "missing.safetensors", X, labels)
