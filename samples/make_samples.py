"""Write the sample trajectories shipped in ``samples/``: real checkpoints of a tiny MLP.

Four runs of a 64-32-10 MLP (2,410 parameters) trained on scikit-learn's
digits with :mod:`wtraj.toy`, one safetensors file per epoch (the
initialisation is ``epoch_000``), tensors named as in the model's state_dict
(``fc1.weight``, ``fc1.bias``, ``fc2.weight``, ``fc2.bias``):

- ``run_seed0``: initialisation seed 0.
- ``run_seed1``: initialisation seed 1.
- ``run_seed0_sibling``: the same initialisation as ``run_seed0`` (identical
  ``epoch_000``), another data order.
- ``run_shift``: initialisation seed 2; after epoch 10 the images are
  inverted (a data shift), so epoch 11 is the first on the new data.

Usage: ``python samples/make_samples.py [output folder]`` (default: the
folder of this script). Deterministic: the same files every time.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wtraj import toy

N_EPOCHS = 20
COMMON = dict(n_checkpoints=N_EPOCHS, batch_size=64, lr=0.2)
SAMPLES = {
    "run_seed0": dict(init_seed=0, data_seed=0),
    "run_seed1": dict(init_seed=1, data_seed=1),
    "run_seed0_sibling": dict(init_seed=0, data_seed=5),
    "run_shift": dict(init_seed=2, data_seed=2, shift_at=10, shift="invert"),
}


def main(output: Path) -> None:
    for name, arguments in SAMPLES.items():
        run = toy.train_run(**COMMON, **arguments)
        paths = toy.save_run(run, output / name)
        size = sum(p.stat().st_size for p in paths)
        print(
            f"{name}: {len(paths)} checkpoints, {size / 1e3:.0f} kB, "
            f"final training accuracy {run.accuracy[-1]:.3f}"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent)
