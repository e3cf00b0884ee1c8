r"""``Editor``: text-guided editing of an existing asset with Classifier Score Distillation.

An edit pushes the asset's renders toward a *target* description and away from a *source*
description, and keeps what should not change::

    grad_x = w(t) [ (eps(x_t, target) - eps(x_t, "")) - beta(step) (eps(x_t, source) - eps(x_t, "")) ]
    loss   = CSD target-trick loss(grad_x)  +  lambda(step) * fidelity(asset, original)

* The first term is CSD with the target as the prompt and the source as the negative prompt
  (:class:`csdkit.guidance.CSD`, three U-Net rows per view; ``beta`` is the ``negative_weight``
  schedule, by default ``1 -> 0.5`` over the run). Without a source prompt it is plain CSD toward
  the target (``beta = 0``): nothing pushes away from what the asset is now, so the same edit
  moves less in the same steps (measured in ``docs/editing.md``).
* The fidelity term keeps the edited asset close to the original: for an appearance edit the
  squared difference of the edited and the original renders from the same views; for a shape
  edit also the per-point opacity and albedo of the implicit volume at random points of its box.
  ``lambda = fidelity`` (a number or a :class:`~csdkit.guidance.Schedule`) is the one knob of the
  alignment / fidelity balance.
* A :class:`~csdkit.editing.region.Region` confines the edit: outside it the texture is the input's
  (same texel values), and the volume's density and albedo are the original's.

Assets: a :class:`~csdkit.Mesh` with a texture (UVs + image) or vertex colours, or a
:class:`~csdkit.TexturedMesh`: appearance edit, the texture is the input's texture plus a learnable
change (:class:`~csdkit.editing.texture_delta.EditableTexture`), so the result keeps the input's UV
layout, texture size, vertices and placement. An :class:`~csdkit.ImplicitVolume`: appearance and
shape edit (:mod:`csdkit.editing.volume`). A :class:`~csdkit.DMTet`: shape edit (:mod:`csdkit.editing.dmtet_edit`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..geometry.dmtet import DMTet
from ..geometry.implicit_volume import ImplicitVolume
from ..geometry.mesh import Mesh
from ..geometry.nearest import nearest_vertex_colors
from ..guidance.csd import CSD
from ..guidance.priors.base import DiffusionPrior
from ..guidance.schedule import Schedule, as_schedule
from ..guidance.score_distillation import ScoreDistillation
from ..ops._checks import check_float, check_int
from ..render.cameras import Cameras
from ..render.mesh_renderer import MeshRenderer
from ..training import RunDirectory, Trainer, image_grid
from ..uv.bake import bake_vertex_colors, rasterize_uv
from ..uv.textured_mesh import TexturedMesh
from ..uv.uv_unwrap import unwrap_uv
from .dmtet_edit import edit_dmtet
from .region import Region, parse_region
from .result import EditResult
from .texture_delta import EditableTexture
from .volume import edit_volume

_FN = "Editor"
#: The default alignment / fidelity balance (see docs/editing.md for the measured curve).
DEFAULT_FIDELITY = 0.05
#: The flat albedo a DMTet (which holds no colour) is rendered and exported with unless told otherwise.
DEFAULT_DMTET_COLOR = (0.6, 0.6, 0.6)
#: Fidelity losses are sums over pixels divided by this many pixels per view (a 32x32 image), so that
#: the same ``fidelity`` means the same balance at any render resolution.
_REFERENCE_PIXELS = 32 * 32


class Editor:
    """Edits assets toward ``target_prompt`` (and away from ``source_prompt``) with CSD plus a fidelity term.

    Args:
        prior: the diffusion prior (:class:`~csdkit.guidance.mini.MiniPrior`, Stable Diffusion, ...).
        target_prompt: what the asset should become ("a green sphere").
        source_prompt: what it is now ("a red sphere"); the negative prompt of CSD. None: plain CSD
            toward the target.
        fidelity: weight of the fidelity term, a number >= 0 or a :class:`~csdkit.guidance.Schedule`
            of the step. Higher keeps the result closer to the original, lower follows the target
            more; 0 is pure CSD. Default :data:`DEFAULT_FIDELITY`.
        region: restrict the edit (a :class:`~csdkit.editing.region.Region`, ``"box:x0,y0,z0,x1,y1,z1"`` in
            the input's own coordinates, a face-index file or a UV mask image; see :mod:`~csdkit.editing.region`).
        steps: optimization steps.
        lr: Adam learning rate (texture deltas; for volumes the hash grid's, the MLPs take a tenth).
        resolution: render resolution of the guided views (mesh edits; volumes use ``volume_resolution``).
        batch_size: views per step.
        negative_weight: ``beta`` schedule of the source prompt (default ``1 -> 0.5`` over the run).
        t_range, weighting: CSD timestep range and weighting (see :class:`~csdkit.guidance.CSD`).
        view_prompts: append view-dependent suffixes to the prompts (for Stable Diffusion).
        shading: ``"lambertian"`` or ``"albedo"`` renders for the guidance.
        distance_range, fov_range: random training cameras around the unit sphere of the normalized asset.
        up, front: the input mesh's up and front axes (for the camera frame only; the result keeps
            the input's coordinates).
        volume_resolution, volume_samples: render size and samples per ray of volume edits.
        dmtet_color: the flat albedo ``(r, g, b)`` in [0, 1] a :class:`~csdkit.DMTet` (which holds no colour) is
            rendered and exported with. None (default): :data:`DEFAULT_DMTET_COLOR`, or the colours of
            ``dmtet_color_source`` when that is given.
        dmtet_color_source: a :class:`~csdkit.Mesh` with ``vertex_colors [N, 3]`` in the DMTet's coordinates
            (e.g. a generate run's ``mesh/mesh.pt``): each surface vertex of the DMTet takes the colour of
            its nearest vertex of this mesh (no gradient through the lookup), in the renders and the export.
            Excludes ``dmtet_color``.
        dmtet_normal_consistency, dmtet_laplacian: weights (>= 0; 0 turns a term off) of the mesh
            regularizers of a DMTet shape edit, on the surface extracted each step (in the renders' frame,
            the DMTet's box scaled to radius 1): mean ``1 - cos`` of adjacent face normals and mean squared
            uniform Laplacian (:mod:`csdkit.geometry.mesh_regularizers`, as in the generate job's mesh stage).
        dmtet_smoothing: standard deviation, in grid cells, of the Gaussian that averages the SDF and
            deformation gradients of a DMTet shape edit over the grid vertices near the surface before each
            step (0: off). The guidance sees tiny renders, so per-vertex gradients are mostly noise that
            crumples the surface; averaged, the updates are smooth, low-frequency shape changes (see
            ``docs/editing.md``).
        guidance: a ready guidance object instead of the CSD built from the arguments above.
        seed: seeds cameras, timesteps and noise; a CPU run is deterministic for a fixed seed.
    """

    def __init__(self, prior: DiffusionPrior, target_prompt: str, source_prompt: str | None = None, *,
                 fidelity: float | Schedule | Any = DEFAULT_FIDELITY, region: Region | str | None = None,
                 steps: int = 150, lr: float = 0.05, resolution: int = 64, batch_size: int = 4,
                 negative_weight: float | Schedule | Any | None = None, t_range: tuple[Any, Any] = (0.02, 0.98),
                 weighting: str = "one_minus_abar", view_prompts: bool = False, shading: str = "lambertian",
                 distance_range: tuple[float, float] = (3.0, 3.6), fov_range: tuple[float, float] = (38.0, 45.0),
                 up: str = "+y", front: str = "+z", volume_resolution: int = 32, volume_samples: int = 96,
                 dmtet_color: tuple[float, float, float] | None = None, dmtet_color_source: Mesh | None = None,
                 dmtet_normal_consistency: float = 0.1, dmtet_laplacian: float = 0.0, dmtet_smoothing: float = 2.0,
                 guidance: ScoreDistillation | None = None, seed: int = 0) -> None:
        if not isinstance(target_prompt, str) or not target_prompt.strip():
            raise ValueError(f"{_FN}(): target_prompt must be a non-empty string, got {target_prompt!r}")
        if source_prompt is not None and (not isinstance(source_prompt, str) or not source_prompt.strip()):
            raise ValueError(f"{_FN}(): source_prompt must be a non-empty string or None, got {source_prompt!r}")
        self.steps = check_int(_FN, "steps", steps, min_value=0)
        self.lr = check_float(_FN, "lr", lr, min_value=1e-12)
        self.resolution = check_int(_FN, "resolution", resolution, min_value=8, max_value=4096)
        self.batch_size = check_int(_FN, "batch_size", batch_size, min_value=1)
        self.volume_resolution = check_int(_FN, "volume_resolution", volume_resolution, min_value=8)
        self.volume_samples = check_int(_FN, "volume_samples", volume_samples, min_value=8)
        self.seed = check_int(_FN, "seed", seed)
        if shading not in ("lambertian", "albedo"):
            raise ValueError(f"{_FN}(): shading must be 'lambertian' or 'albedo', got {shading!r}")
        for name, rng in (("distance_range", distance_range), ("fov_range", fov_range)):
            if len(rng) != 2 or not 0 < rng[0] <= rng[1]:
                raise ValueError(f"{_FN}(): {name} must be (low, high) with 0 < low <= high, got {rng!r}")
        self.fidelity = as_schedule(fidelity, _FN, "fidelity")
        if self.fidelity.min_value() < 0:
            raise ValueError(f"{_FN}(): fidelity must be >= 0 at every step, got {self.fidelity!r}")
        self.region = parse_region(region)
        self.prior = prior
        self.target_prompt = target_prompt
        self.source_prompt = source_prompt
        self.shading = shading
        self.distance_range = tuple(float(v) for v in distance_range)
        self.fov_range = tuple(float(v) for v in fov_range)
        self.up, self.front = up, front
        if dmtet_color is not None and dmtet_color_source is not None:
            raise ValueError(f"{_FN}(): pass dmtet_color (one flat colour) or dmtet_color_source (colours from a "
                             f"mesh), not both; got dmtet_color={dmtet_color!r} and a dmtet_color_source")
        color = torch.as_tensor(DEFAULT_DMTET_COLOR if dmtet_color is None else dmtet_color,
                                dtype=torch.float32).reshape(-1)
        if color.numel() != 3 or not bool(((color >= 0) & (color <= 1)).all()):
            raise ValueError(f"{_FN}(): dmtet_color must be (r, g, b) in [0, 1], got {dmtet_color!r}")
        self.dmtet_color = tuple(color.tolist())
        if dmtet_color_source is not None and (not isinstance(dmtet_color_source, Mesh)
                                               or dmtet_color_source.vertex_colors is None):
            got = "a Mesh without vertex_colors" if isinstance(dmtet_color_source, Mesh) \
                else type(dmtet_color_source).__name__
            raise ValueError(f"{_FN}(): dmtet_color_source must be a csdkit.Mesh with vertex_colors [N, 3], got {got}")
        self.dmtet_color_source = None if dmtet_color_source is None else dmtet_color_source.detach().to("cpu")
        self.dmtet_normal_consistency = check_float(_FN, "dmtet_normal_consistency", dmtet_normal_consistency,
                                                    min_value=0.0)
        self.dmtet_laplacian = check_float(_FN, "dmtet_laplacian", dmtet_laplacian, min_value=0.0)
        self.dmtet_smoothing = check_float(_FN, "dmtet_smoothing", dmtet_smoothing, min_value=0.0, max_value=64.0)
        if guidance is None:
            if negative_weight is None:
                negative_weight = [0, 1.0, 0.5, max(self.steps, 1)] if source_prompt is not None else 0.0
            guidance = CSD(prior, target_prompt, negative_prompt=source_prompt, negative_weight=negative_weight,
                           weighting=weighting, t_range=tuple(t_range), view_prompts=view_prompts)
        elif not isinstance(guidance, ScoreDistillation):
            raise TypeError(f"{_FN}(): guidance must be a csdkit guidance (CSD, SDS), got {type(guidance).__name__}")
        self.guidance = guidance

    # ---- public --------------------------------------------------------------------------------------
    def edit(self, asset: Mesh | TexturedMesh | ImplicitVolume | nn.Module, *, run_dir: RunDirectory | None = None,
             resume: bool = False, progress: bool = True,
             callback: Callable[[int, dict[str, float]], None] | None = None,
             checkpoint_every: int | None = None, preview_every: int | None = None,
             init_color: float | tuple[float, float, float] | None = None, texture_size: int = 512,
             device: torch.device | str | None = None) -> EditResult:
        """Edit ``asset``; see the class and module docs.

        Args:
            asset: a textured :class:`~csdkit.Mesh` (UVs + texture, or vertex colours), a
                :class:`~csdkit.TexturedMesh`, an :class:`~csdkit.ImplicitVolume` or a :class:`~csdkit.DMTet`.
            run_dir: where checkpoints, metrics and previews go (None: nothing is written).
            resume: continue from the newest checkpoint in ``run_dir``.
            progress: show a progress bar.
            callback: ``callback(step, info)`` after every step (info: ``loss``, ``fidelity_loss``, ``t``...).
            checkpoint_every, preview_every: steps between checkpoints / previews (default steps / 10).
            init_color: start an untextured mesh from this flat colour (RGB in [0, 1] or a grey level);
                without it an untextured mesh raises ``ValueError``.
            texture_size: texture side for an untextured mesh started from ``init_color`` or for baked
                vertex colours.
            device: where to optimize (default: the prior's device).

        Returns:
            :class:`EditResult`.
        """
        dev = torch.device(device) if device is not None else self.prior.device
        checkpoint_every = checkpoint_every or max(1, self.steps // 10)
        preview_every = max(1, self.steps // 10) if preview_every is None else preview_every
        common = dict(run_dir=run_dir, resume=resume, progress=progress, callback=callback,
                      checkpoint_every=checkpoint_every, preview_every=preview_every, device=dev)
        if isinstance(asset, (Mesh, TexturedMesh)):
            mesh, tex = appearance_input(asset, init_color=init_color, texture_size=texture_size)
            return self._edit_mesh(mesh, tex, **common)
        if isinstance(asset, DMTet):
            return edit_dmtet(self, asset, **common)
        if isinstance(asset, nn.Module) and callable(getattr(asset, "density", None)) and hasattr(asset, "radius"):
            return edit_volume(self, asset, **common)
        raise TypeError(f"{_FN}.edit(): asset must be a csdkit.Mesh (textured), a TexturedMesh, an "
                        f"ImplicitVolume or a DMTet, got {type(asset).__name__}")

    def to_config(self) -> dict[str, Any]:
        """A JSON-serializable description (for run directories)."""
        return {"target_prompt": self.target_prompt, "source_prompt": self.source_prompt,
                "fidelity": self.fidelity.to_config(), "region": None if self.region is None else self.region.source,
                "steps": self.steps, "lr": self.lr, "resolution": self.resolution, "batch_size": self.batch_size,
                "shading": self.shading, "distance_range": list(self.distance_range),
                "fov_range": list(self.fov_range), "up": self.up, "front": self.front,
                "volume_resolution": self.volume_resolution, "volume_samples": self.volume_samples,
                "dmtet_color": None if self.dmtet_color_source is not None else list(self.dmtet_color),
                "dmtet_color_source": None if self.dmtet_color_source is None
                else f"nearest vertex of a mesh with {self.dmtet_color_source.num_vertices} vertices",
                "dmtet_normal_consistency": self.dmtet_normal_consistency,
                "dmtet_laplacian": self.dmtet_laplacian, "dmtet_smoothing": self.dmtet_smoothing,
                "seed": self.seed, "guidance": self.guidance.to_config()}

    # ---- shared pieces ---------------------------------------------------------------------------------
    def sample_views(self, n: int, g: torch.Generator, dev: torch.device):
        """Random training views: cameras, grey backgrounds ``[n, 3]`` and light directions ``[n, 3]``."""
        cams = Cameras.sample(n, distance_range=self.distance_range, fov_range=self.fov_range, generator=g).to(dev)
        background = (0.2 + 0.6 * torch.rand(n, 1, generator=g)).expand(n, 3).to(dev)
        jitter = (torch.rand(n, 3, generator=g) - 0.5).to(dev)
        light = torch.nn.functional.normalize(cams.position / cams.distance[:, None] + jitter, dim=-1)
        return cams, background, light

    def dmtet_vertex_colors(self, vertices: torch.Tensor) -> torch.Tensor:
        """Albedo ``[P, 3]`` float32 (no gradient) of DMTet surface vertices ``[P, 3]`` (the DMTet's coordinates).

        The nearest ``dmtet_color_source`` vertex's colour (chunked brute-force search), else ``dmtet_color``.
        """
        if self.dmtet_color_source is None:
            color = torch.tensor(self.dmtet_color, dtype=torch.float32, device=vertices.device)
            return color.expand(vertices.shape[0], 3)
        return nearest_vertex_colors(vertices, self.dmtet_color_source)

    def eval_cameras(self, n: int, dev: torch.device) -> Cameras:
        """``n`` orbit cameras at 15 degrees elevation (previews and held-out metrics)."""
        return Cameras.orbit(n, elevation=15.0, distance=sum(self.distance_range) / 2,
                             fov_y=sum(self.fov_range) / 2).to(dev)

    def fidelity_loss(self, edited: torch.Tensor, original: torch.Tensor, weight: float) -> torch.Tensor:
        """``0.5 * weight * sum((edited - original)^2) / (B * P)`` for renders ``[B, H, W, 3]``.

        ``P = H * W / 1024``: the sum counts pixels in units of a 32x32 image, so its gradient per
        pixel is comparable to the guidance's at the MiniPrior's resolution whatever the render size.
        """
        b, h, w = edited.shape[:3]
        return 0.5 * weight * ((edited - original) ** 2).sum() / (b * h * w / _REFERENCE_PIXELS)

    # ---- mesh appearance edit ------------------------------------------------------------------------------
    def _edit_mesh(self, mesh: Mesh, original: torch.Tensor, *, run_dir, resume, progress, callback,
                   checkpoint_every, preview_every, device) -> EditResult:
        dev = device
        h, w = original.shape[:2]
        raster = rasterize_uv(mesh, (h, w))
        if self.region is None:
            mask = torch.ones(h, w, dtype=torch.bool)
        else:
            mask = self.region.texel_mask(mesh, raster, (h, w))
        covered = raster.mask.cpu()
        field = EditableTexture(original, mask).to(dev)
        # Renders see the normalized mesh (unit sphere at the origin, +Y up); results keep the input's frame.
        view_mesh = mesh.normalized(up=self.up, front=self.front, verbose=False).to(dev)
        renderer = MeshRenderer(self.resolution)
        original_dev = original.to(dev)
        optimizer = torch.optim.Adam(field.parameters(), lr=self.lr, betas=(0.9, 0.99), eps=1e-15)
        generator = torch.Generator().manual_seed(self.seed)
        guidance = self.guidance

        def render(tex, cams, background, light, shading=None):
            return renderer.render(view_mesh, cams, texture=tex, shading=shading or self.shading,
                                   background=background, light_dir=light, ambient=0.5, diffuse=0.5)["rgb"]

        def step_fn(step: int):
            cams, background, light = self.sample_views(self.batch_size, generator, dev)
            images = render(field(), cams, background, light)
            out = guidance(images.permute(0, 3, 1, 2), step=step, generator=generator, cameras=cams)
            loss = out.loss
            info = {"grad_norm": out.grad_norm, "t": float(out.t.float().mean())}
            lam = self.fidelity(step)
            if lam > 0:
                with torch.no_grad():
                    reference = render(original_dev, cams, background, light)
                fid = self.fidelity_loss(images, reference, lam)
                loss = loss + fid
                info["fidelity_loss"] = float(fid.detach())
            if callback is not None:
                callback(step, {"loss": float(loss.detach()), **info})
            return loss, info

        preview_cams = self.eval_cameras(4, dev)
        preview_light = torch.nn.functional.normalize(preview_cams.position, dim=-1)

        def preview_fn(step: int):
            with torch.no_grad():
                before = render(original_dev, preview_cams, 0.5, preview_light)
                after = render(field(), preview_cams, 0.5, preview_light)
            return image_grid(torch.cat([before, after]).cpu(), columns=4)

        trainer = Trainer(step_fn, modules={"texture": field}, optimizers={"adam": optimizer},
                          total_steps=self.steps, generator=generator, run_dir=run_dir,
                          checkpoint_every=checkpoint_every, preview_every=preview_every, preview_fn=preview_fn,
                          progress=progress, desc=f"edit '{self.target_prompt[:30]}'")
        result = trainer.run(resume=resume)

        with torch.no_grad():
            texture = field().detach().cpu()
        # Outside the mask the texture is the original tensor itself (torch.where picks its values).
        texture = torch.where(mask[..., None], texture.clamp(0, 1), original)
        metrics = self._mesh_metrics(view_mesh, renderer, original_dev, texture.to(dev), covered, original,
                                     texture, dev)
        return EditResult("appearance", mesh.replace(texture=texture), mesh.replace(texture=original), texture,
                          original, mask, result.status, result.step, result.seconds, metrics)

    def _mesh_metrics(self, view_mesh, renderer, original_dev, edited_dev, covered, original, texture,
                      dev) -> dict[str, float]:
        cams = self.eval_cameras(8, dev)
        with torch.no_grad():
            a = renderer.render(view_mesh, cams, texture=original_dev, shading="albedo")
            b = renderer.render(view_mesh, cams, texture=edited_dev, shading="albedo")
        m = a["mask"]
        n = float(m.sum()) * 3 + 1e-9
        render_change = float(((a["rgb"] - b["rgb"]).abs() * m).sum()) / n
        mean_color = ((b["rgb"] * m).sum(dim=(0, 1, 2)) / (m.sum() + 1e-9)).cpu().tolist()
        tc = (texture - original).abs()[covered]
        return {"render_change": render_change, "texture_change": float(tc.mean()) if tc.numel() else 0.0,
                "mean_r": mean_color[0], "mean_g": mean_color[1], "mean_b": mean_color[2]}


def appearance_input(asset: Mesh | TexturedMesh, *, init_color=None,
                     texture_size: int = 512) -> tuple[Mesh, torch.Tensor]:
    """The mesh (with UVs, CPU, own coordinates) and the float32 texture ``[H, W, 3]`` an appearance edit starts from.

    A textured mesh keeps its UVs and texture; a mesh with vertex colours has them baked (under its UVs,
    or a new xatlas atlas); an untextured mesh needs ``init_color`` (a flat texture, new atlas if no UVs).

    Raises:
        ValueError: an untextured mesh without ``init_color``, a bad ``init_color``.
    """
    if isinstance(asset, TexturedMesh):
        mesh = asset.mesh.detach().to("cpu")
        return mesh.replace(texture=None), asset.baked_texture(dilate=True).float().cpu()
    mesh = asset.detach().to("cpu")
    if mesh.texture is not None and mesh.uv is not None:
        return mesh.replace(texture=None), mesh.texture.float().clamp(0, 1)
    if mesh.vertex_colors is not None:
        if mesh.uv is None:
            mesh = unwrap_uv(mesh, resolution=texture_size)
        mesh = bake_vertex_colors(mesh, texture_size)
        return mesh.replace(texture=None), mesh.texture.float()
    if init_color is None:
        raise ValueError("the mesh has no texture (no UVs with an image, no vertex colours) to edit; pass "
                         "init_color=(r, g, b) (CLI: --init-color R,G,B) to start from a flat colour")
    color = torch.as_tensor(init_color, dtype=torch.float32).reshape(-1)
    if color.numel() == 1:
        color = color.expand(3)
    if color.numel() != 3 or not bool(((color >= 0) & (color <= 1)).all()):
        raise ValueError(f"init_color must be a grey level or (r, g, b) in [0, 1], got {init_color!r}")
    check_int(_FN, "texture_size", texture_size, min_value=16, max_value=8192)
    if mesh.uv is None:
        mesh = unwrap_uv(mesh, resolution=texture_size)
    return mesh.replace(texture=None), color.expand(texture_size, texture_size, 3).clone()


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy with gradients off (the original an edit is measured against)."""
    out = copy.deepcopy(module)
    for p in out.parameters():
        p.requires_grad_(False)
    return out.eval()
