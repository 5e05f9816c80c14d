"""The core never imports streamlit; nothing in xad calls torch.load or a hub."""

import subprocess
import sys

from tests.conftest import ROOT


def test_xad_does_not_import_streamlit() -> None:
    """Import every module of the package (walked, not listed) in a fresh interpreter."""
    code = ("import importlib, pkgutil, sys, xad\n"
            "names = [m.name for m in pkgutil.walk_packages(xad.__path__, 'xad.')]\n"
            "for name in names: importlib.import_module(name)\n"
            "assert len(names) > 50, names\n"
            "assert 'streamlit' not in sys.modules, 'streamlit imported'\n"
            "print(len(names))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(list((ROOT / "xad").rglob("*.py"))) - 1  # all but xad/__init__.py


def test_no_unsafe_loading_in_the_core() -> None:
    for path in (ROOT / "xad").rglob("*.py"):
        text = path.read_text()
        assert "torch.load(" not in text, path
        assert "allow_pickle=True" not in text, path
