"""The parts every job shares: argument checks, the mesh argument, the run directory, random training
views, fixed preview views, the turntable, and the result files + report at the end.

A job (:func:`~csdkit.pipelines.texture`, generate, edit) is a short function that wires geometry,
a renderer, guidance and the :class:`~csdkit.training.Trainer`; what is not specific to it lives here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from ..geometry.mesh import Mesh
from ..geometry.primitives import builtin_mesh
from ..render.cameras import Cameras
from ..render.mesh_renderer import MeshRenderer
from ..render.protocols import TexturedSurface
from ..training import RunDirectory, image_grid, save_png, write_report
from ..training.checkpoint import list_checkpoints
from ..viewer import MAX_GLB_BYTES, ViewerCamera, embed_viewer

__all__ = ["MeshViews", "check_int_option", "check_prompt", "open_run", "resolve_mesh", "turntable",
           "turntable_cameras", "turntable_view", "write_results"]


# ---- arguments ------------------------------------------------------------------------------------
def check_prompt(fn: str, prompt, name: str = "prompt") -> str:
    """A non-empty prompt string, or ValueError naming ``name``."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"{fn}(): {name} must be a non-empty string, got {prompt!r}")
    return prompt


def check_int_option(fn: str, name: str, value: int | None, minimum: int) -> None:
    """``value`` is None (use the default) or an int >= ``minimum``; else ValueError naming ``name``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ValueError(f"{fn}(): {name} must be an int >= {minimum}, got {value!r}")


def resolve_mesh(fn: str, mesh: Mesh | str | Path) -> tuple[str | None, Mesh]:
    """``(source, mesh)`` from a :class:`Mesh`, a file path or a built-in name (``"@vase"``, ``"@sphere"``...).

    ``source`` is the path or name as given (None for an in-memory mesh), for configs and reports.
    """
    if isinstance(mesh, str) and mesh.startswith("@"):
        return mesh, builtin_mesh(mesh)
    if isinstance(mesh, (str, Path)):
        return str(mesh), Mesh.load(mesh)
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{fn}(): mesh must be a csdkit.Mesh or a file path, got {type(mesh).__name__}")
    return None, mesh


def open_run(fn: str, out_dir: str | Path | None, resume: bool) -> RunDirectory | None:
    """The run directory (None: write nothing). A fresh run refuses a directory that holds checkpoints."""
    run = RunDirectory(out_dir) if out_dir is not None else None
    if resume and run is None:
        raise ValueError(f"{fn}(): resume=True needs the out_dir of the run to continue")
    if run is not None and not resume and list_checkpoints(run.checkpoints):
        raise ValueError(f"{fn}(): {run.path} already holds a run; pass resume=True (--resume) to continue it "
                         "or choose another out_dir")
    return run


# ---- views ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeshViews:
    """Random training views of a normalized object and fixed preview views, for mesh renders.

    Attributes:
        distance_range, fov_range: camera distance (units) and vertical field of view (degrees) ranges.
        device: where the cameras and colours go.
    """

    distance_range: tuple[float, float]
    fov_range: tuple[float, float]
    device: torch.device

    def sample(self, n: int, generator: torch.Generator) -> tuple[Cameras, torch.Tensor, torch.Tensor]:
        """``n`` random cameras, grey backgrounds ``[n, 3]`` in [0.2, 0.8] and light directions ``[n, 3]``
        (unit, around each camera's position). Draws from ``generator`` (CPU) in a fixed order."""
        cams = Cameras.sample(n, distance_range=self.distance_range, fov_range=self.fov_range,
                              generator=generator).to(self.device)
        background = (0.2 + 0.6 * torch.rand(n, 1, generator=generator)).expand(n, 3).to(self.device)
        jitter = (torch.rand(n, 3, generator=generator) - 0.5).to(self.device)
        light = torch.nn.functional.normalize(cams.position / cams.distance[:, None] + jitter, dim=-1)
        return cams, background, light

    def preview(self, n: int = 4, elevation: float = 15.0) -> tuple[Cameras, torch.Tensor, torch.Tensor]:
        """``n`` cameras on an orbit at the mean distance and lens, a 0.5 grey background, headlights."""
        cams = Cameras.orbit(n, elevation=elevation, distance=sum(self.distance_range) / 2,
                             fov_y=sum(self.fov_range) / 2).to(self.device)
        return (cams, torch.full((n, 3), 0.5, device=self.device),
                torch.nn.functional.normalize(cams.position, dim=-1))


def turntable_cameras(n: int, distance_range: Sequence[float], fov_range: Sequence[float],
                      device: torch.device | str = "cpu", elevation: float = 15.0) -> Cameras:
    """``n`` cameras around the object, far enough back that the whole unit bounding sphere of a normalized
    object is in frame with a 15% margin (``distance * sin(fov / 2) >= 1.15``): tall objects are not cropped."""
    fov = sum(fov_range) / 2
    distance = max(sum(distance_range) / 2, 1.15 / math.sin(math.radians(fov) / 2))
    return Cameras.orbit(n, elevation=elevation, distance=distance, fov_y=fov).to(device)


def turntable_view(distance_range: Sequence[float], fov_range: Sequence[float],
                   elevation: float = 15.0) -> ViewerCamera:
    """The interactive view's starting camera: the first turntable frame (azimuth 0, the distance and lens
    of :func:`turntable_cameras`), looking at the origin of the normalized object."""
    return ViewerCamera.from_cameras(turntable_cameras(1, distance_range, fov_range, elevation=elevation))


@torch.no_grad()
def turntable(geometry: Mesh | TexturedSurface, path: str | Path, distance_range: Sequence[float],
              fov_range: Sequence[float], device: torch.device | str = "cpu", size: int = 256) -> Path:
    """8 views around a mesh or textured surface (2 rows x 4), lit from the camera, on a grey background,
    written as a PNG."""
    cams = turntable_cameras(8, distance_range, fov_range, device)
    out = MeshRenderer(size, antialias=True).render(geometry, cams, shading="lambertian", background=0.6,
                                    light_dir=torch.nn.functional.normalize(cams.position, dim=-1),
                                    ambient=0.5, diffuse=0.5)
    return save_png(image_grid(out["rgb"].cpu(), columns=4), Path(path))


# ---- results --------------------------------------------------------------------------------------
def write_results(run: RunDirectory, prompt: str, *, exports: dict[str, Callable[[Path], Path]],
                  images: dict[str, tuple[str, Callable[[Path], Path]]], summary: dict[str, object],
                  views: dict[str, str] | None = None, view_camera: ViewerCamera | None = None,
                  report_kwargs: dict | None = None) -> dict[str, Path]:
    """Write a finished job's result files, its images and its report.

    Args:
        run: the run directory.
        prompt: the report's title.
        exports: file name (e.g. ``"textured.glb"``) -> function writing that file to the path it is given.
        images: report caption -> (file name, function writing that PNG), e.g. the turntable.
        summary: rows of the report's summary table; ``export seconds`` and ``files`` are added.
        views: the report's interactive 3D view: label -> exported ``.glb`` file name, one linked view each
            (e.g. ``{"original": "original.glb", "edited": "edited.glb"}``). Left out, with a line in the
            summary, when the GLBs exceed the viewer's 64 MiB limit.
        view_camera: its starting camera (e.g. :func:`turntable_view`); default: framed.
        report_kwargs: more arguments of :func:`csdkit.training.write_report`.

    Returns:
        ``{key: path}`` of every file written: exports by suffix (``"glb"``, ``"obj"``), images by file
        stem (``"turntable"``), and ``"report"``.
    """
    t0 = time.perf_counter()
    files: dict[str, Path] = {}
    for name, write in exports.items():
        files[Path(name).suffix.lstrip(".") or name] = write(run.path / name)
    shown = {}
    for caption, (name, write) in images.items():
        shown[caption] = files[Path(name).stem] = write(run.path / name)
    rows = {**summary, "export seconds": f"{time.perf_counter() - t0:.1f}",
            "files": ", ".join(p.name for p in files.values())}
    kwargs = dict(report_kwargs or {})
    if views:
        paths = {label: run.path / name for label, name in views.items()}
        total = sum(p.stat().st_size for p in paths.values())
        if total <= MAX_GLB_BYTES:
            kwargs["viewers"] = [*kwargs.get("viewers", ()),
                                 embed_viewer(paths, linked=True, title="3D view", camera=view_camera)]
        else:
            rows["3D view"] = (f"left out: the GLBs are {total / 2**20:.1f} MiB, above the viewer's "
                               f"{MAX_GLB_BYTES // 2**20} MiB limit (the turntable shows the result)")
    files["report"] = write_report(run, prompt, results=shown, summary=rows, **kwargs)
    return files
