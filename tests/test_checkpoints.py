"""Checkpoints a user can rely on, through the real CLI: last.ckpt, run folders, last/auto, bad files, NaN, no space."""

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS, TINY_NET, run_fails, write_tinyimagenet30

from vlc.cli import main

EXPERIMENT = Path("checkpoints") / "tinyimagenet30-cnn"
LAST = EXPERIMENT / "version_0" / "last.ckpt"


def fit_args(root, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "tinyimagenet30" / "cnn.yaml"),
        f"--data.root={root}",
        "--data.val_fraction=0.25",
        "--data.batch_size=3",  # 3 steps an epoch
        "--trainer.max_time=null",
        "--trainer.max_epochs=1",
        *TINY_NET,
        *extra,
    ]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=4)
    return tmp_path / "data"


def step(path) -> int:
    return torch.load(path, weights_only=True)["global_step"]


def test_last_is_the_latest_epoch_even_when_the_metric_did_not_improve(data, tmp_path):
    never_better = tmp_path / "never_better.yaml"  # "epoch" grows, so mode min keeps epoch 0 as the best
    never_better.write_text(
        "trainer:\n  callbacks:\n    - class_path: vlc.callbacks.Checkpoint\n      init_args:\n"
        "        monitor: epoch\n        mode: min\n        filename: best-epoch{epoch:02d}\n"
    )
    main([*fit_args(data, "--trainer.max_epochs=3"), "--config", str(never_better)])
    assert sorted(p.name for p in LAST.parent.iterdir()) == ["best-epoch00.ckpt", "last.ckpt"]  # nothing left over
    assert step(LAST) == 9 and torch.load(LAST, weights_only=True)["epoch"] == 2


def test_repeated_runs_get_new_folders_and_last_finds_the_newest(data, capsys):
    main(fit_args(data))
    main(fit_args(data))
    assert sorted(p.name for p in EXPERIMENT.iterdir()) == ["version_0", "version_1"]
    assert sorted(p.name for p in Path("logs/tinyimagenet30-cnn").iterdir()) == ["version_0", "version_1"]
    capsys.readouterr()
    main([*fit_args(data, "--trainer.max_epochs=2"), "--ckpt_path=last"])  # resumes the newest run, in its folders
    assert step(EXPERIMENT / "version_1" / "last.ckpt") == 6 and step(LAST) == 3
    assert sorted(p.name for p in Path("logs/tinyimagenet30-cnn").iterdir()) == ["version_0", "version_1"]
    out = capsys.readouterr().out
    assert f"last checkpoint: {EXPERIMENT / 'version_1' / 'last.ckpt'}" in out
    assert "next:" in out and "predict --config" in out and "--data.predict_dir YOUR_IMAGES/" in out


def test_last_with_nothing_to_resume_is_an_error_and_auto_starts_afresh(data, capsys):
    err = run_fails(capsys, [*fit_args(data), "--ckpt_path=last"])
    assert f"no checkpoint to resume in {EXPERIMENT}/" in err and "--ckpt_path auto" in err
    assert not Path("logs").exists()  # stopped before anything was built
    main([*fit_args(data), "--ckpt_path=auto"])  # nothing there: a fresh run
    main([*fit_args(data, "--trainer.max_epochs=2"), "--ckpt_path=auto"])  # the same command again: resumes
    assert step(LAST) == 6 and not (EXPERIMENT / "version_1").exists()


def test_truncated_and_garbage_checkpoints_are_one_line(data, tmp_path, capsys):
    main(fit_args(data))
    truncated, garbage = tmp_path / "torn.ckpt", tmp_path / "garbage.ckpt"
    truncated.write_bytes(LAST.read_bytes()[: LAST.stat().st_size // 2])  # what a torn write leaves
    garbage.write_bytes(os.urandom(4096))
    for bad in (truncated, garbage):
        for subcommand in ("fit", "validate"):
            err = run_fails(capsys, [subcommand, *fit_args(data)[1:], f"--ckpt_path={bad}"])
            errors = [line for line in err.splitlines() if line.startswith("vlc: error:")]
            assert len(errors) == 1 and f"--ckpt_path: {bad} is not a readable checkpoint (truncated" in errors[0]


def test_checkpoint_of_other_classes_in_the_same_number_stops(data, tmp_path, capsys):
    main(fit_args(data))
    swapped = tmp_path / "swapped"
    write_tinyimagenet30(swapped, ("banana", "baboon", "bee"), per_class=4)
    err = run_fails(capsys, ["validate", *fit_args(swapped)[1:], f"--ckpt_path={LAST}"])
    assert "class 0 is 'baboon' in the checkpoint but 'banana' in the data (the same names in another order)" in err


def test_checkpoint_values_replacing_given_model_arguments_are_reported(data, capsys):
    main(fit_args(data))
    capsys.readouterr()
    main(["validate", *fit_args(data)[1:], f"--ckpt_path={LAST}", "--model.init_args.label_smoothing=0.3"])
    assert "the checkpoint's values replace model.label_smoothing=0.3 -> 0.1" in capsys.readouterr().err


def test_nan_loss_stops_at_once_and_keeps_the_last_good_checkpoint(data, capsys):
    nan = ["--trainer.callbacks+=faults.Fault", "--trainer.callbacks.step=4", "--trainer.callbacks.fault=nan"]
    err = run_fails(capsys, [*fit_args(data, "--trainer.max_epochs=3", *nan)], code=3)
    assert "vlc: error: training diverged at epoch 1, step 5: the loss is nan" in err and "learning rate" in err
    assert step(LAST) == 3  # the end of epoch 0: the good one
    weights = torch.load(LAST, weights_only=True)["state_dict"]
    assert all(torch.isfinite(t).all() for t in weights.values() if t.is_floating_point())
    best = list(LAST.parent.glob("best*.ckpt"))
    assert len(best) == 1 and step(best[0]) == 3
    assert "status: diverged" in Path("logs/tinyimagenet30-cnn/version_0/run.yaml").read_text()


def limited(size: int):
    """For a subprocess: files may grow to ``size`` bytes; a larger write fails (EFBIG) instead of killing it."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return apply


def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_previous_one_stays(data, tmp_path):
    wider = "--model.init_args.backbone.init_args.widths=[32, 64]"  # checkpoints much larger than the event files
    main(fit_args(data, wider))
    before = LAST.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    result = subprocess.run(
        [sys.executable, "-m", "vlc", *fit_args(data, wider, "--trainer.max_epochs=2"), "--ckpt_path=last"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited(len(before) // 2),  # like a full disk: the next checkpoint does not fit
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"vlc: error: cannot write the checkpoint {LAST.parent}/" in result.stderr
    assert "File too large; the previous one is kept" in result.stderr
    assert LAST.read_bytes() == before  # intact: the write went to a temporary file beside it
    assert len(list(LAST.parent.iterdir())) == 2  # last and the first best: no partial file left


def test_a_checkpoint_of_an_older_vlc_without_training_averages_still_loads(data, tmp_path, capsys):
    main(fit_args(data))
    old = torch.load(LAST, weights_only=True)
    old["state_dict"] = {k: v for k, v in old["state_dict"].items() if not k.startswith(("train_loss", "train_acc"))}
    torch.save(old, tmp_path / "old.ckpt")
    capsys.readouterr()
    main(["validate", *fit_args(data)[1:], f"--ckpt_path={tmp_path / 'old.ckpt'}"])
    assert "val/acc" in capsys.readouterr().out
