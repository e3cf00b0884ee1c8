"""Build and runtime information: what was compiled and what this machine offers."""

from __future__ import annotations

import torch

from . import _native
from ._version import __version__

__all__ = ["has_cuda", "build_info", "set_num_threads"]


def has_cuda() -> bool:
    """True when csdkit was compiled with CUDA kernels *and* a CUDA device is usable here."""
    mod = _native._load()
    return bool(mod is not None and mod.compiled_with_cuda() and torch.cuda.is_available()
                and mod.cuda_device_count() > 0)


def build_info() -> dict:
    """What this csdkit build contains.

    Returns a dict with ``version``, ``native`` (the compiled core is importable),
    ``cuda_compiled``, ``cuda_architectures`` (list of str), ``cuda_devices`` (int),
    ``cpu_threads`` (threads used by the CPU kernels) and ``torch`` (torch version).
    """
    mod = _native._load()
    info = {
        "version": __version__,
        "native": mod is not None,
        "cuda_compiled": bool(mod and mod.compiled_with_cuda()),
        "cuda_architectures": [a for a in (mod.cuda_architectures() if mod else "").split(",") if a],
        "cuda_devices": int(mod.cuda_device_count()) if mod else 0,
        "cpu_threads": int(mod.num_threads()) if mod else 0,
        "torch": torch.__version__,
    }
    return info


def set_num_threads(n: int) -> None:
    """Set the number of CPU threads the csdkit kernels use (default: all cores, or CSDKIT_NUM_THREADS)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads(): n must be an int >= 1, got {n!r}")
    _native.native().set_num_threads(n)
