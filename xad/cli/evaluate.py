"""``evaluate vaegan|cegan|ldm``: measure a model on its test split (into its card, or a JSON)."""

from __future__ import annotations

import argparse
import json

from xad.cli.checks import UsageError, existing_file, existing_folder, integer, output_file


def _evaluate_vaegan(args: argparse.Namespace) -> int:
    if args.readme is not None:
        from xad import readme, runs

        print(readme.replace_block(args.readme, runs.README_TAG, runs.shipped_table()))
        return 0
    if args.weights is None:
        raise UsageError("give --weights (a VAE-GAN weights folder) or --readme")
    if args.bf16_check:
        from xad.train.vaegan_run import bf16_check_folder

        got = bf16_check_folder(args.weights, args.data, args.samples)
        print(f"{args.weights}: bf16 explanations {'agree with' if got['agrees'] else 'differ from'} fp32 "
              f"(S1 rank correlation min {got['s1_rho_min']}, S3 median {got['s3_rho_median']}); card rewritten")
        return 0
    from xad.train.vaegan_run import evaluate_folder

    print(evaluate_folder(args.weights, args.data))
    return 0


def _evaluate_cegan(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xad.counterfactual.bundle import load_bundle
    from xad.counterfactual.evaluation import evaluate, evaluate_folder

    if args.readme is not None:
        from xad import readme
        from xad.counterfactual import suite
        from xad.weights import WEIGHTS_DIR

        readme.replace_block(args.readme, suite.README_TAG, suite.shipped_table(WEIGHTS_DIR))
        print(readme.replace_block(args.readme, suite.VS_TAG, suite.gan_vs_diffedit_markdown(WEIGHTS_DIR)))
        return 0
    if args.weights is None:
        raise UsageError("give --weights (a cegan weights folder) or --readme")
    bar = tqdm(desc="evaluate cegan", unit="stage")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    if args.out is None:
        folder = evaluate_folder(args.weights, args.data, args.limit, progress=progress)
        bar.close()
        print(json.dumps(json.loads((folder / "config.json").read_text())["metrics"], indent=2))
        return 0
    metrics = evaluate(load_bundle(args.weights), args.data, args.limit, progress=progress)
    bar.close()
    args.out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(args.out)
    return 0


def _evaluate_ldm(args: argparse.Namespace) -> int:
    from xad import ldm, ldm_report
    from xad.data.multiclass import load_setting

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.ink:
        table = ldm_report.markdown(ldm_report.ink_controls(args.data))
        if args.readme:  # the README's ink block, regenerated
            from xad import readme

            print(readme.replace_block(args.readme, ldm_report.INK_TAG, table))
        else:
            print(table)
        return 0
    if args.table or args.readme:
        print(ldm_report.write_readme(args.readme) if args.readme else ldm_report.table1_markdown())
        return 0
    if args.weights is None:
        raise UsageError("give --weights (an ldm weights folder), --table or --readme")
    if args.out is None:
        folder = ldm_report.evaluate_folder(args.weights, args.data, args.limit, args.sweep_limit)
        print(json.dumps(json.loads((folder / "config.json").read_text())["metrics"], indent=2))
        return 0
    model, record = ldm.load(args.weights)
    if args.t is not None and args.t >= model.config.timesteps:
        raise UsageError(f"--t {args.t}: this model has timesteps 0..{model.config.timesteps - 1}")
    data = load_setting(record.meta["setting"], args.data)
    sampler = args.sampler or record.meta.get("train_settings", {}).get("sampler", "ddpm")
    result = ldm.evaluate(model, data, args.t, sampler, args.ddim_steps, args.limit, args.seed)
    params = ldm.sweep_params(sampler, args.ddim_steps, max(1, min(args.sweep_limit, args.limit)), args.seed)
    table = ldm.run_sweep(model, data, params)
    result["sweep"] = {"params": params, "table": table.to_dict(orient="list")}
    result["drift"] = {str(int(r.t)): {"normal": r.drift_normal, "anomalous": r.drift_anomalous}
                       for r in table.itertuples()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(args.out)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser("evaluate", help="measure a model on its test split").add_subparsers(
        dest="family", required=True)
    evg = ev.add_parser("vaegan", help="AUROC, tau*, accuracy; rewrites the card's metrics")
    evg.add_argument("--weights", type=existing_folder, default=None)
    evg.add_argument("--data", default="embedded")
    evg.add_argument("--readme", type=existing_file, default=None,
                     help="regenerate the README's table of shipped VAE-GANs and their audits, and stop")
    evg.add_argument("--bf16-check", action="store_true",
                     help="measure whether bf16 explanations (S1, S3) agree with fp32 and keep it in the card "
                          "(decides the default precision on CPUs with native bf16; emulated, ~10x slower, elsewhere)")
    evg.add_argument("--samples", type=integer(10), default=1000,
                     help="with --bf16-check: LIME samples and SHAP evaluations per explanation (default 1000)")
    evg.set_defaults(func=_evaluate_vaegan)
    evc = ev.add_parser("cegan", help="AuROC normal vs CE, FID_N, concept accuracy, MSE/SSIM")
    evc.add_argument("--weights", type=existing_folder, default=None, help="a cegan weights folder")
    evc.add_argument("--readme", type=existing_file, default=None,
                     help="regenerate the README's table of shipped generators (calibration, routes, "
                          "ten-class means) from their cards, and stop")
    evc.add_argument("--data", default=None)
    evc.add_argument("--limit", type=integer(1), default=None,
                     help="test images per class (default 2000; 500 for a DiffEdit generator)")
    evc.add_argument("--out", type=output_file((".json",)), default=None,
                     help="write the metrics JSON here (default: rewrite the folder's card)")
    evc.set_defaults(func=_evaluate_cegan)
    evl = ev.add_parser("ldm", help="AUROC of the method, the baselines and the ink control; drift; vs t")
    evl.add_argument("--weights", type=existing_folder, default=None, help="an ldm weights folder")
    evl.add_argument("--data", default=None)
    evl.add_argument("--limit", type=integer(1), default=500, help="test images per class")
    evl.add_argument("--sweep-limit", type=integer(0), default=100,
                     help="test images per class for AUROC/drift vs t (0: no sweep in the card)")
    evl.add_argument("--t", type=integer(0), default=None, help="timestep (default: the model's, 200)")
    evl.add_argument("--sampler", choices=["ddim", "ddpm"], default=None,
                     help="default: the sampler the classifier's pairs were made with (DDPM)")
    evl.add_argument("--ddim-steps", type=integer(1), default=50)
    evl.add_argument("--seed", type=integer(0), default=0)
    evl.add_argument("--threads", type=integer(0), default=0, help="torch CPU threads (0: torch's default)")
    evl.add_argument("--out", type=output_file((".json",)), default=None,
                     help="write one evaluation's JSON here (default: full evaluation into the card)")
    evl.add_argument("--table", action="store_true",
                     help="print Table 1 (every shipped digit, ours beside the paper's) as markdown")
    evl.add_argument("--ink", action="store_true",
                     help="print the ink-mass control's AUROC for every digit on the full MNIST test set (no model)")
    evl.add_argument("--readme", type=existing_file, default=None,
                     help="write Table 1 into this README between its markers")
    evl.set_defaults(func=_evaluate_ldm)
