"""``report.html``: one self-contained page (images and 3D views inlined) that opens offline.

The page carries a strict Content-Security-Policy: nothing is loaded from anywhere (images are
``data:`` URIs), and the only scripts allowed are those of the embedded 3D views, by hash.
"""

from __future__ import annotations

import base64
import html
import pathlib
from collections.abc import Sequence
from typing import Protocol

from .checkpoint import atomic_write_bytes
from .run_dir import RunDirectory


def _img_tag(path: pathlib.Path, alt: str, width: int | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    w = f' width="{width}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}"{w}>'


class HTMLSection(Protocol):
    """What ``write_report(viewers=...)`` takes: e.g. :func:`csdkit.viewer.embed_viewer`'s result."""

    title: str
    html: str
    script_sources: tuple[str, ...]


def report_csp(script_sources: Sequence[str] = ()) -> str:
    """The report's Content-Security-Policy: no network, data-URI images, only the given scripts."""
    scripts = " ".join(dict.fromkeys(script_sources)) or "'none'"
    return (f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def loss_curve_svg(metrics: list[dict], key: str = "loss", width: int = 640, height: int = 220) -> str:
    """An inline SVG polyline of ``key`` against ``step`` (moving average over ~2% of the points)."""
    pts = [(m["step"], float(m[key])) for m in metrics if key in m and m[key] == m[key]]
    if len(pts) < 2:
        return "<p>(not enough points for a curve)</p>"
    k = max(1, len(pts) // 50)
    smooth = []
    for i in range(len(pts)):
        window = pts[max(0, i - k + 1): i + 1]
        smooth.append((pts[i][0], sum(v for _, v in window) / len(window)))
    xs, ys = [p[0] for p in smooth], [p[1] for p in smooth]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    pad = 30
    sx = (width - 2 * pad) / max(x1 - x0, 1e-9)
    sy = (height - 2 * pad) / max(y1 - y0, 1e-12)
    line = " ".join(f"{pad + (x - x0) * sx:.1f},{height - pad - (y - y0) * sy:.1f}" for x, y in smooth)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'style="background:#fff;border:1px solid #ccc">'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>'
            f'<text x="{pad}" y="{pad - 10}" font-size="12">{html.escape(key)}: {y1:.4g} (max) .. {y0:.4g} (min)'
            f'</text><text x="{pad}" y="{height - 8}" font-size="12">step {x0} .. {x1}</text></svg>')


def write_report(run: RunDirectory, title: str, results: dict[str, pathlib.Path] | None = None,
                 summary: dict[str, object] | None = None, max_previews: int = 12,
                 viewers: Sequence[HTMLSection] = ()) -> pathlib.Path:
    """Write ``report.html`` into the run directory.

    Args:
        run: the run directory (config, metrics and previews are read from it).
        title: page title (e.g. the prompt).
        results: label -> PNG path of final images (turntable ...), shown large.
        summary: label -> value lines shown at the top (steps, seconds, output files ...).
        max_previews: at most this many previews, evenly spaced over the run.
        viewers: interactive sections shown first (``csdkit.viewer.embed_viewer(...)`` results: objects
            with ``title``, ``html`` and ``script_sources``); their scripts are allowed by the page's CSP.
    """
    for v in viewers:
        if not all(hasattr(v, a) for a in ("title", "html", "script_sources")):
            raise TypeError(f"write_report(): viewers must hold objects with title, html and script_sources "
                            f"(csdkit.viewer.embed_viewer), got {type(v).__name__}")
    csp = html.escape(report_csp([s for v in viewers for s in v.script_sources]), quote=False).replace('"', "&quot;")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
             f"<title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{image-rendering:pixelated;"
             "margin:4px;border:1px solid #ddd}td{padding:2px 12px}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if summary:
        parts.append("<table>" + "".join(f"<tr><td><b>{html.escape(str(k))}</b></td><td>{html.escape(str(v))}</td></tr>"
                                         for k, v in summary.items()) + "</table>")
    for v in viewers:
        parts.append(f"<h2>{html.escape(v.title)}</h2>{v.html}")
    for label, path in (results or {}).items():
        if path and pathlib.Path(path).exists():
            parts.append(f"<h2>{html.escape(label)}</h2>{_img_tag(pathlib.Path(path), label, width=1024)}")
    metrics = run.read_metrics()
    parts.append("<h2>Loss</h2>" + loss_curve_svg(metrics, "loss"))
    if any("grad_norm" in m for m in metrics):
        parts.append("<h2>Gradient norm</h2>" + loss_curve_svg(metrics, "grad_norm"))
    previews = run.list_previews()
    if previews:
        step = max(1, len(previews) // max_previews)
        chosen = previews[::step][-max_previews:]
        if previews[-1] not in chosen:
            chosen.append(previews[-1])
        parts.append("<h2>Previews</h2>")
        for p in chosen:
            parts.append(f"<figure style='display:inline-block'>{_img_tag(p, p.stem, width=320)}"
                         f"<figcaption>{html.escape(p.stem)}</figcaption></figure>")
    if run.config_path.exists():
        parts.append("<h2>Config</h2><pre>" + html.escape(run.config_path.read_text()) + "</pre>")
    parts.append("</body></html>")
    out = run.path / "report.html"
    atomic_write_bytes(out, "\n".join(parts).encode())
    return out
