"""Multiresolution hash-grid encoding: the functional op and its autograd wiring."""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import _native
from ._checks import check_tensor
from .hash_grid_config import HashGridConfig
from .reference.hash_grid import hash_grid_encode_reference

_FN = "hash_grid_encode"
_FLOATS = (torch.float32, torch.float64)


class _HashGridEncode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, params: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
        mod = _native.native()
        out = x.new_empty(x.shape[0], config.n_output_dims)
        device, stream = _native.device_args(x)
        mod.hashgrid_forward(
            config.native_options(), x.shape[0], _native.data_ptr(_FN, "x", x),
            _native.data_ptr(_FN, "params", params), _native.data_ptr(_FN, "out", out),
            _native.dtype_name(x.dtype), device, stream,
        )
        ctx.save_for_backward(x, params)
        ctx.config = config
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: torch.Tensor):
        x, params = ctx.saved_tensors
        config: HashGridConfig = ctx.config
        need_x, need_params = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_x or need_params):
            return None, None, None
        d_out = d_out.contiguous()
        # The kernel overwrites d_params (accumulate=False): no separate zero-fill pass.
        d_params = torch.empty_like(params) if need_params else None
        d_x = torch.empty_like(x) if need_x else None
        device, stream = _native.device_args(x)
        _native.native().hashgrid_backward(
            config.native_options(), x.shape[0], _native.data_ptr(_FN, "x", x),
            _native.data_ptr(_FN, "params", params), _native.data_ptr(_FN, "d_out", d_out),
            _native.data_ptr(_FN, "d_params", d_params), _native.data_ptr(_FN, "d_x", d_x),
            _native.dtype_name(x.dtype), device, stream, accumulate=False,
        )
        return d_x, d_params, None


def hash_grid_encode(
    x: torch.Tensor,
    params: torch.Tensor,
    *,
    n_levels: int = 16,
    n_features_per_level: int = 2,
    log2_hashmap_size: int = 19,
    base_resolution: int = 16,
    per_level_scale: float = 1.447,
    interpolation: str = "linear",
    config: HashGridConfig | None = None,
) -> torch.Tensor:
    """Encode points with a multiresolution hash grid (tiny-cuda-nn ``HashGrid`` semantics).

    Args:
        x: ``[N, D]`` float32 or float64, ``D`` = 2 or 3, coordinates in [0, 1]. Values outside are
            clamped to [0, 1]; the gradient w.r.t. a clamped coordinate is zero. CPU or CUDA.
        params: ``[n_params, n_features_per_level]``, same dtype and device as ``x``: the flat
            table of all levels (level ``l`` starts at row ``config.level_offsets[l]``).
        n_levels, n_features_per_level, log2_hashmap_size, base_resolution, per_level_scale,
        interpolation: the encoding's hyper-parameters (ignored when ``config`` is given).
        config: a :class:`HashGridConfig`; ``n_input_dims`` must equal ``D``.

    Returns:
        ``[N, n_levels * n_features_per_level]`` of x's dtype and device, level-major.

    Differentiable w.r.t. ``x`` and ``params`` (first order on the compiled path; the reference
    path, used when ``CSDKIT_FORCE_REFERENCE=1``, is twice differentiable).
    """
    dims: dict[str, int] = {}
    check_tensor(_FN, "x", x, dtype=_FLOATS, shape=("N", None), dims=dims)
    if x.shape[1] not in (2, 3):
        raise ValueError(f"{_FN}(): x must be [N, 2] or [N, 3], got [N, {x.shape[1]}]")
    if config is None:
        config = HashGridConfig(x.shape[1], n_levels, n_features_per_level, log2_hashmap_size,
                                base_resolution, per_level_scale, interpolation)
    elif config.n_input_dims != x.shape[1]:
        raise ValueError(f"{_FN}(): config.n_input_dims={config.n_input_dims} but x is {list(x.shape)}")
    check_tensor(_FN, "params", params, dtype=x.dtype, shape=(config.n_params, config.n_features_per_level),
                 device=x.device)
    if not _native.use_native(x.device):
        return hash_grid_encode_reference(x, params, config)
    return _HashGridEncode.apply(x.contiguous(), params.contiguous(), config)
