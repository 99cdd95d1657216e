"""One-cycle schedules that fit any run: 1 and 3 steps, steps past the end, and a resume with more epochs."""

import math
import os
from pathlib import Path

import pytest
import torch
from helpers import CONFIGS, TINY_NET, events, write_tinyimagenet30

from vlc.cli import main
from vlc.tasks import OneCycleLR

LEGACY = Path(__file__).parent / "legacy"


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


def groups_of(optimizer_kind: str) -> torch.optim.Optimizer:
    params = [torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)]
    if optimizer_kind == "sgd":
        return torch.optim.SGD([{"params": [params[0]]}, {"params": [params[1]]}], lr=0.1, momentum=0.9)
    return torch.optim.AdamW([{"params": [params[0]]}, {"params": [params[1]]}], lr=1e-3)


def trace(sched, steps: int) -> list:
    """Every group's learning rate and momentum (or betas) at each step, and ``get_last_lr``."""
    out = []
    for _ in range(steps):
        groups = sched.optimizer.param_groups
        out.append([(g["lr"], g.get("momentum"), g.get("betas")) for g in groups] + [tuple(sched.get_last_lr())])
        sched.optimizer.step()
        sched.step()
    return out


SETTINGS = [
    {"total_steps": 10, "pct_start": 0.3},
    {"total_steps": 64, "pct_start": 0.25, "anneal_strategy": "linear"},
    {"total_steps": 100, "pct_start": 0.1, "three_phase": True},
    {"total_steps": 37, "pct_start": 0.3, "max_lr": [0.2, 0.05], "div_factor": 10.0, "final_div_factor": 100.0},
]


@pytest.mark.parametrize("optimizer_kind", ["sgd", "adamw"])
@pytest.mark.parametrize("settings", SETTINGS)
def test_the_learning_rates_and_momenta_are_torchs_step_for_step(settings, optimizer_kind):
    settings = {"max_lr": 0.2, **settings}
    ours = trace(OneCycleLR(groups_of(optimizer_kind), **settings), settings["total_steps"])
    torchs = trace(torch.optim.lr_scheduler.OneCycleLR(groups_of(optimizer_kind), **settings), settings["total_steps"])
    assert ours == torchs  # exactly: the same formulas in the same order


@pytest.mark.parametrize("settings", SETTINGS)
def test_a_state_saved_by_torchs_one_cycle_resumes_the_same_schedule(settings):
    """Checkpoints of vlc before 2026 hold torch's OneCycleLR state (vlc's schedule subclassed it)."""
    settings = {"max_lr": 0.2, **settings}
    torchs = torch.optim.lr_scheduler.OneCycleLR(groups_of("sgd"), **settings)
    trace(torchs, settings["total_steps"] // 2)
    ours = OneCycleLR(groups_of("sgd"), **settings)
    ours.optimizer.load_state_dict(torchs.optimizer.state_dict())  # Lightning restores the optimizer first
    ours.load_state_dict(torchs.state_dict())
    rest = settings["total_steps"] - settings["total_steps"] // 2
    assert ours.last_epoch == torchs.last_epoch and trace(ours, rest) == trace(torchs, rest)


def test_a_legacy_checkpoints_schedule_resumes_on_the_new_length(capsys):
    old = torch.load(LEGACY / "b42ee2e" / "classifier.ckpt", map_location="cpu", weights_only=False)
    state, groups = old["lr_schedulers"][0], old["optimizer_states"][0]["param_groups"]
    assert "_schedule_phases" in state  # torch's format, written before vlc's schedule was its own
    resumed = schedule(2 * state["total_steps"])
    keys = ("lr", "momentum", "initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum")
    resumed.optimizer.param_groups[0].update({k: groups[0][k] for k in keys})
    resumed.load_state_dict(state)
    assert resumed.last_epoch == state["last_epoch"] and resumed.total_steps == 2 * state["total_steps"]
    assert "planned for 6 steps and now has 12" in capsys.readouterr().err
    fresh = schedule(2 * state["total_steps"])
    fresh.optimizer.param_groups[0].update({k: groups[0][k] for k in keys})
    assert resumed.get_last_lr()[0] == fresh.values(state["last_epoch"])[0][0]


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
