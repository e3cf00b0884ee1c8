"""Pure-PyTorch reference of attribute interpolation (``cpp/include/csdkit/raster_interpolate.h``)."""

from __future__ import annotations

import torch

from .rasterize import resolve_reference


def _gather_attr(attr: torch.Tensor, tri: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Attributes of each pixel's three triangle vertices: ``[B, H, W, 3, C]``."""
    b = ids.shape[0]
    t = (ids - 1).clamp(min=0)
    vi = tri.long()[t]  # [B, H, W, 3]
    if attr.shape[0] == 1 and b > 1:
        return attr[0][vi]
    batch = torch.arange(b, device=attr.device).view(b, 1, 1, 1)
    return attr[batch, vi]


def interpolate_reference(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor) -> torch.Tensor:
    """``out = u * a_0 + v * a_1 + (1 - u - v) * a_2`` per pixel, zero where ``rast[..., 3] == 0``.

    Args:
        attr: ``[B, V, C]`` or ``[1, V, C]`` (shared by all images).
        rast: ``[B, H, W, 4]`` rasterizer output.
        tri: ``[T, 3]`` integer vertex indices.

    Returns:
        ``[B, H, W, C]``, differentiable w.r.t. ``attr`` and ``rast[..., :2]`` through autograd.
    """
    ids = rast[..., 3].detach().round().long()
    hit = (ids > 0)[..., None]
    a = _gather_attr(attr, tri, ids)
    u, v = rast[..., 0:1], rast[..., 1:2]
    out = u * a[..., 0, :] + v * a[..., 1, :] + (1 - u - v) * a[..., 2, :]
    return torch.where(hit, out, torch.zeros_like(out))


def barycentric_derivatives_reference(pos: torch.Tensor, tri: torch.Tensor,
                                      rast: torch.Tensor) -> torch.Tensor:
    """Screen-space derivatives ``(du/dX, du/dY, dv/dX, dv/dY) [B, H, W, 4]`` of the barycentrics.

    ``X``, ``Y`` are pixel units (``X`` along the width, ``Y`` along the rows). Computed
    analytically from the homogeneous edge functions ``a_i``, which are linear in the pixel's NDC
    position ``(fx, fy)``: with ``S = sum(a)``, ``d(a_i / S)/dfx = (da_i/dfx - (a_i / S) dS/dfx) / S``.
    """
    b, h, w, _ = rast.shape
    ids = rast[..., 3].round().long()
    hit = ids > 0
    t = (ids - 1).clamp(min=0)
    vi = tri.long()[t]
    batch = torch.arange(b, device=pos.device).view(b, 1, 1, 1)
    p = pos[batch, vi]  # [B, H, W, 3, 4]
    fx = ((torch.arange(w, dtype=pos.dtype, device=pos.device) * 2 + 1) / w - 1).view(1, 1, w, 1)
    fy = ((torch.arange(h, dtype=pos.dtype, device=pos.device) * 2 + 1) / h - 1).view(1, h, 1, 1)
    x, y, ww = p[..., 0], p[..., 1], p[..., 3]
    qx, qy = x - fx * ww, y - fy * ww
    a = []
    da_dfx = []
    da_dfy = []
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3
        # a_i = qx_j qy_k - qy_j qx_k with d(qx)/dfx = -w, d(qy)/dfy = -w.
        a.append(qx[..., j] * qy[..., k] - qy[..., j] * qx[..., k])
        da_dfx.append(-ww[..., j] * qy[..., k] + qy[..., j] * ww[..., k])
        da_dfy.append(-qx[..., j] * ww[..., k] + ww[..., j] * qx[..., k])
    s = a[0] + a[1] + a[2]
    ds_dfx = da_dfx[0] + da_dfx[1] + da_dfx[2]
    ds_dfy = da_dfy[0] + da_dfy[1] + da_dfy[2]
    ok = hit & (s != 0) & torch.isfinite(s)
    inv = 1.0 / torch.where(ok, s, torch.ones_like(s))
    u, v = a[0] * inv, a[1] * inv
    sx, sy = 2.0 / w, 2.0 / h  # NDC per pixel
    db = torch.stack([(da_dfx[0] - u * ds_dfx) * inv * sx, (da_dfy[0] - u * ds_dfy) * inv * sy,
                      (da_dfx[1] - v * ds_dfx) * inv * sx, (da_dfy[1] - v * ds_dfy) * inv * sy], dim=-1)
    return torch.where(ok[..., None], db, torch.zeros_like(db))


def interpolate_derivatives_reference(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                                      rast_db: torch.Tensor) -> torch.Tensor:
    """Pixel derivatives of interpolated attributes: ``[B, H, W, 2C]`` as (dA/dX, dA/dY) per channel."""
    ids = rast[..., 3].round().long()
    a = _gather_attr(attr, tri, ids)
    dsdu = a[..., 0, :] - a[..., 2, :]
    dsdv = a[..., 1, :] - a[..., 2, :]
    dx = rast_db[..., 0:1] * dsdu + rast_db[..., 2:3] * dsdv
    dy = rast_db[..., 1:2] * dsdu + rast_db[..., 3:4] * dsdv
    out = torch.stack([dx, dy], dim=-1).flatten(-2)
    return torch.where((ids > 0)[..., None], out, torch.zeros_like(out))


def interpolate_with_positions_reference(attr: torch.Tensor, rast: torch.Tensor, tri: torch.Tensor,
                                         pos: torch.Tensor) -> torch.Tensor:
    """Interpolation with barycentrics recomputed from ``pos [B, V, 4]`` (differentiable in ``pos``)."""
    rast2 = resolve_reference(pos, tri, rast[..., 3].detach().round().long())
    return interpolate_reference(attr, rast2, tri)
