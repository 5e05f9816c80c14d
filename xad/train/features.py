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
from xad.cards import write_card
from xad.data.labelled import label_heads
from xad.models.features import FeatureNet, FeatureNetConfig
from xad.tensors import to_tensor
from xad.weights import save_model

BATCH, LR = 128, 1e-3  # Adam on batches of BATCH images


def run(dataset: str, out: Path, steps: int = 800, seed: int = 0, data_path: str | None = None,
        command: str = "") -> Path:
    """Train the extractor of ``dataset`` ("mnist" or "cmnist") on all its training images; save
    the weights folder with its card (test accuracy per head). Returns the folder."""
    x_tr, y_tr, x_te, y_te = label_heads(dataset, data_path)
    names = ("digit",) if dataset == "mnist" else ("digit", "colour")
    torch.manual_seed(seed)
    model = FeatureNet(FeatureNetConfig(heads=tuple(int(y.max()) + 1 for y in y_tr), head_names=names))
    g = torch.Generator().manual_seed(seed)
    xt = to_tensor(x_tr)
    yt = [torch.from_numpy(y.astype(np.int64)) for y in y_tr]
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    start = time.time()
    for _ in tqdm(range(steps), desc=f"train features ({dataset})", mininterval=2):
        idx = torch.randint(0, len(xt), (BATCH,), generator=g)
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
            "data_path": portable(data_path) if data_path else "embedded MNIST",
            "training_images": len(x_tr), "train_settings": {"steps": steps, "batch_size": BATCH, "lr": LR}}
    folder = save_model(model, out, family="features", card="", preset="cpu", meta=meta, metrics=acc,
                        dtype=torch.float16)
    write_card(folder)
    return folder
