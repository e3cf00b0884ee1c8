"""Pure-PyTorch reference of volume-rendering compositing (see ``cpp/include/csdkit/volrend_compositing.h``).

Samples are *packed*: ray ``r`` owns samples ``packed_info[r, 0] : packed_info[r, 0] + packed_info[r, 1]``.
The reference scatters them into a padded ``[R, M]`` table (``M`` = the longest ray), computes
transmittance with a cumulative sum / product along each row and gathers the result back, so
autograd provides every gradient. Samples that belong to no ray get zero outputs.

Early stop: along each ray, the first sample whose transmittance ``T_i`` is below
``early_stop_eps`` and every later sample are *not rendered*: their weights, transmittance and
alphas are 0 and they receive no gradient.
"""

from __future__ import annotations

import torch


def _padded_index(packed_info: torch.Tensor, n_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index [R, M] int64, mask [R, M] bool)``: sample index of each (ray, step) slot."""
    starts, counts = packed_info[:, 0].long(), packed_info[:, 1].long()
    m = int(counts.max()) if counts.numel() > 0 else 0
    steps = torch.arange(m, device=packed_info.device)
    mask = steps[None, :] < counts[:, None]
    index = torch.where(mask, starts[:, None] + steps[None, :], torch.zeros_like(mask, dtype=torch.long))
    return index, mask


def _to_padded(values: torch.Tensor, index: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if values.numel() == 0:  # keep the (empty) autograd connection
        return values.new_zeros(index.shape) + values.sum() * 0
    return torch.where(mask, values[index], values.new_zeros(()))


def _from_padded(padded: torch.Tensor, index: torch.Tensor, mask: torch.Tensor,
                 n_samples: int) -> torch.Tensor:
    out = padded.new_zeros(n_samples)
    return out.index_put((index[mask],), padded[mask])


def _alive(trans: torch.Tensor, early_stop_eps: float) -> torch.Tensor:
    """``[R, M]`` bool: slots before the first one whose transmittance is below ``early_stop_eps``."""
    below = (trans < early_stop_eps).to(torch.int32)
    return torch.cumsum(below, dim=1) == 0


def render_weight_from_density_reference(
    t_starts: torch.Tensor,
    t_ends: torch.Tensor,
    sigmas: torch.Tensor,
    packed_info: torch.Tensor,
    early_stop_eps: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``alpha_i = 1 - exp(-sigma_i (t_end_i - t_start_i))``, ``T_i = exp(-sum_{j<i} sigma_j delta_j)``,
    ``w_i = T_i alpha_i``; returns ``(weights [S], transmittance [S], alphas [S])``."""
    n = sigmas.shape[0]
    index, mask = _padded_index(packed_info, n)
    tau = _to_padded(sigmas * (t_ends - t_starts), index, mask)  # optical thickness per slot
    excl = torch.cumsum(tau, dim=1) - tau
    trans = torch.exp(-excl)
    alphas = -torch.expm1(-tau)
    keep = mask & _alive(trans, early_stop_eps)
    zero = tau.new_zeros(())
    trans = torch.where(keep, trans, zero)
    alphas = torch.where(keep, alphas, zero)
    weights = trans * alphas
    return (_from_padded(weights, index, keep, n), _from_padded(trans, index, keep, n),
            _from_padded(alphas, index, keep, n))


def render_weight_from_alpha_reference(
    alphas: torch.Tensor,
    packed_info: torch.Tensor,
    early_stop_eps: float = 1e-4,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``T_i = prod_{j<i} (1 - alpha_j)``, ``w_i = T_i alpha_i``; returns
    ``(weights [S], transmittance [S])``."""
    n = alphas.shape[0]
    index, mask = _padded_index(packed_info, n)
    a = _to_padded(alphas, index, mask)
    one_minus = 1.0 - a
    # Exclusive cumulative product: shift right by one slot, first slot 1.
    shifted = torch.cat([torch.ones_like(one_minus[:, :1]), one_minus[:, :-1]], dim=1)
    trans = torch.cumprod(shifted, dim=1)
    keep = mask & _alive(trans, early_stop_eps)
    trans = torch.where(keep, trans, a.new_zeros(()))
    weights = trans * torch.where(keep, a, a.new_zeros(()))
    return _from_padded(weights, index, keep, n), _from_padded(trans, index, keep, n)


def accumulate_along_rays_reference(
    weights: torch.Tensor,
    values: torch.Tensor | None,
    ray_indices: torch.Tensor,
    n_rays: int,
) -> torch.Tensor:
    """``out[r] = sum_{i: ray_indices[i] = r} weights[i] * values[i]`` -> ``[n_rays, C]``
    (``values=None`` accumulates the weights alone: ``[n_rays, 1]``, the opacity).

    ``ray_indices [S]`` may contain ``-1`` for samples that belong to no ray (they are ignored).
    """
    src = weights[:, None] if values is None else weights[:, None] * values
    out = src.new_zeros(n_rays, src.shape[1])
    keep = ray_indices >= 0
    return out.index_add(0, ray_indices[keep].long(), src[keep])


def ray_indices_from_packed(packed_info: torch.Tensor, n_samples: int) -> torch.Tensor:
    """``[S]`` int64: the ray owning each sample (``-1`` for samples that belong to no ray)."""
    index, mask = _padded_index(packed_info, n_samples)
    rays = torch.arange(packed_info.shape[0], device=packed_info.device)[:, None].expand_as(index)
    out = torch.full((n_samples,), -1, dtype=torch.long, device=packed_info.device)
    out[index[mask]] = rays[mask]
    return out
