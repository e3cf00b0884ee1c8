"""glTF variants real asset libraries hold: Draco-compressed primitives (encoded by Google's Draco
library through DracoPy), KHR_mesh_quantization, KHR_texture_transform and a non-default texCoord on
the base colour, and the files csdkit must refuse with a message that names the problem (glTF 1.0,
unknown required extensions, Draco without DracoPy, corrupt streams)."""

from __future__ import annotations

import builtins
import json
import math

import numpy as np
import pytest
import torch
import trimesh

from csdkit import Mesh
from csdkit.cli import main
from csdkit.io import MeshFormatError, save_glb
from csdkit.io.gltf import pack_glb, parse_glb

DracoPy = pytest.importorskip("DracoPy", reason="DracoPy is installed by `make venv` (the mesh extra)")


def _textured_sphere() -> Mesh:
    tm = trimesh.creation.icosphere(subdivisions=2)
    v = torch.tensor(tm.vertices, dtype=torch.float32)
    uv = torch.stack([0.5 + torch.atan2(v[:, 0], v[:, 2]) / (2 * math.pi),
                      0.5 + torch.asin(v[:, 1].clamp(-1, 1)) / math.pi], dim=1)
    tex = torch.zeros(16, 16, 3)
    tex[:, :8, 0] = 1.0  # left half red, right half blue (row 0 at the top)
    tex[:, 8:, 2] = 1.0
    return Mesh(v, torch.tensor(tm.faces), uv=uv, texture=tex)


def _sorted_rows(a: np.ndarray, decimals: int) -> np.ndarray:
    a = np.round(a.astype(np.float64), decimals)
    return a[np.lexsort(a.T[::-1])]


def _glb_parts(tmp_path, mesh: Mesh):
    path = save_glb(mesh, tmp_path / "plain.glb")
    gltf, blob = parse_glb(path.read_bytes())
    return gltf, bytearray(blob)


def _read(gltf: dict, blob: bytes, index: int, dtype=np.float32, width: int = 3) -> np.ndarray:
    acc = gltf["accessors"][index]
    view = gltf["bufferViews"][acc["bufferView"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(bytes(blob[start:start + view["byteLength"]]), dtype=dtype)[: acc["count"] * width] \
        .reshape(acc["count"], width)


def _append_view(gltf: dict, blob: bytearray, data: bytes) -> int:
    blob.extend(b"\x00" * (-len(blob) % 4))
    gltf["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(data)})
    blob.extend(data)
    return len(gltf["bufferViews"]) - 1


def _write(tmp_path, name: str, gltf: dict, blob: bytes):
    gltf["buffers"] = [{"byteLength": len(blob) + (-len(blob) % 4)}]
    path = tmp_path / name
    path.write_bytes(pack_glb(gltf, bytes(blob)))
    return path


def _draco_glb(tmp_path, mesh: Mesh, name: str = "draco.glb"):
    """The mesh's GLB with its primitive replaced by a Draco stream, as Draco-aware exporters write it:
    the attribute accessors keep count/type/min/max but lose their bufferView."""
    gltf, blob = _glb_parts(tmp_path, mesh)
    prim = gltf["meshes"][0]["primitives"][0]
    pos = _read(gltf, blob, prim["attributes"]["POSITION"])
    nrm = _read(gltf, blob, prim["attributes"]["NORMAL"])
    uv = _read(gltf, blob, prim["attributes"]["TEXCOORD_0"], width=2)
    faces = _read(gltf, blob, prim["indices"], np.uint32, 1).reshape(-1, 3)
    f64 = np.float64
    stream = DracoPy.encode(pos.astype(f64), faces, tex_coord=uv.astype(f64), normals=nrm.astype(f64),
                            quantization_bits=16, preserve_order=True)
    decoded = DracoPy.decode(stream)
    ids = {a["attribute_type"]: a["unique_id"] for a in decoded.attributes}  # 0 position, 1 normal, 3 tex
    for key in ("POSITION", "NORMAL", "TEXCOORD_0"):
        gltf["accessors"][prim["attributes"][key]].pop("bufferView")
    gltf["accessors"][prim["indices"]].pop("bufferView")
    prim["extensions"] = {"KHR_draco_mesh_compression": {
        "bufferView": _append_view(gltf, blob, stream),
        "attributes": {"POSITION": ids[0], "NORMAL": ids[1], "TEXCOORD_0": ids[3]}}}
    gltf["extensionsUsed"] = ["KHR_draco_mesh_compression"]
    gltf["extensionsRequired"] = ["KHR_draco_mesh_compression"]
    return _write(tmp_path, name, gltf, blob)


def test_draco_glb_decodes_to_the_same_surface_uvs_and_texture(tmp_path):
    mesh = _textured_sphere()
    plain = Mesh.load(save_glb(mesh, tmp_path / "plain.glb"))
    draco = Mesh.load(_draco_glb(tmp_path, mesh))
    assert draco.num_faces == plain.num_faces == mesh.num_faces
    assert draco.num_vertices == plain.num_vertices
    # 16-bit quantization over a 2-unit box: positions within 2 / 65535 * a few
    corners = lambda m: _sorted_rows(m.vertices[m.faces].reshape(-1, 9).numpy(), 3)  # noqa: E731
    np.testing.assert_allclose(corners(draco), corners(plain), atol=2e-3)
    uv_corners = lambda m: _sorted_rows(m.uv[m.face_uv].reshape(-1, 6).numpy(), 3)  # noqa: E731
    np.testing.assert_allclose(uv_corners(draco), uv_corners(plain), atol=2e-3)
    torch.testing.assert_close(draco.texture, plain.texture)


def test_draco_file_is_read_by_the_cli_too(tmp_path, capsys):
    path = _draco_glb(tmp_path, _textured_sphere())
    out = tmp_path / "view.obj"
    Mesh.load(path).save(out)
    assert Mesh.load(out).num_faces == 320


def test_draco_without_dracopy_names_the_package(tmp_path, monkeypatch):
    path = _draco_glb(tmp_path, _textured_sphere())
    real_import = builtins.__import__

    def no_draco(name, *args, **kwargs):
        if name == "DracoPy":
            raise ImportError("No module named 'DracoPy'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_draco)
    with pytest.raises(MeshFormatError, match=r"KHR_draco_mesh_compression.*pip install DracoPy"):
        Mesh.load(path)


def test_corrupt_draco_stream_is_a_clear_error(tmp_path):
    path = _draco_glb(tmp_path, _textured_sphere())
    gltf, blob = parse_glb(path.read_bytes())
    ext = gltf["meshes"][0]["primitives"][0]["extensions"]["KHR_draco_mesh_compression"]
    view = gltf["bufferViews"][ext["bufferView"]]
    blob = bytearray(blob)
    blob[view["byteOffset"]: view["byteOffset"] + view["byteLength"]] = b"\x07" * view["byteLength"]
    bad = _write(tmp_path, "corrupt.glb", gltf, blob)
    with pytest.raises(MeshFormatError, match="Draco-compressed primitive could not be decoded"):
        Mesh.load(bad)


def _spec_uv_transform(uv: np.ndarray, offset, rotation: float, scale) -> np.ndarray:
    """KHR_texture_transform as its spec writes it: T * R * S applied to (u, v, 1)."""
    c, s = math.cos(rotation), math.sin(rotation)
    su, sv = uv[:, 0] * scale[0], uv[:, 1] * scale[1]
    return np.stack([c * su + s * sv + offset[0], -s * su + c * sv + offset[1]], axis=1)


def test_texture_transform_on_the_base_colour_is_applied(tmp_path):
    """An atlas-style file: the stored UVs cover [0, 1]^2, the transform maps them onto a sub-rectangle
    (rotated); csdkit must hand back the transformed UVs, i.e. sample the same texels a viewer does."""
    mesh = _textured_sphere()
    gltf, blob = _glb_parts(tmp_path, mesh)
    offset, rotation, scale = (0.25, 0.1), 0.3, (0.5, 0.4)
    gltf["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = {
        "KHR_texture_transform": {"offset": list(offset), "rotation": rotation, "scale": list(scale)}}
    gltf["extensionsUsed"] = ["KHR_texture_transform"]
    loaded = Mesh.load(_write(tmp_path, "transformed.glb", gltf, blob))
    plain = Mesh.load(tmp_path / "plain.glb")
    # per face corner (both loads see the same faces in the same order)
    corner = plain.uv[plain.face_uv].reshape(-1, 2).double().numpy()
    gl = np.stack([corner[:, 0], 1.0 - corner[:, 1]], axis=1)  # csdkit v up -> glTF v down
    moved = _spec_uv_transform(gl, offset, rotation, scale)
    expected = np.stack([moved[:, 0], 1.0 - moved[:, 1]], axis=1)
    got = loaded.uv[loaded.face_uv].reshape(-1, 2).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.ptp(got[:, 0]) < 0.75  # really shrunk, not ignored


def test_texcoord_1_and_quantized_uvs(tmp_path):
    """The base colour reads TEXCOORD_1, stored as normalized uint16 (KHR_mesh_quantization)."""
    mesh = _textured_sphere()
    gltf, blob = _glb_parts(tmp_path, mesh)
    prim = gltf["meshes"][0]["primitives"][0]
    uv = _read(gltf, blob, prim["attributes"]["TEXCOORD_0"], width=2)
    q = np.round(np.clip(uv, 0, 1) * 65535).astype(np.uint16)
    gltf["accessors"].append({"bufferView": _append_view(gltf, blob, q.tobytes()), "componentType": 5123,
                              "normalized": True, "count": len(q), "type": "VEC2"})
    prim["attributes"]["TEXCOORD_1"] = len(gltf["accessors"]) - 1
    # TEXCOORD_0 becomes garbage (the VEC3 positions): a reader that ignores texCoord samples wrong texels
    prim["attributes"]["TEXCOORD_0"] = prim["attributes"]["POSITION"]
    gltf["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["texCoord"] = 1
    gltf["extensionsUsed"] = ["KHR_mesh_quantization"]
    gltf["extensionsRequired"] = ["KHR_mesh_quantization"]
    loaded = Mesh.load(_write(tmp_path, "quantized.glb", gltf, blob))
    plain = Mesh.load(tmp_path / "plain.glb")
    got = _sorted_rows(loaded.uv[loaded.face_uv].reshape(-1, 6).numpy(), 3)
    want = _sorted_rows(plain.uv[plain.face_uv].reshape(-1, 6).numpy(), 3)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_gltf_1_is_refused_with_its_version(tmp_path, capsys):
    doc = {"asset": {"version": "1.0"}, "meshes": {"m": {"primitives": []}}}
    path = tmp_path / "old.gltf"
    path.write_text(json.dumps(doc))
    with pytest.raises(MeshFormatError, match=r"glTF 1\.0.*glTF 2\.0 only"):
        Mesh.load(path)
    assert main(["texture", str(path), "a red cube", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "glTF 1.0" in err[0]


def test_glb_version_1_header_is_refused(tmp_path):
    path = tmp_path / "v1.glb"
    body = b'{"asset":{"version":"1.0"}}'
    path.write_bytes(b"glTF" + (1).to_bytes(4, "little") + (20 + len(body)).to_bytes(4, "little")
                     + len(body).to_bytes(4, "little") + (0).to_bytes(4, "little") + body)
    with pytest.raises(MeshFormatError, match=r"GLB version 1 \(glTF 1\.0\)"):
        Mesh.load(path)


def test_unknown_required_extension_is_named(tmp_path):
    gltf, blob = _glb_parts(tmp_path, _textured_sphere())
    gltf["extensionsUsed"] = gltf["extensionsRequired"] = ["EXT_meshopt_compression"]
    path = _write(tmp_path, "meshopt.glb", gltf, blob)
    with pytest.raises(MeshFormatError, match="EXT_meshopt_compression"):
        Mesh.load(path)


def test_truncated_glb_is_a_clear_error(tmp_path):
    data = save_glb(_textured_sphere(), tmp_path / "ok.glb").read_bytes()
    path = tmp_path / "truncated.glb"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MeshFormatError, match="truncated"):
        Mesh.load(path)
