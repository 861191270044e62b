"""The package's public face and its import-time promises."""
import subprocess
import sys


def test_import_fnn_loads_no_optional_or_peer_library():
    code = (
        "import sys, fnn\n"
        "bad = [m for m in ('optax', 'flax', 'equinox', 'haiku', 'torch', 'matplotlib', "
        "'tqdm', 'sklearn', 'mlxtend') if m in sys.modules]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_no_optax_anywhere_in_the_package():
    import pathlib

    import fnn

    root = pathlib.Path(fnn.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert "import optax" not in text and "from optax" not in text, path
