"""``VolumeRenderer``: images of a density field (e.g. :class:`csdkit.ImplicitVolume`) seen by cameras.

One render, for each pixel ray of each camera (:meth:`csdkit.Cameras.rays`, row 0 at the top):

1. **march** (:func:`csdkit.ops.march_rays`) through the geometry's box with a fixed step
   ``sqrt(3) * 2 * radius / n_samples_per_ray``, skipping cells the :class:`csdkit.OccupancyGrid`
   marks empty (stratified jitter of the first sample in training);
2. **cull** (exact): evaluate densities without gradients, composite, and drop the samples the
   compositing would skip anyway (those after the transmittance fell below ``early_stop_eps``,
   which get zero weight and zero gradient), so the expensive differentiable pass (albedo,
   normals, backward) only sees samples that contribute;
3. **shade** every sample with :mod:`csdkit.render.shading` (albedo, lambertian, textureless or
   normal) and **composite** (:func:`csdkit.ops.render_weight_from_density`,
   :func:`csdkit.ops.accumulate_along_rays`);
4. put the :mod:`background <csdkit.render.background>` behind: ``rgb + (1 - opacity) * bg(dirs)``.

A geometry is any object with a ``radius`` (its box is ``[-radius, radius]^3``), ``density(points)
-> [N]`` and ``__call__(points, with_normals) -> {"density", "albedo"[, "normal"]}``.
"""

from __future__ import annotations

import math

import torch

from ..ops._checks import check_float, check_int
from ..ops.compositing import accumulate_along_rays, render_weight_from_density
from ..ops.occupancy_grid import OccupancyGrid
from ..ops.ray_marching import march_rays
from .background import Background, as_background
from .cameras import Cameras
from .shading import NEEDS_LIGHTS, NEEDS_NORMALS, PointLights, check_shading, shade

_FN = "VolumeRenderer"
CPU_CHUNK_RAYS = 1 << 13  # the default chunk_rays on the CPU (cache-sized working sets)
GPU_CHUNK_RAYS = 1 << 16  # the default chunk_rays on a GPU


def _resolution(fn: str, value) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise TypeError(f"{fn}(): resolution must be an int or (height, width), got {value!r}")
    return (check_int(fn, "resolution[0]", value[0], min_value=1, max_value=8192),
            check_int(fn, "resolution[1]", value[1], min_value=1, max_value=8192))


def _geometry_dtype_device(geometry) -> tuple[torch.dtype, torch.device]:
    params = getattr(geometry, "parameters", None)
    p = next(iter(params()), None) if callable(params) else None
    return (p.dtype, p.device) if p is not None else (torch.float32, torch.device("cpu"))


class VolumeRenderer:
    """Differentiable volume renderer for density fields.

    Args:
        resolution: image size, an int (square) or ``(height, width)``.
        n_samples_per_ray: samples along the box diagonal; sets the marching step
            ``sqrt(3) * 2 * radius / n_samples_per_ray`` (default 512).
        grid: ``"auto"`` (default: an :class:`csdkit.OccupancyGrid` of ``grid_resolution^3`` cells
            over the geometry's box, made at the first :meth:`update_grid` or render), an
            ``OccupancyGrid`` of your own (same box as the geometry), or None (no empty-space
            skipping). The grid only skips space once :meth:`update_grid` has been called during
            training; a fresh grid marks every cell occupied.
        grid_resolution: cells per axis of an ``"auto"`` grid.
        background: a :class:`~csdkit.render.background.Background`, a colour, or None (white).
        stratified: jitter the samples in training (``torch.is_grad_enabled()``), not in eval.
        cone_angle: > 0 grows the step with distance (see :func:`csdkit.ops.march_rays`).
        early_stop_eps: transmittance below which a ray stops (exact culling, see module doc).
        normal_weight_eps: in renders without gradients (``torch.no_grad()``: previews, turntables,
            reports), normals are computed only for samples whose compositing weight is at least this;
            the others shade with a zero normal. A pixel then differs from the full render by at most
            the sum of those samples' weights (colours in [0, 1]). Normals cost six extra density
            evaluations per sample with finite differences, and most marched samples of a preview
            have a negligible weight. 0 computes every normal. Renders with gradients (training)
            always compute every normal.
        chunk_rays: rays rendered at once (bounds the memory of large no-grad renders). None (default):
            8192 on the CPU, where working sets that fit the caches render a 128 x 128 x 8 textureless
            turntable 2-3.4x faster than chunks of 65536 (docs/nerf.md), and 65536 on a GPU.

    Use :meth:`render`; call :meth:`update_grid` once per training step.
    """

    def __init__(
        self,
        resolution: int | tuple[int, int] = 64,
        n_samples_per_ray: int = 512,
        grid: OccupancyGrid | str | None = "auto",
        *,
        grid_resolution: int = 128,
        background: Background | float | tuple | None = None,
        stratified: bool = True,
        cone_angle: float = 0.0,
        early_stop_eps: float = 1e-4,
        normal_weight_eps: float = 1e-4,
        chunk_rays: int | None = None,
    ) -> None:
        self.resolution = _resolution(_FN, resolution)
        self.n_samples_per_ray = check_int(_FN, "n_samples_per_ray", n_samples_per_ray, min_value=1)
        if not (grid is None or grid == "auto" or isinstance(grid, OccupancyGrid)):
            raise TypeError(f"{_FN}(): grid must be 'auto', a csdkit.OccupancyGrid or None, got {grid!r}")
        self.grid = grid
        self.grid_resolution = check_int(_FN, "grid_resolution", grid_resolution, min_value=1, max_value=1024)
        self.background = as_background(background)
        self.stratified = bool(stratified)
        self.cone_angle = check_float(_FN, "cone_angle", cone_angle, min_value=0.0)
        self.early_stop_eps = check_float(_FN, "early_stop_eps", early_stop_eps, min_value=0.0, max_value=1.0)
        self.normal_weight_eps = check_float(_FN, "normal_weight_eps", normal_weight_eps, min_value=0.0,
                                             max_value=1.0)
        self.chunk_rays = None if chunk_rays is None else check_int(_FN, "chunk_rays", chunk_rays, min_value=1)

    # ---- geometry-dependent set-up ------------------------------------------------------------------
    def step_size(self, radius: float) -> float:
        """Marching step for a box of half side ``radius``: ``sqrt(3) * 2 * radius / n_samples_per_ray``."""
        return math.sqrt(3.0) * 2.0 * radius / self.n_samples_per_ray

    @staticmethod
    def _radius(fn: str, geometry) -> float:
        radius = getattr(geometry, "radius", None)
        if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not radius > 0:
            raise TypeError(f"{fn}(): geometry must have a positive float radius (e.g. "
                            f"csdkit.ImplicitVolume), got {type(geometry).__name__} with radius={radius!r}")
        if not callable(geometry) or not callable(getattr(geometry, "density", None)):
            raise TypeError(f"{fn}(): geometry must be callable and have density(points) "
                            f"(e.g. csdkit.ImplicitVolume), got {type(geometry).__name__}")
        return float(radius)

    def occupancy_grid(self, geometry) -> OccupancyGrid | None:
        """The grid used for ``geometry`` (creating the ``"auto"`` grid on first use)."""
        radius = self._radius(f"{_FN}.occupancy_grid", geometry)
        _, device = _geometry_dtype_device(geometry)
        if self.grid == "auto":
            self.grid = OccupancyGrid(radius, self.grid_resolution, step_size=self.step_size(radius),
                                      device=device)
        if isinstance(self.grid, OccupancyGrid):
            box = (-radius,) * 3 + (radius,) * 3
            if any(abs(a - b) > 1e-6 * radius for a, b in zip(self.grid.aabb, box, strict=True)):
                raise ValueError(f"{_FN}(): the occupancy grid covers {self.grid.aabb} but the geometry's "
                                 f"box is {box}; use one renderer (or grid) per geometry")
            if self.grid.device != device:
                self.grid = self.grid.to(device)
        return self.grid

    def update_grid(self, geometry, step: int, *, force: bool = False,
                    generator: torch.Generator | None = None) -> bool:
        """Refresh the occupancy grid from ``geometry.density`` (call once per training step).

        Follows :meth:`csdkit.OccupancyGrid.update` (acts every ``update_every`` steps, warm-up
        over all cells first). Returns True when the grid changed; False without a grid.
        """
        grid = self.occupancy_grid(geometry)
        if grid is None:
            return False
        dtype, _ = _geometry_dtype_device(geometry)
        return grid.update(step, lambda x: geometry.density(x.to(dtype)), force=force, generator=generator)

    # ---- rendering -------------------------------------------------------------------------------
    def render(
        self,
        geometry,
        cameras: Cameras,
        *,
        shading: str = "albedo",
        lights: PointLights | None = None,
        background: Background | float | tuple | None = None,
        with_normals: bool | None = None,
        resolution: int | tuple[int, int] | None = None,
        generator: torch.Generator | int | None = None,
    ) -> dict:
        """Render ``geometry`` from every camera.

        Args:
            geometry: e.g. :class:`csdkit.ImplicitVolume` (see module doc for the protocol).
            cameras: ``B`` :class:`csdkit.Cameras` on the geometry's device.
            shading: ``"albedo"``, ``"lambertian"``, ``"textureless"`` or ``"normal"``.
            lights: one :class:`PointLights` per camera for the lit modes; default a light at each
                camera centre (ambient 0.1, diffuse 0.9). Training uses ``PointLights.sample``.
            background: overrides the renderer's background for this call.
            with_normals: compute normals (default: when the shading needs them). Needed for the
                ``"normal"`` output and the orientation regularizer.
            resolution: overrides the renderer's resolution for this call.
            generator: seed or generator of the stratified jitter (training renders).

        Returns:
            dict of ``[B, H, W, C]`` tensors (geometry's dtype and device, row 0 at the top):
            ``rgb`` (C=3, background composited), ``opacity`` (C=1, sum of weights), ``depth``
            (C=1, expected distance along the unit ray, 0 where empty; divide by opacity for the
            surface depth), ``normal`` (C=3, weighted sum of world normals, when computed); and
            ``samples``, a dict of per-sample tensors for regularizers: ``ray_indices [S]`` int64
            (flat index ``b * H * W + row * W + col``), ``weights [S]``, ``dirs [S, 3]`` and
            ``normal [S, 3]`` when computed (zero for the samples ``normal_weight_eps`` skips).
        """
        fn = f"{_FN}.render"
        radius = self._radius(fn, geometry)
        if not isinstance(cameras, Cameras):
            raise TypeError(f"{fn}(): cameras must be csdkit.Cameras, got {type(cameras).__name__}")
        check_shading(fn, shading)
        dtype, device = _geometry_dtype_device(geometry)
        if cameras.device != device:
            raise ValueError(f"{fn}(): cameras are on {cameras.device} but the geometry is on {device}")
        h, w = self.resolution if resolution is None else _resolution(fn, resolution)
        need_normals = NEEDS_NORMALS[shading] if with_normals is None else bool(with_normals)
        if NEEDS_NORMALS[shading] and not need_normals:
            raise ValueError(f"{fn}(): shading={shading!r} needs normals, but with_normals=False")
        if NEEDS_LIGHTS[shading]:
            if lights is None:
                lights = PointLights.at(cameras.position)
            if not isinstance(lights, PointLights):
                raise TypeError(f"{fn}(): lights must be csdkit.PointLights or None, "
                                f"got {type(lights).__name__}")
            if len(lights) != len(cameras):
                raise ValueError(f"{fn}(): lights must be PointLights with one light per camera "
                                 f"({len(cameras)}), got {len(lights)} lights")
            lights = lights.to(device, dtype)
        bg = self.background if background is None else as_background(background)
        grid = self.occupancy_grid(geometry)

        origins, dirs = cameras.rays(h, w)
        origins, dirs = origins.to(dtype), dirs.to(dtype)
        rays_o, rays_d = origins.reshape(-1, 3), dirs.reshape(-1, 3)
        stratified = self.stratified and torch.is_grad_enabled()
        if isinstance(generator, int) and not isinstance(generator, bool):
            generator = torch.Generator().manual_seed(generator)
        ctx = dict(geometry=geometry, grid=grid, radius=radius, near=cameras.near, far=cameras.far,
                   stratified=stratified, generator=generator, shading=shading, lights=lights,
                   need_normals=need_normals, pixels_per_view=h * w)
        chunk = self.chunk_rays or (CPU_CHUNK_RAYS if device.type == "cpu" else GPU_CHUNK_RAYS)
        parts = [self._render_rays(rays_o[i:i + chunk], rays_d[i:i + chunk], i, ctx)
                 for i in range(0, rays_o.shape[0], chunk)]

        def cat(key):
            return torch.cat([p[key] for p in parts]) if len(parts) > 1 else parts[0][key]

        b = len(cameras)
        out = {"opacity": cat("opacity").reshape(b, h, w, 1), "depth": cat("depth").reshape(b, h, w, 1)}
        rgb_fg = cat("rgb").reshape(b, h, w, 3)
        out["rgb"] = rgb_fg + (1.0 - out["opacity"]) * bg(dirs)
        samples = {"ray_indices": cat("ray_indices"), "weights": cat("weights"), "dirs": cat("dirs")}
        if need_normals:
            out["normal"] = cat("normal").reshape(b, h, w, 3)
            samples["normal"] = cat("sample_normal")
        out["samples"] = samples
        return out

    def _render_rays(self, rays_o: torch.Tensor, rays_d: torch.Tensor, offset: int, ctx: dict) -> dict:
        geometry, radius = ctx["geometry"], ctx["radius"]
        n_rays = rays_o.shape[0]
        step = self.step_size(radius)
        march_kw = dict(step_size=step, cone_angle=self.cone_angle, near_plane=ctx["near"],
                        far_plane=ctx["far"], stratified=ctx["stratified"], generator=ctx["generator"])
        if ctx["grid"] is None:
            s = march_rays(rays_o, rays_d, aabb=radius, **march_kw)
        else:
            s = march_rays(rays_o, rays_d, ctx["grid"], **march_kw)
        ray_idx, t0, t1 = s.ray_indices, s.t_starts, s.t_ends

        # Exact culling: samples at or after a ray's early stop get zero weight and zero gradient.
        if ray_idx.numel() > 0 and self.early_stop_eps > 0:
            with torch.no_grad():
                mid = 0.5 * (t0 + t1)
                x = rays_o[ray_idx] + mid[:, None] * rays_d[ray_idx]
                sig = geometry.density(x)
                _, trans, _ = render_weight_from_density(t0, t1, sig, s.packed_info,
                                                         early_stop_eps=self.early_stop_eps)
                keep = trans >= self.early_stop_eps
            ray_idx, t0, t1 = ray_idx[keep], t0[keep], t1[keep]

        counts = torch.bincount(ray_idx, minlength=n_rays)
        packed = torch.stack([torch.cumsum(counts, 0) - counts, counts], dim=1)
        mid = 0.5 * (t0 + t1)
        sample_dirs = rays_d[ray_idx]
        x = rays_o[ray_idx] + mid[:, None] * sample_dirs
        # Without gradients, normals only where a sample's weight is not negligible (see normal_weight_eps).
        gated = ctx["need_normals"] and self.normal_weight_eps > 0 and not torch.is_grad_enabled()
        geo = geometry(x, with_normals=ctx["need_normals"] and not gated)
        weights, _, _ = render_weight_from_density(t0, t1, geo["density"], packed,
                                                   early_stop_eps=self.early_stop_eps)
        if gated:
            normal = torch.zeros_like(x)
            heavy = torch.nonzero(weights >= self.normal_weight_eps).squeeze(1)
            if heavy.numel() > 0:
                normal[heavy] = geometry(x[heavy], with_normals=True)["normal"].to(normal.dtype)
            geo = {**geo, "normal": normal}
        global_idx = ray_idx + offset
        lights, shading = ctx["lights"], ctx["shading"]
        normals = geo.get("normal")
        if NEEDS_LIGHTS[shading]:
            view = torch.div(global_idx, ctx["pixels_per_view"], rounding_mode="floor")
            color = shade(shading, geo["albedo"], normals, lights.directions(x, view), lights.ambient[view],
                          lights.diffuse[view])
        else:
            color = shade(shading, geo["albedo"], normals)
        out = {
            "rgb": accumulate_along_rays(weights, color, packed),
            "opacity": accumulate_along_rays(weights, None, packed),
            "depth": accumulate_along_rays(weights, mid[:, None], packed),
            "ray_indices": global_idx, "weights": weights, "dirs": sample_dirs,
        }
        if ctx["need_normals"]:
            out["normal"] = accumulate_along_rays(weights, normals, packed)
            out["sample_normal"] = normals
        return out

    def __repr__(self) -> str:
        grid = "auto" if self.grid == "auto" else (None if self.grid is None else "OccupancyGrid")
        return (f"VolumeRenderer(resolution={self.resolution}, n_samples_per_ray={self.n_samples_per_ray}, "
                f"grid={grid}, background={type(self.background).__name__}, stratified={self.stratified})")


@torch.no_grad()
def shade_expected_surface(geometry, cameras: Cameras, render: dict, *, shading: str = "textureless",
                           lights: PointLights | None = None, min_opacity: float = 1e-3) -> torch.Tensor:
    """Deferred shading of a finished render: one normal per pixel, at its expected surface point.

    A cheap view of a density field's shape (previews, turntables): the point ``o + d * depth / opacity``
    of each pixel whose opacity is at least ``min_opacity`` gets the geometry's normal there
    (``geometry(points, with_normals=True)``, one evaluation per pixel instead of one per sample) and is
    shaded with ``shading``. Unlike ``VolumeRenderer.render(shading=...)``, which shades every sample and
    composites the colours, this shades the composited surface once: the two agree on an opaque surface
    and differ inside semi-transparent fog.

    Args:
        geometry: the density field that was rendered (see the module doc for the protocol).
        cameras: the ``B`` cameras of the render.
        render: the output of :meth:`VolumeRenderer.render` (any shading): its ``opacity`` and ``depth``
            ``[B, H, W, 1]``.
        shading: ``"textureless"`` or ``"normal"``.
        lights: for ``"textureless"``, one light per camera (default: a light at each camera centre).
        min_opacity: pixels below it get no surface point (colour 0).

    Returns:
        ``[B, H, W, 3]`` foreground colours premultiplied by the opacity (composite a background with
        ``rgb + (1 - opacity) * bg``), dtype and device of the render.
    """
    fn = "shade_expected_surface"
    if shading not in ("textureless", "normal"):
        raise ValueError(f"{fn}(): shading must be 'textureless' or 'normal', got {shading!r}")
    check_float(fn, "min_opacity", min_opacity, min_value=0.0, max_value=1.0)
    opacity, depth = render["opacity"], render["depth"]
    b, h, w, _ = opacity.shape
    if len(cameras) != b:
        raise ValueError(f"{fn}(): the render has {b} views but {len(cameras)} cameras were given")
    origins, dirs = cameras.rays(h, w)
    origins, dirs = origins.to(depth), dirs.to(depth)
    hit = opacity[..., 0] >= max(min_opacity, 1e-12)  # [B, H, W]
    t = depth[hit] / opacity[hit]  # [P, 1]
    points = origins[hit] + t * dirs[hit]
    chunk = CPU_CHUNK_RAYS if depth.device.type == "cpu" else GPU_CHUNK_RAYS
    normals = torch.cat([geometry(points[i:i + chunk], with_normals=True)["normal"].to(depth)
                         for i in range(0, points.shape[0], chunk)]) if points.shape[0] else points
    if shading == "normal":
        color = shade("normal", normals=normals)
    else:
        if lights is None:
            lights = PointLights.at(cameras.position)
        if not isinstance(lights, PointLights) or len(lights) != b:
            got = f"{len(lights)} lights" if isinstance(lights, PointLights) else type(lights).__name__
            raise ValueError(f"{fn}(): lights must be PointLights with one light per view ({b}), got {got}")
        lights = lights.to(depth.device, depth.dtype)
        view = torch.nonzero(hit)[:, 0]
        color = shade("textureless", None, normals, lights.directions(points, view), lights.ambient[view],
                      lights.diffuse[view])
    out = torch.zeros(b, h, w, 3, dtype=depth.dtype, device=depth.device)
    out[hit] = color
    return out * opacity
