"""glTF 2.0 documents before trimesh sees them: checks, Draco decoding, dequantization, UV transforms.

trimesh reads plain glTF 2.0 well but silently misreads what it does not know: a Draco-compressed
primitive has no plain index/position data, so it comes out as "all faces are degenerate";
``KHR_texture_transform`` is ignored, so atlased textures land on the wrong texels. csdkit therefore
reads the JSON first (:func:`read_document`), refuses what it cannot honour with a
:class:`MeshFormatError` that names the version or extension (:func:`check_supported`), and, when a
file needs it, rewrites the document into plain glTF 2.0 (:func:`plain_glb`):

* ``KHR_draco_mesh_compression`` primitives are decoded with DracoPy (``pip install DracoPy``,
  installed by ``make``) into ordinary float accessors and uint32 indices;
* ``KHR_mesh_quantization`` attributes (normalized or integer positions, normals, UVs) become float;
* ``KHR_texture_transform`` on the base-colour texture (offset, rotation, scale, texCoord) is baked
  into that primitive's ``TEXCOORD_0``, following the spec: ``uv' = T * R * S * uv`` in glTF's UV
  space (origin top-left), with ``R = [[cos r, sin r], [-sin r, cos r]]``.

All buffers (embedded, ``data:`` URIs or files next to a ``.gltf``) and images are merged into one
GLB, which trimesh then loads as usual.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["GltfDocument", "MeshFormatError", "check_supported", "pack_glb", "parse_glb", "plain_glb",
           "read_accessor", "read_document"]

_FN = "Mesh.load()"
_COMPONENTS = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_FLOAT, _UINT32 = 5126, 5125
_DRACO, _TRANSFORM, _QUANT = "KHR_draco_mesh_compression", "KHR_texture_transform", "KHR_mesh_quantization"
#: Extensions a file may *require* and still be read correctly (materials extensions only refine
#: shading beyond the base colour csdkit keeps; specular-glossiness is converted by trimesh).
HONOURED_EXTENSIONS = frozenset({_DRACO, _TRANSFORM, _QUANT, "KHR_materials_pbrSpecularGlossiness"})


class MeshFormatError(ValueError):
    """A mesh file in a format, version or extension csdkit cannot read correctly (the message names it)."""


@dataclass
class GltfDocument:
    """A parsed glTF: the JSON, its buffers' bytes (index = buffer index) and the folder URIs resolve against."""

    gltf: dict
    buffers: list[bytes]
    base_dir: Path
    source: str


# ---- the GLB container ----------------------------------------------------------------------------
def parse_glb(data: bytes, source: str = "GLB") -> tuple[dict, bytes | None]:
    """Split a GLB file into its JSON (dict) and its BIN chunk (None when absent).

    Raises:
        MeshFormatError: not a GLB, GLB version 1 (glTF 1.0), truncated or malformed chunks/JSON.
    """
    if len(data) < 20 or data[:4] != b"glTF":
        raise MeshFormatError(f"{_FN}: could not read {source} as GLB: not a GLB file (no 'glTF' magic in its "
                              "first bytes)")
    version, total = struct.unpack_from("<II", data, 4)
    if version != 2:
        raise MeshFormatError(f"{_FN}: {source} is a GLB version {version} (glTF {version}.0) file; csdkit reads "
                              "glTF 2.0 only: convert it to glTF 2.0 first (e.g. with the Khronos gltf-pipeline)")
    if total > len(data):
        raise MeshFormatError(f"{_FN}: could not read {source} as GLB: truncated (its header says {total} "
                              f"bytes, the file has {len(data)})")
    js, blob, offset = None, None, 12
    while offset + 8 <= total:
        length, kind = struct.unpack_from("<I4s", data, offset)
        chunk = data[offset + 8: offset + 8 + length]
        if len(chunk) != length:
            raise MeshFormatError(f"{_FN}: {source} is truncated inside a {kind!r} chunk")
        if kind == b"JSON" and js is None:
            try:
                js = json.loads(chunk.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise MeshFormatError(f"{_FN}: {source} has a malformed JSON chunk: {exc}") from exc
        elif kind == b"BIN\x00" and blob is None:
            blob = bytes(chunk)
        offset += 8 + length + (-length % 4 if offset + 8 + length < total else 0)
    if not isinstance(js, dict):
        raise MeshFormatError(f"{_FN}: {source} has no JSON chunk")
    return js, blob


def pack_glb(gltf: dict, blob: bytes) -> bytes:
    """A GLB file from a glTF JSON dict and its single binary buffer (both chunks padded to 4 bytes)."""
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * (-len(js) % 4)
    blob = bytes(blob) + b"\x00" * (-len(blob) % 4)
    header = struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(js) + 8 + len(blob))
    return header + struct.pack("<I4s", len(js), b"JSON") + js + struct.pack("<I4s", len(blob), b"BIN\x00") + blob


# ---- reading --------------------------------------------------------------------------------------
def _uri_bytes(uri: str, base_dir: Path, source: str) -> bytes:
    if uri.startswith("data:"):
        try:
            return base64.b64decode(uri.split(",", 1)[1])
        except (IndexError, ValueError) as exc:
            raise MeshFormatError(f"{_FN}: {source} has a malformed data: URI") from exc
    path = base_dir / uri.replace("%20", " ")
    if not path.is_file():
        raise MeshFormatError(f"{_FN}: {source} refers to {uri!r}, which is not next to it ({path} is missing)")
    return path.read_bytes()


def read_document(path: str | Path) -> GltfDocument:
    """Parse a ``.glb`` or ``.gltf`` file, check it (:func:`check_supported`) and load its buffers (not its
    images)."""
    path = Path(path)
    data = path.read_bytes()
    source = str(path)
    if path.suffix.lower() == ".glb" or data[:4] == b"glTF":
        gltf, blob = parse_glb(data, source)
    else:
        try:
            gltf, blob = json.loads(data.decode("utf-8")), None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MeshFormatError(f"{_FN}: {source} is not valid glTF JSON: {exc}") from exc
        if not isinstance(gltf, dict):
            raise MeshFormatError(f"{_FN}: {source} is not a glTF document (its JSON is not an object)")
    check_supported(gltf, source)  # before the buffers: e.g. meshopt files hold a placeholder buffer
    buffers = []
    for i, buf in enumerate(gltf.get("buffers", [])):
        if "uri" in buf:
            buffers.append(_uri_bytes(buf["uri"], path.parent, source))
        elif i == 0 and blob is not None:
            buffers.append(blob)
        else:
            raise MeshFormatError(f"{_FN}: {source}: buffer {i} has no uri and no GLB BIN chunk")
    return GltfDocument(gltf, buffers, path.parent, source)


def check_supported(gltf: dict, source: str) -> None:
    """Raise :class:`MeshFormatError` for glTF 1.0 / unknown versions and unsupported required extensions."""
    version = str(gltf.get("asset", {}).get("version", ""))
    if not version.startswith("2."):
        raise MeshFormatError(f"{_FN}: {source} is glTF {version or '(no asset.version)'}; csdkit reads glTF 2.0 "
                              "only: convert it to glTF 2.0 first (e.g. with the Khronos gltf-pipeline)")
    required = [e for e in gltf.get("extensionsRequired", []) if e not in HONOURED_EXTENSIONS
                and not (e.startswith("KHR_materials_") and e != "KHR_materials_pbrSpecularGlossiness")]
    if required:
        raise MeshFormatError(f"{_FN}: {source} requires the glTF extension(s) {', '.join(required)}, which csdkit "
                              f"cannot decode (honoured: {', '.join(sorted(HONOURED_EXTENSIONS))})")
    if _DRACO in gltf.get("extensionsUsed", []):
        try:
            import DracoPy  # noqa: F401
        except ImportError as exc:
            raise MeshFormatError(f"{_FN}: {source} uses {_DRACO} (Draco-compressed geometry); install DracoPy "
                                  "to read it: pip install DracoPy (or pip install 'csdkit[mesh]')") from exc


def _view_bytes(doc: GltfDocument, index: int) -> bytes:
    view = doc.gltf["bufferViews"][index]
    start = view.get("byteOffset", 0)
    return bytes(doc.buffers[view["buffer"]][start: start + view["byteLength"]])


def read_accessor(doc: GltfDocument, index: int) -> np.ndarray:
    """An accessor's values ``[count, width]`` (normalized integers mapped to [0, 1] / [-1, 1] as float32;
    byte strides and sparse substitution applied)."""
    acc = doc.gltf["accessors"][index]
    dtype = np.dtype(_COMPONENTS[acc["componentType"]]).newbyteorder("<")
    width, count = _WIDTH[acc["type"]], acc["count"]
    if "bufferView" in acc:
        view = doc.gltf["bufferViews"][acc["bufferView"]]
        raw = _view_bytes(doc, acc["bufferView"])
        stride = view.get("byteStride") or dtype.itemsize * width
        offset = acc.get("byteOffset", 0)
        needed = offset + stride * (count - 1) + dtype.itemsize * width if count else 0
        if needed > len(raw):
            raise MeshFormatError(f"{_FN}: {doc.source}: accessor {index} reads past the end of its buffer view")
        rows = offset + stride * np.arange(count)[:, None] + np.arange(width * dtype.itemsize)[None, :]
        values = np.frombuffer(raw, dtype=np.uint8)[rows].view(dtype).reshape(count, width).copy()
    else:
        values = np.zeros((count, width), dtype=dtype)
    sparse = acc.get("sparse")
    if sparse:
        idx_type = np.dtype(_COMPONENTS[sparse["indices"]["componentType"]]).newbyteorder("<")
        idx_raw = _view_bytes(doc, sparse["indices"]["bufferView"])[sparse["indices"].get("byteOffset", 0):]
        ids = np.frombuffer(idx_raw, dtype=idx_type, count=sparse["count"])
        val_raw = _view_bytes(doc, sparse["values"]["bufferView"])[sparse["values"].get("byteOffset", 0):]
        values[ids] = np.frombuffer(val_raw, dtype=dtype, count=sparse["count"] * width).reshape(-1, width)
    if acc.get("normalized") and dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.maximum(values.astype(np.float32) / info.max, -1.0).astype(np.float32)
    return values


# ---- rewriting into plain glTF 2.0 ----------------------------------------------------------------
class _Writer:
    """Appends data as new buffer views / accessors of one merged buffer."""

    def __init__(self, doc: GltfDocument) -> None:
        self.gltf = doc.gltf
        self.blob = bytearray()
        self.base = []
        for data in doc.buffers:
            self._align()
            self.base.append(len(self.blob))
            self.blob.extend(data)
        for view in self.gltf.get("bufferViews", []):
            view["byteOffset"] = view.get("byteOffset", 0) + self.base[view["buffer"]]
            view["buffer"] = 0
        doc.buffers = [self.blob]  # views now address the merged buffer, which grows as data is added

    def _align(self) -> None:
        self.blob.extend(b"\x00" * (-len(self.blob) % 4))

    def view(self, data: bytes) -> int:
        self._align()
        views = self.gltf.setdefault("bufferViews", [])
        views.append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob.extend(data)
        return len(views) - 1

    def accessor(self, values: np.ndarray, kind: str) -> int:
        values = np.ascontiguousarray(values)
        component = _UINT32 if values.dtype == np.uint32 else _FLOAT
        values = values.astype(np.uint32 if component == _UINT32 else np.float32)
        acc = {"bufferView": self.view(values.tobytes()), "componentType": component, "count": int(len(values)),
               "type": kind}
        if kind != "SCALAR" and len(values):
            acc["min"] = [float(x) for x in values.min(axis=0)]
            acc["max"] = [float(x) for x in values.max(axis=0)]
        accessors = self.gltf.setdefault("accessors", [])
        accessors.append(acc)
        return len(accessors) - 1


def _decode_draco(doc: GltfDocument, writer: _Writer, prim: dict) -> None:
    import DracoPy

    ext = prim["extensions"].pop(_DRACO)
    try:
        decoded = DracoPy.decode(_view_bytes(doc, ext["bufferView"]))
    except Exception as exc:  # DracoPy raises its own types for corrupt streams
        raise MeshFormatError(f"{_FN}: {doc.source}: a Draco-compressed primitive could not be decoded: {exc}") from exc
    for semantic, uid in ext.get("attributes", {}).items():
        attr = decoded.get_attribute_by_unique_id(uid)
        if attr is None:
            raise MeshFormatError(f"{_FN}: {doc.source}: Draco attribute {semantic} (id {uid}) is missing from the "
                                  "compressed data")
        data = np.asarray(attr["data"])
        old = doc.gltf["accessors"][prim["attributes"][semantic]] if semantic in prim["attributes"] else {}
        if data.dtype.kind in "iu" and old.get("normalized"):
            data = data.astype(np.float32) / np.iinfo(data.dtype).max
        data = data.reshape(len(data), -1).astype(np.float32)
        prim["attributes"][semantic] = writer.accessor(data, old.get("type", f"VEC{data.shape[1]}"))
    faces = np.asarray(decoded.faces, dtype=np.uint32).reshape(-1, 1)
    prim["indices"] = writer.accessor(faces, "SCALAR")
    if not prim["extensions"]:
        del prim["extensions"]


def _dequantize(doc: GltfDocument, writer: _Writer, prim: dict) -> None:
    for semantic, index in list(prim["attributes"].items()):
        acc = doc.gltf["accessors"][index]
        if acc["componentType"] != _FLOAT and semantic.split("_")[0] in ("POSITION", "NORMAL", "TANGENT", "TEXCOORD"):
            prim["attributes"][semantic] = writer.accessor(read_accessor(doc, index), acc["type"])


def _uv_matrix(t: dict) -> np.ndarray:
    ox, oy = t.get("offset", [0.0, 0.0])
    sx, sy = t.get("scale", [1.0, 1.0])
    r = float(t.get("rotation", 0.0))
    c, s = math.cos(r), math.sin(r)
    translation = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], dtype=np.float64)
    rotation = np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]], dtype=np.float64)
    scale = np.array([[sx, 0, 0], [0, sy, 0], [0, 0, 1]], dtype=np.float64)
    return translation @ rotation @ scale


def _transform_uvs(doc: GltfDocument, writer: _Writer, prim: dict) -> bool:
    """Bake the base-colour texture's texCoord choice and KHR_texture_transform into TEXCOORD_0."""
    if "material" not in prim:
        return False
    material = doc.gltf["materials"][prim["material"]]
    info = material.get("pbrMetallicRoughness", {}).get("baseColorTexture")
    if info is None:
        return False
    transform = info.get("extensions", {}).get(_TRANSFORM)
    channel = int((transform or {}).get("texCoord", info.get("texCoord", 0)))
    if transform is None and channel == 0:
        return False
    key = f"TEXCOORD_{channel}"
    if key not in prim["attributes"]:
        raise MeshFormatError(f"{_FN}: {doc.source}: material {prim['material']} samples {key}, which the "
                              "primitive does not have")
    uv = read_accessor(doc, prim["attributes"][key]).astype(np.float64)
    if transform is not None:
        uv = (np.concatenate([uv, np.ones((len(uv), 1))], axis=1) @ _uv_matrix(transform).T)[:, :2]
    prim["attributes"]["TEXCOORD_0"] = writer.accessor(uv.astype(np.float32), "VEC2")
    return True


def _embed_images(doc: GltfDocument, writer: _Writer) -> None:
    for image in doc.gltf.get("images", []):
        uri = image.pop("uri", None)
        if uri is None:
            continue
        if not image.get("mimeType"):
            head = uri.split(";", 1)[0][5:] if uri.startswith("data:") else ""
            suffix = Path(uri).suffix.lower()
            image["mimeType"] = head or ("image/jpeg" if suffix in (".jpg", ".jpeg") else "image/png")
        image["bufferView"] = writer.view(_uri_bytes(uri, doc.base_dir, doc.source))


def plain_glb(path: str | Path) -> bytes | None:
    """Check ``path`` (``.glb``/``.gltf``) and, when it uses Draco, quantization or UV transforms, return the
    same asset as plain glTF 2.0 GLB bytes; None when the file can be read as it is.

    Raises:
        MeshFormatError: see :func:`check_supported`, plus corrupt containers and Draco streams.
    """
    doc = read_document(path)
    gltf = doc.gltf
    used = set(gltf.get("extensionsUsed", []))
    if not used & {_DRACO, _TRANSFORM, _QUANT} and not _any_alternate_texcoord(gltf):
        return None
    writer = _Writer(doc)
    for mesh in gltf.get("meshes", []):
        for prim in mesh.get("primitives", []):
            if _DRACO in prim.get("extensions", {}):
                _decode_draco(doc, writer, prim)
            if _QUANT in used:
                _dequantize(doc, writer, prim)
            _transform_uvs(doc, writer, prim)
    for material in gltf.get("materials", []):
        info = material.get("pbrMetallicRoughness", {}).get("baseColorTexture")
        if info is not None:
            info.get("extensions", {}).pop(_TRANSFORM, None)
            info["texCoord"] = 0
    _embed_images(doc, writer)
    for key in ("extensionsUsed", "extensionsRequired"):
        if key in gltf:
            gltf[key] = [e for e in gltf[key] if e not in (_DRACO, _QUANT, _TRANSFORM)]
            if not gltf[key]:
                del gltf[key]
    gltf["buffers"] = [{"byteLength": len(writer.blob)}]
    return pack_glb(gltf, bytes(writer.blob))


def _any_alternate_texcoord(gltf: dict) -> bool:
    return any(m.get("pbrMetallicRoughness", {}).get("baseColorTexture", {}).get("texCoord", 0) != 0
               for m in gltf.get("materials", []))
