"""Validation and conversion of packed ray samples (``packed_info`` / ``ray_indices``).

Packed samples: the ``S`` samples of ``R`` rays live in flat ``[S]`` tensors. Ray ``r`` owns the
contiguous range ``packed_info[r, 0] : packed_info[r, 0] + packed_info[r, 1]`` (start, count);
ranges never overlap, and samples outside every range belong to no ray. ``ray_indices [S]`` is
the equivalent per-sample form (sorted, so that each ray's samples are contiguous).
"""

from __future__ import annotations

import torch

from .. import _native
from ._checks import check_int, check_tensor, describe

_INDEX_DTYPES = (torch.int32, torch.int64)


def check_packed_info(fn: str, packed_info, n_samples: int, device: torch.device,
                      name: str = "packed_info") -> tuple[torch.Tensor, bool]:
    """Validate ``packed_info [R, 2]`` (int32/int64) against ``n_samples``.

    Returns ``(packed_info as contiguous int64, covers_all)``; ``covers_all`` is True when every
    sample belongs to a ray (then kernels need not zero-fill their outputs).
    """
    check_tensor(fn, name, packed_info, dtype=_INDEX_DTYPES, shape=(None, 2), device=device)
    info = packed_info.to(torch.long).contiguous()
    if info.shape[0] == 0:
        return info, n_samples == 0
    if info.device.type == "cpu" and _native.use_native(info.device):
        # One O(R) pass in C++: small torch index ops can stall on a busy machine.
        status, full = _native.native().volrend_check_packed(info.data_ptr(), info.shape[0], n_samples)
        if status != 0:
            bad = {1: "negative start or count", 2: f"a range beyond the {n_samples} samples",
                   3: "overlapping ranges"}[status]
            _raise_packed(fn, name, n_samples, bad, packed_info)
        return info, bool(full)
    starts, counts = info[:, 0], info[:, 1]
    nonempty = counts > 0
    s = starts[nonempty]
    order = torch.argsort(s)
    s_sorted, e_sorted = s[order], (s + counts[nonempty])[order]
    ok = (counts >= 0).all() & (starts >= 0).all() & (~nonempty | (starts + counts <= n_samples)).all()
    ok = ok & (s_sorted[1:] >= e_sorted[:-1]).all()
    ok, full = torch.stack([ok, counts.sum() == n_samples]).tolist()  # one device sync
    if not ok:
        bad = "negative start or count" if bool((info < 0).any()) else (
            f"a range beyond the {n_samples} samples" if bool(((starts + counts) > n_samples).any())
            else "overlapping ranges")
        _raise_packed(fn, name, n_samples, bad, packed_info)
    return info, bool(full)


def _raise_packed(fn: str, name: str, n_samples: int, bad: str, packed_info: torch.Tensor) -> None:
    raise ValueError(
        f"{fn}(): {name} must hold non-overlapping (start, count) ranges within the {n_samples} samples, "
        f"got {bad} ({describe(packed_info)})"
    )


def packed_info_from_ray_indices(fn: str, ray_indices, n_rays, n_samples: int,
                                 device: torch.device) -> torch.Tensor:
    """``packed_info [n_rays, 2]`` int64 from sorted ``ray_indices [S]`` (int32/int64, in [0, n_rays))."""
    check_tensor(fn, "ray_indices", ray_indices, dtype=_INDEX_DTYPES, shape=(n_samples,), device=device)
    if n_rays is None:
        raise ValueError(f"{fn}(): n_rays is required with ray_indices (rays without samples would be lost)")
    check_int(fn, "n_rays", n_rays, min_value=0)
    idx = ray_indices.to(torch.long)
    if n_samples > 0:
        ok = (idx >= 0).all() & (idx < n_rays).all() & (idx[1:] >= idx[:-1]).all()
        if not bool(ok):
            raise ValueError(
                f"{fn}(): ray_indices must be sorted (non-decreasing) with values in [0, {n_rays}), got min "
                f"{int(idx.min())}, max {int(idx.max())}, sorted={bool((idx[1:] >= idx[:-1]).all())}"
            )
    counts = torch.bincount(idx, minlength=n_rays) if n_rays > 0 else idx.new_zeros(0)
    starts = torch.cumsum(counts, 0) - counts
    return torch.stack([starts, counts], dim=1)


def resolve_packed_info(fn: str, packed_info, ray_indices, n_rays, n_samples: int,
                        device: torch.device) -> tuple[torch.Tensor, bool]:
    """Exactly one of ``packed_info`` / ``ray_indices`` (+ ``n_rays``) -> ``(validated int64
    packed_info, covers_all)`` as in :func:`check_packed_info`."""
    if (packed_info is None) == (ray_indices is None):
        raise ValueError(f"{fn}(): give exactly one of packed_info [R, 2] or ray_indices [S] (with n_rays)")
    if packed_info is not None:
        info, full = check_packed_info(fn, packed_info, n_samples, device)
        if n_rays is not None and n_rays != info.shape[0]:
            raise ValueError(f"{fn}(): n_rays={n_rays} but packed_info has {info.shape[0]} rays")
        return info, full
    return packed_info_from_ray_indices(fn, ray_indices, n_rays, n_samples, device), True


def check_samples(fn: str, name: str, value, dims: dict[str, int], device=None,
                  dtype=(torch.float32, torch.float64)) -> torch.Tensor:
    """Validate a per-sample float tensor ``[S]`` (``[S, 1]`` is accepted and flattened)."""
    if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[1] == 1:
        value = value.reshape(-1)
    check_tensor(fn, name, value, dtype=dtype, shape=("S",), device=device, dims=dims)
    return value
