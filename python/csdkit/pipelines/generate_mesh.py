"""Stage 2 of :func:`csdkit.pipelines.generate`: a DMTet mesh initialized from the NeRF, refined with CSD.

Wiring::

    DMTet (SDF + deformation on a tet grid, SDF from the NeRF's density, threshold by Otsu)
        ->  extract() (differentiable marching tetrahedra)  ->  vertex colours from the NeRF's albedo field
        ->  MeshRenderer (random views; lambertian / textureless / normal renders, antialiased so
            silhouettes pass gradients to the SDF and the deformation)
        ->  CSD  +  normal-consistency / Laplacian / SDF-entropy regularizers  ->  Adam, in the Trainer

The colour field is the NeRF itself (its hash grid and albedo MLP queried at the mesh vertices and
fine-tuned at ``lr_color``), so the shaded renders carry the colours the NeRF stage found.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from ..geometry.dmtet import DMTet
from ..geometry.implicit_volume import ImplicitVolume
from ..geometry.mesh import Mesh
from ..geometry.regularizers import weight_at
from ..geometry.shape_bias import MeshDensityBias
from ..geometry.tet_grid import blur_lattice, lattice_boundary, smooth_surface_gradient
from ..geometry.topology import HandleClosing, close_handles, euler_characteristic
from ..guidance.presets import guidance_preset
from ..guidance.priors.base import DiffusionPrior
from ..io import load_mesh, save_glb
from ..render.mesh_renderer import MeshRenderer
from ..training import RunDirectory, Trainer, TrainerResult, image_grid
from ..training.checkpoint import atomic_save, atomic_write_bytes
from .common import MeshViews, turntable
from .generate_config import MeshStageConfig

MESH_FILE = "mesh.glb"
#: The refined DMTet itself (``save_dmtet`` / ``load_dmtet``), so ``csdkit edit RUN_DIR`` can edit it.
DMTET_FILE = "dmtet.pt"
#: Start and final Euler characteristic and the tunnels closed (``MeshStageConfig.close_handles``).
TOPOLOGY_FILE = "topology.json"
SHADING_MODES = ("lambertian", "textureless", "normal")


class MeshStage:
    """The mesh stage's objects and step function.

    Args:
        prompt: the text prompt.
        prior: the diffusion prior (MiniPrior, Stable Diffusion ...).
        cfg: :class:`~csdkit.pipelines.generate_config.MeshStageConfig`.
        volume: the NeRF stage's :class:`~csdkit.ImplicitVolume` (initial SDF and the colour field).
        device: where everything runs.
        seed: seeds the step generator.

    Attributes: ``dmtet``, ``volume``, ``threshold`` (the density level the SDF was cut at),
    ``start_euler`` (the Euler characteristic of the NeRF's start shape, or None), ``closing`` (the
    :class:`~csdkit.geometry.topology.HandleClosing` of the start SDF, or None), ``renderer``,
    ``guidance``, ``optimizer``, ``generator``; :meth:`step` is the Trainer's ``step_fn``.
    """

    def __init__(self, prompt: str, prior: DiffusionPrior, cfg: MeshStageConfig, volume: ImplicitVolume,
                 device: torch.device, seed: int = 0) -> None:
        bad = sorted(set(cfg.shading) - set(SHADING_MODES))
        if bad or not any(v > 0 for v in cfg.shading.values()):
            raise ValueError(f"generate(): mesh shading must give positive probabilities to modes among "
                             f"{SHADING_MODES}, got {cfg.shading!r}")
        self.cfg, self.device = cfg, device
        self.volume = volume
        self.dmtet = DMTet(cfg.tet_resolution, radius=volume.radius).to(device)
        self.threshold = self.dmtet.init_from_volume(volume)
        self._smooth_sdf_from_volume()
        n = cfg.tet_resolution + 1
        if cfg.sdf_smoothing > 0:
            with torch.no_grad():
                self.dmtet.sdf.copy_(blur_lattice(self.dmtet.sdf[:, None].double(), n, cfg.sdf_smoothing)[:, 0])
        if cfg.gradient_smoothing > 0:
            sigma = cfg.gradient_smoothing
            self.dmtet.sdf.register_hook(lambda g: smooth_surface_gradient(g[:, None], n, sigma)[:, 0])
            self.dmtet.deformation.register_hook(lambda g: smooth_surface_gradient(g, n, sigma))
        self._box_boundary = lattice_boundary(n, self.dmtet.sdf.device)
        self.seal_box()
        self.dmtet.sdf.register_hook(lambda g: g.masked_fill(self._box_boundary, 0.0))
        self.start_euler = start_euler_characteristic(volume, cfg.tet_resolution, cfg.min_component_fraction)
        self.closing = self.keep_start_topology()
        self.renderer = MeshRenderer(cfg.resolution, antialias=cfg.antialias)
        self.guidance = guidance_preset(cfg.guidance_preset, prior, prompt, **cfg.guidance)
        self.views = MeshViews(tuple(cfg.distance_range), tuple(cfg.fov_range), device)
        color_params = list(volume.encoding.parameters()) + list(volume.albedo_net.parameters())
        self.optimizer = torch.optim.Adam([
            {"params": [self.dmtet.sdf], "lr": cfg.lr_sdf, "name": "sdf"},
            {"params": [self.dmtet.deformation], "lr": cfg.lr_deformation, "name": "deformation"},
            {"params": color_params, "lr": cfg.lr_color, "name": "color"}], betas=(0.9, 0.99), eps=1e-15)
        self.generator = torch.Generator().manual_seed(seed)
        names = [m for m in SHADING_MODES if cfg.shading.get(m, 0.0) > 0]
        self._modes = names
        self._mode_probs = torch.tensor([float(cfg.shading[m]) for m in names], dtype=torch.float64)

    @torch.no_grad()
    def _smooth_sdf_from_volume(self, chunk: int = 2**18) -> None:
        """Replace the clamped density difference by the pre-activation (softplus^-1) density difference.

        ``init_from_volume`` sets ``sdf = clamp(threshold - density, -1, 1)``; NeRF densities are tens of
        units, so almost every vertex saturates at +-1 and marching tetrahedra put the surface at edge
        midpoints (a voxel staircase). The pre-activation density is close to linear in the distance to
        the surface (the linear blob), so its difference to the threshold's, clamped at +-4, interpolates
        the zero crossing along each edge. Same inside/outside split (``sdf < 0`` where
        ``density > threshold``).
        """
        pts = self.dmtet.grid * self.dmtet.radius
        density = torch.cat([self.volume.density(pts[i:i + chunk].to(self.device))
                             for i in range(0, pts.shape[0], chunk)]).double()
        raw = torch.where(density > 20, density, torch.log(torch.expm1(density.clamp_min(1e-12))))
        t = torch.tensor(self.threshold, dtype=torch.float64)
        raw_t = t if self.threshold > 20 else torch.log(torch.expm1(t.clamp_min(1e-12)))
        sdf = (raw_t - raw).clamp(-4.0, 4.0).to(self.dmtet.sdf)
        sdf = torch.where((density > self.threshold) & (sdf >= 0), torch.full_like(sdf, -1e-4), sdf)
        sdf = torch.where((density <= self.threshold) & (sdf < 0), torch.full_like(sdf, 1e-4), sdf)
        self.dmtet.sdf.copy_(sdf)

    @torch.no_grad()
    def seal_box(self) -> int:
        """Put the grid's outer layer outside (``sdf = max(|sdf|, 1e-3)``); returns the vertices moved.

        A NeRF that reaches its box (a cone's base grown to the floor) would otherwise be cut open where
        the level set meets the grid's border. Sealed, the surface is closed by a flat cap half a cell
        inside the box. The step's gradient hook keeps the layer there.
        """
        sdf = self.dmtet.sdf
        moved = self._box_boundary & (sdf <= 0)
        sdf.copy_(torch.where(self._box_boundary, sdf.abs().clamp_min(1e-3), sdf))
        return int(moved.sum())

    def keep_start_topology(self) -> HandleClosing | None:
        """Close the DMTet's thin tunnels that the start shape does not have (``cfg.close_handles``).

        Returns the :class:`~csdkit.geometry.topology.HandleClosing`, or None when it is off or the start
        shape's topology is unknown (a constant bias, or no closed start surface).
        """
        if self.cfg.close_handles <= 0 or self.start_euler is None:
            return None
        closing = close_handles(self.dmtet, self.start_euler, self.cfg.close_handles,
                                self.cfg.min_component_fraction)
        self.seal_box()
        return closing

    def colored_mesh(self, mesh: Mesh) -> Mesh:
        """``mesh`` with vertex colours from the colour field (differentiable)."""
        return mesh.replace(vertex_colors=self.volume(mesh.vertices)["albedo"])

    def render(self, mesh: Mesh, cams, background: torch.Tensor, light: torch.Tensor, mode: str) -> dict:
        return self.renderer.render(mesh, cams, shading=mode, background=background, light_dir=light,
                                    ambient=0.5, diffuse=0.5)

    def step(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """One CSD step on the extracted mesh: loss (with graph) and metrics."""
        g, c = self.generator, self.cfg
        cams, background, light = self.views.sample(c.batch_size, g)
        mode = self._modes[int(torch.multinomial(self._mode_probs, 1, generator=g))]
        mesh = self.dmtet.extract()
        if mode == "lambertian":
            mesh = self.colored_mesh(mesh)
        out = self.render(mesh, cams, background, light, mode)
        guided = self.guidance(out["rgb"].permute(0, 3, 1, 2), step=step, generator=g, cameras=cams)
        loss = guided.loss
        info = {"grad_norm": guided.grad_norm, "t": float(guided.t.float().mean()),
                "shading": float(SHADING_MODES.index(mode)), "faces": float(mesh.num_faces)}
        if c.normal_consistency:
            nc = DMTet.normal_consistency_loss(mesh)
            loss = loss + c.normal_consistency * nc
            info["reg/normal_consistency"] = float(nc.detach())
        if c.laplacian:
            lap = DMTet.laplacian_loss(mesh)
            loss = loss + c.laplacian * lap
            info["reg/laplacian"] = float(lap.detach())
        w_ent = weight_at(c.sdf_entropy, step, "sdf_entropy")
        if w_ent:
            ent = self.dmtet.sdf_entropy_loss()
            loss = loss + w_ent * ent
            info["reg/sdf_entropy"] = float(ent.detach())
        return loss, info

    @torch.no_grad()
    def export(self) -> Mesh:
        """The refined mesh without floaters, with vertex colours from the colour field (CPU)."""
        mesh = self.dmtet.export_mesh(self.cfg.min_component_fraction)
        colors = self.volume(mesh.vertices.to(self.device))["albedo"].clamp(0, 1)
        return Mesh(mesh.vertices, mesh.faces, vertex_colors=colors).to("cpu")

    @torch.no_grad()
    def preview(self, n: int = 4) -> torch.Tensor:
        """``[2 H, n W, 3]``: coloured lambertian (top) and textureless (bottom) orbit views."""
        cams, bg, light = self.views.preview(n)
        mesh = self.dmtet.extract()
        rows = [self.render(self.colored_mesh(mesh), cams, bg, light, "lambertian")["rgb"].cpu(),
                self.render(mesh, cams, bg, light, "textureless")["rgb"].cpu()]
        return image_grid(torch.cat(rows), columns=n)


@torch.no_grad()
def start_euler_characteristic(volume: ImplicitVolume, resolution: int,
                               min_component_fraction: float = 0.05) -> int | None:
    """The Euler characteristic of the start shape the NeRF was biased towards, on a ``resolution`` DMTet.

    2 for the ball biases (``"blob"``, ``"linear_blob"``); for a :class:`~csdkit.geometry.MeshDensityBias`
    (a template or mesh start), the level set ``sdf = 0`` of its lattice extracted on a DMTet of the stage's
    resolution. None for no bias, a constant or another module, or a start without a closed surface.
    """
    bias = volume.density_bias
    if isinstance(bias, str):
        return 2
    if not isinstance(bias, MeshDensityBias):
        return None
    probe = DMTet(resolution, radius=volume.radius).to(bias.sdf.device)
    probe.sdf.copy_(bias.signed_distance(probe.grid * probe.radius))
    try:
        return euler_characteristic(probe.export_mesh(min_component_fraction))
    except ValueError:  # the lattice has no zero crossing inside the box
        return None


def run_mesh_stage(stage: MeshStage, run: RunDirectory | None, *, resume: bool, progress: bool,
                   checkpoint_every: int, preview_every: int, desc: str,
                   callback: Callable[[int, dict], None] | None = None) -> TrainerResult:
    """Run the stage through the Trainer.

    On completion the start shape's topology is restored once more (:meth:`MeshStage.keep_start_topology`,
    against tunnels the refinement opened) and mesh.glb, mesh.pt, dmtet.pt, topology.json and
    turntable.png are written.
    """
    step_fn = stage.step
    if callback is not None:
        def step_fn(step: int):
            loss, info = stage.step(step)
            callback(step, {"loss": float(loss.detach()), **info})
            return loss, info

    trainer = Trainer(step_fn, modules={"dmtet": stage.dmtet, "color": stage.volume},
                      optimizers={"adam": stage.optimizer}, total_steps=stage.cfg.steps,
                      generator=stage.generator, run_dir=run, checkpoint_every=checkpoint_every,
                      preview_every=preview_every, preview_fn=lambda step: stage.preview(), progress=progress,
                      desc=desc)
    result = trainer.run(resume=resume)
    if result.status != "completed":
        return result
    at_export = stage.keep_start_topology()
    if run is not None:
        mesh = stage.export()
        topology = {"start_euler": stage.start_euler, "euler": euler_characteristic(mesh),
                    "at_start": None if stage.closing is None else stage.closing.to_dict(),
                    "at_export": None if at_export is None else at_export.to_dict()}
        atomic_write_bytes(run.path / TOPOLOGY_FILE, json.dumps(topology, indent=2).encode())
        save_glb(mesh, run.path / MESH_FILE)
        atomic_save({"vertices": mesh.vertices, "faces": mesh.faces, "vertex_colors": mesh.vertex_colors,
                     "threshold": stage.threshold}, run.path / "mesh.pt")
        save_dmtet(stage.dmtet, stage.threshold, run.path / DMTET_FILE)
        turntable(mesh, run.path / "turntable.png", stage.cfg.distance_range, stage.cfg.fov_range,
                  stage.device)
    return result


def save_dmtet(dmtet: DMTet, threshold: float, path: Path) -> Path:
    """Write ``dmtet`` atomically.

    Saved: ``resolution`` (int), ``radius`` (float), ``sdf [V]`` and ``deformation [V, 3]`` (float32, CPU;
    also as ``state_dict``) and the density ``threshold`` it was cut at.
    """
    sdf, deformation = dmtet.sdf.detach().cpu().clone(), dmtet.deformation.detach().cpu().clone()
    atomic_save({"format": "csdkit.dmtet", "version": 1, "resolution": int(dmtet.resolution),
                 "radius": float(dmtet.radius), "sdf": sdf, "deformation": deformation,
                 "state_dict": {"sdf": sdf, "deformation": deformation}, "threshold": float(threshold)}, path)
    return path


def load_dmtet(path: Path, device: torch.device | str = "cpu") -> DMTet:
    """The :class:`~csdkit.DMTet` written by :func:`save_dmtet`, on ``device``.

    Raises:
        ValueError: ``path`` is missing, unreadable, or not a csdkit DMTet file (missing keys, wrong shapes).
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"the mesh stage's DMTet is missing: {path} (run --stages mesh)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a corrupt file
        raise ValueError(f"{path} is not a readable csdkit DMTet file ({type(e).__name__}: {e})") from None
    keys = ("resolution", "radius", "sdf", "deformation")
    if not isinstance(saved, dict) or any(k not in saved for k in keys):
        raise ValueError(f"{path} is not a csdkit DMTet file (expected the keys {', '.join(keys)})")
    try:
        dmtet = DMTet(int(saved["resolution"]), radius=float(saved["radius"]))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: bad DMTet resolution / radius ({e})") from None
    sdf, deformation = saved["sdf"], saved["deformation"]
    if not (isinstance(sdf, torch.Tensor) and isinstance(deformation, torch.Tensor)
            and tuple(sdf.shape) == tuple(dmtet.sdf.shape)
            and tuple(deformation.shape) == tuple(dmtet.deformation.shape)):
        raise ValueError(f"{path}: sdf / deformation do not match a resolution-{dmtet.resolution} grid "
                         f"(expected [{dmtet.num_vertices}] and [{dmtet.num_vertices}, 3])")
    with torch.no_grad():
        dmtet.sdf.copy_(sdf.float())
        dmtet.deformation.copy_(deformation.float())
    return dmtet.to(device)


def load_stage_mesh(folder: Path) -> Mesh:
    """The mesh a finished mesh stage wrote into ``folder`` (exact tensors from ``mesh.pt``)."""
    pt = folder / "mesh.pt"
    if pt.exists():
        s = torch.load(pt, map_location="cpu", weights_only=False)
        return Mesh(s["vertices"], s["faces"], vertex_colors=s["vertex_colors"])
    if (folder / MESH_FILE).exists():
        return load_mesh(folder / MESH_FILE)
    raise ValueError(f"generate(): the mesh stage has not finished: {folder / MESH_FILE} is missing "
                     "(run --stages mesh)")


__all__ = ["DMTET_FILE", "MESH_FILE", "MeshStage", "TOPOLOGY_FILE", "load_dmtet", "load_stage_mesh", "run_mesh_stage",
           "save_dmtet", "start_euler_characteristic"]
