"""The texturing job end to end with the embedded MiniPrior: quality, files, resume, CLI."""

from __future__ import annotations

import json

import pytest
import torch

import csdkit
from csdkit.cli import main as cli_main
from csdkit.geometry.primitives import icosphere, torus
from csdkit.guidance.mini.data import PALETTE
from csdkit.pipelines import texture

NAMES = list(PALETTE)
COLORS = torch.tensor([PALETTE[n] for n in NAMES])
HELD_OUT = csdkit.Cameras.from_spherical([5.0, 30.0, 20.0, 0.0], [45.0, 135.0, 225.0, 315.0], 3.3, fov_y=42.0)


def foreground_colors(mesh: csdkit.Mesh, cams=HELD_OUT, resolution: int = 64) -> torch.Tensor:
    """Albedo ``[P, 3]`` of the foreground pixels of held-out views (not the training distribution)."""
    out = csdkit.MeshRenderer(resolution).render(mesh, cams, shading="albedo", background=0.0)
    return out["rgb"][out["mask"][..., 0] > 0]


def nearest(color: torch.Tensor) -> str:
    return NAMES[int((COLORS - color).norm(dim=-1).argmin())]


@pytest.fixture(scope="module")
def blue_run(tmp_path_factory):
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("blue")
    return texture(icosphere(3), "a blue sphere", steps=120, texture_size=256, seed=0, out_dir=out,
                   progress=False, quiet=True)


def test_blue_sphere_turns_blue(blue_run):
    assert blue_run.status == "completed" and blue_run.steps == 120
    assert nearest(foreground_colors(blue_run.mesh).mean(0)) == "blue"


def test_yellow_torus_turns_yellow(tmp_path):
    res = texture(torus(), "a yellow torus", steps=120, texture_size=256, seed=1, progress=False, quiet=True)
    assert nearest(foreground_colors(res.mesh).mean(0)) == "yellow"


def test_two_colour_stripes_split_into_the_two_colours():
    res = texture(icosphere(3), "a sphere with red and white stripes", steps=250, texture_size=256, seed=2,
                  progress=False, quiet=True)
    pixels = foreground_colors(res.mesh, resolution=96)
    # k-means with k = 2, initialised at the two extreme pixels along the main axis of variation
    centered = pixels - pixels.mean(0)
    axis = torch.linalg.svd(centered, full_matrices=False).Vh[0]
    proj = centered @ axis
    centers = torch.stack([pixels[proj.argmin()], pixels[proj.argmax()]])
    for _ in range(20):
        assign = (pixels[:, None] - centers[None]).norm(dim=-1).argmin(1)
        centers = torch.stack([pixels[assign == k].mean(0) for k in range(2)])
    assert sorted(nearest(c) for c in centers) == ["red", "white"]
    assert min(int((assign == k).sum()) for k in range(2)) > 0.1 * len(pixels)


def test_run_directory_files(blue_run):
    d = blue_run.out_dir
    for name in ("config.json", "metrics.jsonl", "textured.glb", "textured.obj", "textured.mtl", "textured.png",
                 "turntable.png", "report.html", "uv_mesh.pt"):
        assert (d / name).is_file(), name
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["prompt"] == "a blue sphere" and cfg["steps"] == 120 and cfg["guidance"]["type"] == "CSD"
    rec = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rec] == list(range(120))
    assert {"step", "loss", "grad_norm", "t", "lr", "seconds"} <= set(rec[-1])
    assert sorted(p.name for p in (d / "previews").glob("*.png"))  # previews were written
    assert (d / "checkpoints").is_dir() and list((d / "checkpoints").glob("step_*.pt"))
    page = (d / "report.html").read_text()
    assert "a blue sphere" in page and "<svg" in page and page.count("data:image/png;base64,") >= 2


def test_exported_glb_renders_like_the_optimized_texture(blue_run):
    loaded = csdkit.Mesh.load(blue_run.out_dir / "textured.glb")
    assert loaded.has_texture and loaded.texture.shape == (256, 256, 3)
    a = csdkit.MeshRenderer(96).render(blue_run.mesh, HELD_OUT, shading="albedo", background=1.0)
    b = csdkit.MeshRenderer(96).render(loaded, HELD_OUT, shading="albedo", background=1.0)
    both = (a["mask"] * b["mask"])[..., 0] > 0
    assert both.float().mean() > 0.2
    # 8-bit PNG rounding aside, the reloaded asset looks the same (V flip and seams are right)
    assert (a["rgb"][both] - b["rgb"][both]).abs().max() < 0.03
    obj = csdkit.Mesh.load(blue_run.out_dir / "textured.obj")
    torch.testing.assert_close(obj.texture, loaded.texture, atol=1 / 255, rtol=0)


def test_resume_equals_uninterrupted_and_runs_are_deterministic(tmp_path):
    kw = dict(steps=8, texture_size=64, resolution=32, batch_size=2, seed=3, progress=False, quiet=True,
              checkpoint_every=3, formats=())
    full = texture(icosphere(2), "a red sphere", out_dir=tmp_path / "full", **kw)

    def crash(step, info):
        if step == 5:
            raise RuntimeError("simulated crash at step 5")

    with pytest.raises(RuntimeError, match="simulated crash"):
        texture(icosphere(2), "a red sphere", out_dir=tmp_path / "resumed", callback=crash, **kw)
    with pytest.raises(ValueError, match="already holds a run"):
        texture(icosphere(2), "a red sphere", out_dir=tmp_path / "resumed", **kw)
    resumed = texture(icosphere(2), "a red sphere", out_dir=tmp_path / "resumed", resume=True, **kw)
    assert resumed.steps == 8
    torch.testing.assert_close(resumed.texture, full.texture, rtol=0, atol=0)
    again = texture(icosphere(2), "a red sphere", **{**kw, "checkpoint_every": None})
    torch.testing.assert_close(again.texture, full.texture, rtol=0, atol=0)


def test_bad_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="prompt must be a non-empty string"):
        texture(icosphere(1), "  ", progress=False, quiet=True)
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        texture(icosphere(1), "a red sphere", steps=-3, progress=False, quiet=True)
    with pytest.raises(TypeError, match="mesh must be a csdkit.Mesh or a file path"):
        texture(42, "a red sphere", progress=False, quiet=True)
    with pytest.raises(ValueError, match="resume=True needs the out_dir"):
        texture(icosphere(1), "a red sphere", resume=True, progress=False, quiet=True)
    for bad in ((0.2, 0.3), (0.1, 1.5, 0.2), "red"):
        with pytest.raises(ValueError, match="init_color must be a number or"):
            texture(icosphere(1), "a red sphere", init_color=bad, progress=False, quiet=True)
    with pytest.raises(ValueError, match="init_color='mesh'.*the mesh has none"):
        texture(icosphere(1), "a red sphere", init_color="mesh", progress=False, quiet=True)


def test_init_color_is_where_the_texture_starts():
    result = texture(icosphere(1), "a red sphere", steps=0, texture_size=32, init_color=(0.8, 0.1, 0.2),
                     progress=False, quiet=True)
    image = result.mesh.texture.reshape(-1, 3)
    torch.testing.assert_close(image, torch.tensor([[0.8, 0.1, 0.2]]).expand_as(image), atol=2e-3, rtol=0)


RED, BLUE = torch.tensor([0.9, 0.1, 0.1]), torch.tensor([0.1, 0.15, 0.9])


def half_red_half_blue(subdivisions: int = 3) -> csdkit.Mesh:
    """An icosphere whose vertex colours are red where x > 0 and blue elsewhere."""
    mesh = icosphere(subdivisions)
    return mesh.replace(vertex_colors=torch.where(mesh.vertices[:, :1] > 0, RED, BLUE))


def albedo_error(a: csdkit.Mesh, b: csdkit.Mesh) -> float:
    """Mean abs difference of the albedo renders of ``a`` and ``b`` over their common foreground (held-out views)."""
    ra = csdkit.MeshRenderer(64).render(a, HELD_OUT, shading="albedo", background=0.0)
    rb = csdkit.MeshRenderer(64).render(b, HELD_OUT, shading="albedo", background=0.0)
    both = (ra["mask"] * rb["mask"])[..., 0] > 0
    assert both.float().mean() > 0.3
    return float((ra["rgb"][both] - rb["rgb"][both]).abs().mean())


@pytest.mark.parametrize("parametrization", ["pyramid", "texels", "hashgrid"])
def test_init_color_mesh_starts_from_the_vertex_colours(parametrization):
    mesh = half_red_half_blue()
    kw = dict(steps=0, texture_size=64, parametrization=parametrization, progress=False, quiet=True)
    from_mesh = texture(mesh, "a red sphere", init_color="mesh", **kw)
    from_mean = texture(mesh, "a red sphere", init_color=tuple(mesh.vertex_colors.mean(0).tolist()), **kw)
    # the vertex-colour render of the same normalized mesh is the reference
    reference = from_mesh.mesh.replace(texture=None, uv=None, face_uv=None)
    assert reference.vertex_colors is not None
    err_mesh, err_mean = albedo_error(from_mesh.mesh, reference), albedo_error(from_mean.mesh, reference)
    assert err_mesh < 0.02, err_mesh  # only bilinear blending across the red/blue border
    assert err_mesh < 0.1 * err_mean, (err_mesh, err_mean)


def test_init_color_mesh_transfers_a_texture_when_there_are_no_vertex_colours():
    from csdkit.uv import unwrap_uv
    from csdkit.uv.bake import bake_vertex_colors

    colored = half_red_half_blue()
    textured = bake_vertex_colors(unwrap_uv(colored, resolution=128), 128).replace(vertex_colors=None)
    result = texture(textured, "a red sphere", steps=0, texture_size=64, init_color="mesh", progress=False,
                     quiet=True)
    assert albedo_error(result.mesh, colored.normalized(verbose=False)) < 0.02


def test_init_color_mesh_has_one_check_for_every_missing_colour_source(tmp_path):
    from csdkit.pipelines.texture import _mesh_start_image
    from csdkit.uv import unwrap_uv
    from csdkit.uv.bake import bake_vertex_colors

    # no vertex colours and no texture: raised before the run directory gets its atlas or config
    with pytest.raises(ValueError, match=r"init_color='mesh' needs .* but the mesh has none; pass a number"):
        texture(icosphere(1), "a red sphere", init_color="mesh", steps=1, out_dir=tmp_path / "run",
                progress=False, quiet=True)
    assert not (tmp_path / "run" / "uv_mesh.pt").exists() and not (tmp_path / "run" / "config.json").exists()
    # a texture, but not on the atlas' faces (as after a decimation): the same check, saying so
    textured = bake_vertex_colors(unwrap_uv(half_red_half_blue(), resolution=64), 64).replace(vertex_colors=None)
    other = unwrap_uv(icosphere(1), resolution=64)
    with pytest.raises(ValueError, match=rf"the mesh has only a texture, on {textured.num_faces} faces, while "
                                         rf"its atlas has {other.num_faces}"):
        _mesh_start_image(textured, other, 64)
    assert _mesh_start_image(textured, textured, 64).shape == (64, 64, 3)


def test_init_color_mesh_is_recorded_and_resumed_from_the_cli(tmp_path, capsys):
    path = tmp_path / "two.ply"
    half_red_half_blue(2).save(path)
    out = tmp_path / "run"
    assert cli_main(["texture", str(path), "a red sphere", "--steps", "2", "--texture-size", "64",
                     "--resolution", "32", "--batch-size", "1", "--init-color", "mesh", "--out", str(out),
                     "--no-progress"]) == 0
    assert json.loads((out / "config.json").read_text())["init_color"] == "mesh"
    assert "vertex_colors" in torch.load(out / "uv_mesh.pt")
    assert cli_main(["texture", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert cli_main(["texture", "@sphere", "a red sphere", "--init-color", "mesh", "--out",
                     str(tmp_path / "grey"), "--no-progress"]) == 2
    assert "the mesh has none" in capsys.readouterr().err


def test_make_texture_field_init_image():
    from csdkit.uv.texture_field import make_texture_field

    image = torch.rand(32, 32, 3) * 0.9 + 0.05
    for parametrization in ("pyramid", "texels"):
        field = make_texture_field(parametrization, 32, init_image=image.double())
        torch.testing.assert_close(field().detach(), image, atol=1e-5, rtol=0)
    # the hash grid is fitted to the image: close to it, far closer than its mean colour
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 32), indexing="ij")
    smooth = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx) * torch.cos(4 * yy)], -1) * 0.9 + 0.05
    torch.manual_seed(0)
    hashed = make_texture_field("hashgrid", 32, init_image=smooth)().detach()
    err, err_mean = (hashed - smooth).abs().mean(), (smooth - smooth.mean((0, 1))).abs().mean()
    assert err < 0.02 and err < 0.1 * err_mean, (err, err_mean)
    torch.manual_seed(0)
    again = make_texture_field("hashgrid", 32, init_image=smooth)().detach()
    assert torch.equal(hashed, again)  # deterministic for a seeded run
    for bad, message in ((torch.rand(16, 16, 3), r"init_image must have shape \[32, 32, 3\].*\[16, 16, 3\]"),
                         (torch.rand(32, 32), r"init_image must have shape .*got shape \[32, 32\]"),
                         (torch.ones(32, 32, 3, dtype=torch.uint8), "init_image must be a float tensor"),
                         (image.numpy(), "init_image must be a float tensor")):
        with pytest.raises(ValueError, match=message):
            make_texture_field("pyramid", 32, init_image=bad)


def test_cli_exit_codes_and_outputs(tmp_path, capsys):
    assert cli_main(["texture", str(tmp_path / "missing.obj"), "a red cube"]) == 2
    assert "mesh file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.xyz"
    bad.write_text("nonsense")
    assert cli_main(["texture", str(bad), "a red cube", "--out", str(tmp_path / "r0")]) == 2
    assert "error:" in capsys.readouterr().err
    assert cli_main(["texture", "@sphere", "a green sphere", "--steps", "4", "--texture-size", "64",
                     "--resolution", "32", "--batch-size", "1", "--out", str(tmp_path / "r1"),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "MiniPrior" in out and "textured.glb" in out and (tmp_path / "r1" / "report.html").is_file()
    assert cli_main(["texture", "--resume", "--out", str(tmp_path / "r1"), "--no-progress"]) == 0
    assert cli_main(["info"]) == 0
