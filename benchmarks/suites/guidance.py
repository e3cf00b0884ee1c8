"""One CSD guidance step: encode + noise + U-Net on prompt / negative / empty + backward into the renders.

Cases (one per prior and batch ``B`` of renders): on CPU the tiny random components
(``sd-tiny`` at 32x32 renders, ``if-tiny`` at 16x16); with ``--device cuda`` the random-weight
architecture presets of the real models in float16: ``sd21-base`` at 512x512 renders (VAE
encode + backward, 64x64 latents) with the ``csd-mesh-sd`` settings, and ``if-i-xl`` at 64x64
with the ``csd-nerf-if`` settings. The step is taken where the negative weight is non-zero, so
all three prompt rows are evaluated.

Impls:

* ``three-call`` (baseline): the same CSD step with one U-Net call per prompt
  (``CSD(unet_batch=B)``), the straightforward implementation. Same math, same output, same
  memory for weights, so the ratio isolates the value of batching the three passes.
* ``csdkit``: ``CSD`` as shipped, one U-Net call over ``3B`` rows.
* ``sds``: SDS (two rows per render, one call) at the same settings, for the cost model: CSD
  with a negative prompt costs 3/2 of SDS's U-Net work.

Peak memory on CUDA is ``max_memory_allocated`` during the timed calls (weights included; only
one prior is alive at a time). The target on an H100 for ``sd21-base`` fp16 at B=1 is <= 60 ms
per step and <= 8 GB peak.
"""

from __future__ import annotations

import gc

import torch

from csdkit.guidance import SDS, build_prior, guidance_from_config, guidance_preset
from harness import Case

_CPU = [("sd-tiny", "csd-mesh-sd", 0, 32), ("if-tiny", "csd-nerf-if", 5000, 16)]
_CUDA = [("sd21-base", "csd-mesh-sd", 0, 512), ("if-i-xl", "csd-nerf-if", 5000, 64)]


class _OnePrior:
    """Keeps only the prior of the running case in memory (so peak memory is per case)."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.state: dict | None = None

    def get(self, key: str, build) -> dict:
        if key != self.key:
            self.state = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self.state = build()
            self.key = key
        return self.state


def cases(device: str, quick: bool) -> list[Case]:
    pool = _OnePrior()
    configs = _CUDA if device == "cuda" else _CPU
    batches = (1,) if quick else (1, 4)
    out: list[Case] = []
    for preset, guidance_name, step, res in configs:
        for b in batches:
            key = f"{preset}-b{b}"

            def build(preset=preset, guidance_name=guidance_name, b=b, res=res):
                dtype = torch.float16 if device == "cuda" else torch.float32
                # the text encoder is needed once per prompt: free it (IF) / park it on the CPU (SD)
                extra = {"keep_text_encoder": False} if preset.startswith("if") else \
                    {"offload_text_encoder": device == "cuda"}
                prior = build_prior(preset, device=device, dtype=dtype, **extra)
                prompt = "a DSLR photo of a corgi wearing a red beanie"
                csd = guidance_preset(guidance_name, prior, prompt, view_prompts=False)
                three = guidance_from_config({**csd.to_config(), "unet_batch": b}, prior)
                sds = SDS(prior, prompt, 100.0, t_range=csd.t_range)
                gen = torch.Generator().manual_seed(0)
                renders = torch.rand(b, 3, res, res, generator=gen).to(device).requires_grad_(True)
                return {"csdkit": csd, "three-call": three, "sds": sds, "renders": renders, "gen": gen}

            def make_fn(impl, key=key, build=build, step=step):
                def run():
                    s = pool.get(key, build)
                    s["renders"].grad = None
                    res = s[impl](s["renders"], step=step, generator=s["gen"])
                    res.loss.backward()
                return run

            name = f"{preset}_b{b}_{res}px"
            for impl in ("three-call", "csdkit", "sds"):
                out.append(Case(name, impl, make_fn(impl), n=b, baseline=impl == "three-call",
                                repeats=10, warmup=2))
    return out
