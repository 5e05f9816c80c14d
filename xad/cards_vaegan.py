"""The VAE-GAN card's training details and learning-curve section (used by
:func:`xad.cards.vaegan_card`), from what config.json records: the GAN recipe, continued
training, the machine's load, the held-out learning curve with the checkpoint kept, and whether
bf16 explanations agree with fp32."""

from __future__ import annotations


def training_lines(meta: dict) -> str:
    """The card's bullet lines on how the model was trained (after the command)."""
    s = meta.get("train_settings", {})
    return (f"- **Data:** `{meta.get('training_data')}`, {meta.get('image_size')} px "
            f"({meta.get('resample')} resize,\n  `{meta.get('resize', 'stretch')}` geometry for "
            "non-square images)\n"
            f"- **Seed:** {meta.get('seed')}; batch {s.get('batch_size')}; Adam lr {s.get('lr')}; "
            "augmentation "
            f"`{s.get('augment')}`;\n  bf16 autocast {'on' if s.get('bf16') else 'off'}; torch.compile "
            f"{'on' if compiled(meta) else 'off'}\n"
            f"- **GAN term:** {gan_line(s)}\n"
            f"- **Steps:** {meta.get('steps_done')} (asked {s.get('steps')}, time cap "
            f"{s.get('max_minutes')} min);\n"
            f"  **CPU wall time:** {meta.get('train_seconds', 0) / 60:.1f} min on "
            f"{meta.get('threads')} threads"
            f"{load_note(meta)}\n"
            f"{init_line(meta)}")



def load_note(meta: dict) -> str:
    load = meta.get("load_average_15min_at_end")
    return "" if load is None else f" (machine load average {load} over the last 15 min)"


def gan_line(s: dict) -> str:
    w = s.get("gan_weight", 1.0)
    if not w:
        return "the VAE alone (generator-term weight 0: the discriminator is not trained)"
    warm = f" after {s['gan_warmup']} VAE-only steps" if s.get("gan_warmup") else ""
    return (f"generator term max(BCE_G - L_D, 1e-4) with weight {w}{warm}, discriminator lr "
            f"{s.get('d_lr') or s.get('lr')}")


def compiled(meta: dict) -> bool:
    """Whether the training step was compiled (older records: derived from their settings, as
    xad.train.vaegan.use_compile did: None meant runs of 1000+ steps)."""
    if "compiled" in meta:
        return bool(meta["compiled"])
    s = meta.get("train_settings", {})
    return bool(s.get("compile")) or (s.get("compile", False) is None and s.get("steps", 0) >= 1000)


def init_line(meta: dict) -> str:
    i = meta.get("initialised_from")
    if not i:
        return ""
    return (f"- **Continued training:** started from `{i.get('weights')}` ({i.get('steps_done')} steps, "
            f"{(i.get('train_seconds') or 0) / 60:.0f} min on {i.get('cpu')}: `{i.get('command')}`); "
            "the steps and time above are this run's only\n")


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def curve_section(meta: dict, rows: int = 10) -> str:
    """The card's learning-curve table (at most ``rows`` evaluations, the kept one always shown)."""
    c, kept = meta.get("learning_curve") or {}, meta.get("kept_step")
    steps = c.get("step", [])
    if not steps:
        return ""
    held, tr = c.get("heldout", {}), c.get("train", {})
    auroc = dict(zip(c.get("test_auroc", {}).get("step", []), c.get("test_auroc", {}).get("auroc", [])))
    pick = sorted({*range(0, len(steps), max(1, -(-len(steps) // rows))), len(steps) - 1,
                   *[i for i, st in enumerate(steps) if st == kept or st in auroc]})
    lines = []
    for i in pick:
        col = (lambda k, d=held: d.get(k, [None] * len(steps))[i])  # noqa: E731
        tcol = (lambda k: tr.get(k, [None] * len(steps))[i])  # noqa: E731
        mark = " **kept**" if steps[i] == kept else ""
        lines.append(f"| {steps[i]}{mark} | {c['minutes'][i]:.1f} | {_fmt(col('bce_excess'), '.1f')} | "
                     f"{_fmt(col('mse'), '.5f')} | {_fmt(tcol('bce'), '.0f')} | {_fmt(tcol('kl'), '.1f')} | "
                     f"{_fmt(tcol('g'), '.3g')} | {_fmt(tcol('d'), '.3g')} | "
                     f"{_fmt(auroc.get(steps[i]), '.3f')} |")
    n_held = len(meta.get("heldout_ids", []))
    best = held.get("bce", [None] * len(steps))[steps.index(kept)] if kept in steps else None
    if kept == steps[-1] and len(steps) > 1:
        first, last = held.get("bce_excess", [None])[0], held.get("bce_excess", [None])[-1]
        still = (f"; it was still falling at the end ({first:.0f} -> {last:.0f} above the floor): "
                 "the time cap stopped this run, not early stopping, and more steps would help"
                 if first is not None and last is not None else "")
    else:
        still = ""
    kept_line = (f"The weights kept are those of step {kept}, the best held-out reconstruction loss "
                 f"(BCE {best:.1f} per image) of the {len(steps)} evaluations (early stopping){still}"
                 if best is not None else
                 f"The weights kept are the last ones (step {kept}): no held-out images")
    return f"""
## Learning curve
Every {c.get('every')} steps: the posterior-mean reconstruction of the {n_held} held-out normal training
images (never trained on) as summed BCE above its floor (the BCE of an image with itself, which
is most of the raw BCE on grey images) and as per-pixel MSE; the training loss components
averaged since the previous evaluation; the test AUROC at a few checkpoints (measured only, never
used to choose the weights). {kept_line}.

| step | min | held-out BCE - floor | held-out MSE | train BCE | KL | G term | D loss | test AUROC |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
""" + "\n".join(lines) + "\n"


def precision_section(meta: dict) -> str:
    """What ``bf16_agreement`` (``evaluate vaegan --bf16-check``) measured, and the precision it
    makes the default on CPUs with native bf16; "" where it was not measured."""
    from xad.precision import BF16_BAR

    a, rho, dj = meta.get("bf16_agreement"), BF16_BAR["rho"], BF16_BAR["iou"]
    if not a:
        return ""
    rows = "\n".join(f"| {r['id']} | {r['rho_S1']:.4f} | {r['iou_S1_fp32']:.3f} / {r['iou_S1_bf16']:.3f} | "
                     f"{r['rho_S3']:.4f} | {r['iou_S3_fp32']:.3f} / {r['iou_S3_bf16']:.3f} |" for r in a["rows"])
    how = "native bf16" if a.get("native_bf16") else "bf16 emulated on a CPU without native bf16: the same numbers, slower"
    verdict = ("They agree within xad's bar, so on CPUs with native bf16 (AMX) xad explains this model in bf16"
               if a["agrees"] else
               "They do not agree within xad's bar, so xad explains this model in fp32 on every CPU "
               "(`python -m xad audit --precision bf16` still asks for bf16)")
    return f"""
## bf16 vs fp32 explanations
S1 and S3 maps of the first anomalous test image of every defect type, n = {a['samples']}, explained with
the model in fp32 and in bf16 ({how}; `python -m xad evaluate vaegan --weights <folder> --bf16-check`).
xad's bar: S1 rank correlation >= {rho} and J* within {dj} on every sample, S3 median rank
correlation >= {rho}, mean J* within {dj}. {verdict}.

| sample | S1 rank correlation | S1 J* fp32 / bf16 | S3 rank correlation | S3 J* fp32 / bf16 |
| --- | --- | --- | --- | --- |
{rows}
"""
