"""The core never imports streamlit; nothing in xad calls torch.load or a hub."""

import subprocess
import sys

from tests.conftest import ROOT


def test_xad_does_not_import_streamlit() -> None:
    code = ("import sys, xad, xad.cli, xad.data.catalog, xad.data.synthetic, xad.export, xad.plots.dataset, "
            "xad.weights; xad.weights.architectures(); assert 'streamlit' not in sys.modules, 'imported'")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_no_unsafe_loading_in_the_core() -> None:
    for path in (ROOT / "xad").rglob("*.py"):
        text = path.read_text()
        assert "torch.load(" not in text, path
        assert "allow_pickle=True" not in text, path
