"""Timing harness shared by the benchmark suites."""

from __future__ import annotations

import dataclasses
import resource
import statistics
import time
from collections.abc import Callable

import torch


@dataclasses.dataclass
class Case:
    """One timed function.

    Attributes:
        name: case name, shared by the impls that compute the same thing (e.g. ``fwd_bwd``).
        impl: ``csdkit``, ``reference`` or a third-party name (``tinycudann``, ``open3d`` ...).
        fn: the work to time (called repeatedly, no arguments).
        n: problem size reported in the record (points, rays, pixels ...).
        baseline: True for the impl the others are compared against.
        repeats / warmup: timed and untimed calls (``--quick`` caps repeats at 3).
        setup: optional call before each timed call, not timed (e.g. zero gradients).
    """

    name: str
    impl: str
    fn: Callable[[], object]
    n: int
    baseline: bool = False
    repeats: int = 10
    warmup: int = 2
    setup: Callable[[], object] | None = None


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()


def _peak_mb(device: str) -> float:
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    # CPU: the process's peak resident set (an upper bound shared by all cases of the run).
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_case(suite: str, case: Case, device: str, quick: bool) -> dict:
    repeats = min(case.repeats, 3) if quick else case.repeats
    for _ in range(case.warmup if not quick else min(case.warmup, 1)):
        if case.setup:
            case.setup()
        case.fn()
    _sync(device)
    _peak_reset(device)
    times = []
    for _ in range(max(repeats, 1)):
        if case.setup:
            case.setup()
        _sync(device)
        t0 = time.perf_counter()
        case.fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return {
        "suite": suite,
        "case": case.name,
        "impl": case.impl,
        "device": device,
        "n": case.n,
        "median_ms": statistics.median(times),
        "min_ms": min(times),
        "max_ms": max(times),
        "peak_mem_mb": _peak_mb(device),
        "baseline": case.baseline,
    }
