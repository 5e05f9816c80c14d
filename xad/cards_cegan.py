"""The counterfactual generator card's objective line and its calibration and concept-route
sections (used by :func:`xad.cards.cegan_card` and the counterfactual page), from the metrics
that ``evaluate cegan`` stores."""

from __future__ import annotations

from typing import Any

from xad.markdown import markdown_table


def _pct(v: float | None) -> float | None:
    return None if v is None else round(100 * v, 1)


#: the paper's objective; any other value of these config fields is one of xad's extensions
PAPER_OBJECTIVE = {"alpha_sampling": "uniform", "generator_loss": "hinge", "cycle": "full", "colour_mixing": False,
                   "lambda_gan": 1.0}
EXTENSION_NAMES = {"alpha_sampling": "alpha sampling", "generator_loss": "L_G", "cycle": "L_cyc",
                   "colour_mixing": "colour mixing", "lambda_gan": "lambda_gan"}


def objective_extensions(config: dict[str, Any]) -> list[str]:
    """The config fields where a generator departs from the paper's objective, as "name value"
    (a config from before a field existed reads as the behaviour it was trained with)."""
    old = {"alpha_sampling": "extremes", "generator_loss": "linear", "cycle": "full", "colour_mixing": False}
    out = []
    for key, paper in PAPER_OBJECTIVE.items():
        value = config.get(key, old.get(key, paper))
        if value != paper:
            out.append(f"{EXTENSION_NAMES[key]} `{value}`")
    return out


def calibration_table(m: dict[str, Any], key: str = "calibration") -> list[dict[str, Any]]:
    """Rows (alpha, per concept the score's mean ± std and the target error) from the stored
    calibration curve ``key`` ("calibration", or "calibration_matched" with G's mean alpha input)."""
    rows: dict[float, dict[str, Any]] = {}
    for c in m.get(key) or []:
        row = rows.setdefault(c["alpha"], {"alpha": f"{c['alpha']:.1f}"})
        row[f"k = {c['k']}: score mean ± std"] = f"{c['mean_score']:.3f} ± {c['std_score']:.3f}"
        row[f"k = {c['k']}: target error"] = f"{c['target_error']:.3f}"
        if "mean_alpha_input" in c:
            row[f"k = {c['k']}: G's alpha input"] = f"{c['mean_alpha_input']:.3f}"
    return list(rows.values())


def matched_section(m: dict[str, Any]) -> str:
    """The card's "alpha matched" paragraph and table; "" when not measured."""
    if not m.get("calibration_matched"):
        return ""
    return f"""
### Extension: alpha matched (xad, not the paper)
G's alpha input searched per image (bisection, 12 steps) until the detector scores the CE at the
target: what the page's "match alpha" switch shows. On the first {m.get('n_matched')} test anomalies the
target error is **{m['target_error_matched']:.3f}** (G as trained, above: {m['target_error']:.3f}).
Where it stays high, G does not reach the target for any input (e.g. no CE scores as high as alpha).

{markdown_table(calibration_table(m, "calibration_matched"))}
"""


def route_table(m: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows concept | share (%) of its CEs per exclusive route, from ``route_shares_ce``."""
    return [{"concept": k.replace("k", "k = "), **{name: _pct(v) for name, v in shares.items()}}
            for k, shares in (m.get("route_shares_ce") or {}).items()]


def calibration_section(m: dict[str, Any]) -> str:
    if not m.get("calibration"):
        return ""
    per_k = ", ".join(f"k = {k[len('target_error_k'):]} {v:.3f}" for k, v in m.items()
                      if k.startswith("target_error_k"))
    text = f"""
## Calibration: does the detector give G(x, alpha, k) the score alpha?
The detector's score of the CEs of the {m.get('n_anomalies')} test anomalies for each target alpha
(ideal: mean = alpha, target error 0). **Target error** mean abs(phi(G(x, alpha, k)) - alpha) over
every alpha and concept: **{m['target_error']:.3f}** ({per_k}; xad's bar for a shipped generator: <= 0.10).

{markdown_table(calibration_table(m))}
""" + matched_section(m)
    if m.get("route_shares_ce"):
        text += f"""
## Concept routes (alpha = 0)
Share of each concept's CEs that the independent classifier judges normal by each route (exclusive
cells, % of that concept's CEs).

{markdown_table(route_table(m))}
"""
    return text


def extensions_line(c: dict[str, Any]) -> str:
    ext = objective_extensions(c)
    return ("**Departs from the paper's objective (xad extensions):** " + ", ".join(ext) + "."
            if ext else "The paper's objective (uniform alpha, hinge L_G, full-channel L_rec and L_cyc).")


def judged(routes: dict[str, float] | None) -> str:
    """", judged normal 41 % (digit 1 12 %, red 33 %)" for one concept's CEs, or ""."""
    if not routes:
        return ""
    ways = ", ".join(f"{k} {100 * v:.0f} %" for k, v in routes.items() if k != "normal")
    return f", judged normal {100 * routes['normal']:.0f} %" + (f" ({ways})" if len(routes) > 2 else "")


def judge_note(m: dict[str, Any]) -> str:
    if m.get("judged_normal_ce") is None:
        return ""
    return (f"\n\n\"Judged normal\": the share of images that the feature extractor "
            f"(`{m.get('feature_extractor')}`, a classifier of the dataset's own labels, independent of "
            "the detector and the generator) puts in a normal class; a proxy for whether a person would "
            "recognise a counterfactual as normal.")


def history_lines(meta: dict[str, Any]) -> str:
    """The earlier training stages a generator was continued from (``--init-from``), oldest first."""
    stages = meta.get("history", [])
    if not stages:
        return ""
    lines = [f"\n  - continued from `{h['folder']}`: {h.get('steps_done')} steps, "
             f"{(h.get('train_seconds') or 0) / 60:.1f} min, "
             + ", ".join(f"{k} {v:g}" for k, v in h.get("objective", {}).items())
             + f"; its command `{h.get('command', '')}`" for h in stages]
    total = sum(h.get("train_seconds") or 0 for h in stages) + meta.get("train_seconds", 0)
    return "".join(lines) + f"\n  - all stages together: {total / 60:.1f} min"
