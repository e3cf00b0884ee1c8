"""The texturing job: mesh + prompt -> UV-textured mesh, optimized with Classifier Score Distillation.

``texture()`` is a short wiring of public objects (the same wiring can be done by hand, see
``examples/texture_by_hand.py``)::

    TexturedMesh (UV atlas + learnable texture)  ->  MeshRenderer (random views)
        ->  CSD guidance on the prior  ->  Adam on the texture, inside the shared Trainer loop
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..geometry.mesh import Mesh
from ..guidance.presets import guidance_preset
from ..guidance.priors.base import DiffusionPrior
from ..render.mesh_renderer import MeshRenderer
from ..training import Trainer, image_grid
from ..training.checkpoint import atomic_save
from ..uv.bake import bake_vertex_colors, transfer_texture
from ..uv.textured_mesh import TexturedMesh
from .common import (
    MeshViews,
    check_int_option,
    check_prompt,
    open_run,
    resolve_mesh,
    turntable,
    turntable_view,
    write_results,
)
from .models import defaults_for, is_mini, load_prior, resolve_device

DEFAULT = "__default__"  # sentinel: "use the prior's default" (None means "no negative prompt")
_FN = "texture"


@dataclasses.dataclass
class TextureResult:
    """What :func:`texture` returns.

    Attributes:
        mesh: the normalized mesh with its UV atlas and the final (seam-dilated) texture.
        texture: ``[S, S, 3]`` float32 in [0, 1] on the CPU, row 0 at the top.
        status: ``"completed"`` or ``"interrupted"`` (Ctrl-C; resume with ``resume=True``).
        steps: optimization steps done; seconds: optimization time (all sessions of a resumed run).
        files: output files by name (``glb``, ``obj``, ``turntable``, ``report``), when ``out_dir`` was given.
    """

    mesh: Mesh
    texture: torch.Tensor
    status: str
    steps: int
    seconds: float
    files: dict[str, Path]
    out_dir: Path | None


def _uv_mesh_state(mesh: Mesh) -> dict[str, torch.Tensor]:
    state = {"vertices": mesh.vertices.cpu(), "faces": mesh.faces.cpu(), "uv": mesh.uv.cpu(),
             "face_uv": mesh.face_uv.cpu()}
    if mesh.vertex_colors is not None:  # init_color="mesh" bakes them again on resume
        state["vertex_colors"] = mesh.vertex_colors.cpu()
    return state


def _check_init_color(value: Any) -> tuple[float, float, float] | str:
    """``init_color`` as an RGB triple in [0, 1] (a single number is a grey level), or ``"mesh"``."""
    if isinstance(value, str) and value == "mesh":
        return value
    try:
        rgb = [float(value)] * 3 if isinstance(value, (int, float)) else [float(c) for c in value]
    except (TypeError, ValueError):
        rgb = []
    if len(rgb) != 3 or not all(0.0 <= c <= 1.0 for c in rgb):
        raise ValueError(f"{_FN}(): init_color must be a number or (r, g, b) in [0, 1], or 'mesh', got {value!r}")
    return (rgb[0], rgb[1], rgb[2])


def _mesh_start_image(source: Mesh, uv_mesh: Mesh, size: int) -> torch.Tensor:
    """The texture ``[S, S, 3]`` float32 in [0, 1] that ``init_color="mesh"`` starts from: the vertex colours of
    ``uv_mesh`` baked under its atlas (dilated past the chart borders so seams do not read background), or else
    ``source``'s texture re-baked under ``uv_mesh``'s UVs (same faces needed).

    The one check of ``init_color="mesh"``: raises ValueError when ``uv_mesh`` has no vertex colours and
    ``source`` no texture (with UVs) on the same faces, saying which of the two is missing."""
    if uv_mesh.vertex_colors is not None:
        return bake_vertex_colors(uv_mesh.to("cpu"), size, dilate=True).texture
    textured = source.texture is not None and source.uv is not None
    if textured and source.num_faces == uv_mesh.num_faces:
        return transfer_texture(source.to("cpu"), uv_mesh.to("cpu"), resolution=size, dilate=True).texture
    has = (f"only a texture, on {source.num_faces} faces, while its atlas has {uv_mesh.num_faces} (decimated)"
           if textured else "none")
    raise ValueError(f"{_FN}(): init_color='mesh' needs a mesh with vertex colours (or a texture on the same "
                     f"faces as its atlas), but the mesh has {has}; pass a number or (r, g, b) instead")


def texture(mesh: Mesh | str | Path, prompt: str, *, negative_prompt: str | None = DEFAULT,
            prior: DiffusionPrior | str | None = None, steps: int | None = None, resolution: int | None = None,
            texture_size: int | None = None, batch_size: int | None = None, lr: float | None = None,
            seed: int = 0, out_dir: str | Path | None = None, parametrization: str = "pyramid",
            shading: str = "lambertian", up: str = "+y", front: str = "+z", keep_uvs: bool = False,
            init_color: float | tuple[float, float, float] | str = 0.5,
            guidance_overrides: dict[str, Any] | None = None, device: str | torch.device | None = "auto",
            resume: bool = False, callback: Callable[[int, dict[str, float]], None] | None = None,
            progress: bool = True, checkpoint_every: int | None = None, preview_every: int | None = None,
            formats: tuple[str, ...] = ("glb", "obj"), quiet: bool = False) -> TextureResult:
    """Texture ``mesh`` so that its renders match ``prompt``.

    Args:
        mesh: a :class:`~csdkit.Mesh`, a path (GLB/GLTF, OBJ, PLY, STL, OFF), or a built-in procedural
            mesh ``"@vase"``, ``"@sphere"``, ``"@torus"``.
        prompt: what the textured object should look like.
        negative_prompt: the annealed negative prompt of CSD (``None``: plain CSD, beta = 0); default:
            the prior's (the official one for Stable Diffusion, none for the MiniPrior).
        prior: a :class:`~csdkit.guidance.DiffusionPrior`, or ``"mini"`` (default, embedded),
            ``"sd21"``, a local diffusers folder or a hub id.
        steps, resolution, texture_size, batch_size, lr: optimization settings; ``None`` takes the
            prior's defaults (:mod:`csdkit.pipelines.models`).
        seed: seeds everything; a CPU run is deterministic for a fixed seed.
        out_dir: run directory (config, metrics, checkpoints, previews, GLB/OBJ, turntable, report);
            ``None`` writes nothing.
        parametrization: ``"pyramid"`` (default), ``"texels"`` or ``"hashgrid"``.
        shading: ``"lambertian"`` (renders lit from around the camera) or ``"albedo"``.
        up, front: the mesh's up and front axes (``"+y"``, ``"-z"``...), rotated to +Y up / +Z front.
        keep_uvs: keep the mesh's UVs instead of computing an atlas.
        init_color: where the texture starts: a grey level or ``(r, g, b)`` in [0, 1] (a flat colour; default
            mid-grey), or ``"mesh"``: the mesh's own vertex colours baked into the new atlas (dilated past
            the chart borders), or, for a mesh without vertex colours, its texture re-baked into it
            (ValueError if it has neither, or only a texture on other faces than its atlas'). ``"hashgrid"``
            starts from the mean of that image.
            :func:`csdkit.generate` passes ``"mesh"`` (its stage-2 mesh carries the NeRF's albedo).
        guidance_overrides: extra arguments of the ``csd-mesh-sd`` guidance preset.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        resume: continue the run in ``out_dir`` from its newest checkpoint.
        callback: called as ``callback(step, info)`` after every guidance evaluation.
        progress: show a progress bar.
        checkpoint_every, preview_every: steps between checkpoints / previews (default: steps / 10).
        formats: exported formats, from ``"glb"`` and ``"obj"``.
        quiet: no informational prints.

    Returns:
        :class:`TextureResult`.
    """
    check_prompt(_FN, prompt)
    for name, value, minimum in (("steps", steps, 0), ("resolution", resolution, 16),
                                 ("texture_size", texture_size, 16), ("batch_size", batch_size, 1),
                                 ("checkpoint_every", checkpoint_every, 1), ("preview_every", preview_every, 0)):
        check_int_option(_FN, name, value, minimum)
    if shading not in ("lambertian", "albedo"):
        raise ValueError(f"{_FN}(): shading must be 'lambertian' or 'albedo', got {shading!r}")
    init_color = _check_init_color(init_color)
    flat_color = 0.5 if init_color == "mesh" else init_color
    bad = [f for f in formats if f not in ("glb", "obj")]
    if bad:
        raise ValueError(f"{_FN}(): formats must be among ('glb', 'obj'), got {bad}")
    run = open_run(_FN, out_dir, resume)
    mesh_source, mesh = resolve_mesh(_FN, mesh)

    dev = resolve_device(device)
    torch.manual_seed(seed)
    model_name = prior if isinstance(prior, str) else ("mini" if prior is None else None)
    prior = load_prior(prior, dev, quiet=quiet)
    d = defaults_for(prior)
    steps = d.steps if steps is None else steps
    resolution = d.resolution if resolution is None else resolution
    texture_size = d.texture_size if texture_size is None else texture_size
    batch_size = d.batch_size if batch_size is None else batch_size
    lr = d.lr if lr is None else float(lr)
    negative_prompt = d.negative_prompt if negative_prompt == DEFAULT else negative_prompt
    checkpoint_every = checkpoint_every or max(1, steps // 10)
    preview_every = max(1, steps // 10) if preview_every is None else preview_every

    # ---- geometry: the normalized mesh with its atlas (saved, so a resumed run uses the same one)
    uv_file = run.path / "uv_mesh.pt" if run is not None else None
    saved_atlas = resume and uv_file is not None and uv_file.exists()
    if saved_atlas:
        s = torch.load(uv_file, map_location="cpu")
        tm = TexturedMesh.from_uv_mesh(Mesh(s["vertices"], s["faces"], uv=s["uv"], face_uv=s["face_uv"],
                                            vertex_colors=s.get("vertex_colors")),
                                       texture_size, parametrization, init_color=flat_color)
        normalized = None
    else:
        normalized = mesh.normalized(up=up, front=front, verbose=not quiet)
        tm = TexturedMesh(normalized, texture_size, parametrization, init_color=flat_color, keep_uvs=keep_uvs)
    if init_color == "mesh":  # raises, before the atlas or config is saved, when there are no colours to start from
        if normalized is None and tm.mesh.vertex_colors is None:
            normalized = mesh.normalized(up=up, front=front, verbose=False)
        tm.reset_texture(_mesh_start_image(normalized if normalized is not None else tm.mesh, tm.mesh,
                                           texture_size))
    if uv_file is not None and not saved_atlas:
        atomic_save(_uv_mesh_state(tm.mesh), uv_file)
    tm = tm.to(dev)
    tm.mesh = tm.mesh.to(dev)

    overrides = {"t_range": list(d.t_range), "negative_prompt": negative_prompt,
                 "negative_weight": [0, 1.0, 0.5, max(steps, 1)] if negative_prompt else 0.0,
                 "view_prompts": not is_mini(prior)}
    overrides.update(guidance_overrides or {})
    guidance = guidance_preset("csd-mesh-sd", prior, prompt, **overrides)
    renderer = MeshRenderer(resolution)
    optimizer = torch.optim.Adam(tm.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-15)
    generator = torch.Generator().manual_seed(seed)

    views = MeshViews(d.distance_range, d.fov_range, dev)

    def render(cams, background, light):
        return renderer.render(tm, cams, shading=shading, background=background, light_dir=light,
                               ambient=0.5, diffuse=0.5)

    def step_fn(step: int):
        cams, background, light = views.sample(batch_size, generator)
        images = render(cams, background, light)["rgb"].permute(0, 3, 1, 2)
        out = guidance(images, step=step, generator=generator, cameras=cams)
        info = {"grad_norm": out.grad_norm, "t": float(out.t.float().mean())}
        if callback is not None:
            callback(step, {"loss": float(out.loss.detach()), **info})
        return out.loss, info

    preview_views = views.preview(4)

    def preview_fn(step: int):
        with torch.no_grad():
            return image_grid(render(*preview_views)["rgb"].cpu(), columns=4)

    if run is not None and not resume:
        run.write_config({
            "job": "texture", "mesh": mesh_source or "<in-memory Mesh>", "prompt": prompt,
            "negative_prompt": negative_prompt, "prior": getattr(prior, "name", type(prior).__name__),
            "model": model_name,
            "steps": steps, "resolution": resolution, "texture_size": texture_size, "batch_size": batch_size,
            "lr": lr, "seed": seed, "parametrization": parametrization, "shading": shading, "up": up,
            "front": front, "keep_uvs": keep_uvs,
            "init_color": init_color if init_color == "mesh" else list(init_color), "device": str(dev),
            "guidance": guidance.to_config(),
            "camera": {"distance_range": d.distance_range, "fov_range": d.fov_range},
        })
    trainer = Trainer(step_fn, modules={"texture": tm.field}, optimizers={"adam": optimizer}, total_steps=steps,
                      generator=generator, run_dir=run, checkpoint_every=checkpoint_every,
                      preview_every=preview_every, preview_fn=preview_fn, progress=progress,
                      desc=f"texture '{prompt[:30]}'")
    result = trainer.run(resume=resume)

    textured = tm.textured_mesh().to("cpu")
    files: dict[str, Path] = {}
    if run is not None and result.status == "completed":
        files = write_results(
            run, prompt,
            exports={f"textured.{fmt}": (lambda path: tm.export(path)) for fmt in formats},
            images={"Turntable": ("turntable.png", lambda path: turntable(textured.to(dev), path, d.distance_range,
                                                                           d.fov_range, dev))},
            views={"textured": "textured.glb"} if "glb" in formats else None,
            view_camera=turntable_view(d.distance_range, d.fov_range),
            summary={"mesh": mesh_source or "<in-memory Mesh>", "prior": getattr(prior, "name", type(prior).__name__),
                     "steps": result.step, "optimization seconds": f"{result.seconds:.1f}"})
    return TextureResult(textured, textured.texture.cpu(), result.status, result.step, result.seconds, files,
                         run.path if run is not None else None)
