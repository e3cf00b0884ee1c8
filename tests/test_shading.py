"""Shading modes, point lights, the shading schedule and backgrounds."""

from __future__ import annotations

import pytest
import torch

import csdkit
from csdkit.render.background import NeuralEnvironmentMap, SolidBackground, as_background, frequency_encode
from csdkit.render.shading import (
    SHADING_MODES,
    PointLights,
    ShadingSchedule,
    lambertian,
    normal_to_rgb,
    shade,
    textureless,
)


def unit(v: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(v, dim=-1)


def test_lambertian_hand_values(device):
    albedo = torch.tensor([[0.5, 1.0, 0.2], [0.5, 1.0, 0.2], [1.0, 1.0, 1.0]], device=device)
    n = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]], device=device)
    l = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.6, 0.8], [-1.0, 0.0, 0.0]], device=device)
    amb, dif = torch.full((3, 3), 0.1, device=device), torch.full((3, 3), 0.9, device=device)
    out = lambertian(albedo, n, l, amb, dif)
    expected = torch.stack([albedo[0] * 1.0, albedo[1] * (0.1 + 0.9 * 0.8), albedo[2] * 0.1])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(textureless(n, l, amb, dif), torch.tensor([[1.0] * 3, [0.82] * 3, [0.1] * 3],
                                                                         device=device))
    torch.testing.assert_close(normal_to_rgb(n), (n + 1) / 2)


def test_shade_dispatch_and_gradients():
    torch.manual_seed(1)
    albedo = torch.rand(20, 3, dtype=torch.float64, requires_grad=True)
    n = unit(torch.randn(20, 3, dtype=torch.float64)).requires_grad_(True)
    l = unit(torch.randn(20, 3, dtype=torch.float64))
    amb, dif = torch.full((20, 3), 0.2, dtype=torch.float64), torch.full((20, 3), 0.7, dtype=torch.float64)
    torch.testing.assert_close(shade("albedo", albedo), albedo)
    expected = lambertian(albedo, n, l, amb, dif)
    torch.testing.assert_close(shade("lambertian", albedo, n, l, amb, dif), expected)
    torch.testing.assert_close(shade("textureless", None, n, l, amb, dif), textureless(n, l, amb, dif))
    torch.testing.assert_close(shade("normal", None, n), (n + 1) / 2)
    assert torch.autograd.gradcheck(lambda a, nn_: shade("lambertian", a, nn_, l, amb, dif), (albedo, n))
    with pytest.raises(ValueError, match=r"shade\(\): shading='lambertian' needs normals, light_dirs"):
        shade("lambertian", albedo)
    with pytest.raises(ValueError, match=r"shade\(\): shading must be one of \['albedo', 'lambertian'"):
        shade("phong", albedo)


def test_point_lights_sample_and_directions():
    cams = csdkit.Cameras.orbit(6, distance=3.0)
    g = torch.Generator().manual_seed(3)
    lights = PointLights.sample(cams, distance_range=(0.8, 1.5), generator=g)
    again = PointLights.sample(cams, distance_range=(0.8, 1.5), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(lights.positions, again.positions)  # reproducible
    d = lights.positions.norm(dim=-1)
    assert bool(((d >= 0.8 - 1e-6) & (d <= 1.5 + 1e-6)).all())
    # Without perturbation each light sits in the direction of its camera.
    straight = PointLights.sample(cams, position_perturb=0.0, generator=g)
    cos = (unit(straight.positions) * unit(cams.position)).sum(-1)
    torch.testing.assert_close(cos, torch.ones(6))
    torch.testing.assert_close(lights.ambient, torch.full((6, 3), 0.1))
    pts = torch.zeros(4, 3)
    view = torch.tensor([0, 1, 5, 5])
    torch.testing.assert_close(lights.directions(pts, view), unit(lights.positions[view]))
    fixed = PointLights.at([0.0, 2.0, 0.0], ambient=(0.0, 0.1, 0.2), diffuse=1.0)
    assert fixed.positions.shape == (1, 3)
    torch.testing.assert_close(fixed.ambient, torch.tensor([[0.0, 0.1, 0.2]]))
    with pytest.raises(ValueError, match=r"PointLights.sample\(\): distance_range"):
        PointLights.sample(cams, distance_range=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"ambient must be a number, an RGB triple or \[1, 3\]"):
        PointLights.at([0.0, 2.0, 0.0], ambient=(0.1, 0.2))
    with pytest.raises(ValueError, match=r"PointLights\(\): ambient has B=2, but an earlier argument has "):
        PointLights(torch.zeros(1, 3), torch.zeros(2, 3), torch.zeros(1, 3))


def test_shading_schedule():
    s = ShadingSchedule(albedo_only_steps=10, albedo_prob=0.2, textureless_prob=0.5)
    assert s.probabilities(9) == {"albedo": 1.0, "lambertian": 0.0, "textureless": 0.0}
    p = s.probabilities(10)
    assert p == pytest.approx({"albedo": 0.2, "lambertian": 0.4, "textureless": 0.4})
    assert all(s.mode(k) == "albedo" for k in range(10))
    g = torch.Generator().manual_seed(0)
    draws = [s.mode(100, g) for _ in range(4000)]
    for mode, prob in p.items():
        assert abs(draws.count(mode) / 4000 - prob) < 0.03
    assert set(draws) <= set(SHADING_MODES)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert [s.mode(50, g1) for _ in range(20)] == [s.mode(50, g2) for _ in range(20)]
    assert ShadingSchedule.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match=r"ShadingSchedule\(\): albedo_prob must be in \[0.0, 1.0\], got"):
        ShadingSchedule(albedo_prob=1.5)


# ---- backgrounds ---------------------------------------------------------------------------------
def test_solid_background(device):
    dirs = unit(torch.randn(2, 5, 7, 3, device=device))
    bg = SolidBackground((0.2, 0.4, 0.6)).to(device)
    out = bg(dirs)
    assert out.shape == (2, 5, 7, 3)
    torch.testing.assert_close(out[1, 3, 2], torch.tensor([0.2, 0.4, 0.6], device=device))
    learn = SolidBackground(0.3, learnable=True).to(device)
    torch.testing.assert_close(learn(dirs)[0, 0, 0], torch.full((3,), 0.3, device=device), atol=1e-6, rtol=0)
    learn(dirs).sum().backward()
    assert learn.logit.grad is not None and float(learn.logit.grad.abs().sum()) > 0
    assert isinstance(as_background(None), SolidBackground) and float(as_background(None).color.min()) == 1.0
    assert as_background(bg) is bg
    with pytest.raises(ValueError, match=r"SolidBackground\(\): color must be"):
        SolidBackground((1.0, 2.0, 0.0))
    with pytest.raises(TypeError, match="background must be a csdkit Background"):
        as_background("white")
    with pytest.raises(ValueError, match=r"dirs must be \[B, ..., 3\]"):
        bg(torch.zeros(4, 2, device=device))


def test_frequency_encoding():
    x = torch.tensor([[0.25, -0.5, 1.0]])
    enc = frequency_encode(x, 2)
    assert enc.shape == (1, 15)
    torch.testing.assert_close(enc[0, :3], x[0])
    torch.testing.assert_close(enc[0, 3:6], torch.sin(torch.pi * x[0]))
    torch.testing.assert_close(enc[0, 12:15], torch.cos(2 * torch.pi * x[0]))


def test_neural_environment_map(device):
    env = NeuralEnvironmentMap(n_frequencies=3, hidden_dim=16, device=device)
    dirs = unit(torch.randn(3, 4, 4, 3, device=device))
    out = env(dirs)
    assert out.shape == (3, 4, 4, 3) and bool(((out > 0) & (out < 1)).all())
    # A function of direction only: the same direction gives the same colour.
    torch.testing.assert_close(env(dirs[:1, :1, :1].expand(3, 4, 4, 3)), out[:1, :1, :1].expand(3, 4, 4, 3))
    out.mean().backward()
    assert all(p.grad is not None for p in env.parameters())
    # It can learn a target that varies with direction.
    target = (dirs + 1) / 2
    opt = torch.optim.Adam(env.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        loss = (env(dirs) - target).square().mean()
        first = first if first is not None else float(loss.detach())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.2 * first


def test_environment_map_random_augmentation():
    g = torch.Generator().manual_seed(0)
    env = NeuralEnvironmentMap(random_aug_prob=1.0, generator=g)
    dirs = unit(torch.randn(4, 6, 6, 3))
    out = env(dirs)  # training mode: every view replaced by one random solid colour
    torch.testing.assert_close(out, out[:, :1, :1].expand_as(out))
    env.eval()
    plain = env(dirs)
    assert not torch.allclose(plain, plain[:, :1, :1].expand_as(plain))
    with pytest.raises(ValueError, match=r"NeuralEnvironmentMap\(\): random_aug_prob must be in"):
        NeuralEnvironmentMap(random_aug_prob=2.0)
