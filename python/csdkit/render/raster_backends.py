"""Rasterization backends for :class:`csdkit.MeshRenderer`: csdkit's own ops, or nvdiffrast.

Both expose the same three calls with nvdiffrast's conventions, so the renderer is written once:

* ``rasterize(pos [B, V, 4], tri [T, 3] int32, (H, W)) -> (rast [B, H, W, 4], rast_db or None)``
* ``interpolate(attr [1|B, V, C], rast, tri) -> out [B, H, W, C]``
* ``interpolate_with_da(attr [Va, C], attr_tri [T, 3], rast, rast_db, pos [B, V, 4], tri [T, 3])
  -> (out [B, H, W, C], da [B, H, W, 2C])``: attributes indexed by their own triangles (UVs with
  ``face_uv``) plus their screen-space derivatives (for mip-mapping).
* ``texture(tex [B|1, Ht, Wt, C], uv [B, H, W, 2], uv_da, filter, boundary) -> [B, H, W, C]``
* ``antialias_topology(tri) -> topology`` (an opaque per-mesh object) and
  ``antialias(color [B, H, W, C], rast, pos [B, V, 4], tri, topology) -> [B, H, W, C]``

nvdiffrast is used only when it is importable and the tensors are on CUDA; it is detected
lazily (importing csdkit never imports it).
"""

from __future__ import annotations

import importlib

import torch

from .. import ops

__all__ = ["BACKENDS", "CsdkitBackend", "NvdiffrastBackend", "nvdiffrast_available", "select_backend"]

BACKENDS = ("auto", "csdkit", "nvdiffrast")


def nvdiffrast_available() -> bool:
    """True when ``nvdiffrast.torch`` can be imported (it still needs CUDA tensors to be used)."""
    try:
        importlib.import_module("nvdiffrast.torch")
    except Exception:  # ImportError, or a broken CUDA/driver setup raising at import
        return False
    return True


class CsdkitBackend:
    """csdkit's rasterizer (C++ CPU / CUDA kernels, or the pure-PyTorch reference without a build)."""

    name = "csdkit"

    def rasterize(self, pos, tri, resolution):
        return ops.rasterize(pos, tri, resolution), None

    def interpolate(self, attr, rast, tri):
        return ops.interpolate(attr, rast, tri)

    def interpolate_with_da(self, attr, attr_tri, rast, rast_db, pos, tri):
        # csdkit's interpolate derives screen-space derivatives from the positions of the
        # attribute's own vertices, so expand both to per-corner arrays (3 T entries, O(T) work).
        corners = torch.arange(3 * tri.shape[0], dtype=torch.int32, device=tri.device).reshape(-1, 3)
        attr_c = attr[attr_tri.reshape(-1).long()]
        pos_c = pos[:, tri.reshape(-1).long()]
        return ops.interpolate(attr_c, rast, corners, pos_clip=pos_c, return_da=True)

    def texture(self, tex, uv, uv_da, filter, boundary):
        return ops.texture(tex, uv, filter=filter, boundary=boundary, uv_da=uv_da)

    def antialias_topology(self, tri):
        return ops.antialias_topology(tri)

    def antialias(self, color, rast, pos, tri, topology):
        return ops.antialias(color, rast, pos, tri, topology=topology)


class NvdiffrastBackend:
    """``nvdiffrast.torch`` with a CUDA rasterizer context (float32 tensors on CUDA only)."""

    name = "nvdiffrast"

    def __init__(self, device: torch.device) -> None:
        try:
            self.dr = importlib.import_module("nvdiffrast.torch")
        except Exception as exc:
            raise ImportError(
                "MeshRenderer(backend='nvdiffrast'): nvdiffrast is not importable; install it from "
                "https://github.com/NVlabs/nvdiffrast (needs CUDA), or use backend='csdkit' "
                f"({type(exc).__name__}: {exc})") from exc
        self.ctx = self.dr.RasterizeCudaContext(device=device)

    def rasterize(self, pos, tri, resolution):
        rast, rast_db = self.dr.rasterize(self.ctx, pos.float().contiguous(), tri.contiguous(),
                                          list(resolution))
        return rast.to(pos.dtype), rast_db

    def interpolate(self, attr, rast, tri):
        if attr.dim() == 2:
            attr = attr[None]
        out, _ = self.dr.interpolate(attr.float().contiguous(), rast.float(), tri.contiguous())
        return out.to(attr.dtype)

    def interpolate_with_da(self, attr, attr_tri, rast, rast_db, pos, tri):
        out, da = self.dr.interpolate(attr[None].float().contiguous(), rast.float(), attr_tri.contiguous(),
                                      rast_db=rast_db, diff_attrs="all")
        return out.to(attr.dtype), da.to(attr.dtype)

    def texture(self, tex, uv, uv_da, filter, boundary):
        if tex.shape[0] != uv.shape[0]:
            tex = tex.expand(uv.shape[0], -1, -1, -1)
        out = self.dr.texture(tex.float().contiguous(), uv.float().contiguous(),
                              uv_da=None if uv_da is None else uv_da.float().contiguous(),
                              filter_mode=filter, boundary_mode=boundary)
        return out.to(uv.dtype)

    def antialias_topology(self, tri):
        return self.dr.antialias_construct_topology_hash(tri.contiguous())

    def antialias(self, color, rast, pos, tri, topology):
        out = self.dr.antialias(color.float().contiguous(), rast.float().contiguous(), pos.float().contiguous(),
                                tri.contiguous(), topology_hash=topology)
        return out.to(color.dtype)


def select_backend(name: str, device: torch.device, cache: dict):
    """The backend object for ``name`` on ``device`` (``auto``: nvdiffrast on CUDA when installed)."""
    if name == "auto":
        name = "nvdiffrast" if device.type == "cuda" and nvdiffrast_available() else "csdkit"
    if name == "csdkit":
        return cache.setdefault("csdkit", CsdkitBackend())
    if device.type != "cuda":
        raise ValueError(f"MeshRenderer(backend='nvdiffrast'): nvdiffrast needs CUDA tensors, but the "
                         f"cameras are on {device}; use backend='csdkit' (or 'auto') on the CPU")
    key = f"nvdiffrast:{device}"
    if key not in cache:
        cache[key] = NvdiffrastBackend(device)
    return cache[key]
