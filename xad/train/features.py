"""``python -m xad train features``: the FID feature extractor of a digit dataset (see
:mod:`xad.models.features`): a CNN trained on MNIST's digit labels (and, for coloured MNIST, the
colour labels too), with its test accuracy per head on the card."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from xad import portable
from xad.data import digits, semantic
from xad.models.features import FeatureNet, FeatureNetConfig
from xad.explain.reconstruction import to_tensor
from xad.weights import read_record, save_model

DATASETS = ("mnist", "cmnist")


def arrays(dataset: str, path: str | None = None) -> tuple[np.ndarray, list, np.ndarray, list]:
    """(x_train, [labels per head], x_test, [labels per head]); images (N, 32, 32, 3) uint8."""
    m = digits.load_mnist(path or semantic.default_mnist_path())
    if dataset == "mnist":
        return (semantic.pad_rgb(m.x_train), [m.y_train], semantic.pad_rgb(m.x_test), [m.y_test])
    if dataset == "cmnist":
        cm, c_train, c_test = digits.coloured_mnist(m, 0)
        return (semantic.pad_rgb(cm.x_train), [cm.y_train, c_train],
                semantic.pad_rgb(cm.x_test), [cm.y_test, c_test])
    raise ValueError(f"dataset must be one of {DATASETS}")


def dataset_of(setup: str) -> str:
    """Which feature extractor a setup's FID uses."""
    return {"mnist": "mnist", "cmnist": "cmnist"}.get(setup.partition(":")[0], "")


@torch.no_grad()
def features(model: FeatureNet, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """(N, 32, 32, 3) uint8 or float in [0, 1] -> (N, feature_dim) float64."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        out.append(model.features(to_tensor(images[i: i + batch_size])).double().numpy())
    return np.concatenate(out)


@torch.no_grad()
def predict(model: FeatureNet, images: np.ndarray, batch_size: int = 512) -> list[np.ndarray]:
    """The classifier's own predictions, one (N,) int array per head (digit; digit and colour)."""
    model.eval()
    heads: list[list[np.ndarray]] = [[] for _ in model.config.heads]
    for i in range(0, len(images), batch_size):
        for h, logits in zip(heads, model(to_tensor(images[i: i + batch_size]))):
            h.append(logits.argmax(1).numpy())
    return [np.concatenate(h) if h else np.zeros(0, np.int64) for h in heads]


def run(dataset: str, out: Path, steps: int = 800, seed: int = 0, data_path: str | None = None,
        command: str = "") -> Path:
    x_tr, y_tr, x_te, y_te = arrays(dataset, data_path)
    names = ("digit",) if dataset == "mnist" else ("digit", "colour")
    torch.manual_seed(seed)
    model = FeatureNet(FeatureNetConfig(heads=tuple(int(y.max()) + 1 for y in y_tr), head_names=names))
    g = torch.Generator().manual_seed(seed)
    xt = to_tensor(x_tr)
    yt = [torch.from_numpy(y.astype(np.int64)) for y in y_tr]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    start = time.time()
    for _ in tqdm(range(steps), desc=f"train features ({dataset})", mininterval=2):
        idx = torch.randint(0, len(xt), (128,), generator=g)
        loss = sum(F.cross_entropy(o, y[idx]) for o, y in zip(model(xt[idx]), yt))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logits = [torch.cat(parts) for parts in zip(*[model(to_tensor(x_te[i: i + 1000]))
                                                      for i in range(0, len(x_te), 1000)])]
    acc = {f"test_accuracy_{n}": round(float((lg.argmax(1).numpy() == y).mean()), 4)
           for n, lg, y in zip(names, logits, y_te)}
    meta = {"dataset": dataset, "seed": seed, "steps_done": steps,
            "train_seconds": round(time.time() - start, 1), "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "command": command,
            "data_path": portable(data_path) if data_path else "embedded MNIST"}
    folder = save_model(model, out, family="features", card="", preset="cpu", meta=meta, metrics=acc,
                        dtype=torch.float16)
    r = read_record(folder)
    heads = ", ".join(f"{n} ({k} classes)" for n, k in zip(names, r.config["heads"]))
    rows = "\n".join(f"| test accuracy, {n} | {acc[f'test_accuracy_{n}']:.4f} |" for n in names)
    (folder / "card.md").write_text(f"""# FID feature extractor — {dataset}

A CNN trained on the labels of {'MNIST' if dataset == 'mnist' else 'coloured MNIST (seed 0)'}:
heads {heads}. Its {r.config['feature_dim']}-dimensional penultimate layer gives the features for
the FID and FID_N of counterfactual explanations. **It is not Inception** (the paper's FID uses
Inception, which cannot be downloaded here and does not fit 32 px digits), so FID values are
comparable only between runs that use this extractor.

- **Command:** `{command}`
- **Data:** all {len(x_tr)} training images, 32 px (MNIST padded by 2 px), {meta['data_path']}
- **Seed:** {seed}; {steps} steps of batch 128; Adam lr 0.001
- **CPU wall time:** {meta['train_seconds'] / 60:.1f} min on {meta['threads']} threads

| metric | value |
| --- | --- |
{rows}
""")
    return folder
