"""``train vaegan|detector|features|cegan|cegan-suite|ldm|diffedit``: one command per model family
(``cegan-suite`` chains detector and generator commands over the ten MNIST classes); each writes a
weights folder (config.json + model.safetensors + card.md) and refuses to replace an
existing one without ``--overwrite``."""

from __future__ import annotations

import argparse
import shlex

from xad.cli.checks import UsageError, existing_folder, integer, new_weights_folder, number, output_folder
from xad.data.transforms import DataError


def _command(args: argparse.Namespace) -> str:
    return "python -m xad " + shlex.join(args.argv)


def _guarded(handler):  # noqa: ANN001, ANN202 - a command handler
    """The handler, run only if ``--out`` may be written (no model there, or ``--overwrite``)."""

    def run(args: argparse.Namespace) -> int:
        new_weights_folder(args.out, args.overwrite)
        return handler(args)

    return run


def _train_vaegan(args: argparse.Namespace) -> int:
    from xad.data.catalog import resolve_mvtec
    from xad.train.vaegan import TrainSettings
    from xad.train.vaegan_run import run

    good = resolve_mvtec(args.data, args.category).folder / "train" / "good"
    if not good.is_dir() or not any(p.is_file() and not p.name.startswith(".") for p in good.iterdir()):
        raise DataError(f"{good}: no normal training images (train vaegan learns from train/good/)")

    if args.init is not None:
        from xad.weights import read_record

        rec = read_record(args.init)
        if rec.cls != "VAEGAN" or rec.preset != args.preset:
            raise UsageError(f"--init {args.init} is a {rec.cls} ({rec.preset} preset), not a VAE-GAN of "
                             f"--preset {args.preset}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    settings = TrainSettings(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                             augment=args.augment, max_minutes=args.minutes, gan_weight=args.gan_weight,
                             gan_warmup=args.gan_warmup, d_lr=args.d_lr, eval_every=args.eval_every,
                             compile=args.compile == "on", lr=args.lr)
    print(run(args.data, args.category, args.out, args.preset, settings,
              command=_command(args), geometry=args.resize, init=args.init))
    return 0


def _train_detector(args: argparse.Namespace) -> int:
    from xad.train.detector import DetectorSettings, run

    settings = DetectorSettings(kind=args.kind, steps=args.steps, batch_size=args.batch_size,
                                seed=args.seed, oe=args.oe or "")
    print(run(args.setup, args.out, settings, args.data, args.preset,
              command=_command(args)))
    return 0


def _train_features(args: argparse.Namespace) -> int:
    from xad.train.features import run

    print(run(args.dataset, args.out, args.steps, args.seed, args.data,
              command=_command(args)))
    return 0


def _train_cegan(args: argparse.Namespace) -> int:
    from xad.train.cegan import CEGANSettings, run
    from xad.weights import read_record

    trained_for = read_record(args.detector).meta.get("setup")
    if trained_for and trained_for != args.setup:
        raise UsageError(f"--detector {args.detector} was trained for {trained_for}, not --setup {args.setup}")

    settings = CEGANSettings(steps=args.steps, batch_size=args.batch_size, seed=args.seed,
                             max_minutes=args.minutes, lr=args.lr, d_lr=args.d_lr)
    overrides = {k: v for k, v in (("lambda_rec", args.lambda_rec), ("lambda_phi", args.lambda_phi),
                                   ("lambda_r", args.lambda_r), ("lambda_gan", args.lambda_gan),
                                   ("alpha_sampling", args.alpha_sampling),
                                   ("generator_loss", args.generator_loss)) if v is not None}
    if args.colour_mixing:
        if args.diffedit is not None:
            raise DataError("--colour-mixing recolours images; the DiffEdit version's G' maps latents")
        overrides["colour_mixing"] = True
    if args.cycle is not None:
        if args.diffedit is not None and args.cycle != "full":
            raise DataError("--cycle intensity compares RGB images; the DiffEdit version's G' maps latents")
        overrides["cycle"] = args.cycle
    command = _command(args)
    if args.init_from is not None:
        _check_init_from(args, overrides)
    if args.diffedit is not None:
        from xad.train import cegan_diffedit as cd

        psi = cd.PsiSettings(target_prompt=args.target_prompt, strength=args.strength,
                             steps=args.edit_steps, guidance=args.guidance, seed=args.seed)
        print(cd.run(args.setup, args.detector, args.diffedit, args.out, settings, psi, args.concepts,
                     args.preset, args.data, args.edit_images, command, overrides, args.eval_limit))
        return 0
    print(run(args.setup, args.detector, args.out, settings, args.concepts, args.preset, args.data,
              command=command, overrides=overrides, init_from=args.init_from))
    return 0


def _check_init_from(args: argparse.Namespace, overrides: dict) -> None:
    """--init-from W continues W's generator: same setup, detector and K, a GAN-version W, a new --out."""
    from pathlib import Path

    from xad import resolve
    from xad.weights import read_record

    w = read_record(args.init_from)
    if w.family != "cegan" or w.cls != "CEGAN":
        raise UsageError(f"--init-from {args.init_from}: holds a {w.family} model, not a counterfactual generator")
    if args.diffedit is not None or w.config.get("space") != "image":
        raise UsageError("--init-from continues a GAN-version generator (not the DiffEdit version)")
    if w.meta.get("setup") != args.setup:
        raise UsageError(f"--init-from {args.init_from} was trained for {w.meta.get('setup')}, not --setup {args.setup}")
    if resolve(w.meta.get("detector", "")).resolve() != Path(args.detector).resolve():
        raise UsageError(f"--init-from {args.init_from} was trained against {w.meta.get('detector')}, "
                         f"not --detector {args.detector}")
    if w.config.get("concepts") != args.concepts:
        raise UsageError(f"--init-from {args.init_from} has K = {w.config.get('concepts')} concepts, not --concepts {args.concepts}")
    if overrides.get("colour_mixing", w.config.get("colour_mixing")) != w.config.get("colour_mixing"):
        raise UsageError(f"--colour-mixing changes the architecture of --init-from {args.init_from}")
    if Path(args.out).resolve() == Path(args.init_from).resolve():
        raise UsageError("--out must be a new folder: --init-from's model is kept as it is")


def _train_cegan_suite(args: argparse.Namespace) -> int:
    """The ten-class MNIST protocol: a detector and a generator per normal digit and kind."""
    from pathlib import Path

    from xad.counterfactual import suite

    kinds = tuple(k.strip() for k in args.detectors.split(",") if k.strip())
    if not kinds or any(k not in suite.KINDS for k in kinds):
        raise UsageError(f"--detectors: a comma-separated list of {', '.join(suite.KINDS)}, got {args.detectors!r}")
    digits = tuple(sorted({int(d) for d in args.digits.split(",") if d.strip()})) if args.digits else suite.DIGITS
    if any(d not in suite.DIGITS for d in digits):
        raise UsageError(f"--digits: digits 0..9, got {args.digits!r}")
    root = Path(args.root)
    chains = suite.plan(root, kinds, digits, args.preset, args.detector_steps, args.steps, args.data)
    if args.dry_run:
        for chain in chains:
            for job in chain:
                print(("done  " if job.done() else "todo  ") + "python -m xad " + " ".join(job.argv))
        return 0
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failures = suite.run(chains, args.jobs, logs)
    if failures:
        raise DataError(f"{len(failures)} step(s) failed: {', '.join(failures)}; logs in {logs}")
    print(root)
    return 0


def _train_ldm(args: argparse.Namespace) -> int:
    """Train (xad.train.ldm), then evaluate (xad.ldm_report): the CLI chains the two."""
    from xad.data.settings import parse
    from xad.ldm_report import evaluate_folder
    from xad.train.ldm import LDMSettings, run

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    setting = parse(args.setting, legacy="anomalous").name
    settings = LDMSettings(vq_steps=args.vq_steps, unet_steps=args.unet_steps, clf_steps=args.clf_steps,
                           batch_size=args.batch_size, vq_batch_size=min(64, args.batch_size),
                           clf_batch_size=args.batch_size, clf_pool=args.clf_pool, negatives=args.negatives,
                           negative_kind=args.negative_kind,
                           holdout=args.holdout, holdout_pairs=min(args.holdout_pairs, args.holdout),
                           label_smoothing=args.label_smoothing, pair_jitter=args.pair_jitter,
                           pair_affine=args.pair_affine, latent_scaling=args.latent_scaling,
                           latent_target_std=args.latent_target_std, sampler=args.sampler,
                           negative_sampler=args.negative_sampler, t=args.t, seed=args.seed)
    folder = run(setting, args.out, settings, args.preset, args.data, command=_command(args),
                 from_weights=args.from_weights)
    if args.eval_limit > 0:
        folder = evaluate_folder(folder, args.data, args.eval_limit, min(args.sweep_limit, args.eval_limit))
    print(folder)
    return 0


def _train_diffedit(args: argparse.Namespace) -> int:
    from xad.train.diffedit import TextLDMSettings, run

    settings = TextLDMSettings(vae_steps=args.vae_steps, unet_steps=args.unet_steps,
                               batch_size=args.batch_size, seed=args.seed, eval_limit=args.eval_limit)
    print(run(args.dataset, args.out, settings, args.preset,
              command=_command(args), data_path=args.data))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from xad.data.semantic import OE_KINDS
    from xad.train.augment import PROFILES
    from xad.train.vaegan import TrainSettings

    TRAIN_DEFAULTS = {f: getattr(TrainSettings, f) for f in  # noqa: N806 - the VAE-GAN's defaults
                      ("steps", "batch_size", "augment", "gan_weight", "gan_warmup", "eval_every", "lr")}

    tr = sub.add_parser("train", help="train a model").add_subparsers(dest="family", required=True)
    vg = tr.add_parser("vaegan", help="the VAE-GAN of Rashid et al. on one MVTec-layout category")
    vg.add_argument("--data", default="embedded", help="an MVTec-layout folder, or 'embedded'")
    vg.add_argument("--category", required=True)
    vg.add_argument("--out", type=output_folder, required=True)
    vg.add_argument("--preset", choices=["cpu", "paper", "tiny"], default="cpu")
    vg.add_argument("--steps", type=integer(1), default=TRAIN_DEFAULTS["steps"])
    vg.add_argument("--batch-size", type=integer(1), default=TRAIN_DEFAULTS["batch_size"])
    vg.add_argument("--seed", type=integer(0), default=0)
    vg.add_argument("--augment", choices=list(PROFILES), default=TRAIN_DEFAULTS["augment"],
                    help="object: turns, shifts, zoom, flips, brightness (the reference's); texture: "
                         "small turns; dihedral: 90-degree turns and flips only (no interpolation); "
                         "none: for parts in a fixture under fixed light (measured better there)")
    vg.add_argument("--minutes", type=number(0), default=0.0, help="stop after this wall time")
    vg.add_argument("--resize", choices=["stretch", "pad", "crop"], default="stretch",
                    help="how non-square images become square (masks follow): stretch both sides, pad the "
                         "short side with black, or centre-crop; recorded in config.json")
    vg.add_argument("--gan-weight", type=number(0), default=TRAIN_DEFAULTS["gan_weight"],
                    help="weight of the generator term max(BCE_G - L_D, 1e-4) (published: 1; 0: VAE only)")
    vg.add_argument("--gan-warmup", type=integer(0), default=TRAIN_DEFAULTS["gan_warmup"],
                    help="steps of the VAE alone before the GAN terms start")
    vg.add_argument("--d-lr", type=number(0, low_open=True), default=None,
                    help="the discriminator's Adam learning rate (default: the VAE's, 1e-3, as published)")
    vg.add_argument("--lr", type=number(0, low_open=True), default=TRAIN_DEFAULTS["lr"],
                    help="Adam learning rate of the encoder and decoder (published: 1e-3)")
    vg.add_argument("--eval-every", type=integer(1), default=TRAIN_DEFAULTS["eval_every"],
                    help="steps between held-out evaluations (learning curve, checkpoint kept)")
    vg.add_argument("--threads", type=integer(0), default=0, help="torch CPU threads (0: torch's default)")
    vg.add_argument("--compile", choices=["on", "off"], default="off",
                    help="torch.compile the training step (measured no faster on an AVX2 CPU at 1 thread)")
    vg.add_argument("--init", type=existing_folder, default=None,
                    help="continue training from this VAE-GAN weights folder (same preset); the card says so")
    vg.set_defaults(func=_train_vaegan)
    dt = tr.add_parser("detector", help="a bounded semantic detector (BCE-OE, HSC-OE, DSVDD)")
    dt.add_argument("--setup", required=True, help="mnist:<digit>, cmnist:one+red or cifar10:<class>")
    dt.add_argument("--kind", choices=["bce", "hsc", "dsvdd"], default="bce")
    dt.add_argument("--data", default=None, help="MNIST npz/IDX folder or CIFAR-10 folder (default: embedded MNIST)")
    dt.add_argument("--out", type=output_folder, required=True)
    dt.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    dt.add_argument("--steps", type=integer(1), default=600)
    dt.add_argument("--batch-size", type=integer(1), default=128)
    dt.add_argument("--seed", type=integer(0), default=0)
    dt.add_argument("--oe", choices=list(OE_KINDS), default=None,
                    help="outlier exposure (default: the setup's; letters-two-colour, for coloured MNIST: coloured OE, "
                         "half of it partly repainted in red, the normal colour, so red specks alone do not "
                         "look normal)")
    dt.set_defaults(func=_train_detector)
    ft = tr.add_parser("features", help="the FID feature extractor of a digit dataset")
    ft.add_argument("--dataset", choices=["mnist", "cmnist"], required=True)
    ft.add_argument("--data", default=None)
    ft.add_argument("--out", type=output_folder, required=True)
    ft.add_argument("--steps", type=integer(1), default=800)
    ft.add_argument("--seed", type=integer(0), default=0)
    ft.set_defaults(func=_train_features)
    cg = tr.add_parser("cegan", help="the counterfactual generator against a trained detector")
    cg.add_argument("--setup", required=True)
    cg.add_argument("--detector", type=existing_folder, required=True, help="a detector weights folder")
    cg.add_argument("--data", default=None)
    cg.add_argument("--out", type=output_folder, required=True)
    cg.add_argument("--concepts", type=integer(1), default=2, help="K")
    cg.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    cg.add_argument("--steps", type=integer(1), default=3000)
    cg.add_argument("--batch-size", type=integer(1), default=64)
    cg.add_argument("--seed", type=integer(0), default=0)
    cg.add_argument("--minutes", type=number(0), default=0.0, help="stop after this wall time")
    cg.add_argument("--lr", type=number(0, low_open=True), default=2e-4, help="Adam learning rate of G and R")
    cg.add_argument("--d-lr", type=number(0, low_open=True), default=None,
                    help="the discriminator's learning rate (default: --lr; larger = TTUR)")
    for name in ("lambda-rec", "lambda-phi", "lambda-r", "lambda-gan"):
        cg.add_argument(f"--{name}", type=number(0), default=None)
    cg.add_argument("--alpha-sampling", choices=["uniform", "extremes"], default=None,
                    help="target scores alpha while training: uniform in [0, 1] (the paper, the default) "
                         "or extremes (half exactly 0 or 1; an extension)")
    cg.add_argument("--generator-loss", choices=["hinge", "linear"], default=None,
                    help="L_G: hinge max(0, 1 - D(G(x))) (the paper, the default) or linear -D(G(x)) "
                         "(an extension)")
    cg.add_argument("--colour-mixing", action="store_true",
                    help="G may also recolour the whole image (a 3x3 colour matrix per image, from the "
                         "identity); for data where colour is a concept, e.g. coloured MNIST")
    cg.add_argument("--cycle", choices=["full", "intensity"], default=None,
                    help="what L_cyc compares: every channel (full, the default) or the per-pixel max "
                         "over channels (intensity), so a CE that recolours need not keep the old colour")
    cg.add_argument("--init-from", type=existing_folder, default=None,
                    help="continue training this generator folder (its G, D and R and architecture; the "
                         "objective flags given here replace its own); the card records both stages")
    cg.add_argument("--diffedit", type=existing_folder, default=None,
                    help="train the DiffEdit version: G' on latents edited by DiffEdit with this "
                         "diffedit weights folder (python -m xad train diffedit)")
    cg.add_argument("--edit-images", type=integer(1), default=2000,
                    help="DiffEdit: training inputs edited once by psi (normal + OE share)")
    cg.add_argument("--target-prompt", default="",
                    help='DiffEdit: the normal class\'s prompt (default from the setup: "digit seven")')
    cg.add_argument("--strength", type=number(0, 1, low_open=True), default=0.5, help="DiffEdit: mask and inpaint strength")
    cg.add_argument("--edit-steps", type=integer(1), default=20, help="DiffEdit: DDIM steps")
    cg.add_argument("--guidance", type=number(1), default=7.5, help="DiffEdit: guidance scale")
    cg.add_argument("--eval-limit", type=integer(1), default=500,
                    help="DiffEdit: test anomalies (and normal images) for the card's metrics")
    cg.set_defaults(func=_train_cegan)
    cs = tr.add_parser("cegan-suite", help="the paper's ten-class MNIST protocol: a detector and a generator "
                                           "per normal digit and detector kind (resumable)")
    cs.add_argument("--setup", choices=["mnist"], required=True, help="the one-vs-rest setups of this dataset")
    cs.add_argument("--detectors", default="bce,hsc", help="comma-separated detector kinds (bce, hsc)")
    cs.add_argument("--digits", default="", help="comma-separated normal digits (default: all ten)")
    cs.add_argument("--root", default="weights", help="folders go to <root>/detector/ and <root>/cegan/")
    cs.add_argument("--data", default=None, help="MNIST npz/IDX folder (default: embedded MNIST)")
    cs.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    cs.add_argument("--detector-steps", type=integer(1), default=None, help="default: train detector's")
    cs.add_argument("--steps", type=integer(1), default=None, help="generator steps (default: train cegan's)")
    cs.add_argument("--jobs", type=integer(1), default=2, help="commands at once, one CPU thread each")
    cs.add_argument("--dry-run", action="store_true", help="print the plan (done / todo) and stop")
    cs.set_defaults(func=_train_cegan_suite)
    ld = tr.add_parser("ldm", help="latent diffusion + same-class classifier (Wang & Tavakkoli)")
    ld.add_argument("--setting", required=True,
                    help="mnist-anomalous:<digit> (the other nine are normal) or cifar10-normal:<classes>")
    ld.add_argument("--data", default=None, help="MNIST npz/IDX folder or CIFAR-10 folder (default: embedded MNIST)")
    ld.add_argument("--out", type=output_folder, required=True)
    ld.add_argument("--preset", choices=["cpu", "paper", "tiny"], default="cpu")
    ld.add_argument("--vq-steps", type=integer(1), default=300)
    ld.add_argument("--unet-steps", type=integer(1), default=1200)
    ld.add_argument("--clf-steps", type=integer(1), default=800, help="at most; the held-out loss picks the step kept")
    ld.add_argument("--clf-pool", type=integer(1), default=600, help="training images reconstructed from t (positives)")
    ld.add_argument("--negatives", type=integer(1), default=200, help="samples from pure noise (negatives)")
    ld.add_argument("--negative-kind", choices=["noise", "others", "classes"], default="noise",
                    help="noise: samples from pure noise (the paper); others: reconstructions of other "
                         "training images (an extension); classes: pairs labelled by the normal training "
                         "images' classes, same class vs another class (an extension: uses those labels)")
    ld.add_argument("--from-weights", type=existing_folder, default=None,
                    help="reuse this ldm folder's VQ autoencoder and UNet (its held-out split and seed) "
                         "and train the same-class classifier alone, continuing from that folder's classifier weights")
    ld.add_argument("--holdout", type=integer(2), default=1000, help="normal training images kept out of every stage")
    ld.add_argument("--holdout-pairs", type=integer(2), default=200, help="of them, paired for early stopping")
    ld.add_argument("--label-smoothing", type=number(0, 1), default=0.0)
    ld.add_argument("--pair-affine", action="store_true",
                    help="also turn (up to 15 degrees), shift and zoom (up to 10 %%) the partner of every training pair")
    ld.add_argument("--pair-jitter", type=integer(0, 7), default=0,
                    help="shift the partner of every training pair by up to this many pixels (0-7), so "
                         "that pixel alignment alone cannot tell a reconstruction from a sample (0: none)")
    ld.add_argument("--latent-scaling", choices=["none", "unit", "std"], default="none",
                    help="none: the VQ's unscaled latents; unit: rescaled to unit std (Stable Diffusion); "
                         "std: rescaled to --latent-target-std")
    ld.add_argument("--latent-target-std", type=number(0, low_open=True), default=0.5,
                    help="with --latent-scaling std: the latents' std after scaling")
    ld.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm", help="reverse process for the pairs")
    ld.add_argument("--negative-sampler", choices=["ddpm", "ddim"], default="ddpm",
                    help="reverse process of the negatives (samples from pure noise; ddim: 50 steps, cheaper)")
    ld.add_argument("--threads", type=integer(0), default=0, help="torch CPU threads (0: torch's default)")
    ld.add_argument("--t", type=integer(1), default=None,
                    help="the reconstruction timestep shipped with the model (default: the preset's, 200)")
    ld.add_argument("--batch-size", type=integer(2), default=64)
    ld.add_argument("--eval-limit", type=integer(0), default=500,
                    help="test images per class for the evaluation written into the card (0: none)")
    ld.add_argument("--sweep-limit", type=integer(0), default=100,
                    help="test images per class for AUROC/drift vs t (0: no sweep)")
    ld.add_argument("--seed", type=integer(0), default=0)
    ld.set_defaults(func=_train_ldm)
    dd = tr.add_parser("diffedit", help="the small text-conditional latent diffusion model for DiffEdit")
    dd.add_argument("--dataset", choices=["mnist", "cmnist"], required=True,
                    help='captions "digit <name>" (mnist) or "<colour> digit <name>" (cmnist)')
    dd.add_argument("--data", default=None, help="MNIST npz/IDX folder (default: embedded MNIST)")
    dd.add_argument("--out", type=output_folder, required=True)
    dd.add_argument("--preset", choices=["cpu", "tiny"], default="cpu")
    dd.add_argument("--vae-steps", type=integer(1), default=2000)
    dd.add_argument("--unet-steps", type=integer(1), default=4000)
    dd.add_argument("--batch-size", type=integer(1), default=64)
    dd.add_argument("--seed", type=integer(0), default=0)
    dd.add_argument("--eval-limit", type=integer(1), default=200,
                    help="test threes edited to sevens for the DiffEdit check on the card")
    dd.set_defaults(func=_train_diffedit)
    for family in (vg, dt, ft, cg, ld, dd):
        family.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
        family.set_defaults(func=_guarded(family.get_default("func")))
