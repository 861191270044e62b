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


def test_import_fnn_gives_every_module_api_md_names():
    """API.md spells `fnn.train.fit`, `fnn.data.batches`, ...: a bare `import fnn` must do."""
    code = (
        "import fnn\n"
        "for name in ('train.fit', 'train.EarlyStopping', 'train.make_train_step', "
        "'data.batches', 'fused.make_fused_step', 'checkpoint.save', 'optim.adam', "
        "'losses.mse', 'gradcheck.check_grads', 'distributed.make_mesh', 'per_example_grads'):\n"
        "    obj = fnn\n"
        "    for part in name.split('.'):\n"
        "        obj = getattr(obj, part)\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
