"""A whole VAE-GAN audit: dataset x model x setups -> results table + attribution maps.

1. score every test image (reconstruction, anomaly map, alpha) and fit tau* (on the test labels as
   the paper does, or on a held-out calibration half);
2. explain every sample in each setup (S1/S2 LIME, S3 SHAP, S4 ShapBPT: the authors' later method,
   not in the 2024 paper) and find its optimal-threshold IoU and the localisation metrics;
3. write ``results.csv``, ``maps.npz`` and ``run.json`` to a folder keyed by a hash of data,
   weights and parameters. Per-sample work is a pure function dispatched through joblib; finished
   samples are kept in ``partial/`` so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from joblib import Parallel, delayed

from xad.precision import bf16_is_fast
from xad import __version__, backends, portable
from xad.data.mvtec import MVTecDataset
from xad.data.transforms import DataError
from xad.explain import bpt as xbpt
from xad.explain import lime as xlime
from xad.explain import shap as xshap
from xad.explain.reconstruction import error_function, reconstruct
from xad.explain.segmentation import parameters as segmentation_parameters
from xad.explain.segmentation import segments_for
from xad.detectors import ExternalDetector
from xad.metrics.detection import anomaly_map, anomaly_score, evaluate, predicted_anomalous, tau_star
from xad.metrics.localisation import EXPLANATION_METRICS, MAP_METRICS, localisation, optimal_iou
from xad.runfolder import atomic_write, remove_empty, run_lock
from xad.runs import AUDIT_CACHE, AuditRun, find_run, load_run, run_key

SETUPS = ("S1", "S2", "S3", "S4")  # S4: ShapBPT, the authors' later method (not in the 2024 paper)
#: Where finished runs are cached (``$XAD_CACHE/audits``, default ``runs/audits`` in the checkout).
CACHE_DIR = AUDIT_CACHE
#: Bumped whenever the engine's numbers change for the same inputs, so stale cached runs are not reused.
ENGINE_REVISION = 3  # 3: quickshift in Lab as published (convert2lab=True)
COLUMNS = ["id", "category", "defect", "label", "score", "predicted", "correct", "tau", "role",
           *[f"{m}_{s}" for m in ("iou", "theta", "seconds") for s in SETUPS],
           # localisation beside max-IoU (xad.metrics.localisation): per explanation, and for the
           # detector's own anomaly map m (empty where the mask is empty)
           *[f"{m}_{s}" for m in EXPLANATION_METRICS for s in SETUPS],
           *[f"{m}_map" for m in MAP_METRICS]]


@dataclass(frozen=True)
class AuditParams:
    """segments: LIME's k; samples: LIME's n and SHAP's max_evals; calibration: "test" (the
    paper: tau* on the test labels) or "heldout" (tau* on a stratified half, reported on the rest)."""

    setups: tuple[str, ...] = SETUPS
    segments: int = 100
    samples: int = 5000  # the paper's n (LIME samples, SHAP and ShapBPT evaluations)
    seed: int = 1234
    error_variant: str = "sse"
    map_mode: str = "gray_max"
    calibration: str = "test"
    resample: str = "nearest"
    resize: str = "stretch"  # how a non-square image is made square (the model's config records it)
    bf16: bool = field(default_factory=bf16_is_fast)
    limit: int | None = None
    engine: str = "fast"  # "fast" (xad's engine) or "reference" (lime/shap/skimage as published, fp32)
    backend: str = "auto"  # the fast engine's model calls: auto|torch|openvino|onnxruntime (xad.backends)
    device: str = "cpu"  # cpu|cuda (cuda: torch only)

    def __post_init__(self) -> None:
        if self.engine not in ("fast", "reference"):
            raise ValueError("engine must be 'fast' or 'reference'")
        if self.backend not in ("auto", *backends.BACKENDS) or self.device not in backends.DEVICES:
            raise ValueError(f"backend must be auto or one of {', '.join(backends.BACKENDS)}, "
                             f"device one of {', '.join(backends.DEVICES)}")
        if not set(self.setups) <= set(SETUPS) or not self.setups:
            raise ValueError(f"setups must be a non-empty subset of {SETUPS}")
        if self.calibration not in ("test", "heldout"):
            raise ValueError("calibration must be 'test' or 'heldout'")


def default_bf16(meta: dict) -> bool:
    """Whether xad explains a VAE-GAN in bf16 unless told: where the CPU computes bf16 natively and
    the model's config does not record explanations that bf16 changes beyond the bar
    (``bf16_agreement``, measured by ``python -m xad evaluate vaegan --bf16-check``)."""
    return bf16_is_fast() and (meta.get("bf16_agreement") or {}).get("agrees", True)


@dataclass(frozen=True)
class Scoring:
    """ids/labels/defects: (N,); images: (N, H, W, 3) uint8; masks: list of (H, W) bool or None;
    reconstructions: (N, H, W, 3) float32; maps: (N, H, W) anomaly maps; scores: (N,) alpha;
    roles: (N,) "calibration" or "evaluation"; tau: tau*."""

    ids: list[str]
    labels: np.ndarray
    defects: list[str]
    images: np.ndarray
    masks: list
    reconstructions: np.ndarray
    maps: np.ndarray
    scores: np.ndarray
    roles: np.ndarray
    tau: float
    extra: dict = field(default_factory=dict)


def audit_refs(ds: MVTecDataset, limit: int | None = None) -> list:
    """The test samples; with ``limit``, the first N taken in turn from each defect type (so a
    quick look still has good and anomalous images), in the dataset's order."""
    refs = ds.refs("test")
    if not limit or limit >= len(refs):
        return refs
    groups = [[r for r in refs if r.defect == d] for d in ds.defects("test")]
    turns = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
    chosen = {r.id for r in turns[:limit]}
    return [r for r in refs if r.id in chosen]


def load_test(ds: MVTecDataset, size: int, resample: str, limit: int | None = None,  # noqa: ANN201
              resize: str = "stretch"):
    refs = audit_refs(ds, limit)
    return refs, [ds.load(r, size, resample, resize) for r in refs]


def score(model: torch.nn.Module, ds: MVTecDataset, params: AuditParams) -> Scoring:
    """Step 1: reconstruct and score the test split, fit tau*."""
    external = isinstance(model, ExternalDetector)
    refs, samples = load_test(ds, model.size if external else model.config.image_size, params.resample,
                              params.limit, params.resize)
    images = np.stack([s.image for s in samples])
    if external:  # its own score and map; "rec" holds what hidden segments show (the background)
        scores, maps = model.scores_and_maps(images)
        rec = np.stack([model.hidden(im.astype(np.float32) / 255) for im in images])
        extra = {"has_map": maps is not None}
        maps = np.zeros(images.shape[:3], np.float32) if maps is None else maps
    else:
        rec = reconstruct(model, images, bf16=False)  # x' is the reference: fp32 (bf16 only for f)
        maps = anomaly_map(images.astype(np.float32) / 255, rec, params.map_mode)
        scores, extra = anomaly_score(maps), {"has_map": True}
    labels = np.array([s.is_anomalous for s in samples], dtype=int)
    roles = calibration_roles(labels, params.seed) if params.calibration == "heldout" else \
        np.full(len(labels), "evaluation")
    fit = roles == "calibration" if params.calibration == "heldout" else np.ones(len(labels), bool)
    if len(set(labels[fit])) < 2:
        raise DataError(f"{ds.folder}: tau* needs good and anomalous test images; "
                        f"these {fit.sum()} samples hold only one kind")
    tau = tau_star(scores[fit], labels[fit])
    return Scoring([s.id for s in samples], labels, [r.defect for r in refs], images,
                   [s.mask for s in samples], rec, maps.astype(np.float32), scores, roles, tau, extra)


def evaluate_scoring(sc: Scoring):  # noqa: ANN201 - a DetectionResult
    """Confusion and AUROC on the evaluation samples at the fitted tau*."""
    keep = sc.roles == "evaluation"
    return evaluate(sc.scores[keep], sc.labels[keep], tau=sc.tau)


def calibration_roles(labels: np.ndarray, seed: int) -> np.ndarray:
    """A stratified, seeded half of each class for calibration; the rest for evaluation."""
    roles = np.full(len(labels), "evaluation", dtype=object)
    rng = np.random.default_rng(seed)
    for value in (0, 1):
        idx = rng.permutation(np.flatnonzero(labels == value))
        roles[idx[: len(idx) // 2]] = "calibration"
    return roles.astype(str)


def explain_sample(image: np.ndarray, x_rec: np.ndarray, mask: np.ndarray | None,
                   model: torch.nn.Module, params: AuditParams,
                   progress: Callable[[str, float], None] | None = None) -> dict:
    """Step 2 for one sample (pure): attribution maps, J*, theta* and seconds per setup.

    image: (H, W, 3) uint8; x_rec: (H, W, 3) float in [0, 1]; mask: (H, W) bool or None.
    progress(setup, fraction) is called as the work advances.
    """
    x = image.astype(np.float32) / 255
    reference = params.engine == "reference"
    external = isinstance(model, ExternalDetector)
    if external:  # the explained function: the detector's own score of the perturbed image
        f = model.explained
    else:
        f = (error_function(model, params.error_variant, bf16=False, fast=False) if reference else
             error_function(model, params.error_variant, bf16=params.bf16, backend=params.backend,
                            device=params.device))
    seg_rec = x if external else x_rec  # S1/S2 segment the image itself where there is no x'
    out: dict = {}
    for setup in params.setups:
        t0 = time.perf_counter()
        tick = (lambda frac, s=setup: progress(s, frac)) if progress else None
        if setup == "S3":
            attribution = xshap.explain(f, x, x_rec, max_evals=params.samples).attribution
        elif setup == "S4":  # the reference engine hands shap_bpt images composed in numpy
            attribution = xbpt.explain(f, x, x_rec, max_evals=params.samples).attribution
        else:
            seg = segments_for(setup, x, seg_rec, mask, params.segments, params.seed, reference)
            attribution = (xlime.explain_reference(f, x, x_rec, seg.labels, params.samples, params.seed)
                           if reference else
                           xlime.explain(f, x, x_rec, seg.labels, params.samples, params.seed,
                                         progress=tick)).attribution
        if tick:
            tick(1.0)
        curve = optimal_iou(attribution, mask) if mask is not None else None
        out[setup] = {"map": attribution.astype(np.float32), "seconds": time.perf_counter() - t0,
                      "iou": None if curve is None else curve.max_iou,
                      "theta": None if curve is None else curve.theta, **localisation(attribution, mask)}
    return out


def _sha(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _identity(weights: Path | ExternalDetector) -> str:
    """What makes a model's numbers: a weights folder's architecture and tensors (not its card or
    metrics), or an external detector's fingerprint (file bytes, outputs used, background)."""
    if isinstance(weights, ExternalDetector):
        return weights.fingerprint()
    weights = Path(weights)
    cfg = json.loads((weights / "config.json").read_text())
    architecture = json.dumps({"class": cfg.get("class"), "config": cfg.get("config")}, sort_keys=True)
    return architecture + "|" + _sha([weights / "model.safetensors"])


def audit_key(ds: MVTecDataset, weights: Path, params: AuditParams) -> str:
    """Hash of the test data (file bytes), the weights (config + tensors) and the parameters."""
    refs = audit_refs(ds, params.limit)
    files = [r.image_path for r in refs] + [r.mask_path for r in refs if r.mask_path]
    parts = [_sha(files), _identity(weights), json.dumps(asdict(params), sort_keys=True), __version__,
             str(ENGINE_REVISION)]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def sample_keys(ds: MVTecDataset, weights: Path, params: AuditParams, ids: list[str],
                refs: list) -> list[str]:
    """One key per sample for its explanation: the sample's id and file bytes, the weights and the
    parameters that shape it (not ``limit`` or ``calibration``, which only choose and threshold
    samples), so a run resumed with another ``--limit`` keeps what still fits and nothing else."""
    shaping = {k: v for k, v in asdict(params).items() if k not in ("limit", "calibration")}
    base = "|".join([_identity(weights),
                     json.dumps(shaping, sort_keys=True), __version__, str(ENGINE_REVISION)])
    files = [[r.image_path] + ([r.mask_path] if r.mask_path else []) for r in refs]
    return [hashlib.sha256(f"{base}|{sid}|{_sha(f)}".encode()).hexdigest()[:20] for sid, f in zip(ids, files)]


def run_audit(ds: MVTecDataset, model: torch.nn.Module, weights: Path, params: AuditParams,
              out: Path | None = None, n_jobs: int = 1,
              progress: Callable[[int, int, str], None] | None = None,
              notice: Callable[[str], None] | None = None, scheduler: str | None = None) -> Path:
    """Score, explain every sample, write the run folder; reuse a finished run with the same key.

    Finished samples wait in ``partial/<sample key>.npz`` (:func:`sample_keys`): an interrupted run
    resumes them; results of other parameters or data are discarded (``notice`` says how many). A
    lock file keeps a second writer out of the same folder. ``scheduler``: None (this process, or
    ``n_jobs`` joblib workers) or a Dask scheduler (:mod:`xad.scheduler`); the same results either way."""
    key = audit_key(ds, weights, params)
    if out is not None and run_key(Path(out)) == key and (Path(out) / "results.csv").is_file():
        return Path(out)
    if out is None and (done := find_run(key, _roots(weights))) is not None:
        return done
    run = Path(out) if out else CACHE_DIR / f"{ds.category}-{key}"
    created = not run.exists()
    try:
        with run_lock(run):
            try:
                return _run_locked(run, ds, model, weights, params, key, (n_jobs, scheduler), progress, notice)
            finally:  # no empty leftovers (finished samples stay for the resume)
                remove_empty(run / "partial")
    finally:
        if created:
            remove_empty(run)


def _run_locked(run: Path, ds: MVTecDataset, model: torch.nn.Module, weights: Path, params: AuditParams,
                key: str, workers: tuple[int, str | None], progress: Callable[[int, int, str], None] | None,
                notice: Callable[[str], None] | None) -> Path:
    sc = score(model, ds, params)
    keys = sample_keys(ds, weights, params, sc.ids, audit_refs(ds, params.limit))
    partial = run / "partial"
    partial.mkdir(parents=True, exist_ok=True)
    stale = [p for p in partial.iterdir() if p.name.removesuffix(".npz") not in set(keys)]
    for p in stale:
        p.unlink()
    if stale and notice:
        notice(f"{len(stale)} unfinished results in {partial} were made with other parameters or data; "
               "discarded")
    todo = [i for i, k in enumerate(keys) if not (partial / f"{k}.npz").is_file()]
    finished = len(sc.ids) - len(todo)
    for i in _explained(sc, todo, [partial / f"{k}.npz" for k in keys], model, weights, params, *workers):
        finished += 1
        if progress:
            progress(finished, len(sc.ids), sc.ids[i])
    _write(run, ds, sc, keys, weights, params, key)
    return run


def _explained(sc: Scoring, todo: list[int], paths: list[Path], model: torch.nn.Module, weights: Path,
               params: AuditParams, n_jobs: int, scheduler: str | None):  # noqa: ANN202 - Iterator[int]
    """Explain the samples ``todo`` and save each into its partial file as it finishes; yields indices."""
    if isinstance(model, ExternalDetector) and (n_jobs > 1 or scheduler is not None):
        raise DataError("an external detector (ONNX / OpenVINO / callable) is audited in this process: "
                        "leave out --jobs and --scheduler")
    if scheduler is not None:
        from xad.scheduler import explain_on_cluster

        items = [(i, sc.images[i], sc.reconstructions[i], sc.masks[i]) for i in todo]
        for i, res in explain_on_cluster(scheduler, explain_sample, str(Path(weights).resolve()), items, params):
            _save_sample(paths[i], res)
            yield i
        return
    jobs = (delayed(_explain_to_disk)(paths[i], i, sc.images[i], sc.reconstructions[i], sc.masks[i], model, params)
            for i in todo)
    yield from Parallel(n_jobs=n_jobs, backend="loky" if n_jobs > 1 else "sequential", return_as="generator")(jobs)


def _explain_to_disk(path: Path, i: int, image: np.ndarray, x_rec: np.ndarray, mask, model, params) -> int:  # noqa: ANN001
    _save_sample(path, explain_sample(image, x_rec, mask, model, params))
    return i


def _save_sample(path: Path, res: dict) -> None:
    arrays = {f"map_{s}": r["map"] for s, r in res.items()}
    meta = {s: {k: r[k] for k in ("iou", "theta", "seconds", *EXPLANATION_METRICS)} for s, r in res.items()}
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, meta=json.dumps(meta), **arrays)
    tmp.rename(path)  # atomic: a crash never leaves half a sample


def _write(run: Path, ds: MVTecDataset, sc: Scoring, keys: list[str], weights: Path, params: AuditParams,
           key: str) -> None:
    rows, maps = [], {s: [] for s in params.setups}
    pred = predicted_anomalous(sc.scores, sc.tau)
    for i, sid in enumerate(sc.ids):
        with np.load(run / "partial" / f"{keys[i]}.npz") as z:
            meta = json.loads(str(z["meta"]))
            for s in params.setups:
                maps[s].append(z[f"map_{s}"])
        row = {"id": sid, "category": ds.category, "defect": sc.defects[i],
               "label": "anomalous" if sc.labels[i] else "good", "score": float(sc.scores[i]),
               "predicted": "anomalous" if pred[i] else "good", "correct": bool(pred[i] == sc.labels[i]),
               "tau": sc.tau, "role": sc.roles[i]}
        for s in SETUPS:
            m = meta.get(s, {})
            row |= {f"{k}_{s}": m.get(k) for k in ("iou", "theta", "seconds", *EXPLANATION_METRICS)}
        row |= {f"{k}_map": v for k, v in localisation(sc.maps[i], sc.masks[i] if sc.extra.get("has_map", True)
                                                         else None, anomaly_map=True).items()}
        rows.append(row)
    atomic_write(run / "results.csv", lambda f: pd.DataFrame(rows, columns=COLUMNS).to_csv(f, index=False))
    atomic_write(run / "maps.npz", lambda f: np.savez_compressed(
        f, ids=np.array(sc.ids), anomaly_map=sc.maps.astype(np.float16),
        reconstruction=np.rint(sc.reconstructions * 255).astype(np.uint8),
        **{s: np.stack(v).astype(np.float32) for s, v in maps.items()}))
    det = evaluate_scoring(sc)
    info = {"key": key, "xad_version": __version__, "engine_revision": ENGINE_REVISION,
            "created": time.strftime("%Y-%m-%d %H:%M:%S"),
            "data": portable(ds.folder), "category": ds.category,
            "weights": weights.source if isinstance(weights, ExternalDetector) else portable(weights),
            **({"detector": weights.describe()} if isinstance(weights, ExternalDetector) else {}),
            "params": asdict(params), "samples": params.samples,
            "backend": ("torch" if params.engine == "reference"
                        else backends.resolve(params.backend, params.device)),
            "segmentation": segmentation_parameters(params.segments, params.seed),
            "tau": sc.tau, "auroc": det.auroc, "accuracy": det.accuracy,
            "confusion": det.describe(), "n_samples": len(sc.ids)}
    atomic_write(run / "run.json", lambda f: f.write((json.dumps(info, indent=2) + "\n").encode()))
    for p in (run / "partial").iterdir():
        p.unlink()


def _roots(weights: Path | ExternalDetector) -> list[Path]:
    """Where finished runs of this model may be: the cache, and beside a weights folder."""
    return [CACHE_DIR] if isinstance(weights, ExternalDetector) else [CACHE_DIR, Path(weights) / "audits"]


def open_audit(ds: MVTecDataset, weights: Path, params: AuditParams) -> AuditRun | None:
    """The finished run for these data, weights and parameters, if any (cache or shipped). If
    there is none, the same audit made at the other precision: the default precision follows the
    CPU (:mod:`xad.precision`), and a run shipped from a CPU with AMX (bf16) must still open on one
    without it; bf16 and fp32 agree within the tested tolerance, and ``info["params"]["bf16"]``
    says which one the run used."""
    roots = _roots(weights)
    for p in (params, replace(params, bf16=not params.bf16)):
        if (run := find_run(audit_key(ds, weights, p), roots)) is not None:
            return load_run(run)
    return None
