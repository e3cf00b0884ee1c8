"""Stage 1 of :func:`csdkit.pipelines.generate`: a hash-grid NeRF optimized with CSD.

Wiring (all public objects; the loop is the shared :class:`~csdkit.training.Trainer`)::

    ImplicitVolume (hash grid + MLPs, linear density blob)  ->  VolumeRenderer (random views,
        occupancy grid, albedo first, then lambertian / textureless with finite-difference normals)
        ->  CSD on the prior  +  orientation / sparsity / opacity regularizers  ->  Adam

Normals are central finite differences of the density, evaluated through the compiled first-order
hash-grid kernels (``ImplicitVolume(normal_type="finite_difference")``): six more density queries
per sample in the same kernel call, instead of the twice-differentiable pure-PyTorch hash grid that
analytic normals would need in training.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from ..geometry.implicit_volume import ImplicitVolume
from ..geometry.regularizers import VolumeRegularizers, weight_at
from ..geometry.shape_bias import MeshDensityBias
from ..guidance.presets import guidance_preset
from ..guidance.priors.base import DiffusionPrior
from ..nn import HashGridEncoding
from ..render.cameras import Cameras
from ..render.shading import PointLights, ShadingSchedule
from ..render.volume_renderer import VolumeRenderer, shade_expected_surface
from ..training import RunDirectory, Trainer, TrainerResult, image_grid, save_png
from ..training.checkpoint import atomic_save
from .common import resolve_mesh
from .generate_config import NerfStageConfig
from .start_shape import StartShapeChoice, choose_start_shape

VOLUME_FILE = "volume.pt"


SHAPE_LATTICE = 48  # lattice cells per axis of a MeshDensityBias start


def shape_bias(cfg: NerfStageConfig, empty: bool = False) -> str | MeshDensityBias:
    """The volume's density bias: ``"linear_blob"``, or the :class:`MeshDensityBias` of ``cfg.shape_init``.

    ``empty``: a placeholder of the right size (its lattice is then read from a saved state).
    """
    if cfg.shape_init == "blob":
        return "linear_blob"
    if cfg.shape_init == "auto":
        raise ValueError("build_volume(): shape_init 'auto' names no shape yet: pick one first "
                         "(csdkit.pipelines.start_shape.choose_start_shape, as NerfStage does)")
    kw = {"scale": cfg.blob_scale, "length": cfg.blob_std}
    if empty:
        return MeshDensityBias.empty(SHAPE_LATTICE, **kw)
    _, mesh = resolve_mesh("generate", cfg.shape_init)  # generate() has checked the value
    return MeshDensityBias.from_mesh(mesh, half_extent=cfg.shape_size, resolution=SHAPE_LATTICE, **kw)


def build_volume(cfg: NerfStageConfig, device: torch.device, empty_shape: bool = False) -> ImplicitVolume:
    """The stage's :class:`ImplicitVolume` (box ``[-1, 1]^3``, finite-difference normals, start :func:`shape_bias`)."""
    bias = shape_bias(cfg, empty_shape)
    if isinstance(bias, MeshDensityBias):
        bias = bias.to(device)
    encoding = HashGridEncoding(3, n_levels=cfg.n_levels, log2_hashmap_size=cfg.log2_hashmap_size,
                                base_resolution=cfg.base_resolution, per_level_scale=cfg.per_level_scale,
                                device=device)
    return ImplicitVolume(1.0, encoding, hidden_dim=cfg.hidden_dim, density_bias=bias,
                          blob_scale=cfg.blob_scale, blob_std=cfg.blob_std, normal_type="finite_difference",
                          device=device)


def save_volume(volume: ImplicitVolume, cfg: NerfStageConfig, path: Path) -> Path:
    """Write the trained volume (its state and the config that rebuilds it), atomically."""
    atomic_save({"config": dataclasses.asdict(cfg), "state": volume.state_dict()}, path)
    return path


def load_volume(path: Path, device: torch.device) -> ImplicitVolume:
    """The volume written by :func:`save_volume`."""
    if not path.exists():
        raise ValueError(f"generate(): the nerf stage has not finished: {path} is missing (run --stages nerf)")
    saved = torch.load(path, map_location="cpu", weights_only=False)
    raw = saved["config"]
    cfg = NerfStageConfig(**{k: tuple(v) if k.endswith("_range") else v for k, v in raw.items()})
    volume = build_volume(cfg, device, empty_shape=True)
    volume.load_state_dict(saved["state"])
    return volume


class NerfStage:
    """The NeRF stage's objects and its step function (usable by hand, e.g. in a notebook).

    Args:
        prompt: the text prompt.
        prior: the diffusion prior (MiniPrior, DeepFloyd IF, ...).
        cfg: the stage settings (:class:`~csdkit.pipelines.generate_config.NerfStageConfig`).
        device: where the volume, renders and prior run.
        seed: seeds the volume initialization and the step generator.

    Attributes: ``volume``, ``renderer``, ``guidance``, ``regularizers``, ``shading``, ``optimizer``,
    ``generator``, ``start`` (the :class:`~csdkit.pipelines.start_shape.StartShapeChoice` when
    ``cfg.shape_init`` is ``"auto"``, else None; ``cfg`` then holds the chosen start); :meth:`step` is the
    Trainer's ``step_fn``.
    """

    def __init__(self, prompt: str, prior: DiffusionPrior, cfg: NerfStageConfig, device: torch.device,
                 seed: int = 0) -> None:
        self.start: StartShapeChoice | None = None
        if cfg.shape_init == "auto":
            self.start = choose_start_shape(prior, prompt, seed=seed)
            cfg = dataclasses.replace(cfg, shape_init=self.start.shape_init)
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, device
        self.volume = build_volume(cfg, device)
        self.renderer = VolumeRenderer(cfg.resolution, n_samples_per_ray=cfg.n_samples_per_ray,
                                       grid_resolution=cfg.grid_resolution)
        self.grid = self.renderer.occupancy_grid(self.volume)
        self.grid.update_every = cfg.grid_update_every
        self.guidance = guidance_preset(cfg.guidance_preset, prior, prompt, **cfg.guidance)
        self.regularizers = VolumeRegularizers(orientation=cfg.orientation, sparsity=cfg.sparsity,
                                               opacity=cfg.opacity_entropy)
        self.shading = ShadingSchedule(cfg.albedo_only_steps, cfg.albedo_prob, cfg.textureless_prob)
        self.optimizer = torch.optim.Adam(self.volume.parameter_groups(cfg.lr_encoding, cfg.lr_network),
                                          betas=(0.9, 0.99), eps=1e-15)
        self.generator = torch.Generator().manual_seed(seed)

    def sample_views(self, n: int, g: torch.Generator) -> tuple[Cameras, PointLights, torch.Tensor]:
        """``n`` random cameras, their lights and grey backgrounds ``[n, 3]`` (draws from ``g`` in order)."""
        c = self.cfg
        cams = Cameras.sample(n, elevation_range=c.elevation_range, distance_range=c.distance_range,
                              fov_range=c.fov_range, generator=g).to(self.device)
        lights = PointLights.sample(cams, distance_range=(2.5, 4.0), position_perturb=1.0, ambient=c.ambient,
                                    diffuse=c.diffuse, generator=g)
        lo, hi = c.background_range
        background = (lo + (hi - lo) * torch.rand(n, 1, generator=g)).expand(n, 3).to(self.device)
        return cams, lights, background

    def render(self, cams: Cameras, lights: PointLights, background: torch.Tensor, shading: str,
               with_normals: bool | None = None, resolution: int | None = None) -> dict:
        """Render the volume with per-view solid backgrounds ``[B, 3]``; ``rgb`` is ``[B, H, W, 3]``."""
        out = self.renderer.render(self.volume, cams, shading=shading, lights=lights, background=0.0,
                                   with_normals=with_normals, resolution=resolution, generator=self.generator)
        out["rgb"] = out["rgb"] + (1.0 - out["opacity"]) * background[:, None, None, :]
        return out

    def step(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One CSD step: the loss (with graph) and its metrics; the Trainer does backward and Adam."""
        g = self.generator
        self.renderer.update_grid(self.volume, step, generator=g)
        cams, lights, background = self.sample_views(self.cfg.batch_size, g)
        mode = self.shading.mode(step, g)
        weights = self.regularizers.weights(step)
        out = self.render(cams, lights, background, mode, with_normals=True if weights["orientation"] else None)
        guided = self.guidance(out["rgb"].permute(0, 3, 1, 2), step=step, generator=g, cameras=cams)
        reg = self.regularizers(out, step)
        coverage = out["opacity"].mean(dim=(1, 2, 3))  # [B] fraction of each view the object covers
        opacity = coverage.mean()
        excess = (coverage - self.cfg.max_coverage).clamp_min(0.0).mean()
        penalty = _weight(self.cfg.opacity_penalty, step)
        loss = guided.loss + reg["total"] + penalty * excess
        info = {"grad_norm": guided.grad_norm, "t": float(guided.t.float().mean()), "opacity": float(opacity.detach()),
                "shading": float(("albedo", "lambertian", "textureless").index(mode)),
                "samples": float(out["samples"]["weights"].numel())}
        info.update({f"reg/{k}": float(v.detach()) for k, v in reg.items() if k != "total"})
        return loss, info

    @torch.no_grad()
    def preview(self, n: int = 4, size: int = 64, elevation: float = 15.0) -> torch.Tensor:
        """``[2 * size, n * size, 3]``: albedo (top row) and the shaded shape (bottom row) in orbit views.

        The bottom row lights a white surface at each pixel's expected surface point
        (:func:`csdkit.render.shade_expected_surface`): one normal per pixel instead of
        one per sample, which made previews 3-4x cheaper (docs/generation.md, Speed).
        """
        c = self.cfg
        cams = Cameras.orbit(n, elevation=elevation, distance=sum(c.distance_range) / 2,
                             fov_y=sum(c.fov_range) / 2).to(self.device)
        lights = PointLights.at(cams.position, ambient=c.ambient, diffuse=c.diffuse)
        bg = torch.full((n, 3), 0.5, device=self.device)
        out = self.render(cams, lights, bg, "albedo", resolution=size)
        shaded = shade_expected_surface(self.volume, cams, out, lights=lights)
        shaded = shaded + (1.0 - out["opacity"]) * bg[:, None, None, :]
        return image_grid(torch.cat([out["rgb"].cpu(), shaded.cpu()]), columns=n)


def _weight(spec, step: int) -> float:
    return weight_at(spec, step, "opacity_penalty")


def run_nerf_stage(stage: NerfStage, run: RunDirectory | None, *, resume: bool, progress: bool,
                   checkpoint_every: int, preview_every: int, desc: str,
                   callback: Callable[[int, dict], None] | None = None) -> TrainerResult:
    """Run the stage through the Trainer; on completion write ``volume.pt`` and ``turntable.png``."""
    step_fn = stage.step
    if callback is not None:
        def step_fn(step: int):
            loss, info = stage.step(step)
            callback(step, {"loss": float(loss.detach()), **info})
            return loss, info

    trainer = Trainer(step_fn, modules={"volume": stage.volume, "grid": stage.grid},
                      optimizers={"adam": stage.optimizer}, total_steps=stage.cfg.steps,
                      generator=stage.generator, run_dir=run, checkpoint_every=checkpoint_every,
                      preview_every=preview_every, preview_fn=lambda step: stage.preview(), progress=progress,
                      desc=desc)
    result = trainer.run(resume=resume)
    if run is not None and result.status == "completed":
        save_volume(stage.volume, stage.cfg, run.path / VOLUME_FILE)
        save_png(stage.preview(n=8, size=128), run.path / "turntable.png")
    return result


__all__ = ["NerfStage", "VOLUME_FILE", "build_volume", "load_volume", "run_nerf_stage", "save_volume"]
