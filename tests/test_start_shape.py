"""``shape_init="auto"``: the prior's implicit classifier picks the NeRF's start shape (pipelines.start_shape)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import trimesh

from csdkit.geometry.primitives import BUILTIN_MESHES
from csdkit.geometry.shape_bias import MeshDensityBias
from csdkit.guidance.classifier import denoising_advantage
from csdkit.guidance.mini import MiniPrior
from csdkit.pipelines.generate_config import MINI_GENERATE
from csdkit.pipelines.generate_nerf import NerfStage
from csdkit.pipelines.start_shape import START_SHAPES, choose_start_shape


@pytest.fixture(scope="module")
def prior() -> MiniPrior:
    return MiniPrior()


@pytest.mark.parametrize("name", ["cube", "cylinder", "cone"])
def test_new_builtin_meshes_are_closed_and_stand_along_y(name):
    mesh = BUILTIN_MESHES[name]()
    tm = trimesh.Trimesh(mesh.vertices.numpy(), mesh.faces.numpy())
    assert tm.is_watertight and tm.volume > 0  # closed, outward faces
    lo, hi = mesh.vertices.min(0).values, mesh.vertices.max(0).values
    assert torch.allclose(lo + hi, torch.zeros(3), atol=1e-5)  # centred
    if name == "cone":  # apex up: the top slice is narrower than the bottom one
        v = mesh.vertices
        assert v[v[:, 1] > 0.8][:, 0].abs().max() < v[v[:, 1] < -0.8][:, 0].abs().max()


def test_denoising_advantage_is_paired_and_prefers_the_described_image(prior):
    from csdkit.guidance.mini.data import render_scenes, sample_scenes

    g = torch.Generator().manual_seed(3)
    scenes = sample_scenes(4, g, p_solid=1.0)
    scenes.color1.fill_(0)  # red
    images = render_scenes(scenes, prior.resolution, g)
    a = denoising_advantage(prior, images, "a red object", seed=5)
    assert a.shape == (4,) and torch.equal(a, denoising_advantage(prior, images, "a red object", seed=5))
    b = denoising_advantage(prior, images, "a blue object", seed=5)
    assert float(a.mean()) > float(b.mean())  # the true colour helps the denoiser more
    with pytest.raises(ValueError, match=r"images must be a \[B, 3, H, W\]"):
        denoising_advantage(prior, images[:, :1], "a red object")


@pytest.mark.parametrize(("prompt", "name", "shape_init"), [("a red torus", "torus", "@torus"),
                                                            ("a red sphere", "sphere", "blob")])
def test_the_prior_picks_the_start_shape_of_the_prompt(prior, prompt, name, shape_init):
    choice = choose_start_shape(prior, prompt)
    assert (choice.name, choice.shape_init) == (name, shape_init), choice.scores
    assert set(choice.scores) == set(START_SHAPES)
    assert len(choice.colour) == 3 and choice.colour[0] > max(choice.colour[1:])  # a red surface was fitted


def test_auto_start_in_the_nerf_stage_builds_the_chosen_shape(prior):
    cfg = dataclasses.replace(MINI_GENERATE.nerf, shape_init="auto", steps=1)
    stage = NerfStage("a red torus", prior, cfg, torch.device("cpu"), seed=0)
    assert stage.start is not None and stage.cfg.shape_init == "@torus"
    assert isinstance(stage.volume.density_bias, MeshDensityBias)
    with torch.no_grad():
        centre = stage.volume.density(torch.zeros(1, 3))  # the ring's hole is empty at the start
    assert float(centre.max()) < 1e-2


def test_bad_candidates_are_rejected(prior):
    with pytest.raises(ValueError, match="at least two"):
        choose_start_shape(prior, "a red torus", candidates=["torus"])
    with pytest.raises(ValueError, match="built-in mesh names"):
        choose_start_shape(prior, "a red torus", candidates=["torus", "teapot"])
