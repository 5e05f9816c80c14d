"""Running a reconstruction model on images, and the reconstruction-error function that the
explainers explain.

Heavy inference runs under ``torch.autocast("cpu", bfloat16)`` with channels-last tensors where the
CPU computes bf16 natively (several times faster with AMX; :mod:`xad.precision`), else in fp32; fp32
is the reference and tests check that the two agree.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from xad.precision import bf16_is_fast


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 or float in [0, 1] -> (N, 3, H, W) float32."""
    x = torch.from_numpy(np.require(images, requirements=("C", "W")))  # copies only if read-only
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(0, 3, 1, 2)


@torch.no_grad()
def reconstruct(model: torch.nn.Module, images: np.ndarray, batch_size: int = 64,
                bf16: bool | None = None) -> np.ndarray:
    """x' = model.reconstruct(x) for (N, H, W, 3) images -> (N, H, W, 3) float32 in [0, 1].

    bf16: autocast on or off; None: on where the CPU computes bf16 natively."""
    model.eval()
    bf16 = bf16_is_fast() if bf16 is None else bf16
    if bf16:
        model = model.to(memory_format=torch.channels_last)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i: i + batch_size])
        if bf16:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            r = model.reconstruct(x)
        out.append(r.float().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:]), np.float32)


def error_function(model: torch.nn.Module, variant: str = "sse", batch_size: int = 64,
                   bf16: bool | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """f(x~): the reconstruction error of each perturbed image, the model called on every one.

    variant "sse": sum over pixels and channels of (d(mu(x~)) - x~)^2 (the reference's function);
    "max_channel": sum over pixels of the channel-max squared error (the paper's figures' CSVs).
    Returns f: (N, H, W, 3) float in [0, 1] -> (N,) float64.
    """
    if variant not in ("sse", "max_channel"):
        raise ValueError(f"variant must be 'sse' or 'max_channel', got {variant!r}")

    def f(batch: np.ndarray) -> np.ndarray:
        rec = reconstruct(model, batch.astype(np.float32), batch_size, bf16)
        sq = (rec - batch) ** 2
        err = sq.sum(axis=(1, 2, 3)) if variant == "sse" else sq.max(axis=3).sum(axis=(1, 2))
        return err.astype(np.float64)

    return f
