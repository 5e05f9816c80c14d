"""Bad input, one case per row: a one-line ``xad: …`` message and exit status 2, never a traceback,
and nothing lost (no source overwritten, no shipped model replaced, no empty leftovers)."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, write_png
from xad.cli import main

MNIST7_DETECTOR = str(ROOT / "weights" / "detector" / "mnist-7-hsc")
LDM = str(ROOT / "weights" / "ldm" / "mnist-0-cpu")


def bomb_png(path: Path, side: int = 16000) -> Path:
    """A valid PNG header that claims side x side px over a few bytes of data (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def one_line_error(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    """Run the command; assert exit 2 and a single ``xad: …`` line on stderr; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("xad: ") and "Traceback" not in err, err
    return lines[-1]


@pytest.fixture
def audit_args(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> list[str]:
    return ["audit", "--data", str(tiny_industrial), "--category", "brick", "--weights", str(tiny_vaegan),
            "--samples", "20", "--segments", "6", "--out", str(tmp_path / "run")]


@pytest.mark.parametrize(("extra", "message"), [
    (["--segments", "0"], "--segments: must be >= 2, got 0"),
    (["--segments", "1"], "--segments: must be >= 2, got 1"),
    (["--segments", "-3"], "--segments: must be >= 2, got -3"),
    (["--limit", "-1"], "--limit: must be >= 1, got -1"),
    (["--limit", "0"], "--limit: must be >= 1, got 0"),
    (["--samples", "-5"], "--samples: must be >= 10, got -5"),
    (["--samples", "0"], "--samples: must be >= 10, got 0"),
    (["--setups", "S9"], "--setups: unknown S9 (choose from S1, S2, S3"),
    (["--setups", ","], "--setups: unknown empty list"),
    (["--jobs", "0"], "--jobs: must be >= 1, got 0"),
    (["--samples", "many"], "--samples: expected a whole number, got 'many'"),
])
def test_audit_arguments(audit_args: list[str], extra: list[str], message: str, tmp_path: Path,
                         capsys: pytest.CaptureFixture) -> None:
    assert message in one_line_error(capsys, audit_args + extra)
    assert not (tmp_path / "run").exists()  # refused before any work


def test_audit_out_is_an_existing_file(audit_args: list[str], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file.txt").write_text("keep me")
    line = one_line_error(capsys, audit_args + ["--out", str(tmp_path / "file.txt")])
    assert "file.txt: is a file, not a folder" in line and (tmp_path / "file.txt").read_text() == "keep me"


def _bad_config(tiny_vaegan: Path, tmp_path: Path, field: str, value: object) -> Path:
    bad = tmp_path / f"bad-{field}"
    shutil.copytree(tiny_vaegan, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["config"][field] = value
    (bad / "config.json").write_text(json.dumps(cfg))
    return bad


@pytest.mark.parametrize(("field", "value", "message"), [
    ("image_size", "big", "image_size = 'big' (expected a whole number)"),
    ("latent_dim", -3, "latent_dim = -3 (must be >= 1)"),
    ("encoder_channels", [32, 0], "encoder_channels = (32, 0) (expected a list of whole numbers >= 1)"),
])
def test_config_validated_on_load(audit_args: list[str], tiny_vaegan: Path, tmp_path: Path, field: str,
                                  value: object, message: str, capsys: pytest.CaptureFixture) -> None:
    bad = _bad_config(tiny_vaegan, tmp_path, field, value)
    args = audit_args.copy()
    args[args.index("--weights") + 1] = str(bad)
    assert message in one_line_error(capsys, args)


def test_train_vaegan_refuses_bad_steps_overwrite_and_missing_train_good(
        tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["train", "vaegan", "--data", str(tiny_industrial), "--category", "brick", "--preset", "tiny"]
    assert "--steps: must be >= 1, got 0" in one_line_error(capsys, base + ["--steps", "0", "--out", str(tmp_path / "a")])
    assert "--batch-size: must be >= 1, got 0" in one_line_error(
        capsys, base + ["--batch-size", "0", "--out", str(tmp_path / "a")])
    assert not (tmp_path / "a").exists()
    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_vaegan, shipped)
    before = {p.name: p.read_bytes() for p in shipped.iterdir()}
    line = one_line_error(capsys, base + ["--steps", "1", "--out", str(shipped)])
    assert "already holds a model; pass --overwrite" in line
    assert {p.name: p.read_bytes() for p in shipped.iterdir()} == before  # nothing replaced
    no_train = tmp_path / "data"
    shutil.copytree(tiny_industrial, no_train)
    shutil.rmtree(no_train / "brick" / "train")
    line = one_line_error(capsys, ["train", "vaegan", "--data", str(no_train), "--category", "brick",
                                   "--preset", "tiny", "--steps", "1", "--out", str(tmp_path / "b")])
    assert "train/good: no normal training images" in line
    assert main(["data", "check", "--data", str(no_train)]) == 1  # data check says so too
    assert "train/good: missing" in capsys.readouterr().out


def test_train_cegan_checks_concepts_and_the_detectors_setup(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = ["train", "cegan", "--detector", MNIST7_DETECTOR, "--out", str(tmp_path / "g")]
    assert "--concepts: must be >= 1, got 0" in one_line_error(capsys, base + ["--setup", "mnist:7", "--concepts", "0"])
    line = one_line_error(capsys, base + ["--setup", "mnist:3"])
    assert "was trained for mnist:7, not --setup mnist:3" in line
    assert not (tmp_path / "g").exists()


def test_data_downscale_never_writes_into_its_source(tiny_mvtec: Path, capsys: pytest.CaptureFixture) -> None:
    before = sorted((p, p.read_bytes()) for p in tiny_mvtec.rglob("*.png"))
    for out in (tiny_mvtec, tiny_mvtec / "small"):
        line = one_line_error(capsys, ["data", "downscale", str(tiny_mvtec), str(out), "--size", "16"])
        assert "the copy must go outside the source folder" in line
    assert sorted((p, p.read_bytes()) for p in tiny_mvtec.rglob("*.png")) == before


@pytest.mark.parametrize(("argv", "message"), [
    (["evaluate", "ldm", "--weights", LDM, "--t", "5000", "--limit", "2", "--out", "{tmp}/r.json"],
     "--t 5000: this model has timesteps 0..999"),
    (["ldm", "--weights", LDM, "--samples", "0", "--out", "{tmp}/figs"], "--samples: must be >= 1, got 0"),
    (["ldm", "--weights", LDM, "--samples", "-1", "--out", "{tmp}/figs"], "--samples: must be >= 1, got -1"),
    (["counterfactual", "--setup", "cegan/mnist-7-hsc", "--image", "{tmp}/x.png", "--out", "{tmp}/missing/ce.png"],
     "folder {tmp}/missing does not exist"),
    (["counterfactual", "--setup", "cegan/mnist-7-hsc", "--image", "{tmp}/x.png", "--out", "{tmp}/ce"],
     "the file name must end in .png"),
    (["counterfactual", "--setup", "cegan/mnist-7-hsc", "--image", "{tmp}/nothing.png", "--out", "{tmp}/ce.png"],
     "nothing.png: no such file"),
    (["counterfactual", "--setup", "cegan/mnist-7-hsc", "--image", "{tmp}/x.png", "--alpha", "2", "--out", "{tmp}/ce.png"],
     "--alpha: must be in [0, 1], got 2"),
    (["report", "--run", "{tmp}", "--out", "{tmp}/r.html"], "not an audit run folder (no results.csv)"),
    (["report", "--run", "{tmp}", "--out", "{tmp}/r"], "the file name must end in .html"),
    (["diffedit", "--image", "{tmp}/x.png", "--source", "a", "--target", "b", "--weights",
      str(ROOT / "weights" / "diffedit" / "mnist-cpu"), "--guidance", "0.5", "--out", "{tmp}/e.png"],
     "--guidance: must be in [1, ], got 0.5"),
])
def test_command_arguments(argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_png(tmp_path / "x.png", np.zeros((28, 28, 3), np.uint8))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert message.replace("{tmp}", str(tmp_path)) in one_line_error(capsys, argv)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "figs").exists()


def test_diffedit_guidance_one_means_no_guidance(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    digits = np.load(ROOT / "data" / "mnist" / "mnist.npz")
    write_png(tmp_path / "three.png", digits["x_test"][np.flatnonzero(digits["y_test"] == 3)[0]])
    assert main(["diffedit", "--image", str(tmp_path / "three.png"), "--source", "digit three", "--target",
                 "digit seven", "--weights", str(ROOT / "weights" / "diffedit" / "mnist-cpu"),
                 "--guidance", "1", "--steps", "4", "--out", str(tmp_path / "e.png")]) == 0
    assert json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0


def test_decompression_bomb_is_refused_everywhere(tmp_path: Path, tiny_mvtec: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    from xad.data.transforms import DataError, decode_image_bytes, read_image

    bomb = bomb_png(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 1000
    line = one_line_error(capsys, ["counterfactual", "--setup", "cegan/mnist-7-hsc", "--image", str(bomb),
                                   "--out", str(tmp_path / "ce.png")])
    assert "bomb.png: image is 256 Mpx, over xad's limit of 40 Mpx (a decompression bomb?)" in line
    with pytest.raises(DataError, match=r"upload.png: image is 256 Mpx, over xad's limit"):
        decode_image_bytes(bomb.read_bytes(), "upload.png")  # the upload API
    shutil.copy(bomb, tiny_mvtec / "part" / "test" / "good" / "002.png")
    assert main(["data", "check", "--data", str(tiny_mvtec)]) == 1
    assert "002.png: image is 256 Mpx" in capsys.readouterr().out
    # under PIL's own limit but over xad's: refused before a pixel is decoded, with the size
    with pytest.raises(DataError, match=r"mid.png: image is 8000 x 8000 px \(64 Mpx\), over xad's limit"):
        read_image(bomb_png(tmp_path / "mid.png", side=8000))


def test_mask_suffixes_match_case_insensitively(tiny_mvtec: Path) -> None:
    from xad.data.mvtec import MVTecDataset

    cat = tiny_mvtec / "part"
    (cat / "test" / "scratch" / "000.png").rename(cat / "test" / "scratch" / "000.PNG")
    (cat / "ground_truth" / "scratch" / "000_mask.png").rename(cat / "ground_truth" / "scratch" / "000_mask.PNG")
    ds = MVTecDataset(tiny_mvtec, "part")
    ref = next(r for r in ds.refs("test", "scratch") if r.id.endswith("/000"))
    assert ref.mask_path.name == "000_mask.PNG" and ds.load(ref).mask.sum() == 100
    assert ds.validate() == []


@pytest.fixture
def damaged_runs(tiny_industrial: Path, tiny_vaegan: Path, tmp_path: Path) -> dict[str, Path]:
    """A real finished audit (3 samples) and three damaged copies of it."""
    run = tmp_path / "run"
    assert main(["audit", "--data", str(tiny_industrial), "--category", "brick", "--weights", str(tiny_vaegan),
                 "--setups", "S1", "--samples", "20", "--segments", "6", "--limit", "3", "--out", str(run)]) == 0
    runs = {}
    for name in ("truncated", "pickled", "csv"):
        runs[name] = shutil.copytree(run, tmp_path / name)
    data = (run / "maps.npz").read_bytes()
    (runs["truncated"] / "maps.npz").write_bytes(data[: len(data) // 2])
    np.savez(runs["pickled"] / "maps.npz", ids=np.array([{"x": 1}] * 3, dtype=object))
    (runs["csv"] / "results.csv").write_bytes(b'id,label\n"unterminated,\x00\xff\n')
    return runs


@pytest.mark.parametrize(("name", "message"), [
    ("truncated", "maps.npz: damaged or truncated"),
    ("pickled", "maps.npz: holds pickled objects; xad reads plain arrays only"),
    ("csv", "results.csv: not a"),
])
def test_report_on_a_damaged_run(damaged_runs: dict[str, Path], name: str, message: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    line = one_line_error(capsys, ["report", "--run", str(damaged_runs[name]), "--out", str(tmp_path / "r.html")])
    assert message in line and not (tmp_path / "r.html").exists()


def test_ctrl_c_is_one_line_and_exit_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    from xad.cli import data

    def interrupted(_args) -> int:  # noqa: ANN001
        raise KeyboardInterrupt

    monkeypatch.setattr(data, "_list", interrupted)
    assert main(["list"]) == 130
    err = capsys.readouterr().err
    assert err == "xad: interrupted; rerun the same command to resume\n"


def test_an_error_after_the_progress_bar_starts_gets_its_own_line(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    from tqdm import tqdm

    from xad.cli import data
    from xad.data.transforms import DataError

    def fails(_args) -> int:  # noqa: ANN001
        bar = tqdm(total=10, desc="work")
        bar.update(3)
        raise DataError("broken.png: not a readable image")

    monkeypatch.setattr(data, "_list", fails)
    assert main(["list"]) == 2
    err = capsys.readouterr().err
    assert "\nxad: broken.png: not a readable image\n" in err and "work" in err.split("\nxad: ")[0]
