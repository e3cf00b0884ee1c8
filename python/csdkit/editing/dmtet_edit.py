"""Shape edits of a :class:`csdkit.DMTet` (a deformable tet grid with a per-vertex SDF).

Each step extracts the surface of the edited copy by marching tetrahedra (differentiable w.r.t. the SDF
and the deformation), renders it with an albedo that is no parameter (DMTet holds no colour): per surface
vertex the colour of the nearest vertex of ``Editor(dmtet_color_source=mesh)``, else one flat
``Editor(dmtet_color=...)``; and applies CSD. The fidelity term keeps the renders close to the original
surface's renders and the SDF / deformation close to the original's (mean squared difference over the
grid vertices, weighted like the render term). Normal-consistency and Laplacian terms on the extracted
surface (``Editor(dmtet_normal_consistency=..., dmtet_laplacian=...)``, in the renders' frame) keep it
smooth against the noise the guidance adds; the step info reports them as ``reg/normal_consistency`` and
``reg/laplacian``. The SDF and deformation gradients are averaged over the surface's grid vertices with a
Gaussian (``Editor(dmtet_smoothing=...)``, :func:`csdkit.geometry.tet_grid.smooth_surface_gradient`), and
the renders are antialiased so the outline moves the surface too. With a box region only grid vertices
inside the box are optimized (their gradient is masked, and the result takes the original's values
outside, bit for bit), so tets with all four corners outside the box keep exactly their original surface.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..geometry.mesh_regularizers import laplacian_loss, normal_consistency_loss
from ..geometry.tet_grid import smooth_surface_gradient
from ..render.mesh_renderer import MeshRenderer
from ..training import Trainer, image_grid
from .result import EditResult

_FN = "Editor.edit"


def edit_dmtet(editor, dmtet: nn.Module, *, run_dir, resume, progress, callback, checkpoint_every,
               preview_every, device) -> EditResult:
    """Shape edit of ``dmtet`` by ``editor`` (see the module doc)."""
    dev = device
    original = copy.deepcopy(dmtet).to(dev)
    for p in original.parameters():
        p.requires_grad_(False)
    edited = copy.deepcopy(dmtet).to(dev)
    for p in edited.parameters():
        p.requires_grad_(True)
    reference_mesh = original.extract().detach()
    inside = None
    if editor.dmtet_smoothing > 0:  # before the region mask: the mask applies to the blurred gradient
        n = dmtet.resolution + 1
        edited.sdf.register_hook(lambda g: smooth_surface_gradient(g[:, None], n, editor.dmtet_smoothing)[:, 0])
        edited.deformation.register_hook(lambda g: smooth_surface_gradient(g, n, editor.dmtet_smoothing))
    if editor.region is not None:
        if editor.region.kind != "box":
            raise ValueError(f"{_FN}(): a shape edit takes a box region, got a {editor.region.kind} region "
                             f"({editor.region.source})")
        inside = editor.region.contains(original.vertices.detach().double()).to(dev)
        on_surface = editor.region.contains(reference_mesh.vertices.double())
        if not bool(on_surface.any()):
            lo, hi = (t.double().cpu() for t in reference_mesh.bounds())
            extent = ",".join(f"{v:.4g}" for v in torch.cat([lo, hi]).tolist())
            raise ValueError(f"region: the box {editor.region.source[4:]} contains no part of the asset (its "
                             f"surface spans {extent})")
        edited.sdf.register_hook(lambda g: g * inside.to(g.dtype))
        edited.deformation.register_hook(lambda g: g * inside.to(g.dtype)[:, None])
    renderer = MeshRenderer(editor.resolution, antialias=True)  # silhouettes move the surface too
    optimizer = torch.optim.Adam(edited.parameters(), lr=editor.lr * 0.2, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(editor.seed)
    guidance = editor.guidance
    scale = 1.0 / float(dmtet.radius)  # renders see the box scaled to the unit sphere's frame

    def framed(mesh):  # the renders' frame: the DMTet's box scaled to radius 1
        return mesh.replace(vertices=mesh.vertices * scale)

    reference_colors = editor.dmtet_vertex_colors(reference_mesh.vertices)

    def render(mesh, cams, background, light, colors=None):
        colors = editor.dmtet_vertex_colors(mesh.vertices) if colors is None else colors
        view = framed(mesh).replace(vertex_colors=colors)
        return renderer.render(view, cams, shading=editor.shading, background=background,
                               light_dir=light, ambient=0.5, diffuse=0.5)["rgb"]

    def step_fn(step: int):
        cams, background, light = editor.sample_views(editor.batch_size, generator, dev)
        mesh = edited.extract()
        images = render(mesh, cams, background, light)
        out = guidance(images.permute(0, 3, 1, 2), step=step, generator=generator, cameras=cams)
        loss = out.loss
        info = {"grad_norm": out.grad_norm, "t": float(out.t.float().mean())}
        for name, weight, term in (("normal_consistency", editor.dmtet_normal_consistency, normal_consistency_loss),
                                   ("laplacian", editor.dmtet_laplacian, laplacian_loss)):
            if weight > 0:
                reg = term(framed(mesh))
                loss = loss + weight * reg
                info[f"reg/{name}"] = float(reg.detach())
        lam = editor.fidelity(step)
        if lam > 0:
            with torch.no_grad():
                reference = render(reference_mesh, cams, background, light, reference_colors)
            fid = editor.fidelity_loss(images, reference, lam)
            fid = fid + 0.5 * lam * (((edited.sdf - original.sdf) ** 2).mean()
                                     + ((edited.deformation - original.deformation) ** 2).mean())
            loss = loss + fid
            info["fidelity_loss"] = float(fid.detach())
        if callback is not None:
            callback(step, {"loss": float(loss.detach()), **info})
        return loss, info

    preview_cams = editor.eval_cameras(4, dev)
    preview_light = torch.nn.functional.normalize(preview_cams.position, dim=-1)

    def preview_fn(step: int):
        with torch.no_grad():
            before = render(reference_mesh, preview_cams, 0.5, preview_light, reference_colors)
            after = render(edited.extract(), preview_cams, 0.5, preview_light)
        return image_grid(torch.cat([before, after]).cpu(), columns=4)

    trainer = Trainer(step_fn, modules={"dmtet": edited}, optimizers={"adam": optimizer},
                      total_steps=editor.steps, generator=generator, run_dir=run_dir,
                      checkpoint_every=checkpoint_every, preview_every=preview_every, preview_fn=preview_fn,
                      progress=progress, desc=f"edit '{editor.target_prompt[:30]}'")
    result = trainer.run(resume=resume)
    with torch.no_grad():
        if inside is not None:  # outside the box: the original's values themselves
            edited.sdf.copy_(torch.where(inside, edited.sdf, original.sdf))
            edited.deformation.copy_(torch.where(inside[:, None], edited.deformation, original.deformation))
    for p in edited.parameters():
        p.requires_grad_(False)
    metrics = {"inside_fraction_original": float((original.sdf < 0).float().mean()),
               "inside_fraction": float((edited.sdf < 0).float().mean()),
               "sdf_change": float((edited.sdf - original.sdf).abs().mean()),
               "bbox_fill_original": _grid_fill(original), "bbox_fill": _grid_fill(edited)}
    return EditResult("shape", edited, original, None, None, None, result.status, result.step, result.seconds,
                      metrics)


@torch.no_grad()
def _grid_fill(dmtet: nn.Module) -> float:
    """Fraction of the grid vertices inside the surface's bounding box that are inside the surface."""
    v = dmtet.vertices
    solid = dmtet.sdf < 0
    if not bool(solid.any()):
        return 0.0
    lo, hi = v[solid].min(0).values, v[solid].max(0).values
    in_box = ((v >= lo) & (v <= hi)).all(-1)
    return float(solid[in_box].float().mean())
