"""Shape and appearance edits of an implicit volume (:class:`csdkit.ImplicitVolume`).

The edited volume starts as a copy of the original; CSD (target prompt, source as negative) moves
its density and albedo, and the fidelity term keeps

* its renders close to the original's renders from the same views (as for meshes), and
* its per-point opacity ``1 - exp(-density * step)`` (``step`` the renderer's marching step) and
  its albedo (weighted by the original's opacity) close to the original's at random points of the box.

With a box region the result is a :class:`RegionVolume`: the original field outside the box (same
density and albedo values), the edited field inside, so geometry outside does not move.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..geometry.implicit_volume import Isosurface
from ..geometry.isosurface import marching_tetrahedra
from ..render.shading import PointLights
from ..render.volume_renderer import VolumeRenderer
from ..training import Trainer, image_grid
from .region import Region
from .result import EditResult

_FN = "Editor.edit"
#: Random points per step for the field fidelity term.
FIELD_POINTS = 4096


class RegionVolume(nn.Module):
    """``edited`` inside ``region``'s box, ``original`` outside (a geometry for :class:`VolumeRenderer`).

    Args:
        original: the unedited volume (kept frozen).
        edited: the volume being optimized (same box).
        region: a box :class:`~csdkit.editing.region.Region` in the volumes' coordinates.
    """

    def __init__(self, original: nn.Module, edited: nn.Module, region: Region) -> None:
        super().__init__()
        if region.kind != "box":
            raise ValueError(f"{_FN}(): a shape edit takes a box region, got a {region.kind} region "
                             f"({region.source})")
        self.edited = edited  # first, so parameters() starts with the trainable ones (dtype/device probe)
        self.original = original
        self.region = region
        self.radius = original.radius

    @property
    def aabb(self) -> torch.Tensor:
        return self.original.aabb

    def _split(self, points: torch.Tensor, fn_in, fn_out):
        """Evaluate ``fn_in`` on the points inside the box and ``fn_out`` on the others (each field only
        where it is used), and put the results back in the points' order."""
        inside = self.region.contains(points)
        n_in = int(inside.sum())
        if n_in == points.shape[0]:
            return fn_in(points)
        if n_in == 0:
            return fn_out(points)
        idx_in, idx_out = inside.nonzero().squeeze(1), (~inside).nonzero().squeeze(1)
        a, b = fn_in(points[idx_in]), fn_out(points[idx_out])
        order = torch.argsort(torch.cat([idx_in, idx_out]))
        if isinstance(a, dict):
            return {k: torch.cat([a[k], b[k].to(a[k].dtype)])[order] for k in a}
        return torch.cat([a, b])[order]

    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density ``[N]`` at ``points [N, 3]``: the edited field's inside the box, the original's outside."""
        return self._split(points, self.edited.density, self.original.density)

    def forward(self, points: torch.Tensor, with_normals: bool = False) -> dict[str, torch.Tensor]:
        """Like :meth:`csdkit.ImplicitVolume.forward`, composed from the two fields by the box."""
        def outside(p):
            with torch.no_grad():
                return self.original(p, with_normals=with_normals)

        return self._split(points, lambda p: self.edited(p, with_normals=with_normals), outside)

    def isosurface(self, threshold: float = 25.0, resolution: int = 128) -> Isosurface:
        """Mesh of the level set ``density = threshold`` of the composed field (see ImplicitVolume.isosurface)."""
        w = next(self.edited.parameters())
        lin = torch.linspace(-self.radius, self.radius, resolution, dtype=w.dtype, device=w.device)
        pts = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(-1, 3)
        with torch.no_grad():
            grid = torch.cat([self.density(pts[i:i + 2**18]) for i in range(0, pts.shape[0], 2**18)])
        verts, faces = marching_tetrahedra(grid.reshape(resolution, resolution, resolution), threshold,
                                           bounds=(-self.radius, self.radius))
        return Isosurface(verts.float(), faces)


def _frozen(module: nn.Module) -> nn.Module:
    out = copy.deepcopy(module)
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def _param_groups(volume: nn.Module, lr: float) -> list[dict]:
    groups = getattr(volume, "parameter_groups", None)
    if callable(groups):
        return groups(lr_encoding=lr, lr_network=lr / 10)
    return [{"params": [p for p in volume.parameters() if p.requires_grad], "lr": lr}]


def edit_volume(editor, volume: nn.Module, *, run_dir, resume, progress, callback, checkpoint_every,
                preview_every, device):
    """Shape + appearance edit of ``volume`` by ``editor`` (see the module doc); returns an ``EditResult``."""
    dev = device
    original = _frozen(volume).to(dev)
    edited = copy.deepcopy(volume).to(dev)
    for p in edited.parameters():
        p.requires_grad_(True)
    geometry = edited if editor.region is None else RegionVolume(original, edited, editor.region)
    if editor.region is not None:
        _check_region_hits(editor.region, original)
    renderer = VolumeRenderer(editor.volume_resolution, n_samples_per_ray=editor.volume_samples,
                              grid_resolution=32)
    reference_renderer = VolumeRenderer(editor.volume_resolution, n_samples_per_ray=editor.volume_samples,
                                        grid_resolution=32)
    reference_renderer.update_grid(original, 0, force=True)
    step_size = renderer.step_size(float(volume.radius))
    optimizer = torch.optim.Adam(_param_groups(edited, editor.lr), betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(editor.seed)
    guidance = editor.guidance
    radius = float(volume.radius)

    def render(r, geom, cams, background, light, gen=None):
        lights = PointLights.at(light * cams.distance[:, None], ambient=0.5, diffuse=0.5)
        return r.render(geom, cams, shading=editor.shading, lights=lights, background=background,
                        generator=gen)["rgb"]

    def step_fn(step: int):
        renderer.update_grid(geometry, step, generator=generator)
        cams, background, light = editor.sample_views(editor.batch_size, generator, dev)
        bg = tuple(background[0].tolist())
        images = render(renderer, geometry, cams, bg, light, generator)
        out = guidance(images.permute(0, 3, 1, 2), step=step, generator=generator, cameras=cams)
        loss = out.loss
        info = {"grad_norm": out.grad_norm, "t": float(out.t.float().mean())}
        lam = editor.fidelity(step)
        if lam > 0:
            with torch.no_grad():
                reference = render(reference_renderer, original, cams, bg, light)
            fid = editor.fidelity_loss(images, reference, lam)
            pts = (torch.rand(FIELD_POINTS, 3, generator=generator) * 2 - 1).to(dev) * radius
            a, b = geometry(pts), None
            with torch.no_grad():
                b = original(pts)
            alpha_a = 1 - torch.exp(-a["density"] * step_size)
            alpha_b = 1 - torch.exp(-b["density"] * step_size)
            field = ((alpha_a - alpha_b) ** 2).mean() + (alpha_b[:, None] * (a["albedo"] - b["albedo"]) ** 2).mean()
            fid = fid + 0.5 * lam * field * FIELD_POINTS / 1024
            loss = loss + fid
            info["fidelity_loss"] = float(fid.detach())
        if callback is not None:
            callback(step, {"loss": float(loss.detach()), **info})
        return loss, info

    preview_cams = editor.eval_cameras(4, dev)
    preview_light = torch.nn.functional.normalize(preview_cams.position, dim=-1)

    def preview_fn(step: int):
        with torch.no_grad():
            before = render(reference_renderer, original, preview_cams, (0.5, 0.5, 0.5), preview_light)
            after = render(renderer, geometry, preview_cams, (0.5, 0.5, 0.5), preview_light)
        return image_grid(torch.cat([before, after]).cpu(), columns=4)

    trainer = Trainer(step_fn, modules={"volume": edited}, optimizers={"adam": optimizer},
                      total_steps=editor.steps, generator=generator, run_dir=run_dir,
                      checkpoint_every=checkpoint_every, preview_every=preview_every, preview_fn=preview_fn,
                      progress=progress, desc=f"edit '{editor.target_prompt[:30]}'")
    result = trainer.run(resume=resume)
    for p in edited.parameters():
        p.requires_grad_(False)
    metrics = volume_metrics(original, geometry, radius, step_size)
    return EditResult("shape", geometry, original, None, None, None, result.status, result.step, result.seconds,
                      metrics)


def _check_region_hits(region: Region, original: nn.Module, resolution: int = 32) -> None:
    occupancy = occupied(original, float(original.radius), resolution)
    lin = torch.linspace(-original.radius, original.radius, resolution)
    pts = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(-1, 3)
    w = next(original.parameters())
    inside = region.contains(pts.to(w.device, w.dtype)).reshape(occupancy.shape)
    if not bool((inside & occupancy).any()):
        raise ValueError(f"region: the box {region.source[4:]} contains no part of the asset (the volume "
                         f"occupies {_extent(occupancy, float(original.radius))})")


def _extent(occ: torch.Tensor, radius: float) -> str:
    if not bool(occ.any()):
        return "nothing"
    r = occ.shape[0]
    idx = occ.nonzero().float()
    lo, hi = (idx.min(0).values / (r - 1) * 2 - 1) * radius, (idx.max(0).values / (r - 1) * 2 - 1) * radius
    return "box " + ",".join(f"{v:.3g}" for v in torch.cat([lo, hi]).tolist())


@torch.no_grad()
def occupied(volume: nn.Module, radius: float, resolution: int = 48, alpha: float = 0.1,
             samples_per_ray: int = 96) -> torch.Tensor:
    """``[R, R, R]`` bool grid: points where one marching step's opacity exceeds ``alpha``."""
    w = next(volume.parameters())
    lin = torch.linspace(-radius, radius, resolution, dtype=w.dtype, device=w.device)
    pts = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(-1, 3)
    step = 3 ** 0.5 * 2 * radius / samples_per_ray
    dens = torch.cat([volume.density(pts[i:i + 2**17]) for i in range(0, pts.shape[0], 2**17)])
    return (1 - torch.exp(-dens * step) > alpha).reshape(resolution, resolution, resolution).cpu()


@torch.no_grad()
def bbox_fill(volume: nn.Module, radius: float, resolution: int = 48, samples_per_ray: int = 96) -> float:
    """Occupied fraction of the occupied region's bounding box (a ball ~0.52, a cube ~1, a torus less)."""
    occ = occupied(volume, radius, resolution, samples_per_ray=samples_per_ray)
    if not bool(occ.any()):
        return 0.0
    idx = occ.nonzero()
    lo, hi = idx.min(0).values, idx.max(0).values
    box = occ[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
    return float(box.float().mean())


@torch.no_grad()
def volume_metrics(original: nn.Module, edited: nn.Module, radius: float, step_size: float) -> dict[str, float]:
    """``bbox_fill`` of the original and the edited volume, and the changed fraction of occupied voxels."""
    samples = max(8, round(3 ** 0.5 * 2 * radius / step_size))
    occ_a = occupied(original, radius, samples_per_ray=samples)
    occ_b = occupied(edited, radius, samples_per_ray=samples)
    union = (occ_a | occ_b).sum().clamp_min(1)
    ext = occ_b.nonzero()
    size = 0.0
    if ext.numel():
        size = float((ext.max(0).values - ext.min(0).values + 1).max()) / occ_b.shape[0] * 2 * radius
    return {"bbox_fill_original": bbox_fill(original, radius, samples_per_ray=samples),
            "bbox_fill": bbox_fill(edited, radius, samples_per_ray=samples), "extent": size,
            "occupancy_change": float((occ_a ^ occ_b).sum() / union)}
