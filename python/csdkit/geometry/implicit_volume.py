"""``ImplicitVolume``: the hash-grid NeRF that CSD optimizes in its first (coarse geometry) stage.

A density field and an albedo field inside the box ``[-radius, radius]^3``, both read from one
multiresolution hash-grid encoding followed by two small MLP heads:

* density: ``activation(mlp_density(enc(x)) + bias(x))`` with ``activation`` softplus or a
  truncated exp, and an optional bias that starts text-to-3D from a ball at the centre:
  DreamFusion's Gaussian ``"blob"`` ``blob_scale * exp(-|x|^2 / (2 blob_std^2))``, or Magic3D's
  ``"linear_blob"`` ``blob_scale * (1 - |x| / blob_std)``, which is negative outside ``blob_std``
  and so starts with empty space around the ball (an occupancy grid can skip it from step 0);
* albedo: ``sigmoid(mlp_albedo(enc(x)))`` in [0, 1] (no view dependence: text-to-3D wants
  diffuse objects);
* normals: the outward direction ``-grad(density) / |grad(density)|``, either *analytic* (autograd
  through the hash grid's input gradient) or by central *finite differences*.

Normals are taken from the pre-activation density (the activation is monotonic, so the direction
is the same and it stays finite where ``exp`` would overflow).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .. import _native
from ..nn import HashGridEncoding
from ..ops._checks import check_choice, check_float, check_int, check_tensor
from ..ops.reference.hash_grid import hash_grid_encode_reference
from .isosurface import marching_tetrahedra

_FN = "ImplicitVolume"
DENSITY_ACTIVATIONS = ("softplus", "exp")
DENSITY_BIASES = ("blob", "linear_blob")
NORMAL_TYPES = ("finite_difference", "analytic")
_FLOATS = (torch.float32, torch.float64)
_EXP_CLAMP = 15.0


class _TruncExp(torch.autograd.Function):
    """``exp(min(x, 15))`` whose gradient is ``exp(min(x, 15))`` everywhere (also above the clamp).

    The clamp keeps densities finite; passing a gradient above it keeps saturated points
    trainable (instant-ngp's "truncated exponential"). Twice differentiable.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=_EXP_CLAMP))

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=_EXP_CLAMP))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    """Truncated exponential density activation (see :class:`_TruncExp`)."""
    return _TruncExp.apply(x)


def blob_density(points: torch.Tensor, scale: float, std: float) -> torch.Tensor:
    """DreamFusion's density bias ``scale * exp(-|x|^2 / (2 std^2))`` for ``points [N, 3]`` -> ``[N]``."""
    return scale * torch.exp(-(points * points).sum(-1) / (2.0 * std * std))


def linear_blob_density(points: torch.Tensor, scale: float, std: float) -> torch.Tensor:
    """Magic3D's density bias ``scale * (1 - |x| / std)`` for ``points [N, 3]`` -> ``[N]``."""
    # sqrt(|x|^2 + tiny) keeps the gradient finite at the origin (analytic normals).
    return scale * (1.0 - torch.sqrt((points * points).sum(-1) + 1e-12) / std)


def make_mlp(n_in: int, n_out: int, hidden_dim: int, n_hidden_layers: int, *, dtype=None,
             device=None) -> nn.Sequential:
    """``Linear -> ReLU`` x ``n_hidden_layers`` then a linear output layer."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden_dim, dtype=dtype, device=device), nn.ReLU()]
        width = hidden_dim
    layers.append(nn.Linear(width, n_out, dtype=dtype, device=device))
    return nn.Sequential(*layers)


@dataclasses.dataclass(frozen=True)
class Isosurface:
    """A triangle mesh extracted from a density grid.

    Attributes:
        vertices: ``[V, 3]`` float32 world positions (device of the geometry).
        faces: ``[F, 3]`` int64 vertex indices, counter-clockwise seen from outside (low density).
    """

    vertices: torch.Tensor
    faces: torch.Tensor

    def to_trimesh(self):
        """A ``trimesh.Trimesh`` (CPU numpy copies) for inspection and export (``.export("x.glb")``)."""
        import trimesh

        return trimesh.Trimesh(self.vertices.detach().cpu().numpy(), self.faces.cpu().numpy(), process=False)


class ImplicitVolume(nn.Module):
    """Hash-grid density + albedo field in the box ``[-radius, radius]^3``.

    Args:
        radius: half side of the bounding box (world units). Points are mapped to the encoding's
            unit cube with ``(x / radius + 1) / 2``.
        encoding: a module mapping ``[N, 3]`` in [0, 1] to ``[N, n_output_dims]`` (attribute
            ``n_output_dims``); a 16-level :class:`csdkit.HashGridEncoding` by default.
        hidden_dim, n_hidden_layers: size of each MLP head (ReLU).
        density_activation: ``"softplus"`` or ``"exp"`` (truncated exponential).
        density_bias: ``"blob"`` (DreamFusion's Gaussian blob), ``"linear_blob"`` (Magic3D's cone,
            see the module doc), a constant added to the pre-activation density, a module mapping
            ``points [N, 3] -> [N]`` (:class:`~csdkit.geometry.shape_bias.MeshDensityBias`: a start
            shaped like a mesh; its buffers are saved with the volume), or None.
        blob_scale, blob_std: the blob's height and width (world units).
        normal_type: ``"finite_difference"`` (central differences, six extra density evaluations
            per point, first-order kernels suffice) or ``"analytic"`` (autograd gradient of the
            density; when gradients must flow *through* the normals into the parameters, i.e. in
            training, the hash grid is evaluated by its twice-differentiable pure-PyTorch twin,
            because the compiled kernel is first-order only: slower, same values).
        normal_eps: finite-difference step (world units); ``0.005 * radius`` by default.
        dtype, device: of the MLP parameters (the encoding keeps its own).

    Call :meth:`forward` (density, albedo, optional normals) or :meth:`density`; export a mesh with
    :meth:`isosurface`; build optimizer groups with :meth:`parameter_groups`.
    """

    def __init__(
        self,
        radius: float = 1.0,
        encoding: nn.Module | None = None,
        *,
        hidden_dim: int = 64,
        n_hidden_layers: int = 1,
        density_activation: str = "softplus",
        density_bias: str | float | nn.Module | None = "blob",
        blob_scale: float = 10.0,
        blob_std: float = 0.5,
        normal_type: str = "finite_difference",
        normal_eps: float | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.radius = check_float(_FN, "radius", radius, min_value=1e-6)
        check_int(_FN, "hidden_dim", hidden_dim, min_value=1)
        check_int(_FN, "n_hidden_layers", n_hidden_layers, min_value=0)
        check_choice(_FN, "density_activation", density_activation, DENSITY_ACTIVATIONS)
        check_choice(_FN, "normal_type", normal_type, NORMAL_TYPES)
        if not (density_bias is None or isinstance(density_bias, nn.Module) or density_bias in DENSITY_BIASES
                or (isinstance(density_bias, (int, float)) and not isinstance(density_bias, bool))):
            raise ValueError(f"{_FN}(): density_bias must be 'blob', 'linear_blob', a number, a module (e.g. "
                             f"csdkit.geometry.MeshDensityBias) or None, got {density_bias!r}")
        self.blob_scale = check_float(_FN, "blob_scale", blob_scale)
        self.blob_std = check_float(_FN, "blob_std", blob_std, min_value=1e-6)
        self.normal_eps = (0.005 * self.radius if normal_eps is None
                           else check_float(_FN, "normal_eps", normal_eps, min_value=1e-9))
        self.density_activation = density_activation
        if isinstance(density_bias, (int, float)):
            density_bias = float(density_bias)
        self.density_bias = density_bias
        self.normal_type = normal_type

        if encoding is None:
            encoding = HashGridEncoding(3, dtype=dtype, device=device)
        n_enc = getattr(encoding, "n_output_dims", None)
        if not isinstance(encoding, nn.Module) or not isinstance(n_enc, int):
            raise TypeError(f"{_FN}(): encoding must be an nn.Module with an int n_output_dims (e.g. "
                            f"csdkit.HashGridEncoding), got {type(encoding).__name__}")
        self.encoding = encoding
        self.density_net = make_mlp(n_enc, 1, hidden_dim, n_hidden_layers, dtype=dtype, device=device)
        self.albedo_net = make_mlp(n_enc, 3, hidden_dim, n_hidden_layers, dtype=dtype, device=device)

    # ---- pieces ---------------------------------------------------------------------------------
    @property
    def aabb(self) -> torch.Tensor:
        """``[6]`` float32 ``(xmin, ymin, zmin, xmax, ymax, zmax)`` of the field's box (CPU)."""
        r = self.radius
        return torch.tensor([-r, -r, -r, r, r, r], dtype=torch.float32)

    def _check_points(self, fn: str, points: torch.Tensor) -> None:
        w = self.density_net[0].weight
        check_tensor(fn, "points", points, dtype=w.dtype, shape=(None, 3), device=w.device)

    def _encode(self, points: torch.Tensor, twice_differentiable: bool = False) -> torch.Tensor:
        unit = points / (2.0 * self.radius) + 0.5
        enc = self.encoding
        if twice_differentiable and isinstance(enc, HashGridEncoding) and _native.use_native(points.device):
            return hash_grid_encode_reference(unit, enc.params, enc.config)
        return enc(unit)

    def _raw_density(self, points: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        raw = self.density_net(features).squeeze(-1)
        if isinstance(self.density_bias, nn.Module):
            raw = raw + self.density_bias(points)
        elif self.density_bias == "blob":
            raw = raw + blob_density(points, self.blob_scale, self.blob_std)
        elif self.density_bias == "linear_blob":
            raw = raw + linear_blob_density(points, self.blob_scale, self.blob_std)
        elif self.density_bias is not None:
            raw = raw + self.density_bias
        return raw

    def _activate(self, raw: torch.Tensor) -> torch.Tensor:
        if self.density_activation == "softplus":
            return torch.nn.functional.softplus(raw)
        return trunc_exp(raw)

    # ---- public queries ---------------------------------------------------------------------------
    def density(self, points: torch.Tensor) -> torch.Tensor:
        """Density ``[N]`` (>= 0) at ``points [N, 3]`` (world units, dtype and device of the model)."""
        self._check_points(f"{_FN}.density", points)
        return self._activate(self._raw_density(points, self._encode(points)))

    def forward(self, points: torch.Tensor, with_normals: bool = False) -> dict[str, torch.Tensor]:
        """Evaluate the field.

        Args:
            points: ``[N, 3]`` world positions, dtype and device of the model's parameters.
            with_normals: also return outward unit normals.

        Returns:
            dict with ``density [N]`` (>= 0), ``albedo [N, 3]`` in [0, 1] and, when asked,
            ``normal [N, 3]`` unit vectors; all differentiable w.r.t. the parameters (normals too:
            finite differences through first-order kernels, analytic via double backward).
        """
        self._check_points(_FN, points)
        if not with_normals:
            feats = self._encode(points)
            return {"density": self._activate(self._raw_density(points, feats)),
                    "albedo": torch.sigmoid(self.albedo_net(feats))}
        if self.normal_type == "finite_difference":
            return self._forward_finite_difference(points)
        return self._forward_analytic(points)

    def normals(self, points: torch.Tensor) -> torch.Tensor:
        """Outward unit normals ``[N, 3]`` at ``points [N, 3]`` (with this model's ``normal_type``)."""
        return self.forward(points, with_normals=True)["normal"]

    def _forward_finite_difference(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        n = points.shape[0]
        eps = self.normal_eps
        offsets = torch.eye(3, dtype=points.dtype, device=points.device) * eps
        offsets = torch.cat([offsets, -offsets])  # +x +y +z -x -y -z
        shifted = (points[None] + offsets[:, None]).reshape(-1, 3)
        all_points = torch.cat([points, shifted])
        feats = self._encode(all_points)
        raw = self._raw_density(all_points, feats)
        raw_c, raw_s = raw[:n], raw[n:].reshape(6, n)
        grad = (raw_s[:3] - raw_s[3:]).t() / (2.0 * eps)  # [N, 3]
        return {"density": self._activate(raw_c), "albedo": torch.sigmoid(self.albedo_net(feats[:n])),
                "normal": torch.nn.functional.normalize(-grad, dim=-1)}

    def _forward_analytic(self, points: torch.Tensor) -> dict[str, torch.Tensor]:
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            p = points if points.requires_grad else points.detach().requires_grad_(True)
            feats = self._encode(p, twice_differentiable=create_graph)
            raw = self._raw_density(p, feats)
            (grad,) = torch.autograd.grad(raw.sum(), p, create_graph=create_graph)
        density, albedo = self._activate(raw), torch.sigmoid(self.albedo_net(feats))
        normal = torch.nn.functional.normalize(-grad, dim=-1)
        if not create_graph:
            density, albedo = density.detach(), albedo.detach()
        return {"density": density, "albedo": albedo, "normal": normal}

    # ---- export and training helpers -----------------------------------------------------------------
    @torch.no_grad()
    def density_grid(self, resolution: int = 128, chunk: int = 2**18) -> torch.Tensor:
        """Densities ``[R, R, R]`` at the vertices of a regular grid spanning the box.

        ``grid[i, j, k]`` is the density at ``(x_i, y_j, z_k)``, ``x_i = -radius + 2 radius i / (R - 1)``.
        """
        check_int(f"{_FN}.density_grid", "resolution", resolution, min_value=2, max_value=1024)
        check_int(f"{_FN}.density_grid", "chunk", chunk, min_value=1)
        w = self.density_net[0].weight
        lin = torch.linspace(-self.radius, self.radius, resolution, dtype=w.dtype, device=w.device)
        pts = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(-1, 3)
        out = torch.cat([self.density(pts[i:i + chunk]) for i in range(0, pts.shape[0], chunk)])
        return out.reshape(resolution, resolution, resolution)

    @torch.no_grad()
    def isosurface(self, threshold: float = 25.0, resolution: int = 128, chunk: int = 2**18) -> Isosurface:
        """Mesh of the level set ``density = threshold`` (marching tetrahedra on a ``resolution^3`` grid).

        Returns an :class:`Isosurface` (``vertices [V, 3]`` float32, ``faces [F, 3]`` int64, on the
        model's device); empty tensors when no cell crosses the threshold.
        """
        check_float(f"{_FN}.isosurface", "threshold", threshold)
        grid = self.density_grid(resolution, chunk)
        verts, faces = marching_tetrahedra(grid, threshold, bounds=(-self.radius, self.radius))
        return Isosurface(verts.float(), faces)

    def parameter_groups(self, lr_encoding: float = 1e-2, lr_network: float = 1e-3) -> list[dict]:
        """Optimizer parameter groups: the encoding's table at ``lr_encoding``, the MLPs at ``lr_network``."""
        return [{"params": list(self.encoding.parameters()), "lr": lr_encoding, "name": "encoding"},
                {"params": list(self.density_net.parameters()) + list(self.albedo_net.parameters()),
                 "lr": lr_network, "name": "network"}]

    def extra_repr(self) -> str:
        return (f"radius={self.radius}, density_activation={self.density_activation!r}, density_bias="
                f"{self.density_bias!r}, blob_scale={self.blob_scale}, blob_std={self.blob_std}, "
                f"normal_type={self.normal_type!r}")
