"""``shape_init="auto"``: the prior names the shape of its own samples of the prompt (pipelines.start_shape),
and the two classifier directions and the sampler it is built from."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import trimesh

from csdkit.geometry.primitives import BUILTIN_MESHES
from csdkit.geometry.shape_bias import MeshDensityBias
from csdkit.guidance.classifier import prompt_errors
from csdkit.guidance.mini import MiniPrior
from csdkit.guidance.mini.data import SHAPES, render_scenes, sample_scenes
from csdkit.guidance.priors import build_prior
from csdkit.guidance.sampling import prior_space_shape, sample_prior_space
from csdkit.pipelines.generate import _resumed_start
from csdkit.pipelines.generate_config import MINI_GENERATE
from csdkit.pipelines.generate_nerf import NerfStage, build_volume
from csdkit.pipelines.start_shape import START_SHAPES, choose_start_shape
from csdkit.training import RunDirectory


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


def test_prompt_errors_name_the_shape_of_training_renders(prior):
    """The zero-shot direction: one image, five shape names, the same noise for every name."""
    g = torch.Generator().manual_seed(11)
    scenes = sample_scenes(10, g, p_solid=1.0)
    scenes.shape.copy_(torch.arange(10) % len(SHAPES))
    x = prior.encode(render_scenes(scenes, prior.resolution, g))
    labels = [f"a {s}" for s in SHAPES]
    steps = torch.linspace(100, 700, 12).round().long().tolist()
    err = prompt_errors(prior, x, labels, steps, torch.Generator().manual_seed(0))
    assert err.shape == (10, 5)
    assert torch.equal(err, prompt_errors(prior, x, labels, steps, torch.Generator().manual_seed(0)))
    right = int((err.argmin(1) == scenes.shape).sum())
    assert right >= 6, (right, err.argmin(1).tolist())  # chance: 2 of 10
    with pytest.raises(ValueError, match=r"x must be a \[B, C, h, w\]"):
        prompt_errors(prior, x[0], labels, steps, g)
    with pytest.raises(ValueError, match="non-empty"):
        prompt_errors(prior, x, [], steps, g)


def check_choice(choice, prior, name: str, shape_init: str) -> None:
    assert (choice.name, choice.shape_init) == (name, shape_init), choice.to_dict()
    assert set(choice.errors) == set(START_SHAPES) and sum(choice.votes.values()) == 8
    assert min(choice.errors, key=choice.errors.get) == name
    assert choice.samples.shape == (8, 3, prior.resolution, prior.resolution)
    assert choice.to_dict()["votes"] == choice.votes


# "a red torus" is picked in test_auto_start_in_the_nerf_stage_builds_the_chosen_shape, "a yellow torus" and
# "a blue cone" in the generation tests (the pick is the slow part: 12 s each).
@pytest.mark.parametrize(("prompt", "name", "shape_init"), [("a blue sphere", "sphere", "blob"),
                                                            ("a green cube", "cube", "@cube")])
def test_the_prior_picks_the_start_shape_of_the_prompt(prior, prompt, name, shape_init):
    check_choice(choose_start_shape(prior, prompt), prior, name, shape_init)


def test_latent_prior_samples_in_its_latent_space():
    """The sampler and the choice run on a latent-space prior (a tiny random-weight SD): latents out,
    unclipped, and decoded images for the preview."""
    sd = build_prior("sd-tiny", cache_dir=False)
    shape = prior_space_shape(sd)
    assert shape == (4, 8, 8)  # 32x32 renders, 8x8x4 latents
    x = sample_prior_space(sd, ["a cube", "a torus"], steps=3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, *shape) and torch.isfinite(x).all()
    choice = choose_start_shape(sd, "a torus", candidates=["sphere", "torus"], n_samples=2, sample_steps=3,
                                n_timesteps=2)
    assert choice.name in ("sphere", "torus") and choice.samples.shape == (2, 3, sd.resolution, sd.resolution)
    with pytest.raises(ValueError, match="steps must lie in"):
        sample_prior_space(sd, ["a cube"], steps=0)


def test_a_resumed_run_keeps_the_first_pick(tmp_path):
    cfg = dataclasses.replace(MINI_GENERATE.nerf, shape_init="auto")
    sub = RunDirectory(tmp_path / "nerf")
    assert _resumed_start(cfg, sub).shape_init == "auto"  # nothing saved yet: pick again
    (sub.path / "start_shape.json").write_text('{"name": "cone", "shape_init": "@cone"}')
    assert _resumed_start(cfg, sub).shape_init == "@cone"
    assert _resumed_start(dataclasses.replace(cfg, shape_init="blob"), sub).shape_init == "blob"


def test_auto_start_in_the_nerf_stage_builds_the_chosen_shape(prior):
    cfg = dataclasses.replace(MINI_GENERATE.nerf, shape_init="auto", steps=1)
    stage = NerfStage("a red torus", prior, cfg, torch.device("cpu"), seed=0)
    assert stage.start is not None and stage.cfg.shape_init == "@torus"
    check_choice(stage.start, prior, "torus", "@torus")  # the pick itself
    assert isinstance(stage.volume.density_bias, MeshDensityBias)
    with torch.no_grad():
        centre = stage.volume.density(torch.zeros(1, 3))  # the ring's hole is empty at the start
    assert float(centre.max()) < 1e-2


def test_a_fixed_seed_gives_the_same_choice(prior):
    kw = {"n_samples": 2, "sample_steps": 5, "n_timesteps": 2}
    a, b = choose_start_shape(prior, "a red torus", **kw), choose_start_shape(prior, "a red torus", **kw)
    assert a.errors == b.errors and torch.equal(a.samples, b.samples)
    c = choose_start_shape(prior, "a red torus", seed=1, **kw)
    assert c.errors != a.errors


def test_an_unpicked_auto_start_builds_no_volume():
    with pytest.raises(ValueError, match="shape_init 'auto' names no shape yet"):
        build_volume(dataclasses.replace(MINI_GENERATE.nerf, shape_init="auto"), torch.device("cpu"))


def test_bad_candidates_are_rejected(prior):
    with pytest.raises(ValueError, match="at least two"):
        choose_start_shape(prior, "a red torus", candidates=["torus"])
    with pytest.raises(ValueError, match="built-in mesh names"):
        choose_start_shape(prior, "a red torus", candidates=["torus", "teapot"])
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        choose_start_shape(prior, "a red torus", n_samples=0)
    with pytest.raises(ValueError, match="t_range must be"):
        choose_start_shape(prior, "a red torus", t_range=(0.5, 0.2))
