"""Input validation for every op, in one place.

Errors name the function and the argument and give the expected and the received value, e.g.::

    hash_grid_encode(): x must be float32 or float64 [N, 3], got int64 [10, 3] on cpu

Wrong types and dtypes raise ``TypeError``; wrong shapes, devices and values raise ``ValueError``.
Never ``assert`` (it vanishes under ``python -O``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._native import dtype_name

Dim = int | str | None  # int: exact size, str: named size (consistent across arguments), None: any


def describe(t: torch.Tensor) -> str:
    """``float32 [2, 3] on cpu``: how errors show a received tensor."""
    return f"{dtype_name(t.dtype)} {list(t.shape)} on {t.device}"


def _expected(dtype, shape) -> str:
    parts = []
    if dtype is not None:
        dts = dtype if isinstance(dtype, (tuple, list)) else (dtype,)
        parts.append(" or ".join(dtype_name(d) for d in dts))
    if shape is not None:
        parts.append("[" + ", ".join("*" if s is None else str(s) for s in shape) + "]")
    return " ".join(parts) if parts else "a tensor"


def check_tensor(
    fn: str,
    name: str,
    value,
    *,
    dtype: torch.dtype | Sequence[torch.dtype] | None = None,
    shape: Sequence[Dim] | None = None,
    device: torch.device | str | None = None,
    dims: dict[str, int] | None = None,
) -> torch.Tensor:
    """Validate one tensor argument and return it.

    Args:
        fn: public name of the calling function, used in the message.
        name: argument name.
        value: the received value.
        dtype: allowed dtype(s).
        shape: expected shape; ``int`` exact, ``str`` a named size that must agree with the
            other arguments checked with the same ``dims`` dict, ``None`` any size.
        device: required device (the device of another argument, usually).
        dims: dict shared between calls that records named sizes.
    """
    expected = _expected(dtype, shape)
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{fn}(): {name} must be a torch.Tensor {expected}, got {type(value).__name__}")
    if dtype is not None:
        dts = tuple(dtype) if isinstance(dtype, (tuple, list)) else (dtype,)
        if value.dtype not in dts:
            raise TypeError(f"{fn}(): {name} must be {expected}, got {describe(value)}")
    if shape is not None:
        ok = value.dim() == len(shape)
        if ok:
            for size, want in zip(value.shape, shape, strict=True):
                if want is None:
                    continue
                if isinstance(want, str):
                    if dims is not None and want in dims and dims[want] != size:
                        raise ValueError(
                            f"{fn}(): {name} has {want}={size}, but an earlier argument has {want}={dims[want]}"
                            f" (expected {expected}, got {describe(value)})"
                        )
                    if dims is not None:
                        dims.setdefault(want, size)
                elif size != want:
                    ok = False
        if not ok:
            raise ValueError(f"{fn}(): {name} must be {expected}, got {describe(value)}")
    if device is not None and value.device != torch.device(device):
        raise ValueError(
            f"{fn}(): {name} must be on {torch.device(device)} (the device of the other inputs), got "
            f"{describe(value)}"
        )
    return value


def check_choice(fn: str, name: str, value, choices: Sequence) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{fn}(): {name} must be one of {list(choices)}, got {value!r}")


def check_int(fn: str, name: str, value, *, min_value: int | None = None, max_value: int | None = None) -> int:
    """Raise TypeError/ValueError unless ``value`` is an int within [min_value, max_value]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{fn}(): {name} must be an int, got {type(value).__name__} {value!r}")
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        lo = "-inf" if min_value is None else min_value
        hi = "inf" if max_value is None else max_value
        raise ValueError(f"{fn}(): {name} must be in [{lo}, {hi}], got {value}")
    return value


def check_float(fn: str, name: str, value, *, min_value: float | None = None, max_value: float | None = None) -> float:
    """Raise TypeError/ValueError unless ``value`` is a finite real number within the bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{fn}(): {name} must be a number, got {type(value).__name__} {value!r}")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{fn}(): {name} must be finite, got {value}")
    if (min_value is not None and value < min_value) or (max_value is not None and value > max_value):
        raise ValueError(f"{fn}(): {name} must be in [{min_value}, {max_value}], got {value}")
    return value
