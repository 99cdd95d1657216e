"""Interrupted runs: SIGKILL, SIGTERM and Ctrl-C at a chosen step of a real ``vlc fit`` in a subprocess, then resumed.

The reference is the same run never interrupted; resumed runs must end at the same step with identical metrics, read
back from their event files, as one TensorBoard run and one ``vlc compare`` row.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS, FAST_PRECISION, TINY_NET, events

from vlc.cli import main

pytestmark = pytest.mark.slow
TESTS = Path(__file__).resolve().parent
RUN = Path("logs") / "demo-classify" / "version_0"
LAST = Path("checkpoints") / "demo-classify" / "version_0" / "last.ckpt"
FIT = [
    "fit",
    "--config",
    str(CONFIGS / "demo" / "classify.yaml"),
    "--data.init_args.num_images=480",  # 384 training images: 12 steps an epoch
    "--data.init_args.batch_size=32",
    "--data.init_args.augment=crop_flip",
    "--model.init_args.dropout=0.2",  # the model draws random numbers too
    "--trainer.max_epochs=3",
    "--trainer.log_every_n_steps=1",
    "--trainer.enable_progress_bar=false",
    f"--trainer.precision={FAST_PRECISION}",  # bf16 where the CPU runs it natively (emulated bf16 is slow)
    *TINY_NET,
]


def vlc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``vlc ARGS`` in a fresh process in ``cwd`` (the tests folder importable, for ``faults.Fault``)."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)  # a checkout's vlc first
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vlc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def fault(step: int, kind: str) -> list[str]:
    return [
        "--trainer.callbacks+=faults.Fault",
        f"--trainer.callbacks.step={step}",
        f"--trainer.callbacks.fault={kind}",
    ]


def curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar curve of a run folder as ``(step, value)`` pairs."""
    acc = events(run)
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, dict]:
    """The run never interrupted: its folder and curves."""
    work = tmp_path_factory.mktemp("reference")
    result = vlc(work, *FIT)
    assert result.returncode == 0, result.stderr[-2000:]
    return work, curves(work / RUN)


def assert_same_run(work: Path, reference: tuple[Path, dict]) -> None:
    ref_work, ref_curves = reference
    assert torch.load(work / LAST, weights_only=True)["global_step"] == 36
    assert [p.name for p in (work / "logs" / "demo-classify").iterdir()] == ["version_0"]  # one run
    got = curves(work / RUN)
    assert set(got) == set(ref_curves)
    for tag in ("val/acc", "val/loss", "train/loss_step", "train/loss_epoch", "lr-SGD"):
        assert got[tag] == ref_curves[tag], tag  # identical values at the same steps, none duplicated
    ours = torch.load(work / LAST, weights_only=True)["state_dict"]
    theirs = torch.load(ref_work / LAST, weights_only=True)["state_dict"]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)  # bit-identical weights


def test_sigkill_mid_epoch_then_resume_last_is_exact(reference, tmp_path, capsys):
    killed = vlc(tmp_path, *FIT, *fault(17, "SIGKILL"))
    assert killed.returncode == -9
    assert torch.load(tmp_path / LAST, weights_only=True)["global_step"] == 12  # the end of epoch 0
    assert "status: running" in (tmp_path / RUN / "run.yaml").read_text()  # killed outright: never marked complete
    os.chdir(tmp_path)
    main(["compare", "logs"])
    assert capsys.readouterr().out.strip().splitlines()[1].split()[:3] == [str(RUN), "fit", "incomplete"]
    resumed = vlc(tmp_path, *FIT, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(tmp_path, reference)
    main(["compare", "logs"])
    rows = capsys.readouterr().out.strip().splitlines()
    assert len(rows) == 2 and rows[1].split()[:3] == [str(RUN), "fit", "complete"]  # one row, a complete run


@pytest.mark.parametrize(("signal", "code"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_sigterm_and_ctrl_c_save_mid_epoch_and_resume_exactly(reference, tmp_path, signal, code):
    stopped = vlc(tmp_path, *FIT, *fault(17, signal))
    assert stopped.returncode == code, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr
    assert f"interrupted by {signal} at epoch 1, step 18" in stopped.stderr  # after the batch in flight
    assert "resume with: " in stopped.stderr and f"--ckpt_path {LAST}" in stopped.stderr
    assert torch.load(tmp_path / LAST, weights_only=True)["global_step"] == 18  # mid-epoch 1
    assert "status: interrupted" in (tmp_path / RUN / "run.yaml").read_text()
    resumed = vlc(tmp_path, *FIT, f"--ckpt_path={LAST}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(tmp_path, reference)


def test_resume_with_worker_processes_and_validation_every_other_epoch_is_exact(tmp_path):
    options = ["--data.init_args.num_workers=1", "--trainer.check_val_every_n_epoch=2"]  # last.ckpt after validation
    (tmp_path / "reference").mkdir()
    (tmp_path / "killed").mkdir()
    reference = vlc(tmp_path / "reference", *FIT, *options)
    assert reference.returncode == 0, reference.stderr[-2000:]
    assert vlc(tmp_path / "killed", *FIT, *options, *fault(29, "SIGKILL")).returncode == -9
    assert torch.load(tmp_path / "killed" / LAST, weights_only=True)["global_step"] == 24
    resumed = vlc(tmp_path / "killed", *FIT, *options, "--ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert_same_run(tmp_path / "killed", (tmp_path / "reference", curves(tmp_path / "reference" / RUN)))
