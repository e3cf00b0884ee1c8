"""csdkit.ops.marching_tetrahedra: the 16 table cases, watertight closed surfaces, gradients, parity."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from csdkit.geometry import tet_grid
from csdkit.ops import marching_tetrahedra
from csdkit.ops.reference import marching_tetrahedra_reference
from csdkit.ops.reference.marching_tetrahedra import EDGE_CORNERS, NUM_TRIANGLES

UNIT_TET = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def _edge_stats(faces: torch.Tensor, n_vertices: int):
    """(every directed edge once and its reverse present, number of undirected edges)."""
    e = torch.cat([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key, rkey = e[:, 0] * n_vertices + e[:, 1], e[:, 1] * n_vertices + e[:, 0]
    closed = torch.unique(key).numel() == key.numel() and bool(torch.isin(key, rkey).all())
    return closed, key.numel() // 2


def _components(faces: torch.Tensor, n_vertices: int) -> int:
    label = torch.arange(n_vertices)
    for _ in range(10_000):
        m = label[faces].min(1).values
        new = label.scatter_reduce(0, faces.reshape(-1), m.repeat_interleave(3), reduce="amin")
        new = new[new]
        if torch.equal(new, label):
            break
        label = new
    return int(torch.unique(label[faces.unique()]).numel())


def _signed_volume(v: torch.Tensor, f: torch.Tensor) -> float:
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    return float((a * torch.linalg.cross(b, c, dim=-1)).sum() / 6)


# ---- the table ------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", range(16))
def test_table_case(case, device):
    inside = [(case >> i) & 1 for i in range(4)]
    sdf = torch.tensor([-0.4 - 0.1 * i if inside[i] else 0.2 + 0.15 * i for i in range(4)], dtype=torch.float64)
    verts, faces = marching_tetrahedra(UNIT_TET.double().to(device), torch.arange(4).reshape(1, 4).to(device),
                                       sdf.to(device))
    verts, faces = verts.cpu(), faces.cpu()
    crossing = [(a, b) for a, b in EDGE_CORNERS if inside[a] != inside[b]]
    assert faces.shape == (NUM_TRIANGLES[case], 3)
    assert verts.shape == (len(crossing), 3)
    # Each vertex is the zero of the linear interpolation along one crossing edge (first-use order).
    want = []
    for a, b in crossing:
        w = sdf[a] / (sdf[a] - sdf[b])
        want.append(UNIT_TET[a].double() + w * (UNIT_TET[b].double() - UNIT_TET[a].double()))
    if want:
        torch.testing.assert_close(verts, torch.stack(want), rtol=0, atol=1e-15)
    assert faces.unique().numel() == len(crossing)
    # Outward: each normal points from the inside corners to the outside ones.
    if faces.numel():
        ins = torch.tensor(inside, dtype=torch.bool)
        direction = UNIT_TET[~ins].double().mean(0) - UNIT_TET[ins].double().mean(0)
        v = verts[faces]
        n = torch.linalg.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0], dim=-1)
        assert bool(((n * direction).sum(-1) > 0).all())
        if case not in (0, 15) and NUM_TRIANGLES[case] == 2:  # the quad is split along one diagonal
            assert faces[0, 0] == faces[1, 0]
    ref_v, ref_f = marching_tetrahedra_reference(UNIT_TET.double(), torch.arange(4).reshape(1, 4), sdf)
    torch.testing.assert_close(verts, ref_v, rtol=0, atol=0)
    assert torch.equal(faces, ref_f)


# ---- closed surfaces on the grid --------------------------------------------------------------------
def _torus_sdf(p: torch.Tensor, big: float = 0.55, small: float = 0.22) -> torch.Tensor:
    q = torch.stack([torch.sqrt(p[:, 0] ** 2 + p[:, 2] ** 2) - big, p[:, 1]], dim=1)
    return q.norm(dim=1) - small


@pytest.mark.parametrize("shape,chi", [("sphere", 2), ("torus", 0)])
def test_closed_surfaces_are_watertight_oriented(shape, chi, device):
    grid, tets = tet_grid(24)
    sdf = grid.norm(dim=1) - 0.7 if shape == "sphere" else _torus_sdf(grid)
    verts, faces = marching_tetrahedra(grid.to(device), tets.to(device), sdf.to(device))
    verts, faces = verts.cpu(), faces.cpu()
    closed, n_edges = _edge_stats(faces, verts.shape[0])
    assert closed
    assert verts.shape[0] - n_edges + faces.shape[0] == chi
    assert _components(faces, verts.shape[0]) == 1
    assert faces.unique().numel() == verts.shape[0]  # every vertex used
    if shape == "sphere":
        r = verts.norm(dim=1)
        assert abs(float(r.mean()) - 0.7) < 0.01 and float((r - 0.7).abs().max()) < 0.03
        assert abs(_signed_volume(verts, faces) - 4 / 3 * torch.pi * 0.7**3) < 0.03
    else:
        assert _signed_volume(verts, faces) > 0  # outward normals enclose positive volume
        torch.testing.assert_close(_torus_sdf(verts), torch.zeros(verts.shape[0]), rtol=0, atol=0.02)


def test_empty_and_full_give_empty_meshes(device):
    grid, tets = tet_grid(4)
    for value in (1.0, -1.0):
        v, f = marching_tetrahedra(grid.to(device), tets.to(device), torch.full((grid.shape[0],), value,
                                                                                   device=device))
        assert v.shape == (0, 3) and f.shape == (0, 3) and f.dtype == torch.int64 and v.dtype == torch.float32
    v, f = marching_tetrahedra(torch.zeros(0, 3, device=device), torch.zeros(0, 4, dtype=torch.long, device=device),
                               torch.zeros(0, device=device))
    assert v.shape == (0, 3) and f.shape == (0, 3)


# ---- gradients and parity -------------------------------------------------------------------------------
def _random_problem(resolution: int, dtype: torch.dtype, seed: int = 0, index_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    grid, tets = tet_grid(resolution)
    verts = (grid.double() + 0.2 / resolution * torch.rand(grid.shape, generator=g, dtype=torch.float64))
    sdf = verts.norm(dim=1) - 0.75 + 0.2 * torch.rand(grid.shape[0], generator=g, dtype=torch.float64)
    sdf = torch.where(sdf.abs() < 1e-3, sdf + 3e-3, sdf)  # keep clear of zero: stable topology under gradcheck
    # a shuffled tet order and corner rotations (an even permutation keeps the orientation)
    perm = torch.randperm(tets.shape[0], generator=g)
    tets = tets[perm][:, [1, 2, 0, 3]]
    return verts.to(dtype), tets.to(index_dtype), sdf.to(dtype)


def test_gradcheck_float64():
    verts, tets, sdf = _random_problem(3, torch.float64)
    verts.requires_grad_(True)
    sdf.requires_grad_(True)
    assert marching_tetrahedra(verts, tets, sdf)[1].shape[0] > 10

    def fn(v, s):
        return marching_tetrahedra(v, tets, s)[0]

    assert torch.autograd.gradcheck(fn, (verts, sdf), eps=1e-6, atol=1e-7)


def test_gradcheck_reference_float64():
    verts, tets, sdf = _random_problem(2, torch.float64, seed=1)
    verts.requires_grad_(True)
    sdf.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v, s: marching_tetrahedra_reference(v, tets, s)[0], (verts, sdf),
                                    eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("index_dtype", [torch.int32, torch.int64])
def test_kernel_matches_reference(dtype, index_dtype, device):
    verts, tets, sdf = _random_problem(9, dtype, seed=2, index_dtype=index_dtype)
    ref_in = [verts.clone().requires_grad_(True), sdf.clone().requires_grad_(True)]
    ker_in = [verts.to(device).requires_grad_(True), sdf.to(device).requires_grad_(True)]
    rv, rf = marching_tetrahedra_reference(ref_in[0], tets, ref_in[1])
    kv, kf = marching_tetrahedra(ker_in[0], tets.to(device), ker_in[1])
    assert kv.dtype == dtype and kf.dtype == torch.int64 and kv.device.type == device
    assert torch.equal(kf.cpu(), rf)
    torch.testing.assert_close(kv.detach().cpu(), rv.detach(), rtol=0, atol=0)
    cot = torch.randn(rv.shape, dtype=dtype, generator=torch.Generator().manual_seed(3))
    (rv * cot).sum().backward()
    (kv * cot.to(device)).sum().backward()
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ker_in[0].grad.cpu(), ref_in[0].grad, **tol)
    torch.testing.assert_close(ker_in[1].grad.cpu(), ref_in[1].grad, **tol)


def test_double_backward_through_sdf():
    verts, tets, sdf = _random_problem(3, torch.float64, seed=4)
    sdf.requires_grad_(True)
    out = marching_tetrahedra(verts, tets, sdf)[0]
    (g,) = torch.autograd.grad(out.square().sum(), sdf, create_graph=True)
    (gg,) = torch.autograd.grad(g.square().sum(), sdf)
    out_r = marching_tetrahedra_reference(verts, tets, sdf)[0]
    (g_r,) = torch.autograd.grad(out_r.square().sum(), sdf, create_graph=True)
    (gg_r,) = torch.autograd.grad(g_r.square().sum(), sdf)
    torch.testing.assert_close(gg, gg_r)


@pytest.mark.skipif(importlib.util.find_spec("kaolin") is None, reason="kaolin is not installed")
def test_matches_kaolin(device):
    import kaolin

    verts, tets, sdf = _random_problem(8, torch.float32, seed=5)
    kv, kf = marching_tetrahedra(verts.to(device), tets.to(device), sdf.to(device))
    # kaolin marks sdf > 0 as occupied; the zero crossings (hence the vertex set) are the same.
    ov, of = kaolin.ops.conversions.marching_tetrahedra(verts[None].to(device), tets.to(device),
                                                        sdf[None].to(device))
    ov, of = ov[0].cpu(), of[0].cpu()
    assert of.shape[0] == kf.shape[0] and ov.shape[0] == kv.shape[0]

    def canon(v):
        return v[torch.from_numpy(__import__("numpy").lexsort(v.double().T.flip(0).numpy()))]

    torch.testing.assert_close(canon(kv.cpu()), canon(ov), rtol=0, atol=1e-5)


# ---- bad input -----------------------------------------------------------------------------------
def test_bad_inputs():
    grid, tets = tet_grid(2)
    sdf = grid.norm(dim=1) - 0.5
    with pytest.raises(TypeError, match=r"marching_tetrahedra\(\): vertices must be float32 or float64 \[V, 3\]"):
        marching_tetrahedra(grid.long(), tets, sdf)
    with pytest.raises(ValueError, match=r"vertices must be float32 or float64 \[V, 3\], got float32 \[27, 2\]"):
        marching_tetrahedra(grid[:, :2], tets, sdf)
    with pytest.raises(TypeError, match=r"tets must be int32 or int64 \[\*, 4\], got float32"):
        marching_tetrahedra(grid, tets.float(), sdf)
    with pytest.raises(ValueError, match=r"tets must be int32 or int64 \[\*, 4\], got int64 \[48, 3\]"):
        marching_tetrahedra(grid, tets[:, :3], sdf)
    with pytest.raises(TypeError, match=r"sdf must be float32 \[V\], got float64"):
        marching_tetrahedra(grid, tets, sdf.double())
    with pytest.raises(ValueError, match=r"sdf has V=26, but an earlier argument has V=27"):
        marching_tetrahedra(grid, tets, sdf[:-1])
    with pytest.raises(ValueError, match=r"tets must hold vertex ids in \[0, 27\), got ids in \[0, 27\]"):
        marching_tetrahedra(grid, torch.cat([tets, torch.tensor([[0, 1, 2, 27]])]), sdf)
    with pytest.raises(ValueError, match=r"sdf holds NaN or Inf"):
        marching_tetrahedra(grid, tets, torch.full_like(sdf, float("nan")))
    with pytest.raises(TypeError, match=r"vertices must be a torch.Tensor"):
        marching_tetrahedra(grid.numpy(), tets, sdf)
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"tets must be on cpu"):
            marching_tetrahedra(grid, tets.cuda(), sdf)


def test_bad_input_device_is_named():
    grid, tets = tet_grid(2)
    with pytest.raises(ValueError, match=r"sdf must be on cpu \(the device of the other inputs\), got float32 \[27\] "
                                         r"on meta"):
        marching_tetrahedra(grid, tets, torch.zeros(27, device="meta"))


def test_cpu_kernel_is_the_same_for_any_thread_count():
    import csdkit

    verts, tets, sdf = _random_problem(12, torch.float32, seed=6)
    old = csdkit._native.native().num_threads()
    try:
        outs = []
        for n in (1, 3):
            csdkit.set_num_threads(n)
            outs.append(marching_tetrahedra(verts, tets, sdf))
    finally:
        csdkit.set_num_threads(old)
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_stale_build_falls_back_to_the_reference(monkeypatch):
    import importlib

    from csdkit import _native

    op_module = importlib.import_module("csdkit.ops.marching_tetrahedra")
    monkeypatch.delattr(_native.native(), "marching_tets_pass")
    monkeypatch.setattr(op_module, "_warned_stale", False)
    verts, tets, sdf = _random_problem(4, torch.float32, seed=7)
    with pytest.warns(RuntimeWarning, match="built before the marching-tetrahedra kernel"):
        v, f = marching_tetrahedra(verts, tets, sdf)
    rv, rf = marching_tetrahedra_reference(verts, tets, sdf)
    assert torch.equal(v, rv) and torch.equal(f, rf)
