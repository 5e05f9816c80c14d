"""``python -m xad``: list, data generate/check, clean errors."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from xad.cli import main


def test_list_json(capsys) -> None:  # noqa: ANN001
    assert main(["list", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"datasets", "models", "problems"} <= set(out)


def test_data_generate_then_check(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    args = ["data", "generate", "--out", str(tmp_path), "--category", "hexnut", "--n-train", "1",
            "--n-test-good", "1", "--n-per-defect", "1"]
    assert main(args) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path)
    assert main(["data", "check", "--data", str(tmp_path)]) == 0
    (tmp_path / "hexnut" / "ground_truth" / "cut" / "000_mask.png").unlink()
    capsys.readouterr()
    assert main(["data", "check", "--data", str(tmp_path)]) == 1  # problems found, each listed
    assert "cut/000.png: defect image without a mask" in capsys.readouterr().out


def test_bad_input_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "xad", "data", "check", "--data", str(tmp_path / "x")],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("xad: ") and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_colour_mixing_is_refused_for_the_latent_version(capsys) -> None:  # noqa: ANN001
    from xad.cli import main

    assert main(["train", "cegan", "--setup", "mnist:7", "--detector", "weights/detector/mnist-7-hsc",
                 "--diffedit", "weights/diffedit/mnist-cpu", "--colour-mixing", "--out", "unused"]) == 2
    assert "--colour-mixing recolours images" in capsys.readouterr().err
    assert main(["train", "cegan", "--setup", "mnist:7", "--detector", "weights/detector/mnist-7-hsc",
                 "--diffedit", "weights/diffedit/mnist-cpu", "--cycle", "intensity", "--out", "unused"]) == 2
    assert "--cycle intensity compares RGB images" in capsys.readouterr().err
