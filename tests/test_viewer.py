"""csdkit.viewer on the Python side: GLB checks, HTML fragments and pages, write_report, `csdkit view`."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import struct

import pytest
import torch
from viewer_scenes import banded_sphere

from csdkit.cli import main as cli_main
from csdkit.geometry.mesh import Mesh
from csdkit.io import save_glb, save_obj
from csdkit.training import RunDirectory, write_report
from csdkit.training.report import report_csp
from csdkit.viewer import (
    MAX_GLB_BYTES,
    GLBError,
    ViewerCamera,
    content_security_policy,
    embed_viewer,
    inspect_glb,
    viewer_html,
    viewer_script,
    viewer_script_hash,
)


@pytest.fixture(scope="module")
def sphere_glb(tmp_path_factory) -> bytes:
    return save_glb(banded_sphere(), tmp_path_factory.mktemp("glb") / "sphere.glb").read_bytes()


def glb_from(doc: dict, bin_chunk: bytes = b"") -> bytes:
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    bin_chunk += b"\0" * (-len(bin_chunk) % 4)
    body = struct.pack("<I4s", len(js), b"JSON") + js
    if bin_chunk:
        body += struct.pack("<I4s", len(bin_chunk), b"BIN\0") + bin_chunk
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def split_glb(data: bytes) -> tuple[dict, bytes]:
    jl = struct.unpack_from("<I", data, 12)[0]
    return json.loads(data[20:20 + jl]), data[28 + jl:]


def page_scripts(page: str) -> list[str]:
    return re.findall(r"<script>(.*?)</script>", page, flags=re.S)


def test_inspect_glb_summarizes_a_csdkit_glb(sphere_glb):
    mesh = banded_sphere()
    info = inspect_glb(sphere_glb)
    assert info.triangles == mesh.num_faces and info.primitives == 1
    assert info.vertices == len(torch.unique(mesh.faces))  # the vertices the faces use
    assert info.textured and info.image_types == ("image/png",)
    lo, hi = info.bounds
    assert lo == pytest.approx((-1, -1, -1), abs=1e-5) and hi == pytest.approx((1, 1, 1), abs=1e-5)
    assert info.generator == "csdkit" and info.unsupported_extensions == ()


@pytest.mark.parametrize("mutate, message", [
    (lambda d, doc, b: d[:12], "shorter than the 20-byte GLB header"),
    (lambda d, doc, b: b"PK\x03\x04" + d[4:], "not a GLB"),
    (lambda d, doc, b: d[:4] + struct.pack("<I", 1) + d[8:], "version 1"),
    (lambda d, doc, b: d[:-16], "truncated GLB"),
    (lambda d, doc, b: d[:20] + b"{no json" + d[28:], "does not parse"),
    (lambda d, doc, b: glb_from({**doc, "asset": {"version": "1.0"}}, b), "asset version"),
    (lambda d, doc, b: glb_from({**doc, "meshes": []}, b), "holds no mesh"),
    (lambda d, doc, b: glb_from({**doc, "accessors": [{**doc["accessors"][0], "count": 10**6}] + doc["accessors"][1:]},
                                b), "runs past its bufferView"),
    (lambda d, doc, b: glb_from({**doc, "bufferViews": [{**doc["bufferViews"][0], "byteLength": 10**8}]
                                 + doc["bufferViews"][1:]}, b), "runs past its buffer"),
    (lambda d, doc, b: glb_from({**doc, "buffers": [{"byteLength": len(b), "uri": "mesh.bin"}]}, b), "external file"),
    (lambda d, doc, b: glb_from({**doc, "meshes": [{"primitives": [{"attributes": {"POSITION": 99}}]}]}, b),
     "accessors[99]"),
    (lambda d, doc, b: glb_from(doc), "no BIN chunk"),
])
def test_inspect_glb_rejects_malformed_files(sphere_glb, mutate, message):
    doc, b = split_glb(sphere_glb)
    with pytest.raises(GLBError, match=re.escape(message)):
        inspect_glb(mutate(sphere_glb, doc, b))


def test_inspect_glb_size_limit_and_types(sphere_glb):
    assert MAX_GLB_BYTES == 64 * 2**20
    with pytest.raises(GLBError, match="above the viewer's limit"):
        inspect_glb(sphere_glb, max_bytes=1000)
    with pytest.raises(TypeError, match="must be bytes"):
        inspect_glb("sphere.glb")
    doc, b = split_glb(sphere_glb)
    info = inspect_glb(glb_from({**doc, "extensionsRequired": ["KHR_draco_mesh_compression"]}, b))
    assert info.unsupported_extensions == ("KHR_draco_mesh_compression",)


def test_viewer_html_is_self_contained_with_a_strict_csp(sphere_glb):
    page = viewer_html({"a <sphere>": sphere_glb, "again": sphere_glb}, title="t & t")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert csp.startswith("default-src 'none';") and "img-src data:" in csp and "connect-src" not in csp
    scripts = page_scripts(page)
    assert scripts == [viewer_script()]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in csp and viewer_script_hash() == f"'sha256-{digest}'"
    blobs = re.findall(r'<script type="application/x-csdkit-glb-base64">([^<]*)</script>', page)
    assert [base64.b64decode(x) for x in blobs] == [sphere_glb, sphere_glb]
    assert 'data-label="a &lt;sphere&gt;"' in page and "<title>t &amp; t</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "fetch(" not in viewer_script() and "XMLHttpRequest" not in viewer_script()
    assert content_security_policy(["'x'"]) == report_csp(["'x'"])


def test_embed_viewer_config_and_errors(sphere_glb, tmp_path):
    cam = ViewerCamera(elevation=20, azimuth=-45, distance=3.5, fov_y=40, target=(0, 0.1, 0))
    emb = embed_viewer({"s": sphere_glb}, linked=False, camera=cam, size=(320, 240), background=(1, 1, 1))
    cfg = json.loads(re.search(r'data-config="([^"]+)"', emb.html).group(1).replace("&quot;", '"'))
    assert cfg == {"linked": False, "camera": {"elevation": 20.0, "azimuth": -45.0, "distance": 3.5, "fov_y": 40.0,
                                               "target": [0.0, 0.1, 0.0], "margin": 1.15},
                   "size": [320, 240], "background": [1.0, 1.0, 1.0], "ambient": 0.5, "diffuse": 0.5}
    assert emb.bytes_embedded == len(sphere_glb) and emb.script_sources == (viewer_script_hash(),)
    p = tmp_path / "s.glb"
    p.write_bytes(sphere_glb)
    assert sphere_glb.hex()[:40] in base64.b64decode(
        re.search(r'base64">([^<]*)<', embed_viewer({"file": p}).html).group(1)).hex()
    with pytest.raises(ValueError, match="non-empty mapping"):
        embed_viewer({})
    with pytest.raises(ValueError, match="add up to"):
        embed_viewer({"a": sphere_glb, "b": sphere_glb}, max_bytes=len(sphere_glb) + 10)
    with pytest.raises(GLBError, match="not a GLB"):
        embed_viewer({"bad": b"x" * 100})
    with pytest.raises(FileNotFoundError, match="no such file"):
        embed_viewer({"missing": tmp_path / "nope.glb"})
    with pytest.raises(ValueError, match="size"):
        embed_viewer({"s": sphere_glb}, size=(0, 10))
    with pytest.raises(ValueError, match="fov_y"):
        ViewerCamera(fov_y=0.5)
    with pytest.raises(ValueError, match="distance"):
        ViewerCamera(distance=-1.0)


def test_viewer_camera_from_cameras():
    from csdkit.render.cameras import Cameras

    cam = ViewerCamera.from_cameras(Cameras.from_spherical([5.0, 20.0], [10.0, -40.0], 3.3, fov_y=42.0), index=1)
    assert (cam.elevation, cam.azimuth, cam.distance, cam.fov_y) == pytest.approx((20.0, -40.0, 3.3, 42.0), abs=1e-4)
    assert cam.target == (0.0, 0.0, 0.0)
    with pytest.raises(TypeError, match="csdkit.Cameras"):
        ViewerCamera.from_cameras(object())


def test_write_report_embeds_viewers_and_sets_the_csp(sphere_glb, tmp_path):
    run = RunDirectory(tmp_path / "run")
    plain = write_report(run, "plain").read_text()
    assert "script-src 'none'" in plain and "<script" not in plain
    emb = embed_viewer({"textured": sphere_glb}, title="3D view")
    page = write_report(run, "with view", viewers=[emb]).read_text()
    assert "<h2>3D view</h2>" in page and emb.html in page
    assert f"script-src {viewer_script_hash()};" in page
    with pytest.raises(TypeError, match="viewers"):
        write_report(run, "bad", viewers=["<div>"])


def test_cli_view_glb_obj_and_run_dir(sphere_glb, tmp_path, capsys):
    glb = tmp_path / "sphere.glb"
    glb.write_bytes(sphere_glb)
    assert cli_main(["view", str(glb)]) == 0
    out = capsys.readouterr().out.strip()
    assert out == str(tmp_path / "sphere.view.html")
    page = (tmp_path / "sphere.view.html").read_text()
    assert base64.b64encode(sphere_glb).decode() in page  # a GLB is embedded as it is

    obj = save_obj(banded_sphere(), tmp_path / "objs" / "ball.obj")
    target = tmp_path / "pages" / "ball.html"
    assert cli_main(["view", str(obj), "--out", str(target), "--title", "Ball"]) == 0
    blob = re.search(r'base64">([^<]*)<', target.read_text()).group(1)
    info = inspect_glb(base64.b64decode(blob))  # OBJ + MTL + PNG -> a textured GLB
    assert info.textured and info.triangles == banded_sphere().num_faces

    run = tmp_path / "run"
    run.mkdir()
    plain = Mesh(torch.rand(4, 3), torch.tensor([[0, 1, 2], [0, 2, 3]]))
    save_glb(plain, run / "edited.glb")
    save_glb(plain, run / "original.glb")
    assert cli_main(["view", str(run)]) == 0
    page = (run / "view.html").read_text()
    assert page.index('data-label="original"') < page.index('data-label="edited"')
    assert '"linked":true' in page.replace("&quot;", '"')


@pytest.mark.parametrize("content, message", [
    (b"glTF" + b"\0" * 30, "version"),
    (b"not a mesh at all, just text" * 4, "not a GLB"),
    (None, "above the viewer's limit of 64 MiB"),
])
def test_cli_view_rejects_malformed_or_huge_glb_with_exit_2(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.glb"
    if content is None:
        with open(bad, "wb") as fh:  # sparse: no 65 MiB written to disk
            fh.truncate(MAX_GLB_BYTES + 1)
    else:
        bad.write_bytes(content)
    assert cli_main(["view", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.startswith("csdkit: error:") and "\n" not in err
    assert not (tmp_path / "bad.view.html").exists()


def test_cli_view_bad_inputs(tmp_path, capsys):
    assert cli_main(["view", str(tmp_path / "none.glb")]) == 2
    assert "no such mesh file or run directory" in capsys.readouterr().err
    (tmp_path / "x.txt").write_text("hi")
    assert cli_main(["view", str(tmp_path / "x.txt")]) == 2
    assert "unsupported format '.txt'" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli_main(["view", str(tmp_path / "empty")]) == 2
    assert "holds no .glb" in capsys.readouterr().err


def test_viewer_js_is_a_package_asset():
    from importlib import resources

    asset = resources.files("csdkit.viewer").joinpath("viewer.js")
    assert asset.is_file() and "function parseGLB" in asset.read_text()


def test_cli_view_reexports_a_draco_glb(tmp_path, capsys):
    draco = pytest.importorskip("DracoPy")  # a csdkit.io dependency (Makefile deps)
    mesh = banded_sphere()
    enc = draco.encode(mesh.vertices.numpy(), mesh.faces.numpy().astype("uint32"))
    ext = "KHR_draco_mesh_compression"
    doc = {"asset": {"version": "2.0"}, "extensionsUsed": [ext], "extensionsRequired": [ext],
           "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
           "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1,
                                       "extensions": {ext: {"bufferView": 0, "attributes": {"POSITION": 0}}}}]}],
           "accessors": [{"componentType": 5126, "count": mesh.num_vertices, "type": "VEC3",
                          "min": [-1.0, -1.0, -1.0], "max": [1.0, 1.0, 1.0]},
                         {"componentType": 5125, "count": 3 * mesh.num_faces, "type": "SCALAR"}],
           "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(enc)}],
           "buffers": [{"byteLength": len(enc)}]}
    src = tmp_path / "draco.glb"
    src.write_bytes(glb_from(doc, enc))
    assert inspect_glb(src.read_bytes()).unsupported_extensions == (ext,)
    assert cli_main(["view", str(src)]) == 0
    blob = re.search(r'base64">([^<]*)<', (tmp_path / "draco.view.html").read_text()).group(1)
    info = inspect_glb(base64.b64decode(blob))  # decoded through csdkit.io, written as a plain GLB
    assert info.extensions_required == () and info.triangles == mesh.num_faces


def test_report_leaves_out_a_view_above_the_limit(sphere_glb, tmp_path, monkeypatch):
    from csdkit.pipelines import common

    run = RunDirectory(tmp_path / "run")
    exports = {"textured.glb": lambda p: (p.write_bytes(sphere_glb), p)[1]}
    files = common.write_results(run, "t", exports=exports, images={}, summary={},
                                 views={"textured": "textured.glb"})
    assert 'class="csdkit-viewer"' in files["report"].read_text()
    monkeypatch.setattr(common, "MAX_GLB_BYTES", len(sphere_glb) - 1)
    files = common.write_results(run, "t", exports=exports, images={}, summary={},
                                 views={"textured": "textured.glb"})
    page = files["report"].read_text()
    assert 'class="csdkit-viewer"' not in page and "3D view" in page and "left out: the GLBs are" in page
