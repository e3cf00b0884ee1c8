"""``csdkit view``: an offline HTML page with an interactive 3D view of a mesh file or a run directory.

* A ``.glb`` is embedded as it is, after :func:`csdkit.viewer.inspect_glb` checked it (a malformed
  file or one above :data:`csdkit.viewer.MAX_GLB_BYTES` is a ValueError, exit 2 in the CLI). A GLB
  that needs an extension the viewer does not read (Draco, meshopt) is re-exported through
  csdkit's loader.
* Any other mesh format csdkit reads (GLTF, OBJ + MTL, PLY, STL, OFF) goes through ``Mesh.load`` and
  is exported as a GLB in memory (texture, UVs and vertex colours kept).
* A run directory shows its result meshes: ``original.glb`` and ``edited.glb`` side by side (an edit),
  ``textured.glb`` (a texturing job), or every ``*.glb`` in it (generation stages), in one linked group.
"""

from __future__ import annotations

from pathlib import Path

from ..geometry.mesh import Mesh
from ..io import SUPPORTED_FORMATS, glb_bytes
from ..viewer import MAX_GLB_BYTES, ViewerCamera, inspect_glb, viewer_html

__all__ = ["mesh_to_glb_bytes", "run_dir_glbs", "view"]

_FN = "view"
#: Run-directory meshes in display order (anything else follows alphabetically).
_RUN_ORDER = ("original", "coarse", "nerf", "dmtet", "fine", "refined", "edited", "textured")


def mesh_to_glb_bytes(path: str | Path) -> bytes:
    """The GLB bytes of a mesh file: a self-contained GLB as it is, anything else through ``Mesh.load``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unsupported suffix (names the supported ones), a malformed GLB, or a file over
            :data:`~csdkit.viewer.MAX_GLB_BYTES`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{_FN}(): no such mesh file: {path}")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_FORMATS:
        raise ValueError(f"{_FN}(): cannot show {path.name}: unsupported format {path.suffix or '(no suffix)'!r}; "
                         f"supported: {', '.join(SUPPORTED_FORMATS)} or a run directory")
    size = path.stat().st_size
    if size > MAX_GLB_BYTES:
        raise ValueError(f"{_FN}(): {path} is {size / 2**20:.1f} MiB, above the viewer's limit of "
                         f"{MAX_GLB_BYTES / 2**20:.0f} MiB (decimate the mesh or shrink its texture)")
    if suffix == ".glb":
        data = path.read_bytes()
        info = inspect_glb(data)
        if not info.unsupported_extensions:
            return data
    data = glb_bytes(Mesh.load(path), fn=_FN)
    inspect_glb(data)  # the size limit applies to what is embedded
    return data


def run_dir_glbs(run_dir: str | Path) -> dict[str, Path]:
    """Label -> GLB path of a run directory's result meshes (see the module doc); ValueError if none."""
    run_dir = Path(run_dir)
    glbs = sorted(run_dir.glob("*.glb"))
    if not glbs:
        raise ValueError(f"{_FN}(): {run_dir} holds no .glb file (is it a finished csdkit run directory?)")
    rank = {name: i for i, name in enumerate(_RUN_ORDER)}
    ordered = sorted(glbs, key=lambda p: (rank.get(p.stem, len(rank)), p.stem))
    return {p.stem: p for p in ordered}


def view(source: str | Path, out: str | Path | None = None, *, title: str | None = None, linked: bool = True,
         size: tuple[int, int] = (480, 480)) -> Path:
    """Write an HTML page with an interactive 3D view of ``source``.

    Args:
        source: a mesh file (GLB/GLTF, OBJ, PLY, STL, OFF) or a csdkit run directory.
        out: the page to write; default ``<mesh stem>.view.html`` next to the mesh, or
            ``<run dir>/view.html``.
        title: page title (default: the source's name).
        linked: one camera for all views of a run directory.
        size: ``(width, height)`` of each view in CSS pixels.

    Returns:
        The path written.
    """
    source = Path(source)
    if source.is_dir():
        glbs = {label: mesh_to_glb_bytes(p) for label, p in run_dir_glbs(source).items()}
        default_out = source / "view.html"
    elif source.exists():
        glbs = {source.name: mesh_to_glb_bytes(source)}
        default_out = source.with_name(source.stem + ".view.html")
    else:
        raise FileNotFoundError(f"{_FN}(): no such mesh file or run directory: {source}")
    out = Path(out) if out is not None else default_out
    if out.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"{_FN}(): --out must end in .html, got {out}")
    page = viewer_html(glbs, linked=linked, title=title or f"csdkit view: {source.name}",
                       camera=ViewerCamera(), size=size)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
