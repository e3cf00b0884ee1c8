"""Euler characteristic, lattice closing and closing the thin tunnels of a DMTet (csdkit.geometry.topology)."""

from __future__ import annotations

import pytest
import torch

from csdkit import HashGridEncoding
from csdkit.geometry import DMTet, ImplicitVolume, MeshDensityBias
from csdkit.geometry.primitives import builtin_mesh
from csdkit.geometry.topology import close_handles, euler_characteristic, lattice_closing
from csdkit.pipelines.generate_mesh import start_euler_characteristic

RES = 32


def ball_sdf(points: torch.Tensor, radius: float = 0.6) -> torch.Tensor:
    return points.norm(dim=-1) - radius


def tunnel_sdf(points: torch.Tensor, tunnel_radius: float) -> torch.Tensor:
    """A ball of radius 0.6 drilled through along z by a cylinder of ``tunnel_radius`` (a genus-1 solid)."""
    cylinder = tunnel_radius - points[:, :2].norm(dim=-1)  # > 0 inside the drill
    return torch.maximum(ball_sdf(points), cylinder)


def torus_sdf(points: torch.Tensor, major: float = 0.55, minor: float = 0.22) -> torch.Tensor:
    ring = torch.stack([points[:, :2].norm(dim=-1) - major, points[:, 2]], -1)
    return ring.norm(dim=-1) - minor


def dmtet_of(sdf_fn, **kw) -> DMTet:
    d = DMTet(RES, radius=1.0)
    with torch.no_grad():
        d.sdf.copy_(sdf_fn(d.grid * d.radius, **kw))
    return d


@pytest.mark.parametrize("name, chi", [("sphere", 2), ("cube", 2), ("cone", 2), ("torus", 0)])
def test_euler_characteristic_of_the_builtin_meshes(name, chi):
    assert euler_characteristic(builtin_mesh(name)) == chi


def test_euler_characteristic_counts_components_and_handles():
    assert euler_characteristic(dmtet_of(ball_sdf).export_mesh(0.0)) == 2
    assert euler_characteristic(dmtet_of(tunnel_sdf, tunnel_radius=0.08).export_mesh(0.0)) == 0
    two = DMTet(RES)
    with torch.no_grad():
        p = two.grid
        two.sdf.copy_(torch.minimum((p - torch.tensor([0.5, 0, 0])).norm(dim=-1) - 0.3,
                                    (p + torch.tensor([0.5, 0, 0])).norm(dim=-1) - 0.3))
    assert euler_characteristic(two.export_mesh(0.0)) == 4  # two balls


def test_lattice_closing_fills_a_gap_narrower_than_the_ball_and_keeps_a_wider_one():
    n = 24
    inside = torch.zeros(n, n, n, dtype=torch.bool)
    inside[4:20, 4:20, 4:10] = True
    inside[4:20, 4:20, 13:20] = True  # two slabs, a 3-cell gap between them at z = 10..12
    flat = inside.reshape(-1)
    closed1 = lattice_closing(flat, n, 1).reshape(n, n, n)
    assert not bool(closed1[:, :, 11].any()), "a radius-1 ball does not bridge a 3-cell gap"
    closed2 = lattice_closing(flat, n, 2).reshape(n, n, n)
    assert bool(closed2[8:16, 8:16, 10:13].all()), "a radius-2 ball does"
    assert bool((closed2.reshape(-1) | ~flat).all()), "closing is extensive: nothing inside is lost"
    assert not bool(closed2[0:3].any()) and not bool(closed2[:, :, 21:].any()), "outside the solid stays empty"
    wide = torch.zeros(n, n, n, dtype=torch.bool)
    wide[2:22, 2:22, 2:22] = True
    wide[8:16, 8:16, :] = False  # a square hole 8 cells wide through the block
    closed = lattice_closing(wide.reshape(-1), n, 2).reshape(n, n, n)
    assert not bool(closed[11, 11, :].any()), "a hole four times the radius stays open"
    assert torch.equal(lattice_closing(flat, n, 0), flat)


def test_lattice_closing_names_bad_input():
    with pytest.raises(ValueError, match=r"inside must be a bool tensor of shape \(27,\)"):
        lattice_closing(torch.zeros(27), 3, 1)
    with pytest.raises(ValueError, match="radius"):
        lattice_closing(torch.zeros(27, dtype=torch.bool), 3, -1)


def test_close_handles_fills_a_thin_tunnel_and_leaves_the_rest_of_the_sdf():
    d = dmtet_of(tunnel_sdf, tunnel_radius=0.05)  # a tunnel of about 1.6 cells across
    before = d.sdf.detach().clone()
    assert euler_characteristic(d.export_mesh()) == 0
    out = close_handles(d, target=2, max_radius=3)
    assert out.reached and (out.before, out.after) == (0, 2) and 1 <= out.radius <= 2, out
    assert euler_characteristic(d.export_mesh()) == 2
    changed = d.sdf.detach() != before
    assert int(changed.sum()) == out.filled > 0
    assert bool((before[changed] > 0).all() and (d.sdf.detach()[changed] < 0).all()), "only outside -> inside"
    p = d.grid[changed]
    assert float(p[:, :2].norm(dim=-1).max()) < 0.05 + 3 * d.cell_size, "only the tunnel is filled"
    assert out.to_dict()["closing_radius"] == out.radius


def test_close_handles_keeps_a_real_hole():
    d = dmtet_of(torus_sdf)
    before = d.sdf.detach().clone()
    out = close_handles(d, target=0, max_radius=3)
    assert (out.before, out.after, out.radius, out.filled, out.reached) == (0, 0, 0, 0, True)
    assert torch.equal(d.sdf.detach(), before)
    # asked for a ball, the ring's hole (about 8 cells wide) is wider than any closing tried: left as it was
    out = close_handles(d, target=2, max_radius=2)
    assert not out.reached and out.after == 0 and out.filled == 0
    assert torch.equal(d.sdf.detach(), before)


def test_start_euler_characteristic_of_the_start_biases():
    def volume(bias):
        return ImplicitVolume(1.0, HashGridEncoding(3, n_levels=2, log2_hashmap_size=10), hidden_dim=8,
                              density_bias=bias)

    assert start_euler_characteristic(volume("blob"), RES) == 2
    assert start_euler_characteristic(volume(None), RES) is None
    assert start_euler_characteristic(volume(MeshDensityBias.from_mesh(builtin_mesh("torus"), resolution=32)),
                                      RES) == 0
    assert start_euler_characteristic(volume(MeshDensityBias.from_mesh(builtin_mesh("cube"), resolution=32)),
                                      RES) == 2


class _FloorSlab(torch.nn.Module):
    """A density bias that fills the bottom of the box: solid where y < -0.4, out to the box's walls."""

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return 20.0 * (-0.4 - points[:, 1])


def test_mesh_stage_seals_a_nerf_that_reaches_its_box():
    """A NeRF grown to its box (a cone's base on the floor) still gives a closed mesh, and stays sealed."""
    import dataclasses

    from csdkit.geometry.tet_grid import lattice_boundary
    from csdkit.pipelines.generate_config import MINI_GENERATE
    from csdkit.pipelines.generate_mesh import MeshStage
    from csdkit.pipelines.models import load_prior

    n = 5
    edge = lattice_boundary(n).reshape(n, n, n)
    assert int(edge.sum()) == n ** 3 - (n - 2) ** 3 and not bool(edge[1:-1, 1:-1, 1:-1].any())
    cfg = dataclasses.replace(MINI_GENERATE.mesh, tet_resolution=16, resolution=32, batch_size=1)
    volume = ImplicitVolume(1.0, HashGridEncoding(3, n_levels=2, log2_hashmap_size=10), hidden_dim=8,
                            density_bias=_FloorSlab())
    stage = MeshStage("a blue cone", load_prior(None, torch.device("cpu"), quiet=True), cfg, volume,
                      torch.device("cpu"))
    boundary = lattice_boundary(cfg.tet_resolution + 1)
    assert bool((stage.dmtet.sdf.detach()[boundary] > 0).all())
    mesh = stage.export()
    _, counts = torch.unique(torch.sort(torch.cat([mesh.faces[:, [0, 1]], mesh.faces[:, [1, 2]],
                                                    mesh.faces[:, [2, 0]]]), 1).values, dim=0, return_counts=True)
    assert bool((counts == 2).all()), "closed: every edge in two faces, also where the slab meets the walls"
    assert euler_characteristic(mesh) == 2
    assert float(mesh.vertices[:, 1].min()) > -1.0 and float(mesh.vertices[:, 0].abs().max()) < 1.0
    before = stage.dmtet.sdf.detach()[boundary].clone()
    for step in range(2):
        stage.optimizer.zero_grad()
        loss, _ = stage.step(step)
        loss.backward()
        stage.optimizer.step()
    assert torch.equal(stage.dmtet.sdf.detach()[boundary], before), "the outer layer gets no update"
