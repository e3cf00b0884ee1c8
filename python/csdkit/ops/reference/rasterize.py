"""Pure-PyTorch reference of the triangle rasterizer (see ``cpp/include/csdkit/raster.h``).

This file is the executable specification of :func:`csdkit.ops.rasterize`. The compiled kernels
reproduce its coverage decisions bit for bit (integer edge functions) and its floating-point
outputs to rounding.

Algorithm, per image:

1. **Guard band.** A vertex ``p = (x, y, z, w)`` is *projectable* when ``w > 0`` and it lies inside
   the four guard-band planes ``g_x w - x >= 0``, ``g_x w + x >= 0``, ``g_y w - y >= 0``,
   ``g_y w + y >= 0`` with ``g = 2**21 / size - 1`` (the band reaches 2**20 pixels around the
   image). A triangle with an unprojectable vertex is clipped against those planes in homogeneous
   space (Sutherland-Hodgman; an intersection is always computed from the inside vertex towards the
   outside one, so neighbours that share the clipped edge produce bitwise identical points) and
   fan-triangulated. Triangles whose clipped polygon still has a vertex with ``w <= 0`` are dropped.
2. **Snapping.** Projected vertices are snapped to a fixed-point pixel grid with 8 sub-pixel bits:
   ``X = floor((x / w * 0.5 + 0.5) * W * 256 + 0.5)`` (in float64), likewise ``Y`` with ``H``.
   Pixel ``(px, py)`` has its centre at ``(256 px + 128, 256 py + 128)``; row ``py = 0`` is NDC
   ``y = -1``.
3. **Coverage.** Exact int64 edge functions with a tie rule: a pixel centre on an edge belongs to
   the triangle for which that edge is an *owner* edge (``dy > 0`` or ``dy == 0 and dx < 0`` after
   orienting the triangle counter-clockwise). Every pixel centre inside a closed mesh's silhouette
   is therefore covered exactly once per layer: no cracks, no double hits. Triangles with zero
   snapped area cover nothing. No back-face culling.
4. **Depth.** ``z/w`` of the vertices, interpolated with the snapped screen-space barycentrics
   ``d = d0 + l1 (d1 - d0) + l2 (d2 - d0)``. Fragments with ``d`` outside ``[-1, 1]`` are
   discarded (OpenGL near/far clipping); the nearest fragment wins, ties go to the lower triangle
   index.
5. **Resolve.** For the winning triangle, perspective-correct barycentrics of the pixel centre
   ``(fx, fy) = ((2 px + 1) / W - 1, (2 py + 1) / H - 1)`` from the *unsnapped* clip-space vertices
   (homogeneous 2D edge functions, as in Olano & Greer 1997):
   ``q_i = (x_i - fx w_i, y_i - fy w_i)``, ``a_0 = q_1 x q_2``, ``a_1 = q_2 x q_0``,
   ``a_2 = q_0 x q_1``, ``u = a_0 / sum(a)``, ``v = a_1 / sum(a)``,
   ``z/w = sum(a_i z_i) / sum(a_i w_i)``. These are differentiable w.r.t. the vertex positions.
"""

from __future__ import annotations

import torch

SUBPIXEL_BITS = 8
SUBPIXEL = 1 << SUBPIXEL_BITS
GUARD_BAND_PIXELS = 1 << 20
_CHUNK_ELEMS = 1 << 22  # pixels x triangles evaluated at once by the dense coverage test


def guard_band(size: int) -> float:
    """Guard-band half-width in NDC units for an image axis of ``size`` pixels."""
    return float(2 * GUARD_BAND_PIXELS) / float(size) - 1.0


def clip_distances(p: torch.Tensor, gx: float, gy: float) -> torch.Tensor:
    """Signed distances ``[..., 4]`` of clip-space points ``p [..., 4]`` to the guard-band planes."""
    x, y, w = p[..., 0], p[..., 1], p[..., 3]
    return torch.stack([gx * w - x, gx * w + x, gy * w - y, gy * w + y], dim=-1)


def _clip_polygon(poly: list[torch.Tensor], gx: float, gy: float) -> list[torch.Tensor]:
    """Sutherland-Hodgman clipping of a polygon (list of ``[4]`` points) by the guard band."""
    for k in range(4):
        if not poly:
            break
        dist = [clip_distances(p, gx, gy)[k] for p in poly]  # 0-dim tensors, in the points' dtype
        out: list[torch.Tensor] = []
        n = len(poly)
        for i in range(n):
            a, b = poly[i], poly[(i + 1) % n]
            da, db = dist[i], dist[(i + 1) % n]
            if da >= 0:
                out.append(a)
            if bool(da >= 0) != bool(db >= 0):
                # Always from the inside point towards the outside one (bitwise reproducible).
                (pi, di), (po, do) = ((a, da), (b, db)) if da >= 0 else ((b, db), (a, da))
                t = di / (di - do)
                out.append(pi + t * (po - pi))
        poly = out
    return poly


def snap(p: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fixed-point screen position (int64 ``X``, ``Y``) and ``z/w`` (p's dtype) of points ``[..., 4]``."""
    pd = p.double()
    x = torch.floor((pd[..., 0] / pd[..., 3] * 0.5 + 0.5) * float(width * SUBPIXEL) + 0.5).long()
    y = torch.floor((pd[..., 1] / pd[..., 3] * 0.5 + 0.5) * float(height * SUBPIXEL) + 0.5).long()
    return x, y, p[..., 2] / p[..., 3]


def screen_triangles(pos: torch.Tensor, tri: torch.Tensor, width: int, height: int):
    """Snapped screen-space triangles of one image, after guard-band clipping.

    Args:
        pos: ``[V, 4]`` clip-space positions (float32 or float64).
        tri: ``[T, 3]`` int64 vertex indices.

    Returns:
        ``(X [N, 3] int64, Y [N, 3] int64, Z [N, 3] z/w in pos.dtype, parent [N] int64)`` sorted by
        parent triangle index (clipped triangles contribute their fan in order).
    """
    gx, gy = guard_band(width), guard_band(height)
    verts = pos[tri]  # [T, 3, 4]
    dist = clip_distances(verts, gx, gy)
    ok = (verts[..., 3] > 0) & (dist >= 0).all(-1)  # [T, 3]
    fast = ok.all(-1)
    xs, ys, zs = snap(verts, width, height)
    X, Y, Z = [xs[fast]], [ys[fast]], [zs[fast]]
    parent = [torch.nonzero(fast).flatten()]
    for t in torch.nonzero(~fast).flatten().tolist():
        poly = _clip_polygon([verts[t, i] for i in range(3)], gx, gy)
        if len(poly) < 3 or any(float(p[3]) <= 0 for p in poly):
            continue
        fan = torch.stack([torch.stack([poly[0], poly[i], poly[i + 1]]) for i in range(1, len(poly) - 1)])
        fx, fy, fz = snap(fan, width, height)
        X.append(fx)
        Y.append(fy)
        Z.append(fz)
        parent.append(torch.full((fan.shape[0],), t, dtype=torch.long))
    X, Y, Z, parent = torch.cat(X), torch.cat(Y), torch.cat(Z), torch.cat(parent)
    order = torch.sort(parent, stable=True).indices
    return X[order], Y[order], Z[order], parent[order]


def _oriented(X, Y, Z, parent):
    """Drop zero-area triangles and orient the rest counter-clockwise (swap vertices 1 and 2)."""
    area = (X[:, 1] - X[:, 0]) * (Y[:, 2] - Y[:, 0]) - (Y[:, 1] - Y[:, 0]) * (X[:, 2] - X[:, 0])
    keep = area != 0
    X, Y, Z, parent, area = X[keep], Y[keep], Z[keep], parent[keep], area[keep]
    flip = area < 0
    swap = torch.tensor([0, 2, 1])
    X = torch.where(flip[:, None], X[:, swap], X)
    Y = torch.where(flip[:, None], Y[:, swap], Y)
    Z = torch.where(flip[:, None], Z[:, swap], Z)
    return X, Y, Z, parent, area.abs()


def _fragments(x, y, z, area, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Coverage ``[H*W, n]`` (fill rule and depth clip) and depth ``[H*W, n]`` of oriented triangles."""
    cx = torch.arange(width, dtype=torch.long) * SUBPIXEL + SUBPIXEL // 2
    cy = torch.arange(height, dtype=torch.long) * SUBPIXEL + SUBPIXEL // 2
    PX = cx.expand(height, width).reshape(-1, 1)
    PY = cy[:, None].expand(height, width).reshape(-1, 1)
    e = []
    inside = torch.ones(PX.shape[0], x.shape[0], dtype=torch.bool)
    for i in range(3):
        j, k = (i + 1) % 3, (i + 2) % 3  # edge i runs from vertex j to vertex k
        dx, dy = x[:, k] - x[:, j], y[:, k] - y[:, j]
        owner = (dy > 0) | ((dy == 0) & (dx < 0))
        ei = dx * (PY - y[:, j]) - dy * (PX - x[:, j])  # [P, n], exact in int64
        inside &= (ei > 0) | ((ei == 0) & owner)
        e.append(ei)
    # Depth from the screen-space barycentrics of the snapped triangle.
    inv = 1.0 / area.to(z.dtype)
    l1 = e[1].to(z.dtype) * inv
    l2 = e[2].to(z.dtype) * inv
    d = z[:, 0] + l1 * (z[:, 1] - z[:, 0])
    d = d + l2 * (z[:, 2] - z[:, 0])
    inside &= (d >= -1.0) & (d <= 1.0)
    return inside, d


def coverage(X: torch.Tensor, Y: torch.Tensor, Z: torch.Tensor, parent: torch.Tensor, width: int,
             height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth-tested coverage of snapped triangles: ``(triangle id + 1 [H, W] int64, depth [H, W])``."""
    best_d = torch.full((height * width,), float("inf"), dtype=Z.dtype)
    best_id = torch.zeros(height * width, dtype=torch.long)
    X, Y, Z, parent, area = _oriented(X, Y, Z, parent)
    chunk = max(1, _CHUNK_ELEMS // max(1, height * width))
    for s in range(0, X.shape[0], chunk):
        sl = slice(s, s + chunk)
        inside, d = _fragments(X[sl], Y[sl], Z[sl], area[sl], width, height)
        d = torch.where(inside, d, torch.full_like(d, float("inf")))
        dmin, arg = d.min(dim=1)
        hit = torch.isfinite(dmin) & (dmin < best_d)
        best_d = torch.where(hit, dmin, best_d)
        best_id = torch.where(hit, parent[s:s + chunk][arg] + 1, best_id)
    return best_id.view(height, width), best_d.view(height, width)


def coverage_masks(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Per-triangle coverage ``[T, H, W]`` (bool) of one image ``pos [V, 4]``, without depth test.

    A pixel is in triangle t's mask when the fill rule assigns its centre to (a piece of) t and the
    fragment's depth lies in [-1, 1]. Used to check watertightness: for a closed mesh every pixel
    is covered by an even number of triangles.
    """
    height, width = resolution
    X, Y, Z, parent = screen_triangles(pos.detach().cpu(), tri.long().cpu(), width, height)
    X, Y, Z, parent, area = _oriented(X, Y, Z, parent)
    masks = torch.zeros(tri.shape[0], height * width, dtype=torch.bool)
    if X.shape[0] > 0:
        inside, _ = _fragments(X, Y, Z, area, width, height)
        masks.index_put_((parent,), inside.t(), accumulate=True)
    return masks.view(-1, height, width)


def pixel_centers(height: int, width: int, dtype: torch.dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """NDC coordinates of the pixel centres: ``fx [W]``, ``fy [H]`` (row 0 is NDC y = -1)."""
    fx = (torch.arange(width, dtype=dtype, device=device) * 2 + 1) / width - 1
    fy = (torch.arange(height, dtype=dtype, device=device) * 2 + 1) / height - 1
    return fx, fy


def resolve_reference(pos: torch.Tensor, tri: torch.Tensor, tri_id: torch.Tensor) -> torch.Tensor:
    """Perspective-correct ``(u, v, z/w, id + 1)`` of each pixel's triangle (differentiable in ``pos``).

    Args:
        pos: ``[B, V, 4]`` clip-space positions.
        tri: ``[T, 3]`` integer vertex indices.
        tri_id: ``[B, H, W]`` triangle index + 1 per pixel (0 = background), any numeric dtype.

    Returns:
        ``[B, H, W, 4]`` in pos's dtype; background pixels are all zero. ``u`` weights vertex 0 of
        the triangle, ``v`` vertex 1 and ``1 - u - v`` vertex 2 (nvdiffrast's convention).
    """
    b, h, w = tri_id.shape
    ids = tri_id.long()
    hit = ids > 0
    t = (ids - 1).clamp(min=0)
    vi = tri.long()[t]  # [B, H, W, 3]
    batch = torch.arange(b, device=pos.device).view(b, 1, 1, 1)
    p = pos[batch, vi]  # [B, H, W, 3, 4]
    fx, fy = pixel_centers(h, w, pos.dtype, pos.device)
    fx = fx.view(1, 1, w, 1)
    fy = fy.view(1, h, 1, 1)
    qx = p[..., 0] - fx * p[..., 3]
    qy = p[..., 1] - fy * p[..., 3]
    a0 = qx[..., 1] * qy[..., 2] - qy[..., 1] * qx[..., 2]
    a1 = qx[..., 2] * qy[..., 0] - qy[..., 2] * qx[..., 0]
    a2 = qx[..., 0] * qy[..., 1] - qy[..., 0] * qx[..., 1]
    a = torch.stack([a0, a1, a2], dim=-1)
    det = a0 + a1 + a2
    wsum = (a * p[..., 3]).sum(-1)
    bad = ~hit | (det == 0) | (wsum == 0) | ~torch.isfinite(det) | ~torch.isfinite(wsum)
    a = torch.where(bad[..., None], torch.ones_like(a), a)
    det = a.sum(-1)
    u = a[..., 0] / det
    v = a[..., 1] / det
    zw = (a * p[..., 2]).sum(-1) / (a * p[..., 3]).sum(-1)
    out = torch.stack([u, v, zw, ids.to(pos.dtype)], dim=-1)
    return torch.where(hit[..., None], out, torch.zeros_like(out))


def rasterize_reference(pos: torch.Tensor, tri: torch.Tensor, resolution: tuple[int, int]) -> torch.Tensor:
    """Reference of :func:`csdkit.ops.rasterize`: ``pos [B, V, 4]``, ``tri [T, 3]`` -> ``[B, H, W, 4]``.

    Slow (dense pixels x triangles evaluation): for tests and small images only. The output's
    ``(u, v, z/w)`` channels are differentiable w.r.t. ``pos`` through autograd.
    """
    height, width = resolution
    tri64 = tri.long().cpu()
    ids = []
    with torch.no_grad():
        for b in range(pos.shape[0]):
            X, Y, Z, parent = screen_triangles(pos[b].detach().cpu(), tri64, width, height)
            ids.append(coverage(X, Y, Z, parent, width, height)[0])
    tri_id = torch.stack(ids).to(pos.device)
    return resolve_reference(pos, tri, tri_id)
