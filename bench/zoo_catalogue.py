"""What the evaluation zoo holds: the run specs of one seed set (nothing is trained here).

A spec is ``{"id", "config", "meta"}``: ``config`` is what
``zoo_training.train`` takes, ``meta`` the part of the run's meta known
before training. Runs are named by their family,
``"{dataset}-{arch}-{optimizer}-{schedule}-{cadence}"``, and kind.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import zoo_training

HELD_OUT = {"optimizer": {"adamw"}, "cadence": {"log"}, "arch": {"gru"}}
SIZES = ("full", "small")
FAMILY_KEYS = ("dataset", "arch", "optimizer", "schedule", "cadence")
KINDS = ("plain", "sibling", "early_stop", "resumed", "finetune", "shift", "spike")
# bumped whenever training changes what a config produces, so cached runs are retrained
ZOO_VERSION = 2

BATCH_SIZE = {"digits": 64, "wine": 16, "sequence": 32}
EPOCHS = {"digits": 30, "wine": 30, "sequence": 20}
# cadence -> iterations of a run (per dataset where it differs)
ITERATIONS = {"iteration": 150, "every_k": {"digits": 400, "wine": 300, "sequence": 400}}
EVERY_K = 5
LOG_INTERVAL = {"digits": 32, "wine": 16, "sequence": 32}
LOG_ITERATIONS = {"digits": 960, "wine": 320, "sequence": 960}
# dataset-arch -> optimizer -> a learning rate that trains well
LEARNING_RATE = {
    "digits-mlp": {"sgd": 0.2, "sgd_momentum": 0.02, "adam": 3e-3, "adamw": 3e-3},
    "digits-cnn": {"sgd": 0.1, "sgd_momentum": 0.02, "adam": 3e-3, "adamw": 3e-3},
    "wine-mlp": {"sgd": 0.05, "sgd_momentum": 0.005, "adam": 3e-3, "adamw": 3e-3},
    "sequence-gru": {"sgd": 0.5, "sgd_momentum": 0.1, "adam": 1e-2, "adamw": 1e-2},
}
SPIKE = {"length": 3, "factor": 20.0}
STEP_DROP_AT = 0.6


def split_of(family: dict) -> str:
    """``"heldout"`` when any family value is in :data:`HELD_OUT`, else ``"dev"``."""
    held = any(family[key] in values for key, values in HELD_OUT.items())
    return "heldout" if held else "dev"


def digest(config: dict) -> str:
    """A short hash of a config (a fine-tune's config holds its parent's)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class _Catalogue:
    """Collects the run specs of one seed set, giving each its seeds and a unique id."""

    def __init__(self, seed_set: int):
        self.seed_set = seed_set
        self.specs: list[dict] = []
        self.names: Counter = Counter()

    def add(
        self,
        family: str,
        kind: str = "plain",
        *,
        length: float = 1.0,
        stop: float | None = None,
        iterations: int | None = None,
        lr_scale: float = 1.0,
        shift: tuple[str, float, float] | None = None,
        spike_at: float | None = None,
        resume_at: float | None = None,
        transform: tuple[str, float] | None = None,
        parent: tuple[dict, int] | None = None,
        group: str | None = None,
        init_of: dict | None = None,
    ) -> dict:
        """Add one run of ``family`` (``"digits-mlp-sgd-constant-epoch"``) and return its spec.

        Fractions (``length``, the times of events) are of the run's default
        length (``iterations`` when given). ``stop``: the run stops there, its
        schedule still planned for ``length`` (a run stopped early). ``shift``: ``(kind, strength,
        at)``; ``transform``: ``(kind, strength)``, shifted data from the
        start; ``parent``: ``(parent spec, row)`` for a fine-tune;
        ``init_of``: a spec whose initialisation this run shares.
        """
        dataset, arch, optimizer, schedule, cadence = family.split("-")
        index = len(self.specs)
        self.names[f"{family}-{kind}"] += 1
        run_id = f"s{self.seed_set}/{family}-{kind}-{chr(ord('a') + self.names[f'{family}-{kind}'] - 1)}"
        per_epoch = zoo_training.iterations_per_epoch({"dataset": dataset, "batch_size": BATCH_SIZE[dataset]})
        unit = {"iteration": 1, "every_k": EVERY_K, "epoch": per_epoch, "log": LOG_INTERVAL[dataset]}[cadence]
        full = (
            iterations
            or {
                "iteration": ITERATIONS["iteration"],
                "every_k": ITERATIONS["every_k"][dataset],
                "epoch": EPOCHS[dataset] * per_epoch,
                "log": LOG_ITERATIONS[dataset],
            }[cadence]
        )

        def at(fraction: float) -> int:
            # events fall on a saved checkpoint of the cadence's regular grid
            return max(1, round(fraction * full / unit)) * unit

        seeds = init_of["config"] if init_of else None
        config = {
            "version": ZOO_VERSION,
            "dataset": dataset,
            "arch": arch,
            "optimizer": optimizer,
            "schedule": schedule,
            "cadence": cadence,
            "lr": LEARNING_RATE[f"{dataset}-{arch}"][optimizer] * lr_scale,
            "batch_size": BATCH_SIZE[dataset],
            "iterations": at(length),
            "every_k": EVERY_K,
            "log_interval": LOG_INTERVAL[dataset],
            "lr_drop_iterations": [at(STEP_DROP_AT * length)] if schedule == "step" else [],
            "init_seed": seeds["init_seed"] if seeds else 1000 * self.seed_set + index,
            "data_seed": 1000 * self.seed_set + 500 + index,
            "transform": None if transform is None else {"kind": transform[0], "strength": transform[1]},
            "shift": None
            if shift is None
            else {"kind": shift[0], "strength": shift[1], "iteration": at(shift[2])},
            "spike": None if spike_at is None else {"iteration": at(spike_at), **SPIKE},
            "resume_iteration": None if resume_at is None else at(resume_at),
            "stop_iteration": None if stop is None else at(stop),
            "start": None
            if parent is None
            else {"run": parent[0]["id"], "row": parent[1], "parent_config": digest(parent[0]["config"])},
        }
        family_values = {key: config[key] for key in FAMILY_KEYS}
        meta = {
            "seed_set": self.seed_set,
            "split": split_of(family_values),
            "family": family_values,
            "kind": kind,
            # a fine-tune starts from a trained checkpoint, not from an initialisation
            "init_id": run_id if parent else f"s{self.seed_set}/{dataset}-{arch}-init{config['init_seed']}",
            "group": group,
            "parent": None if parent is None else {"run": parent[0]["id"], "row": parent[1]},
        }
        spec = {"id": run_id, "config": config, "meta": meta}
        self.specs.append(spec)
        return spec


def catalogue(seed_set: int, size: str = "full") -> list[dict]:
    """The run specs of one seed set, parents before their fine-tunes.

    ``size="full"``: 59 runs of 15 to 151 rows; ``"small"``: 13 short runs that still hold
    every family value and every kind (for the tests).
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}; got {size!r}.")
    if not isinstance(seed_set, int) or isinstance(seed_set, bool) or seed_set < 0:
        raise ValueError(f"seed_set must be a non-negative int; got {seed_set!r}.")
    zoo = _Catalogue(seed_set)
    (_small if size == "small" else _full)(zoo.add)
    return zoo.specs


def _small(add) -> None:
    parent = add("digits-mlp-sgd-constant-epoch", length=1 / 3)
    add("digits-mlp-sgd_momentum-step-iteration", iterations=60)
    add("digits-cnn-adam-warmup_cosine-every_k", iterations=100)
    add("wine-mlp-adamw-onecycle-log", iterations=160)
    add("sequence-gru-adam-constant-epoch", length=0.3)
    first = add("digits-mlp-sgd_momentum-constant-epoch", "sibling", length=0.25, group="g2")
    add("digits-mlp-sgd_momentum-constant-epoch", "sibling", length=0.25, group="g2", init_of=first)
    tune = add("digits-mlp-adam-constant-epoch", "finetune", length=1 / 6, lr_scale=0.1, parent=(parent, 5))
    add("digits-mlp-sgd-constant-every_k", "finetune", iterations=50, lr_scale=0.25, parent=(tune, 2))
    add("digits-mlp-sgd_momentum-constant-epoch", "shift", length=1 / 3, shift=("invert", 1.0, 1 / 6))
    add("digits-mlp-sgd-constant-every_k", "spike", iterations=100, spike_at=0.5)
    add("digits-mlp-adam-constant-epoch", "resumed", length=1 / 3, resume_at=1 / 6)
    add("digits-mlp-sgd-constant-epoch", "early_stop", stop=0.1)


def _full(add) -> None:
    # plain runs: every optimiser, schedule and cadence, each architecture
    for family in [
        "digits-mlp-sgd-constant-epoch",
        "digits-mlp-sgd-step-epoch",
        "digits-mlp-sgd-onecycle-log",
        "digits-mlp-sgd_momentum-constant-iteration",
        "digits-mlp-sgd_momentum-warmup_cosine-every_k",
        "digits-mlp-sgd_momentum-onecycle-epoch",
        "digits-mlp-adam-constant-every_k",
        "digits-mlp-adam-warmup_cosine-iteration",
        "digits-mlp-adam-step-log",
        "digits-mlp-adamw-constant-epoch",
        "digits-mlp-adamw-warmup_cosine-log",
        "digits-mlp-adamw-onecycle-iteration",
        "digits-cnn-sgd-warmup_cosine-iteration",
        "digits-cnn-sgd_momentum-step-every_k",
        "digits-cnn-adam-onecycle-every_k",
        "digits-cnn-adamw-step-epoch",
        "wine-mlp-sgd-constant-epoch",
        "wine-mlp-sgd_momentum-onecycle-iteration",
        "wine-mlp-adam-step-every_k",
        "wine-mlp-adamw-warmup_cosine-epoch",
        "sequence-gru-adam-constant-epoch",
        "sequence-gru-adam-warmup_cosine-iteration",
        "sequence-gru-adamw-onecycle-every_k",
        "sequence-gru-sgd_momentum-warmup_cosine-log",
    ]:
        add(family)

    # two parents, each with two fine-tunes (other data or a lower learning
    # rate) from middle checkpoints, and a fine-tune of a fine-tune
    mlp = add("digits-mlp-sgd_momentum-constant-epoch")
    tune = add("digits-mlp-adam-constant-epoch", "finetune", length=0.5, lr_scale=0.1, parent=(mlp, 15))
    add("digits-mlp-sgd_momentum-constant-every_k", "finetune", length=0.75, lr_scale=0.25,
        transform=("rotate", 0.5), parent=(mlp, 15))  # fmt: skip
    add("digits-mlp-sgd-constant-epoch", "finetune", length=0.5, lr_scale=0.25,
        transform=("class_subset", 0.5), parent=(tune, 4))  # fmt: skip
    cnn = add("digits-cnn-adam-warmup_cosine-epoch")
    add("digits-cnn-adam-constant-epoch", "finetune", length=0.5, lr_scale=0.1,
        transform=("noise", 0.5), parent=(cnn, 10))  # fmt: skip
    add("digits-cnn-sgd_momentum-step-every_k", "finetune", length=0.6, lr_scale=0.25, parent=(cnn, 15))

    # sibling groups: one initialisation, other data orders
    first = add("digits-mlp-adamw-constant-epoch", "sibling", group="g2")
    add("digits-mlp-adamw-constant-epoch", "sibling", group="g2", init_of=first)
    first = add("digits-cnn-sgd_momentum-step-epoch", "sibling", group="g3")
    add("digits-cnn-sgd_momentum-step-epoch", "sibling", group="g3", init_of=first)
    add("digits-cnn-sgd_momentum-step-epoch", "shift", group="g3", init_of=first, shift=("invert", 1.0, 0.4))
    first = add("digits-mlp-sgd-warmup_cosine-every_k", "sibling", group="g5")
    for _ in range(3):
        add("digits-mlp-sgd-warmup_cosine-every_k", "sibling", group="g5", init_of=first)
    add("digits-mlp-sgd-warmup_cosine-every_k", "early_stop", group="g5", init_of=first, stop=0.3)

    # data shifts of every kind, two strengths, early and late
    for family, shift in [
        ("digits-mlp-sgd_momentum-constant-epoch", ("invert", 1.0, 1 / 3)),
        ("digits-mlp-adam-constant-epoch", ("invert", 0.5, 2 / 3)),
        ("digits-mlp-sgd-constant-every_k", ("rotate", 0.5, 0.4)),
        ("digits-mlp-adam-warmup_cosine-epoch", ("noise", 1.0, 0.4)),
        ("digits-mlp-sgd_momentum-step-iteration", ("noise", 0.5, 0.35)),
        ("digits-mlp-sgd_momentum-constant-epoch", ("label_permutation", 1.0, 0.5)),
        ("wine-mlp-adam-constant-epoch", ("label_permutation", 0.5, 0.6)),
        ("digits-cnn-adam-constant-every_k", ("class_subset", 0.5, 0.5)),
        ("digits-mlp-sgd-constant-epoch", ("new_source", 1.0, 0.5)),
        ("digits-mlp-adamw-constant-log", ("new_source", 0.5, 0.6)),
        ("sequence-gru-adam-constant-epoch", ("label_permutation", 1.0, 0.5)),
    ]:
        add(family, "shift", shift=shift)
    # at the usual rate this CNN stops learning at the rotation (accuracy 0.1
    # to the end); half the rate learns it
    add("digits-cnn-sgd_momentum-constant-epoch", "shift", shift=("rotate", 1.0, 0.5), lr_scale=0.5)

    # loss spikes (learning rate x20 for a few iterations), restarts, early stops
    add("digits-mlp-sgd_momentum-constant-every_k", "spike", spike_at=0.5)
    add("digits-cnn-adam-warmup_cosine-epoch", "spike", spike_at=0.5)
    add("digits-mlp-adam-constant-epoch", "resumed", resume_at=0.5)
    add("digits-mlp-sgd_momentum-warmup_cosine-every_k", "resumed", resume_at=0.5)
    add("digits-mlp-sgd-constant-epoch", "early_stop", stop=0.5)
    add("wine-mlp-adam-constant-every_k", "early_stop", stop=0.25)

    # held-out fine-tunes, added after the rules for fine-tunes were written, to
    # check them on runs they were not written on: AdamW parents, fine-tuned with
    # AdamW on other data and with momentum SGD at a log-spaced cadence
    # (appended last: the runs above keep their seeds)
    mlp = add("digits-mlp-adamw-warmup_cosine-epoch")
    add("digits-mlp-adamw-constant-epoch", "finetune", length=0.5, lr_scale=0.1,
        transform=("rotate", 0.5), parent=(mlp, 12))  # fmt: skip
    add("digits-mlp-sgd_momentum-constant-log", "finetune", length=0.5, lr_scale=0.25, parent=(mlp, 18))
    cnn = add("digits-cnn-adamw-constant-epoch")
    add("digits-cnn-adamw-constant-every_k", "finetune", length=0.5, lr_scale=0.1,
        transform=("noise", 0.5), parent=(cnn, 12))  # fmt: skip

    # development fine-tunes whose first checkpoints crowd their branch point (a
    # warm-up, a checkpoint every iteration): added with the held-out ones above,
    # after those were seen to fail, to work on the development part alone
    mlp = add("digits-mlp-adam-step-epoch")
    add("digits-mlp-sgd_momentum-warmup_cosine-iteration", "finetune", length=0.6, lr_scale=0.25,
        parent=(mlp, 18))  # fmt: skip
    add("digits-mlp-adam-warmup_cosine-every_k", "finetune", length=0.5, lr_scale=0.5,
        transform=("rotate", 0.5), parent=(mlp, 12))  # fmt: skip
    cnn = add("digits-cnn-sgd_momentum-constant-epoch")
    add("digits-cnn-adam-warmup_cosine-every_k", "finetune", length=0.5, lr_scale=0.1,
        transform=("noise", 0.5), parent=(cnn, 12))  # fmt: skip

    # blind held-out fine-tunes, added after the fine-tune rules above had seen every
    # earlier fine-tune family (2026-12-01), and scored once before any change: a GRU
    # parent fine-tuned on other sequences, an AdamW wine parent with a log-spaced
    # fine-tune and a fine-tune of that, and a CNN fine-tuned on inverted images at
    # a log-spaced cadence with a one-cycle schedule
    gru = add("sequence-gru-sgd_momentum-constant-epoch")
    add("sequence-gru-adam-constant-every_k", "finetune", length=0.5, lr_scale=0.1,
        transform=("label_permutation", 0.5), parent=(gru, 10))  # fmt: skip
    # checkpointed per epoch, even at a tenth of the rate, its first epoch on the noisy
    # sequences lands nearer the parent's rows 12-13 than row 14 (zoo_checks): no
    # method could place its branch point; every 5 iterations it can be
    add("sequence-gru-sgd_momentum-warmup_cosine-every_k", "finetune", length=0.5, lr_scale=0.25,
        transform=("noise", 0.5), parent=(gru, 14))  # fmt: skip
    wine = add("wine-mlp-adamw-constant-epoch")
    tune = add("wine-mlp-sgd-constant-log", "finetune", length=0.5, lr_scale=0.5,
               transform=("class_subset", 0.34), parent=(wine, 10))  # fmt: skip
    add("wine-mlp-adamw-onecycle-iteration", "finetune", length=0.5, lr_scale=0.3, parent=(tune, 8))
    cnn = add("digits-cnn-adam-constant-epoch")
    add("digits-cnn-sgd_momentum-onecycle-log", "finetune", length=0.5, lr_scale=0.5,
        transform=("invert", 0.5), parent=(cnn, 20))  # fmt: skip

    # a second blind set, added 2026-12-01 06:50 after the rules for crowded first
    # checkpoints (warm-ups, small steps) and woven detours were written, of the
    # kinds they were written for: warm-up fine-tunes of an AdamW MLP (per
    # iteration, on noisy images), of an Adam GRU (every 5 iterations, on permuted
    # labels) and of a plain-SGD CNN (AdamW every 5 iterations, on rotated images)
    mlp = add("digits-mlp-adamw-step-epoch")
    add("digits-mlp-adam-warmup_cosine-iteration", "finetune", length=0.6, lr_scale=0.25,
        transform=("noise", 0.5), parent=(mlp, 14))  # fmt: skip
    gru = add("sequence-gru-adam-warmup_cosine-epoch")
    add("sequence-gru-sgd_momentum-warmup_cosine-every_k", "finetune", length=0.5, lr_scale=0.25,
        transform=("label_permutation", 0.5), parent=(gru, 8))  # fmt: skip
    cnn = add("digits-cnn-sgd-constant-epoch")
    # at a tenth of the rate it does not learn the rotated images (accuracy 0.32-0.35, zoo_checks)
    add("digits-cnn-adamw-warmup_cosine-every_k", "finetune", length=0.5, lr_scale=0.5,
        transform=("rotate", 0.5), parent=(cnn, 15))  # fmt: skip

    # a third blind set, added 2026-12-01 08:15 after the stretch rule took a walk
    # out to a fine-tune's tip and a stretch continued past a waver in progress
    # (written on the first blind set's GRU family), before any scoring: fine-tunes
    # with a fresh optimizer at their own usual rate (AdamW on permuted labels every
    # 5 iterations, of a momentum-SGD MLP), log-spaced (momentum SGD without a
    # class, of an Adam wine MLP with a step schedule), one-cycle every 5 iterations
    # (Adam on noisy sequences, of a plain-SGD GRU) and per iteration (momentum SGD
    # with warm-up on inverted images, of an AdamW CNN with a step schedule)
    mlp = add("digits-mlp-sgd_momentum-constant-epoch")
    # checkpointed per epoch, its first epoch lands nearer the parent's row 8 or 9 than
    # row 10 (zoo_checks): no method could place its branch point; every 5 iterations
    add("digits-mlp-adamw-constant-every_k", "finetune", length=0.5,
        transform=("label_permutation", 0.5), parent=(mlp, 10))  # fmt: skip
    wine = add("wine-mlp-adam-step-epoch")
    add("wine-mlp-sgd_momentum-constant-log", "finetune", length=0.5, lr_scale=0.5,
        transform=("class_subset", 0.34), parent=(wine, 16))  # fmt: skip
    gru = add("sequence-gru-sgd-constant-epoch")
    add("sequence-gru-adam-onecycle-every_k", "finetune", length=0.5, lr_scale=0.3,
        transform=("noise", 0.5), parent=(gru, 12))  # fmt: skip
    cnn = add("digits-cnn-adamw-step-epoch")
    add("digits-cnn-sgd_momentum-warmup_cosine-iteration", "finetune", length=0.5, lr_scale=0.5,
        transform=("invert", 0.3), parent=(cnn, 18))  # fmt: skip
