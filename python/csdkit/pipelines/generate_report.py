"""``report.html`` of a generation run: the three stages side by side (turntable, steps, time, loss curve),
and an interactive 3D view of the stage meshes (linked cameras)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from ..training import RunDirectory
from ..training.checkpoint import atomic_write_bytes
from ..training.report import loss_curve_svg, report_csp
from ..viewer import MAX_GLB_BYTES, embed_viewer
from .generate_config import STAGES

_TITLES = {"nerf": "1. NeRF (volume: albedo / shaded)", "mesh": "2. DMTet mesh (lambertian)",
           "texture": "3. UV texture"}


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}" style="width:100%">'


def _topology_line(topo: dict) -> str:
    filled = sum((topo.get(k) or {}).get("filled_vertices", 0) for k in ("at_start", "at_export"))
    start = topo.get("start_euler")
    text = f"Euler characteristic <b>{topo.get('euler')}</b>"
    if start is not None:
        text += f" (start shape {start})"
    if filled:
        text += f"; {filled} grid vertices filled to close thin tunnels the start shape does not have"
    return f"<p>{text}.</p>"


def write_generate_report(run: RunDirectory, prompt: str, status: dict[str, dict]) -> Path:
    """Write ``report.html`` into the generation run directory and return its path.

    One column per stage: its turntable, steps, seconds, seconds per step and loss curve (the NeRF column
    also shows the prior's samples its start shape was picked from, the mesh column the surface's Euler
    characteristic against the start shape's); then the run's config. Images are
    inlined, so the page opens offline.
    """
    cols = []
    for stage in STAGES:
        folder = run.path / stage
        if not folder.exists():
            continue
        info = status.get(stage, {})
        parts = [f"<h2>{html.escape(_TITLES[stage])}</h2>"]
        tt = folder / "turntable.png"
        parts.append(_img(tt, f"{stage} turntable") if tt.exists() else "<p>(no turntable)</p>")
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                       for k, v in info.items())
        parts.append(f"<table>{rows}</table>")
        start = folder / "start_samples.png"
        if start.exists():  # shape_init "auto": what the prior drew of the prompt, and the start it named
            name = json.loads((folder / "start_shape.json").read_text()).get("name", "?")
            parts.append(f"<p>Start shape <b>{html.escape(name)}</b>, named by the prior from its own "
                         f"samples of the prompt:</p>{_img(start, 'start-shape samples')}")
        topology = folder / "topology.json"
        if topology.exists():  # the mesh stage: the surface's Euler characteristic and the tunnels it closed
            parts.append(_topology_line(json.loads(topology.read_text())))
        metrics = RunDirectory(folder).read_metrics()
        if metrics:
            parts.append(loss_curve_svg(metrics, "loss", width=360, height=160))
        cols.append(f"<td style='vertical-align:top;width:33%'>{''.join(parts)}</td>")
    # interactive view of each stage's mesh (stage 2's untextured DMTet mesh, the final textured GLB)
    glbs = {label: path for label, path in (("mesh (stage 2)", run.path / "mesh" / "mesh.glb"),
                                            ("textured (stage 3)", run.path / "textured.glb")) if path.exists()}
    viewer = None
    if glbs and sum(p.stat().st_size for p in glbs.values()) <= MAX_GLB_BYTES:
        viewer = embed_viewer(glbs, linked=True, title="3D view")
    csp = html.escape(report_csp(viewer.script_sources if viewer else ()), quote=False).replace('"', "&quot;")
    body = [f"<!doctype html><html><head><meta charset='utf-8'>"
            f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
            f"<title>{html.escape(prompt)}</title>",
            "<style>body{font-family:sans-serif;margin:2em}img{image-rendering:pixelated;border:1px solid #ddd}"
            "td{padding:2px 8px}</style></head><body>",
            f"<h1>{html.escape(prompt)}</h1><table style='width:100%'><tr>{''.join(cols)}</tr></table>"]
    if viewer is not None:
        body.append(f"<h2>{html.escape(viewer.title)}</h2>{viewer.html}")
    files = [p.name for p in sorted(run.path.glob("textured.*"))]
    if files:
        body.append("<p>Result files: " + ", ".join(html.escape(f) for f in files) + "</p>")
    if run.config_path.exists():
        body.append("<h2>Config</h2><pre>" + html.escape(run.config_path.read_text()) + "</pre>")
    body.append("</body></html>")
    out = run.path / "report.html"
    atomic_write_bytes(out, "\n".join(body).encode())
    return out


__all__ = ["write_generate_report"]
