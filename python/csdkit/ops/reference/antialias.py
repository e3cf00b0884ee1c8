"""Pure-PyTorch reference of silhouette antialiasing (``cpp/include/csdkit/raster_antialias.h``).

For each pair of horizontally or vertically adjacent pixels with different triangle ids, the front
pixel ``f`` (covered; or, when both are covered, the smaller ``z/w``) and the other pixel ``o``: the
segment between their centres crosses at most one edge of ``f``'s triangle. When that edge is a
silhouette edge (``topology`` says it has no neighbour, or its neighbour faces the other way in screen
space) at distance ``s`` in ``[0, 1]`` from ``f``'s centre, the pair is blended as unit boxes:
``s >= 1/2``: ``out[o] += (s - 1/2) (c[f] - c[o])``; ``s < 1/2``: ``out[f] += (1/2 - s) (c[o] - c[f])``.
The blends landing on one pixel are summed; when their weights add up to more than 1 the sum is divided by
the total weight (a convex combination).
"""

from __future__ import annotations

import torch


def antialias_topology_reference(tri: torch.Tensor) -> torch.Tensor:
    """Edge adjacency ``[T, 3]`` int32 of ``tri [T, 3]``: entry ``[t, k]`` is the triangle across edge
    ``(tri[t, k], tri[t, (k + 1) % 3])``, or -1 when the edge is a boundary edge or is shared by more than
    two triangles (such edges always count as silhouettes). Same device as ``tri``."""
    t_count = tri.shape[0]
    adj = torch.full((t_count * 3,), -1, dtype=torch.int64, device=tri.device)
    if t_count == 0:
        return adj.reshape(0, 3).to(torch.int32)
    t = tri.long()
    a = t.reshape(-1)
    b = t[:, [1, 2, 0]].reshape(-1)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b)
    key = lo * (int(t.max()) + 1) + hi
    order = torch.argsort(key, stable=True)
    _, counts = torch.unique_consecutive(key[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    pairs = starts[counts == 2]
    first, second = order[pairs], order[pairs + 1]
    adj[first] = second // 3
    adj[second] = first // 3
    return adj.reshape(t_count, 3).to(torch.int32)


def _screen(p: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen coordinates ``[..., 2]`` of clip-space points ``p [..., 4]`` and their validity (w > 0)."""
    w = p[..., 3]
    valid = w > 0
    w_safe = torch.where(valid, w, torch.ones_like(w))
    xy = torch.stack([(p[..., 0] / w_safe * 0.5 + 0.5) * width, (p[..., 1] / w_safe * 0.5 + 0.5) * height], -1)
    valid = valid & torch.isfinite(xy).all(-1)
    return torch.where(valid[..., None], xy, torch.zeros_like(xy)), valid


def _facing(pos: torch.Tensor, tri: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Screen-space orientation ``[B, T]`` int64 (+1, -1; 0 for degenerate or unprojectable triangles)."""
    s, valid = _screen(pos.detach()[:, tri.long()], width, height)  # [B, T, 3, 2]
    e1, e2 = s[..., 1, :] - s[..., 0, :], s[..., 2, :] - s[..., 0, :]
    area = e1[..., 0] * e2[..., 1] - e1[..., 1] * e2[..., 0]
    return torch.where(valid.all(-1), torch.sign(area), torch.zeros_like(area)).long()


def antialias_reference(color: torch.Tensor, rast: torch.Tensor, pos: torch.Tensor, tri: torch.Tensor,
                        topology: torch.Tensor) -> torch.Tensor:
    """Antialiased ``color``.

    Args:
        color: ``[B, H, W, C]`` float image.
        rast: ``[B, H, W, 4]`` rasterizer output for ``pos`` / ``tri`` (row 0 is NDC y = -1).
        pos: ``[B, V, 4]`` or ``[1, V, 4]`` clip-space vertex positions.
        tri: ``[T, 3]`` integer vertex indices.
        topology: ``[T, 3]`` edge adjacency from :func:`antialias_topology_reference`.

    Returns:
        ``[B, H, W, C]``, differentiable w.r.t. ``color`` and ``pos`` through autograd.
    """
    b, h, w, _ = rast.shape
    if pos.shape[0] != b:
        pos = pos.expand(b, -1, -1)
    n_tri = tri.shape[0]
    tri_l, topo = tri.long(), topology.long()
    facing = _facing(pos, tri, w, h)
    batch = torch.arange(b, device=rast.device)
    ids = rast[..., 3].detach().round().long()
    tri_id = torch.where((ids >= 1) & (ids <= n_tri), ids - 1, torch.full_like(ids, -1))
    delta = torch.zeros_like(color)
    total = torch.zeros_like(color[..., :1])
    for axis in (0, 1):
        if (w if axis == 0 else h) < 2:
            continue
        if axis == 0:
            sl0, sl1 = (slice(None), slice(None), slice(0, w - 1)), (slice(None), slice(None), slice(1, w))
            x0 = torch.arange(w - 1, device=rast.device, dtype=pos.dtype).view(1, 1, -1)
            y0 = torch.arange(h, device=rast.device, dtype=pos.dtype).view(1, -1, 1)
        else:
            sl0, sl1 = (slice(None), slice(0, h - 1)), (slice(None), slice(1, h))
            x0 = torch.arange(w, device=rast.device, dtype=pos.dtype).view(1, 1, -1)
            y0 = torch.arange(h - 1, device=rast.device, dtype=pos.dtype).view(1, -1, 1)
        t0, t1 = tri_id[sl0], tri_id[sl1]
        z0, z1 = rast[sl0][..., 2].detach(), rast[sl1][..., 2].detach()
        front0 = (t0 >= 0) & ((t1 < 0) | ~(z1 < z0))
        t = torch.where(front0, t0, t1).clamp(min=0)
        bi = batch.view(-1, 1, 1).expand_as(t)
        fac = facing[bi, t]
        active = (t0 != t1) & (fac != 0)
        cb = (y0 if axis == 0 else x0) + 0.5
        cf = (x0 if axis == 0 else y0) + 0.5 + (~front0).to(pos.dtype)
        direction = torch.where(front0, 1.0, -1.0).to(pos.dtype)
        found = torch.zeros_like(active)
        s_sel = torch.zeros(t.shape, dtype=pos.dtype, device=rast.device)
        for k in range(3):
            ia, ib = tri_l[t, k], tri_l[t, (k + 1) % 3]
            adj = topo[t, k]
            adj_ok = (adj >= 0) & (adj < n_tri)
            adj_fac = torch.where(adj_ok, facing[bi, adj.clamp(0, max(n_tri - 1, 0))], torch.zeros_like(fac))
            silhouette = ~adj_ok | (adj_fac != fac)
            sa, va = _screen(pos[bi, ia], w, h)
            sb, vb = _screen(pos[bi, ib], w, h)
            aa, ab, ba, bb = sa[..., axis], sa[..., 1 - axis], sb[..., axis], sb[..., 1 - axis]
            crosses = ((ab <= cb) & (cb < bb)) | ((bb <= cb) & (cb < ab))
            d = torch.where(crosses, bb - ab, torch.ones_like(ab))
            tt = (cb - ab) / d
            s = (aa + tt * (ba - aa) - cf) * direction
            ok = active & ~found & silhouette & va & vb & crosses & (s >= 0) & (s <= 1)
            s_sel = torch.where(ok, s, s_sel)
            found = found | ok
        far = s_sel >= 0.5
        alpha = torch.where(far, s_sel - 0.5, 0.5 - s_sel)[..., None]
        target_p1 = (far == front0) & found  # the other pixel is p1 exactly when p0 is in front
        target_p0 = (far != front0) & found
        c0, c1 = color[sl0], color[sl1]
        zero = torch.zeros_like(c0)
        d1 = torch.where(target_p1[..., None], alpha * (c0 - c1), zero)
        d0 = torch.where(target_p0[..., None], alpha * (c1 - c0), zero)
        a1 = torch.where(target_p1[..., None], alpha, torch.zeros_like(alpha))
        a0 = torch.where(target_p0[..., None], alpha, torch.zeros_like(alpha))
        pad0 = (0, 0, 0, 1) if axis == 0 else (0, 0, 0, 0, 0, 1)
        pad1 = (0, 0, 1, 0) if axis == 0 else (0, 0, 0, 0, 1, 0)
        pad = torch.nn.functional.pad
        delta = delta + pad(d0, pad0) + pad(d1, pad1)
        total = total + pad(a0, pad0) + pad(a1, pad1)
    return color + delta / total.clamp(min=1.0)
