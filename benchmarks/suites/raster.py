"""Rasterizer benchmarks: ``rasterize`` alone, ``rasterize + interpolate + texture`` forward+backward, and
``antialias`` forward+backward (colour and position gradients) against its pure-PyTorch reference.

Meshes of about 10k, 160k and 1M triangles (a bumpy UV sphere, so views have self-occlusion),
512x512 and 1024x1024, 4 views. Baselines timed in the same run:

* ``open3d``: Embree ray casting (``RaycastingScene.cast_rays``) of the same camera rays, for primary
  visibility (when open3d is importable);
* ``nvdiffrast``: ``RasterizeCudaContext`` on ``--device cuda`` (when installed);
* ``reference``: the pure-PyTorch reference, on a small case only (it evaluates every pixel
  against every triangle).

``--quick`` keeps the 10k mesh at 512x512 and the small reference case.
"""

from __future__ import annotations

import math

import torch

from csdkit.ops import antialias, antialias_topology, interpolate, rasterize, texture
from csdkit.ops.reference import interpolate_reference, rasterize_reference, texture_reference
from csdkit.ops.reference.antialias import antialias_reference
from csdkit.render.cameras import Cameras
from harness import Case

VIEWS = 4
MESHES = {"10k": 10_000, "160k": 160_000, "1M": 1_000_000}


def bumpy_sphere(n_triangles: int, device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """About ``n_triangles`` triangles: vertices ``[V, 3]``, int32 faces ``[T, 3]``, uv ``[V, 2]``."""
    import trimesh

    k = max(4, int(round(math.sqrt(n_triangles / 4))))  # trimesh: about 4 k^2 triangles
    m = trimesh.creation.uv_sphere(radius=1.0, count=[k, k])
    v = torch.tensor(m.vertices, dtype=torch.float32)
    v = v * (1 + 0.1 * torch.sin(8 * v[:, :1]) * torch.cos(6 * v[:, 1:2]))
    n = torch.nn.functional.normalize(v, dim=-1)
    u = torch.atan2(n[:, 0], n[:, 2]) / (2 * math.pi) + 0.5
    uv = torch.stack([u, torch.acos(n[:, 1].clamp(-1, 1)) / math.pi], -1)
    return v.to(device), torch.tensor(m.faces, dtype=torch.int32, device=device), uv.to(device)


def _cameras(device: str) -> Cameras:
    return Cameras.from_spherical([10.0, 25.0, -10.0, 40.0], [0.0, 90.0, 180.0, 270.0], 2.8, fov_y=45.0,
                                  device=device)


def _open3d_case(name: str, verts, faces, cams: Cameras, res: int) -> Case | None:
    try:
        import open3d as o3d  # optional baseline
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(verts.cpu().numpy()),
                        o3d.core.Tensor(faces.cpu().numpy().astype("uint32")))
    origins, dirs = cams.rays(res, res)
    rays = o3d.core.Tensor(torch.cat([origins, dirs], -1).cpu().contiguous().numpy())
    return Case(name, "open3d", lambda: scene.cast_rays(rays), n=VIEWS * res * res, baseline=True)


def _nvdiffrast_case(name: str, pos, faces, res: int) -> Case | None:
    try:
        import nvdiffrast.torch as dr  # optional baseline
    except Exception:  # noqa: BLE001
        return None
    ctx = dr.RasterizeCudaContext()
    return Case(name, "nvdiffrast", lambda: dr.rasterize(ctx, pos, faces, (res, res))[0], n=VIEWS * res * res)


def _pipeline(pos, faces, uv, tex, res: int, ops) -> tuple:
    """rasterize -> interpolate uv (+ derivatives) -> trilinear texture -> backward to tex and pos."""
    rast_fn, interp_fn, tex_fn = ops

    def run():
        rast = rast_fn(pos, faces, res)
        uvs = interp_fn(uv, rast, faces)
        col = tex_fn(tex, uvs)
        col.square().sum().backward()

    def zero():
        pos.grad = None
        tex.grad = None

    return run, zero


def _csdkit_ops():
    return (
        lambda p, f, r: rasterize(p, f, (r, r)),
        lambda a, r, f: interpolate(a, r, f),
        lambda t, u: texture(t, u, filter="linear-mipmap-linear", boundary="wrap"),
    )


def _reference_ops():
    return (
        lambda p, f, r: rasterize_reference(p, f, (r, r)),
        lambda a, r, f: interpolate_reference(a[None], r, f),
        lambda t, u: texture_reference(t, u, "linear-mipmap-linear", "wrap"),
    )


def _small_cases(device: str, cams: Cameras) -> list[Case]:
    """A case small enough for the pure-PyTorch reference (dense pixels x triangles) as baseline."""
    verts, faces, uv = bumpy_sphere(1000, device)
    pos = cams.project(verts).contiguous()
    res = 48
    name = f"{faces.shape[0]}/{res}"
    out = [
        Case(f"rasterize/{name}", "reference", lambda: rasterize_reference(pos, faces, (res, res)),
             n=VIEWS * res * res, baseline=True, repeats=3, warmup=1),
        Case(f"rasterize/{name}", "csdkit", lambda: rasterize(pos, faces, (res, res)), n=VIEWS * res * res),
    ]
    for impl, ops in (("reference", _reference_ops()), ("csdkit", _csdkit_ops())):
        p = pos.clone().requires_grad_(True)
        tex = torch.rand(1, 64, 64, 3, device=device, requires_grad=True)
        run, zero = _pipeline(p, faces, uv, tex, res, ops)
        out.append(Case(f"raster+interp+tex_fwd_bwd/{name}", impl, run, n=VIEWS * res * res,
                        baseline=impl == "reference", setup=zero, repeats=3 if impl == "reference" else 10,
                        warmup=1))
    return out


def _antialias_cases(device: str, cams: Cameras, res: int) -> list[Case]:
    """antialias forward + backward (to colour and positions) on the 10k mesh: csdkit vs the reference
    (baseline) and, on CUDA, nvdiffrast's antialias when it is installed."""
    verts, faces, _ = bumpy_sphere(MESHES["10k"], device)
    pos = cams.project(verts).contiguous()
    rast = rasterize(pos, faces, (res, res))
    topology = antialias_topology(faces)
    impls = {"reference": lambda c, p: antialias_reference(c, rast, p, faces, topology),
             "csdkit": lambda c, p: antialias(c, rast, p, faces, topology=topology)}
    if device == "cuda":
        try:
            import nvdiffrast.torch as dr  # optional baseline
        except Exception:  # noqa: BLE001
            dr = None
        if dr is not None:
            hashed = dr.antialias_construct_topology_hash(faces)
            impls["nvdiffrast"] = lambda c, p: dr.antialias(c, rast, p, faces, topology_hash=hashed)
    out = []
    for impl, fn in impls.items():
        color = torch.rand(VIEWS, res, res, 3, device=device, requires_grad=True)
        p = pos.clone().requires_grad_(True)

        def run(fn=fn, color=color, p=p):
            fn(color, p).square().sum().backward()

        def zero(color=color, p=p):
            color.grad = None
            p.grad = None

        out.append(Case(f"antialias_fwd_bwd/10k/{res}", impl, run, n=VIEWS * res * res,
                        baseline=impl == "reference", setup=zero, repeats=3 if impl == "reference" else 10,
                        warmup=1))
    return out


def cases(device: str, quick: bool) -> list[Case]:
    cams = _cameras(device)
    out = _small_cases(device, cams) + _antialias_cases(device, cams, 512)
    sizes = [("10k", 512)] if quick else [(m, r) for m in MESHES for r in (512, 1024)]
    meshes: dict[str, tuple] = {}
    for mesh, res in sizes:
        if mesh not in meshes:
            meshes[mesh] = bumpy_sphere(MESHES[mesh], device)
        verts, faces, uv = meshes[mesh]
        pos = cams.project(verts).contiguous()
        name = f"rasterize/{mesh}/{res}"
        baseline = _open3d_case(name, verts, faces, cams, res) if device == "cpu" else \
            _nvdiffrast_case(name, pos, faces, res)
        if baseline is not None:
            if device == "cuda":
                baseline.baseline = True
            out.append(baseline)
        repeats = 5 if mesh == "1M" else 10
        def run_rasterize(pos=pos, faces=faces, res=res):
            return rasterize(pos, faces, (res, res))

        out.append(Case(name, "csdkit", run_rasterize, n=VIEWS * res * res, repeats=repeats))
        p = pos.clone().requires_grad_(True)
        tex = torch.rand(1, 1024, 1024, 3, device=device, requires_grad=True)
        run, zero = _pipeline(p, faces, uv, tex, res, _csdkit_ops())
        out.append(Case(f"raster+interp+tex_fwd_bwd/{mesh}/{res}", "csdkit", run, n=VIEWS * res * res,
                        setup=zero, repeats=repeats))
    return out
