"""``OUT/index.html``: an offline gallery of a batch (no scripts, no network; relative links only).

One card per item: its turntable (when the job wrote one), prompt, status (with the error of a failed
item), attempts, seconds, and links to its report and outputs. Rewritten atomically with the summary.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

from ...training.checkpoint import atomic_write_bytes

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
h1 { font-size: 1.4em; margin-bottom: .2em; } .counts { color: #555; margin-bottom: 1em; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 14px; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: 10px; }
.card img { width: 100%; image-rendering: auto; background: #999; border-radius: 3px; }
.noimg { height: 150px; display: flex; align-items: center; justify-content: center; background: #eee;
         color: #888; border-radius: 3px; }
.prompt { font-weight: 600; margin: .4em 0 .2em; } .id { font-family: monospace; font-size: .8em; color: #777; }
.status { display: inline-block; padding: 1px 8px; border-radius: 9px; font-size: .85em; color: #fff; }
.done { background: #2a8a3a; } .failed { background: #c0392b; } .running { background: #d68910; }
.pending { background: #7f8c8d; } .error { color: #c0392b; font-size: .85em; white-space: pre-wrap;
         word-break: break-word; } a { color: #1f5fa8; } .links a { margin-right: .6em; font-size: .9em; }
"""


def _link(root: Path, target: str | None) -> str | None:
    if not target:
        return None
    p = Path(target)
    if p.is_absolute():
        try:
            p = p.relative_to(root.resolve())
        except ValueError:
            return Path(os.path.relpath(p, root.resolve())).as_posix()
    return p.as_posix()


def write_gallery(out_dir: str | os.PathLike, rows: list[dict[str, Any]], title: str = "csdkit batch") -> Path:
    """Write ``out_dir/index.html`` for the store ``rows`` (dicts with id, status, spec, outputs ...)."""
    root = Path(out_dir)
    counts = {s: sum(1 for r in rows if r["status"] == s) for s in ("done", "failed", "running", "pending")}
    cards = []
    for r in rows:
        fields = r["spec"].get("fields", {})
        prompt = fields.get("prompt") or ""
        outputs = r.get("outputs") or {}
        turntable = _link(root, outputs.get("turntable"))
        image = (f'<a href="{html.escape(turntable)}"><img src="{html.escape(turntable)}" alt="turntable" '
                 f'loading="lazy"></a>' if turntable else f'<div class="noimg">{html.escape(r["status"])}</div>')
        links = []
        report = _link(root, outputs.get("report"))
        if report:
            links.append(f'<a href="{html.escape(report)}">report</a>')
        for name, path in outputs.items():
            if name not in ("report", "turntable"):
                links.append(f'<a href="{html.escape(_link(root, path) or "")}">{html.escape(name)}</a>')
        run_dir = _link(root, r.get("run_dir"))
        if run_dir:
            links.append(f'<a href="{html.escape(run_dir)}/">folder</a>')
        error = f'<div class="error">{html.escape(r["error"])}</div>' if r.get("error") and \
            r["status"] == "failed" else ""
        seconds = f'{r["seconds"]:.1f} s' if r.get("seconds") is not None else ""
        mesh = fields.get("mesh")
        cards.append(
            f'<div class="card">{image}<div class="prompt">{html.escape(str(prompt))}</div>'
            f'<div><span class="status {html.escape(r["status"])}">{html.escape(r["status"])}</span> '
            f'<span class="id">{html.escape(r["id"])} · {html.escape(r["job"])}'
            f'{" · " + html.escape(str(mesh)) if mesh else ""} · attempts {r.get("attempts", 0)}'
            f'{" · " + seconds if seconds else ""}</span></div>{error}'
            f'<div class="links">{" ".join(links)}</div></div>')
    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>'
            f'<div class="counts">{len(rows)} items: {counts["done"]} done, {counts["failed"]} failed, '
            f'{counts["running"]} running, {counts["pending"]} pending · written '
            f'{html.escape(time.strftime("%Y-%m-%d %H:%M:%S"))} · <a href="summary.json">summary.json</a></div>'
            f'<div class="grid">{"".join(cards)}</div></body></html>\n')
    path = root / "index.html"
    atomic_write_bytes(path, page.encode())
    return path
