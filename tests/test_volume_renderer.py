"""VolumeRenderer against analytic scenes, its culling against a plain composite, and the regularizers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import csdkit
from csdkit.geometry.regularizers import (
    VolumeRegularizers,
    opacity_entropy_loss,
    orientation_loss,
    sparsity_loss,
    weight_at,
)
from csdkit.ops import accumulate_along_rays, march_rays, render_weight_from_density
from csdkit.render import PointLights, SolidBackground, VolumeRenderer, shade_expected_surface


class AnalyticBall(nn.Module):
    """Density ``sigma`` inside a ball of radius ``r`` (0 outside), colour a function of position.

    ``sigma`` is a parameter (gradients), normals are exact (``x / |x|``).
    """

    def __init__(self, r: float = 0.5, sigma: float = 400.0, radius: float = 1.0, dtype=torch.float32):
        super().__init__()
        self.radius, self.r = radius, r
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma), dtype=dtype))
        self.tint = nn.Parameter(torch.tensor([0.9, 0.5, 0.2], dtype=dtype))

    def density(self, x):
        return torch.where(x.norm(dim=-1) < self.r, self.log_sigma.exp(), torch.zeros((), dtype=x.dtype))

    def forward(self, x, with_normals=False):
        out = {"density": self.density(x), "albedo": (self.tint * (0.75 + 0.25 * x)).clamp(0, 1)}
        if with_normals:
            out["normal"] = torch.nn.functional.normalize(x, dim=-1)
        return out


class CountingBall(AnalyticBall):
    """A ball, opaque or with a soft density halo (like a NeRF's), counting the points it is asked normals for."""

    def __init__(self, soft: bool = True):
        super().__init__(r=0.45, sigma=60.0 if soft else 400.0)
        self.soft, self.normal_points = soft, 0

    def density(self, x):
        if not self.soft:
            return super().density(x)
        return self.log_sigma.exp() * torch.exp(-4.0 * (x.norm(dim=-1) / self.r) ** 2)

    def forward(self, x, with_normals=False):
        if with_normals:
            self.normal_points += x.shape[0]
        return super().forward(x, with_normals)


class Fog(nn.Module):
    """Constant density everywhere in the box (no normals needed)."""

    def __init__(self, sigma: float, radius: float = 1.0):
        super().__init__()
        self.radius = radius
        self.sigma = nn.Parameter(torch.tensor(float(sigma)))

    def density(self, x):
        return self.sigma.expand(x.shape[0])

    def forward(self, x, with_normals=False):
        return {"density": self.density(x), "albedo": torch.full_like(x, 0.25)}


def ball_hit(cams: csdkit.Cameras, res: int, r: float):
    """Analytic first hit of each pixel ray with the ball: (hit [B,H,W], t [B,H,W], point [B,H,W,3])."""
    o, d = cams.rays(res, res)
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - r * r
    disc = b * b - c
    hit = disc > 0
    t = -b - disc.clamp_min(0).sqrt()
    return hit, t, o + t[..., None] * d


def cameras(n: int = 2, device: str = "cpu") -> csdkit.Cameras:
    return csdkit.Cameras.from_spherical([10.0, -20.0, 35.0][:n], [20.0, 140.0, -100.0][:n], 2.5, fov_y=40.0,
                                         device=device)


# ---- analytic scenes ---------------------------------------------------------------------------------
def test_fog_opacity_matches_beer_lambert(device):
    fog = Fog(0.8).to(device)
    cams = cameras(2, device)
    renderer = VolumeRenderer(16, n_samples_per_ray=512, grid=None, background=(0.0, 0.0, 1.0))
    with torch.no_grad():
        out = renderer.render(fog, cams)
    o, d = cams.rays(16, 16)
    t_near, t_far, hit = csdkit.ops.ray_aabb_intersect(o.reshape(-1, 3), d.reshape(-1, 3), 1.0)
    length = torch.where(hit, t_far - t_near, torch.zeros_like(t_far)).reshape(2, 16, 16, 1)
    expected = 1 - torch.exp(-0.8 * length)
    step = renderer.step_size(1.0)
    # Marching covers the chord up to half a step at either end.
    assert float((out["opacity"] - expected).abs().max()) < 0.8 * step
    rgb_expected = 0.25 * out["opacity"] + (1 - out["opacity"]) * torch.tensor([0.0, 0.0, 1.0], device=device)
    torch.testing.assert_close(out["rgb"], rgb_expected)
    assert set(out) == {"rgb", "opacity", "depth", "samples"}
    assert out["rgb"].shape == (2, 16, 16, 3) and out["depth"].shape == (2, 16, 16, 1)


def test_opaque_ball_depth_normal_albedo(device):
    ball = AnalyticBall().to(device)
    cams = cameras(2, device)
    res = 24
    renderer = VolumeRenderer(res, n_samples_per_ray=512, grid=None)
    with torch.no_grad():
        out = renderer.render(ball, cams, shading="albedo", with_normals=True)
    hit, t, p = ball_hit(cams, res, 0.5)
    # Pixels whose ray passes well inside the ball are opaque; rays far outside are empty.
    o, d = cams.rays(res, res)
    dist_to_centre = torch.linalg.cross(o, d, dim=-1).norm(dim=-1)
    inner, outer = dist_to_centre < 0.45, dist_to_centre > 0.55
    assert bool((out["opacity"][..., 0][inner] > 0.999).all())
    assert bool((out["opacity"][..., 0][outer] == 0).all())
    step = renderer.step_size(1.0)
    surface_depth = out["depth"][..., 0] / out["opacity"][..., 0].clamp_min(1e-8)
    assert float((surface_depth[inner] - t[inner]).abs().max()) < 2 * step
    normal = torch.nn.functional.normalize(out["normal"], dim=-1)
    cos = (normal[inner] * torch.nn.functional.normalize(p[inner], dim=-1)).sum(-1)
    assert float(cos.min()) > 0.99
    albedo = ball(p[inner])["albedo"].detach()
    assert float((out["rgb"][inner] - albedo).abs().max()) < 0.02
    torch.testing.assert_close(out["rgb"][outer], torch.ones_like(out["rgb"][outer]))  # white background
    assert float(out["depth"][outer].abs().max()) == 0.0


@pytest.mark.parametrize("shading", ["lambertian", "textureless", "normal"])
def test_shading_modes_on_the_ball(shading):
    ball = AnalyticBall()
    cams = cameras(1)
    res = 20
    lights = PointLights.at([[2.0, 1.5, 2.0]], ambient=0.2, diffuse=0.7)
    renderer = VolumeRenderer(res, n_samples_per_ray=512, grid=None, background=0.0)
    with torch.no_grad():
        out = renderer.render(ball, cams, shading=shading, lights=lights)
    hit, t, p = ball_hit(cams, res, 0.5)
    o, d = cams.rays(res, res)
    inner = torch.linalg.cross(o, d, dim=-1).norm(dim=-1) < 0.4
    n = torch.nn.functional.normalize(p[inner], dim=-1)
    light_dir = torch.nn.functional.normalize(lights.positions[0] - p[inner], dim=-1)
    cos = (n * light_dir).sum(-1, keepdim=True).clamp_min(0)
    if shading == "lambertian":
        expected = ball(p[inner])["albedo"].detach() * (0.2 + 0.7 * cos)
    elif shading == "textureless":
        expected = (0.2 + 0.7 * cos).expand(-1, 3)
    else:
        expected = (n + 1) / 2
    assert float((out["rgb"][inner] - expected).abs().max()) < 0.03
    assert "normal" in out and "normal" in out["samples"]


@pytest.mark.parametrize("shading", ["textureless", "normal"])
def test_expected_surface_shading_matches_per_sample_shading_on_an_opaque_ball(shading):
    """The previews' deferred shading: one normal per pixel at ``depth / opacity``. On an opaque surface it
    gives the per-sample render's colours, with one geometry evaluation per pixel."""
    ball = CountingBall(soft=False)  # opaque: all weight at the first samples inside
    cams, res = cameras(2), 20
    lights = PointLights.at([[2.0, 1.5, 2.0], [-1.0, 2.0, 2.5]], ambient=0.2, diffuse=0.7)
    renderer = VolumeRenderer(res, n_samples_per_ray=512, grid=None, background=0.0)
    with torch.no_grad():
        full = renderer.render(ball, cams, shading=shading, lights=lights)
        albedo = renderer.render(ball, cams, shading="albedo")
    ball.normal_points = 0
    rgb = shade_expected_surface(ball, cams, albedo, shading=shading, lights=lights)
    assert rgb.shape == (2, res, res, 3)
    covered = albedo["opacity"][..., 0] >= 1e-3
    assert ball.normal_points == int(covered.sum())  # one normal per covered pixel
    assert float((rgb - full["rgb"]).abs().max()) < 0.03
    assert float(rgb[~covered].abs().max()) == 0.0
    with pytest.raises(ValueError, match="shading must be 'textureless' or 'normal', got 'albedo'"):
        shade_expected_surface(ball, cams, albedo, shading="albedo")
    with pytest.raises(ValueError, match="the render has 2 views but 1 cameras"):
        shade_expected_surface(ball, cameras(1), albedo)
    with pytest.raises(ValueError, match=r"one light per view \(2\), got 1 lights"):
        shade_expected_surface(ball, cams, albedo, lights=PointLights.at([0.0, 2.0, 0.0]))


def test_rays_missing_the_box_and_empty_scene():
    cams = csdkit.Cameras.look_at([[0.0, 0.0, 3.0]], target=[[0.0, 0.0, 6.0]])  # looking away
    renderer = VolumeRenderer(8, 64, grid=None, background=(0.3, 0.6, 0.9))
    out = renderer.render(AnalyticBall(), cams, with_normals=True)
    assert out["samples"]["weights"].numel() == 0
    torch.testing.assert_close(out["rgb"], torch.tensor([0.3, 0.6, 0.9]).expand(1, 8, 8, 3))
    assert float(out["opacity"].abs().max()) == 0.0 and out["normal"].shape == (1, 8, 8, 3)
    out["rgb"].sum().backward()  # an empty render is still differentiable (zero gradient)


# ---- culling and assembly are exact --------------------------------------------------------------------
def test_render_equals_plain_composite_with_gradients():
    torch.manual_seed(0)
    enc = csdkit.HashGridEncoding(3, n_levels=4, log2_hashmap_size=12, base_resolution=4, per_level_scale=2.0)
    with torch.no_grad():
        enc.params.uniform_(-1, 1)
    geo = csdkit.ImplicitVolume(1.0, enc, hidden_dim=16, blob_scale=20.0)
    cams = cameras(2)
    res, n_samples = 12, 128
    renderer = VolumeRenderer(res, n_samples, grid=None, stratified=False)
    out = renderer.render(geo, cams, shading="albedo")
    assert out["samples"]["weights"].numel() > 0
    # Plain pipeline: every marched sample through the geometry, early stop inside the compositing.
    o, d = cams.rays(res, res)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    s = march_rays(o, d, aabb=1.0, step_size=renderer.step_size(1.0), near_plane=cams.near)
    mid = 0.5 * (s.t_starts + s.t_ends)
    field = geo(o[s.ray_indices] + mid[:, None] * d[s.ray_indices])
    w, _, _ = render_weight_from_density(s.t_starts, s.t_ends, field["density"], s.packed_info)
    assert int((w > 0).sum()) < s.n_samples  # the scene does stop rays early, so culling is exercised
    opacity = accumulate_along_rays(w, None, s.packed_info).reshape(2, res, res, 1)
    rgb = accumulate_along_rays(w, field["albedo"], s.packed_info).reshape(2, res, res, 3) + (1 - opacity)
    torch.testing.assert_close(out["opacity"], opacity)
    torch.testing.assert_close(out["rgb"], rgb)
    cot = torch.randn_like(rgb)
    g_render = torch.autograd.grad((out["rgb"] * cot).sum(), list(geo.parameters()))
    g_plain = torch.autograd.grad((rgb * cot).sum(), list(geo.parameters()))
    for a, b in zip(g_render, g_plain, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_chunking_and_stratified_determinism():
    ball = AnalyticBall(sigma=20.0)
    cams = cameras(2)
    big = VolumeRenderer(10, 96, grid=None)
    small = VolumeRenderer(10, 96, grid=None, chunk_rays=37)
    a = big.render(ball, cams, shading="lambertian", generator=7)
    b = small.render(ball, cams, shading="lambertian", generator=7)
    torch.testing.assert_close(a["rgb"], b["rgb"])
    torch.testing.assert_close(a["samples"]["ray_indices"], b["samples"]["ray_indices"])
    c = big.render(ball, cams, shading="lambertian", generator=8)
    assert not torch.equal(a["rgb"], c["rgb"])  # jitter differs with the seed
    with torch.no_grad():  # eval: no jitter, seed irrelevant
        torch.testing.assert_close(big.render(ball, cams, generator=1)["rgb"],
                                   big.render(ball, cams, generator=2)["rgb"])


@pytest.mark.parametrize("shading", ["textureless", "lambertian", "normal"])
def test_no_grad_renders_skip_the_normals_of_negligible_samples(shading):
    """Without gradients only samples of weight >= normal_weight_eps get normals; a pixel moves by at most the
    weight of the skipped samples. With gradients every normal is computed, and the render is unchanged."""
    ball, cams = CountingBall(), cameras(2)
    gated, full = VolumeRenderer(24, 128, grid=None), VolumeRenderer(24, 128, grid=None, normal_weight_eps=0.0)
    assert gated.normal_weight_eps == 1e-4
    with torch.no_grad():
        ref = full.render(ball, cams, shading=shading)
        n_full, ball.normal_points = ball.normal_points, 0
        out = gated.render(ball, cams, shading=shading)
    w = ref["samples"]["weights"]
    torch.testing.assert_close(out["samples"]["weights"], w)
    skipped = w < 1e-4
    assert 0 < ball.normal_points == int((~skipped).sum()) < 0.8 * n_full, (ball.normal_points, n_full)
    assert bool((out["samples"]["normal"][skipped] == 0).all())
    torch.testing.assert_close(out["samples"]["normal"][~skipped], ref["samples"]["normal"][~skipped])
    bound = torch.zeros(24 * 24 * 2).index_add_(0, ref["samples"]["ray_indices"], w * skipped)
    diff = (out["rgb"] - ref["rgb"]).abs().amax(-1).reshape(-1)
    assert bool((diff <= bound + 1e-6).all()), float((diff - bound).max())
    assert float(diff.max()) > 0  # the skipped samples did shade differently
    train = gated.render(ball, cams, shading=shading, generator=3)  # with gradients: every normal
    torch.testing.assert_close(train["rgb"], full.render(ball, cams, shading=shading, generator=3)["rgb"],
                               rtol=0, atol=0)
    with pytest.raises(ValueError, match="normal_weight_eps"):
        VolumeRenderer(8, normal_weight_eps=-1.0)


def test_default_chunk_size_depends_on_the_device():
    ball, cams = AnalyticBall(sigma=20.0), cameras(2)
    renderer = VolumeRenderer(96, 64, grid=None)
    assert renderer.chunk_rays is None  # 8192 on the CPU: this render is two chunks
    with torch.no_grad():
        a = renderer.render(ball, cams, shading="lambertian")
        b = VolumeRenderer(96, 64, grid=None, chunk_rays=1 << 16).render(ball, cams, shading="lambertian")
    torch.testing.assert_close(a["rgb"], b["rgb"])


def test_gradients_reach_geometry_and_background():
    ball = AnalyticBall(sigma=5.0)
    bg = SolidBackground(0.5, learnable=True)
    renderer = VolumeRenderer(12, 64, grid=None, background=bg)
    out = renderer.render(ball, cameras(2))
    out["rgb"].mean().backward()
    for p in (ball.log_sigma, ball.tint, bg.logit):
        assert p.grad is not None and float(p.grad.abs().sum()) > 0


# ---- occupancy grid -------------------------------------------------------------------------------------
def test_occupancy_grid_skips_empty_space_without_changing_the_image():
    ball = AnalyticBall(sigma=50.0)
    cams = cameras(2)
    renderer = VolumeRenderer(16, 128, grid="auto", grid_resolution=32)
    plain = VolumeRenderer(16, 128, grid=None)
    g = torch.Generator().manual_seed(0)
    assert renderer.update_grid(ball, 0, generator=g)  # warm-up update visits every cell
    grid = renderer.grid
    assert isinstance(grid, csdkit.OccupancyGrid) and grid.resolution == (32, 32, 32)
    assert grid.step_size == pytest.approx(renderer.step_size(1.0))
    centres = grid.cell_centers().norm(dim=-1)
    occupied = grid.binaries[0].reshape(-1)
    assert bool(occupied[centres < 0.4].all()) and not bool(occupied[centres > 0.6].any())
    assert renderer.update_grid(ball, 1, generator=g) is False  # not an update step
    # One random point per cell and update: cells barely touching the ball are found over a few
    # updates (the EMA keeps the maximum), after which skipping changes nothing.
    for step in range(16, 16 * 16, 16):
        renderer.update_grid(ball, step, generator=g)
    with torch.no_grad():
        a, b = renderer.render(ball, cams), plain.render(ball, cams)
    assert a["samples"]["weights"].numel() < b["samples"]["weights"].numel() / 4  # empty space skipped
    torch.testing.assert_close(a["rgb"], b["rgb"], atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="occupancy grid covers"):
        renderer.render(AnalyticBall(radius=2.0), cams)


# ---- validation --------------------------------------------------------------------------------------
def test_bad_inputs():
    r = VolumeRenderer(8, 32, grid=None)
    ball, cams = AnalyticBall(), cameras(2)
    with pytest.raises(TypeError, match=r"VolumeRenderer.render\(\): cameras must be csdkit.Cameras"):
        r.render(ball, "front")
    with pytest.raises(ValueError, match=r"VolumeRenderer.render\(\): shading must be one of"):
        r.render(ball, cams, shading="phong")
    with pytest.raises(ValueError, match=r"one light per camera \(2\), got 1 lights"):
        r.render(ball, cams, shading="lambertian", lights=PointLights.at([0.0, 2.0, 0.0]))
    with pytest.raises(TypeError, match=r"lights must be csdkit.PointLights or None, got tuple"):
        r.render(ball, cams, shading="textureless", lights=(0.0, 2.0, 0.0))
    with pytest.raises(ValueError, match="needs normals, but with_normals=False"):
        r.render(ball, cams, shading="normal", with_normals=False)
    with pytest.raises(TypeError, match="geometry must have a positive float radius"):
        r.render(nn.Linear(3, 1), cams)
    with pytest.raises(TypeError, match=r"VolumeRenderer\(\): resolution must be an int or \(height, width"):
        VolumeRenderer("64")
    with pytest.raises(TypeError, match="grid must be 'auto', a csdkit.OccupancyGrid or None"):
        VolumeRenderer(8, grid="dense")


# ---- regularizers ---------------------------------------------------------------------------------------
def test_orientation_loss_formula():
    w = torch.tensor([0.5, 0.2, 0.3, 0.0], requires_grad=True)
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.6, 0.0, 0.8], [0.0, 0.0, 1.0]])
    n.requires_grad_(True)
    d = torch.tensor([[0.0, 0.0, 1.0]] * 4)  # rays along +z: normals with +z face away from the camera
    loss = orientation_loss(w, n, d)
    # Samples with w > 0: 3. Sum: 0.5 * 1 + 0.2 * 0 + 0.3 * 0.64.
    torch.testing.assert_close(loss, torch.tensor((0.5 + 0.3 * 0.64) / 3))
    loss.backward()
    assert w.grad is None  # weights are detached
    torch.testing.assert_close(n.grad[:, 2], torch.tensor([0.5 * 2 * 1.0, 0.0, 0.3 * 2 * 0.8, 0.0]) / 3)
    opac = torch.tensor([0.9, 0.0, 0.4, 0.0, 0.0])
    torch.testing.assert_close(orientation_loss(w, n, d, opac), torch.tensor((0.5 + 0.3 * 0.64) / 2))
    with pytest.raises(ValueError, match=r"orientation_loss\(\): normals has S=3, but an earlier"):
        orientation_loss(w, n[:3], d)


def test_sparsity_and_entropy_losses():
    o = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(sparsity_loss(o), torch.tensor([0.01, 0.26, 1.01]).sqrt().mean())
    ent = opacity_entropy_loss(o)
    half = -2 * 0.5 * math.log(0.5)
    edge = -(1e-3 * math.log(1e-3) + (1 - 1e-3) * math.log(1 - 1e-3))
    torch.testing.assert_close(ent, torch.tensor((half + 2 * edge) / 3))


def test_weight_schedules():
    assert weight_at(3.0, 100) == 3.0
    spec = [100, 10.0, 1000.0, 1100]
    assert weight_at(spec, 0) == 10.0 and weight_at(spec, 100) == 10.0
    assert weight_at(spec, 600) == pytest.approx(505.0)
    assert weight_at(spec, 1100) == 1000.0 and weight_at(spec, 5000) == 1000.0
    assert weight_at([500, 1.0, 2.0, 500], 499) == 1.0 and weight_at([500, 1.0, 2.0, 500], 500) == 2.0
    assert weight_at(lambda s: s / 10, 30) == 3.0
    with pytest.raises(TypeError, match="orientation must be a number"):
        VolumeRegularizers(orientation=[1, 2])
    reg = VolumeRegularizers(orientation=(0, 10.0, 1000.0, 5000), sparsity=2.0, opacity=0.5)
    assert reg.weights(2500) == {"orientation": pytest.approx(505.0), "sparsity": 2.0, "opacity": 0.5}
    assert VolumeRegularizers.from_dict(reg.to_dict()).weights(2500) == reg.weights(2500)


def test_volume_regularizers_on_a_render():
    ball = AnalyticBall(sigma=30.0)
    renderer = VolumeRenderer(12, 64, grid=None)
    out = renderer.render(ball, cameras(2), shading="textureless")
    reg = VolumeRegularizers(orientation=1.0, sparsity=0.5, opacity=0.25)
    losses = reg(out, step=0)
    assert set(losses) == {"orientation", "sparsity", "opacity", "total"}
    s = out["samples"]
    torch.testing.assert_close(losses["orientation"], orientation_loss(s["weights"], s["normal"], s["dirs"],
                                                                      out["opacity"]))
    torch.testing.assert_close(losses["sparsity"], 0.5 * sparsity_loss(out["opacity"]))
    total = losses["orientation"] + losses["sparsity"] + losses["opacity"]
    torch.testing.assert_close(losses["total"], total)
    # Exact outward normals of a ball never face away from the camera where visible.
    assert float(losses["orientation"]) < 1e-6
    losses["total"].backward()
    assert ball.log_sigma.grad is not None
    no_normals = renderer.render(ball, cameras(2), shading="albedo")
    with pytest.raises(ValueError, match="orientation loss needs per-sample normals"):
        reg(no_normals, step=0)
    assert set(VolumeRegularizers(orientation=0.0)(no_normals, 0)) == {"sparsity", "total"}
