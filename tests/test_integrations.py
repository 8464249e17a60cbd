"""The trainer integrations, each run with the real library on a tiny model on the CPU."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the integrations follow torch models")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _event_scalars(logdir: Path) -> dict[str, list[float]]:
    """Every scalar written by TensorBoard under ``logdir``: tag -> values."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars: dict[str, list[float]] = {}
    for events in logdir.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(e.value for e in accumulator.Scalars(tag))
    return scalars


def test_import_wtraj_does_not_import_trainers():
    code = (
        "import sys, wtraj; wtraj.TrajectoryMonitor; "
        "assert 'lightning' not in sys.modules and 'transformers' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('lightning', 'transformers')))"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True)


def test_lightning_callback_logs_through_the_trainers_logger(tmp_path):
    pl = pytest.importorskip("lightning.pytorch", reason="lightning is not installed")
    from lightning.pytorch.loggers import CSVLogger

    from wtraj import TrajectoryLightningCallback

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(64, 8), torch.randn(64, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    callback = TrajectoryLightningCallback(every_n_steps=2, by_layer=True)
    trainer = pl.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=CSVLogger(tmp_path),
        log_every_n_steps=1,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(Tiny(), loader)

    import csv

    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    logged = [float(r["wtraj/step_norm"]) for r in rows if r.get("wtraj/step_norm")]
    # global steps 2, 4, 6 are monitored
    assert len(logged) == 3 == callback.monitor.n_steps
    assert all(v > 0 for v in logged)
    assert logged[-1] == callback.monitor.latest.step_norm
    assert "wtraj/step_norm/net.0.weight" in rows[0]
    # each update is logged at the step of the loss of the batch that made it
    wtraj_steps = [int(r["step"]) for r in rows if r.get("wtraj/step_norm")]
    loss_steps = {int(r["step"]) for r in rows if r.get("train_loss")}
    assert wtraj_steps == [1, 3, 5] and set(wtraj_steps) <= loss_steps
    # the first turning angle (no previous step) is left out, not logged as NaN
    angles = [r["wtraj/turning_angle"] for r in rows if r.get("wtraj/step_norm")]
    assert angles[0] == "" and all(0 <= float(a) <= math.pi for a in angles[1:])


def _train_with_huggingface(tmp_path, place):
    """Train a linear regressor 4 steps with ``report_to=["tensorboard"]``; return what was logged."""
    pytest.importorskip("transformers", reason="transformers is not installed")
    pytest.importorskip("accelerate", reason="accelerate (needed by transformers.Trainer) is not installed")
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from wtraj import TrajectoryTrainerCallback

    class Regressor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def forward(self, x, labels=None):
            out = self.net(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    class Recorder(TrainerCallback):
        def __init__(self):
            self.logs = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            self.logs.append(dict(logs))

    torch.manual_seed(0)
    data = [{"x": torch.randn(4), "labels": torch.randn(1)} for _ in range(32)]
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=4,
        per_device_train_batch_size=8,
        logging_steps=1,
        report_to=["tensorboard"],
        use_cpu=True,
        save_strategy="steps",
        save_steps=4,
        disable_tqdm=True,
    )
    recorder = Recorder()
    callback = TrajectoryTrainerCallback()
    if place == "callbacks":
        trainer = Trainer(model=Regressor(), args=args, train_dataset=data, callbacks=[recorder, callback])
    elif place == "add_callback":
        trainer = Trainer(model=Regressor(), args=args, train_dataset=data, callbacks=[recorder])
        trainer.add_callback(callback)
    else:
        trainer = Trainer(model=Regressor(), args=args, train_dataset=data, callbacks=[recorder])
        callback.add_to(trainer)
    trainer.train()
    assert trainer.callback_handler.callbacks[0] is callback
    return trainer, callback, recorder


@pytest.mark.parametrize("place", ["callbacks", "add_callback", "add_to"])
def test_huggingface_callback_reaches_tensorboard_and_log_history(tmp_path, place):
    import json

    trainer, callback, recorder = _train_with_huggingface(tmp_path, place)
    train_logs = [log for log in recorder.logs if "loss" in log]
    assert len(train_logs) == 4
    assert [log["wtraj/step_norm"] > 0 for log in train_logs] == [True] * 4
    # the first turning angle is undefined (no previous step): left out, not logged as NaN
    assert "wtraj/turning_angle" not in train_logs[0]
    assert all(0 <= log["wtraj/turning_angle"] <= math.pi for log in train_logs[1:])
    assert train_logs[-1]["wtraj/step_norm"] == callback.monitor.latest.step_norm

    scalars = _event_scalars(tmp_path)
    logged = [log["wtraj/step_norm"] for log in train_logs]
    assert scalars.get("train/wtraj/step_norm") == pytest.approx(logged)
    assert len(scalars["train/wtraj/turning_angle"]) == 3

    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in history] == [1, 2, 3, 4]
    assert [entry["wtraj/step_norm"] for entry in history] == [log["wtraj/step_norm"] for log in train_logs]
    saved = json.loads((tmp_path / "out" / "checkpoint-4" / "trainer_state.json").read_text())
    saved_history = [entry for entry in saved["log_history"] if "loss" in entry]
    assert [entry["wtraj/distance_from_init"] for entry in saved_history] == [
        log["wtraj/distance_from_init"] for log in train_logs
    ]


def test_tensorboard_loop_example(tmp_path):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed")
    pytest.importorskip("sklearn", reason="the example trains on scikit-learn's digits")
    spec = importlib.util.spec_from_file_location("tensorboard_loop", EXAMPLES / "tensorboard_loop.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    final = example.main(["--logdir", str(tmp_path), "--epochs", "1"])
    assert final["wtraj/step_norm"] > 0
    scalars = _event_scalars(tmp_path)
    # 1400 samples in batches of 64: 22 steps, each logged
    assert len(scalars["wtraj/step_norm"]) == 22
    # the example retests (and logs an accuracy) whenever the model moved 10 % from the last test
    assert 1 <= len(scalars["test/accuracy"]) < 22


def test_every_n_steps_must_be_positive():
    from wtraj.integrations._schedule import StepSchedule

    with pytest.raises(ValueError, match="every_n_steps must be a positive integer"):
        StepSchedule(0)
    schedule = StepSchedule(2)
    assert [schedule.due(s) for s in (1, 2, 2, 3, 4)] == [False, True, False, False, True]
