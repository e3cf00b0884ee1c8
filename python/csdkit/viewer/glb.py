"""Checking a GLB (glTF 2.0 binary) before it is embedded in a page: container, JSON, references.

:func:`inspect_glb` reads only the container and the JSON document (the standard library, no
geometry code): it proves that the browser-side parser of ``viewer.js`` will find a triangle mesh
whose accessors, buffer views and images lie inside the file, and reports what the file holds.
It does not decode vertex data or images (the browser does).
"""

from __future__ import annotations

import dataclasses
import json
import struct

__all__ = ["MAX_GLB_BYTES", "GLBError", "GLBInfo", "inspect_glb", "VIEWER_EXTENSIONS"]

#: Largest GLB the viewer embeds (64 MiB). Base64 makes the page 4/3 of that, and the browser holds
#: the decoded mesh and texture on top of it; larger assets belong in a desktop viewer.
MAX_GLB_BYTES = 64 * 1024 * 1024

#: glTF extensions that ``viewer.js`` can ignore safely when a file lists them as required.
VIEWER_EXTENSIONS = frozenset({"KHR_materials_unlit"})

_MAGIC, _JSON, _BIN = 0x46546C67, 0x4E4F534A, 0x004E4942
_COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_COMPONENT_BYTES = {5120: 1, 5121: 1, 5122: 2, 5123: 2, 5125: 4, 5126: 4}


class GLBError(ValueError):
    """A file that is not a GLB the viewer can show (the message says why)."""


@dataclasses.dataclass(frozen=True)
class GLBInfo:
    """What :func:`inspect_glb` found.

    Attributes:
        size: file size in bytes.
        vertices, triangles: totals over the triangle primitives of all meshes (instancing not counted).
        primitives: number of triangle primitives.
        textured: whether some primitive has a ``baseColorTexture`` with an image.
        image_types: MIME types of the embedded images (``image/png``, ``image/jpeg``).
        bounds: ``(min, max)`` of the POSITION accessors' declared ``min``/``max`` (local space),
            or None when the file does not declare them.
        extensions_required: the file's ``extensionsRequired``.
        unsupported_extensions: those that ``viewer.js`` cannot read (Draco, meshopt ...): such a
            file must be re-exported (``csdkit view`` does it through csdkit's loader).
        generator: the ``asset.generator`` string, if any.
    """

    size: int
    vertices: int
    triangles: int
    primitives: int
    textured: bool
    image_types: tuple[str, ...]
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None
    extensions_required: tuple[str, ...]
    unsupported_extensions: tuple[str, ...]
    generator: str | None


def _fail(msg: str) -> GLBError:
    return GLBError(f"inspect_glb(): {msg}")


def _get(doc: dict, key: str, index, what: str) -> dict:
    items = doc.get(key)
    if not isinstance(index, int) or isinstance(index, bool) or not isinstance(items, list) \
            or not 0 <= index < len(items) or not isinstance(items[index], dict):
        raise _fail(f"malformed glTF: {what} refers to {key}[{index!r}], which does not exist")
    return items[index]


def _container(data: bytes) -> tuple[dict, int]:
    """(JSON document, BIN chunk length or -1)."""
    if len(data) < 20:
        raise _fail(f"not a GLB: {len(data)} bytes is shorter than the 20-byte GLB header")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != _MAGIC:
        raise _fail(f"not a GLB: the file starts with {bytes(data[:4])!r}, not b'glTF'")
    if version != 2:
        raise _fail(f"unsupported GLB version {version} (only glTF 2.0)")
    if length > len(data) or length < 20:
        raise _fail(f"truncated GLB: its header says {length} bytes, the file has {len(data)}")
    offset, doc, bin_len = 12, None, -1
    while offset + 8 <= length:
        chunk_len, chunk_type = struct.unpack_from("<II", data, offset)
        start, end = offset + 8, offset + 8 + chunk_len
        if end > length:
            raise _fail(f"truncated GLB: a chunk of {chunk_len} bytes at offset {offset} runs past the end ({length})")
        if doc is None:
            if chunk_type != _JSON:
                raise _fail("malformed GLB: the first chunk is not the JSON chunk")
            try:
                doc = json.loads(bytes(data[start:end]).decode("utf-8").rstrip(" \t\r\n\x00"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _fail(f"malformed GLB: its JSON chunk does not parse ({exc})") from None
            if not isinstance(doc, dict):
                raise _fail(f"malformed GLB: its JSON is a {type(doc).__name__}, not an object")
        elif chunk_type == _BIN and bin_len < 0:
            bin_len = chunk_len
        offset = end + (-chunk_len % 4)
    if doc is None:
        raise _fail("malformed GLB: no JSON chunk")
    version_str = (doc.get("asset") or {}).get("version") if isinstance(doc.get("asset"), dict) else None
    if not isinstance(version_str, str) or version_str.split(".")[0] != "2":
        raise _fail(f"unsupported glTF asset version {version_str!r} (need 2.x)")
    return doc, bin_len


def _buffer_len(doc: dict, index, bin_len: int, what: str) -> int:
    buf = _get(doc, "buffers", index, what)
    uri = buf.get("uri")
    if uri is None:
        if index != 0 or bin_len < 0:
            raise _fail(f"malformed GLB: buffer {index} has no uri and there is no BIN chunk")
        declared = buf.get("byteLength", 0)
        if not isinstance(declared, int) or declared > bin_len:
            raise _fail(f"truncated GLB: buffer 0 declares {declared!r} bytes, the BIN chunk has {bin_len}")
        return bin_len
    if isinstance(uri, str) and uri.startswith("data:"):
        return int(buf.get("byteLength", 0))
    raise _fail(f"buffer {index} refers to an external file ({str(uri)[:60]!r}); only self-contained GLB files "
                "can be embedded")


def _view(doc: dict, index, bin_len: int, what: str) -> int:
    """Checks bufferView ``index`` lies in its buffer; returns its byteLength."""
    view = _get(doc, "bufferViews", index, what)
    off, length = view.get("byteOffset", 0), view.get("byteLength")
    if not isinstance(off, int) or not isinstance(length, int) or off < 0 or length < 0:
        raise _fail(f"malformed glTF: bufferView {index} has byteOffset {off!r}, byteLength {length!r}")
    buf_len = _buffer_len(doc, view.get("buffer", 0), bin_len, f"bufferView {index}")
    if off + length > buf_len:
        raise _fail(f"malformed GLB: bufferView {index} ({off} + {length} bytes) runs past its buffer "
                    f"({buf_len} bytes)")
    return length


def _accessor(doc: dict, index, bin_len: int, what: str) -> dict:
    acc = _get(doc, "accessors", index, what)
    n, size, count = _COMPONENTS.get(acc.get("type")), _COMPONENT_BYTES.get(acc.get("componentType")), \
        acc.get("count")
    if n is None or size is None or not isinstance(count, int) or count < 0:
        raise _fail(f"malformed glTF: accessor {index} has type {acc.get('type')!r}, componentType "
                    f"{acc.get('componentType')!r}, count {count!r}")
    if "sparse" in acc:
        raise _fail(f"accessor {index} is sparse; the viewer does not read sparse accessors")
    if "bufferView" in acc:
        view_len = _view(doc, acc["bufferView"], bin_len, f"accessor {index}")
        stride = doc["bufferViews"][acc["bufferView"]].get("byteStride") or n * size
        end = acc.get("byteOffset", 0) + (stride * (count - 1) + n * size if count else 0)
        if end > view_len:
            raise _fail(f"malformed GLB: accessor {index} ({count} x {acc['type']}) runs past its bufferView "
                        f"({view_len} bytes)")
    return acc


def inspect_glb(data: bytes | bytearray | memoryview, *, max_bytes: int = MAX_GLB_BYTES) -> GLBInfo:
    """Check that ``data`` is a GLB the viewer can show, and summarize it.

    Args:
        data: the file's bytes.
        max_bytes: size limit (default :data:`MAX_GLB_BYTES`, 64 MiB).

    Returns:
        :class:`GLBInfo`.

    Raises:
        TypeError: ``data`` is not bytes-like.
        GLBError (a ValueError): too large, not a GLB, truncated, JSON that does not parse, references
            outside the file, external buffers or images, or no triangle mesh with positions.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"inspect_glb(): data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise _fail(f"the GLB is {len(data) / 2**20:.1f} MiB, above the viewer's limit of "
                    f"{max_bytes / 2**20:.0f} MiB (decimate the mesh or shrink its texture)")
    doc, bin_len = _container(data)
    required = tuple(str(e) for e in doc.get("extensionsRequired", []) or [])
    unsupported = tuple(e for e in required if e not in VIEWER_EXTENSIONS)
    vertices = triangles = prims = 0
    textured, image_types, lo, hi = False, [], None, None
    meshes = doc.get("meshes")
    if not isinstance(meshes, list) or not meshes:
        raise _fail("the GLB holds no mesh")
    for mi, mesh in enumerate(meshes):
        for pi, prim in enumerate((mesh or {}).get("primitives", []) if isinstance(mesh, dict) else []):
            where = f"meshes[{mi}].primitives[{pi}]"
            if not isinstance(prim, dict) or prim.get("mode", 4) != 4:
                continue
            attrs = prim.get("attributes") or {}
            if "POSITION" not in attrs or unsupported:
                continue  # compressed primitives hold their data in the extension, not in accessors
            pos = _accessor(doc, attrs["POSITION"], bin_len, f"{where} POSITION")
            for name, ref in attrs.items():
                if name != "POSITION":
                    _accessor(doc, ref, bin_len, f"{where} {name}")
            if "indices" in prim:
                idx = _accessor(doc, prim["indices"], bin_len, f"{where} indices")
                if idx.get("componentType") not in (5121, 5123, 5125):
                    raise _fail(f"malformed glTF: {where} indices have componentType {idx.get('componentType')}")
                triangles += idx["count"] // 3
            else:
                triangles += pos["count"] // 3
            vertices += pos["count"]
            prims += 1
            if isinstance(pos.get("min"), list) and isinstance(pos.get("max"), list) and len(pos["min"]) == 3:
                pmin, pmax = [float(x) for x in pos["min"]], [float(x) for x in pos["max"]]
                lo = pmin if lo is None else [min(a, b) for a, b in zip(lo, pmin, strict=True)]
                hi = pmax if hi is None else [max(a, b) for a, b in zip(hi, pmax, strict=True)]
            if "material" in prim:
                mat = _get(doc, "materials", prim["material"], where)
                ref = (mat.get("pbrMetallicRoughness") or {}).get("baseColorTexture")
                if isinstance(ref, dict):
                    tex = _get(doc, "textures", ref.get("index"), f"{where} baseColorTexture")
                    img = _get(doc, "images", tex.get("source"), f"textures[{ref.get('index')}]")
                    if "bufferView" in img:
                        _view(doc, img["bufferView"], bin_len, f"image {tex.get('source')}")
                        image_types.append(str(img.get("mimeType", "image/png")))
                    elif isinstance(img.get("uri"), str) and img["uri"].startswith("data:"):
                        image_types.append(img["uri"][5:].split(";")[0] or "image/png")
                    else:
                        raise _fail(f"image {tex.get('source')} refers to an external file; only self-contained "
                                    "GLB files can be embedded")
                    textured = True
    if prims == 0 and not unsupported:
        raise _fail("the GLB has no triangle primitive with POSITION (nothing to show)")
    gen = (doc.get("asset") or {}).get("generator")
    return GLBInfo(size=len(data), vertices=vertices, triangles=triangles, primitives=prims, textured=textured,
                   image_types=tuple(dict.fromkeys(image_types)),
                   bounds=(tuple(lo), tuple(hi)) if lo is not None else None,
                   extensions_required=required, unsupported_extensions=unsupported,
                   generator=gen if isinstance(gen, str) else None)
