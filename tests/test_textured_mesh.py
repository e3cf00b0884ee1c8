"""TexturedMesh: parametrizations, gradients through the renderer, seam dilation on export."""

from __future__ import annotations

import pytest
import torch

import csdkit
from csdkit.geometry.primitives import demo_vase, icosphere, lathe, torus
from csdkit.uv.texture_field import make_texture_field
from csdkit.uv.textured_mesh import TexturedMesh


@pytest.fixture(scope="module")
def sphere_tm() -> TexturedMesh:
    return TexturedMesh(icosphere(2), texture_size=64, parametrization="texels")


@pytest.mark.parametrize("param", ["pyramid", "texels", "hashgrid"])
def test_fields_start_uniform_and_stay_in_range(param):
    field = make_texture_field(param, 64, init_color=(0.2, 0.5, 0.7))
    tex = field()
    assert tex.shape == (64, 64, 3)
    torch.testing.assert_close(tex.mean(dim=(0, 1)), torch.tensor([0.2, 0.5, 0.7]), atol=2e-2, rtol=0)
    with torch.no_grad():
        for p in field.parameters():
            p.add_(torch.randn_like(p) * 10)
    tex = field()
    tex = tex.detach()
    assert float(tex.min()) >= 0 and float(tex.max()) <= 1


@pytest.mark.parametrize("param", ["pyramid", "texels", "hashgrid"])
def test_render_gradients_reach_the_texture(sphere_tm, param):
    sphere_tm.field = make_texture_field(param, 64)
    cams = csdkit.Cameras.orbit(2, distance=3.0)
    out = csdkit.MeshRenderer(32).render(sphere_tm, cams, shading="lambertian", background=0.3)
    assert out["rgb"].shape == (2, 32, 32, 3)
    out["rgb"][..., 2].mean().backward()
    grads = [p.grad for p in sphere_tm.field.parameters() if p.grad is not None]
    assert grads and sum(float(g.abs().sum()) for g in grads) > 0
    # background pixels keep the background colour exactly
    bg = out["mask"][..., 0] == 0
    torch.testing.assert_close(out["rgb"][bg], torch.full_like(out["rgb"][bg], 0.3))


def test_pyramid_coarse_levels_spread_a_local_gradient():
    field = make_texture_field("pyramid", 64)
    tex = field()
    tex[10, 10, 0].backward()
    coarse = field.levels[-1].grad
    fine = field.levels[0].grad
    assert (fine != 0).sum() == 1  # the finest level touches one texel
    assert (coarse != 0).sum() > 1  # coarser levels spread the update


def test_chart_mask_and_dilated_export_have_no_seam_bleeding(tmp_path, sphere_tm):
    tm = TexturedMesh(icosphere(2), texture_size=128, parametrization="texels")
    assert 0.2 < float(tm.chart_mask.float().mean()) < 1.0
    blue, magenta = torch.tensor([0.1, 0.2, 0.9]), torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():  # charts blue, unused texels magenta: any magenta in a render is seam bleeding
        colors = torch.where(tm.chart_mask[..., None], blue, magenta)
        tm.field.logits.copy_(torch.logit(colors.clamp(1e-4, 1 - 1e-4)))
    cams = csdkit.Cameras.sample(6, generator=torch.Generator().manual_seed(3), distance_range=(2.2, 2.6))
    renderer = csdkit.MeshRenderer(160)

    def bleeding(path) -> int:
        mesh = csdkit.Mesh.load(path)
        out = renderer.render(mesh, cams, shading="albedo", background=0.0)
        fg = out["mask"][..., 0] > 0
        dist_magenta = (out["rgb"][fg] - magenta).norm(dim=-1)
        dist_blue = (out["rgb"][fg] - blue).norm(dim=-1)
        return int((dist_magenta < dist_blue).sum())

    assert bleeding(tm.export(tmp_path / "dilated.glb", dilate=True)) == 0
    assert bleeding(tm.export(tmp_path / "raw.glb", dilate=False)) > 0  # the check can fail


def test_keep_uvs_and_type_errors():
    m = icosphere(1)
    tm = TexturedMesh(m, 32, "texels")
    again = TexturedMesh(tm.mesh, 32, "texels", keep_uvs=True)
    torch.testing.assert_close(again.mesh.uv, tm.mesh.uv)
    with pytest.raises(TypeError, match="mesh must be a csdkit.Mesh"):
        TexturedMesh("sphere.obj", 32)
    with pytest.raises(ValueError, match="parametrization must be one of"):
        TexturedMesh(m, 32, "neural")
    with pytest.raises(ValueError, match="texture_size must be in"):
        TexturedMesh(m, 4)


def test_procedural_meshes_are_closed_and_normalized():
    for mesh in (demo_vase(), torus(), lathe([(0.5, -1.0), (0.8, 0.0), (0.3, 1.0)], 16)):
        tm = mesh.to_trimesh()
        assert tm.is_watertight
        assert tm.volume > 0  # outward-facing normals
    v = demo_vase().vertices
    assert float(v.norm(dim=-1).max()) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="profile needs at least 2 points"):
        lathe([(1.0, 0.0)])
