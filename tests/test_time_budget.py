"""Time budgets: a run with ``trainer.max_time`` sizes its one-cycle schedule to what fits, ends it, and resumes it.

The runs are real ``vlc fit`` runs on a fake clock (``faults.FakeClock``: 1 s a training step, 0.25 s a validation
batch), so the budget, the timings and the sized length are exact and the same on every machine.
"""

import os

import lightning.pytorch.callbacks.timer
import pytest
import torch
from faults import CLOCK, FakeTime
from helpers import CONFIGS, TINY_NET, events, write_tinyimagenet30

import vlc.callbacks.time_budget
from vlc.callbacks.time_budget import duration, steps_in_budget
from vlc.cli import main

RUN = os.path.join("tinyimagenet30-cnn", "version_0")
LAST = os.path.join("checkpoints", RUN, "last.ckpt")
SIGTERM_AT_35 = [
    "--trainer.callbacks+=faults.Fault",
    "--trainer.callbacks.step=35",
    "--trainer.callbacks.fault=SIGTERM",
]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for module in (vlc.callbacks.time_budget, lightning.pytorch.callbacks.timer):
        monkeypatch.setattr(module, "time", FakeTime)
    CLOCK[0] = 0.0
    write_tinyimagenet30(tmp_path / "data", per_class=24)  # 54 training images (18 steps of 3), 18 for validation
    return tmp_path / "data"


def fit(root, *extra: str) -> None:
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "tinyimagenet30" / "cnn.yaml"),
            f"--data.root={root}",
            "--data.val_fraction=0.25",
            "--data.batch_size=3",
            "--trainer.max_epochs=50",  # 900 steps planned: far more than the budget holds
            "--trainer.max_time=00:00:02:00",
            "--trainer.log_every_n_steps=1",
            "--trainer.enable_progress_bar=false",
            "--trainer.precision=32-true",
            "--model.init_args.scheduler.init_args.max_lr=0.05",  # the tiny data diverges at the config's 0.2
            "--trainer.callbacks+=faults.FakeClock",
            *TINY_NET,
            *extra,
        ]
    )


def test_steps_in_budget_counts_the_validations_where_they_fall_and_one_at_the_end():
    # 100 s left, 1 s a step, a 5 s validation after every 10th step and one at the end:
    # 65 steps = 65 s + 6 validations passed + 1 at the end = 100 s; 66 would need 101 s
    assert steps_in_budget(100.0, 1.0, 5.0, 10) == 65
    # from step 7, 63 steps end on the validation of step 70 (63 s + 7 validations = 98 s); 64 need one more: 104 s
    assert steps_in_budget(100.0, 1.0, 5.0, 10, step=7) == 63
    assert steps_in_budget(105.0, 1.0, 5.0, 10) == 70  # ending on a validation: no extra one at the end
    assert steps_in_budget(100.0, 1.0, 0.0, float("inf")) == 100
    assert steps_in_budget(3.0, 1.0, 5.0, 10) == 0
    assert steps_in_budget(10.0, 1.0, 1.0, 1) == 5  # one step an epoch: a validation after each


def test_the_schedule_is_sized_to_the_budget_ends_with_the_run_and_resumes_exactly(data, capsys):
    fit(data)
    out = capsys.readouterr().out
    assert "vlc: time budget: trainer.max_time 2 min fits about " in out and "of the 900 steps planned" in out
    ckpt = torch.load(LAST, weights_only=False)
    (schedule,) = ckpt["lr_schedulers"]
    assert schedule["budget"] == 120.0 and ckpt["global_step"] == schedule["total_steps"] < 900  # stopped at its end
    elapsed = next(v for k, v in ckpt["callbacks"].items() if k.startswith("Timer"))["time_elapsed"]["train"]
    assert 0.9 * 120 <= elapsed <= 120  # the budget used, not overrun (fake seconds: 1 a step, 1.5 a validation)
    lrs = events(os.path.join("logs", RUN)).Scalars("lr-SGD")
    assert len(lrs) == schedule["total_steps"]
    assert lrs[-1].value == pytest.approx(schedule["_last_lr"][0]) and lrs[-1].value < 1e-4  # the schedule's end
    assert max(e.value for e in lrs) == pytest.approx(0.05, rel=0.05)  # and its peak on the way

    os.chdir(data)  # the same run, interrupted after it was sized, then resumed (in another folder)
    CLOCK[0] = 0.0
    with pytest.raises(SystemExit):
        fit(data, *SIGTERM_AT_35)
    assert torch.load(LAST, weights_only=False)["global_step"] == 36  # stopped after the batch it was sent in
    fit(data, "--ckpt_path=last")
    resumed = events(os.path.join("logs", RUN)).Scalars("lr-SGD")
    assert [(e.step, e.value) for e in resumed] == [(e.step, e.value) for e in lrs]


def test_a_schedule_that_cannot_be_resized_is_warned_about(data, capsys):
    fit(data, "--model.scheduler_interval=epoch", "--trainer.max_time=00:00:00:40")  # per epoch: not resized
    err = capsys.readouterr().err
    assert "vlc: warning: trainer.max_time (40 s) will stop this run after about " in err
    assert "of its 900 steps" in err and "cannot be resized to the budget" in err
    assert err.count("vlc: warning: trainer.max_time") == 1  # once


def test_the_budget_is_read_exactly_from_lightnings_public_timer_api():
    """``duration`` reads ``max_time`` through ``Timer.time_remaining`` alone (no private ``_duration``)."""
    timer = lightning.pytorch.callbacks.Timer(duration={"minutes": 15, "seconds": 0.3})
    timer.load_state_dict({"time_elapsed": {"train": 123.456}})  # a resumed run: part of the budget is spent
    timer.on_train_start(None, None)  # the training clock runs
    assert duration(timer) == 900.3, "Lightning's Timer no longer leaves the whole budget to a stage a fit never runs"
    assert timer.time_remaining() < 900.3 - 123.4
    assert lightning.pytorch.callbacks.Timer().time_remaining() is None  # no budget


def budget_used() -> tuple[dict, float]:
    """The last checkpoint's schedule and the training seconds its Timer counted."""
    ckpt = torch.load(LAST, weights_only=False)
    (schedule,) = ckpt["lr_schedulers"]
    assert ckpt["global_step"] == schedule["total_steps"]  # the run stopped at the end of its schedule
    elapsed = next(v for k, v in ckpt["callbacks"].items() if k.startswith("Timer"))["time_elapsed"]["train"]
    return schedule, elapsed


@pytest.mark.parametrize(("step_after", "how"), [(0.4, "faster now"), (2.5, "slower now")])
def test_a_machine_that_changes_speed_mid_run_still_ends_the_schedule_at_the_budget(data, capsys, step_after, how):
    """1 s a step until step 40, then 0.4 s or 2.5 s: the rest of the schedule is re-sized to the new pace."""
    fit(data, "--trainer.callbacks.change_at=40", f"--trainer.callbacks.step_after={step_after}")  # fit's FakeClock
    out = capsys.readouterr().out
    assert f"vlc: time budget ({how}): trainer.max_time 2 min fits about " in out
    schedule, elapsed = budget_used()
    assert 0.97 * 120 <= elapsed <= 120, elapsed  # within 3% of max_time, never over it
    at_one_second = 108  # what the first sizing planned (test above)
    assert (schedule["total_steps"] > at_one_second) == (step_after < 1)
    lrs = events(os.path.join("logs", RUN)).Scalars("lr-SGD")
    assert lrs[-1].value < 1e-4  # annealed to the schedule's end


def test_one_step_epochs_size_the_schedule_and_end_it_at_the_budget(data, capsys):
    """Every step followed by a validation (54 training images, batches of 54): sized after a few steps, not never."""
    fit(data, "--data.batch_size=54", "--trainer.max_epochs=1000", "--trainer.max_time=00:00:01:00")
    assert "vlc: time budget: trainer.max_time 60 s fits about " in capsys.readouterr().out
    schedule, elapsed = budget_used()
    assert 0.97 * 60 <= elapsed <= 60, elapsed
    assert schedule["total_steps"] < 1000 and schedule["budget"] == 60.0


def test_a_budget_too_short_to_size_says_the_run_did_not_finish(data, capsys):
    """3 s of budget: the run stops before the schedule is sized, and says so instead of ending quietly."""
    fit(data, "--trainer.max_time=00:00:00:03")
    err = capsys.readouterr().err
    assert "vlc: warning: trainer.max_time (3 s) stopped the run at step 3 of its 900-step schedule (0%)" in err
    assert "the model did not finish training" in err
