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
import time
from collections.abc import Callable

import numpy as np
import torch

from xad import backends
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


class Reconstruction(torch.nn.Module):
    """``model.reconstruct`` as a module's forward: what the ONNX export of a VAE-GAN computes."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.reconstruct(x)


class ErrorFunction:
    """f(x~) of :func:`error_function`: callable on images, and :meth:`masked` evaluates f on images
    composed from per-pixel keep masks (x where kept, the hidden values elsewhere) chunk by chunk in
    torch, so the perturbed images are never assembled in numpy (the explainers' fast path).

    The model runs on ``backend`` (:mod:`xad.backends`): torch (on ``device``, bf16 autocast where
    asked) or its ONNX export in OpenVINO / ONNX Runtime, made at first use for the images' size."""

    def __init__(self, model: torch.nn.Module, variant: str, batch_size: int, bf16: bool,
                 backend: str = "torch", device: str = "cpu") -> None:
        self.model, self.variant, self.batch_size, self.bf16 = model, variant, batch_size, bf16
        self.backend, self.device = backend, torch.device(device)
        self._runners: dict[tuple[int, ...], backends.Runner] = {}
        self.model_seconds = 0.0  # wall time inside the model calls alone (bench/explain.py)
        self.model_images = 0

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        images = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        return self._run(len(images), lambda sl: images[sl])

    def masked(self, x: np.ndarray, hidden: np.ndarray, keep: np.ndarray | torch.Tensor) -> np.ndarray:
        """f of the images where(keep, x, hidden): x, hidden (H, W, C); keep bool (N, H, W) or
        (N, H, W, C) (or flat (N, H*W*C)). Returns (N,) float64, equal to calling f on them."""
        h, w, ch = x.shape
        dev = self.device if self.backend == "torch" else torch.device("cpu")
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(dev)
        ht = torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.float32)).to(dev)
        keep = torch.as_tensor(keep, dtype=torch.bool)
        keep = keep.reshape(len(keep), h, w, -1)  # (N, H, W, 1 or C)
        return self._run(len(keep), lambda sl: torch.where(keep[sl].to(dev), xt, ht))

    def runner(self, shape: tuple[int, ...]) -> backends.Runner:
        """The model on this function's backend for images of ``shape`` (C, H, W), made once."""
        if shape not in self._runners:
            example = torch.zeros((1, *shape))
            self._runners[shape] = backends.for_module(
                Reconstruction(self.model), example, self.backend, "vaegan", str(self.device),
                self.bf16, ("reconstruction",))
        return self._runners[shape]

    @torch.inference_mode()
    def _run(self, n: int, chunk: Callable[[slice], torch.Tensor]) -> np.ndarray:
        """The error of n images, made ``batch_size`` at a time by chunk(slice) -> (b, H, W, C):
        viewed as channels-last (b, C, H, W) tensors without a copy, reduced in torch."""
        out = torch.empty(n, dtype=torch.float64)
        for i in range(0, n, self.batch_size):
            x = chunk(slice(i, i + self.batch_size)).permute(0, 3, 1, 2)  # NHWC = channels-last NCHW
            run = self.runner(tuple(x.shape[1:]))
            t0 = time.perf_counter()
            if isinstance(run, backends.TorchRunner):
                x = x.to(run.device)
                r = run.tensors(x)[0]
                if run.device.type == "cuda":
                    torch.cuda.synchronize()
            else:  # an exported model: NCHW float32 in and out, on the CPU
                r = torch.from_numpy(run(x.numpy())[0])
            self.model_seconds += time.perf_counter() - t0
            self.model_images += len(x)
            sq = (r - x) ** 2
            err = sq.sum((1, 2, 3)) if self.variant == "sse" else sq.amax(1).sum((1, 2))
            out[i: i + self.batch_size] = err.double().cpu()
        return out.numpy()


def error_function(model: torch.nn.Module, variant: str = "sse", batch_size: int | None = None,
                   bf16: bool | None = None, fast: bool = True, backend: str = "torch",
                   device: str = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """f(x~): the reconstruction error of each perturbed image, the model called on every one.

    variant "sse": sum over pixels and channels of (d(mu(x~)) - x~)^2 (the reference's function);
    "max_channel": sum over pixels of the channel-max squared error (the paper's figures' CSVs).
    fast: an :class:`ErrorFunction` on a channels-last copy of the model (the caller's model is not
    changed), batches of 16 in fp32 / 64 in bf16; False: a plain function running the model as
    given, contiguous tensors, batches of 64 (the reference).
    backend (fast only): "torch", "openvino", "onnxruntime" or "auto" (:func:`xad.backends.resolve`);
    device: "cpu" or "cuda" (torch only). bf16 applies to torch alone (the exports run fp32).
    Returns f: (N, H, W, 3) float in [0, 1] -> (N,) float64.
    """
    if variant not in ("sse", "max_channel"):
        raise ValueError(f"variant must be 'sse' or 'max_channel', got {variant!r}")
    backend = backends.resolve(backend, device)
    bf16 = (bf16_is_fast() if bf16 is None else bf16) and backend == "torch"
    if fast:
        copy_ = copy.deepcopy(model).eval()
        if backend == "torch":  # the exports take the model as it is
            copy_ = copy_.to(device, memory_format=torch.channels_last)
            for m in copy_.modules():  # inference only: ReLUs may overwrite their inputs
                if isinstance(m, torch.nn.ReLU):
                    m.inplace = True
        return ErrorFunction(copy_, variant, batch_size or (64 if bf16 or device == "cuda" else 16),
                             bf16, backend, device)
    if device != "cpu" or backend != "torch":
        raise ValueError("the reference error function runs torch on the CPU (fast=False)")
    batch_size = batch_size or 64

    def f(batch: np.ndarray) -> np.ndarray:
        rec = reconstruct(model, batch.astype(np.float32), batch_size, bf16, channels_last=bf16)
        sq = (rec - batch) ** 2
        err = sq.sum(axis=(1, 2, 3)) if variant == "sse" else sq.max(axis=3).sum(axis=(1, 2))
        return err.astype(np.float64)

    return f
