"""Volume-rendering compositing: weights from densities or alphas, and accumulation along rays.

Along each ray (samples packed as described in :mod:`csdkit.ops._packing`)::

    alpha_i = 1 - exp(-sigma_i * (t_end_i - t_start_i))
    T_i     = prod_{j<i} (1 - alpha_j)            (transmittance before sample i)
    w_i     = T_i * alpha_i                        (weight of sample i)

**Early stop**: the first sample whose ``T_i < early_stop_eps`` (default ``1e-4``) and every later
sample of the ray are not rendered: their weights, transmittance and alphas are exactly 0 and they
receive exactly zero gradient. Gradients of the rendered samples are exact (no truncation error
beyond float rounding). ``early_stop_eps=0`` renders every sample.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import _native
from ._checks import check_float, check_int, check_tensor
from ._packing import check_samples, resolve_packed_info
from .reference.compositing import (
    accumulate_along_rays_reference,
    ray_indices_from_packed,
    render_weight_from_alpha_reference,
    render_weight_from_density_reference,
)

__all__ = ["accumulate_along_rays", "render_weight_from_alpha", "render_weight_from_density"]


# ---- autograd wiring of the compiled kernels ------------------------------------------------------
class _WeightsFromDensity(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t_starts, t_ends, sigmas, packed_info, eps: float, full: bool):
        mod = _native.native()
        fn = "render_weight_from_density"
        new = torch.empty_like if full else torch.zeros_like  # samples outside every ray stay 0
        weights, trans, alphas = (new(sigmas) for _ in range(3))
        device, stream = _native.device_args(sigmas)
        mod.volrend_weights_forward(
            packed_info.shape[0],
            sigmas.shape[0],
            _native.data_ptr(fn, "packed_info", packed_info),
            _native.data_ptr(fn, "t_starts", t_starts),
            _native.data_ptr(fn, "t_ends", t_ends),
            _native.data_ptr(fn, "sigmas", sigmas),
            0,
            eps,
            _native.data_ptr(fn, "weights", weights),
            _native.data_ptr(fn, "transmittance", trans),
            _native.data_ptr(fn, "alphas", alphas),
            _native.dtype_name(sigmas.dtype),
            device,
            stream,
        )
        ctx.save_for_backward(t_starts, t_ends, sigmas, packed_info, weights, trans, alphas)
        ctx.eps, ctx.full = eps, full
        ctx.set_materialize_grads(False)  # unused outputs give None (read as 0 by the kernel, no memset)
        return weights, trans, alphas

    @staticmethod
    @once_differentiable
    def backward(ctx, g_w, g_t, g_a):
        t_starts, t_ends, sigmas, packed_info, weights, trans, alphas = ctx.saved_tensors
        need_t = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        need_s = ctx.needs_input_grad[2]
        if not (need_t or need_s) or (g_w is None and g_t is None and g_a is None):
            return None, None, None, None, None, None
        fn = "render_weight_from_density"
        g = [x.contiguous() if x is not None else None for x in (g_w, g_t, g_a)]  # None: zero cotangent
        new = torch.empty_like if ctx.full else torch.zeros_like
        d_sigmas = new(sigmas) if need_s else None
        d_tau = new(sigmas) if need_t else None
        device, stream = _native.device_args(sigmas)
        _native.native().volrend_weights_backward(
            packed_info.shape[0],
            sigmas.shape[0],
            _native.data_ptr(fn, "packed_info", packed_info),
            _native.data_ptr(fn, "t_starts", t_starts),
            _native.data_ptr(fn, "t_ends", t_ends),
            0,
            ctx.eps,
            _native.data_ptr(fn, "transmittance", trans),
            _native.data_ptr(fn, "alphas", alphas),
            _native.data_ptr(fn, "d_weights", g[0]),
            _native.data_ptr(fn, "d_transmittance", g[1]),
            _native.data_ptr(fn, "d_alphas", g[2]),
            _native.data_ptr(fn, "d_sigmas", d_sigmas),
            _native.data_ptr(fn, "d_tau", d_tau),
            _native.dtype_name(sigmas.dtype),
            device,
            stream,
        )
        d_starts = d_ends = None
        if need_t:
            # tau = sigma * (t_end - t_start): d tau / d t_end = sigma = -d tau / d t_start.
            d_delta = d_tau * sigmas
            d_ends = d_delta if ctx.needs_input_grad[1] else None
            d_starts = -d_delta if ctx.needs_input_grad[0] else None
        return d_starts, d_ends, d_sigmas, None, None, None


class _WeightsFromAlpha(torch.autograd.Function):
    @staticmethod
    def forward(ctx, alphas, packed_info, eps: float, full: bool):
        mod = _native.native()
        fn = "render_weight_from_alpha"
        new = torch.empty_like if full else torch.zeros_like
        weights, trans = new(alphas), new(alphas)
        device, stream = _native.device_args(alphas)
        mod.volrend_weights_forward(
            packed_info.shape[0],
            alphas.shape[0],
            _native.data_ptr(fn, "packed_info", packed_info),
            0,
            0,
            _native.data_ptr(fn, "alphas", alphas),
            1,
            eps,
            _native.data_ptr(fn, "weights", weights),
            _native.data_ptr(fn, "transmittance", trans),
            0,
            _native.dtype_name(alphas.dtype),
            device,
            stream,
        )
        ctx.save_for_backward(alphas, packed_info, trans)
        ctx.eps, ctx.full = eps, full
        ctx.set_materialize_grads(False)
        return weights, trans

    @staticmethod
    @once_differentiable
    def backward(ctx, g_w, g_t):
        alphas, packed_info, trans = ctx.saved_tensors
        if not ctx.needs_input_grad[0] or (g_w is None and g_t is None):
            return None, None, None, None
        fn = "render_weight_from_alpha"
        g = [x.contiguous() if x is not None else None for x in (g_w, g_t)]  # None: zero cotangent
        d_alphas = (torch.empty_like if ctx.full else torch.zeros_like)(alphas)
        device, stream = _native.device_args(alphas)
        _native.native().volrend_weights_backward(
            packed_info.shape[0],
            alphas.shape[0],
            _native.data_ptr(fn, "packed_info", packed_info),
            0,
            0,
            1,
            ctx.eps,
            _native.data_ptr(fn, "transmittance", trans),
            _native.data_ptr(fn, "alphas", alphas),
            _native.data_ptr(fn, "d_weights", g[0]),
            _native.data_ptr(fn, "d_transmittance", g[1]),
            0,
            _native.data_ptr(fn, "d_alphas", d_alphas),
            0,
            _native.dtype_name(alphas.dtype),
            device,
            stream,
        )
        return d_alphas, None, None, None


class _Accumulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weights, values, packed_info, ray_indices, n_rays: int, full: bool):
        fn = "accumulate_along_rays"
        channels = 1 if values is None else values.shape[1]
        out = weights.new_empty(n_rays, channels)
        device, stream = _native.device_args(weights)
        _native.native().volrend_accumulate_forward(
            n_rays,
            weights.shape[0],
            channels,
            _native.data_ptr(fn, "packed_info", packed_info),
            _native.data_ptr(fn, "ray_indices", ray_indices),
            _native.data_ptr(fn, "weights", weights),
            _native.data_ptr(fn, "values", values),
            _native.data_ptr(fn, "out", out),
            _native.dtype_name(weights.dtype),
            device,
            stream,
        )
        ctx.save_for_backward(weights, values, packed_info, ray_indices)
        ctx.channels, ctx.full = channels, full
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, g_out):
        weights, values, packed_info, ray_indices = ctx.saved_tensors
        need_w, need_v = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if not (need_w or need_v):
            return None, None, None, None, None, None
        fn = "accumulate_along_rays"
        g_out = g_out.contiguous()
        new = torch.empty_like if ctx.full else torch.zeros_like
        d_w = new(weights) if need_w else None
        d_v = new(values) if need_v else None
        device, stream = _native.device_args(weights)
        _native.native().volrend_accumulate_backward(
            g_out.shape[0],
            weights.shape[0],
            ctx.channels,
            _native.data_ptr(fn, "packed_info", packed_info),
            _native.data_ptr(fn, "ray_indices", ray_indices),
            _native.data_ptr(fn, "weights", weights),
            _native.data_ptr(fn, "values", values),
            _native.data_ptr(fn, "d_out", g_out),
            _native.data_ptr(fn, "d_weights", d_w),
            _native.data_ptr(fn, "d_values", d_v),
            _native.dtype_name(weights.dtype),
            device,
            stream,
        )
        return d_w, d_v, None, None, None, None


# ---- public ops -------------------------------------------------------------------------------------
def render_weight_from_density(
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    sigmas: torch.Tensor,
    packed_info: torch.Tensor | None = None,
    *,
    ray_indices: torch.Tensor | None = None,
    n_rays: int | None = None,
    early_stop_eps: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compositing weights from densities: ``alpha_i = 1 - exp(-sigma_i delta_i)``, ``w_i = T_i alpha_i``.

    Args:
        t_starts, t_ends: ``[S]`` float32 or float64, CPU or CUDA: each sample's interval along its
            ray (``delta_i = t_end_i - t_start_i``), e.g. from :func:`csdkit.ops.march_rays`.
        sigmas: ``[S]`` (or ``[S, 1]``) densities >= 0, same dtype and device.
        packed_info: ``[R, 2]`` int32/int64 ``(start, count)`` per ray (see :func:`march_rays`).
        ray_indices: ``[S]`` int32/int64, sorted; the alternative to ``packed_info`` (with ``n_rays``).
        n_rays: number of rays when ``ray_indices`` is given.
        early_stop_eps: samples from the first one with ``T_i < early_stop_eps`` on are not rendered
            (zero outputs, zero gradient). 0 disables early stopping.

    Returns:
        ``(weights, transmittance, alphas)``, each ``[S]`` of sigmas' dtype and device.

    Differentiable w.r.t. ``sigmas``, ``t_starts`` and ``t_ends`` (exact gradients; the compiled
    path makes one forward pass per ray and one reverse pass per ray in backward).
    """
    fn = "render_weight_from_density"
    dims: dict[str, int] = {}
    sigmas = check_samples(fn, "sigmas", sigmas, dims)
    t_starts = check_samples(fn, "t_starts", t_starts, dims, sigmas.device, sigmas.dtype)
    t_ends = check_samples(fn, "t_ends", t_ends, dims, sigmas.device, sigmas.dtype)
    eps = check_float(fn, "early_stop_eps", early_stop_eps, min_value=0.0, max_value=1.0)
    info, full = resolve_packed_info(fn, packed_info, ray_indices, n_rays, sigmas.shape[0], sigmas.device)
    if not _native.use_native(sigmas.device):
        return render_weight_from_density_reference(t_starts, t_ends, sigmas, info, eps)
    return _WeightsFromDensity.apply(
        t_starts.contiguous(), t_ends.contiguous(), sigmas.contiguous(), info, eps, full
    )


def render_weight_from_alpha(
    alphas: torch.Tensor,
    packed_info: torch.Tensor | None = None,
    *,
    ray_indices: torch.Tensor | None = None,
    n_rays: int | None = None,
    early_stop_eps: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Compositing weights from opacities: ``T_i = prod_{j<i} (1 - alpha_j)``, ``w_i = T_i alpha_i``.

    Args:
        alphas: ``[S]`` (or ``[S, 1]``) float32 or float64 in [0, 1], CPU or CUDA.
        packed_info / ray_indices / n_rays / early_stop_eps: as in :func:`render_weight_from_density`.

    Returns:
        ``(weights, transmittance)``, each ``[S]`` of alphas' dtype and device.

    Differentiable w.r.t. ``alphas``; the gradient is exact also where ``alpha = 1`` (no division
    by ``1 - alpha``).
    """
    fn = "render_weight_from_alpha"
    dims: dict[str, int] = {}
    alphas = check_samples(fn, "alphas", alphas, dims)
    eps = check_float(fn, "early_stop_eps", early_stop_eps, min_value=0.0, max_value=1.0)
    info, full = resolve_packed_info(fn, packed_info, ray_indices, n_rays, alphas.shape[0], alphas.device)
    if not _native.use_native(alphas.device):
        return render_weight_from_alpha_reference(alphas, info, eps)
    return _WeightsFromAlpha.apply(alphas.contiguous(), info, eps, full)


def accumulate_along_rays(
    weights: torch.Tensor,
    values: torch.Tensor | None,
    packed_info: torch.Tensor | None = None,
    n_rays: int | None = None,
    *,
    ray_indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-ray weighted sums: ``out[r] = sum_{i in ray r} weights[i] * values[i]``.

    Args:
        weights: ``[S]`` (or ``[S, 1]``) float32 or float64, CPU or CUDA.
        values: ``[S, C]`` same dtype and device (rgb, depth ``[S, 1]``, normals ...), or None to
            accumulate the weights alone (the opacity, ``C = 1``).
        packed_info: ``[R, 2]`` int32/int64 ``(start, count)`` per ray, **or** ``[S]`` int32/int64
            ray indices (then ``n_rays`` is required; unsorted indices are fine here).
        n_rays: number of rays ``R`` (checked against ``packed_info``, required with ray indices).
        ray_indices: keyword alternative for passing ``[S]`` ray indices.

    Returns:
        ``[n_rays, C]`` of weights' dtype and device (rays without samples get 0).

    Differentiable w.r.t. ``weights`` and ``values``.
    """
    fn = "accumulate_along_rays"
    if packed_info is not None and ray_indices is not None:
        raise ValueError(f"{fn}(): give packed_info [R, 2] or ray_indices [S], not both")
    if isinstance(packed_info, torch.Tensor) and packed_info.dim() == 1:
        packed_info, ray_indices = None, packed_info
    dims: dict[str, int] = {}
    weights = check_samples(fn, "weights", weights, dims)
    if values is not None:
        check_tensor(
            fn, "values", values, dtype=weights.dtype, shape=("S", None), device=weights.device, dims=dims
        )
    n_samples = weights.shape[0]
    if ray_indices is not None:
        check_tensor(
            fn,
            "ray_indices",
            ray_indices,
            dtype=(torch.int32, torch.int64),
            shape=(n_samples,),
            device=weights.device,
        )
        if n_rays is None:
            raise ValueError(
                f"{fn}(): n_rays is required with ray_indices (rays without samples would be lost)"
            )
        check_int(fn, "n_rays", n_rays, min_value=0)
        idx = ray_indices.to(torch.long).contiguous()
        if n_samples > 0 and not bool((idx >= 0).all() & (idx < n_rays).all()):
            raise ValueError(
                f"{fn}(): ray_indices must lie in [0, {n_rays}), got min {int(idx.min())}, "
                f"max {int(idx.max())}"
            )
        info, full = None, True
    else:
        if packed_info is None:
            raise ValueError(f"{fn}(): give packed_info [R, 2] or ray_indices [S] (with n_rays)")
        info, full = resolve_packed_info(fn, packed_info, None, n_rays, n_samples, weights.device)
        n_rays, idx = info.shape[0], None
    if not _native.use_native(weights.device):
        ref_idx = idx if idx is not None else ray_indices_from_packed(info, n_samples)
        return accumulate_along_rays_reference(weights, values, ref_idx, n_rays)
    vals = values.contiguous() if values is not None else None
    return _Accumulate.apply(weights.contiguous(), vals, info, idx, n_rays, full)
