"""The editing job: an existing asset + a target description -> the edited asset, with CSD.

``edit()`` wires the input (a textured mesh file, a ``csdkit texture`` run directory, or an object
in memory), the prior and a :class:`csdkit.Editor`, runs it inside the shared Trainer loop and
writes the run directory::

    config.json  metrics.jsonl  checkpoints/  previews/  edit_metrics.json
    edited.glb  edited.obj (+ .mtl, .png)  original.glb  turntable_original.png  turntable_edited.png
    comparison.png (original row over edited row)  report.html (with a linked 3D view of both GLBs)

The edited GLB/OBJ keeps the input's vertices, faces, UV layout and texture size, so it drops into
the input's place in a scene. A shape edit of an implicit volume writes ``edited_volume.pt`` and an
isosurface ``edited.glb`` with vertex colours instead (a DMTet: ``edited_dmtet.pt`` and its surface).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..editing import DEFAULT_FIDELITY, Editor, EditResult, Region, appearance_input
from ..editing.volume import RegionVolume
from ..geometry.dmtet import DMTet
from ..geometry.mesh import Mesh
from ..guidance.priors.base import DiffusionPrior
from ..io import load_mesh, save_mesh
from ..render.mesh_renderer import MeshRenderer
from ..render.volume_renderer import VolumeRenderer
from ..training import RunDirectory, image_grid, save_png
from ..training.checkpoint import atomic_save, atomic_write_bytes
from ..uv.textured_mesh import TexturedMesh
from .common import check_prompt, open_run, turntable_cameras, write_results
from .generate_mesh import DMTET_FILE, load_dmtet, load_stage_mesh
from .generate_nerf import VOLUME_FILE, load_volume
from .models import defaults_for, is_mini, load_prior, resolve_device

_FN = "edit"
#: Default steps with the MiniPrior (the issue's budget: an appearance edit in <= 60 s on a 2-core CPU)
#: and with Stable Diffusion.
MINI_STEPS, SD_STEPS = 150, 1000
MESH_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
#: What of a ``csdkit generate`` run directory an edit takes (``edit(stage=...)``, ``csdkit edit --stage``).
STAGES = ("auto", "nerf", "mesh")


def _run_job(folder: Path) -> str | None:
    """The ``job`` named in a run directory's config.json (None when absent or unreadable)."""
    try:
        return json.loads((folder / "config.json").read_text()).get("job")
    except (OSError, ValueError, AttributeError):
        return None


def check_stage(stage: Any) -> str:
    """``stage`` itself when it is one of :data:`STAGES` (ValueError listing them otherwise)."""
    if not isinstance(stage, str) or stage not in STAGES:
        raise ValueError(f"{_FN}(): stage must be one of {STAGES}, got {stage!r}")
    return stage


def resolve_input(asset: Any, stage: str = "auto") -> tuple[Any, str]:
    """The asset to edit and a description of where it came from.

    Accepts a :class:`~csdkit.Mesh`, :class:`~csdkit.TexturedMesh` or implicit volume as is; a mesh
    file (GLB/GLTF, OBJ+MTL+PNG, PLY, STL, OFF); or the run directory of ``csdkit texture``
    (its ``textured.glb``), of ``csdkit edit`` (its ``edited.glb``, to chain edits) or of ``csdkit generate``.
    Of a generate run, ``stage`` picks what is edited: ``"mesh"`` its mesh stage's DMTet ``mesh/dmtet.pt``
    (a shape edit, each surface vertex coloured as its nearest vertex of ``mesh/mesh.pt``), ``"nerf"`` its saved NeRF
    ``nerf/volume.pt`` (a shape + appearance edit), ``"auto"`` the DMTet when there is one, else the NeRF.

    Raises:
        ValueError: a missing path, a folder that is no csdkit run, an unsupported file type, a bad
            ``stage``, a ``stage`` other than ``"auto"`` for an input that is no generate run, a generate
            run without the file its ``stage`` needs.
    """
    obj, source, _ = _resolve(asset, stage)
    return obj, source


def _resolve(asset: Any, stage: str) -> tuple[Any, str, str | None]:
    """:func:`resolve_input` plus the generate-run stage edited (``"mesh"`` / ``"nerf"``; None for other inputs)."""
    check_stage(stage)
    if isinstance(asset, (Mesh, TexturedMesh, DMTet)) or (isinstance(asset, nn.Module) and hasattr(asset, "density")):
        _no_stage(stage, f"<in-memory {type(asset).__name__}>")
        return asset, f"<in-memory {type(asset).__name__}>", None
    if not isinstance(asset, (str, Path)):
        raise TypeError(f"{_FN}(): asset must be a csdkit.Mesh, TexturedMesh, ImplicitVolume or a path, got "
                        f"{type(asset).__name__}")
    path = Path(asset)
    if not path.exists():
        raise ValueError(f"input not found: {path}")
    if path.is_dir() and _run_job(path) == "generate":
        return _resolve_generate_run(path, stage)
    _no_stage(stage, str(path))
    if path.is_dir():
        for name in ("textured.glb", "edited.glb", "textured.obj", "edited.obj"):
            if (path / name).exists():
                return load_mesh(path / name), str(path / name), None
        raise ValueError(f"input folder {path} is not a csdkit texture or edit run (no textured.glb / "
                         "edited.glb in it)")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise ValueError(f"input {path} has an unsupported type {path.suffix or '(no suffix)'}; expected a "
                         f"mesh file ({', '.join(MESH_SUFFIXES)}) or a csdkit run directory")
    return load_mesh(path), str(path), None


def _no_stage(stage: str, source: str) -> None:
    if stage != "auto":
        raise ValueError(f"{_FN}(): stage={stage!r} applies only to a csdkit generate run directory; the input "
                         f"{source} is not one (use stage='auto')")


def _resolve_generate_run(path: Path, stage: str) -> tuple[Any, str, str]:
    """The DMTet or NeRF of the generate run in ``path`` that ``stage`` picks."""
    dmtet_file, volume_file = path / "mesh" / DMTET_FILE, path / "nerf" / VOLUME_FILE
    if stage == "mesh" or (stage == "auto" and dmtet_file.exists()):
        if not dmtet_file.exists():
            there = f"it has the NeRF {volume_file} (stage='nerf' edits it)" if volume_file.exists() else \
                f"it has no NeRF {volume_file} either (no stage has finished)"
            raise ValueError(f"{_FN}(): stage='mesh' needs the mesh stage's DMTet {dmtet_file}, which is missing; "
                             f"{there}")
        return load_dmtet(dmtet_file, torch.device("cpu")), str(dmtet_file), "mesh"
    if not volume_file.exists():
        if stage == "nerf":
            there = f"it has the mesh stage's DMTet {dmtet_file} (stage='mesh' edits it)" if dmtet_file.exists() \
                else f"it has no DMTet {dmtet_file} either (no stage has finished)"
            raise ValueError(f"{_FN}(): stage='nerf' needs the NeRF {volume_file}, which is missing; {there}")
        raise ValueError(f"input {path} is a csdkit generate run whose nerf stage has not finished "
                         f"({volume_file} is missing)")
    return load_volume(volume_file, torch.device("cpu")), str(volume_file), "nerf"


def _stage_color_source(mesh_pt: Path) -> Mesh | None:
    """The mesh stage's mesh (:func:`~csdkit.pipelines.generate_mesh.load_stage_mesh` of ``mesh_pt``'s folder)
    with vertex colours, in the DMTet's coordinates.

    None when it is missing, unreadable or has no vertex colours: the Editor then renders its default flat
    colour (:data:`~csdkit.editing.DEFAULT_DMTET_COLOR`)."""
    try:
        mesh = load_stage_mesh(mesh_pt.parent)
    except Exception:  # noqa: BLE001 - any unreadable stage mesh falls back to the Editor's flat colour
        return None
    return mesh if mesh.vertex_colors is not None and mesh.num_vertices > 0 else None


def edit(asset: Any, target_prompt: str, *, source_prompt: str | None = None,
         fidelity: float | Any = DEFAULT_FIDELITY, region: Region | str | None = None,
         prior: DiffusionPrior | str | None = None, steps: int | None = None, seed: int = 0,
         out_dir: str | Path | None = None, resume: bool = False, device: str | torch.device | None = "auto",
         progress: bool = True, init_color: float | tuple[float, float, float] | None = None,
         texture_size: int = 512, stage: str = "auto", up: str = "+y", front: str = "+z",
         formats: tuple[str, ...] = ("glb", "obj"), callback: Callable[[int, dict[str, float]], None] | None = None,
         quiet: bool = False,
         **editor_kwargs: Any) -> EditResult:
    """Edit ``asset`` toward ``target_prompt`` (away from ``source_prompt``).

    Args:
        asset: a textured mesh file, a ``csdkit texture``/``csdkit edit``/``csdkit generate`` run directory,
            a :class:`~csdkit.Mesh`, :class:`~csdkit.TexturedMesh`, :class:`~csdkit.ImplicitVolume` or
            :class:`~csdkit.DMTet`.
        target_prompt: what the asset should look like.
        source_prompt: what it looks like now (the negative prompt); None: plain CSD.
        fidelity: the alignment / fidelity knob (see :class:`csdkit.Editor` and ``docs/editing.md``).
        region: ``"box:XMIN,YMIN,ZMIN,XMAX,YMAX,ZMAX"`` in the input's own coordinates, a face-index
            file, a UV mask image, or a :class:`~csdkit.editing.Region`.
        prior: ``"mini"`` (default, embedded), ``"sd21"``, a folder, a hub id or a prior object.
        steps: optimization steps (default: 150 with the MiniPrior, 1000 with Stable Diffusion).
        seed: seeds everything.
        out_dir: run directory (None: nothing is written).
        resume: continue the run in ``out_dir``.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: progress bar.
        init_color: start an untextured mesh from this flat colour (else it is an error).
        texture_size: texture side for an untextured / vertex-coloured input.
        stage: of a ``csdkit generate`` run directory, ``"mesh"`` edits its DMTet ``mesh/dmtet.pt``,
            ``"nerf"`` its NeRF ``nerf/volume.pt``, ``"auto"`` (default) the DMTet if there is one, else
            the NeRF. Any other input takes only ``"auto"``. Recorded in config.json as the stage edited
            (None for inputs that are no generate run).
        up, front: the input's up and front axes (camera frame only).
        formats: exported mesh formats, from ``"glb"`` and ``"obj"``.
        callback: ``callback(step, info)`` after every step.
        quiet: no informational prints.
        editor_kwargs: further :class:`csdkit.Editor` arguments (``lr``, ``resolution``, ``batch_size``...).

    Returns:
        :class:`~csdkit.editing.EditResult` with ``files`` (``glb``, ``obj``, ``comparison``, ``report``...).
    """
    check_prompt(_FN, target_prompt, "target_prompt")
    check_stage(stage)
    bad = [f for f in formats if f not in ("glb", "obj")]
    if bad:
        raise ValueError(f"{_FN}(): formats must be among ('glb', 'obj'), got {bad}")
    run = open_run(_FN, out_dir, resume)
    obj, source, used_stage = _resolve(asset, stage)
    # Fail on bad input before loading a model: an untextured mesh, a region outside the asset.
    if isinstance(obj, (Mesh, TexturedMesh)):
        mesh, texture = appearance_input(obj, init_color=init_color, texture_size=texture_size)
        obj = mesh.replace(texture=texture)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model_name = prior if isinstance(prior, str) else ("mini" if prior is None else None)
    prior_obj = load_prior(prior, dev, quiet=quiet)
    d = defaults_for(prior_obj)
    mini = is_mini(prior_obj)
    kwargs: dict[str, Any] = {"resolution": d.resolution, "batch_size": d.batch_size, "t_range": d.t_range,
                              "distance_range": d.distance_range, "fov_range": d.fov_range,
                              "view_prompts": not mini, "lr": 0.05 if mini else 0.02}
    color_source = None  # a generate run's DMTet takes its colours from the stage's mesh.pt (unless told)
    if used_stage == "mesh" and not {"dmtet_color", "dmtet_color_source"} & set(editor_kwargs):
        color_source = Path(source).parent / "mesh.pt"
        kwargs["dmtet_color_source"] = _stage_color_source(color_source)
        if kwargs["dmtet_color_source"] is None:
            color_source = None
    kwargs.update(editor_kwargs)
    steps = (MINI_STEPS if mini else SD_STEPS) if steps is None else steps
    editor = Editor(prior_obj, target_prompt, source_prompt, fidelity=fidelity, region=region, steps=steps,
                    seed=seed, up=up, front=front, **kwargs)
    if run is not None and not resume:
        run.write_config({"job": "edit", "input": source, "stage": used_stage,
                          "asset": str(asset) if isinstance(asset, (str, Path)) else source, "model": model_name,
                          "prior": getattr(prior_obj, "name", type(prior_obj).__name__), "device": str(dev),
                          "init_color": init_color, "texture_size": texture_size, **editor.to_config(),
                          **({"dmtet_color_source": str(color_source)} if color_source is not None else {})})
    result = editor.edit(obj, run_dir=run, resume=resume, progress=progress, callback=callback, device=dev)
    if run is not None and result.status == "completed":
        result.files = _write_outputs(run, editor, result, source, formats, dev)
    result.out_dir = run.path if run is not None else None
    return result


def _write_outputs(run: RunDirectory, editor: Editor, result: EditResult, source: str, formats,
                   dev) -> dict[str, Path]:
    exports: dict[str, Any] = {}
    if result.kind == "appearance":
        # the input as it was edited from, for the report's side-by-side 3D view (written first: the result
        # files are keyed by suffix, so files["glb"] is the edited one)
        if "glb" in formats:
            exports["original.glb"] = lambda path: save_mesh(result.original, path)
        for fmt in formats:
            exports[f"edited.{fmt}"] = lambda path: save_mesh(result.asset, path)
        views = [_mesh_turntable(m, editor, dev) for m in (result.original, result.asset)]
    else:
        def save_volume(path: Path) -> Path:
            atomic_save({"state_dict": {k: v.cpu() if isinstance(v, torch.Tensor) else v
                                        for k, v in result.asset.state_dict().items()},
                         "region": editor.region.source if editor.region is not None else None,
                         "class": type(result.asset).__name__}, path)
            return path

        exports["edited_dmtet.pt" if isinstance(result.asset, DMTet) else "edited_volume.pt"] = save_volume
        meshes = {"original.glb": _shape_mesh(result.original, editor), "edited.glb": _shape_mesh(result.asset, editor)}
        for name, mesh in meshes.items():
            if mesh is not None and "glb" in formats:
                exports[name] = lambda path, mesh=mesh: save_mesh(mesh, path)
        if isinstance(result.asset, DMTet):
            views = [_mesh_turntable(m, editor, dev) for m in meshes.values()]
        else:
            views = [_volume_turntable(v, editor, dev) for v in (result.original, result.asset)]
    atomic_write_bytes(run.path / "edit_metrics.json", json.dumps(result.metrics, indent=2).encode())
    images = {
        "Original (top) and edited (bottom)": ("comparison.png", lambda p: save_png(
            image_grid(torch.cat(views), columns=8), p)),
        "Original": ("turntable_original.png", lambda p: save_png(image_grid(views[0], columns=4), p)),
        "Edited": ("turntable_edited.png", lambda p: save_png(image_grid(views[1], columns=4), p)),
    }
    summary = {"input": source, "target": editor.target_prompt,
               "source": editor.source_prompt or "(none: plain CSD)", "fidelity": editor.fidelity.to_config(),
               "region": editor.region.source if editor.region is not None else "(whole asset)",
               "steps": result.steps, "optimization seconds": f"{result.seconds:.1f}",
               **{k: f"{v:.4g}" for k, v in result.metrics.items()}}
    glbs = [name for name in ("original.glb", "edited.glb") if name in exports]
    return write_results(run, f"edit: {editor.target_prompt}", exports=exports, images=images, summary=summary,
                         views={Path(name).stem: name for name in glbs} or None)


def _mesh_turntable(mesh: Mesh, editor: Editor, dev, size: int = 256) -> torch.Tensor:
    cams = turntable_cameras(8, editor.distance_range, editor.fov_range, dev)
    view = mesh.normalized(up=editor.up, front=editor.front, verbose=False).to(dev)
    with torch.no_grad():
        out = MeshRenderer(size, antialias=True).render(view, cams, shading="lambertian", background=0.6,
                                        light_dir=torch.nn.functional.normalize(cams.position, dim=-1),
                                        ambient=0.5, diffuse=0.5)
    return out["rgb"].cpu()


def _volume_turntable(volume: nn.Module, editor: Editor, dev, size: int = 64) -> torch.Tensor:
    cams = turntable_cameras(8, editor.distance_range, editor.fov_range, dev)
    renderer = VolumeRenderer(size, n_samples_per_ray=editor.volume_samples, grid_resolution=32,
                              background=0.6)
    with torch.no_grad():
        renderer.update_grid(volume, 0, force=True)  # skip the empty space of the box
        return renderer.render(volume, cams, shading="albedo")["rgb"].cpu()


def _shape_mesh(asset: nn.Module, editor: Editor) -> Mesh | None:
    """The exported surface of a shape edit's asset (a DMTet in the editor's DMTet colours, or a volume)."""
    if isinstance(asset, DMTet):
        mesh = asset.export_mesh().to("cpu")
        return mesh.replace(vertex_colors=editor.dmtet_vertex_colors(mesh.vertices).contiguous())
    return _volume_mesh(asset)


def _volume_mesh(volume: nn.Module, resolution: int = 64) -> Mesh | None:
    """The isosurface of the edited volume with its albedo as vertex colours (None when empty)."""
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
