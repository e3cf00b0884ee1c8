"""``csdkit.MeshRenderer``: differentiable rendering of a :class:`~csdkit.Mesh` from a batch of cameras.

One ``render`` call rasterizes the mesh for every camera (csdkit's rasterizer, or nvdiffrast on
CUDA), interpolates positions, normals and UVs, looks up the albedo (texture, vertex colours or a
constant), shades it and composites it over a background. All outputs are ``[B, H, W, C]`` with
**row 0 at the top** of the image (the renderer mirrors clip-space y before rasterizing, so no
image is flipped afterwards).

Gradients: ``rgb``/``albedo`` are differentiable w.r.t. the texture (the mesh's or the
``texture=`` argument: this is what texture optimization uses), the vertex colours, and the vertex
positions inside triangles (through barycentrics and normals). Visibility and ``mask`` have no
gradient at silhouettes; with ``MeshRenderer(antialias=True)`` the ``rgb`` image and the ``alpha``
coverage are antialiased (:func:`csdkit.ops.antialias`), which blends silhouette pixels by the edge's
sub-pixel position and so gives the vertex positions a gradient from the outline too (what shape
optimization needs).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..geometry.mesh import Mesh
from ..ops._checks import check_choice, check_float, check_int, describe
from ..ops.reference.texture import BOUNDARIES, FILTERS
from .cameras import Cameras
from .protocols import TexturedSurface
from .raster_backends import BACKENDS, select_backend


def barycentrics_in_triangle(rast: torch.Tensor) -> torch.Tensor:
    """``rast [B, H, W, 4]`` with each covered pixel's barycentrics moved onto its triangle.

    Coverage is decided on the rasterizer's snapped sub-pixel grid, the barycentrics from the exact
    vertex positions (:func:`csdkit.ops.rasterize`). For a sliver triangle (DMTet makes many) the two
    disagree: a pixel centre inside the snapped triangle can lie outside the exact one, with
    barycentrics like ``(-2.6, 3.5, 0.1)``, and interpolating there extrapolates colours, normals and
    UVs past the triangle's vertices (a render with values below 0). Such pixels get the barycentrics
    clamped at 0 and renormalized to sum 1 (differentiable; the clamped weights get no gradient).
    Pixels whose barycentrics are in the triangle are returned unchanged, bit for bit.
    """
    u, v = rast[..., 0], rast[..., 1]
    weights = torch.stack([u, v, 1 - u - v], dim=-1)
    outside = (rast[..., 3] > 0) & (weights < 0).any(-1)
    if not bool(outside.any()):
        return rast
    clamped = weights.clamp_min(0)
    clamped = clamped / clamped.sum(-1, keepdim=True).clamp_min(1e-30)
    fixed = torch.cat([clamped[..., :2], rast[..., 2:]], dim=-1)
    return torch.where(outside[..., None], fixed, rast)

__all__ = ["MeshRenderer", "SHADINGS", "barycentrics_in_triangle"]

#: Shading modes of :meth:`MeshRenderer.render`.
SHADINGS = ("albedo", "lambertian", "textureless", "normal")
_FN = "MeshRenderer.render"


def _resolution(resolution) -> tuple[int, int]:
    if isinstance(resolution, int) and not isinstance(resolution, bool):
        resolution = (resolution, resolution)
    if not isinstance(resolution, (tuple, list)) or len(resolution) != 2:
        raise TypeError(f"MeshRenderer(): resolution must be an int or (H, W), got {resolution!r}")
    return (check_int("MeshRenderer", "resolution[0] (height)", resolution[0], min_value=1, max_value=16384),
            check_int("MeshRenderer", "resolution[1] (width)", resolution[1], min_value=1, max_value=16384))


class MeshRenderer:
    """Renders meshes into ``[B, H, W, C]`` images (row 0 at the top).

    Args:
        resolution: image size ``(H, W)`` or an int for square images.
        backend: ``"auto"`` (nvdiffrast for CUDA tensors when it is installed, else csdkit),
            ``"csdkit"`` (CPU and CUDA) or ``"nvdiffrast"`` (CUDA only).
        texture_filter: :func:`csdkit.ops.texture` filter; ``"linear-mipmap-linear"`` (default)
            uses analytic UV derivatives so distant, minified textures do not alias.
        texture_boundary: ``"wrap"`` (default; tiling UVs repeat), ``"clamp"`` or ``"zero"``.
        default_color: albedo of meshes without texture and vertex colours (a number or RGB).
        antialias: antialias ``rgb`` and ``alpha`` at silhouettes (:func:`csdkit.ops.antialias`, or
            nvdiffrast's); off by default, since it costs a pass and blurs outlines by up to half a pixel.
    """

    def __init__(self, resolution: int | tuple[int, int] = 512, backend: str = "auto", *,
                 texture_filter: str = "linear-mipmap-linear", texture_boundary: str = "wrap",
                 default_color: float | Sequence[float] = 0.8, antialias: bool = False) -> None:
        self.resolution = _resolution(resolution)
        check_choice("MeshRenderer", "backend", backend, BACKENDS)
        check_choice("MeshRenderer", "texture_filter", texture_filter, FILTERS)
        check_choice("MeshRenderer", "texture_boundary", texture_boundary, BOUNDARIES)
        self.backend = backend
        self.texture_filter = texture_filter
        self.texture_boundary = texture_boundary
        dc = torch.as_tensor(default_color, dtype=torch.float64).reshape(-1)
        if dc.numel() not in (1, 3) or not bool(torch.isfinite(dc).all()):
            raise ValueError(f"MeshRenderer(): default_color must be a number or 3 numbers, "
                             f"got {default_color!r}")
        self.default_color = dc.expand(3).clone()
        if not isinstance(antialias, bool):
            raise TypeError(f"MeshRenderer(): antialias must be True or False, got {antialias!r}")
        self.antialias = antialias
        self._backends: dict = {}
        self._topology: tuple | None = None  # (backend name, faces, topology) of the last antialiased mesh

    def __repr__(self) -> str:
        h, w = self.resolution
        return (f"MeshRenderer(resolution=({h}, {w}), backend={self.backend!r}, "
                f"texture_filter={self.texture_filter!r}, antialias={self.antialias})")

    def backend_for(self, device: torch.device | str) -> str:
        """The backend name ``render`` uses for tensors on ``device``."""
        return select_backend(self.backend, torch.device(device), self._backends).name

    # ---- argument handling ----------------------------------------------------------------------
    @staticmethod
    def _texture_arg(texture, mesh: Mesh, batch: int, device: torch.device) -> torch.Tensor | None:
        if texture is None:
            return None if mesh.texture is None else mesh.texture[None]
        if not isinstance(texture, torch.Tensor) or not texture.is_floating_point():
            got = describe(texture) if isinstance(texture, torch.Tensor) else type(texture).__name__
            raise TypeError(f"{_FN}(): texture must be a float tensor [H, W, 3] or [B, H, W, 3], got {got}")
        tex = texture[None] if texture.dim() == 3 else texture
        if tex.dim() != 4 or tex.shape[0] not in (1, batch) or tex.shape[-1] < 1:
            raise ValueError(f"{_FN}(): texture must be [H, W, C] or [B, H, W, C] with B = {batch} (the "
                             f"number of cameras) or 1, got {describe(texture)}")
        if tex.device != device:
            raise ValueError(f"{_FN}(): texture must be on {device} (the cameras' device), "
                             f"got {describe(texture)}")
        if mesh.uv is None:
            raise ValueError(f"{_FN}(): a texture was given but the mesh has no UVs; run "
                             "csdkit.uv.unwrap_uv(mesh) first")
        return tex

    @staticmethod
    def _background(background, batch: int, h: int, w: int, dtype, device, generator) -> torch.Tensor:
        if isinstance(background, str):
            check_choice(_FN, "background", background, ("white", "black", "random"))
            if background == "random":
                return torch.rand(batch, 1, 1, 3, generator=generator, dtype=torch.float32).to(device, dtype)
            return torch.full((1, 1, 1, 3), 1.0 if background == "white" else 0.0, dtype=dtype, device=device)
        if isinstance(background, (int, float)) and not isinstance(background, bool):
            return torch.full((1, 1, 1, 3), float(background), dtype=dtype, device=device)
        try:
            bg = torch.as_tensor(background, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{_FN}(): background must be 'white', 'black', 'random', a number, RGB, "
                            f"[B, 3] or [B, H, W, 3], got {type(background).__name__}") from exc
        shapes = {(3,): (1, 1, 1, 3), (batch, 3): (batch, 1, 1, 3), (h, w, 3): (1, h, w, 3),
                  (batch, h, w, 3): (batch, h, w, 3), (1, h, w, 3): (1, h, w, 3)}
        if tuple(bg.shape) not in shapes:
            raise ValueError(f"{_FN}(): background must be RGB [3], [B, 3], [H, W, 3] or [B, H, W, 3] with "
                             f"B={batch}, H={h}, W={w}, got shape {list(bg.shape)}")
        return bg.reshape(shapes[tuple(bg.shape)])

    # ---- rendering ------------------------------------------------------------------------------
    def render(self, mesh: Mesh | TexturedSurface, cameras: Cameras, *, shading: str = "albedo",
               texture: torch.Tensor | None = None,
               background: str | float | Sequence[float] | torch.Tensor = "white",
               light_dir: Sequence[float] | torch.Tensor | None = None, ambient: float = 0.3,
               diffuse: float = 0.7, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Render ``mesh`` from every camera.

        Args:
            mesh: a :class:`~csdkit.Mesh` (moved to the cameras' device; float32 or float64
                vertices), or a :class:`~csdkit.render.TexturedSurface` such as
                :class:`csdkit.uv.TexturedMesh`: its ``texture_image()`` is sampled like ``texture=``;
                a continuous field (``texture_image()`` None) is evaluated at every covered pixel's UV
                through ``texture_at_uv`` and multiplies the shading.
            cameras: ``B`` :class:`~csdkit.Cameras`; their device is where rendering happens.
            shading: ``"albedo"`` (unlit colour), ``"lambertian"`` (albedo x (ambient + diffuse x
                max(0, n.l))), ``"textureless"`` (lambertian on white) or ``"normal"`` (world normals
                mapped to [0, 1]).
            texture: optional ``[Ht, Wt, C]`` or ``[B, Ht, Wt, C]`` float tensor on the cameras' device
                that replaces ``mesh.texture`` (same conventions: row 0 at the top, UV origin at the
                bottom-left). Gradients flow from ``rgb`` into it.
            background: ``"white"``, ``"black"``, ``"random"`` (one colour per view), a number, RGB
                ``[3]``, ``[B, 3]``, or an image ``[H, W, 3]`` / ``[B, H, W, 3]``.
            light_dir: direction *towards* the light in world space, ``[3]`` or ``[B, 3]``; None: a
                headlight along each camera's viewing axis.
            ambient, diffuse: lambertian weights.
            generator: random generator (CPU) for ``background="random"``.

        Returns:
            dict of tensors on the cameras' device, in the vertices' dtype unless noted:

            * ``rgb [B, H, W, 3]``: shaded colour composited over the background.
            * ``albedo [B, H, W, 3]``: unshaded colour (0 outside the mesh).
            * ``normal [B, H, W, 3]``: unit world-space normal, turned towards the camera (0 outside).
            * ``depth [B, H, W, 1]``: distance along the camera's viewing axis (0 outside).
            * ``mask [B, H, W, 1]``: 1 where the mesh covers the pixel centre, else 0.
            * ``alpha [B, H, W, 1]``: coverage; ``mask`` antialiased at silhouettes (differentiable
              w.r.t. the vertex positions there) when the renderer antialiases, else ``mask`` itself.
            * ``position [B, H, W, 3]``: world-space surface point (0 outside).
            * ``triangle_id [B, H, W]`` int64: face index, -1 outside.
            * ``uv [B, H, W, 2]``: texture coordinates (mesh convention; 0 outside), only for meshes with UVs.
        """
        kwargs = {"shading": shading, "background": background, "light_dir": light_dir, "ambient": ambient,
                  "diffuse": diffuse, "generator": generator}
        if isinstance(mesh, Mesh):
            out = self._render_mesh(mesh, cameras, texture=texture, **kwargs)
        elif not isinstance(mesh, TexturedSurface):
            raise TypeError(f"{_FN}(): mesh must be a csdkit.Mesh or follow csdkit.render.TexturedSurface "
                            f"(e.g. csdkit.uv.TexturedMesh), got {type(mesh).__name__}")
        elif texture is not None:
            raise ValueError(f"{_FN}(): texture= replaces a Mesh's texture; a {type(mesh).__name__} brings "
                             "its own (texture_image / texture_at_uv)")
        else:
            surface, image = mesh, mesh.texture_image()
            if image is not None:
                out = self._render_mesh(surface.surface_mesh, cameras, texture=image, **kwargs)
            else:
                out = self._render_field(surface, surface.surface_mesh, cameras, **kwargs)
        backend, rast, pos, tri = out.pop("_raster")
        if not self.antialias:
            out["alpha"] = out["mask"]
            return out
        smooth = backend.antialias(torch.cat([out["rgb"], out["mask"]], dim=-1), rast, pos, tri,
                                   self._topology_for(backend, tri))
        out["rgb"], out["alpha"] = smooth[..., :3], smooth[..., 3:]
        return out

    def _topology_for(self, backend, tri: torch.Tensor):
        """The backend's antialiasing topology of ``tri``, reused while the same faces are rendered."""
        cached = self._topology
        if cached is not None and cached[0] == backend.name and cached[1].shape == tri.shape \
                and cached[1].device == tri.device and torch.equal(cached[1], tri):
            return cached[2]
        topology = backend.antialias_topology(tri)
        self._topology = (backend.name, tri.clone(), topology)
        return topology

    def _render_field(self, surface: TexturedSurface, mesh: Mesh, cameras: Cameras, **kwargs) -> dict:
        """A continuous texture field: shade with unit albedo, then put the field's colour at each pixel's UV."""
        white = torch.ones(1, 1, 3, device=cameras.device)
        out = dict(self._render_mesh(mesh, cameras, texture=white, **kwargs))
        mask = out["mask"]
        colors = surface.texture_at_uv(out["uv"]) * mask
        if kwargs["shading"] in ("albedo", "lambertian"):
            # rgb = shade * albedo over the background: replace the unit albedo by the field's colour.
            shade = torch.where(mask > 0, out["rgb"], torch.zeros_like(out["rgb"]))
            out["rgb"] = shade * colors + out["rgb"] * (1 - mask)
        out["albedo"] = colors
        return out

    def _render_mesh(self, mesh: Mesh, cameras: Cameras, *, shading: str, texture: torch.Tensor | None,
                     background, light_dir, ambient: float, diffuse: float,
                     generator: torch.Generator | None) -> dict[str, torch.Tensor]:
        if not isinstance(cameras, Cameras):
            raise TypeError(f"{_FN}(): cameras must be csdkit.Cameras, got {type(cameras).__name__}")
        check_choice(_FN, "shading", shading, SHADINGS)
        ambient = check_float(_FN, "ambient", ambient)
        diffuse = check_float(_FN, "diffuse", diffuse)
        device = cameras.device
        mesh = mesh.to(device)
        batch, (h, w) = len(cameras), self.resolution
        tex = self._texture_arg(texture, mesh, batch, device)
        dtype = mesh.vertices.dtype
        backend = select_backend(self.backend, device, self._backends)

        # Clip space, with y mirrored so that rasterizer row 0 is the top of the image.
        v = mesh.vertices
        mvp = cameras.mvp(w / h).to(dtype)
        pos = torch.cat([v, torch.ones_like(v[:, :1])], dim=1) @ mvp.transpose(1, 2)  # [B, V, 4]
        pos_r = pos * torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=dtype, device=device)
        tri = mesh.faces_int32
        rast_raw, rast_db = backend.rasterize(pos_r, tri, (h, w))
        rast = barycentrics_in_triangle(rast_raw)
        hit = rast[..., 3:4] > 0
        mask = hit.to(dtype)

        geo = backend.interpolate(torch.cat([v, mesh.vertex_normals()], dim=1)[None], rast, tri)
        position = geo[..., :3]
        normal = torch.nn.functional.normalize(geo[..., 3:6], dim=-1)
        toward_cam = cameras.position.to(dtype)[:, None, None, :] - position
        facing = (normal * toward_cam).sum(-1, keepdim=True) >= 0
        normal = torch.where(facing, normal, -normal)  # interpolate() gives 0 outside: stays 0
        depth = backend.interpolate(pos[..., 3:4].contiguous(), rast, tri)  # clip w = view depth

        out: dict[str, torch.Tensor] = {}
        uv_t = uv_da = None
        if mesh.uv is not None:
            uv = mesh.uv.to(dtype)
            uv_attr = torch.stack([uv[:, 0], 1.0 - uv[:, 1]], dim=-1)  # texture-op convention: v = row
            if tex is not None and self.texture_filter.startswith("linear-mipmap"):
                uv_t, uv_da = backend.interpolate_with_da(uv_attr, mesh.face_uv_int32, rast, rast_db,
                                                          pos_r, tri)
            else:
                uv_t = backend.interpolate(uv_attr[None], rast, mesh.face_uv_int32)
            out["uv"] = torch.stack([uv_t[..., 0], mask[..., 0] - uv_t[..., 1]], dim=-1)  # 0 outside

        if shading == "textureless":
            albedo = mask.expand(-1, -1, -1, 3)
        elif tex is not None:
            albedo = backend.texture(tex.to(dtype), uv_t, uv_da, self.texture_filter, self.texture_boundary)
            albedo = albedo * mask  # texels were looked up for background pixels too
        elif mesh.vertex_colors is not None:
            albedo = backend.interpolate(mesh.vertex_colors.to(dtype)[None], rast, tri)  # 0 outside
        else:
            albedo = self.default_color.to(device, dtype) * mask

        if shading == "albedo":
            fg = albedo
        elif shading == "normal":
            fg = (normal + 1.0) * 0.5 * mask
        else:
            if light_dir is None:
                light = cameras.c2w[:, :3, 2].to(dtype)  # camera +Z: from the scene towards the camera
            else:
                light = torch.as_tensor(light_dir, dtype=dtype, device=device).reshape(-1, 3)
                if light.shape[0] not in (1, batch):
                    raise ValueError(f"{_FN}(): light_dir must be [3] or [B, 3] with B = {batch}, "
                                     f"got shape {list(torch.as_tensor(light_dir).shape)}")
            light = torch.nn.functional.normalize(light, dim=-1)[:, None, None, :]
            lambert = (normal * light).sum(-1, keepdim=True).clamp_min(0.0)
            fg = albedo * (ambient + diffuse * lambert)

        bg = self._background(background, batch, h, w, dtype, device, generator)
        out.update({
            "rgb": torch.lerp(bg.expand_as(fg), fg, mask),  # fg where covered, else the background
            "albedo": albedo,
            "normal": normal,
            "depth": depth,
            "mask": mask,
            "position": position,
            "triangle_id": rast[..., 3].detach().round().long() - 1,
            "_raster": (backend, rast_raw, pos_r, tri),  # for the antialiasing pass in render()
        })
        return out
