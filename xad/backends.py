"""Inference backends for heavy batches of images: torch (the reference), OpenVINO, ONNX Runtime.

The explainers call the model on thousands of perturbed images per sample; where that runs decides
the audit's speed. A backend here is a :class:`Runner`: a callable from one float32 input array
(N, C, H, W) to the model's named outputs. Three kinds:

- :class:`TorchRunner` wraps a torch function (any device; bf16 autocast on CPUs that compute it
  natively), the reference and always available;
- :class:`OnnxRuntimeRunner` and :class:`OpenVINORunner` run an ONNX file (OpenVINO also an IR
  ``.xml`` + ``.bin``). :func:`open_file` opens such a file whatever made it (an external detector,
  e.g. an anomalib export), reading its input and output names from the file.

:func:`cached_export` exports a torch module with ``torch.onnx.export(dynamo=False)`` (dynamic batch
axis) at first use and keeps the file under the one cache root (``$XAD_CACHE/onnx``, default
``runs/onnx``), named by a hash of the module's weights, so a later process reuses it.
:func:`resolve` turns ``auto`` into the fastest installed backend, by measurement (docs/VERIFIED
facts: on an AVX2 CPU with 2 threads per 128 px VAE-GAN image OpenVINO 2.8 ms, ONNX Runtime 3.3,
torch channels-last 4.0; with native bf16 (AMX) torch's bf16 autocast is faster than all of them;
on a GPU only torch runs here).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from xad import REPO_ROOT
from xad.precision import bf16_is_fast

BACKENDS = ("torch", "openvino", "onnxruntime")
DEVICES = ("cpu", "cuda")
#: pip package of each optional backend, with the version requirements.txt pins.
PACKAGES = {"openvino": "openvino==2026.4.1", "onnxruntime": "onnxruntime==1.31.1"}
#: ONNX opset of the exports (supported by both runtimes at the pinned versions).
OPSET = 17


class BackendError(ValueError):
    """A backend that cannot run here, or a model file it cannot open (one-line message)."""


def cache_root() -> Path:
    """Where exported models are kept: ``$XAD_CACHE/onnx`` (default ``runs/onnx`` in the checkout)."""
    return Path(os.environ.get("XAD_CACHE", REPO_ROOT / "runs")) / "onnx"


def installed() -> tuple[str, ...]:
    """The backends importable here, torch first."""
    return ("torch", *(b for b in BACKENDS[1:] if importlib.util.find_spec(b) is not None))


def resolve(name: str, device: str = "cpu") -> str:
    """The backend that ``name`` means here: ``auto`` -> torch on a GPU or on a CPU with native bf16,
    else OpenVINO, else ONNX Runtime, else torch (fastest first, as measured); a named backend is
    checked to be installed and to support ``device``."""
    if device not in DEVICES:
        raise BackendError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise BackendError("--device cuda: torch sees no CUDA device on this machine")
    if name == "auto":
        if device == "cuda" or bf16_is_fast():
            return "torch"
        return next((b for b in ("openvino", "onnxruntime") if b in installed()), "torch")
    if name not in BACKENDS:
        raise BackendError(f"backend must be auto or one of {', '.join(BACKENDS)}, not {name!r}")
    if name not in installed():
        raise BackendError(f"backend {name} is not installed (pip install {PACKAGES[name]})")
    if device != "cpu" and name != "torch":
        raise BackendError(f"backend {name} runs on the CPU here; use --backend torch for {device}")
    return name


def threads() -> int:
    """Threads for the runtimes: the same as torch's intra-op threads."""
    return max(1, torch.get_num_threads())


def weights_hash(module: torch.nn.Module) -> str:
    """sha256 (16 hex) of a module's class, config (if any) and every parameter and buffer's name,
    dtype, shape and bytes: the key of its cached exports."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    h.update(repr(getattr(module, "config", None)).encode())
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def export_onnx(module: torch.nn.Module, example: torch.Tensor, path: Path,
                input_name: str = "input", output_names: Sequence[str] = ("output",)) -> Path:
    """``torch.onnx.export(dynamo=False)`` of ``module`` (eval mode, fp32, CPU) with a dynamic batch
    axis, written atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
    axes = {n: {0: "batch"} for n in (input_name, *output_names)}
    with torch.no_grad():
        torch.onnx.export(module.eval(), (example.float().cpu(),), str(tmp), dynamo=False,
                          input_names=[input_name], output_names=list(output_names),
                          dynamic_axes=axes, opset_version=OPSET)
    tmp.replace(path)
    return path


def cached_export(module: torch.nn.Module, example: torch.Tensor, name: str,
                  key: str | None = None, output_names: Sequence[str] = ("output",)) -> Path:
    """The ONNX export of ``module`` under :func:`cache_root`, made on first use: the file
    ``<name>-<hash>-<C>x<H>x<W>.onnx`` where hash is ``key`` or :func:`weights_hash` (module)."""
    shape = "x".join(str(s) for s in example.shape[1:])
    path = cache_root() / f"{name}-{key or weights_hash(module)}-{shape}-op{OPSET}.onnx"
    if not path.is_file():
        export_onnx(module, example, path, output_names=output_names)
    return path


class Runner(Protocol):
    """One model on one backend: ``runner(x)`` -> the outputs (in ``output_names`` order)."""

    backend: str
    input_name: str
    output_names: tuple[str, ...]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]: ...


class OnnxRuntimeRunner:
    """An ONNX file in ONNX Runtime on the CPU, ``n_threads`` intra-op threads, all graph
    optimisations. Input and output names are the file's."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, n_threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n_threads or threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"{path}: ONNX Runtime cannot open it ({_first_line(e)})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise BackendError(f"{path}: expected one input, the file has {len(inputs)}")
        self.input_name = inputs[0].name
        self.input_shape = tuple(inputs[0].shape)
        self.output_names = tuple(o.name for o in self.session.get_outputs())

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})


class OpenVINORunner:
    """An ONNX file or an OpenVINO IR (``.xml`` beside its ``.bin``) compiled for the CPU with the
    LATENCY hint and ``n_threads`` inference threads (measured faster here than the THROUGHPUT
    hint called synchronously; two streams fed asynchronously with halves of the batch gain only
    3-7 %, ``bench/openvino_modes.py``), without CPU pinning: OpenVINO otherwise pins the inference threads,
    with one thread the caller's own, to the first cores, so two audits on one thread each shared
    core 0 while core 1 stayed idle (each ran at 50 %, measured on 2 cores). Inference precision f32,
    set explicitly: on CPUs with native bf16 (AMX) OpenVINO's default is bf16, which rounded an
    external detector's scores to 1/64 and moved its AUROC from 0.590 to 0.572 (CI on an AMX CPU,
    ``tests/test_detectors.py``); an audit reports the exported model's own numbers."""

    backend = "openvino"

    def __init__(self, path: str | Path, n_threads: int | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": n_threads or threads(), "PERFORMANCE_HINT": "LATENCY",
                  "ENABLE_CPU_PINNING": False, "INFERENCE_PRECISION_HINT": "f32"}
        try:
            self.compiled = core.compile_model(str(path), "CPU", config)
        except Exception as e:  # openvino raises RuntimeError subclasses with long texts
            raise BackendError(f"{path}: OpenVINO cannot open it ({_first_line(e)})") from None
        if len(self.compiled.inputs) != 1:
            raise BackendError(f"{path}: expected one input, the file has {len(self.compiled.inputs)}")
        port = self.compiled.inputs[0]
        self.input_name = port.get_any_name()
        self.input_shape = tuple(str(d) for d in port.get_partial_shape())
        self.output_names = tuple(o.get_any_name() for o in self.compiled.outputs)
        self.request = self.compiled.create_infer_request()
        self.lock = threading.Lock()  # one request, shared by the dashboard's script threads

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        with self.lock:
            res = self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
            return [np.array(res[o], copy=True) for o in self.compiled.outputs]  # buffers are reused


class TorchRunner:
    """A torch function of one tensor (returning a tensor or a tuple of them) as a runner: inputs
    moved to ``device``, channels-last, bf16 autocast where asked (CPU or CUDA)."""

    backend = "torch"
    input_name = "input"

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor | tuple], device: str = "cpu",
                 bf16: bool = False, output_names: Sequence[str] = ("output",)) -> None:
        self.fn, self.device, self.bf16 = fn, torch.device(device), bf16
        self.output_names = tuple(output_names)

    def tensors(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The outputs as float32 tensors on the runner's device (no copy back to the host)."""
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.bf16):
            out = self.fn(x)
        return [t.float() for t in (out if isinstance(out, tuple) else (out,))]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        return [t.cpu().numpy() for t in self.tensors(torch.from_numpy(np.asarray(x, np.float32)))]


def open_file(path: str | Path, backend: str = "auto", n_threads: int | None = None) -> Runner:
    """An ONNX file (``.onnx``: ONNX Runtime or OpenVINO) or an OpenVINO IR (``.xml``: OpenVINO)."""
    path = Path(path)
    if not path.is_file():
        raise BackendError(f"{path}: no such file")
    if path.suffix not in (".onnx", ".xml"):
        raise BackendError(f"{path}: expected an ONNX file (.onnx) or an OpenVINO IR (.xml)")
    if backend == "auto":  # OpenVINO where installed (faster here), else ONNX Runtime
        backend = "openvino" if "openvino" in installed() or path.suffix == ".xml" else "onnxruntime"
    resolve(backend)  # installed?
    if backend == "onnxruntime" and path.suffix == ".onnx":
        return OnnxRuntimeRunner(path, n_threads)
    if backend == "openvino":
        return OpenVINORunner(path, n_threads)
    raise BackendError(f"{path}: backend {backend} cannot run a {path.suffix} file")


def for_module(module: torch.nn.Module, example: torch.Tensor, backend: str, name: str,
               device: str = "cpu", bf16: bool = False, output_names: Sequence[str] = ("output",),
               n_threads: int | None = None) -> Runner:
    """``module`` (its forward) on ``backend`` (already resolved): torch runs it as is; the others
    run its cached ONNX export."""
    if backend == "torch":
        return TorchRunner(module, device, bf16, output_names)
    path = cached_export(module, example, name, output_names=output_names)
    key = (str(path), backend, n_threads or threads())
    if key not in _OPENED:  # compiled once per process (an audit asks for it once per sample)
        _OPENED[key] = (OnnxRuntimeRunner if backend == "onnxruntime" else OpenVINORunner)(path, n_threads)
    return _OPENED[key]


_OPENED: dict[tuple, Runner] = {}


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:200] if text else type(e).__name__
