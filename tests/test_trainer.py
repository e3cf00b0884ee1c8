"""The shared optimization loop: checkpoints, resume == uninterrupted, Ctrl-C, metrics, report."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from csdkit.training import RunDirectory, Trainer, write_report
from csdkit.training.checkpoint import atomic_save, list_checkpoints, load_latest


class Toy(torch.nn.Module):
    """Fits a vector to noisy targets drawn from the trainer's generator (randomness matters)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(16))


def make_trainer(run_dir, total=30, stop_at=None, **kw):
    torch.manual_seed(0)
    model = Toy()
    gen = torch.Generator().manual_seed(123)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    holder = {}

    def step_fn(step):
        target = torch.linspace(-1, 1, 16) + 0.1 * torch.randn(16, generator=gen)
        loss = ((model.w - target) ** 2).mean()
        if stop_at is not None and step == stop_at:
            holder["trainer"].request_stop()
        return loss, {"t": float(torch.rand((), generator=gen))}

    trainer = Trainer(step_fn, modules={"model": model}, optimizers={"adam": opt}, schedulers={"lr": sched},
                      total_steps=total, generator=gen, run_dir=run_dir, checkpoint_every=7, progress=False,
                      preview_every=10, preview_fn=lambda s: torch.full((8, 8, 3), s / total), **kw)
    holder["trainer"] = trainer
    return trainer, model


def test_resume_equals_uninterrupted(tmp_path):
    full, model_full = make_trainer(RunDirectory(tmp_path / "full"))
    res = full.run()
    assert res.status == "completed" and res.step == 30

    run = RunDirectory(tmp_path / "resumed")
    first, _ = make_trainer(run, stop_at=12)
    res1 = first.run()
    assert res1.status == "interrupted" and res1.step == 13
    second, model_resumed = make_trainer(run)
    res2 = second.run(resume=True)
    assert res2.status == "completed" and res2.step == 30
    torch.testing.assert_close(model_resumed.w, model_full.w, rtol=0, atol=0)
    steps = [m["step"] for m in run.read_metrics()]
    assert steps == list(range(30)), "metrics.jsonl must hold each step exactly once after resume"
    full_losses = [m["loss"] for m in RunDirectory(tmp_path / "full").read_metrics()]
    assert [m["loss"] for m in run.read_metrics()] == full_losses


def test_resume_after_crash_loses_at_most_one_interval(tmp_path):
    run = RunDirectory(tmp_path / "crash")
    trainer, _ = make_trainer(run)

    original = trainer.step_fn

    def crashing(step):
        if step == 17:
            raise RuntimeError("simulated crash")
        return original(step)

    trainer.step_fn = crashing
    with pytest.raises(RuntimeError, match="simulated crash"):
        trainer.run()
    assert [s for s, _ in list_checkpoints(run.checkpoints)][-1] == 14  # last multiple of 7 before 17
    again, model = make_trainer(run)
    assert again.run(resume=True).step == 30
    assert [m["step"] for m in run.read_metrics()] == list(range(30))
    reference, ref_model = make_trainer(RunDirectory(tmp_path / "ref"))
    reference.run()
    torch.testing.assert_close(model.w, ref_model.w, rtol=0, atol=0)


def test_sigint_stops_cleanly_with_checkpoint(tmp_path):
    run = RunDirectory(tmp_path / "sigint")
    trainer, _ = make_trainer(run)
    original = trainer.step_fn

    def step_fn(step):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C delivers
        return original(step)

    trainer.step_fn = step_fn
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the test run itself was started in the background
    res = trainer.run()
    assert res.status == "interrupted"
    assert list_checkpoints(run.checkpoints)[-1][0] == res.step
    assert signal.getsignal(signal.SIGINT) == before  # the previous handler is restored


def test_checkpoints_are_pruned_and_atomic(tmp_path):
    run = RunDirectory(tmp_path / "prune")
    trainer, _ = make_trainer(run, keep_checkpoints=2)
    trainer.run()
    assert [s for s, _ in list_checkpoints(run.checkpoints)] == [28, 30]
    # A damaged newest checkpoint falls back to the previous one.
    (run.checkpoints / "step_0000030.pt").write_bytes(b"garbage")
    assert load_latest(run.checkpoints)["step"] == 28
    # atomic_save never leaves a temporary file behind on failure
    with pytest.raises((AttributeError, TypeError, RuntimeError, ValueError)):  # lambdas do not pickle
        atomic_save({"x": lambda: 0}, tmp_path / "bad.pt")
    assert not list(tmp_path.glob(".bad.pt*")) and not (tmp_path / "bad.pt").exists()


def test_previews_metrics_and_report(tmp_path):
    run = RunDirectory(tmp_path / "report")
    run.write_config({"prompt": "a red sphere", "steps": 30})
    trainer, _ = make_trainer(run)
    trainer.run()
    assert [p.stem for p in run.list_previews()] == ["step_0000010", "step_0000020", "step_0000030"]
    rec = run.read_metrics()[0]
    assert {"step", "loss", "lr", "seconds", "t"} <= set(rec)
    assert run.read_metrics()[-1]["lr"] == pytest.approx(0.05 * 0.5**3)
    page = write_report(run, "a red sphere", summary={"steps": 30}).read_text()
    assert "<svg" in page and "data:image/png;base64," in page and "a red sphere" in page
    assert json.loads(run.config_path.read_text())["steps"] == 30


def test_bad_arguments():
    with pytest.raises(ValueError, match="total_steps must be >= 0"):
        Trainer(lambda s: None, modules={}, optimizers={}, total_steps=-1, generator=torch.Generator())
    with pytest.raises(FileNotFoundError, match="no config.json"):
        RunDirectory("/tmp/csdkit-nonexistent-run-dir-test").read_config()
