"""Editing with the embedded MiniPrior: red -> green, regions keep texels bit for bit, fidelity, shape edits, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

import csdkit
from csdkit.cli import main as cli_main
from csdkit.editing import Editor, Region, parse_region
from csdkit.editing.volume import bbox_fill
from csdkit.geometry.primitives import icosphere
from csdkit.guidance.mini import MiniPrior
from csdkit.pipelines.edit import edit
from csdkit.uv import rasterize_uv, unwrap_uv

SIZE = 128
# The input lives in its own frame: radius 2, centred at (5, 1, 0); the box regions below use it.
SCALE, OFFSET = 2.0, torch.tensor([5.0, 1.0, 0.0])


@pytest.fixture(scope="module")
def prior():
    return MiniPrior()


@pytest.fixture(scope="module")
def red_sphere() -> csdkit.Mesh:
    mesh = unwrap_uv(icosphere(3), resolution=SIZE)
    texture = torch.zeros(SIZE, SIZE, 3)
    texture[..., 0] = 1.0
    return mesh.replace(vertices=mesh.vertices * SCALE + OFFSET, texture=texture)


@pytest.fixture(scope="module")
def red_glb(red_sphere, tmp_path_factory):
    return csdkit.io.save_mesh(red_sphere, tmp_path_factory.mktemp("input") / "red.glb")


def green_minus_red(result) -> float:
    return result.metrics["mean_g"] - result.metrics["mean_r"]


def test_red_object_turns_green(prior, red_sphere):
    result = Editor(prior, "a green sphere", "a red sphere", steps=60, seed=0).edit(red_sphere, progress=False)
    assert result.kind == "appearance" and result.status == "completed" and result.steps == 60
    assert result.metrics["mean_g"] > 0.5 and green_minus_red(result) > 0.3, result.metrics
    # the result keeps the input's frame, faces, UV layout and texture size
    assert torch.equal(result.asset.vertices, red_sphere.vertices)
    assert torch.equal(result.asset.uv, red_sphere.uv) and torch.equal(result.asset.face_uv, red_sphere.face_uv)
    assert result.texture.shape == (SIZE, SIZE, 3) and torch.equal(result.original_texture, red_sphere.texture)


def test_higher_fidelity_stays_closer(prior, red_sphere):
    changes = []
    for fidelity in (0.0, 1.0):
        result = Editor(prior, "a green sphere", "a red sphere", fidelity=fidelity, steps=40,
                        seed=1).edit(red_sphere, progress=False)
        changes.append(result.metrics["render_change"])
    assert changes[1] < 0.5 * changes[0], changes


def test_region_box_keeps_outside_texels_bit_for_bit(prior, red_glb, tmp_path):
    # upper half of the sphere in the input's own coordinates (y from 1.5 to 4; the sphere spans -1..3)
    box = "box:2,1.5,-3,8,4,3"
    result = edit(red_glb, "a green sphere", source_prompt="a red sphere", region=box, steps=40, seed=0,
                  out_dir=tmp_path / "run", progress=False, quiet=True)
    original, edited, mask = result.original_texture, result.texture, result.region_mask
    assert torch.equal(edited[~mask], original[~mask])  # bitwise, not approximately
    raster = rasterize_uv(result.original, (SIZE, SIZE))
    outside = raster.mask & ~Region.box([2, 1.5, -3, 8, 4, 3]).contains(raster.position.double())
    inside = raster.mask & ~outside
    assert outside.sum() > 1000 and inside.sum() > 1000
    assert torch.equal(edited[outside], original[outside])
    change = (edited[inside] - original[inside]).abs().mean()
    assert change > 0.2, float(change)
    # run directory: files, and the GLB keeps the input's placement, UVs and the untouched texels
    assert result.files["glb"].name == "edited.glb"
    assert "original" in (tmp_path / "run" / "report.html").read_text()
    for name in ("edited.glb", "original.glb", "edited.obj", "comparison.png", "turntable_original.png",
                 "turntable_edited.png", "report.html", "config.json", "metrics.jsonl", "edit_metrics.json"):
        assert (tmp_path / "run" / name).exists(), name
    back = csdkit.io.load_mesh(tmp_path / "run" / "edited.glb")
    lo, hi = back.bounds()
    assert torch.allclose(lo, OFFSET - SCALE, atol=1e-3) and torch.allclose(hi, OFFSET + SCALE, atol=1e-3)
    tex8 = (back.texture * 255).round()
    orig8 = (original * 255).round()
    assert torch.equal(tex8[outside], orig8[outside])
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["job"] == "edit" and cfg["region"] == "box:2,1.5,-3,8,4,3"
    # resume of a finished run: nothing to redo, same result
    again = edit(red_glb, "a green sphere", source_prompt="a red sphere", region=box, steps=40, seed=0,
                 out_dir=tmp_path / "run", resume=True, progress=False, quiet=True)
    assert again.steps == 40 and torch.equal(again.texture, edited)


def test_shape_edit_moves_toward_target(prior):
    torch.manual_seed(0)
    ball = csdkit.ImplicitVolume(radius=1.0, encoding=csdkit.HashGridEncoding(3, n_levels=8, log2_hashmap_size=15),
                                 density_bias="blob", blob_scale=10.0, blob_std=0.5)
    fill0 = bbox_fill(ball, 1.0)
    editor = Editor(prior, "a cube", "a sphere", fidelity=0.0, steps=100, lr=0.03, batch_size=2, shading="albedo",
                    volume_samples=64, distance_range=(2.6, 3.2), fov_range=(45.0, 55.0), seed=0)
    result = editor.edit(ball, progress=False)
    assert result.kind == "shape" and result.steps == 100
    assert result.metrics["bbox_fill_original"] == pytest.approx(fill0, abs=0.02)
    assert result.metrics["bbox_fill"] > fill0 + 0.15, result.metrics


def test_shape_edit_region_keeps_outside(prior, tmp_path):
    torch.manual_seed(0)
    ball = csdkit.ImplicitVolume(radius=1.0, encoding=csdkit.HashGridEncoding(3, n_levels=4, log2_hashmap_size=12),
                                 density_bias="blob", blob_scale=10.0, blob_std=0.5)
    result = edit(ball, "a cube", source_prompt="a sphere", region="box:-1,0,-1,1,1,1", steps=3, prior=prior,
                  lr=0.05, batch_size=1, volume_samples=32, out_dir=tmp_path / "vol", progress=False, quiet=True)
    for name in ("edited_volume.pt", "edited.glb", "comparison.png", "report.html", "edit_metrics.json"):
        assert (tmp_path / "vol" / name).exists(), name
    pts = torch.rand(2000, 3) * 2 - 1
    below = pts[:, 1] < 0
    with torch.no_grad():
        a, b = result.asset.density(pts), ball.density(pts)
    assert torch.equal(a[below], b[below])
    assert not torch.equal(a[~below], b[~below])
    with pytest.raises(ValueError, match="contains no part"):
        Editor(prior, "a cube", region="box:5,5,5,6,6,6", steps=1).edit(ball, progress=False)


# ---- bad input -------------------------------------------------------------------------------------------
def test_region_parsing_errors(tmp_path):
    for bad in ("box:1,2,3", "box:0,0,0,1,1,x", "box:1,0,0,0,1,1"):
        with pytest.raises(ValueError, match="box"):
            parse_region(bad)
    with pytest.raises(ValueError, match="neither box"):
        parse_region(str(tmp_path / "missing.png"))
    (tmp_path / "faces.txt").write_text("0 1 2\n3, 4")
    assert parse_region(str(tmp_path / "faces.txt")).face_ids.tolist() == [0, 1, 2, 3, 4]


def test_region_texel_masks(red_sphere):
    raster = rasterize_uv(red_sphere, (SIZE, SIZE))
    painted = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    painted[: SIZE // 2] = True
    m = Region.uv_mask(painted).texel_mask(red_sphere, raster, (SIZE, SIZE))
    assert torch.equal(m[painted], painted[painted]) and not m[SIZE // 2 + 3:][raster.mask[SIZE // 2 + 3:]].any()
    faces = Region.faces([0, 1, 2]).texel_mask(red_sphere, raster, (SIZE, SIZE))
    assert torch.equal(faces & raster.mask, torch.isin(raster.face_id, torch.tensor([0, 1, 2])))
    with pytest.raises(ValueError, match="out of range"):
        Region.faces([10**6]).texel_mask(red_sphere, raster, (SIZE, SIZE))
    with pytest.raises(ValueError, match="texture's size"):
        Region.uv_mask(painted[:, :64]).texel_mask(red_sphere, raster, (SIZE, SIZE))


def _cli(capsys, *args) -> tuple[int, str]:
    code = cli_main(["edit", *map(str, args), "--no-progress"])
    err = capsys.readouterr().err.strip()
    return code, err


def test_cli_errors(capsys, tmp_path, red_glb, red_sphere):
    plain = csdkit.io.save_mesh(csdkit.Mesh(icosphere(2).vertices, icosphere(2).faces), tmp_path / "plain.ply")
    cases = [
        ((plain, "a green sphere"), "no texture"),
        ((red_glb, "a green sphere", "--region", "box:0,0,0,1,1"), "6 numbers"),
        ((red_glb, "a green sphere", "--region", "box:20,20,20,30,30,30"), "contains no part"),
        ((tmp_path / "nope.glb", "a green sphere"), "not found"),
    ]
    from PIL import Image

    Image.fromarray((torch.ones(64, 32) * 255).byte().numpy()).save(tmp_path / "mask.png")
    cases.append(((red_glb, "a green sphere", "--region", tmp_path / "mask.png"), "must be the texture's size"))
    for i, (args, message) in enumerate(cases):
        code, err = _cli(capsys, *args, "--out", tmp_path / f"run{i}", "--steps", 1)
        assert code == 2, (args, err)
        assert message in err and len(err.splitlines()) == 1, err
    # a face selection is accepted; --init-color starts an untextured mesh
    faces = tmp_path / "faces.txt"
    faces.write_text(" ".join(map(str, range(0, red_sphere.num_faces, 2))))
    code, err = _cli(capsys, red_glb, "a green sphere", "--region", faces, "--steps", 2, "--out", tmp_path / "f")
    assert code == 0, err
    code, err = _cli(capsys, plain, "a green sphere", "--init-color", "0.8,0.1,0.1", "--steps", 2,
                     "--out", tmp_path / "c")
    assert code == 0, err
    assert (tmp_path / "c" / "edited.glb").exists()
    code, err = _cli(capsys, red_glb, "a green sphere", "--steps", 2, "--out", tmp_path / "f")
    assert code == 2 and "--resume" in err


def test_ctrl_c_then_resume_matches_uninterrupted(prior, red_sphere, tmp_path):
    import os
    import signal

    kwargs = dict(source_prompt="a red sphere", steps=12, seed=3, prior=prior, progress=False, quiet=True)
    full = edit(red_sphere, "a green sphere", **kwargs)

    def interrupt(step, info):
        if step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # the Trainer stops after this step and writes a checkpoint

    stopped = edit(red_sphere, "a green sphere", out_dir=tmp_path / "r", callback=interrupt, **kwargs)
    assert stopped.status == "interrupted" and stopped.steps == 5
    assert not (tmp_path / "r" / "edited.glb").exists()
    resumed = edit(red_sphere, "a green sphere", out_dir=tmp_path / "r", resume=True, **kwargs)
    assert resumed.status == "completed" and resumed.steps == 12
    assert torch.equal(resumed.texture, full.texture)


def test_vertex_colours_are_baked_and_untextured_needs_a_colour():
    from csdkit.editing import appearance_input

    sphere = icosphere(2)
    colours = torch.zeros(sphere.num_vertices, 3)
    colours[:, 2] = 1.0
    mesh, texture = appearance_input(csdkit.Mesh(sphere.vertices, sphere.faces, vertex_colors=colours),
                                     texture_size=64)
    assert mesh.uv is not None and texture.shape == (64, 64, 3)
    assert torch.allclose(texture[rasterize_uv(mesh, 64).mask], torch.tensor([0.0, 0.0, 1.0]), atol=1e-4)
    with pytest.raises(ValueError, match="init_color"):
        appearance_input(csdkit.Mesh(sphere.vertices, sphere.faces))


def test_cli_obj_input_and_texture_run_directory(capsys, tmp_path, red_sphere, red_glb):
    import shutil

    obj = csdkit.io.save_mesh(red_sphere, tmp_path / "in" / "red.obj")
    code, err = _cli(capsys, obj, "a green sphere", "--steps", 1, "--out", tmp_path / "o")
    assert code == 0, err
    back = csdkit.io.load_mesh(tmp_path / "o" / "edited.obj")
    assert back.texture.shape == (SIZE, SIZE, 3) and back.num_faces == red_sphere.num_faces
    run = tmp_path / "texture-run"  # what `csdkit texture` leaves: textured.glb in its run directory
    run.mkdir()
    shutil.copy(red_glb, run / "textured.glb")
    code, err = _cli(capsys, run, "a green sphere", "--steps", 1, "--out", tmp_path / "t")
    assert code == 0, err
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    assert cfg["input"] == str(run / "textured.glb") and cfg["stage"] is None  # no generate run: no stage
    code, err = _cli(capsys, tmp_path / "in", "a green sphere", "--out", tmp_path / "x")
    assert code == 2 and "not a csdkit texture or edit run" in err


def test_dmtet_shape_edit_keeps_outside_the_box(prior, tmp_path):
    dmtet = csdkit.DMTet(resolution=16, radius=1.0)
    result = edit(dmtet, "a gray cube", source_prompt="a gray sphere", region="box:-1,0,-1,1,1,1", steps=8,
                  prior=prior, out_dir=tmp_path / "dm", progress=False, quiet=True)
    assert result.kind == "shape" and result.steps == 8
    below = (dmtet.vertices[:, 1] < 0).detach()
    assert torch.equal(result.asset.sdf[below], dmtet.sdf[below].detach())
    assert torch.equal(result.asset.deformation[below], dmtet.deformation[below].detach())
    assert (result.asset.sdf[~below] - dmtet.sdf[~below]).abs().max() > 0
    for name in ("edited.glb", "original.glb", "comparison.png", "report.html"):
        assert (tmp_path / "dm" / name).exists(), name
    with pytest.raises(ValueError, match="contains no part"):
        Editor(prior, "a cube", region="box:0.9,0.9,0.9,1,1,1", steps=1).edit(dmtet, progress=False)


def test_generate_run_dir_edits_its_dmtet(prior, tmp_path):
    from csdkit.pipelines.edit import resolve_input
    from csdkit.pipelines.generate_mesh import save_dmtet

    run = tmp_path / "gen"
    (run / "mesh").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"job": "generate"}))
    with pytest.raises(ValueError, match="nerf stage has not finished"):
        resolve_input(run)  # no dmtet.pt: falls back to the NeRF
    save_dmtet(csdkit.DMTet(resolution=16, radius=1.0), 10.0, run / "mesh" / "dmtet.pt")
    stage = csdkit.DMTet(resolution=16, radius=1.0).export_mesh()  # mesh.pt as the mesh stage writes it
    torch.save({"vertices": stage.vertices, "faces": stage.faces, "threshold": 10.0,
                "vertex_colors": torch.tensor([0.0, 0.0, 1.0]).expand(stage.num_vertices, 3).clone()},
               run / "mesh" / "mesh.pt")
    obj, source = resolve_input(run)
    assert isinstance(obj, csdkit.DMTet) and source.endswith("dmtet.pt")
    result = edit(run, "a blue sphere", steps=2, prior=prior, out_dir=tmp_path / "e", progress=False, quiet=True)
    assert result.kind == "shape"
    assert (tmp_path / "e" / "edited_dmtet.pt").exists() and (tmp_path / "e" / "edited.glb").exists()
    colors = csdkit.io.load_mesh(tmp_path / "e" / "edited.glb").vertex_colors  # the stage mesh's colour
    assert colors is not None and torch.allclose(colors.float().mean(0), torch.tensor([0.0, 0.0, 1.0]), atol=0.02)
    (run / "mesh" / "dmtet.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a readable csdkit DMTet"):
        resolve_input(run)


def _generate_run(path, *, dmtet: bool, nerf: bool):
    """A fake ``csdkit generate`` run directory with a small DMTet and / or NeRF (what the stages save)."""
    import dataclasses

    from csdkit.pipelines.generate_config import MINI_GENERATE
    from csdkit.pipelines.generate_mesh import save_dmtet
    from csdkit.pipelines.generate_nerf import build_volume, save_volume

    (path / "mesh").mkdir(parents=True)
    (path / "nerf").mkdir()
    (path / "config.json").write_text(json.dumps({"job": "generate"}))
    if dmtet:
        save_dmtet(csdkit.DMTet(resolution=16, radius=1.0), 10.0, path / "mesh" / "dmtet.pt")
    if nerf:
        cfg = dataclasses.replace(MINI_GENERATE.nerf, n_levels=4, log2_hashmap_size=12, hidden_dim=16,
                                  shape_init="blob")
        save_volume(build_volume(cfg, torch.device("cpu")), cfg, path / "nerf" / "volume.pt")
    return path


def test_generate_run_stage_choice(tmp_path, red_glb):
    from csdkit.pipelines.edit import resolve_input

    both = _generate_run(tmp_path / "both", dmtet=True, nerf=True)
    assert isinstance(resolve_input(both)[0], csdkit.DMTet)  # auto: the mesh stage's DMTet when there is one
    obj, source = resolve_input(both, stage="nerf")
    assert isinstance(obj, csdkit.ImplicitVolume) and source == str(both / "nerf" / "volume.pt")
    obj, source = resolve_input(both, stage="mesh")
    assert isinstance(obj, csdkit.DMTet) and source == str(both / "mesh" / "dmtet.pt")
    nerf_only = _generate_run(tmp_path / "nerf-only", dmtet=False, nerf=True)
    assert isinstance(resolve_input(nerf_only, stage="auto")[0], csdkit.ImplicitVolume)
    with pytest.raises(ValueError, match=r"stage='mesh' needs .*dmtet\.pt.*missing; it has the NeRF .*volume\.pt"):
        resolve_input(nerf_only, stage="mesh")
    mesh_only = _generate_run(tmp_path / "mesh-only", dmtet=True, nerf=False)
    with pytest.raises(ValueError, match=r"stage='nerf' needs .*volume\.pt.*missing; it has the mesh stage's DMTet"):
        resolve_input(mesh_only, stage="nerf")
    empty = _generate_run(tmp_path / "empty", dmtet=False, nerf=False)
    with pytest.raises(ValueError, match="no stage has finished"):
        resolve_input(empty, stage="mesh")
    for stage in ("mesh", "nerf"):  # not a generate run: only "auto"
        for asset in (red_glb, csdkit.DMTet(resolution=8)):
            with pytest.raises(ValueError, match=rf"stage='{stage}' applies only to a csdkit generate run "
                                                 r"directory; the input .* is not one"):
                resolve_input(asset, stage=stage)
    for bad in ("NeRF", "dmtet", "", None, 1):
        with pytest.raises(ValueError, match=r"stage must be one of \('auto', 'nerf', 'mesh'\)"):
            resolve_input(both, stage=bad)
    with pytest.raises(ValueError, match="stage must be one of"):  # before any model loads or file is written
        edit(both, "a blue sphere", stage="meshes", out_dir=tmp_path / "never", progress=False, quiet=True)
    assert not (tmp_path / "never").exists()


def test_generate_run_stage_is_recorded_and_resumed(prior, capsys, tmp_path):
    run = _generate_run(tmp_path / "gen", dmtet=True, nerf=True)
    result = edit(run, "a blue sphere", stage="nerf", steps=1, prior=prior, batch_size=1, volume_samples=16,
                  volume_resolution=16, out_dir=tmp_path / "n", progress=False, quiet=True)
    assert result.kind == "shape" and isinstance(result.asset, csdkit.ImplicitVolume)
    assert (tmp_path / "n" / "edited_volume.pt").exists() and not (tmp_path / "n" / "edited_dmtet.pt").exists()
    cfg = json.loads((tmp_path / "n" / "config.json").read_text())
    assert cfg["stage"] == "nerf" and cfg["input"] == str(run / "nerf" / "volume.pt") and cfg["asset"] == str(run)
    # CLI: auto picks the DMTet and records "mesh"; --resume re-opens the generate run with that stage
    code, err = _cli(capsys, run, "a blue sphere", "--steps", 2, "--out", tmp_path / "m")
    assert code == 0, err
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["stage"] == "mesh" and cfg["input"] == str(run / "mesh" / "dmtet.pt")
    code, err = _cli(capsys, "--resume", "--out", tmp_path / "m")
    assert code == 0, err
    code, err = _cli(capsys, "--resume", "--out", tmp_path / "m", "--stage", "nerf")
    assert code == 2 and "continues the stage the run recorded ('mesh'); got --stage nerf" in err, err
    # a bad --stage is one line naming the allowed values; a stage for an input that is no generate run
    code, err = _cli(capsys, run, "a blue sphere", "--stage", "both", "--out", tmp_path / "x")
    assert code == 2 and "--stage must be one of auto, nerf, mesh, got 'both'" in err and len(err.splitlines()) == 1
    code, err = _cli(capsys, tmp_path / "m" / "edited.glb", "a blue sphere", "--stage", "mesh", "--out", tmp_path / "y")
    assert code == 2 and "stage='mesh'" in err and "edited.glb is not one" in err, err


def _noisy_sphere_dmtet(resolution: int = 16) -> csdkit.DMTet:
    torch.manual_seed(0)
    dmtet = csdkit.DMTet(resolution=resolution, radius=1.0)
    with torch.no_grad():
        dmtet.sdf.add_(0.04 * torch.randn_like(dmtet.sdf))  # a bumpy sphere
    return dmtet


def test_dmtet_edit_mesh_regularizers_are_reported_and_smooth(prior):
    from csdkit.geometry.mesh_regularizers import laplacian_loss, normal_consistency_loss

    def run(**weights):
        infos = []
        editor = Editor(prior, "a gray cube", "a gray sphere", fidelity=0.0, steps=20, batch_size=2, seed=0,
                        dmtet_smoothing=0.0, **weights)  # the regularizers alone (smoothing has its own test)
        result = editor.edit(_noisy_sphere_dmtet(), progress=False, callback=lambda step, info: infos.append(info))
        return editor, result, infos

    editor, plain, infos = run(dmtet_normal_consistency=0.0, dmtet_laplacian=0.0)
    assert not any(k.startswith("reg/") for info in infos for k in info), infos[0]  # weight 0: no term
    assert editor.to_config()["dmtet_normal_consistency"] == 0.0 and editor.to_config()["dmtet_laplacian"] == 0.0
    editor, smooth, infos = run(dmtet_normal_consistency=0.1, dmtet_laplacian=1.0)
    assert editor.to_config()["dmtet_normal_consistency"] == 0.1 and editor.to_config()["dmtet_laplacian"] == 1.0
    start = _noisy_sphere_dmtet().extract().detach()  # step 0 reports the terms of the input's surface
    assert infos[0]["reg/normal_consistency"] == pytest.approx(float(normal_consistency_loss(start)), rel=1e-5)
    assert infos[0]["reg/laplacian"] == pytest.approx(float(laplacian_loss(start)), rel=1e-5)
    assert all("reg/normal_consistency" in i and "reg/laplacian" in i for i in infos)
    assert Editor(prior, "a cube").dmtet_normal_consistency == 0.1  # on by default, the Laplacian off
    # the regularized edit ends smoother (measured: mean 1 - cos of adjacent normals 0.185 without, 0.081 with)
    nc_plain = float(normal_consistency_loss(plain.asset.extract()))
    nc_smooth = float(normal_consistency_loss(smooth.asset.extract()))
    assert nc_smooth < 0.7 * nc_plain, (nc_smooth, nc_plain)
    for name in ("dmtet_normal_consistency", "dmtet_laplacian"):
        with pytest.raises(ValueError, match=rf"{name} must be in \[0.0, None\], got -1.0"):
            Editor(prior, "a cube", **{name: -1.0})


def test_nearest_vertex_colors_chunks_and_matches_brute_force():
    from csdkit.geometry.nearest import nearest_vertex, nearest_vertex_colors

    g = torch.Generator().manual_seed(0)
    points, vertices = torch.rand(1000, 3, generator=g), torch.rand(300, 3, generator=g)
    expected = torch.cdist(points.double(), vertices.double()).argmin(1)
    for max_elements in (1, 299, 7000, 2**24):  # one point per chunk, several chunks, one chunk
        assert torch.equal(nearest_vertex(points, vertices, max_elements=max_elements), expected)
    colors = torch.rand(300, 3, generator=g)
    mesh = csdkit.Mesh(vertices, torch.tensor([[0, 1, 2]]), vertex_colors=colors)
    assert torch.equal(nearest_vertex_colors(points.requires_grad_(), mesh), colors[expected])
    with pytest.raises(ValueError, match="vertex_colors"):
        nearest_vertex_colors(points, csdkit.Mesh(vertices, torch.tensor([[0, 1, 2]])))
    with pytest.raises(ValueError, match=r"points must be a float tensor \[\*, 3\], got torch.float32 \[10, 2\]"):
        nearest_vertex(torch.rand(10, 2), vertices)


def test_pruned_nearest_vertex_is_exact():
    """Large lookups (a lattice against surface samples, as for a start shape's SDF) take the pruned search;
    it finds the same nearest distances as comparing every pair, also for points far from every vertex."""
    from csdkit.geometry.nearest import _nearest_all_pairs, nearest_vertex
    from csdkit.geometry.primitives import torus
    from csdkit.geometry.shape_bias import sample_surface

    samples = sample_surface(torus(), 3000, torch.Generator().manual_seed(0)).float()
    lin = torch.linspace(-1.5, 1.5, 33)
    lattice = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1).reshape(-1, 3)
    assert lattice.shape[0] * samples.shape[0] > 2**26  # the pruned path
    for max_elements in (2**24, 5000):
        got = nearest_vertex(lattice, samples, max_elements=max_elements)
        want = _nearest_all_pairs(lattice, samples, 2**24)
        d_got, d_want = ((lattice - samples[i]).norm(dim=1) for i in (got, want))
        torch.testing.assert_close(d_got, d_want, atol=1e-6, rtol=0)
        assert float((got == want).float().mean()) > 0.999  # the same vertex, up to exact ties


def test_generate_run_dmtet_edit_keeps_the_stage_mesh_colours(prior, tmp_path):
    import numpy as np
    from PIL import Image

    from csdkit.pipelines.generate_mesh import load_dmtet

    run = _generate_run(tmp_path / "gen", dmtet=True, nerf=False)
    stage = load_dmtet(run / "mesh" / "dmtet.pt").export_mesh()
    red, blue = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])
    colors = torch.where(stage.vertices[:, :1] < 0, red, blue)  # half red (x < 0), half blue (x > 0)
    torch.save({"vertices": stage.vertices, "faces": stage.faces, "vertex_colors": colors, "threshold": 10.0},
               run / "mesh" / "mesh.pt")
    result = edit(run, "a red and blue sphere", steps=2, prior=prior, out_dir=tmp_path / "e", progress=False,
                  quiet=True)
    assert result.kind == "shape"
    for name in ("edited.glb", "original.glb"):
        back = csdkit.io.load_mesh(tmp_path / "e" / name)
        left, right = back.vertices[:, 0] < -0.1, back.vertices[:, 0] > 0.1
        assert left.sum() > 50 and right.sum() > 50
        assert torch.allclose(back.vertex_colors[left].float(), red, atol=0.02), name
        assert torch.allclose(back.vertex_colors[right].float(), blue, atol=0.02), name
    cfg = json.loads((tmp_path / "e" / "config.json").read_text())
    assert cfg["dmtet_color_source"] == str(run / "mesh" / "mesh.pt") and cfg["dmtet_color"] is None
    # the renders of the edit use the colours too: its preview (original row, edited row) is red and blue,
    # not one flat mean (purple)
    image = np.asarray(Image.open(sorted((tmp_path / "e" / "previews").glob("step_*.png"))[-1]).convert("RGB"))
    r, g, b = (torch.from_numpy(image[..., i].astype(np.float32) / 255) for i in range(3))
    assert ((r > 0.3) & (g < 0.05) & (b < 0.05)).sum() > 100 and ((b > 0.3) & (g < 0.05) & (r < 0.05)).sum() > 100
    # dmtet_color= stays an explicit flat override
    edit(run, "a green sphere", steps=1, prior=prior, dmtet_color=(0.0, 1.0, 0.0), out_dir=tmp_path / "g",
         progress=False, quiet=True)
    flat = csdkit.io.load_mesh(tmp_path / "g" / "edited.glb").vertex_colors.float()
    assert torch.allclose(flat, torch.tensor([0.0, 1.0, 0.0]).expand_as(flat), atol=0.02)
    assert json.loads((tmp_path / "g" / "config.json").read_text())["dmtet_color_source"] is None
    with pytest.raises(ValueError, match="dmtet_color .* or dmtet_color_source .*, not both"):
        Editor(prior, "a cube", dmtet_color=(1.0, 0.0, 0.0), dmtet_color_source=stage.replace(vertex_colors=colors))
    with pytest.raises(ValueError, match="dmtet_color_source must be a csdkit.Mesh with vertex_colors"):
        Editor(prior, "a cube", dmtet_color_source=stage)


def test_generate_run_without_stage_colours_takes_the_editors_default(prior, tmp_path, monkeypatch):
    import csdkit.editing.editor as editor_module

    monkeypatch.setattr(editor_module, "DEFAULT_DMTET_COLOR", (0.2, 0.4, 0.8))  # the one source of the grey
    run = _generate_run(tmp_path / "gen", dmtet=True, nerf=False)
    for i, mesh_pt in enumerate((None, b"garbage")):  # mesh.pt missing, then unreadable
        if mesh_pt is not None:
            (run / "mesh" / "mesh.pt").write_bytes(mesh_pt)
        edit(run, "a blue sphere", steps=1, prior=prior, out_dir=tmp_path / f"e{i}", progress=False, quiet=True)
        colors = csdkit.io.load_mesh(tmp_path / f"e{i}" / "edited.glb").vertex_colors.float()
        assert torch.allclose(colors, torch.tensor([0.2, 0.4, 0.8]).expand_as(colors), atol=0.01)
        cfg = json.loads((tmp_path / f"e{i}" / "config.json").read_text())
        assert cfg["dmtet_color"] == pytest.approx([0.2, 0.4, 0.8]) and cfg["dmtet_color_source"] is None


def test_blur_lattice_is_a_normalized_separable_gaussian_in_grid_order():
    from csdkit.geometry.tet_grid import blur_lattice, tet_grid

    n = 9
    delta = torch.zeros(n**3, 2, dtype=torch.float64)
    delta[(4 * n + 4) * n + 4] = torch.tensor([1.0, 2.0], dtype=torch.float64)
    out = blur_lattice(delta, n, 1.0)
    vol = out[:, 0].reshape(n, n, n)
    assert float(out[:, 0].sum()) == pytest.approx(1.0, abs=1e-12) and torch.allclose(out[:, 1], 2 * out[:, 0])
    g = torch.exp(-0.5 * torch.arange(-3, 4, dtype=torch.float64) ** 2)  # cut at 3 sigma
    g = torch.nn.functional.pad(g / g.sum(), (1, 1))
    torch.testing.assert_close(vol, g[:, None, None] * g[None, :, None] * g[None, None, :])
    # a field that varies along x only is blurred along x only (the lattice order of tet_grid)
    verts, _ = tet_grid(n - 1, cache=False)
    ramp = (verts[:, 1:2].double() > 0).double()  # a step along y
    blurred = blur_lattice(ramp, n, 1.0).reshape(n, n, n)
    inner = blurred[3:-3, :, 3:-3]  # 3 cells (the kernel radius) from the zero border
    assert float((inner - inner[:1, :, :1]).abs().max()) < 1e-12  # constant along x and z (inside)
    assert float(inner[0, 3, 0]) < 0.5 < float(inner[0, 5, 0])  # smoothed across the step in y


def test_dmtet_smoothing_keeps_the_edited_surface_smooth(prior):
    from csdkit.geometry.mesh_regularizers import normal_consistency_loss

    def run(sigma):
        editor = Editor(prior, "a gray cube", "a gray sphere", fidelity=0.0, steps=30, batch_size=2, seed=0,
                        dmtet_normal_consistency=0.0, dmtet_smoothing=sigma)
        assert editor.to_config()["dmtet_smoothing"] == sigma
        return editor.edit(csdkit.DMTet(resolution=24, radius=1.0).init_sphere(0.6), progress=False)

    rough, smooth = run(0.0), run(2.0)
    assert float((smooth.asset.sdf - rough.asset.sdf).abs().max()) > 0
    # per-vertex guidance noise crumples the surface; blurred gradients do not
    nc_rough = float(normal_consistency_loss(rough.asset.extract()))
    nc_smooth = float(normal_consistency_loss(smooth.asset.extract()))
    assert nc_smooth < 0.5 * nc_rough, (nc_smooth, nc_rough)
    assert Editor(prior, "a cube").dmtet_smoothing == 2.0
    with pytest.raises(ValueError, match=r"dmtet_smoothing must be in \[0.0, 64.0\], got -1.0"):
        Editor(prior, "a cube", dmtet_smoothing=-1.0)


def _volume_and_sphericity(mesh: csdkit.Mesh) -> tuple[float, float]:
    """Enclosed volume and sphericity ``36 pi V^2 / A^3`` (1 for a ball, 0.52 for a cube) of a closed mesh."""
    v, f = mesh.vertices.double(), mesh.faces.long()
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    volume = float((a * torch.cross(b, c, dim=-1)).sum() / 6)
    area = float(torch.cross(b - a, c - a, dim=-1).norm(dim=-1).sum() / 2)
    return volume, 36 * math.pi * volume**2 / area**3


def test_dmtet_shape_edit_rounds_a_cube_toward_a_sphere(prior):
    # A DMTet cube edited toward "a gray sphere" (away from "a gray cube") gets rounder and keeps its volume;
    # the swapped prompts push the other way (corners grow into arms), so the change follows the prompt.
    import trimesh

    box = csdkit.Mesh.from_trimesh(trimesh.creation.box(extents=(1.2, 1.2, 1.2)))

    def run(target, source):
        dmtet = csdkit.DMTet(resolution=24, radius=1.0).init_from_mesh(box)
        result = Editor(prior, target, source, fidelity=0.0, steps=60, seed=0).edit(dmtet, progress=False)
        return _volume_and_sphericity(dmtet.export_mesh()), _volume_and_sphericity(result.asset.export_mesh())

    (vol0, sph0), (vol, sph) = run("a gray sphere", "a gray cube")
    _, (_, sph_control) = run("a gray cube", "a gray sphere")
    # measured: sphericity 0.549 -> 0.688 (control 0.214), volume 1.73 -> 1.78
    assert sph > sph0 + 0.08, (sph0, sph)
    assert sph > 2 * sph_control, (sph, sph_control)
    assert abs(vol - vol0) < 0.3 * vol0, (vol0, vol)
