"""VAE-GAN training speed on this CPU: steps (and images) per second before vs after issue 22.

before: the shipped training step up to then (eager, channels-last, fp32 where bf16 is emulated,
three discriminator passes per step, Adam's per-tensor loop, batch 32, GAN term on);
after (same recipe): ``xad.train.vaegan.Stepper`` on that recipe (batch 32, GAN term on): one
discriminator pass on the fakes and foreach Adam, the engineering alone;
after (defaults): the CLI's defaults (batch 16, the VAE alone: no discriminator passes);
defaults + compile: the same with torch.compile (``--compile on``).
All run in one process on the same random images, alternating in rounds so that a change in the
machine's load hits all; compilation is timed apart (it is paid once per training run).

    .venv/bin/python bench/train_vaegan.py [--threads 1] [--steps 20] [--rounds 3]
    .venv/bin/python bench/train_vaegan.py --resize-check   # which --resize keeps defects visible
    .venv/bin/python bench/train_vaegan.py --gan-terms <a VAE-GAN trained with --gan-weight 1> <category>  # why D wins
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F

from xad.models.vaegan import PRESETS, VAEGAN
from xad.train.augment import PROFILES, augment
from xad.train.vaegan import TrainSettings, Stepper


def legacy_stepper(model: VAEGAN, g: torch.Generator):  # noqa: ANN201 - the step before issue 22
    vae_params = [*model.encoder.parameters(), *model.decoder.parameters()]
    opt_vae = torch.optim.Adam(vae_params, lr=1e-3)
    opt_d = torch.optim.Adam(model.discriminator.parameters(), lr=1e-3)

    def step(x: torch.Tensor) -> None:
        rec, mu, log_var = model(x, generator=g)
        bce = F.binary_cross_entropy(rec, x, reduction="none").sum(dim=(1, 2, 3)).mean()
        kl = (-0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(1)).mean()
        d_real, d_fake = model.discriminator(x), model.discriminator(rec.detach())
        ones, zeros = torch.ones_like(d_real), torch.zeros_like(d_real)
        d_loss = (F.binary_cross_entropy_with_logits(d_real, ones)
                  + F.binary_cross_entropy_with_logits(d_fake, zeros))
        fooled = F.binary_cross_entropy_with_logits(model.discriminator(rec), ones)
        vae_loss = bce + kl + torch.clamp(fooled - d_loss.detach(), min=1e-4)
        opt_vae.zero_grad(set_to_none=True)
        opt_d.zero_grad(set_to_none=True)
        vae_loss.backward(inputs=vae_params)
        d_loss.backward(inputs=list(model.discriminator.parameters()))
        opt_vae.step()
        opt_d.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--resize-check", action="store_true", help="only the --resize measurement (no training)")
    ap.add_argument("--gan-terms", nargs=2, metavar=("WEIGHTS", "CATEGORY"),
                    help="only the loss-term gradient shares of a trained VAE-GAN (no speed runs)")
    args = ap.parse_args()
    if args.gan_terms:
        torch.set_num_threads(args.threads)
        gan_terms(*args.gan_terms)
        return
    if args.resize_check:
        resize_check()
        return
    torch.set_num_threads(args.threads)
    config = PRESETS[args.preset]
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (64, 3, config.image_size,
                                                                         config.image_size))).float() / 255
    defaults = TrainSettings(bf16=False)
    same = TrainSettings(bf16=False, batch_size=32, gan_weight=1.0)
    compiled = TrainSettings(bf16=False, compile=True)
    variants = {}
    for name, s, gan in (("before", None, 1.0), ("after (same recipe)", same, 1.0),
                         ("after (defaults)", defaults, defaults.gan_weight),
                         ("defaults + compile", compiled, compiled.gan_weight)):
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        model = VAEGAN(config).train().to(memory_format=torch.channels_last)
        fn = legacy_stepper(model, g) if s is None else (lambda f, w: (lambda x: f(x, w)))(Stepper(model, s, g), gan)
        variants[name] = {"fn": fn, "batch": 32 if s is None else s.batch_size, "g": g, "times": []}
    for name, v in variants.items():  # warm-up (and compilation for "after")
        t = time.perf_counter()
        for _ in range(2):
            v["fn"](_batch(images, v["batch"], v["g"]))
        v["first_seconds"] = time.perf_counter() - t
    for _ in range(args.rounds):
        for v in variants.values():
            t = time.perf_counter()
            for _ in range(args.steps):
                v["fn"](_batch(images, v["batch"], v["g"]))
            v["times"].append((time.perf_counter() - t) / args.steps)
    out = {"cpu": _cpu(), "threads": args.threads, "load_average_1min": os.getloadavg()[0],
           "preset": args.preset}
    for name, v in variants.items():
        sec = float(np.median(v["times"]))
        out[name] = {"batch": v["batch"], "seconds_per_step": round(sec, 4),
                     "steps_per_second": round(1 / sec, 3), "images_per_second": round(v["batch"] / sec, 2),
                     "first_two_steps_seconds": round(v["first_seconds"], 1)}
    base = out["before"]
    for name in list(variants)[1:]:
        out[name]["speedup_steps_per_second"] = round(out[name]["steps_per_second"] / base["steps_per_second"], 2)
        out[name]["speedup_images_per_second"] = round(out[name]["images_per_second"]
                                                       / base["images_per_second"], 2)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['cpu']}, {args.threads} thread(s), load average {out['load_average_1min']:.1f} "
          f"(1 min, at the end), {args.rounds} rounds of {args.steps} steps, median")
    for name in variants:
        o = out[name]
        ratio = "" if name == "before" else (f"  -> {o['speedup_steps_per_second']}x steps/s, "
                                             f"{o['speedup_images_per_second']}x images/s")
        print(f"{name:>20}: batch {o['batch']:>2}  {o['steps_per_second']:.3f} steps/s  "
              f"{o['images_per_second']:.1f} images/s  (first two steps {o['first_two_steps_seconds']} s){ratio}")


def gan_terms(weights: str, category: str, batch: int = 32, seed: int = 0) -> None:
    """Item 2's measurement on a trained model: each VAE loss term's value and the norm of its
    gradient on the encoder and decoder parameters, on one augmented batch of training images
    (training-mode batch norm, as in a step), with the discriminator's verdicts."""
    from xad.data.catalog import resolve_mvtec
    from xad.train.vaegan import bernoulli_entropy
    from xad.weights import load_model

    model, record = load_model(weights, expect="VAEGAN")
    ds = resolve_mvtec("embedded", category)
    size = model.config.image_size
    x = np.stack([ds.load(r, size, record.meta.get("resample", "nearest")).image for r in ds.refs("train")[:batch]])
    g = torch.Generator().manual_seed(seed)
    x = augment(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255,
                PROFILES[record.meta.get("train_settings", {}).get("augment", "object")], g)
    model.train()
    params = [*model.encoder.parameters(), *model.decoder.parameters()]
    rec, mu, log_var = model(x, generator=g)
    bce = F.binary_cross_entropy(rec, x, reduction="none").sum(dim=(1, 2, 3)).mean()
    kl = (-0.5 * (1 + log_var - mu ** 2 - log_var.exp()).sum(1)).mean()
    d_real, d_fake = model.discriminator(x), model.discriminator(rec)
    real, fake = torch.ones_like(d_real), torch.zeros_like(d_real)  # the labels it was trained with
    d_loss = F.binary_cross_entropy_with_logits(d_real, real) + F.binary_cross_entropy_with_logits(d_fake, fake)
    g_term = torch.clamp(F.binary_cross_entropy_with_logits(d_fake, real) - d_loss.detach(), min=1e-4)

    def norm(t: torch.Tensor) -> float:
        grads = torch.autograd.grad(t, params, retain_graph=True, allow_unused=True)
        return float(torch.sqrt(sum((q ** 2).sum() for q in grads if q is not None)))

    floor = bernoulli_entropy(x).mean().item()
    nb, nk, ng = norm(bce), norm(kl), norm(g_term)
    print(f"{weights} ({category}, {batch} images): BCE {bce.item():.0f} of which floor {floor:.0f} "
          f"(excess {bce.item() - floor:.0f}); KL {kl.item():.1f}; G term {g_term.item():.3g}; D loss {d_loss.item():.3g}")
    print(f"  D's P(real): real images {torch.sigmoid(d_real).mean().item():.4f}, reconstructions "
          f"{torch.sigmoid(d_fake).mean().item():.4f}")
    print(f"  gradient norm on e, d: BCE {nb:.4g}, KL {nk:.4g}, G term {ng:.4g} (G/BCE {ng / nb:.1%})")


def resize_check(root: str = "data/mvtec_ad_subset", seed: int = 0) -> None:
    """Item 4's measurement: real MVTec defect masks cut into bands of the odd aspect ratios of a
    surface-defect set (608 x 247, 126 x 284; the defect at a seeded random place in the band), made
    square by each geometry and resized to 128 px as the loader does: how many defects stay visible
    and how many mask pixels they keep."""
    import glob

    from xad.data.transforms import read_mask, resize_mask, square_geometry

    rng = np.random.default_rng(seed)
    for label, aspect in (("608x247", 247 / 608), ("126x284", 284 / 126)):
        found: dict[str, list[int]] = {"stretch": [], "pad": [], "crop": []}
        for path in sorted(glob.glob(f"{root}/*/ground_truth/*/*_mask.png")):
            m = read_mask(path)
            big_h, big_w = m.shape
            h, w = (round(big_w * aspect), big_w) if aspect < 1 else (big_h, round(big_h / aspect))
            ys, xs = np.nonzero(m)
            y0 = int(np.clip(int(ys.mean()) - rng.integers(0, h), 0, big_h - h))
            x0 = int(np.clip(int(xs.mean()) - rng.integers(0, w), 0, big_w - w))
            band = m[y0: y0 + h, x0: x0 + w]
            if band.any():
                for g, px in found.items():
                    px.append(int(resize_mask(square_geometry(band, g), 128).sum()))
        for g, px in found.items():
            a = np.asarray(px)
            print(f"{label} {g:>7}: {len(a)} defects, visible at 128 px {np.mean(a > 0):.2f}, "
                  f"median mask pixels {np.median(a):.0f}")


def _batch(images: torch.Tensor, batch: int, g: torch.Generator) -> torch.Tensor:
    idx = torch.randint(0, len(images), (batch,), generator=g)
    return augment(images[idx], PROFILES["object"], g).contiguous(memory_format=torch.channels_last)


def _cpu() -> str:
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name} ({torch.backends.cpu.get_cpu_capability()})"


if __name__ == "__main__":
    main()
