"""The evaluation zoo (bench/zoo.py) is what its catalogue says it is.

Checked on the small slice (built once per session, ``zoo_fixtures``) and,
for what needs no training, on the full catalogue of several seed sets.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zoo
import zoo_checks
import zoo_data
import zoo_models
import zoo_optim
import zoo_store
import zoo_training

META_KEYS = {
    "seed_set",
    "split",
    "family",
    "kind",
    "init_id",
    "group",
    "parent",
    "shift",
    "spike",
    "lr_drops",
    "resume_row",
    "train_accuracy",
    "config",
}
FAMILY_VALUES = {
    "dataset": zoo_data.DATASETS,
    "arch": zoo_models.ARCHS,
    "optimizer": zoo_optim.OPTIMIZERS,
    "schedule": zoo_optim.SCHEDULES,
    "cadence": zoo_training.CADENCES,
}


def by_kind(runs, kind):
    return [run for run in runs if run.meta["kind"] == kind]


def step_norms(run):
    return np.linalg.norm(np.diff(run.weights.astype(np.float64), axis=0), axis=1)


@pytest.mark.parametrize("size", zoo.SIZES)
def test_catalogue_holds_every_family_value_and_kind(size):
    specs = zoo.catalogue(0, size)
    for key, values in FAMILY_VALUES.items():
        assert {spec["meta"]["family"][key] for spec in specs} == set(values), key
    assert {spec["meta"]["kind"] for spec in specs} == set(zoo.KINDS)
    assert len({spec["id"] for spec in specs}) == len(specs)


def test_full_catalogue_has_the_structures_asked_for():
    specs = zoo.catalogue(0, "full")
    assert 40 <= len(specs) <= 100
    groups = {}
    for spec in specs:
        if spec["meta"]["group"] is not None:
            groups.setdefault(spec["meta"]["group"], []).append(spec["meta"]["kind"])
    assert sorted(len(kinds) for kinds in groups.values()) == [2, 3, 5]
    assert any("shift" in kinds for kinds in groups.values())
    assert any("early_stop" in kinds for kinds in groups.values())
    tunes = [spec for spec in specs if spec["meta"]["kind"] == "finetune"]
    tuned_ids = {spec["id"] for spec in tunes}
    parents = {spec["meta"]["parent"]["run"] for spec in tunes}
    assert len(parents - tuned_ids) == 16 and len(parents & tuned_ids) == 2
    # fine-tunes on both parts, so that the rules for them are checked on held-out ones
    assert {spec["meta"]["split"] for spec in tunes} == {"dev", "heldout"}
    shifts = [spec["config"]["shift"] for spec in specs if spec["config"]["shift"]]
    assert {shift["kind"] for shift in shifts} == set(zoo_data.SHIFT_KINDS)
    assert len({shift["strength"] for shift in shifts}) >= 2
    assert sum(spec["meta"]["kind"] == "spike" for spec in specs) == 2


def test_seed_sets_use_other_seeds():
    first, second = zoo.catalogue(0), zoo.catalogue(1)
    seeds = {(s["config"]["init_seed"], s["config"]["data_seed"]) for s in first}
    assert not seeds & {(s["config"]["init_seed"], s["config"]["data_seed"]) for s in second}


@pytest.mark.parametrize("size", zoo.SIZES)
def test_split_follows_held_out(size):
    for spec in zoo.catalogue(2, size):
        family = spec["meta"]["family"]
        held = any(family[key] in values for key, values in zoo.HELD_OUT.items())
        assert spec["meta"]["split"] == ("heldout" if held else "dev"), spec["id"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="size"):
        zoo.catalogue(0, "huge")
    with pytest.raises(ValueError, match="seed_set"):
        zoo.catalogue(-1)
    with pytest.raises(ValueError, match="split"):
        zoo.load_zoo("unused", split="test")


def test_loaded_runs_are_the_catalogue(zoo_small, zoo_small_dir):
    specs = zoo.catalogue(0, "small")
    assert [run.id for run in zoo_small] == [spec["id"] for spec in specs]
    for run, spec in zip(zoo_small, specs):
        assert META_KEYS <= set(run.meta), run.id
        assert json.loads(json.dumps(run.meta)) == run.meta
        assert run.meta["config"] == spec["config"]
        assert run.weights.dtype == np.float32 and run.steps.dtype == np.int64
        assert run.weights.shape[0] == run.steps.shape[0] == len(run.meta["train_accuracy"])
        assert np.isfinite(run.weights).all()
    heldout = zoo.load_zoo(zoo_small_dir, split="heldout")
    assert [run.id for run in heldout] == [run.id for run in zoo_small if run.meta["split"] == "heldout"]


def test_siblings_share_their_start_exactly_and_then_differ(zoo_small):
    groups = {}
    for run in zoo_small:
        groups.setdefault(run.meta["init_id"], []).append(run)
    shared = [runs for runs in groups.values() if len(runs) > 1]
    assert shared, "the slice has no sibling group"
    for runs in shared:
        for other in runs[1:]:
            assert np.array_equal(runs[0].weights[0], other.weights[0])
            assert not np.array_equal(runs[0].weights[1], other.weights[1])
    starts = [runs[0].weights[0] for runs in groups.values() if runs[0].meta["kind"] != "finetune"]
    for i, first in enumerate(starts):
        for second in starts[i + 1 :]:
            assert first.shape != second.shape or not np.array_equal(first, second)


def test_finetunes_start_beside_their_parent_row_but_do_not_hold_it(zoo_small):
    runs = {run.id: run for run in zoo_small}
    tunes = by_kind(zoo_small, "finetune")
    assert len(tunes) == 2
    assert any(runs[run.meta["parent"]["run"]].meta["kind"] == "finetune" for run in tunes)
    for tune in tunes:
        parent = runs[tune.meta["parent"]["run"]]
        row = tune.meta["parent"]["row"]
        assert tune.steps[0] > 0
        assert not any(np.array_equal(parent.weights[row], w) for w in tune.weights)
        distances = np.linalg.norm(parent.weights.astype(np.float64) - tune.weights[0], axis=1)
        assert np.argmin(distances) == row, tune.id


def test_cadences_save_the_iterations_they_name(zoo_small):
    for run in zoo_small:
        config, steps = run.meta["config"], run.steps
        diffs = np.diff(steps)
        assert (diffs > 0).all(), run.id
        assert (steps[0] == 0) == (run.meta["kind"] != "finetune"), run.id
        # a run stopped early ends at its stop, its schedule planned further
        assert steps[-1] == (config["stop_iteration"] or config["iterations"])
        if run.meta["kind"] == "early_stop":
            assert config["stop_iteration"] < config["iterations"], run.id
        cadence = config["cadence"]
        if cadence == "iteration":
            assert (diffs == 1).all()
        elif cadence == "every_k":
            assert (diffs == config["every_k"]).all()
        elif cadence == "epoch":
            assert (diffs == zoo_training.iterations_per_epoch(config)).all()
        else:
            interval = config["log_interval"]
            doubling = steps[1 : int(np.log2(interval)) + 2]
            assert list(doubling) == [2**i for i in range(len(doubling))]
            assert doubling[-1] == interval
            assert (np.diff(steps[len(doubling) :]) == interval).all()
    assert any(run.meta["family"]["cadence"] == "log" for run in zoo_small)


def test_event_rows_are_the_first_rows_after_the_event(zoo_small):
    seen = set()
    for run in zoo_small:
        config, steps = run.meta["config"], run.steps
        events = []
        if run.meta["shift"]:
            events.append((config["shift"]["iteration"], run.meta["shift"]["row"]))
            assert run.meta["shift"]["kind"] == config["shift"]["kind"]
        if run.meta["spike"]:
            events.append((config["spike"]["iteration"], run.meta["spike"]["row"]))
        if run.meta["resume_row"] is not None:
            events.append((config["resume_iteration"], run.meta["resume_row"]))
        events += list(zip(config["lr_drop_iterations"], run.meta["lr_drops"]))
        for iteration, row in events:
            assert steps[row - 1] <= iteration < steps[row], run.id
            seen.add(run.meta["kind"])
    assert {"shift", "spike", "resumed", "plain"} <= seen


def test_every_run_learns(zoo_small):
    for run in zoo_small:
        accuracy = run.meta["train_accuracy"]
        assert accuracy[-1] > 0.6, run.id
        if run.meta["kind"] != "finetune":
            assert accuracy[-1] > accuracy[0] + 0.3, run.id


def test_momentum_and_warmup_steps_grow_at_first(zoo_small):
    momentum = next(
        r
        for r in zoo_small
        if r.meta["family"]["optimizer"] == "sgd_momentum" and r.meta["family"]["cadence"] == "iteration"
    )
    steps = step_norms(momentum)
    assert steps[9] > 2 * steps[0]
    warmup = next(r for r in zoo_small if r.meta["family"]["schedule"] == "warmup_cosine")
    steps = step_norms(warmup)
    assert steps[1] > steps[0]


def test_runs_are_deterministic(zoo_small):
    run = next(r for r in zoo_small if r.meta["kind"] == "resumed")
    again = zoo_training.train(run.meta["config"])
    assert np.array_equal(again.weights, run.weights)
    assert np.array_equal(again.steps, run.steps)


def test_a_cached_zoo_is_not_retrained(zoo_small_dir):
    files = sorted(zoo_small_dir.rglob("*"))
    before = {path: path.stat().st_mtime_ns for path in files}
    zoo.build_zoo(zoo_small_dir, seed_sets=(0,), size="small", jobs=1)
    assert {path: path.stat().st_mtime_ns for path in sorted(zoo_small_dir.rglob("*"))} == before


def test_an_unreadable_run_file_is_retrained_alone(zoo_small_dir, tmp_path):
    copy = tmp_path / "zoo"
    shutil.copytree(zoo_small_dir, copy)
    spec = zoo.catalogue(0, "small")[4]
    broken = zoo_store.run_file(copy, spec["id"])
    broken.write_bytes(b"not a zip file")
    others = {p: p.stat().st_mtime_ns for p in copy.rglob("*.npz") if p != broken}
    zoo.build_zoo(copy, seed_sets=(0,), size="small", jobs=1)
    assert {p: p.stat().st_mtime_ns for p in others} == others
    rebuilt = next(run for run in zoo.load_zoo(copy) if run.id == spec["id"])
    original = next(run for run in zoo.load_zoo(zoo_small_dir) if run.id == spec["id"])
    assert np.array_equal(rebuilt.weights, original.weights)


def test_writes_are_atomic(zoo_small_dir, tmp_path):
    assert not [p for p in zoo_small_dir.rglob("*") if p.name.endswith(".tmp")]
    target = tmp_path / "file.bin"
    zoo_store.atomic_write(target, lambda file: file.write(b"old"))

    def fail(file):
        file.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        zoo_store.atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]


def test_a_folder_holds_one_size(zoo_small_dir):
    with pytest.raises(ValueError, match="size"):
        zoo.build_zoo(zoo_small_dir, seed_sets=(0,), size="full", jobs=1)


def test_load_zoo_names_a_missing_zoo(tmp_path):
    with pytest.raises(FileNotFoundError, match="catalogue.json"):
        zoo.load_zoo(tmp_path)


def test_shifts_change_what_their_strength_says():
    _, labels = zoo_data.load("wine")
    _, swapped = zoo_data.shifted("wine", "label_permutation", 0.5, seed=3)
    assert len(np.unique(labels[labels != swapped])) == 2
    _, permuted = zoo_data.shifted("digits", "label_permutation", 1.0, seed=3)
    assert (zoo_data.load("digits")[1] != permuted).all()
    _, subset = zoo_data.shifted("digits", "class_subset", 0.5, seed=3)
    assert len(np.unique(subset)) == 5
    images, _ = zoo_data.load("digits")
    half, _ = zoo_data.shifted("digits", "invert", 0.5, seed=0)
    inverted = np.all(half == 1 - images, axis=(1, 2, 3))
    assert (inverted | np.all(half == images, axis=(1, 2, 3))).all()
    assert 0.4 < inverted.mean() < 0.6
    with pytest.raises(ValueError, match="sequence"):
        zoo_data.shifted("sequence", "rotate", 1.0, seed=0)


def test_sequence_labels_are_the_most_frequent_token():
    tokens, labels = zoo_data.load("sequence")
    counts = np.stack([np.bincount(row, minlength=10) for row in tokens])
    assert (counts.argmax(1) == labels).all()
    assert (np.sort(counts, axis=1)[:, -2] < 5).all()


def test_a_parallel_build_trains_the_same_runs(zoo_small, tmp_path):
    zoo.build_zoo(tmp_path, seed_sets=(0,), size="small", jobs=2)
    parallel = zoo.load_zoo(tmp_path)
    assert [run.id for run in parallel] == [run.id for run in zoo_small]
    for ours, theirs in zip(parallel, zoo_small):
        assert np.array_equal(ours.weights, theirs.weights), ours.id
        assert np.array_equal(ours.steps, theirs.steps), ours.id


def test_the_checks_pass_on_the_slice_and_name_a_broken_run(zoo_small):
    assert zoo_checks.problems(zoo_small) == []
    sibling = next(run for run in zoo_small if run.meta["kind"] == "sibling")
    broken = zoo.ZooRun(sibling.id, sibling.weights.copy(), sibling.steps, sibling.meta)
    broken.weights[0, 0] += 1e-3
    others = [broken if run.id == sibling.id else run for run in zoo_small]
    found = zoo_checks.problems(others)
    assert len(found) == 1 and sibling.meta["init_id"] in found[0]


def test_the_default_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("WTRAJ_ZOO_DIR", str(tmp_path))
    assert zoo.default_dir() == tmp_path
    monkeypatch.delenv("WTRAJ_ZOO_DIR")
    assert zoo.default_dir().name == ".zoo"
