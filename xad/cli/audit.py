"""``audit`` (score, explain, IoU; resumable) and ``report`` (an HTML report of a run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xad.cli.checks import UsageError, choices_list, existing_file, existing_folder, integer, output_file, output_folder


def _setups(text: str) -> tuple[str, ...]:
    from xad.audit import SETUPS

    return choices_list(SETUPS)(text)


def _scheduler(text: str) -> str:
    if text != "local" and not text.startswith(("tcp://", "tls://")):
        raise argparse.ArgumentTypeError(f"{text}: expected 'local' or a scheduler address like tcp://host:8786")
    return text


def _meta_of(weights) -> dict:  # noqa: ANN001 - a weights folder or an external detector
    """config.json of a weights folder (``resize``: how training made images square; ``bf16_agreement``);
    {} for an external detector."""
    from pathlib import Path

    from xad.detectors import ExternalDetector
    from xad.weights import read_record

    return {} if isinstance(weights, ExternalDetector) else read_record(Path(weights)).meta


def _model(args: argparse.Namespace):  # noqa: ANN202 - (model, what identifies it)
    """A shipped/own VAE-GAN weights folder, or an external detector file (ONNX / OpenVINO IR)."""
    if args.detector is None:
        from xad.weights import load_model

        if args.weights is None:
            raise UsageError("give --weights (a VAE-GAN folder) or --detector (an ONNX / OpenVINO file)")
        model, record = load_model(args.weights, expect="VAEGAN")
        return model, record.path
    from xad.detectors import open_detector

    if args.background == "reference" and args.reference_image is None:
        raise UsageError("--background reference needs --reference-image (a normal part's image)")
    detector = open_detector(args.detector, args.score_output, args.map_output, args.backend,
                             args.background, None, args.input_size)
    if args.reference_image is not None:
        from xad.data.transforms import read_image, resize_image

        image = read_image(args.reference_image)
        detector.reference = resize_image(image, detector.size).astype("float32") / 255
    return detector, detector


def _audit(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from xad.audit import AuditParams, audit_refs, default_bf16, run_audit
    from xad.data.catalog import resolve_mvtec

    if args.scheduler is not None and args.jobs > 1:
        raise UsageError("--jobs and --scheduler both say where the work runs: give one of them")
    model, weights = _model(args)
    meta = _meta_of(weights)
    params = AuditParams(setups=args.setups, segments=args.segments, samples=args.samples, seed=args.seed,
                         error_variant=args.variant, calibration=args.calibration, limit=args.limit,
                         bf16=default_bf16(meta) if args.precision == "auto" else args.precision == "bf16",
                         engine=args.engine, backend=args.backend, device=args.device,
                         resize=meta.get("resize", "stretch"))
    from xad.backends import BackendError, resolve  # issue 16: one-line error for a backend
    from xad.data.transforms import DataError

    try:  # that cannot run here
        resolve(args.backend, args.device)
    except BackendError as exc:
        raise DataError(str(exc)) from None
    ds = resolve_mvtec(args.data, args.category)
    bar = tqdm(total=len(audit_refs(ds, args.limit)), desc="audit", unit="sample")

    def progress(done: int, total: int, sid: str) -> None:
        bar.n = done
        bar.set_postfix_str(sid)
        bar.refresh()

    def notice(message: str) -> None:
        bar.write(f"xad: {message}", file=sys.stderr)

    run = run_audit(ds, model, weights, params, args.out, args.jobs, progress, notice, args.scheduler)
    bar.close()
    if args.detector is not None:
        from xad.detectors import audit_card

        (run / "detector.md").write_text(audit_card(model, run))
    print(run)
    return 0


def _report(args: argparse.Namespace) -> int:
    from xad.export import audit_report_html

    html = audit_report_html(args.run)  # DataError naming the file if the run folder is damaged
    args.out.write_text(html, encoding="utf-8")
    print(args.out)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    au = sub.add_parser("audit", help="score a test set and explain it (S1-S4), with IoU")
    au.add_argument("--data", default="embedded", help="an MVTec-layout folder, or 'embedded'")
    au.add_argument("--category", required=True)
    who = au.add_mutually_exclusive_group()
    who.add_argument("--weights", type=existing_folder, help="a VAE-GAN weights folder")
    who.add_argument("--detector", type=existing_file,
                     help="any detector exported to ONNX (.onnx) or OpenVINO IR (.xml + .bin), e.g. anomalib's "
                          "export: input float32 (N, 3, H, W) in [0, 1], outputs pred_score and anomaly_map")
    au.add_argument("--score-output", default=None, help="--detector: the score output's name (default: pred_score)")
    au.add_argument("--map-output", default=None, help="--detector: the anomaly map's name (default: anomaly_map)")
    au.add_argument("--background", choices=["blur", "mean", "inpaint", "reference"], default="blur",
                    help="--detector: what hidden segments show (a VAE-GAN uses its reconstruction, as the paper)")
    au.add_argument("--reference-image", type=existing_file, default=None,
                    help="--background reference: an image of a normal part")
    au.add_argument("--input-size", type=integer(8), default=None,
                    help="--detector: the input side in px, for files whose size is not fixed")
    au.add_argument("--setups", type=_setups, default=("S1", "S2", "S3", "S4"),
                    help="comma-separated, e.g. S1,S3 (default: all four, as the page)")
    au.add_argument("--samples", type=integer(10), default=5000,
                    help="LIME samples n / SHAP and ShapBPT max_evals (the paper's 5000)")
    au.add_argument("--segments", type=integer(2), default=100, help="LIME superpixels k (>= 2)")
    au.add_argument("--seed", type=integer(0), default=1234)
    au.add_argument("--variant", choices=["sse", "max_channel"], default="sse",
                    help="explained function: sum of squared errors, or of channel-max errors")
    au.add_argument("--calibration", choices=["test", "heldout"], default="test",
                    help="fit tau* on the test labels (the paper) or on a held-out half")
    au.add_argument("--limit", type=integer(1), default=None,
                    help="only the first N test samples, taken in turn from each defect type (default: all)")
    au.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                    help="the model's precision for the explainers' perturbed images (x' is always "
                         "fp32); auto: bf16 where the CPU computes it natively (AMX) and the model's card does not "
                         "record bf16 explanations that differ from fp32, else fp32")
    au.add_argument("--engine", choices=["fast", "reference"], default="fast",
                    help="xad's vectorised engine, or lime/shap/skimage called as published (fp32; slow)")
    au.add_argument("--backend", choices=["auto", "torch", "openvino", "onnxruntime"], default="auto",
                    help="where the fast engine runs the model (auto: the fastest installed here)")
    au.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="torch's device")
    au.add_argument("--jobs", type=integer(1), default=1, help="parallel worker processes (joblib)")
    au.add_argument("--scheduler", type=_scheduler, default=None,
                    help="run the per-sample work on Dask: 'local' (a LocalCluster, a worker per core) or a "
                         "scheduler address tcp://host:8786 (workers must see the data and weights at the same "
                         "paths); the same results.csv as a serial run")
    au.add_argument("--out", type=output_folder, default=None, help="run folder (default: a cache folder)")
    au.set_defaults(func=_audit)
    rp = sub.add_parser("report", help="an HTML report of every sample of an audit run")
    rp.add_argument("--run", type=Path, required=True)
    rp.add_argument("--out", type=output_file((".html", ".htm")), required=True)
    rp.set_defaults(func=_report)
