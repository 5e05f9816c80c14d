"""Running a reconstruction model on images, and the reconstruction-error function that the
explainers explain.

Heavy inference runs under ``torch.autocast("cpu", bfloat16)`` with channels-last tensors where the
CPU computes bf16 natively (several times faster with AMX; :mod:`xad.precision`), else in fp32; fp32
is the reference and tests check that the two agree. In fp32 the fast path still runs the model
channels-last on batches of 16 (measured on an AVX2 CPU with the hexnut cpu model: 12.8 ms per image
contiguous at batch 200, 10.5 at batch 64, 4.1 channels-last at batch 16; outputs equal to 1e-5).
The explainers hand the fast path masks rather than images (:meth:`ErrorFunction.masked`): it
composes each chunk of perturbed images in torch right before the model, instead of numpy building
(and shap copying) thousands of float images first.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch

from xad.precision import bf16_is_fast
from xad.tensors import to_tensor


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


class ErrorFunction:
    """f(x~) of :func:`error_function`: callable on images, and :meth:`masked` evaluates f on images
    composed from per-pixel keep masks (x where kept, the hidden values elsewhere) chunk by chunk in
    torch, so the perturbed images are never assembled in numpy (the explainers' fast path)."""

    def __init__(self, model: torch.nn.Module, variant: str, batch_size: int, bf16: bool) -> None:
        self.model, self.variant, self.batch_size, self.bf16 = model, variant, batch_size, bf16

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self._run(len(images), lambda sl: images[sl])

    def masked(self, x: np.ndarray, hidden: np.ndarray, keep: np.ndarray | torch.Tensor) -> np.ndarray:
        """f of the images where(keep, x, hidden): x, hidden (H, W, C); keep bool (N, H, W) or
        (N, H, W, C) (or flat (N, H*W*C)). Returns (N,) float64, equal to calling f on them."""
        h, w, ch = x.shape
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        ht = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32))
        keep = torch.as_tensor(keep, dtype=torch.bool)
        keep = keep.reshape(len(keep), h, w, -1)  # (N, H, W, 1 or C)
        return self._run(len(keep), lambda sl: torch.where(keep[sl], xt, ht))

    @torch.inference_mode()
    def _run(self, n: int, chunk: Callable[[slice], torch.Tensor]) -> np.ndarray:
        """The error of n images, made ``batch_size`` at a time by chunk(slice) -> (b, H, W, C):
        viewed as channels-last (b, C, H, W) tensors without a copy, reduced in torch."""
        out = torch.empty(n, dtype=torch.float64)
        for i in range(0, n, self.batch_size):
            x = chunk(slice(i, i + self.batch_size)).permute(0, 3, 1, 2)  # NHWC = channels-last NCHW
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                r = self.model.reconstruct(x)
            sq = (r.float() - x) ** 2
            err = sq.sum((1, 2, 3)) if self.variant == "sse" else sq.amax(1).sum((1, 2))
            out[i: i + self.batch_size] = err.double()
        return out.numpy()


def error_function(model: torch.nn.Module, variant: str = "sse", batch_size: int | None = None,
                   bf16: bool | None = None, fast: bool = True) -> Callable[[np.ndarray], np.ndarray]:
    """f(x~): the reconstruction error of each perturbed image, the model called on every one.

    variant "sse": sum over pixels and channels of (d(mu(x~)) - x~)^2 (the reference's function);
    "max_channel": sum over pixels of the channel-max squared error (the paper's figures' CSVs).
    fast: an :class:`ErrorFunction` on a channels-last copy of the model (the caller's model is not
    changed), batches of 16 in fp32 / 64 in bf16; False: a plain function running the model as
    given, contiguous tensors, batches of 64 (the reference).
    Returns f: (N, H, W, 3) float in [0, 1] -> (N,) float64.
    """
    if variant not in ("sse", "max_channel"):
        raise ValueError(f"variant must be 'sse' or 'max_channel', got {variant!r}")
    bf16 = bf16_is_fast() if bf16 is None else bf16
    if fast:
        copy_ = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        for m in copy_.modules():  # inference only: ReLUs may overwrite their inputs
            if isinstance(m, torch.nn.ReLU):
                m.inplace = True
        return ErrorFunction(copy_, variant, batch_size or (64 if bf16 else 16), bf16)
    batch_size = batch_size or 64

    def f(batch: np.ndarray) -> np.ndarray:
        rec = reconstruct(model, batch.astype(np.float32), batch_size, bf16, channels_last=bf16)
        sq = (rec - batch) ** 2
        err = sq.sum(axis=(1, 2, 3)) if variant == "sse" else sq.max(axis=3).sum(axis=(1, 2))
        return err.astype(np.float64)

    return f
