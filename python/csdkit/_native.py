"""Access to the compiled kernel core ``csdkit._C`` and the tensor hand-over rules.

Tensors cross into C++ as raw data pointers plus a device ordinal and a CUDA stream handle
(``csdkit._C`` never links libtorch). Everything that reaches a pointer has been validated by
:mod:`csdkit.ops._checks`; :func:`data_ptr` is the last guard (contiguity) before C++ sees memory.
"""

from __future__ import annotations

import functools
import os
import warnings
from types import ModuleType

import torch

_IMPORT_ERROR: str | None = None


@functools.cache
def _load() -> ModuleType | None:
    global _IMPORT_ERROR
    try:
        from csdkit import _C  # type: ignore[attr-defined]
    except ImportError as exc:  # pure-Python checkout without a build
        _IMPORT_ERROR = str(exc)
        return None
    return _C


def available() -> bool:
    """True when the compiled kernel core ``csdkit._C`` can be imported."""
    return _load() is not None


def native() -> ModuleType:
    """The compiled module ``csdkit._C``; raises ImportError with build instructions if missing."""
    mod = _load()
    if mod is None:
        raise ImportError(
            "csdkit's compiled kernels (csdkit._C) are not built: run `make build` (or "
            f"`pip install .`) in the csdkit checkout. Import error: {_IMPORT_ERROR}"
        )
    return mod


_warned_reference = False


def use_native(device: torch.device) -> bool:
    """Whether an op on ``device`` runs the compiled kernels (else the pure-PyTorch reference).

    ``CSDKIT_FORCE_REFERENCE=1`` forces the reference everywhere (debugging). A missing build falls
    back to the reference with a one-time warning; a CUDA tensor with a CPU-only build raises.
    """
    global _warned_reference
    if os.environ.get("CSDKIT_FORCE_REFERENCE", "") not in ("", "0"):
        return False
    mod = _load()
    if mod is None:
        if not _warned_reference:
            warnings.warn(
                "csdkit._C is not built; using the slow pure-PyTorch reference kernels "
                "(run `make build` for the compiled ones)",
                RuntimeWarning,
                stacklevel=3,
            )
            _warned_reference = True
        return False
    if device.type == "cuda" and not mod.compiled_with_cuda():
        raise RuntimeError(
            "csdkit was not compiled with CUDA support, but a CUDA tensor was given: rebuild with "
            "CSDKIT_CUDA=ON (needs nvcc), or move the tensors to the CPU"
        )
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"csdkit kernels run on cpu or cuda tensors, got device {device}")
    return True


def device_args(t: torch.Tensor) -> tuple[int, int]:
    """(device ordinal or -1 for the CPU, CUDA stream handle) for a kernel launch on ``t``'s device."""
    if t.device.type == "cuda":
        return t.device.index if t.device.index is not None else torch.cuda.current_device(), int(
            torch.cuda.current_stream(t.device).cuda_stream
        )
    return -1, 0


def data_ptr(fn: str, name: str, t: torch.Tensor | None) -> int:
    """Raw pointer of a contiguous tensor (0 for None); non-contiguous memory is refused."""
    if t is None:
        return 0
    if not t.is_contiguous():
        raise ValueError(
            f"{fn}(): {name} must be contiguous to be passed to the kernel core, got strides "
            f"{tuple(t.stride())} for shape {list(t.shape)} (call .contiguous())"
        )
    return t.data_ptr()


DTYPE_NAMES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
               torch.int32: "int32", torch.int64: "int64", torch.bool: "bool", torch.uint8: "uint8"}


def dtype_name(dtype: torch.dtype) -> str:
    """Short dtype name as the kernel core spells it (``float32``, ``int32`` ...)."""
    return DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))
