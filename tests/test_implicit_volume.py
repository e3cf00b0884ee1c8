"""ImplicitVolume: density/albedo heads, blob bias, activations, normals, isosurface export."""

from __future__ import annotations

import math

import pytest
import torch

import csdkit
from csdkit.geometry.implicit_volume import ImplicitVolume, blob_density, trunc_exp
from csdkit.geometry.isosurface import marching_tetrahedra


def small_encoding(dtype=torch.float32, device="cpu", **kw):
    cfg = dict(n_levels=4, n_features_per_level=2, log2_hashmap_size=12, base_resolution=4,
               per_level_scale=2.0)
    cfg.update(kw)
    return csdkit.HashGridEncoding(3, **cfg, dtype=dtype, device=device)


def make_volume(device="cpu", dtype=torch.float32, **kw) -> ImplicitVolume:
    enc = kw.pop("encoding", None) or small_encoding(dtype, device)
    return ImplicitVolume(1.0, enc, hidden_dim=16, dtype=dtype, device=device, **kw)


def zero_heads(model: ImplicitVolume) -> None:
    """Zero the density head's output layer: the density is then exactly the bias."""
    with torch.no_grad():
        model.density_net[-1].weight.zero_()
        model.density_net[-1].bias.zero_()


def random_table(model: ImplicitVolume, scale: float = 0.5) -> None:
    """Give the hash table non-trivial values (the default init is +-1e-4)."""
    with torch.no_grad():
        model.encoding.params.uniform_(-scale, scale)


# ---- forward ---------------------------------------------------------------------------------------
def test_forward_shapes_ranges(device):
    model = make_volume(device)
    random_table(model)
    pts = torch.rand(257, 3, device=device) * 2 - 1
    out = model(pts)
    assert set(out) == {"density", "albedo"}
    assert out["density"].shape == (257,) and out["albedo"].shape == (257, 3)
    assert out["density"].device.type == device and out["density"].dtype == torch.float32
    assert bool((out["density"] >= 0).all())
    assert bool(((out["albedo"] > 0) & (out["albedo"] < 1)).all())
    torch.testing.assert_close(model.density(pts), out["density"])
    out_n = model(pts, with_normals=True)
    torch.testing.assert_close(out_n["density"], out["density"])
    torch.testing.assert_close(out_n["albedo"], out["albedo"])
    torch.testing.assert_close(out_n["normal"].norm(dim=-1), torch.ones(257, device=device))


@pytest.mark.parametrize("activation", ["softplus", "exp"])
def test_blob_bias_and_activation(device, activation):
    model = make_volume(device, density_activation=activation, blob_scale=7.0, blob_std=0.4)
    zero_heads(model)
    pts = torch.randn(100, 3, device=device) * 0.5
    blob = 7.0 * torch.exp(-(pts * pts).sum(-1) / (2 * 0.4**2))
    torch.testing.assert_close(blob_density(pts, 7.0, 0.4), blob)
    expected = torch.nn.functional.softplus(blob) if activation == "softplus" else torch.exp(blob)
    torch.testing.assert_close(model.density(pts), expected)


def test_linear_blob_bias():
    model = make_volume(density_bias="linear_blob", blob_scale=10.0, blob_std=0.5)
    zero_heads(model)
    pts = torch.tensor([[0.0, 0.0, 0.25], [0.3, 0.4, 0.0], [0.0, -0.8, 0.6]])  # |x| = 0.25, 0.5, 1.0
    expected = torch.nn.functional.softplus(torch.tensor([5.0, 0.0, -10.0]))
    torch.testing.assert_close(model.density(pts), expected)
    assert bool(torch.isfinite(make_volume(density_bias="linear_blob", normal_type="analytic")
                               .normals(torch.zeros(1, 3))).all())


def test_density_bias_constant_and_none():
    pts = torch.randn(50, 3)
    m_none = make_volume(density_bias=None)
    zero_heads(m_none)
    torch.testing.assert_close(m_none.density(pts), torch.full((50,), math.log(2.0)))
    m_const = make_volume(density_bias=-2.0)
    zero_heads(m_const)
    torch.testing.assert_close(m_const.density(pts), torch.nn.functional.softplus(torch.full((50,), -2.0)))


def test_trunc_exp_gradient_is_clamped_exp():
    x = torch.tensor([-3.0, 0.0, 2.0, 14.0, 20.0, 50.0], dtype=torch.float64, requires_grad=True)
    y = trunc_exp(x)
    assert bool(torch.isfinite(y).all())
    torch.testing.assert_close(y, torch.exp(x.detach().clamp(max=15.0)))
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, torch.exp(x.detach().clamp(max=15.0)))
    xs = torch.tensor([-1.0, 0.3, 4.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(trunc_exp, (xs,))
    assert torch.autograd.gradgradcheck(trunc_exp, (xs,))


def test_points_outside_box_are_clamped_not_garbage():
    model = make_volume()
    random_table(model)
    far = torch.tensor([[5.0, 0.0, 0.0], [-7.0, 3.0, 9.0]])
    edge = far.clamp(-1.0, 1.0)
    # The encoding clamps to the box, so the albedo (no position-dependent bias) is the box edge's.
    torch.testing.assert_close(model(far)["albedo"], model(edge)["albedo"])


# ---- normals -----------------------------------------------------------------------------------
@pytest.mark.parametrize("normal_type", ["finite_difference", "analytic"])
def test_blob_normals_point_outward(device, normal_type):
    model = make_volume(device, normal_type=normal_type)
    zero_heads(model)
    pts = torch.randn(64, 3, device=device)
    pts = 0.6 * pts / pts.norm(dim=-1, keepdim=True)
    normals = model.normals(pts)
    torch.testing.assert_close(normals, pts / pts.norm(dim=-1, keepdim=True), atol=2e-3, rtol=0)


def test_analytic_matches_finite_difference_float64(device):
    enc = small_encoding(torch.float64, device)
    fd = make_volume(device, torch.float64, encoding=enc, normal_eps=1e-6)
    random_table(fd)
    an = make_volume(device, torch.float64, encoding=enc, normal_type="analytic")
    an.load_state_dict(fd.state_dict())
    pts = torch.rand(200, 3, dtype=torch.float64, device=device) * 1.6 - 0.8
    n_fd, n_an = fd.normals(pts), an.normals(pts)
    cos = (n_fd * n_an).sum(-1)
    # A central difference straddling a hash-grid cell face or a ReLU kink can differ; nearly all agree.
    assert float((cos > 1 - 1e-5).double().mean()) > 0.97


@pytest.mark.parametrize("normal_type", ["finite_difference", "analytic"])
def test_normals_gradcheck_wrt_table(normal_type):
    """Normals are differentiable w.r.t. the hash table (analytic: double backward through the grid)."""
    enc = small_encoding(torch.float64, n_levels=2, base_resolution=2, log2_hashmap_size=8)
    model = make_volume(dtype=torch.float64, encoding=enc, normal_type=normal_type, normal_eps=1e-3,
                        density_activation="softplus")
    random_table(model)
    pts = torch.rand(6, 3, dtype=torch.float64) * 1.2 - 0.6
    table = model.encoding.params.detach().clone().requires_grad_(True)

    def normals_of(p):
        return torch.func.functional_call(model, {"encoding.params": p}, (pts, True))["normal"]

    assert torch.autograd.gradcheck(normals_of, (table,), eps=1e-6, atol=1e-5)


def test_normal_loss_reaches_encoding_params(device):
    for normal_type in ("finite_difference", "analytic"):
        model = make_volume(device, normal_type=normal_type)
        random_table(model, 0.1)
        pts = torch.rand(128, 3, device=device) - 0.5
        out = model(pts, with_normals=True)
        out["normal"][:, 0].sum().backward()
        g = model.encoding.params.grad
        assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0, normal_type


def test_analytic_normals_without_grad_mode_are_detached():
    model = make_volume(normal_type="analytic")
    with torch.no_grad():
        out = model(torch.rand(10, 3) - 0.5, with_normals=True)
    assert not out["normal"].requires_grad and not out["density"].requires_grad


# ---- validation ---------------------------------------------------------------------------------
def test_bad_inputs():
    model = make_volume()
    msg = r"ImplicitVolume\(\): points must be float32 \[\*, 3\], got float32 \[4, 2\]"
    with pytest.raises(ValueError, match=msg):
        model(torch.zeros(4, 2))
    with pytest.raises(TypeError, match=r"points must be float32.*got float64"):
        model(torch.zeros(4, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="points must be a torch.Tensor"):
        model([[0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="density_activation must be one of"):
        ImplicitVolume(density_activation="relu")
    with pytest.raises(ValueError, match="normal_type must be one of"):
        ImplicitVolume(normal_type="sdf")
    with pytest.raises(ValueError, match="density_bias must be 'blob', 'linear_blob', a number, a module"):
        ImplicitVolume(density_bias="gauss")
    with pytest.raises(ValueError, match=r"radius must be in"):
        ImplicitVolume(radius=0.0)
    with pytest.raises(TypeError, match="encoding must be an nn.Module with an int n_output_dims"):
        ImplicitVolume(encoding=torch.nn.Linear(3, 4))


def test_parameter_groups_cover_all_parameters():
    model = make_volume()
    groups = model.parameter_groups(lr_encoding=0.02, lr_network=0.003)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    assert [g["lr"] for g in groups] == [0.02, 0.003]
    torch.optim.Adam(groups)  # accepted as-is


# ---- isosurface ----------------------------------------------------------------------------------
def _edge_face_counts(faces: torch.Tensor) -> torch.Tensor:
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = torch.sort(e, dim=1).values
    _, counts = torch.unique(e, dim=0, return_counts=True)
    return counts


def _signed_volume(v: torch.Tensor, f: torch.Tensor) -> float:
    a, b, c = v[f[:, 0]].double(), v[f[:, 1]].double(), v[f[:, 2]].double()
    return float((a * torch.linalg.cross(b, c, dim=-1)).sum() / 6.0)


def test_marching_tetrahedra_ellipsoid(device):
    n = 33
    lin = torch.linspace(-1, 1, n, device=device)
    g = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), -1)
    axes = torch.tensor([0.7, 0.45, 0.55], device=device)
    values = 1.0 - (g / axes).norm(dim=-1)  # inside: ellipsoid
    v, f = marching_tetrahedra(values, 0.0, bounds=(-1.0, 1.0))
    assert v.device.type == device and f.dtype == torch.int64 and f.shape[1] == 3
    # Every vertex on the ellipsoid (linear interpolation error only), mesh closed, outward.
    radial = (v / axes).norm(dim=-1)
    assert float((radial - 1).abs().max()) < 0.03
    assert bool((_edge_face_counts(f) == 2).all())
    exact = 4.0 / 3.0 * math.pi * float(axes.prod())
    assert abs(_signed_volume(v, f) - exact) / exact < 0.03


def test_marching_tetrahedra_edge_cases():
    assert marching_tetrahedra(torch.zeros(4, 4, 4), 1.0)[1].shape == (0, 3)  # nothing inside
    assert marching_tetrahedra(torch.ones(4, 4, 4), 0.0)[0].shape == (0, 3)  # everything inside
    one = torch.zeros(3, 3, 3)
    one[1, 1, 1] = 1.0  # a single inside vertex: a small closed octahedron-like blob
    v, f = marching_tetrahedra(one, 0.5, bounds=[(0, 2), (0, 2), (0, 2)])
    assert bool((_edge_face_counts(f) == 2).all()) and _signed_volume(v, f) > 0
    torch.testing.assert_close(v.mean(0), torch.ones(3), atol=1e-6, rtol=0)
    msg = r"marching_tetrahedra\(\): values must be float32 or float64 \[\*, \*, \*\]"
    with pytest.raises(ValueError, match=msg):
        marching_tetrahedra(torch.zeros(4, 4), 0.0)
    with pytest.raises(ValueError, match="at least 2 samples per axis"):
        marching_tetrahedra(torch.zeros(1, 4, 4), 0.0)
    with pytest.raises(ValueError, match="NaN or Inf"):
        marching_tetrahedra(torch.full((2, 2, 2), float("nan")), 0.0)
    with pytest.raises(ValueError, match="bounds must be"):
        marching_tetrahedra(torch.zeros(2, 2, 2), 0.0, bounds=(1.0, -1.0))


def test_isosurface_of_blob_is_the_predicted_sphere():
    model = make_volume()
    zero_heads(model)
    threshold = 5.0
    # softplus(10 exp(-r^2 / (2 * 0.5^2))) = threshold  ->  r
    raw = math.log(math.expm1(threshold))
    r = math.sqrt(-2 * 0.25 * math.log(raw / 10.0))
    surf = model.isosurface(threshold=threshold, resolution=48)
    assert surf.vertices.dtype == torch.float32 and surf.faces.dtype == torch.int64
    radii = surf.vertices.norm(dim=-1)
    assert abs(float(radii.mean()) - r) < 0.01 and float((radii - r).abs().max()) < 0.03
    assert bool((_edge_face_counts(surf.faces) == 2).all())
    assert _signed_volume(surf.vertices, surf.faces) > 0
    mesh = surf.to_trimesh()
    assert mesh.is_watertight and len(mesh.faces) == surf.faces.shape[0]
    # A threshold above the peak density: empty mesh, not an error.
    assert model.isosurface(threshold=100.0, resolution=16).faces.shape == (0, 3)
