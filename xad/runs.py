"""The run registry: finished audit folders (``results.csv``, ``maps.npz``, ``run.json``), read
safely, listed, compared, and given a chosen threshold."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from xad import CACHE_ROOT, REPO_ROOT
from xad.data.transforms import DataError
from xad.metrics.detection import predicted_anomalous
from xad.runfolder import atomic_write

#: Where finished runs are cached (``$XAD_CACHE/audits``, default ``runs/audits`` in the checkout).
AUDIT_CACHE = CACHE_ROOT / "audits"
#: Shipped audits live beside their weights: ``weights/<family>/<name>/audits/<run>/``.
SHIPPED_AUDITS = REPO_ROOT / "weights"

#: Mean max-IoU over defective test images in Rashid et al. (recomputed from their CSVs).
PAPER_MEAN_IOU = {"hazelnut": {"S1": 0.357, "S2": 0.517, "S3": 0.443},
                  "screw": {"S1": 0.215, "S2": 0.630, "S3": 0.329}}


def find_run(key: str, roots: list[Path]) -> Path | None:
    """A finished run with this key under any of ``roots`` (``<root>/*-<key>/results.csv``)."""
    for root in roots:
        for run in sorted(Path(root).glob(f"*-{key}")):
            if (run / "results.csv").is_file() and (run / "maps.npz").is_file():
                return run
    return None


def run_key(run: Path) -> str | None:
    try:
        return json.loads((run / "run.json").read_text()).get("key")
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class AuditRun:
    """A finished run folder: results (documented in COLUMNS), maps by name (N, H, W) or
    reconstruction (N, H, W, 3) uint8, and run.json as ``info``."""

    path: Path
    results: pd.DataFrame
    maps: dict[str, np.ndarray]
    info: dict

    def index(self, sample_id: str) -> int:
        return int(np.flatnonzero(self.maps["ids"] == sample_id)[0])


def load_run(path: str | Path) -> AuditRun:
    """Open a run folder written by :func:`run_audit` (safe: npz without pickles)."""
    path = Path(path)
    for name in ("results.csv", "maps.npz", "run.json"):
        if not (path / name).is_file():
            raise DataError(f"{path}: not an audit run folder (no {name})")
    try:
        with np.load(path / "maps.npz", allow_pickle=False) as z:
            maps = {k: z[k] for k in z.files}
    except ValueError as exc:  # object arrays: refused, never unpickled
        raise DataError(f"{path / 'maps.npz'}: holds pickled objects; xad reads plain arrays only") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{path / 'maps.npz'}: damaged or truncated ({exc.__class__.__name__})") from exc
    try:
        results = pd.read_csv(path / "results.csv")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path / 'results.csv'}: not a readable table ({exc.__class__.__name__})") from exc
    if missing := [c for c in ("id", "label", "score", "tau") if c not in results.columns]:
        raise DataError(f"{path / 'results.csv'}: not an audit table (no column {', '.join(missing)})")
    try:
        info = json.loads((path / "run.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path / 'run.json'}: not valid JSON") from exc
    if "ids" not in maps or len(maps["ids"]) != len(results):
        raise DataError(f"{path}: maps.npz and results.csv describe different samples")
    return AuditRun(path, results, maps, info)


EXPLAINERS = {"S1": "LIME", "S2": "LIME", "S3": "SHAP", "S4": "ShapBPT (authors' later method)"}


def localisation_table(results: pd.DataFrame, setups: tuple[str, ...]) -> pd.DataFrame:
    """Per setup and for the detector's own map m: means over anomalous samples with a mask of
    max-IoU, rank accuracy, mass accuracy and the pointing-game hit rate (m also pixel AUROC and
    AUPRO at FPR 0.3). Does the explanation point at the defect more than the map does?"""
    bad = results[results["label"] == "anomalous"]
    names = {"iou": "max-IoU", "rank": "rank accuracy", "mass": "mass accuracy",
             "pointing": "pointing game", "pixel_auroc": "pixel AUROC", "aupro": "AUPRO@0.3"}
    rows = []
    for key, explainer in [*((s, EXPLAINERS[s]) for s in setups), ("map", "the detector's anomaly map")]:
        row = {"map": "m" if key == "map" else key, "explainer": explainer}
        for k, label in names.items():
            col = bad.get(f"{k}_{key}")
            v = np.nan if col is None else pd.to_numeric(col, errors="coerce").mean()
            row[label] = None if pd.isna(v) else round(float(v), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def mean_iou_table(results: pd.DataFrame, setups: tuple[str, ...]) -> pd.DataFrame:
    """Mean max-IoU per setup over anomalous samples with a mask, beside the paper's values."""
    bad = results[results["label"] == "anomalous"]
    rows = []
    for s in setups:
        j = bad[f"iou_{s}"].dropna()
        rows.append({"setup": s, "explainer": EXPLAINERS[s],
                     "mean max-IoU (this run)": round(float(j.mean()), 3) if len(j) else None,
                     "samples": len(j), "median seconds": round(float(results[f"seconds_{s}"].median()), 2),
                     **{f"paper, {c}": v.get(s) for c, v in PAPER_MEAN_IOU.items()}})
    return pd.DataFrame(rows)


def run_folders(extra: list[str | Path] | None = None) -> list[Path]:
    """Every finished run folder in the cache, beside the shipped weights, and under ``extra``
    (a run folder itself or a folder holding run folders), each once, in name order."""
    found: list[Path] = []
    roots = [AUDIT_CACHE, *sorted(SHIPPED_AUDITS.glob("*/*/audits")), *[Path(e) for e in extra or []]]
    for root in roots:
        candidates = [root] if (root / "run.json").is_file() else sorted(root.glob("*/")) if root.is_dir() else []
        found += [c.resolve() for c in candidates if (c / "results.csv").is_file() and (c / "run.json").is_file()]
    return list(dict.fromkeys(found))


def summary_row(run: AuditRun) -> dict:
    """One run as a row of the runs table (parameters and headline numbers)."""
    p, r = run.info.get("params", {}), run.results
    setups = tuple(p.get("setups", ()))
    bad = r[r["label"] == "anomalous"]
    row = {"run": run.path.name, "date": run.info.get("created"), "dataset": run.info.get("data"),
           "category": run.info.get("category"), "detector": run.info.get("weights"),
           "setups": ",".join(setups), "n": p.get("samples"), "k": p.get("segments"), "seed": p.get("seed"),
           "backend": p.get("backend", "torch"), "samples": len(r), "auroc": run.info.get("auroc"),
           "accuracy": run.info.get("accuracy"), "tau": float(r["tau"].iloc[0]) if len(r) else None}
    for s in setups:
        j = bad[f"iou_{s}"].dropna() if f"iou_{s}" in bad else pd.Series(dtype=float)
        row[f"mean max-IoU {s}"] = round(float(j.mean()), 4) if len(j) else None
    row["seconds"] = round(float(r.filter(regex="^seconds_").sum().sum()), 1)
    row["path"] = str(run.path)
    return row


def list_runs(extra: list[str | Path] | None = None) -> tuple[pd.DataFrame, list[str]]:
    """The runs table (one :func:`summary_row` per readable run) and a message per unreadable one."""
    rows, problems = [], []
    for folder in run_folders(extra):
        try:
            rows.append(summary_row(load_run(folder)))
        except DataError as exc:
            problems.append(str(exc))
    table = pd.DataFrame(rows)
    return (table.sort_values("date", ascending=False, kind="stable").reset_index(drop=True)
            if len(table) else table), problems


@dataclass(frozen=True)
class Comparison:
    """Run B against run A over their common samples.

    setups: one row per setup both ran (n paired anomalous samples, mean max-IoU of A and B over
    them, B - A, the Wilcoxon signed-rank p-value and the matched-pairs rank-biserial effect size);
    verdicts: samples whose prediction changed; iou_changes: samples whose max-IoU moved by more
    than ``IOU_CHANGE`` in some setup."""

    a: Path
    b: Path
    setups: pd.DataFrame
    verdicts: pd.DataFrame
    iou_changes: pd.DataFrame

    def to_json(self) -> dict:
        return {"a": str(self.a), "b": str(self.b), "setups": self.setups.to_dict("records"),
                "verdicts_changed": self.verdicts.to_dict("records"),
                "iou_changes": self.iou_changes.to_dict("records")}


IOU_CHANGE = 0.2


def paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(p-value, rank-biserial r) of the Wilcoxon signed-rank test of b - a. r = (W+ - W-) /
    (W+ + W-) over the non-zero differences: +1 when every pair went up. No non-zero difference:
    (1.0, 0.0)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    d = d[d != 0]
    if len(d) == 0:
        return 1.0, 0.0
    ranks = pd.Series(np.abs(d)).rank().to_numpy()
    w_plus, w_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    p = float(wilcoxon(d, zero_method="wilcox").pvalue)
    return p, float((w_plus - w_minus) / (w_plus + w_minus))


def compare(a: str | Path, b: str | Path) -> Comparison:
    """Compare two finished runs over the samples (ids) they share."""
    ra, rb = load_run(a), load_run(b)
    both = ra.results.merge(rb.results, on="id", suffixes=("_a", "_b"))
    if both.empty:
        raise DataError(f"{ra.path} and {rb.path} share no sample: nothing to compare")
    setups = [s for s in ra.info["params"]["setups"] if s in rb.info["params"]["setups"]]
    rows = []
    for s in setups:
        pair = both[["id", f"iou_{s}_a", f"iou_{s}_b"]].dropna()
        p, r = paired_test(pair[f"iou_{s}_a"], pair[f"iou_{s}_b"])
        ma, mb = float(pair[f"iou_{s}_a"].mean()), float(pair[f"iou_{s}_b"].mean())
        rows.append({"setup": s, "n": len(pair), "mean max-IoU A": round(ma, 4), "mean max-IoU B": round(mb, 4),
                     "B - A": round(mb - ma, 4), "wilcoxon p": p, "effect size r": round(r, 4)})
    changed = both[both["predicted_a"] != both["predicted_b"]]
    verdicts = pd.DataFrame({"id": changed["id"], "label": changed["label_a"],
                             "A": changed["predicted_a"], "B": changed["predicted_b"],
                             "score A": changed["score_a"], "score B": changed["score_b"]})
    moves = []
    for s in setups:
        delta = both[f"iou_{s}_b"] - both[f"iou_{s}_a"]
        for i in np.flatnonzero(np.abs(delta.fillna(0).to_numpy()) > IOU_CHANGE):
            moves.append({"id": both["id"].iloc[i], "setup": s, "IoU A": both[f"iou_{s}_a"].iloc[i],
                          "IoU B": both[f"iou_{s}_b"].iloc[i], "change": "up" if delta.iloc[i] > 0 else "down"})
    return Comparison(ra.path, rb.path, pd.DataFrame(rows), verdicts.reset_index(drop=True),
                      pd.DataFrame(moves, columns=["id", "setup", "IoU A", "IoU B", "change"]))


def apply_threshold(path: str | Path, tau: float) -> AuditRun:
    """Make ``tau`` the run's threshold: results.csv's ``tau``, ``predicted`` and ``correct``
    recomputed, run.json's ``tau`` replaced; tau* (``tau_star``) and every earlier choice kept
    (``tau_history``). Returns the run as re-read."""
    run = load_run(path)
    info, r = dict(run.info), run.results.copy()
    info.setdefault("tau_star", info.get("tau"))
    info["tau_history"] = [*info.get("tau_history", []), info.get("tau")]
    info["tau"] = float(tau)
    pred = predicted_anomalous(r["score"].to_numpy(float), tau)
    r["tau"] = float(tau)
    r["predicted"] = np.where(pred, "anomalous", "good")
    r["correct"] = pred == (r["label"] == "anomalous").to_numpy()
    atomic_write(run.path / "results.csv", lambda f: r.to_csv(f, index=False))
    atomic_write(run.path / "run.json", lambda f: f.write((json.dumps(info, indent=2) + "\n").encode()))
    return load_run(run.path)


def map_scale(run: AuditRun, mode: str) -> float | None:
    """The top of the colour scale for every anomaly map of a run: None ("per image": each map's
    own maximum), "audit" (the largest value over all maps) or "good-p99" (the 99th percentile of
    the good images' map pixels, so a normal-looking image stays dark)."""
    maps = run.maps["anomaly_map"].astype(np.float32)
    if mode == "per image":
        return None
    if mode == "audit":
        return float(maps.max()) or 1.0
    if mode == "good-p99":
        good = (run.results["label"] == "good").to_numpy()
        return float(np.percentile(maps[good] if good.any() else maps, 99)) or 1.0
    raise ValueError(f"mode must be 'per image', 'audit' or 'good-p99', got {mode!r}")


def sample_view(run: AuditRun, sample_id: str) -> dict:
    """What a page needs to draw one sample of a run: the test image and mask (from the run's
    dataset, at the maps' size), reconstruction, anomaly map and the attribution map per setup."""
    from xad import resolve
    from xad.data.mvtec import MVTecDataset

    i = run.index(sample_id)
    ds = MVTecDataset(resolve(run.info["data"]).parent, run.info["category"])
    ref = next((r for r in ds.refs("test") if r.id == sample_id), None)
    if ref is None:
        raise DataError(f"{ds.folder}: sample {sample_id} of run {run.path.name} is not in the test split any more")
    size = run.maps["reconstruction"].shape[1]
    p = run.info.get("params", {})
    sample = ds.load(ref, size, p.get("resample", "nearest"), p.get("resize", "stretch"))
    setups = tuple(run.info.get("params", {}).get("setups", ()))
    return {"sample": sample, "reconstruction": run.maps["reconstruction"][i],
            "anomaly_map": run.maps["anomaly_map"][i].astype(np.float32),
            "maps": {s: run.maps[s][i] for s in setups if s in run.maps}, "row": run.results.iloc[i]}


README_TAG = "vaegan-shipped"


def audit_summaries(folder: Path, name: str) -> list[dict]:
    """One row per audit shipped beside a VAE-GAN weights folder (``<folder>/audits/*/run.json``):
    n, k, the anomalies it covers, the engine revision, the mean max-IoU per setup, the detector's
    own map m (max-IoU / pixel AUROC / AUPRO) and the median seconds per sample. ``name`` prefixes
    the audit column (the README's table names the detector, a card its own folder)."""
    rows = []
    for run_json in sorted((Path(folder) / "audits").glob("*/run.json")):
        try:
            run = load_run(run_json.parent)
        except DataError:
            continue
        p = run.info.get("params", {})
        iou = mean_iou_table(run.results, tuple(p.get("setups", ())))
        loc = localisation_table(run.results, tuple(p.get("setups", ())))
        m_row = loc[loc["map"] == "m"].to_dict("records")
        vals = [m_row[0].get(c) if m_row else None for c in ("max-IoU", "pixel AUROC", "AUPRO@0.3")]
        own_map = "" if all(v is None or pd.isna(v) for v in vals) else \
            " / ".join("" if v is None or pd.isna(v) else f"{v:.3f}" for v in vals)
        rows.append({"audit": f"{name}/audits/{run_json.parent.name}".lstrip("/"), "n": p.get("samples"),
                     "k": p.get("segments"), "anomalies": int(iou["samples"].max()) if len(iou) else 0,
                     "engine revision": run.info.get("engine_revision", "before 3"),
                     **{s: dict(zip(iou["setup"], iou["mean max-IoU (this run)"])).get(s) for s in EXPLAINERS},
                     "map m: max-IoU / pixel AUROC / AUPRO": own_map,
                     "seconds per sample": round(float(iou["median seconds"].sum()), 1)})
    return rows


def audit_command(run_json: Path) -> str:
    """The ``xad audit`` command line that made a run folder, from its run.json (the embedded data
    by name, other data by the folder holding the category)."""
    info = json.loads(Path(run_json).read_text())
    p = info.get("params", {})
    data = Path(info.get("data", "")).parent
    data_arg = "embedded" if data.as_posix() == "data/xad_industrial" else data.as_posix()
    limit = f" --limit {p['limit']}" if p.get("limit") else ""
    return (f"python -m xad audit --data {data_arg} --category {info.get('category')} --weights {info.get('weights')} "
            f"--setups {','.join(p.get('setups', []))} --samples {p.get('samples')} --segments {p.get('segments')}{limit}")


def paper_iou_line() -> str:
    """The paper's mean max-IoU per category and setup, as one sentence's tail."""
    return "; ".join(f"{c} " + " / ".join(f"{s} {v}" for s, v in setups.items()) for c, setups in PAPER_MEAN_IOU.items())


def _bf16_cell(meta: dict) -> str:
    """The card's bf16 check in a word and its two numbers (S1 rank correlation min, S3 median)."""
    a = meta.get("bf16_agreement")
    if not a:
        return "not measured"
    word = "agree: bf16 on native-bf16 CPUs" if a["agrees"] else "differ: fp32 everywhere"
    return f"{word} (S1 {a['s1_rho_min']:.3f}, S3 {a['s3_rho_median']:.3f})"


def shipped_table(weights_root: Path = SHIPPED_AUDITS) -> str:
    """Markdown for the README: every shipped VAE-GAN with its test AUROC and training budget, and
    the mean max-IoU per setup of each audit shipped beside it (with n, k, the samples it covers and
    the engine that made it), beside the paper's values."""
    from xad.markdown import markdown_table
    from xad.weights import WeightsError, read_record

    models, audits = [], []
    for cfg in sorted((weights_root / "vaegan").glob("*/config.json")):
        try:
            r = read_record(cfg.parent)
        except (WeightsError, OSError, ValueError):
            continue
        m, meta = r.metrics, r.meta
        models.append({"detector": r.name, "category": meta.get("category"),
                       "test AUROC": m.get("test_auroc"), "accuracy at tau*": m.get("accuracy_at_tau_star"),
                       "steps (kept)": f"{meta.get('steps_done')} ({meta.get('kept_step')})", "minutes": round(meta.get("train_seconds", 0) / 60, 1),
                       "threads": meta.get("threads"), "bf16 explanations": _bf16_cell(meta)})
        audits += audit_summaries(cfg.parent, r.name)
    text = markdown_table(models) if models else "(no VAE-GAN shipped)"
    if audits:
        paper = paper_iou_line()
        text += ("\n\nMean max-IoU over the anomalous samples of each shipped audit (S4 ShapBPT is the authors' "
                 f"later method, not in the 2024 paper); the paper: {paper}.\n\n" + markdown_table(audits))
    return text + ("\n\nFrom the shipped cards and run folders; regenerate with "
                   "`python -m xad evaluate vaegan --readme README.md`.")
