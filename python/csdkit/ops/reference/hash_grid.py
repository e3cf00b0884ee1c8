"""Pure-PyTorch reference of the hash-grid encoding (see ``cpp/include/csdkit/hashgrid.h``)."""

from __future__ import annotations

import torch

from ..hash_grid_config import HashGridConfig

_PRIMES = (1, 2654435761, 805459861)
_MASK32 = 0xFFFFFFFF


def _grid_index(corner: torch.Tensor, resolution: int, size: int) -> torch.Tensor:
    """Row (within the level) of integer grid vertices ``corner [N, D]`` (int64)."""
    d = corner.shape[1]
    if resolution**d <= size:  # dense level
        index = torch.zeros_like(corner[:, 0])
        stride = 1
        for k in range(d):
            index = index + corner[:, k] * stride
            stride *= resolution
        index = index & _MASK32
    else:
        index = torch.zeros_like(corner[:, 0])
        for k in range(d):
            index = index ^ ((corner[:, k] * _PRIMES[k]) & _MASK32)
    return index % size


def hash_grid_encode_reference(x: torch.Tensor, params: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """Encode ``x [N, D]`` (in [0, 1], clamped) with ``params [n_params, F]`` -> ``[N, L*F]``.

    Differentiable w.r.t. ``x`` and ``params`` through autograd (also to second order).
    """
    n, d = x.shape
    f = config.n_features_per_level
    xc = x.clamp(0.0, 1.0)
    offsets = config.level_offsets
    outs = []
    for level in range(config.n_levels):
        scale = config.level_scales[level]
        res = config.level_resolutions[level]
        size = offsets[level + 1] - offsets[level]
        table = params[offsets[level] : offsets[level + 1]]
        pos = xc * scale + 0.5
        base = torch.floor(pos)
        frac = pos - base
        w = frac * frac * (3.0 - 2.0 * frac) if config.interpolation == "smoothstep" else frac
        base = base.long()
        acc = x.new_zeros(n, f)
        for c in range(1 << d):
            bits = torch.tensor([(c >> k) & 1 for k in range(d)], device=x.device)
            weight = torch.prod(torch.where(bits.bool(), w, 1.0 - w), dim=1, keepdim=True)
            rows = _grid_index(base + bits, res, size)
            acc = acc + weight * table[rows]
        outs.append(acc)
    return torch.cat(outs, dim=1)
