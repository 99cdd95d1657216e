"""One-cycle schedules that fit any run: 1 and 3 steps, steps past the end, and a resume with more epochs."""

import math
import os

import pytest
import torch
from helpers import CONFIGS, TINY_NET, events, write_tinyimagenet30

from vlc.cli import main
from vlc.tasks import OneCycleLR


def schedule(total_steps: int, pct_start: float = 0.25) -> OneCycleLR:
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    return OneCycleLR(optimizer, max_lr=0.2, total_steps=total_steps, pct_start=pct_start)


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 10])
def test_any_length_works_and_ends_at_the_final_rate(total_steps):
    sched = schedule(total_steps)  # torch's divides by zero for 4 steps at pct_start 0.25
    lrs = [sched.get_last_lr()[0]]
    for _ in range(total_steps + 2):  # two steps past the end: torch raises "Tried to step"
        sched.optimizer.step()
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert all(math.isfinite(lr) and 0 < lr <= 0.2 for lr in lrs)
    group = sched.optimizer.param_groups[0]
    assert lrs[-1] == lrs[-2] == pytest.approx(group["min_lr"])  # stays at the end of the schedule
    if total_steps >= 4:
        assert max(lrs) > 0.19  # near the peak (it falls between two steps)


def test_loading_a_shorter_schedule_keeps_the_new_length(capsys):
    short = schedule(4)
    for _ in range(4):
        short.optimizer.step()
        short.step()
    longer = schedule(8)
    longer.load_state_dict(short.state_dict())
    assert longer.total_steps == 8 and longer.last_epoch == 4
    assert longer.get_last_lr()[0] == pytest.approx(schedule(8).values(4)[0][0])  # the new schedule at step 4
    assert "planned for 4 steps and now has 8" in capsys.readouterr().err


def fit_args(root) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "tinyimagenet30" / "cnn.yaml"),
        f"--data.root={root}",
        "--data.val_fraction=0.25",  # 9 training images
        "--data.batch_size=3",  # 3 steps an epoch
        "--trainer.max_time=null",
        "--trainer.log_every_n_steps=1",
        *TINY_NET,
    ]


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=4)
    return tmp_path / "data"


LAST = os.path.join("checkpoints", "tinyimagenet30-cnn", "version_0", "last.ckpt")


@pytest.mark.parametrize("limit", ["--trainer.max_steps=1", "--trainer.max_epochs=1"])
def test_one_and_three_step_one_cycle_runs(data, limit):
    main([*fit_args(data), limit])
    steps = 1 if "steps" in limit else 3
    assert torch.load(LAST, weights_only=True)["global_step"] == steps
    lrs = [e.value for e in events("logs/tinyimagenet30-cnn/version_0").Scalars("lr-SGD")]
    assert len(lrs) == steps and all(math.isfinite(lr) for lr in lrs)


def test_resume_with_more_epochs_continues_on_the_longer_schedule(data, tmp_path, capsys):
    main([*fit_args(data), "--trainer.max_epochs=1"])
    main([*fit_args(data), "--trainer.max_epochs=2", "--ckpt_path=last"])
    assert "planned for 3 steps and now has 6: it continues at step 3" in capsys.readouterr().err
    assert torch.load(LAST, weights_only=True)["global_step"] == 6
    resumed = events("logs/tinyimagenet30-cnn/version_0").Scalars("lr-SGD")
    os.chdir(tmp_path / "data")  # the same 2 epochs planned from the start, in another folder
    main([*fit_args(data), "--trainer.max_epochs=2"])
    planned = events("logs/tinyimagenet30-cnn/version_0").Scalars("lr-SGD")
    assert [(e.step, e.value) for e in resumed][3:] == [(e.step, e.value) for e in planned][3:]


def test_plateau_decay_follows_the_tasks_score_once_per_epoch():
    from functools import partial
    from types import SimpleNamespace

    from vlc.errors import UserError
    from vlc.tasks.optim import configure

    module = SimpleNamespace(MONITOR=("val/bleu_4", "max", "best"))
    params = [torch.zeros(1, requires_grad=True)]
    plateau = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, mode="max", factor=0.8, patience=0)
    out = configure(module, params, partial(torch.optim.Adam, lr=1e-3), plateau)
    assert {k: v for k, v in out["lr_scheduler"].items() if k != "scheduler"} == {
        "interval": "epoch",
        "monitor": "val/bleu_4",
    }
    sched = out["lr_scheduler"]["scheduler"]
    sched.step(0.2), sched.step(0.1)  # the score fell: decay
    assert out["optimizer"].param_groups[0]["lr"] == pytest.approx(0.8e-3)
    with pytest.raises(UserError, match="needs mode: max"):
        configure(module, params, partial(torch.optim.Adam, lr=1e-3), partial(plateau, mode="min"))
