"""Evaluation of the MiniPrior: implicit classifier, sampling colour accuracy, CSD sanity.

``python -m csdkit.guidance.mini.evaluate [--weights DIR] [--out DIR]`` runs the full set and writes
``eval.json`` plus figures (sample grid, CSD before/after) used by ``docs/miniprior.md``. The test
suite runs the same functions on a smaller subset.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ..classifier import prompt_errors
from ..priors.base import DiffusionPrior
from .data import COLORS, SHAPES, reference_colors, render_scenes, sample_scenes
from .sample import sample
from .text import _article

EVAL_SEED = 987_654_321  # far from the training seeds (seed * 1_000_003 + step)


@torch.no_grad()
def denoising_errors(prior: DiffusionPrior, images: torch.Tensor, prompts: list[str],
                     timesteps: list[int], generator: torch.Generator) -> torch.Tensor:
    """Conditional denoising error of every image under every prompt.

    ``images [B, 3, H, W]`` in [0, 1]; returns ``[B, K]`` float32 (CPU): the MSE between the true
    noise and ``prior.predict_noise`` averaged over ``timesteps``, with the same ``x_t`` (noise and
    timestep) for all ``K`` prompts, so the comparison between prompts is paired.
    """
    return prompt_errors(prior, prior.encode(images.to(prior.device)), prompts, timesteps, generator)


def implicit_classifier(prior: DiffusionPrior, per_color: int = 5, n_timesteps: int = 8,
                        seed: int = EVAL_SEED) -> dict:
    """Colour classification by lowest conditional denoising error.

    For ``per_color`` fresh solid-colour renders (random shape) of each palette colour, the
    candidates are ``"a {colour} {shape}"`` for the 12 colours (the true shape); errors are averaged
    over ``n_timesteps`` evenly spaced ``t`` in [200, 650] (where the MiniPrior's prompt-dependence
    is most informative: at t <= 150 the image gives the colour away, at t >= 750 the predictions
    barely depend on the image), one fresh noise each. Returns
    ``{"accuracy", "correct", "total", "per_color": {colour: correct}, "confusions": [...]}``.
    """
    g = torch.Generator().manual_seed(seed)
    timesteps = torch.linspace(200, 650, n_timesteps).round().long().tolist()
    correct, total, per, confusions = 0, 0, {}, []
    for ci, colour in enumerate(COLORS):
        scenes = sample_scenes(per_color, g, p_solid=1.0)
        scenes.color1.fill_(ci)
        images = render_scenes(scenes, prior.resolution, g)
        per[colour] = 0
        for j in range(per_color):
            shape = SHAPES[int(scenes.shape[j])]
            prompts = [f"{_article(c)} {c} {shape}" for c in COLORS]
            err = denoising_errors(prior, images[j:j + 1], prompts, timesteps, g)[0]
            guess = COLORS[int(err.argmin())]
            ok = guess == colour
            correct += ok
            per[colour] += ok
            total += 1
            if not ok:
                confusions.append(f"{colour} {shape} -> {guess}")
    return {"accuracy": correct / total, "correct": correct, "total": total, "per_color": per,
            "confusions": confusions}


def foreground_mean_color(images: torch.Tensor, threshold: float = 0.08) -> torch.Tensor:
    """Mean colour ``[B, 3]`` of the pixels that differ from the background.

    The background colour is the median of the two-pixel border; pixels whose largest channel
    difference to it exceeds ``threshold`` are foreground. When fewer than 3% of the pixels qualify,
    the central quarter of the image is used instead. ``images [B, 3, H, W]`` in [0, 1].
    """
    b, _, h, w = images.shape
    border = torch.cat([images[:, :, :2].flatten(2), images[:, :, -2:].flatten(2),
                        images[:, :, :, :2].flatten(2), images[:, :, :, -2:].flatten(2)], 2)
    bg = border.median(dim=2).values                                  # [B, 3]
    fg = ((images - bg[:, :, None, None]).abs().amax(1) > threshold).float()  # [B, H, W]
    centre = torch.zeros(h, w)
    centre[h // 4: h - h // 4, w // 4: w - w // 4] = 1
    few = fg.flatten(1).mean(1) < 0.03
    fg = torch.where(few[:, None, None], centre.to(fg), fg)
    return (images * fg[:, None]).sum((2, 3)) / fg.sum((1, 2))[:, None].clamp_min(1)


def nearest_color(rgb: torch.Tensor, refs: torch.Tensor) -> list[str]:
    """Palette name nearest (Euclidean RGB) to each row of ``rgb [B, 3]`` among ``refs [12, 3]``."""
    return [COLORS[int(i)] for i in torch.cdist(rgb.float(), refs.float()).argmin(1)]


def nearest_hue(rgb: torch.Tensor, refs: torch.Tensor, min_chroma: float = 0.05) -> list[str]:
    """Palette colour whose hue is closest to each row of ``rgb [B, 3]``, ignoring lightness and
    saturation: the grey part (the smallest channel) is removed from both sides and directions are
    compared by cosine. Only chromatic references (chroma > 0.15) compete; a row with chroma below
    ``min_chroma`` is ``"neutral"``. Suited to pastel colours, e.g. a grey image partly pulled green.
    """
    def chroma(c: torch.Tensor) -> torch.Tensor:
        return c - c.amin(-1, keepdim=True)

    ref_c = chroma(refs.float())
    keep = ref_c.amax(-1) > 0.15
    names = [c for c, k in zip(COLORS, keep.tolist(), strict=True) if k]
    dirs = torch.nn.functional.normalize(ref_c[keep], dim=-1)
    c = chroma(rgb.float())
    best = (torch.nn.functional.normalize(c, dim=-1) @ dirs.T).argmax(1)
    return [names[int(i)] if float(c[j].amax()) >= min_chroma else "neutral" for j, i in enumerate(best)]


def sampling_accuracy(prior: DiffusionPrior, per_color: int = 4, guidance: float = 7.5, steps: int = 100,
                      seed: int = EVAL_SEED, shape: str = "sphere") -> dict:
    """Samples ``per_color`` images of ``"a {colour} {shape}"`` per colour; a colour counts as right
    when the mean foreground colour of its samples is nearest to its reference rendered colour.

    Returns ``{"colors_right", "per_color": {colour: nearest}, "image_accuracy", "images"}`` with
    ``images [12 * per_color, 3, R, R]`` (colour-major order).
    """
    g = torch.Generator().manual_seed(seed)
    refs = reference_colors(prior.resolution)
    prompts = [f"{_article(c)} {c} {shape}" for c in COLORS for _ in range(per_color)]
    images = torch.cat([sample(prior, prompts[i:i + 48], guidance, steps, generator=g).cpu()
                        for i in range(0, len(prompts), 48)])
    means = foreground_mean_color(images)
    per_image = nearest_color(means, refs)
    per = {}
    for ci, colour in enumerate(COLORS):
        m = means[ci * per_color:(ci + 1) * per_color].mean(0, keepdim=True)
        per[colour] = nearest_color(m, refs)[0]
    image_ok = sum(p == COLORS[i // per_color] for i, p in enumerate(per_image))
    return {"colors_right": sum(per[c] == c for c in COLORS), "per_color": per,
            "image_accuracy": image_ok / len(per_image), "images": images}


def csd_gradient(prior: DiffusionPrior, x: torch.Tensor, emb_prompt: torch.Tensor, emb_empty: torch.Tensor,
                 t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The classifier-score (CSD) gradient of DESIGN.md §2 with ``w(t) = 1``:
    ``eps(x_t, t, y) - eps(x_t, t, empty)`` for ``x [B, 3, R, R]`` (model space) and ``t [B]``."""
    with torch.no_grad():
        noise = torch.randn(x.shape, generator=generator).to(x.device)
        x_t = prior.add_noise(x.detach(), noise, t)
        eps = prior.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]),
                                  torch.cat([emb_prompt, emb_empty]))
        eps_y, eps_0 = eps.chunk(2)
    return eps_y - eps_0


def csd_sanity(prior: DiffusionPrior, prompt: str = "a green cube", iters: int = 150, size: int = 64,
               lr: float = 0.03, batch: int = 4, seed: int = EVAL_SEED) -> dict:
    """Optimizes one ``size x size`` image (initially mid-grey) with CSD toward ``prompt``.

    Each iteration draws ``batch`` noises and timesteps ``t ~ U[20, 980)`` for the same image, forms
    ``grad`` with :func:`csd_gradient`, and applies the loss trick ``loss = 0.5 * ||x - sg(x - grad)||^2``
    through ``prior.encode`` (resize + affine), with Adam on the image pixels.

    CSD paints an object-sized blob of the prompt's colour in the middle and pushes the rest of
    the frame toward contrasting colours (away from what the unconditional model expects), so the
    colour is measured on the central ``size/2 x size/2`` square, where the "object" forms.

    Returns ``{"image": [3, size, size] in [0, 1], "mean_color": [3] (whole image),
    "center_color": [3], "nearest": name, "hue": name}`` (``nearest``: :func:`nearest_color` and
    ``hue``: :func:`nearest_hue` of the centre colour).
    """
    g = torch.Generator().manual_seed(seed)
    image = torch.full((1, 3, size, size), 0.5, device=prior.device, requires_grad=True)
    opt = torch.optim.Adam([image], lr=lr)
    emb_y = prior.embed([prompt]).expand(batch, -1, -1)
    emb_0 = prior.embed([""]).expand(batch, -1, -1)
    for _ in range(iters):
        x = prior.encode(image).expand(batch, -1, -1, -1)
        t = torch.randint(20, 980, (batch,), generator=g).to(prior.device)
        grad = csd_gradient(prior, x, emb_y, emb_0, t, g).to(x.dtype)
        target = (x - grad).detach()
        loss = 0.5 * ((x - target) ** 2).sum() / batch
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            image.clamp_(0, 1)
    final = image.detach()[0].cpu()
    q = size // 4
    centre = final[:, q:size - q, q:size - q].mean((1, 2))
    refs = reference_colors(prior.resolution)
    return {"image": final, "mean_color": final.mean((1, 2)), "center_color": centre,
            "nearest": nearest_color(centre[None], refs)[0], "hue": nearest_hue(centre[None], refs)[0]}


def _save_grid(images: torch.Tensor, cols: int, path: Path, scale: int = 3) -> None:
    from PIL import Image

    n, _, h, w = images.shape
    rows = (n + cols - 1) // cols
    grid = torch.ones(3, rows * (h + 2), cols * (w + 2))
    for i in range(n):
        r, c = divmod(i, cols)
        grid[:, r * (h + 2) + 1: r * (h + 2) + 1 + h, c * (w + 2) + 1: c * (w + 2) + 1 + w] = images[i]
    arr = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(arr).resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.NEAREST).save(path)


def main(argv: list[str] | None = None) -> None:
    from .prior import MiniPrior

    p = argparse.ArgumentParser(prog="python -m csdkit.guidance.mini.evaluate",
                                description=__doc__.split("\n")[0])
    p.add_argument("--weights", default=None, help="weights directory (default: the shipped ones)")
    p.add_argument("--out", default="miniprior-eval")
    p.add_argument("--per-color", type=int, default=10)
    p.add_argument("--samples", type=int, default=6)
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    prior = MiniPrior(args.weights)
    report: dict = {}
    t0 = time.time()
    report["implicit_classifier"] = implicit_classifier(prior, per_color=args.per_color)
    report["implicit_classifier"]["seconds"] = round(time.time() - t0, 1)
    print("implicit classifier:", json.dumps(report["implicit_classifier"]), flush=True)
    t0 = time.time()
    s = sampling_accuracy(prior, per_color=args.samples, guidance=args.guidance)
    _save_grid(s.pop("images"), args.samples, out / "miniprior_samples.png")
    report["sampling"] = {**s, "guidance": args.guidance, "steps": 100, "seconds": round(time.time() - t0, 1)}
    print("sampling:", json.dumps(report["sampling"]), flush=True)
    csd = {}
    finals = [torch.full((3, 64, 64), 0.5)]
    for prompt in ("a green cube", "a blue sphere", "a red torus", "a yellow cone"):
        r = csd_sanity(prior, prompt)
        finals.append(r["image"])
        csd[prompt] = {"nearest": r["nearest"], "hue": r["hue"],
                       "center_color": [round(v, 3) for v in r["center_color"].tolist()],
                       "mean_color": [round(v, 3) for v in r["mean_color"].tolist()]}
    _save_grid(torch.stack(finals), len(finals), out / "miniprior_csd.png", scale=2)
    report["csd"] = csd
    print("csd:", json.dumps(csd), flush=True)
    (out / "eval.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
