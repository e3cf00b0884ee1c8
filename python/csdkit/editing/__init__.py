"""Text-guided editing of existing assets: :class:`Editor`, :class:`EditResult`, :class:`Region`.

    editor = csdkit.Editor(prior, "a green vase", "a red vase", fidelity=1.0, region="box:-1,0,-1,1,1,1")
    result = editor.edit(mesh)          # a textured csdkit.Mesh (or TexturedMesh, ImplicitVolume)
    result.asset.save("green.glb")      # same UVs, vertices and placement as the input

See :mod:`csdkit.editing.editor` for the math and ``docs/editing.md`` for the fidelity trade-off.
"""

from .editor import DEFAULT_DMTET_COLOR, DEFAULT_FIDELITY, Editor, EditResult, appearance_input
from .region import Region, parse_region
from .texture_delta import EditableTexture

__all__ = ["DEFAULT_DMTET_COLOR", "DEFAULT_FIDELITY", "EditResult", "EditableTexture", "Editor", "Region",
           "appearance_input", "parse_region"]
