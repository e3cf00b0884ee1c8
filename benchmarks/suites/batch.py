"""Batch throughput: per-item overhead, and 8 small texture items on 2 workers against 1 worker.

Cases:
- ``item_overhead``: what every item attempt pays before its job does any work: a fresh worker
  process that imports csdkit and loads the prior (the MiniPrior on CPU; building it imports
  diffusers), timed as a subprocess; ``python`` alone is the baseline and ``+torch`` (a process that
  imports torch) splits the cost.
- ``8_items``: ``csdkit.batch()`` of 8 tiny texture items (sphere / torus, 32x32 renders, a 64 texture)
  into a fresh folder, with 1 worker (baseline) and with 2 workers, each item on one CPU thread (so
  the comparison is parallelism, not thread counts). Issue target on a 2-core machine: 2 workers
  <= 0.6x the time of 1 worker (``vs baseline`` >= 1.67).

``--quick``: 10 optimization steps per item instead of 40. CUDA: the same items, one per GPU.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from csdkit.pipelines.batch import batch
from harness import Case

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return env


_PRIOR = ("import torch; torch.set_num_threads(1); from csdkit.pipelines.models import load_prior; "
          "load_prior(None, torch.device('{device}'), quiet=True)")


def cases(device: str, quick: bool) -> list[Case]:
    env = _env()

    def python_only():
        subprocess.run([sys.executable, "-c", "pass"], env=env, check=True)

    def with_torch():
        subprocess.run([sys.executable, "-c", "import torch"], env=env, check=True)

    def worker_and_prior():
        subprocess.run([sys.executable, "-c", _PRIOR.format(device=device)], env=env, check=True)

    steps = 10 if quick else 40
    items = [{"mesh": "@sphere" if i % 2 == 0 else "@torus", "prompt": f"a {c} {s}", "seed": i, "steps": steps,
              "resolution": 32, "texture_size": 64, "batch_size": 1}
             for i, (c, s) in enumerate([(c, s) for c in ("red", "blue", "green", "yellow")
                                         for s in ("sphere", "torus")])]
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]  # the batch's workers import csdkit from this tree

    def run(workers: int):
        def fn():
            with tempfile.TemporaryDirectory(prefix="csdkit-bench-batch-") as tmp:
                res = batch(items, tmp, workers=workers, threads=1, progress=False, quiet=True)
                if res.counts["done"] != len(items):
                    raise RuntimeError(f"benchmark batch failed: {res.failed}")
        return fn

    return [
        Case("item_overhead", "python", python_only, 1, baseline=True, repeats=5, warmup=1),
        Case("item_overhead", "+torch", with_torch, 1, repeats=5, warmup=1),
        Case("item_overhead", "+csdkit+prior", worker_and_prior, 1, repeats=5, warmup=1),
        Case("8_items", "1 worker", run(1), len(items), baseline=True, repeats=1, warmup=0),
        Case("8_items", "2 workers", run(2), len(items), repeats=1, warmup=0),
    ]
