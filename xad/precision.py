"""Whether bf16 autocast pays off on this CPU.

``torch.autocast("cpu", dtype=torch.bfloat16)`` with channels-last tensors runs convolutions several
times faster than fp32 on CPUs with native bf16 units (Intel AMX, AVX512-BF16). On CPUs without them
(e.g. AVX2-only AMD EPYC) the same autocast is emulated and measured ~70x *slower* than fp32 (a
64-channel 3x3 convolution on 64 images of 64x64, 1 thread: 0.53 s fp32 vs 38.6 s bf16). Every bf16
default in xad therefore follows :func:`bf16_is_fast`; ``XAD_BF16=1`` / ``XAD_BF16=0`` overrides it.
A VAE-GAN whose card records bf16 explanations that differ from fp32 beyond :data:`BF16_BAR` is
explained in fp32 on every CPU (:func:`xad.audit.default_bf16`).
"""

from __future__ import annotations

import functools
import os

import torch

#: xad's bar for explaining a model in bf16 (:func:`xad.audit_live.bf16_agreement`): S1 per sample rank correlation
#: of the maps >= 0.99 and |J*(bf16) - J*(fp32)| <= 0.02; S3 median rank correlation >= 0.99 (its
#: partition refines the largest |value| first, so a rounding can swap which blocks get refined on
#: one sample); for both setups the mean J* within 0.02.
BF16_BAR = {"rho": 0.99, "iou": 0.02}


@functools.cache
def _native_bf16() -> bool:
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def bf16_is_fast() -> bool:
    """True where the CPU computes bf16 natively (AMX or AVX512-BF16), or ``XAD_BF16=1``."""
    forced = os.environ.get("XAD_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _native_bf16()


def describe() -> str:
    """One line for the UI and the cards: which precision heavy inference uses here, and why."""
    if bf16_is_fast():
        return "bf16 autocast (this CPU computes bf16 natively)"
    return "fp32 (this CPU has no native bf16 units: bf16 autocast would be slower here)"
