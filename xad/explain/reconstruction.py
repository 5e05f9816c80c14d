"""Running a reconstruction model on images, and the reconstruction-error function that the
explainers explain.

Heavy inference runs under ``torch.autocast("cpu", bfloat16)`` with channels-last tensors where the
CPU computes bf16 natively (several times faster with AMX; :mod:`xad.precision`), else in fp32; fp32
is the reference and tests check that the two agree. In fp32 the fast path still runs the model
channels-last on batches of 16 (measured on an AVX2 CPU with the hexnut cpu model: 12.8 ms per image
contiguous at batch 200, 10.5 at batch 64, 4.1 channels-last at batch 16; outputs equal to 1e-5).
"""

from __future__ import annotations

import copy
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
                bf16: bool | None = None, channels_last: bool | None = None) -> np.ndarray:
    """x' = model.reconstruct(x) for (N, H, W, 3) images -> (N, H, W, 3) float32 in [0, 1].

    bf16: autocast on or off; None: on where the CPU computes bf16 natively. channels_last (None:
    with bf16) converts the model in place and the inputs to the channels-last memory format."""
    model.eval()
    bf16 = bf16_is_fast() if bf16 is None else bf16
    channels_last = bf16 if channels_last is None else channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    out = []
    for i in range(0, len(images), batch_size):
        x = to_tensor(images[i: i + batch_size])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            r = model.reconstruct(x)
        out.append(r.float().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out) if out else np.zeros((0, *images.shape[1:]), np.float32)


def error_function(model: torch.nn.Module, variant: str = "sse", batch_size: int | None = None,
                   bf16: bool | None = None, fast: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """f(x~): the reconstruction error of each perturbed image, the model called on every one.

    variant "sse": sum over pixels and channels of (d(mu(x~)) - x~)^2 (the reference's function);
    "max_channel": sum over pixels of the channel-max squared error (the paper's figures' CSVs).
    fast: a channels-last copy of the model (the caller's model is not changed) on batches of 16 in
    fp32 / 64 in bf16; False: the model as given, contiguous tensors, batches of 64 (the reference).
    Returns f: (N, H, W, 3) float in [0, 1] -> (N,) float64.
    """
    if variant not in ("sse", "max_channel"):
        raise ValueError(f"variant must be 'sse' or 'max_channel', got {variant!r}")
    bf16 = bf16_is_fast() if bf16 is None else bf16
    if fast:
        model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    batch_size = batch_size or (16 if fast and not bf16 else 64)

    def f(batch: np.ndarray) -> np.ndarray:
        if fast:
            return _errors(model, batch, batch_size, bf16, variant)
        rec = reconstruct(model, batch.astype(np.float32), batch_size, bf16, channels_last=bf16)
        sq = (rec - batch) ** 2
        err = sq.sum(axis=(1, 2, 3)) if variant == "sse" else sq.max(axis=3).sum(axis=(1, 2))
        return err.astype(np.float64)

    return f


@torch.inference_mode()
def _errors(model: torch.nn.Module, batch: np.ndarray, batch_size: int, bf16: bool, variant: str) -> np.ndarray:
    """The fast path of f: (N, H, W, 3) images viewed as channels-last (N, 3, H, W) tensors without
    a copy, the error reduced in torch chunk by chunk (no output images are assembled)."""
    images = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    out = torch.empty(len(batch), dtype=torch.float64)
    for i in range(0, len(batch), batch_size):
        x = images[i: i + batch_size].permute(0, 3, 1, 2)  # NHWC memory = channels-last NCHW
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            r = model.reconstruct(x)
        sq = (r.float() - x) ** 2
        err = sq.sum((1, 2, 3)) if variant == "sse" else sq.amax(1).sum((1, 2))
        out[i: i + batch_size] = err.double()
    return out.numpy()
