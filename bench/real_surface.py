"""Why a VAE-GAN trained with the CLI's defaults scores a real grayscale surface set at chance.

Issue 22's acceptance set is a real industrial surface set (761 normal training images, 583 test
images in five defect types with pixel masks, sizes such as 608 x 247). The public Magnetic-tile
defect set (Huang et al. 2018: MT_Free, MT_Blowhole, MT_Break, MT_Crack, MT_Fray, MT_Uneven, each
``Imgs/<stem>.jpg`` with its mask ``Imgs/<stem>.png``) has exactly those counts once a fifth of its
952 free images is held out for testing. xad neither ships nor downloads it: lay out a copy you
have, train with the defaults, then diagnose the trained model.

    .venv/bin/python bench/real_surface.py layout <Magnetic-tile folder> /data/mt   # -> /data/mt/mtile
    .venv/bin/python -m xad train vaegan --data /data/mt --category mtile --minutes 40 --threads 1 \
        --out /tmp/mt-vaegan
    .venv/bin/python bench/real_surface.py diagnose /tmp/mt-vaegan --data /data/mt --category mtile

``diagnose`` prints the test AUROC of the paper's score alpha = max |gs(x) - gs(x')| and of
variants of it (the map's interior only, the map smoothed first), where the map's maximum lies,
how much of the good images' texture the reconstruction keeps, and two model-free controls on the
same 128 px images (mean brightness; the largest deviation of gs(x) from its own 9 x 9 median):
what any score could reach at this resolution without a model. The variants are diagnostics, not
detectors xad offers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TYPES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")


def layout(source: Path, out: Path, test_good: float = 0.2, seed: int = 0) -> dict[str, int]:
    """Write ``out/mtile`` in the MVTec AD layout (grayscale PNGs, masks binarised at 128); a
    seeded ``test_good`` share of the free images goes to test/good. Returns the counts."""
    free = sorted((source / "MT_Free" / "Imgs").glob("*.jpg"))
    if not free:
        raise SystemExit(f"{source}: no MT_Free/Imgs/*.jpg (not a Magnetic-tile folder)")
    n_test = round(test_good * len(free))
    held = set(np.random.default_rng(seed).permutation(len(free))[:n_test].tolist())
    root, counts = out / "mtile", {}
    for i, path in enumerate(free):
        split = "test" if i in held else "train"
        _save_gray(path, root / split / "good" / f"{path.stem}.png")
        counts[f"{split}/good"] = counts.get(f"{split}/good", 0) + 1
    for kind in TYPES:
        for path in sorted((source / f"MT_{kind}" / "Imgs").glob("*.jpg")):
            _save_gray(path, root / "test" / kind.lower() / f"{path.stem}.png")
            mask = np.asarray(Image.open(path.with_suffix(".png")).convert("L")) > 127
            target = root / "ground_truth" / kind.lower() / f"{path.stem}_mask.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask.astype(np.uint8) * 255).save(target)
            counts[f"test/{kind.lower()}"] = counts.get(f"test/{kind.lower()}", 0) + 1
    return counts


def _save_gray(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.open(src).convert("L").save(dst)


def diagnose(weights: Path, data: str, category: str, border: int = 12) -> dict:
    """The measurements described in the module docstring, as a dict of percentages."""
    import torch
    from scipy.ndimage import gaussian_filter, median_filter
    from sklearn.metrics import roc_auc_score

    from xad.data.catalog import resolve_mvtec
    from xad.explain.reconstruction import reconstruct
    from xad.metrics.detection import anomaly_map
    from xad.train.vaegan_run import _test_set
    from xad.weights import load_model

    torch.set_num_threads(2)
    model, record = load_model(weights, expect="VAEGAN")
    size = model.config.image_size
    x, y, defects = _test_set(resolve_mvtec(data, category), size,
                              record.meta.get("resample", "nearest"), record.meta.get("resize", "stretch"))
    xf = x.astype(np.float32) / 255
    rec = reconstruct(model, x, bf16=False)
    m = anomaly_map(xf, rec)
    gs, gs_rec = xf.max(-1), rec.max(-1)
    inner = (slice(None), slice(border, -border), slice(border, -border))

    def auroc(scores: np.ndarray) -> float:
        return round(100 * float(roc_auc_score(y, scores)), 1)

    def peak(maps: np.ndarray) -> np.ndarray:
        return maps.reshape(len(maps), -1).max(1)

    at = m.reshape(len(m), -1).argmax(1)
    r, c = np.divmod(at, size)
    near_edge = (np.minimum(r, c) < 8) | (np.maximum(r, c) >= size - 8)
    local = np.abs(gs - np.stack([median_filter(g, 9) for g in gs]))[inner]
    good = y == 0
    kept = gs_rec[good].std(axis=(1, 2)) / gs[good].std(axis=(1, 2))
    out = {
        "weights": str(weights), "test_images": int(len(y)), "anomalous": int(y.sum()),
        "auroc_paper_score": auroc(peak(m)),
        "auroc_per_defect": {d: round(100 * float(roc_auc_score(y[s], peak(m)[s])), 1)
                             for d in sorted(set(defects) - {"good"})
                             for s in [np.isin(defects, ["good", d])]},
        f"auroc_interior_{border}px": auroc(peak(m[inner])),
        "auroc_smoothed_sigma2": auroc(peak(np.stack([gaussian_filter(a, 2) for a in m]))),
        "share_of_maxima_within_8px_of_the_edge": round(100 * float(near_edge.mean()), 1),
        "reconstruction_std_over_image_std_good": round(100 * float(np.median(kept)), 1),
        "control_mean_brightness": auroc(gs.mean(axis=(1, 2))),
        "control_local_deviation_max": auroc(peak(local)),
        "control_local_deviation_smoothed": auroc(peak(np.stack([gaussian_filter(a, 2) for a in local]))),
    }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    lay = sub.add_parser("layout", help="a Magnetic-tile folder -> the MVTec AD layout")
    lay.add_argument("source", type=Path)
    lay.add_argument("out", type=Path)
    dia = sub.add_parser("diagnose", help="a trained VAE-GAN on that set: where its score fails")
    dia.add_argument("weights", type=Path)
    dia.add_argument("--data", required=True)
    dia.add_argument("--category", default="mtile")
    a = p.parse_args(argv)
    result = layout(a.source, a.out) if a.cmd == "layout" else diagnose(a.weights, a.data, a.category)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
