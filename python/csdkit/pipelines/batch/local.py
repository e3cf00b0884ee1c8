"""The ``local`` engine: a pool of worker processes on this machine, one fresh process per item attempt.

Slots: one per GPU when torch sees GPUs (each worker gets ``CUDA_VISIBLE_DEVICES`` = its GPU), else
``workers`` CPU slots with the cores split between them (``OMP_NUM_THREADS`` and torch's / csdkit's
thread counts = cores // workers). The pool is driven from the calling (main) thread: workers are
started there (``PR_SET_PDEATHSIG`` is bound to the starting thread) and polled; a worker past the
timeout has its process group killed. On Ctrl-C / SIGTERM the running workers get SIGINT (their
Trainer writes a checkpoint and stops), then SIGKILL after a grace period.
"""

from __future__ import annotations

import collections
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import torch

from .worker import collect, kill_group, start_worker, worker_env

GRACE_SECONDS = 15.0


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def local_slots(workers: int | None, threads: int | None = None) -> list[dict[str, Any]]:
    """The worker slots: ``[{"name", "threads", "env": {...}}]`` (see the module docstring); ``threads``
    overrides the CPU threads per item (default: the cores split between the slots)."""
    cores = cpu_count()
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus:
        n = gpus if workers is None else max(1, min(workers, gpus))
        threads = threads or max(1, cores // n)
        return [{"name": f"gpu{i}", "threads": threads, "env": {"CUDA_VISIBLE_DEVICES": str(i)}} for i in range(n)]
    n = workers if workers is not None else max(1, min(cores, 4))
    threads = threads or max(1, cores // n)
    return [{"name": f"cpu{i}", "threads": threads, "env": {"CUDA_VISIBLE_DEVICES": ""}} for i in range(n)]


def run_local(tasks: list[Any], *, workers: int | None, timeout: float | None, threads: int | None = None,
              start: Callable[[Any, dict[str, Any]], dict[str, Any]],
              finish: Callable[[Any, dict[str, Any]], None]) -> None:
    """Run ``tasks`` on the local slots.

    ``start(task, slot)`` claims the task and returns its worker request (see
    :func:`~csdkit.pipelines.batch.worker.main`); ``finish(task, outcome)`` records the outcome. On
    KeyboardInterrupt the running workers are stopped (outcome ``interrupted``, recorded through
    ``finish``) and the KeyboardInterrupt propagates.
    """
    slots = local_slots(workers, threads)
    queue = collections.deque(tasks)
    running: dict[int, tuple[Any, Any, dict[str, Any], float]] = {}  # slot -> (proc, task, request, t0)
    try:
        while queue or running:
            for i, slot in enumerate(slots):
                if i not in running and queue:
                    task = queue.popleft()
                    request = start(task, slot)
                    request["threads"] = slot["threads"]
                    proc = start_worker(request, worker_env(slot["threads"], slot["env"]))
                    running[i] = (proc, task, request, time.monotonic())
            for i, (proc, task, request, t0) in list(running.items()):
                if proc.poll() is not None:
                    del running[i]
                    finish(task, collect(proc, request))
                elif timeout is not None and time.monotonic() - t0 > timeout:
                    kill_group(proc)
                    del running[i]
                    finish(task, collect(proc, request, timed_out=timeout))
            time.sleep(0.05)
    except BaseException:
        _stop_all(running, finish)
        raise


def _stop_all(running: dict[int, tuple[Any, Any, dict[str, Any], float]],
              finish: Callable[[Any, dict[str, Any]], None]) -> None:
    """Ask every running worker to checkpoint and stop (SIGINT), SIGKILL those still alive after the grace."""
    for proc, *_ in running.values():
        kill_group(proc, signal.SIGINT)
    deadline = time.monotonic() + GRACE_SECONDS
    for proc, *_ in running.values():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except BaseException:  # noqa: BLE001 - TimeoutExpired, or a second Ctrl-C: kill the rest now
            deadline = time.monotonic()
        kill_group(proc)
        proc.wait()
    for proc, task, request, _ in running.values():
        outcome = collect(proc, request)
        if outcome["status"] != "done":
            outcome = {**outcome, "status": "interrupted", "error": "interrupted (resumed next run)"}
        finish(task, outcome)
