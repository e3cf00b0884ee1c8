"""``MeshDensityBias``: a NeRF start shaped like a mesh (the linear blob generalized to any closed mesh)."""

from __future__ import annotations

import pytest
import torch

from csdkit.geometry import ImplicitVolume, MeshDensityBias
from csdkit.geometry.implicit_volume import linear_blob_density
from csdkit.geometry.primitives import icosphere, torus
from csdkit.geometry.shape_bias import _trilinear, mesh_sdf_lattice, normalize_to_box
from csdkit.nn import HashGridEncoding


def test_ball_mesh_gives_the_linear_blob():
    """The SDF of an icosphere of radius std reproduces Magic3D's linear blob within the lattice error."""
    bias = MeshDensityBias.from_mesh(icosphere(4, 0.65), half_extent=None, resolution=48, scale=10.0, length=0.65)
    pts = (torch.rand(4000, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 0.95
    got, want = bias(pts), linear_blob_density(pts, 10.0, 0.65)
    assert float((got - want).abs().max()) < 0.6  # 10 / 0.65 per unit: ~0.04 units of distance error
    assert float((got - want).abs().mean()) < 0.15
    assert bool(((got > 0) == (want > 0))[(want.abs() > 0.5)].all())


def test_torus_sign_and_hole():
    """Inside the tube positive, in the hole and outside negative (a genus-1 start)."""
    ring = normalize_to_box(torus(0.6, 0.27), 0.85)
    sdf = mesh_sdf_lattice(ring, 48)
    bias = MeshDensityBias(sdf)
    scale = 0.85 / 0.87
    pts = torch.tensor([[0.6 * scale, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, -0.6 * scale]])
    d = bias.signed_distance(pts)
    assert d[0] < -0.15 and d[3] < -0.15  # tube centre, depth ~0.26
    assert 0.2 < float(d[1]) < 0.4  # hole centre: 0.33 * scale from the tube
    assert d[2] > 0.2


def test_trilinear_is_exact_on_lattice_and_linear_between():
    n = 5
    lin = torch.linspace(-1, 1, n, dtype=torch.float64)
    x, y, z = torch.meshgrid(lin, lin, lin, indexing="ij")
    grid = 2 * x - 3 * y + 0.5 * z + 1  # trilinear interpolation reproduces affine fields exactly
    pts = torch.rand(200, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * 2 - 1
    got = _trilinear(grid, pts, 1.0)
    want = 2 * pts[:, 0] - 3 * pts[:, 1] + 0.5 * pts[:, 2] + 1
    torch.testing.assert_close(got, want)


def test_gradcheck_float64():
    sdf = torch.randn(6, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    bias = MeshDensityBias(sdf)
    bias.sdf = bias.sdf.double()
    pts = (torch.rand(8, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 1.6 - 0.8)
    pts.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: bias(p), (pts,))
    assert torch.autograd.gradgradcheck(lambda p: bias(p), (pts,))


def test_volume_starts_as_the_mesh_and_saves_the_lattice():
    ring = MeshDensityBias.from_mesh(torus(0.6, 0.27), half_extent=0.85, resolution=32)
    enc = HashGridEncoding(3, n_levels=4, log2_hashmap_size=12, base_resolution=8)
    vol = ImplicitVolume(1.0, enc, hidden_dim=16, density_bias=ring)
    with torch.no_grad():
        d = vol.density(torch.tensor([[0.59, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert d[0] > 5 * d[1]
    state = vol.state_dict()
    assert "density_bias.sdf" in state
    enc2 = HashGridEncoding(3, n_levels=4, log2_hashmap_size=12, base_resolution=8)
    vol2 = ImplicitVolume(1.0, enc2, hidden_dim=16, density_bias=MeshDensityBias.empty(32))
    vol2.load_state_dict(state)
    torch.testing.assert_close(vol2.density_bias.sdf, ring.sdf)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="sdf must be a float cube"):
        MeshDensityBias(torch.zeros(4, 4, 5))
    with pytest.raises(TypeError, match="mesh must be a csdkit.Mesh"):
        MeshDensityBias.from_mesh("ring.obj")
