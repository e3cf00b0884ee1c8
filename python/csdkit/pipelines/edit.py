"""The editing job: an existing asset + a target description -> the edited asset, with CSD.

``edit()`` wires the input (a textured mesh file, a ``csdkit texture`` run directory, or an object
in memory), the prior and a :class:`csdkit.Editor`, runs it inside the shared Trainer loop and
writes the run directory::

    config.json  metrics.jsonl  checkpoints/  previews/  edit_metrics.json
    edited.glb  edited.obj (+ .mtl, .png)  turntable_original.png  turntable_edited.png
    comparison.png (original row over edited row)  report.html

The edited GLB/OBJ keeps the input's vertices, faces, UV layout and texture size, so it drops into
the input's place in a scene. A shape edit of an implicit volume writes ``edited_volume.pt`` and an
isosurface ``edited.glb`` with vertex colours instead.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..edit import DEFAULT_FIDELITY, Editor, EditResult, Region
from ..edit.editor import appearance_input
from ..geometry.mesh import Mesh
from ..geometry.textured_mesh import TexturedMesh
from ..guidance.mini import MiniPrior
from ..guidance.priors.base import DiffusionPrior
from ..render.cameras import Cameras
from ..render.mesh_renderer import MeshRenderer
from ..render.volume_renderer import VolumeRenderer
from ..training import RunDirectory, image_grid, save_png, write_report
from ..training.checkpoint import atomic_save, atomic_write_bytes, list_checkpoints
from .models import defaults_for, load_prior, resolve_device

_FN = "edit"
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")


def resolve_input(asset: Any) -> tuple[Any, str]:
    """The asset to edit and a description of where it came from.

    Accepts a :class:`~csdkit.Mesh`, :class:`~csdkit.TexturedMesh` or implicit volume as is; a mesh
    file (GLB/GLTF, OBJ+MTL+PNG, PLY, STL, OFF); or the run directory of ``csdkit texture``
    (its ``textured.glb``) or of ``csdkit edit`` (its ``edited.glb``, to chain edits).

    Raises:
        ValueError: a missing path, a folder that is no csdkit run, an unsupported file type.
    """
    if isinstance(asset, (Mesh, TexturedMesh)) or (isinstance(asset, nn.Module) and hasattr(asset, "density")):
        return asset, f"<in-memory {type(asset).__name__}>"
    if not isinstance(asset, (str, Path)):
        raise TypeError(f"{_FN}(): asset must be a csdkit.Mesh, TexturedMesh, ImplicitVolume or a path, got "
                        f"{type(asset).__name__}")
    path = Path(asset)
    if not path.exists():
        raise ValueError(f"input not found: {path}")
    if path.is_dir():
        for name in ("textured.glb", "edited.glb", "textured.obj", "edited.obj"):
            if (path / name).exists():
                return Mesh.load(path / name), str(path / name)
        raise ValueError(f"input folder {path} is not a csdkit texture or edit run (no textured.glb / "
                         "edited.glb in it)")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"input {path} has an unsupported type {path.suffix or '(no suffix)'}; expected a "
                         f"mesh file ({', '.join(MESH_SUFFIXES)}) or a csdkit run directory")
    return Mesh.load(path), str(path)


def edit(asset: Any, target_prompt: str, *, source_prompt: str | None = None,
         fidelity: float | Any = DEFAULT_FIDELITY, region: Region | str | None = None,
         prior: DiffusionPrior | str | None = None, steps: int | None = None, seed: int = 0,
         out_dir: str | Path | None = None, resume: bool = False, device: str | torch.device | None = "auto",
         progress: bool = True, init_color: float | tuple[float, float, float] | None = None,
         texture_size: int = 512, up: str = "+y", front: str = "+z", formats: tuple[str, ...] = ("glb", "obj"),
         callback: Callable[[int, dict[str, float]], None] | None = None, quiet: bool = False,
         **editor_kwargs: Any) -> EditResult:
    """Edit ``asset`` toward ``target_prompt`` (away from ``source_prompt``).

    Args:
        asset: a textured mesh file, a ``csdkit texture``/``csdkit edit`` run directory, a
            :class:`~csdkit.Mesh`, :class:`~csdkit.TexturedMesh` or :class:`~csdkit.ImplicitVolume`.
        target_prompt: what the asset should look like.
        source_prompt: what it looks like now (the negative prompt); None: plain CSD.
        fidelity: the alignment / fidelity knob (see :class:`csdkit.Editor` and ``docs/editing.md``).
        region: ``"box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX"`` in the input's own coordinates, a face-index
            file, a UV mask image, or a :class:`~csdkit.edit.Region`.
        prior: ``"mini"`` (default, embedded), ``"sd21"``, a folder, a hub id or a prior object.
        steps: optimization steps (default: 200 with the MiniPrior, 1000 with Stable Diffusion).
        seed: seeds everything.
        out_dir: run directory (None: nothing is written).
        resume: continue the run in ``out_dir``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: progress bar.
        init_color: start an untextured mesh from this flat colour (else it is an error).
        texture_size: texture side for an untextured / vertex-coloured input.
        up, front: the input's up and front axes (camera frame only).
        formats: exported mesh formats, from ``"glb"`` and ``"obj"``.
        callback: ``callback(step, info)`` after every step.
        quiet: no informational prints.
        editor_kwargs: further :class:`csdkit.Editor` arguments (``lr``, ``resolution``, ``batch_size``...).

    Returns:
        :class:`~csdkit.edit.EditResult` with ``files`` (``glb``, ``obj``, ``comparison``, ``report``...).
    """
    bad = [f for f in formats if f not in ("glb", "obj")]
    if bad:
        raise ValueError(f"{_FN}(): formats must be among ('glb', 'obj'), got {bad}")
    run = RunDirectory(out_dir) if out_dir is not None else None
    if resume and run is None:
        raise ValueError(f"{_FN}(): resume=True needs the out_dir of the run to continue")
    if run is not None and not resume and list_checkpoints(run.checkpoints):
        raise ValueError(f"{_FN}(): {run.path} already holds a run; pass resume=True (--resume) to continue it "
                         "or choose another out_dir")
    obj, source = resolve_input(asset)
    # Fail on bad input before loading a model: an untextured mesh, a region outside the asset.
    if isinstance(obj, (Mesh, TexturedMesh)):
        mesh, texture = appearance_input(obj, init_color=init_color, texture_size=texture_size)
        obj = mesh.replace(texture=texture)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model_name = prior if isinstance(prior, str) else ("mini" if prior is None else None)
    prior_obj = load_prior(prior, dev, quiet=quiet)
    d = defaults_for(prior_obj)
    is_mini = isinstance(prior_obj, MiniPrior)
    kwargs: dict[str, Any] = {"resolution": d.resolution, "batch_size": d.batch_size, "t_range": d.t_range,
                              "distance_range": d.distance_range, "fov_range": d.fov_range,
                              "view_prompts": not is_mini, "lr": 0.05 if is_mini else 0.02}
    kwargs.update(editor_kwargs)
    steps = (200 if is_mini else 1000) if steps is None else steps
    editor = Editor(prior_obj, target_prompt, source_prompt, fidelity=fidelity, region=region, steps=steps,
                    seed=seed, up=up, front=front, **kwargs)
    if run is not None and not resume:
        run.write_config({"job": "edit", "input": source, "model": model_name,
                          "prior": getattr(prior_obj, "name", type(prior_obj).__name__), "device": str(dev),
                          "init_color": init_color, "texture_size": texture_size, **editor.to_config()})
    result = editor.edit(obj, run_dir=run, resume=resume, progress=progress, callback=callback, device=dev)
    if run is not None and result.status == "completed":
        t0 = time.perf_counter()
        result.files = _write_outputs(run, editor, result, formats, dev)
        atomic_write_bytes(run.path / "edit_metrics.json", json.dumps(result.metrics, indent=2).encode())
        result.files["report"] = write_report(
            run, f"edit: {target_prompt}", results={"Original (top) and edited (bottom)":
                                                    result.files["comparison"]},
            summary={"input": source, "target": target_prompt, "source": source_prompt or "(none: plain CSD)",
                     "fidelity": editor.fidelity.to_config(),
                     "region": editor.region.source if editor.region is not None else "(whole asset)",
                     "steps": result.steps, "optimization seconds": f"{result.seconds:.1f}",
                     "export seconds": f"{time.perf_counter() - t0:.1f}",
                     **{k: f"{v:.4g}" for k, v in result.metrics.items()},
                     "files": ", ".join(p.name for p in result.files.values())})
    result.out_dir = run.path if run is not None else None
    return result


def _write_outputs(run: RunDirectory, editor: Editor, result: EditResult, formats, dev) -> dict[str, Path]:
    files: dict[str, Path] = {}
    if result.kind == "appearance":
        for fmt in formats:
            files[fmt] = result.asset.save(run.path / f"edited.{fmt}")
        views = [_mesh_turntable(m, editor, dev) for m in (result.original, result.asset)]
    else:
        state = {"state_dict": {k: v.cpu() for k, v in result.asset.state_dict().items()},
                 "region": editor.region.source if editor.region is not None else None,
                 "class": type(result.asset).__name__}
        atomic_save(state, run.path / "edited_volume.pt")
        files["volume"] = run.path / "edited_volume.pt"
        mesh = _volume_mesh(result.asset)
        if mesh is not None and "glb" in formats:
            files["glb"] = mesh.save(run.path / "edited.glb")
        views = [_volume_turntable(v, editor, dev) for v in (result.original, result.asset)]
    files["turntable_original"] = save_png(image_grid(views[0], columns=4), run.path / "turntable_original.png")
    files["turntable_edited"] = save_png(image_grid(views[1], columns=4), run.path / "turntable_edited.png")
    files["comparison"] = save_png(image_grid(torch.cat(views), columns=8), run.path / "comparison.png")
    return files


def _turntable_cameras(editor: Editor, dev, n: int = 8) -> Cameras:
    """Orbit cameras that keep the whole unit sphere in frame with a 15% margin."""
    fov = sum(editor.fov_range) / 2
    distance = max(sum(editor.distance_range) / 2, 1.15 / math.sin(math.radians(fov) / 2))
    return Cameras.orbit(n, elevation=15.0, distance=distance, fov_y=fov).to(dev)


def _mesh_turntable(mesh: Mesh, editor: Editor, dev, size: int = 256) -> torch.Tensor:
    cams = _turntable_cameras(editor, dev)
    view = mesh.normalized(up=editor.up, front=editor.front, verbose=False).to(dev)
    with torch.no_grad():
        out = MeshRenderer(size).render(view, cams, shading="lambertian", background=0.6,
                                        light_dir=torch.nn.functional.normalize(cams.position, dim=-1),
                                        ambient=0.5, diffuse=0.5)
    return out["rgb"].cpu()


def _volume_turntable(volume: nn.Module, editor: Editor, dev, size: int = 128) -> torch.Tensor:
    cams = _turntable_cameras(editor, dev)
    renderer = VolumeRenderer(size, n_samples_per_ray=editor.volume_samples * 2, grid=None, background=0.6)
    with torch.no_grad():
        return renderer.render(volume, cams, shading="albedo")["rgb"].cpu()


def _volume_mesh(volume: nn.Module, resolution: int = 96) -> Mesh | None:
    """The isosurface of the edited volume with its albedo as vertex colours (None when empty)."""
    from ..edit.volume import RegionVolume

    radius = float(volume.radius)
    step = 3 ** 0.5 * 2 * radius / 96
    threshold = -math.log(0.9) / step  # where one marching step is 10% opaque (as the bbox-fill metric)
    iso = RegionVolume.isosurface(volume, threshold, resolution) if isinstance(volume, RegionVolume) \
        else volume.isosurface(threshold, resolution)
    if iso.faces.numel() == 0:
        return None
    with torch.no_grad():
        colors = volume(iso.vertices)["albedo"].clamp(0, 1)
    return Mesh(iso.vertices.cpu(), iso.faces.cpu(), vertex_colors=colors.cpu())
