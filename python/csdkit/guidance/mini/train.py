"""Train the MiniPrior from scratch on procedurally rendered primitives.

Usage::

    python -m csdkit.guidance.mini.train --out DIR [--steps N] [--device cpu|cuda] [--seed S]

Reproducible: every batch (scenes, captions, timesteps, noise, caption drop-out) is a pure function
of ``(seed, step)``, so a run resumed from its checkpoint continues exactly as if uninterrupted.
``DIR`` receives ``checkpoint.pt`` (written atomically every ``--ckpt-every`` steps),
``metrics.jsonl`` (step, loss, lr, seconds) and, at the end, the shippable files
``miniprior.safetensors``, ``miniprior_config.json``, ``miniprior_vocab.json`` and
``miniprior_loss.png``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import make_batch
from .model import MiniDenoiser, MiniPriorConfig, count_parameters, ddpm_alphas_cumprod
from .text import WordTokenizer

WEIGHTS, CONFIG, VOCAB_FILE, LOSS_PNG = ("miniprior.safetensors", "miniprior_config.json",
                                         "miniprior_vocab.json", "miniprior_loss.png")


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def export_weights(model: MiniDenoiser, out: Path, fp16: bool = False) -> None:
    """Writes ``miniprior.safetensors`` (+ config and vocabulary JSON) for :class:`MiniPrior`."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if fp16:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    tmp = out / (WEIGHTS + ".tmp")
    save_file(state, str(tmp), metadata={"format": "pt", "model": "csdkit-miniprior"})
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / WEIGHTS)
    (out / CONFIG).write_text(model.cfg.to_json())
    WordTokenizer(model.cfg.vocab, model.cfg.max_tokens).save(out / VOCAB_FILE)


def export_checkpoint(run_dir: str | Path, out: str | Path, fp16: bool = False) -> Path:
    """Exports the EMA weights of ``run_dir/checkpoint.pt`` (a finished or running training run)
    to ``out`` as the three files :class:`MiniPrior` loads; returns ``out``."""
    ckpt = torch.load(Path(run_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    model = MiniDenoiser(MiniPriorConfig.from_json(ckpt["config"]))
    model.load_state_dict(ckpt["ema"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    export_weights(model, out, fp16=fp16)
    return out


def read_metrics(path: Path) -> list[dict]:
    """Rows of ``metrics.jsonl``, the last row kept per step (resumed runs rewrite some steps)."""
    rows: dict[int, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            rows[int(row["step"])] = row
    return [rows[k] for k in sorted(rows)]


def plot_loss(rows: list[dict], path: Path, width: int = 480, height: int = 240) -> None:
    """Draws the training loss (raw and 100-step running mean) as a small PNG with PIL."""
    from PIL import Image, ImageDraw

    if not rows:
        return
    steps = [r["step"] for r in rows]
    loss = [r["loss"] for r in rows]
    k = 100
    smooth = [sum(loss[max(0, i - k + 1): i + 1]) / (i + 1 - max(0, i - k + 1)) for i in range(len(loss))]
    lo, hi = 0.0, max(0.15, sorted(loss)[int(0.98 * (len(loss) - 1))])
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = 40, 10, width - 10, height - 25

    def xy(s: float, v: float) -> tuple[float, float]:
        fx = (s - steps[0]) / max(1, steps[-1] - steps[0])
        fy = (min(v, hi) - lo) / (hi - lo)
        return x0 + fx * (x1 - x0), y1 - fy * (y1 - y0)

    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    for frac in (0.25, 0.5, 0.75):
        yv = lo + frac * (hi - lo)
        draw.line([xy(steps[0], yv), xy(steps[-1], yv)], fill=(225, 225, 225))
        draw.text((2, xy(0, yv)[1] - 6), f"{yv:.3f}", fill=(0, 0, 0))
    draw.line([xy(s, v) for s, v in zip(steps, loss, strict=True)], fill=(170, 190, 230))
    draw.line([xy(s, v) for s, v in zip(steps, smooth, strict=True)], fill=(20, 60, 200), width=2)
    draw.text((x0, y1 + 6), f"step {steps[0]}", fill=(0, 0, 0))
    draw.text((x1 - 70, y1 + 6), f"step {steps[-1]}", fill=(0, 0, 0))
    draw.text((x0 + 150, y1 + 6), "MiniPrior training loss (eps MSE)", fill=(0, 0, 0))
    img.save(path)


def train(out: str | Path, steps: int = 6000, batch: int = 32, lr: float = 8e-4, warmup: int = 200,
          device: str = "cpu", seed: int = 0, p_uncond: float = 0.15, ema_decay: float = 0.999,
          ckpt_every: int = 200, threads: int | None = None, cfg: MiniPriorConfig | None = None,
          progress: bool = True) -> MiniDenoiser:
    """Trains (or resumes) a MiniPrior in ``out``; returns the EMA model."""
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    ckpt_path = out / "checkpoint.pt"
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        cfg = MiniPriorConfig.from_json(ckpt["config"])
    else:
        ckpt = None
        cfg = cfg or MiniPriorConfig()
    torch.manual_seed(seed)
    model = MiniDenoiser(cfg).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    start = 0
    elapsed = 0.0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["opt"])
        start, elapsed = int(ckpt["step"]), float(ckpt.get("seconds", 0.0))
    tok = WordTokenizer(cfg.vocab, cfg.max_tokens)
    abar = ddpm_alphas_cumprod(cfg).to(dev)
    (out / "run.json").write_text(json.dumps({
        "steps": steps, "batch": batch, "lr": lr, "warmup": warmup, "seed": seed, "p_uncond": p_uncond,
        "ema_decay": ema_decay, "device": device, "threads": torch.get_num_threads(),
        "parameters": count_parameters(model), "config": json.loads(cfg.to_json())}, indent=1))

    def save(step: int, seconds: float) -> None:
        _atomic_save({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                      "step": step, "seconds": seconds, "config": cfg.to_json()}, ckpt_path)

    metrics = (out / "metrics.jsonl").open("a")
    bar = tqdm(range(start, steps), initial=start, total=steps, disable=not progress,
               desc="MiniPrior", dynamic_ncols=True)
    t0 = time.time() - elapsed
    model.train()
    for step in bar:
        images, _, captions = make_batch(batch, cfg.resolution, seed=seed * 1_000_003 + step)
        g = torch.Generator().manual_seed(seed * 1_000_003 + step + 7_777_777)
        drop = torch.rand(batch, generator=g) < p_uncond
        captions = ["" if d else c for c, d in zip(captions, drop.tolist(), strict=True)]
        t = torch.randint(0, cfg.num_train_timesteps, (batch,), generator=g)
        noise = torch.randn(batch, 3, cfg.resolution, cfg.resolution, generator=g)
        x0 = (images * 2 - 1).to(dev)
        t, noise = t.to(dev), noise.to(dev)
        a = abar[t].view(-1, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
        ids = tok.encode(captions, warn=False).to(dev)
        cur_lr = _lr_at(step, steps, lr, warmup)
        for group in opt.param_groups:
            group["lr"] = cur_lr
        pred = model(x_t, t, model.encode_text(ids))
        loss = F.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(ema_decay, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.lerp_(pm, 1 - d)
        seconds = time.time() - t0
        metrics.write(json.dumps({"step": step, "loss": round(loss.item(), 6), "grad_norm": round(
            float(gnorm), 4), "lr": cur_lr, "seconds": round(seconds, 2)}) + "\n")
        if step % 10 == 0:
            metrics.flush()
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if (step + 1) % ckpt_every == 0 or step + 1 == steps:
            save(step + 1, seconds)
    metrics.close()
    ema.eval()
    export_weights(ema, out)
    plot_loss(read_metrics(out / "metrics.jsonl"), out / LOSS_PNG)
    return ema


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m csdkit.guidance.mini.train",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="run directory (resumed when it holds checkpoint.pt)")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--ckpt-every", type=int, default=200)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("train: --device cuda asked for, but torch sees no CUDA device")
    train(args.out, steps=args.steps, batch=args.batch, lr=args.lr, device=args.device, seed=args.seed,
          ckpt_every=args.ckpt_every, threads=args.threads)
    print(f"MiniPrior weights written to {Path(args.out) / WEIGHTS}")


if __name__ == "__main__":
    main()
