"""The paper's ten-class MNIST protocol (Liznerski et al., Tables 1 and 2 average over the ten
one-vs-rest setups): one detector and one counterfactual generator per normal digit and detector
kind, planned as chains of ``python -m xad train`` commands, run a few at a time in the background
(resumable: a chain skips every model whose folder already holds a finished one), and summarised
as means +- std over the classes beside the paper's numbers.

Folders: ``<root>/detector/mnist-<d>-<kind>`` and ``<root>/cegan/mnist-<d>-<kind>``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xad.cards import PAPER
from xad.weights import ModelRecord, WeightsError, read_record

KINDS = ("bce", "hsc")
DIGITS = tuple(range(10))


@dataclass(frozen=True)
class Job:
    """One ``python -m xad`` command and the weights folder it writes."""

    name: str
    out: Path
    argv: list[str]

    def done(self) -> bool:
        """A finished model is there: a readable record with measured metrics."""
        try:
            return bool(read_record(self.out).metrics)
        except (WeightsError, OSError, ValueError):
            return False


def plan(root: Path, kinds: tuple[str, ...] = KINDS, digits: tuple[int, ...] = DIGITS, preset: str = "cpu",
         detector_steps: int | None = None, generator_steps: int | None = None,
         data: str | None = None) -> list[list[Job]]:
    """One chain per (digit, kind): the detector, then the generator against it. Each command is
    the one a user would type (recorded in the card)."""
    chains = []
    for d in digits:
        for kind in kinds:
            det, gen = root / "detector" / f"mnist-{d}-{kind}", root / "cegan" / f"mnist-{d}-{kind}"
            extra = [] if data is None else ["--data", data]
            dargv = ["train", "detector", "--setup", f"mnist:{d}", "--kind", kind, "--preset", preset,
                     "--out", str(det), *extra] + ([] if detector_steps is None else ["--steps", str(detector_steps)])
            gargv = ["train", "cegan", "--setup", f"mnist:{d}", "--detector", str(det), "--concepts", "2",
                     "--preset", preset, "--out", str(gen), *extra] + (
                [] if generator_steps is None else ["--steps", str(generator_steps)])
            chains.append([Job(f"detector mnist-{d}-{kind}", det, dargv), Job(f"cegan mnist-{d}-{kind}", gen, gargv)])
    return chains


def run(chains: list[list[Job]], jobs: int = 2, log_dir: Path | None = None,
        report: Callable[[str], None] = print) -> list[str]:
    """Run the chains, at most ``jobs`` commands at once, each on one CPU thread, skipping
    finished models; a failed step stops its chain (the others go on). Returns the failures."""
    pending = [[j for j in chain if not j.done()] for chain in chains]
    for chain, full in zip(pending, chains):
        for j in full:
            if j not in chain:
                report(f"skip {j.name}: {j.out} holds a finished model")
    pending = [c for c in pending if c]
    running: list[tuple[subprocess.Popen, Job, list[Job], object]] = []
    failures: list[str] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        while pending or running:
            while pending and len(running) < jobs:
                chain = pending.pop(0)
                job = chain[0]
                log = open(log_dir / f"{job.out.parent.name}-{job.out.name}.log", "w") if log_dir else subprocess.DEVNULL  # noqa: SIM115
                overwrite = ["--overwrite"] if (job.out / "config.json").exists() else []  # an unfinished one
                proc = subprocess.Popen([sys.executable, "-m", "xad", *job.argv, *overwrite], env=env,
                                        stdout=log, stderr=subprocess.STDOUT)
                report(f"start {job.name}")
                running.append((proc, job, chain, log))
            time.sleep(0.5)
            for entry in list(running):
                proc, job, chain, log = entry
                if proc.poll() is None:
                    continue
                running.remove(entry)
                if log is not subprocess.DEVNULL:
                    log.close()
                if proc.returncode != 0:
                    failures.append(f"{job.name} (exit {proc.returncode})")
                    report(f"FAILED {job.name} (exit {proc.returncode}); its chain stops")
                    continue
                report(f"done {job.name}")
                if chain[1:]:
                    pending.insert(0, chain[1:])
    finally:  # interrupted: no orphans left training
        for proc, *_ in running:
            proc.terminate()
    return failures


def summary(root: Path, kinds: tuple[str, ...] = KINDS) -> tuple[list[dict], list[dict]]:
    """(means, per class): AuROC normal vs CE and FID_N over the generators found under
    ``root/cegan/mnist-<d>-<kind>``, mean +- std beside the paper's Tables 1 and 2."""
    means, per_class = [], []
    for kind in kinds:
        found = []
        for d in DIGITS:
            try:
                m = read_record(root / "cegan" / f"mnist-{d}-{kind}").metrics
            except (WeightsError, OSError, ValueError):
                continue
            if m.get("auroc_normal_vs_ce") is None:
                continue
            found.append(m)
            per_class.append({"detector": kind.upper(), "normal digit": d,
                              "AuROC normal vs CE (%)": round(100 * m["auroc_normal_vs_ce"], 1),
                              "FID_N (%)": m.get("fid_n"), "target error": m.get("target_error"),
                              "detector AuROC (%)": round(100 * m.get("detector_auroc_normal_vs_anomalies", np.nan), 1)})
        if not found:
            continue
        auroc = 100 * np.array([m["auroc_normal_vs_ce"] for m in found])
        fid = np.array([m["fid_n"] for m in found if m.get("fid_n") is not None], float)
        paper = PAPER["mnist"][kind]
        means.append({"detector": kind.upper(), "classes": len(found),
                      "AuROC normal vs CE (%)": f"{auroc.mean():.1f} ± {auroc.std():.1f}", "paper AuROC": paper[0],
                      "FID_N (%)": f"{fid.mean():.0f} ± {fid.std():.0f}" if len(fid) else "", "paper FID_N": paper[1]})
    return means, per_class


README_TAG = "cegan-calibration"


def _records(root: Path, pattern: str) -> list:
    """The readable model records whose config.json matches ``root/pattern`` (others skipped)."""
    found = []
    for cfg in sorted(root.glob(pattern)):
        try:
            found.append(read_record(cfg.parent))
        except (WeightsError, OSError, ValueError):
            continue
    return found


def shipped_table(root: Path) -> str:
    """Markdown: every GAN-version generator under ``root/cegan`` with its calibration (target
    error, the mean score reached at alpha = 0, 0.5 and 1), its AuROC normal vs CE at alpha = 0,
    and the majority route of each concept where the setup has routes; then the ten-class means."""
    from xad.cards import markdown_table
    from xad.cards_cegan import objective_extensions

    rows = []
    for r in _records(root, "cegan/*/config.json"):
        m = r.metrics
        if r.meta.get("backend") == "diffedit" or "target_error" not in m:
            continue
        reached = {c["alpha"]: c["mean_score"] for c in m["calibration"] if c["k"] == 1}
        routes = m.get("route_shares_ce") or {}
        majority = "; ".join(f"{k}: {max(v, key=v.get)} {100 * max(v.values()):.0f} %" for k, v in routes.items())
        matched = m.get("target_error_matched")
        rows.append({"generator": r.name, "target error": f"{m['target_error']:.3f}",
                     "target error, alpha matched (ext.)": "" if matched is None else f"{matched:.3f}",
                     "k = 1 mean score at alpha 0 / 0.5 / 1": " / ".join(f"{reached.get(a, np.nan):.2f}"
                                                                          for a in (0.0, 0.5, 1.0)),
                     "AuROC normal vs CE, alpha 0 (%)": round(100 * m["auroc_normal_vs_ce"], 1),
                     "majority route per concept": majority,
                     "objective": ", ".join(objective_extensions(r.config)) or "the paper's"})
    text = markdown_table(rows) if rows else "(no GAN generator with a calibration curve)"
    means, _ = summary(root)
    if means:
        text += "\n\nTen MNIST classes (the paper's Tables 1 and 2 average them):\n\n" + markdown_table(means)
    return text + ("\n\n\"alpha matched\": xad's extension, G's alpha input searched per image until the detector "
                   "scores the CE at alpha (on the first test anomalies of each card; not the paper's G).\n\n"
                   "From the shipped cards (`python -m xad evaluate cegan --weights <folder>`); "
                   "regenerate with `python -m xad evaluate cegan --readme README.md`.")


VS_TAG = "cegan-vs-diffedit"


def gan_vs_diffedit(d: ModelRecord, metrics: dict | None = None,
                    roots: list[str | Path] | None = None) -> tuple[list[dict], bool] | None:
    """The side-by-side rows of a DiffEdit generator ``d`` (its ``metrics``, default its card's) and
    its GAN counterpart (same setup, same detector) measured on as many test anomalies where a
    ``metrics-n<N>.json`` is stored; and whether both columns have the same n. None without one."""
    from xad.cards import side_by_side
    from xad.counterfactual.bundle import gan_counterpart, stored_evaluation

    metrics = d.metrics if metrics is None else metrics
    gan = gan_counterpart(d, roots)
    if gan is None:
        return None
    gan_metrics = stored_evaluation(gan, metrics.get("n_anomalies")) or gan.metrics
    rows = side_by_side({f"GAN (`{gan.name}`)": (gan_metrics, gan), f"DiffEdit (`{d.name}`)": (metrics, d)})
    return rows, gan_metrics.get("n_anomalies") == metrics.get("n_anomalies")


def gan_vs_diffedit_markdown(root: Path) -> str:
    """Markdown: each shipped DiffEdit generator beside its GAN counterpart (the page's table)."""
    from xad.cards import markdown_table

    parts = []
    for r in _records(root, "cegan/*/config.json"):
        if r.meta.get("backend") != "diffedit" or not r.metrics:
            continue
        found = gan_vs_diffedit(r, roots=[root])
        if found is not None:
            rows, same = found
            note = "the same test images" if same else "n differs: see the first row"
            parts.append(f"{markdown_table(rows)}\n\n({note}; the GAN column is its card, or its "
                         f"`metrics-n<N>.json` where the card's n differs.)")
    body = "\n\n".join(parts) or "(no DiffEdit generator with a GAN counterpart)"
    return body + ("\n\nFrom the shipped cards; regenerate with `python -m xad evaluate cegan --readme README.md`.")


#: the paper's Fig. 10: AuROC (%) normal vs all anomalies of coloured MNIST
PAPER_BIAS = {"supervised (blue anomalies only)": 75.0, "BCE-OE": 98.0}
BIAS_COMMAND = ("python -m xad train detector --setup cmnist:one+red --kind bce --oe blue-anomalies --seed 1 "
                "--out weights/detector/cmnist-one-red-supervised-blue")


def bias_table(root: Path) -> list[dict]:
    """The classification-bias experiment (the paper's Fig. 10): every coloured-MNIST detector
    under ``root/detector``, how it was trained, and its AuROC normal vs all / blue / green
    anomalies, beside the paper's numbers for a supervised classifier and BCE-OE."""
    rows = []
    for r in _records(root, "detector/cmnist-*/config.json"):
        m, s = r.metrics, r.meta.get("train_settings", {})
        supervised = s.get("oe") == "blue-anomalies"
        kind = "supervised (blue anomalies only)" if supervised else f"{r.config['kind'].upper()}-OE"
        pct = lambda v: None if v is None else round(100 * v, 1)  # noqa: E731
        rows.append({"detector": r.name, "trained as": kind, "AuROC all anomalies (%)": pct(m.get("test_auroc")),
                     "blue only (%)": pct(m.get("test_auroc_blue")), "green only (%)": pct(m.get("test_auroc_green")),
                     "paper, all anomalies (%)": PAPER_BIAS.get(kind)})
    return rows
