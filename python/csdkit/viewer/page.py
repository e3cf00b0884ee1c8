"""HTML for the interactive 3D view: self-contained fragments and pages that load nothing.

A view is csdkit's own WebGL2 module (``viewer.js``, a package asset) inlined into the page, plus
the GLB of each asset inlined as base64 in a non-executed ``<script type=...>`` data block
(browsers refuse ``fetch`` of local files from ``file://`` pages, and a report must open offline).
The page's Content-Security-Policy allows exactly that script (by its SHA-256) and nothing else:
no network request, no other script, data-URI images only.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import html
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from .glb import MAX_GLB_BYTES, inspect_glb

__all__ = ["ViewerCamera", "ViewerEmbed", "content_security_policy", "embed_viewer", "viewer_html",
           "viewer_script", "viewer_script_hash", "VIEWER_STYLE"]

VIEWER_STYLE = (
    ".csdkit-viewer-group{margin:8px 0}"
    ".csdkit-viewer-bar{font:13px sans-serif;margin:4px 0}"
    ".csdkit-viewer-bar button{margin-right:4px;padding:2px 8px;border:1px solid #999;background:#f4f4f4;"
    "border-radius:3px;cursor:pointer}"
    ".csdkit-viewer-bar button[aria-pressed=true]{background:#345;color:#fff}"
    ".csdkit-viewer-help{color:#666;margin-left:10px;font-size:12px}"
    ".csdkit-viewer{display:inline-block;vertical-align:top;margin:0 10px 10px 0}"
    ".csdkit-viewer figure{margin:0}"
    ".csdkit-viewer canvas{display:block;border:1px solid #ccc;touch-action:none;cursor:grab;outline:none}"
    ".csdkit-viewer figcaption{font:12px sans-serif;color:#444;margin-top:2px}"
    ".csdkit-viewer-error{font:13px sans-serif;color:#a00;border:1px solid #e99;padding:8px;max-width:460px}"
)


@functools.lru_cache(maxsize=1)
def viewer_script() -> str:
    """The source of ``viewer.js`` (the package asset), checked safe to inline in ``<script>``."""
    text = resources.files(__package__).joinpath("viewer.js").read_text(encoding="utf-8")
    lowered = text.lower()
    if "</script" in lowered or "<!--" in lowered:
        raise RuntimeError("csdkit/viewer/viewer.js contains '</script' or '<!--' and cannot be inlined")
    return text


def viewer_script_hash() -> str:
    """The CSP source of the inlined viewer script: ``'sha256-<base64>'``."""
    digest = hashlib.sha256(viewer_script().encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def content_security_policy(script_sources: tuple[str, ...] | list[str] = ()) -> str:
    """The strict policy of csdkit pages: nothing from the network, only the listed scripts.

    ``default-src 'none'`` covers fetch/XHR/WebSocket (``connect-src``), frames, fonts, media and
    workers; images may only be ``data:`` URIs; inline styles are allowed (they load nothing).
    """
    scripts = " ".join(dict.fromkeys(script_sources)) or "'none'"
    return (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


@dataclasses.dataclass(frozen=True)
class ViewerCamera:
    """The starting view, in :class:`csdkit.render.Cameras` conventions.

    The viewer starts at ``Cameras.from_spherical(elevation, azimuth, distance, fov_y=fov_y,
    target=target)``: +Y up, azimuth 0 on the +Z axis growing towards +X, elevation towards +Y,
    degrees; the camera looks at ``target`` with an OpenGL projection of vertical field of view
    ``fov_y`` (aspect = canvas width / height). Lit mode shades like ``MeshRenderer.render(...,
    shading="lambertian", light_dir=<target -> camera>, ambient, diffuse)``.

    Attributes:
        elevation, azimuth: degrees.
        distance: from ``target``; None frames the asset: ``margin * radius / sin(fov_y / 2)`` with
            ``radius`` the largest vertex distance from ``target``.
        fov_y: vertical field of view, degrees.
        target: orbit centre ``(x, y, z)``; None: the centre of the asset's bounding box.
        margin: framing margin used when ``distance`` is None.
    """

    elevation: float = 15.0
    azimuth: float = 0.0
    distance: float | None = None
    fov_y: float = 50.0
    target: tuple[float, float, float] | None = None
    margin: float = 1.15

    def __post_init__(self) -> None:
        fn = "ViewerCamera"
        for name in ("elevation", "azimuth", "fov_y", "margin"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
                raise TypeError(f"{fn}(): {name} must be a number, got {v!r}")
        if not 1.0 <= self.fov_y <= 170.0:
            raise ValueError(f"{fn}(): fov_y must be in [1, 170] degrees, got {self.fov_y}")
        if not -89.0 <= self.elevation <= 89.0:
            raise ValueError(f"{fn}(): elevation must be in [-89, 89] degrees, got {self.elevation}")
        if self.distance is not None and (isinstance(self.distance, bool) or not isinstance(self.distance, (int, float))
                                          or not self.distance > 0):
            raise ValueError(f"{fn}(): distance must be a positive number or None, got {self.distance!r}")
        if self.target is not None and (len(self.target) != 3
                                        or not all(isinstance(x, (int, float)) for x in self.target)):
            raise ValueError(f"{fn}(): target must be (x, y, z) or None, got {self.target!r}")
        if self.margin <= 0:
            raise ValueError(f"{fn}(): margin must be > 0, got {self.margin}")

    @classmethod
    def from_cameras(cls, cameras, index: int = 0) -> ViewerCamera:
        """The view of camera ``index`` of a :class:`csdkit.render.Cameras` batch that looks at the origin
        (``Cameras.orbit`` / ``from_spherical`` / ``sample`` cameras): its elevation, azimuth, distance and
        field of view, target ``(0, 0, 0)``. Read through the Cameras properties (no import of render)."""
        if not all(hasattr(cameras, a) for a in ("elevation", "azimuth", "distance", "fov_y")):
            raise TypeError("ViewerCamera.from_cameras(): cameras must be csdkit.Cameras, got "
                            f"{type(cameras).__name__}")
        def num(values) -> float:  # float32 noise off (15.000000953674316 -> 15.0)
            return round(float(values[index]), 5)

        return cls(elevation=num(cameras.elevation), azimuth=num(cameras.azimuth), distance=num(cameras.distance),
                   fov_y=num(cameras.fov_y), target=(0.0, 0.0, 0.0))

    def to_config(self) -> dict:
        return {"elevation": float(self.elevation), "azimuth": float(self.azimuth),
                "distance": None if self.distance is None else float(self.distance), "fov_y": float(self.fov_y),
                "target": None if self.target is None else [float(x) for x in self.target],
                "margin": float(self.margin)}


@dataclasses.dataclass(frozen=True)
class ViewerEmbed:
    """A viewer fragment to place in a page (e.g. ``write_report(viewers=[...])``).

    Attributes:
        title: heading for the section.
        html: the fragment: style, views with their embedded GLBs, and the viewer script.
        script_sources: the CSP sources the fragment's scripts need (the page's
            ``script-src``; see :func:`content_security_policy`).
        bytes_embedded: total GLB bytes embedded (before base64).
    """

    title: str
    html: str
    script_sources: tuple[str, ...]
    bytes_embedded: int

    def __str__(self) -> str:
        return self.html


def _as_bytes(label: str, value) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, Path)):
        path = Path(value)
        if not path.is_file():
            raise FileNotFoundError(f"embed_viewer(): glbs[{label!r}]: no such file {path}")
        size = path.stat().st_size
        if size > MAX_GLB_BYTES:
            raise ValueError(f"embed_viewer(): glbs[{label!r}]: {path} is {size / 2**20:.1f} MiB, above the "
                             f"viewer's limit of {MAX_GLB_BYTES / 2**20:.0f} MiB")
        return path.read_bytes()
    raise TypeError(f"embed_viewer(): glbs[{label!r}] must be GLB bytes or a path, got {type(value).__name__}")


def _color(name: str, value) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value, value)
    try:
        rgb = [float(x) for x in value]
    except TypeError:
        raise TypeError(f"embed_viewer(): {name} must be a number or an RGB triple, got {value!r}") from None
    if len(rgb) != 3 or not all(0.0 <= x <= 1.0 for x in rgb):
        raise ValueError(f"embed_viewer(): {name} must be a number or 3 numbers in [0, 1], got {value!r}")
    return rgb


def embed_viewer(glbs: Mapping[str, bytes | str | Path], *, linked: bool = True, title: str = "3D view",
                 camera: ViewerCamera | None = None, size: tuple[int, int] = (480, 480),
                 background: float | tuple[float, float, float] = 0.6, ambient: float = 0.5,
                 diffuse: float = 0.5, max_bytes: int = MAX_GLB_BYTES) -> ViewerEmbed:
    """One group of interactive views (one per GLB) sharing a toolbar, as an HTML fragment.

    Args:
        glbs: label -> GLB bytes or a ``.glb`` path, in display order (e.g. ``{"original": a,
            "edited": b}``). Each is checked with :func:`~csdkit.viewer.inspect_glb`.
        linked: the views start with one shared camera (a checkbox in the page unlinks them).
        title: the section title (used by :func:`viewer_html` and ``write_report``).
        camera: the starting view (:class:`ViewerCamera`; default: elevation 15, azimuth 0, framed).
        size: ``(width, height)`` of each view in CSS pixels.
        background: grey level or RGB in [0, 1] behind the asset (0.6: csdkit's turntable grey).
        ambient, diffuse: weights of the lit mode (csdkit's texturing renders use 0.5 / 0.5).
        max_bytes: limit of the total embedded GLB bytes (default 64 MiB).

    Returns:
        :class:`ViewerEmbed`; the page that holds it needs its ``script_sources`` in its CSP.

    Raises:
        ValueError / GLBError: no GLB, a malformed one, or too many bytes; TypeError: wrong types.
    """
    if not isinstance(glbs, Mapping) or not glbs:
        raise ValueError(f"embed_viewer(): glbs must be a non-empty mapping label -> GLB, got {glbs!r:.80}")
    camera = ViewerCamera() if camera is None else camera
    if not isinstance(camera, ViewerCamera):
        raise TypeError(f"embed_viewer(): camera must be a ViewerCamera or None, got {type(camera).__name__}")
    if (not isinstance(size, (tuple, list)) or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and 16 <= s <= 4096 for s in size)):
        raise ValueError(f"embed_viewer(): size must be (width, height) ints in [16, 4096], got {size!r}")
    for name, v in (("ambient", ambient), ("diffuse", diffuse)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 4.0:
            raise ValueError(f"embed_viewer(): {name} must be a number in [0, 4], got {v!r}")
    config = {"linked": bool(linked), "camera": camera.to_config(), "size": [int(size[0]), int(size[1])],
              "background": _color("background", background), "ambient": float(ambient), "diffuse": float(diffuse)}
    views, total = [], 0
    for label, value in glbs.items():
        if not isinstance(label, str) or not label:
            raise TypeError(f"embed_viewer(): labels must be non-empty strings, got {label!r}")
        data = _as_bytes(label, value)
        total += len(data)
        if total > max_bytes:
            raise ValueError(f"embed_viewer(): the GLBs add up to {total / 2**20:.1f} MiB, above the limit of "
                             f"{max_bytes / 2**20:.0f} MiB")
        info = inspect_glb(data, max_bytes=max_bytes)
        if info.unsupported_extensions:
            raise ValueError(f"embed_viewer(): glbs[{label!r}] needs {', '.join(info.unsupported_extensions)}, "
                             "which the viewer does not read; re-export it (csdkit view does) first")
        b64 = base64.b64encode(data).decode("ascii")
        views.append(f'<div class="csdkit-viewer" data-label="{html.escape(label)}">'
                     f'<script type="application/x-csdkit-glb-base64">{b64}</script></div>')
    cfg = html.escape(json.dumps(config, separators=(",", ":")), quote=True)
    fragment = (f"<style>{VIEWER_STYLE}</style>"
                f'<div class="csdkit-viewer-group" data-config="{cfg}">'
                + "".join(views)
                + "<noscript>The interactive view needs JavaScript; the images show the result.</noscript></div>"
                f"<script>{viewer_script()}</script>")
    return ViewerEmbed(title=str(title), html=fragment, script_sources=(viewer_script_hash(),),
                       bytes_embedded=total)


def viewer_html(glbs: Mapping[str, bytes | str | Path], *, linked: bool = True, title: str = "csdkit viewer",
                **kwargs) -> str:
    """A complete offline HTML page with one interactive view per GLB.

    Args:
        glbs, linked: as :func:`embed_viewer`.
        title: page title and heading.
        kwargs: the other arguments of :func:`embed_viewer` (camera, size, background ...).

    Returns:
        The page as a string (UTF-8 when written). It loads nothing: a strict
        Content-Security-Policy allows only its own inlined script.
    """
    embed = embed_viewer(glbs, linked=linked, title=title, **kwargs)
    t = html.escape(str(title))
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy(embed.script_sources)}">'
            f"<title>{t}</title><style>body{{font-family:sans-serif;margin:1.5em}}</style></head><body>"
            f"<h1 style='font-size:1.3em'>{t}</h1>{embed.html}</body></html>")
