"""Pure-PyTorch reference of texture sampling (``cpp/include/csdkit/raster_texture.h``).

Conventions (nvdiffrast's / OpenGL's): ``uv = (0, 0)`` is the outer corner of texel ``[0, 0]``,
texel ``(i, j)`` has its centre at ``((j + 0.5) / Wt, (i + 0.5) / Ht)``; ``u`` runs along the width
(columns), ``v`` along the height (rows): row 0 of ``tex`` is ``v = 0``.
"""

from __future__ import annotations

import torch

FILTERS = ("nearest", "linear", "linear-mipmap-nearest", "linear-mipmap-linear")
BOUNDARIES = ("wrap", "clamp", "zero")


def mip_level_count(height: int, width: int, max_mip_level: int | None = None) -> int:
    """Number of mip levels (including level 0) built for a ``height x width`` texture.

    Level ``l + 1`` halves level ``l`` (a dimension of 1 stays 1) and exists while level ``l`` is
    not 1x1 and each of its dimensions is even or 1, and ``l + 1 <= max_mip_level``.
    """
    n = 1
    h, w = height, width
    while (h > 1 or w > 1) and (h == 1 or h % 2 == 0) and (w == 1 or w % 2 == 0):
        if max_mip_level is not None and n > max_mip_level:
            break
        h, w = max(1, h // 2), max(1, w // 2)
        n += 1
    return n


def build_mipmaps_reference(tex: torch.Tensor, max_mip_level: int | None = None) -> list[torch.Tensor]:
    """The mip pyramid ``[tex, level1, ...]`` of ``tex [B, H, W, C]`` by 2x2 box filtering."""
    levels = [tex]
    for _ in range(mip_level_count(tex.shape[1], tex.shape[2], max_mip_level) - 1):
        t = levels[-1]
        h, w = t.shape[1], t.shape[2]
        if h == 1:
            t = (t[:, :, 0::2] + t[:, :, 1::2]) * 0.5
        elif w == 1:
            t = (t[:, 0::2] + t[:, 1::2]) * 0.5
        else:
            t = ((t[:, 0::2, 0::2] + t[:, 0::2, 1::2]) + (t[:, 1::2, 0::2] + t[:, 1::2, 1::2])) * 0.25
        levels.append(t)
    return levels


def uv_derivatives_fd(uv: torch.Tensor) -> torch.Tensor:
    """Screen-space derivatives ``(du/dX, du/dY, dv/dX, dv/dY) [B, H, W, 4]`` by finite differences.

    Central differences inside the image, one-sided at its border. Across UV seams and silhouettes
    these are large, so those pixels sample coarser mip levels (prefer analytic ``uv_da`` from
    :func:`csdkit.ops.interpolate` with ``return_da=True``).
    """
    def diff(t: torch.Tensor, dim: int) -> torch.Tensor:
        n = t.shape[dim]
        if n == 1:
            return torch.zeros_like(t)
        out = torch.empty_like(t)
        out.narrow(dim, 0, 1).copy_(t.narrow(dim, 1, 1) - t.narrow(dim, 0, 1))
        out.narrow(dim, n - 1, 1).copy_(t.narrow(dim, n - 1, 1) - t.narrow(dim, n - 2, 1))
        if n > 2:
            torch.sub(t.narrow(dim, 2, n - 2), t.narrow(dim, 0, n - 2), out=out.narrow(dim, 1, n - 2))
            out.narrow(dim, 1, n - 2).mul_(0.5)
        return out

    u, v = uv[..., 0], uv[..., 1]
    return torch.stack([diff(u, 2), diff(u, 1), diff(v, 2), diff(v, 1)], dim=-1)


def mip_level(uv_da: torch.Tensor | None, bias: torch.Tensor | None, height: int, width: int,
              max_level: int, shape, dtype, device) -> torch.Tensor:
    """Continuous mip level per pixel ``[B, H, W]``, clamped to ``[0, max_level]`` (no gradient)."""
    if uv_da is not None:
        dsdx = uv_da[..., 0] * width
        dsdy = uv_da[..., 1] * width
        dtdx = uv_da[..., 2] * height
        dtdy = uv_da[..., 3] * height
        a = dsdx * dsdx + dtdx * dtdx
        b = dsdy * dsdy + dtdy * dtdy
        c = dsdx * dsdy + dtdx * dtdy
        l2b = 0.5 * (a + b)
        l2a = torch.sqrt(0.25 * (a - b) * (a - b) + c * c)
        major = l2b + l2a
        level = 0.5 * torch.log2(major)
    else:
        level = torch.zeros(shape, dtype=dtype, device=device)
    if bias is not None:
        level = level + bias
    level = torch.nan_to_num(level, nan=0.0, posinf=float(max_level), neginf=0.0)
    return level.clamp(0.0, float(max_level))


def _sample_linear(tex: torch.Tensor, uv: torch.Tensor, boundary: str) -> torch.Tensor:
    """Bilinear sample of ``tex [Bt, h, w, C]`` at ``uv [B, H, W, 2]`` -> ``[B, H, W, C]``."""
    bt, h, w, c = tex.shape
    b = uv.shape[0]
    u, v = uv[..., 0], uv[..., 1]
    if boundary == "wrap":
        u = u - torch.floor(u.detach())
        v = v - torch.floor(v.detach())
    x = u * w - 0.5
    y = v * h - 0.5
    if boundary == "clamp":
        x = x.clamp(0.0, w - 1.0)
        y = y.clamp(0.0, h - 1.0)
    x0f = torch.floor(x.detach())
    y0f = torch.floor(y.detach())
    fx = (x - x0f)[..., None]
    fy = (y - y0f)[..., None]
    x0, y0 = x0f.long(), y0f.long()
    x1, y1 = x0 + 1, y0 + 1
    if boundary == "clamp":
        x1 = x1.clamp(max=w - 1)
        y1 = y1.clamp(max=h - 1)
    flat = tex.reshape(bt, h * w, c)
    batch = torch.arange(b, device=tex.device).view(b, 1, 1) if bt > 1 else torch.zeros(
        b, 1, 1, dtype=torch.long, device=tex.device)

    def tap(ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
        if boundary == "wrap":
            ix, iy = ix % w, iy % h
            valid = None
        else:
            valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
            ix, iy = ix.clamp(0, w - 1), iy.clamp(0, h - 1)
        val = flat[batch, iy * w + ix]
        if valid is not None:
            val = torch.where(valid[..., None], val, torch.zeros_like(val))
        return val

    t00, t10, t01, t11 = tap(x0, y0), tap(x1, y0), tap(x0, y1), tap(x1, y1)
    top = t00 + fx * (t10 - t00)
    bot = t01 + fx * (t11 - t01)
    return top + fy * (bot - top)


def _sample_nearest(tex: torch.Tensor, uv: torch.Tensor, boundary: str) -> torch.Tensor:
    bt, h, w, c = tex.shape
    b = uv.shape[0]
    u, v = uv[..., 0].detach(), uv[..., 1].detach()
    if boundary == "wrap":
        u = u - torch.floor(u)
        v = v - torch.floor(v)
    ix = torch.floor(u * w).long()
    iy = torch.floor(v * h).long()
    valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    ix, iy = ix.clamp(0, w - 1), iy.clamp(0, h - 1)
    flat = tex.reshape(bt, h * w, c)
    batch = torch.arange(b, device=tex.device).view(b, 1, 1) if bt > 1 else torch.zeros(
        b, 1, 1, dtype=torch.long, device=tex.device)
    val = flat[batch, iy * w + ix]
    if boundary == "zero":
        val = torch.where(valid[..., None], val, torch.zeros_like(val))
    return val


def texture_reference(tex: torch.Tensor, uv: torch.Tensor, filter: str = "linear", boundary: str = "wrap",
                      uv_da: torch.Tensor | None = None, mip_level_bias: torch.Tensor | None = None,
                      max_mip_level: int | None = None) -> torch.Tensor:
    """Reference of :func:`csdkit.ops.texture` (``tex [Bt, Ht, Wt, C]`` with ``Bt`` = 1 or B).

    Differentiable w.r.t. ``tex`` (all filters) and ``uv`` (bilinear filters) through autograd;
    the mip level is a constant (no gradient w.r.t. ``uv_da`` or ``mip_level_bias``).
    """
    if filter == "nearest":
        return _sample_nearest(tex, uv, boundary)
    if filter == "linear":
        return _sample_linear(tex, uv, boundary)
    levels = build_mipmaps_reference(tex, max_mip_level)
    max_level = len(levels) - 1
    if uv_da is None and mip_level_bias is None:
        uv_da = uv_derivatives_fd(uv.detach())
    with torch.no_grad():
        lvl = mip_level(None if uv_da is None else uv_da.detach(),
                        None if mip_level_bias is None else mip_level_bias.detach(),
                        tex.shape[1], tex.shape[2], max_level, uv.shape[:-1], uv.dtype, uv.device)
    l0 = torch.floor(lvl).long()
    frac = (lvl - l0).to(uv.dtype)[..., None]
    if filter == "linear-mipmap-nearest":
        frac = torch.zeros_like(frac)
    l1 = (l0 + 1).clamp(max=max_level)
    out = torch.zeros(*uv.shape[:-1], tex.shape[-1], dtype=tex.dtype, device=tex.device)
    for k, level in enumerate(levels):
        s = _sample_linear(level, uv, boundary)
        w0 = torch.where(l0 == k, 1.0 - frac[..., 0], torch.zeros_like(frac[..., 0]))
        w1 = torch.where((l1 == k) & (frac[..., 0] > 0), frac[..., 0], torch.zeros_like(frac[..., 0]))
        wk = (w0 + w1)[..., None]
        if bool((wk != 0).any()):
            out = out + wk * s
    return out


def max_mip_level_default(height: int, width: int) -> int:
    """Index of the coarsest level of the full pyramid of a ``height x width`` texture."""
    return mip_level_count(height, width) - 1


__all__ = ["BOUNDARIES", "FILTERS", "build_mipmaps_reference", "max_mip_level_default", "mip_level",
           "mip_level_count", "texture_reference", "uv_derivatives_fd"]
