"""xatlas in its own process: ``python _xatlas_worker.py IN.npz OUT.npz``.

(``python -m csdkit.uv._xatlas_worker IN.npz OUT.npz`` works too, but imports the csdkit
package and thus torch first; :func:`csdkit.uv.unwrap_uv` runs the file by path.)

xatlas is known to crash (segfault) and to run for a very long time on dense or broken meshes, so
:func:`csdkit.uv.unwrap_uv` never calls it in the caller's process. This module imports only
NumPy and xatlas (no torch: it starts in a fraction of a second) and talks through files:

* ``IN.npz``: ``positions [V, 3]`` float32, ``faces [F, 3]`` uint32, ``options`` (a JSON string
  with ``resolution``, ``padding``, ``max_iterations``).
* ``OUT.npz`` (written atomically): ``vmapping [Vt]`` uint32 (source vertex of each UV vertex),
  ``indices [F, 3]`` uint32 (UV faces, same order as ``faces``), ``uvs [Vt, 2]`` float32 in [0, 1],
  ``atlas_count``.

Exit status 0 on success, 2 with a message on stderr when xatlas refuses the input.
"""

from __future__ import annotations

import json
import os
import sys


def run(in_path: str, out_path: str) -> None:
    import numpy as np
    import xatlas

    data = np.load(in_path)
    options = json.loads(str(data["options"]))
    positions = np.ascontiguousarray(data["positions"], dtype=np.float32)
    faces = np.ascontiguousarray(data["faces"], dtype=np.uint32)

    atlas = xatlas.Atlas()
    atlas.add_mesh(positions, faces)
    chart = xatlas.ChartOptions()
    if options.get("max_iterations") is not None:
        chart.max_iterations = int(options["max_iterations"])
    pack = xatlas.PackOptions()
    pack.resolution = int(options["resolution"])
    pack.padding = int(options["padding"])
    pack.bilinear = True
    pack.create_image = False
    atlas.generate(chart_options=chart, pack_options=pack, verbose=False)
    vmapping, indices, uvs = atlas.get_mesh(0)
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, vmapping=vmapping.astype(np.uint32), indices=indices.astype(np.uint32),
             uvs=uvs.astype(np.float32), atlas_count=np.int64(atlas.atlas_count))
    os.replace(tmp, out_path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: _xatlas_worker.py IN.npz OUT.npz", file=sys.stderr)
        return 2
    try:
        run(argv[0], argv[1])
    except Exception as exc:  # reported to the parent, which falls back
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
