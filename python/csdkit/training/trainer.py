"""The one optimization loop every csdkit job runs through (texturing, generation stages, editing).

A job supplies a ``step_fn(step) -> (loss, metrics)`` that samples cameras, renders, queries the
guidance and returns the loss; the :class:`Trainer` owns everything else: zeroing gradients,
backward, optimizer and learning-rate steps, the progress bar, ``metrics.jsonl``, atomic
checkpoints, previews, resuming, and a clean stop on Ctrl-C.

Determinism: all randomness of a job must come from ``trainer.generator`` (a ``torch.Generator``
saved in every checkpoint), so a resumed run reproduces the uninterrupted one step for step.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .run_dir import RunDirectory

StepFn = Callable[[int], tuple[torch.Tensor, dict[str, float]]]


@dataclasses.dataclass
class TrainerResult:
    """How a run ended: ``status`` is ``"completed"`` or ``"interrupted"``; ``step`` = steps done."""

    status: str
    step: int
    seconds: float
    last_metrics: dict[str, float]


class Trainer:
    """Runs ``total_steps`` optimization steps with checkpoints, previews and metrics.

    Args:
        step_fn: ``step_fn(step)`` computes the loss of step ``step`` (a scalar tensor with grad)
            and a dict of float metrics (e.g. ``t``, ``grad_norm``); it must not call backward.
        modules: name -> object with ``state_dict``/``load_state_dict`` (models, textures).
        optimizers: name -> ``torch.optim.Optimizer``.
        total_steps: number of steps of the whole run.
        generator: the job's random generator (cameras, timesteps, noise); saved and restored.
        run_dir: where checkpoints, metrics and previews go (None: nothing is written).
        schedulers: name -> LR scheduler stepped after each optimizer step.
        checkpoint_every: steps between checkpoints (plus one at the end and on Ctrl-C).
        keep_checkpoints: how many of the newest checkpoints to keep.
        preview_every: steps between previews (0: none); ``preview_fn(step)`` returns an image.
        log_every: steps between metrics.jsonl records.
        grad_clip: clip the global gradient norm of all optimized parameters (None: off).
        progress: show a tqdm progress bar.
        desc: progress-bar label.
    """

    def __init__(self, step_fn: StepFn, *, modules: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer],
                 total_steps: int, generator: torch.Generator, run_dir: RunDirectory | None = None,
                 schedulers: dict[str, Any] | None = None, checkpoint_every: int = 100, keep_checkpoints: int = 2,
                 preview_every: int = 0, preview_fn: Callable[[int], Any] | None = None, log_every: int = 1,
                 grad_clip: float | None = None, progress: bool = True, desc: str = "csdkit") -> None:
        if total_steps < 0:
            raise ValueError(f"Trainer: total_steps must be >= 0, got {total_steps}")
        if checkpoint_every < 1:
            raise ValueError(f"Trainer: checkpoint_every must be >= 1, got {checkpoint_every}")
        self.step_fn = step_fn
        self.modules = modules
        self.optimizers = optimizers
        self.schedulers = schedulers or {}
        self.total_steps = total_steps
        self.generator = generator
        self.run_dir = run_dir
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.preview_every = preview_every
        self.preview_fn = preview_fn
        self.log_every = max(1, log_every)
        self.grad_clip = grad_clip
        self.progress = progress
        self.desc = desc
        self.step = 0
        self.seconds = 0.0
        self._stop_requested = False

    # ---- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "seconds": self.seconds,
            "modules": {k: m.state_dict() for k, m in self.modules.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, m in self.modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self.schedulers.items():
            s.load_state_dict(state["schedulers"][k])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.seconds = float(state["seconds"])

    def save_checkpoint(self) -> None:
        if self.run_dir is None:
            return
        ckpt.atomic_save(self.state_dict(), ckpt.checkpoint_path(self.run_dir.checkpoints, self.step))
        ckpt.prune(self.run_dir.checkpoints, self.keep_checkpoints)

    def resume(self) -> bool:
        """Load the newest checkpoint of ``run_dir``; False when there is none."""
        if self.run_dir is None:
            return False
        state = ckpt.load_latest(self.run_dir.checkpoints)
        if state is None:
            return False
        self.load_state_dict(state)
        self.run_dir.truncate_metrics(before_step=self.step)
        return True

    # ---- the loop -----------------------------------------------------------------------------------
    def _params(self) -> list[torch.Tensor]:
        return [p for o in self.optimizers.values() for g in o.param_groups for p in g["params"]]

    def _lr(self) -> float:
        for o in self.optimizers.values():
            return float(o.param_groups[0]["lr"])
        return 0.0

    def _on_sigint(self, signum, frame) -> None:  # first Ctrl-C: stop after this step
        self._stop_requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second one interrupts at once

    def request_stop(self) -> None:
        """Ask the loop to stop after the current step (writes a checkpoint)."""
        self._stop_requested = True

    def run(self, resume: bool = False) -> TrainerResult:
        """Run until ``total_steps`` (or until Ctrl-C / :meth:`request_stop`).

        With ``resume=True`` the newest checkpoint in ``run_dir`` is loaded first; steps already
        done are skipped and the result is the same as an uninterrupted run.
        """
        if resume:
            self.resume()
        self._stop_requested = False
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if main_thread else None
        pending: list[dict[str, Any]] = []
        metrics: dict[str, float] = {}
        bar = tqdm(total=self.total_steps, initial=self.step, desc=self.desc, disable=not self.progress,
                   unit="step", dynamic_ncols=True)
        status = "completed"
        try:
            while self.step < self.total_steps:
                t0 = time.perf_counter()
                for o in self.optimizers.values():
                    o.zero_grad(set_to_none=True)
                loss, metrics = self.step_fn(self.step)
                loss.backward()
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self._params(), self.grad_clip)
                for o in self.optimizers.values():
                    o.step()
                for s in self.schedulers.values():
                    s.step()
                self.seconds += time.perf_counter() - t0
                record = {"step": self.step, "loss": float(loss.detach()), "lr": self._lr(),
                          "seconds": round(self.seconds, 4), **{k: float(v) for k, v in metrics.items()}}
                metrics = record
                self.step += 1
                if self.run_dir is not None and (self.step % self.log_every == 0 or self.step == self.total_steps):
                    pending.append(record)
                bar.update(1)
                bar.set_postfix(loss=f"{record['loss']:.4g}", refresh=False)
                if self.preview_fn is not None and self.preview_every and self.run_dir is not None and (
                        self.step % self.preview_every == 0 or self.step == self.total_steps):
                    self.run_dir.save_preview(self.step, self.preview_fn(self.step))
                at_checkpoint = self.step % self.checkpoint_every == 0 or self.step == self.total_steps
                if at_checkpoint or self._stop_requested:
                    if self.run_dir is not None:
                        self.run_dir.append_metrics(pending)
                        pending = []
                    self.save_checkpoint()
                if self._stop_requested:
                    status = "interrupted"
                    break
        finally:
            bar.close()
            if self.run_dir is not None and pending:
                self.run_dir.append_metrics(pending)
            if main_thread and previous is not None:
                signal.signal(signal.SIGINT, previous)
        return TrainerResult(status, self.step, self.seconds, metrics)
