"""The paper's metrics of a counterfactual generator on its setup's test split (alpha = 0), and
writing them into the generator's folder with its card."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xad.cards import write_card
from xad.counterfactual.bundle import Bundle, concept_logits, generate, generate_matched, load_bundle, psi
from xad.data import semantic
from xad.data.transforms import DataError
from xad.metrics import counterfactual as cm
from xad.models.detectors import score_images
from xad.models.features import features, predict
from xad.tensors import to_float
from xad.weights import write_metrics


#: the target scores of the calibration curve
CALIBRATION_ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
#: test anomalies of the "alpha matched" curve (13 detector calls per image and row)
MATCHED_LIMIT = 300


def calibration(b: Bundle, anomalies: np.ndarray, alphas: tuple[float, ...] = CALIBRATION_ALPHAS,
                progress: Callable[[], None] | None = None, matched: bool = False) -> dict:
    """The curve alpha -> detector score of G(x, alpha, k) on the test anomalies, per concept.

    Returns ``calibration``: one row per (alpha, k) with the mean, standard deviation, median and
    target error mean |phi(G(x, alpha, k)) - alpha|; ``target_error`` (mean over every row) and
    ``target_error_k<k>`` per concept (1-based). ``progress()``: called after each row.

    ``matched``: the same for xad's "alpha matched" extension (:func:`generate_matched`: G's alpha
    input searched per image), under the keys ``calibration_matched``, ``target_error_matched``
    and ``target_error_matched_k<k>``; its rows also hold the mean alpha input G was given."""
    rows = []
    for k in range(b.concepts):
        for a in alphas:
            if matched:
                _, a_in, s = generate_matched(b, anomalies, a, k)
            else:
                s = score_images(b.detector, generate(b, anomalies, a, k))
            if progress is not None:
                progress()
            rows.append({"alpha": a, "k": k + 1, "mean_score": round(float(s.mean()), 4),
                         "std_score": round(float(s.std()), 4), "median_score": round(float(np.median(s)), 4),
                         "target_error": round(cm.target_error(s, a), 4),
                         **({"mean_alpha_input": round(float(a_in.mean()), 4)} if matched else {})})
    tag = "_matched" if matched else ""
    per_k = {f"target_error{tag}_k{k + 1}": round(float(np.mean([r["target_error"] for r in rows if r["k"] == k + 1])), 4)
             for k in range(b.concepts)}
    return {f"calibration{tag}": rows, f"target_error{tag}": round(float(np.mean([r["target_error"] for r in rows])), 4),
            **per_k}


def evaluate(b: Bundle, data_path: str | None = None, limit: int | None = None, seed: int = 0,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """The paper's metrics on (up to ``limit``; default 2000, 500 for DiffEdit) test anomalies and
    normal test images, alpha = 0.

    Returns auroc_normal_vs_ce (per concept and all), fid_n (% ; None without an extractor),
    concept_accuracy (R on the held-out CEs), mse and ssim (anomaly vs CE), the detector's mean
    score on anomalies before and on their CEs after, the calibration curve and target error
    (:func:`calibration`; the "alpha matched" extension's on the first ``MATCHED_LIMIT`` of the
    anomalies), where the setup has a label rule the concept-route shares, and the
    counts used. For DiffEdit also the
    plain edit psi(x)'s AuROC, mean score, MSE and SSIM, and seconds per image for psi and for G'.
    ``progress(done, total)``: after each stage (psi for DiffEdit, each concept at alpha = 0, each
    calibration row).
    """
    total, done = (b.backend == "diffedit") + b.concepts * (1 + 2 * len(CALIBRATION_ALPHAS)), [0]

    def step() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    limit = limit or (500 if b.backend == "diffedit" else 2000)
    data = semantic.load_setup(b.setup, data_path or b.data_path)
    rng = np.random.default_rng(seed)
    anomalies = data.anomalies_test[rng.permutation(len(data.anomalies_test))[:limit]]
    normal = data.normal_test[rng.permutation(len(data.normal_test))[:limit]]
    s_normal, s_anom = score_images(b.detector, normal), score_images(b.detector, anomalies)
    x = to_float(anomalies)
    extra: dict = {}
    if b.backend == "diffedit":
        t0 = time.perf_counter()
        _, masks, edits = psi(b, anomalies)
        s_edit = score_images(b.detector, edits)
        step()
        extra = {"seconds_psi_per_image": round((time.perf_counter() - t0) / max(1, len(anomalies)), 4),
                 "plain_edit_auroc_normal_vs_edit": round(cm.auroc_normal_vs_ce(s_normal, s_edit), 4),
                 "plain_edit_mean_score": round(float(s_edit.mean()), 4),
                 "plain_edit_mask_fraction": round(float(masks.mean()), 4),
                 "plain_edit_mse": round(float(cm.mse(x, edits).mean()), 5),
                 "plain_edit_ssim": round(float(cm.ssim(x[:500], edits[:500]).mean()), 4)}
    per_k, ces, logits, ks = {}, [], [], []
    t0 = time.perf_counter()
    for k in range(b.concepts):
        ce = generate(b, anomalies, 0.0, k)
        s_ce = score_images(b.detector, ce)
        per_k[f"auroc_k{k + 1}"] = round(cm.auroc_normal_vs_ce(s_normal, s_ce), 4)
        per_k[f"mean_score_ce_k{k + 1}"] = round(float(s_ce.mean()), 4)
        ces.append(ce)
        logits.append(concept_logits(b, anomalies, ce))
        ks.append(np.full(len(ce), k))
        step()
    all_ce = np.concatenate(ces)
    seconds_g = (time.perf_counter() - t0) / max(1, len(all_ce))  # includes scoring and R
    s_all = score_images(b.detector, all_ce)
    out = {"backend": b.backend, "n_anomalies": len(anomalies), "n_normal": len(normal),
           "detector_auroc_normal_vs_anomalies": round(cm.auroc_normal_vs_ce(s_normal, s_anom), 4),
           "auroc_normal_vs_ce": round(cm.auroc_normal_vs_ce(s_normal, s_all), 4),
           **per_k,
           "mean_score_anomalies": round(float(s_anom.mean()), 4),
           "mean_score_ce": round(float(s_all.mean()), 4),
           "concept_accuracy": round(cm.concept_accuracy(np.concatenate(logits), np.concatenate(ks)), 4),
           "mse": round(float(np.mean([cm.mse(x, c).mean() for c in ces])), 5),
           "ssim": round(float(np.mean([cm.ssim(x[:500], c[:500]).mean() for c in ces])), 4),
           "seconds_per_ce_batched": round(seconds_g, 5),
           "fid_n": None, "feature_extractor": None, **extra}
    if b.features is not None:
        f_norm, f_anom = features(b.features, normal), features(b.features, anomalies)
        f_ce = features(b.features, all_ce[rng.permutation(len(all_ce))[:limit]])
        out["fid_n"] = round(cm.fid_normalised(f_ce, f_norm, f_anom), 1)
        out["fid_ce_normal"] = round(cm.fid(f_ce, f_norm), 3)
        out["fid_anomalies_normal"] = round(cm.fid(f_anom, f_norm), 3)
        out["feature_extractor"] = b.features_record.name
        out.update(judged_normal(b, normal, anomalies, ces))
    out.update(calibration(b, anomalies, progress=step))
    out.update(calibration(b, anomalies[:MATCHED_LIMIT], progress=step, matched=True),
               n_matched=min(MATCHED_LIMIT, len(anomalies)))
    return out


def judged_normal(b: Bundle, normal: np.ndarray, anomalies: np.ndarray, ces: list[np.ndarray]) -> dict:
    """How often an independent classifier (the setup's feature extractor, trained on the dataset's
    own labels, never on the detector) puts an image in a normal class: normal test images,
    anomalies, and each concept's CEs (alpha = 0), overall and per way of being normal
    (e.g. "red" and "digit 1" on coloured MNIST), and the exclusive route shares per concept
    (``route_shares_ce``: "red only", "digit 1 only", "both", "neither"). A proxy for "a person
    recognises it as normal"."""
    def routes(images: np.ndarray) -> dict[str, np.ndarray]:
        return semantic.normal_routes(b.setup, predict(b.features, images))

    def rates(r: dict[str, np.ndarray]) -> dict[str, float]:
        anyroute = np.logical_or.reduce(list(r.values()))
        return {"normal": round(float(anyroute.mean()), 4),
                **{name: round(float(v.mean()), 4) for name, v in r.items()}}

    try:
        ce_routes = [routes(ce) for ce in ces]
        per_k = [rates(r) for r in ce_routes]
        out = {"judged_normal_normal_test": rates(routes(normal))["normal"],
               "judged_normal_anomalies": rates(routes(anomalies))["normal"],
               "judged_normal_ce": round(float(np.mean([r["normal"] for r in per_k])), 4),
               "judged_routes_ce": {f"k{k + 1}": r for k, r in enumerate(per_k)},
               "route_shares_ce": {f"k{k + 1}": {n: round(v, 4) for n, v in cm.route_shares(r).items()}
                                   for k, r in enumerate(ce_routes)}}
    except DataError:  # a setup without a label-based rule: no judge
        return {}
    return out


def evaluate_folder(folder: str | Path, data_path: str | None = None, limit: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> Path:
    """Measure a generator folder and write the metrics into its config.json and card."""
    b = load_bundle(folder)
    metrics = evaluate(b, data_path, limit, progress=progress)
    write_metrics(folder, metrics)
    write_card(folder)
    return Path(folder)
