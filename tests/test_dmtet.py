"""DMTet and tet_grid: grid counts/orientation/cache, initializations, extraction topology, gradients,
a short fit, floater removal, regularizers, state round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from csdkit.geometry import DMTet, ImplicitVolume, Mesh, tet_grid
from csdkit.geometry.mesh_regularizers import face_components, laplacian_loss, normal_consistency_loss
from csdkit.geometry.primitives import torus
from csdkit.geometry.tet_grid import tet_grid_cache_dir, tet_grid_edges
from csdkit.nn import HashGridEncoding


def _euler(mesh: Mesh) -> int:
    f = mesh.faces
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]).sort(1).values
    n_edges = torch.unique(e[:, 0] * mesh.num_vertices + e[:, 1]).numel()
    return mesh.faces.unique().numel() - n_edges + f.shape[0]


def _closed(mesh: Mesh) -> bool:
    f, n = mesh.faces, mesh.num_vertices
    e = torch.cat([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    key, rkey = e[:, 0] * n + e[:, 1], e[:, 1] * n + e[:, 0]
    return torch.unique(key).numel() == key.numel() and bool(torch.isin(key, rkey).all())


def _n_components(mesh: Mesh) -> int:
    return int(face_components(mesh.faces, mesh.num_vertices).max()) + 1


# ---- tet_grid --------------------------------------------------------------------------------------
def test_tet_grid_counts_orientation_and_conformity():
    r = 3
    v, t = tet_grid(r)
    assert v.shape == ((r + 1) ** 3, 3) and v.dtype == torch.float32
    assert t.shape == (6 * r**3, 4) and t.dtype == torch.int64
    assert float(v.min()) == -1.0 and float(v.max()) == 1.0
    p = v.double()[t]
    det = torch.linalg.det(torch.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]], 1))
    assert bool((det > 0).all())
    torch.testing.assert_close(det.sum() / 6, torch.tensor(8.0, dtype=torch.float64))  # fills the cube
    # Conforming: every triangular face is shared by two tets, except on the cube's boundary.
    faces = t[:, [[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]]].reshape(-1, 3).sort(1).values
    _, counts = torch.unique(faces, dim=0, return_counts=True)
    assert set(counts.tolist()) == {1, 2}
    assert int((counts == 1).sum()) == 6 * 2 * r * r  # two boundary triangles per boundary square


def test_tet_grid_edges_are_the_tets_edges():
    for r in (1, 2, 5):
        _, t = tet_grid(r)
        pairs = t[:, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]].reshape(-1, 2).sort(1).values
        want = torch.unique(pairs, dim=0)
        got = tet_grid_edges(r)
        assert got.dtype == torch.int32 and got.shape == (7 * r**3 + 9 * r**2 + 3 * r, 2)
        assert bool((got[:, 0] < got[:, 1]).all())
        assert torch.equal(torch.unique(got.long(), dim=0), want)


def test_tet_grid_deterministic_and_cached(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CSDKIT_CACHE_DIR", str(tmp_path))
    v1, t1 = tet_grid(5)
    path = tet_grid_cache_dir() / "kuhn_v1_5.npz"
    assert path.exists() and not list(path.parent.glob("*.tmp"))
    v2, t2 = tet_grid(5)
    v3, t3 = tet_grid(5, cache=False)
    assert torch.equal(v1, v2) and torch.equal(t1, t2) and torch.equal(v1, v3) and torch.equal(t1, t3)
    t32 = tet_grid(5, tet_dtype=torch.int32)[1]
    assert t32.dtype == torch.int32 and torch.equal(t32.long(), t1)
    with pytest.raises(TypeError, match=r"tet_dtype must be torch.int32 or torch.int64, got torch.float32"):
        tet_grid(5, tet_dtype=torch.float32)
    # A truncated file and a file with wrong contents are both regenerated.
    path.write_bytes(path.read_bytes()[:100])
    with caplog.at_level("WARNING", logger="csdkit.tet_grid"):
        v4, t4 = tet_grid(5)
    assert "unreadable" in caplog.text and torch.equal(t4, t1)
    data = dict(np.load(path))
    data["tets"][0, 0] += 1
    np.savez(path, **data)
    caplog.clear()
    with caplog.at_level("WARNING", logger="csdkit.tet_grid"):
        assert torch.equal(tet_grid(5)[1], t1)
    assert "does not verify" in caplog.text
    assert torch.equal(tet_grid(5)[1], t1)


def test_tet_grid_bad_resolution():
    with pytest.raises(ValueError, match=r"tet_grid\(\): resolution must be in \[1, 256\], got 0"):
        tet_grid(0)
    with pytest.raises(TypeError, match=r"resolution must be an int, got float"):
        tet_grid(8.0)


# ---- DMTet: initializations and topology ----------------------------------------------------------------
def test_sphere_init_extracts_one_closed_sphere():
    d = DMTet(resolution=24, radius=1.5).init_sphere(0.8)
    assert d.sdf.shape == (25**3,) and d.deformation.shape == (25**3, 3)
    mesh = d.extract()
    assert _closed(mesh) and _euler(mesh) == 2 and _n_components(mesh) == 1
    r = mesh.vertices.detach().norm(dim=1)
    assert abs(float(r.mean()) - 0.8) < 0.01 and float((r - 0.8).abs().max()) < 0.04
    assert float(d.vertices.detach().abs().max()) == pytest.approx(1.5)


def test_init_from_torus_mesh_has_genus_one():
    target = torus(0.55, 0.25, 32, 16)
    d = DMTet(resolution=20).init_from_mesh(target)
    mesh = d.extract()
    assert _closed(mesh) and _euler(mesh) == 0 and _n_components(mesh) == 1
    # The surface is near the torus: distance of vertices to the torus core circle ~ minor radius.
    v = mesh.vertices.detach()
    core = torch.sqrt(v[:, 0] ** 2 + v[:, 2] ** 2) - 0.55
    dist = torch.sqrt(core**2 + v[:, 1] ** 2)
    assert float((dist - 0.25).abs().max()) < 0.05


def test_init_from_mesh_with_holes_keeps_the_topology():
    target = torus(0.55, 0.25, 32, 16)
    g = torch.Generator().manual_seed(0)
    keep = torch.rand(target.num_faces, generator=g) > 0.03  # ~3% of the faces missing
    holey = Mesh(target.vertices, target.faces[keep])
    mesh = DMTet(resolution=20).init_from_mesh(holey).extract()
    assert _closed(mesh) and _euler(mesh) == 0 and _n_components(mesh) == 1


def _blob_volume() -> ImplicitVolume:
    enc = HashGridEncoding(3, n_levels=2, n_features_per_level=2, log2_hashmap_size=10, base_resolution=4,
                           per_level_scale=2.0)
    vol = ImplicitVolume(1.0, enc, hidden_dim=8, blob_scale=10.0, blob_std=0.5)
    with torch.no_grad():
        vol.density_net[-1].weight.zero_()
        vol.density_net[-1].bias.zero_()
    return vol


def test_init_from_volume_blob():
    vol = _blob_volume()
    d = DMTet(resolution=20)
    threshold = 5.0
    assert d.init_from_volume(vol, threshold=threshold) == threshold
    r = math.sqrt(-2 * 0.25 * math.log(math.log(math.expm1(threshold)) / 10.0))
    mesh = d.extract()
    assert _closed(mesh) and _euler(mesh) == 2 and _n_components(mesh) == 1
    assert abs(float(mesh.vertices.detach().norm(dim=1).mean()) - r) < 0.03
    assert float(d.sdf.detach().min()) >= -1 and float(d.sdf.detach().max()) <= 1
    # automatic threshold: a sphere inside the box, a sensible fraction of vertices inside
    auto = d.init_from_volume(vol)
    frac = float((d.sdf < 0).float().mean())
    assert 0 < auto < 10 and 0.01 < frac < 0.6
    assert _euler(d.extract()) == 2
    with pytest.raises(ValueError, match=r"threshold 100 puts 0 of 9261 grid vertices inside"):
        d.init_from_volume(vol, threshold=100.0)
    # a DMTet box larger than the volume's: nothing outside the volume's box is inside
    big = DMTet(resolution=20, radius=2.0)
    big.init_from_volume(vol, threshold=1e-3)
    outside = (big.grid * 2.0).abs().max(1).values > 1.0
    assert bool((big.sdf.detach()[outside] > 0).all()) and bool((big.sdf.detach() < 0).any())


# ---- gradients and optimization -----------------------------------------------------------------------
def test_gradient_reaches_sdf_and_deformation(device):
    d = DMTet(resolution=12).to(device)
    mesh = d.extract()
    assert mesh.vertices.device.type == device and mesh.faces.device.type == device
    (mesh.vertices.square().sum() + DMTet.normal_consistency_loss(mesh) + d.sdf_entropy_loss()).backward()
    assert d.sdf.grad is not None and int((d.sdf.grad != 0).sum()) > 50
    assert d.deformation.grad is not None and int((d.deformation.grad.abs().sum(1) > 0).sum()) > 50


def test_adam_fits_a_larger_sphere():
    torch.manual_seed(0)
    d = DMTet(resolution=16).init_sphere(0.35)
    opt = torch.optim.Adam(d.parameters(), lr=0.02)
    losses = []
    for _ in range(40):
        mesh = d.extract()
        loss = (mesh.vertices.norm(dim=1) - 0.7).square().mean()
        reg = 0.01 * d.sdf_entropy_loss() + 0.1 * DMTet.laplacian_loss(mesh)
        opt.zero_grad()
        (loss + reg).backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]
    mesh = d.export_mesh()
    assert abs(float(mesh.vertices.norm(dim=1).mean()) - 0.7) < 0.05


def test_export_mesh_drops_floaters():
    d = DMTet(resolution=16).init_sphere(0.6)
    with torch.no_grad():  # a small blob near a corner: 24 faces against 2520
        far = (d.vertices - torch.tensor([0.8, 0.8, 0.8])).norm(dim=1)
        d.sdf.copy_(torch.minimum(d.sdf, far - 0.1))
    assert _n_components(d.extract()) == 2
    clean = d.export_mesh()
    assert _n_components(clean) == 1 and _euler(clean) == 2 and not clean.vertices.requires_grad
    assert float(clean.vertices.norm(dim=1).max()) < 0.65
    assert clean.faces.unique().numel() == clean.num_vertices
    assert _n_components(d.export_mesh(min_component_fraction=0.0)) == 2


# ---- regularizers --------------------------------------------------------------------------------------
def test_regularizers():
    # a flat square of two triangles: no normal change, one interior edge
    flat = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]]), torch.tensor([[0, 1, 2], [0, 2, 3]]))
    assert float(normal_consistency_loss(flat)) == pytest.approx(0.0, abs=1e-7)
    folded = Mesh(torch.tensor([[0.0, 0, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]]), torch.tensor([[0, 1, 3], [1, 2, 3]]))
    assert float(normal_consistency_loss(folded)) > 0.1
    # Laplacian of a regular fan's centre: 0 when it is in the plane of its ring, > 0 when lifted
    ring = torch.tensor([[math.cos(a), math.sin(a), 0.0] for a in np.linspace(0, 2 * math.pi, 7)[:-1]])
    fan_faces = torch.tensor([[6, i, (i + 1) % 6] for i in range(6)])
    centre = torch.zeros(1, 3, requires_grad=True)
    lifted = Mesh(torch.cat([ring, centre + torch.tensor([[0, 0, 0.5]])]), fan_faces)
    lap = laplacian_loss(lifted)
    lap.backward()
    assert float(lap.detach()) > 0 and float(centre.grad[0, 2]) > 0
    # sdf entropy: positive on a sphere, with gradient
    d = DMTet(resolution=8)
    ent = d.sdf_entropy_loss()
    ent.backward()
    assert float(ent.detach()) > 0 and int((d.sdf.grad != 0).sum()) > 0
    with torch.no_grad():
        d.sdf.fill_(1.0)
    assert float(d.sdf_entropy_loss().detach()) == 0.0


# ---- state and errors -------------------------------------------------------------------------------
def test_state_dict_round_trip():
    d = DMTet(resolution=10, radius=1.2)
    with torch.no_grad():
        d.sdf.add_(0.05 * torch.randn_like(d.sdf))
        d.deformation.normal_()
    state = d.state_dict()
    assert set(state) == {"sdf", "deformation", "_extra_state"}
    e = DMTet(resolution=10, radius=1.2)
    e.load_state_dict(state)
    a, b = d.extract(), e.extract()
    assert torch.equal(a.faces, b.faces) and torch.equal(a.vertices, b.vertices)
    with pytest.raises(ValueError, match=r"the state is of a DMTet\(resolution=10, radius=1.2\), this one is "
                                         r"DMTet\(resolution=10, radius=1.0\)"):
        DMTet(resolution=10).load_state_dict(state)


def test_errors():
    with pytest.raises(ValueError, match=r"DMTet\(\): resolution must be in \[1, 256\], got 0"):
        DMTet(resolution=0)
    d = DMTet(resolution=4)
    with torch.no_grad():
        d.sdf.fill_(1.0)
    with pytest.raises(ValueError, match=r"DMTet.extract\(\): the SDF has no zero crossing \(0 of 125"):
        d.extract()
    with pytest.raises(TypeError, match=r"init_from_mesh\(\): mesh must be a csdkit.Mesh, got Tensor"):
        d.init_from_mesh(torch.zeros(3, 3))
    with pytest.raises(TypeError, match=r"init_from_volume\(\): volume must be an ImplicitVolume"):
        d.init_from_volume("volume")
    with pytest.raises(ValueError, match=r"min_component_fraction must be in \[0.0, 1.0\], got 2.0"):
        d.init_sphere(0.5).export_mesh(2.0)


def test_mesh_renderer_loss_reaches_the_parameters():
    from csdkit.render import Cameras, MeshRenderer

    d = DMTet(resolution=12)
    cams = Cameras.orbit(2, distance=2.5)
    out = MeshRenderer(32).render(d.extract(), cams, shading="lambertian")
    assert float(out["mask"].mean()) > 0.05
    out["rgb"].mean().backward()
    assert int((d.sdf.grad != 0).sum()) > 10 and int((d.deformation.grad != 0).any(1).sum()) > 10


def test_mesh_ray_tests_in_face_groups_agree():
    from csdkit.geometry import dmtet as dmtet_module

    t = torus(0.55, 0.25, 32, 16)
    lin = torch.linspace(-1, 1, 21, dtype=torch.float64)
    for axis in range(3):
        whole = dmtet_module._axis_rays(lin, t.vertices.double(), t.faces, axis)
        grouped = dmtet_module._axis_rays(lin, t.vertices.double(), t.faces, axis, max_pairs=50)
        assert whole[0].numel() > 100
        assert all(torch.equal(a, b) for a, b in zip(whole, grouped, strict=True))
