"""``csdkit.viewer``: an interactive, offline 3D view of GLB assets in HTML pages (reports, ``csdkit view``).

Layer 1: it reads GLB bytes and writes HTML; it imports no geometry, renderer or model code. The
browser side is csdkit's own small WebGL2 module, ``viewer.js`` (a package asset, unit-tested with
node and in headless Chromium); see ``docs/viewer.md`` for why it is not three.js or model-viewer.

    from csdkit.viewer import viewer_html
    Path("view.html").write_text(viewer_html({"textured": Path("run/textured.glb").read_bytes()}))
"""

from .glb import MAX_GLB_BYTES, VIEWER_EXTENSIONS, GLBError, GLBInfo, inspect_glb
from .page import (
    VIEWER_STYLE,
    ViewerCamera,
    ViewerEmbed,
    content_security_policy,
    embed_viewer,
    viewer_html,
    viewer_script,
    viewer_script_hash,
)

__all__ = ["MAX_GLB_BYTES", "VIEWER_EXTENSIONS", "VIEWER_STYLE", "GLBError", "GLBInfo", "ViewerCamera", "ViewerEmbed",
           "content_security_policy", "embed_viewer", "inspect_glb", "viewer_html", "viewer_script",
           "viewer_script_hash"]
