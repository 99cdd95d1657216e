"""airbench's weight averaging (``vlc.callbacks.Lookahead``): its arithmetic against airbench's, and exact resume."""

from types import SimpleNamespace

import pytest
import torch
from test_resume import FIT, LAST, fault, vlc
from torch import nn

from vlc.callbacks import Lookahead

LOOKAHEAD = ["--trainer.callbacks+=vlc.callbacks.Lookahead", "--trainer.callbacks.every=4"]


def airbench_lookahead(start: dict, updates: list[dict], total: int) -> dict:
    """``legacy/airbench94.py``'s procedure, restated: each step adds its update to the weights, then Lookahead."""
    alpha = 0.95**5 * (torch.arange(total + 1) / total) ** 3
    net = {k: v.clone() for k, v in start.items()}
    ema = {k: v.clone() for k, v in net.items()}  # LookaheadState(model), before the first step
    for step in range(1, total + 1):
        net = {k: net[k] + updates[step - 1][k] for k in net}
        if step % 5 == 0:  # lookahead_state.update(model, decay=alpha_schedule[step])
            for k in ema:
                ema[k].lerp_(net[k], 1 - alpha[step].item())
            net = {k: v.clone() for k, v in ema.items()}
        if step >= total:  # lookahead_state.update(model, decay=1.0): the weights become the average
            net = {k: v.clone() for k, v in ema.items()}
    return net


@pytest.mark.parametrize("total", [12, 15])  # the last step off and on the averaging's rhythm
def test_the_weights_follow_airbenchs_lookahead_step_for_step(total):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    generator = torch.Generator().manual_seed(0)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    updates = [{k: torch.randn(shape, generator=generator) for k, shape in shapes.items()} for _ in range(total)]
    callback, trainer = Lookahead(), SimpleNamespace(lr_scheduler_configs=[], estimated_stepping_batches=total)
    start = {k: v.clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    callback.on_train_start(trainer, model)
    for step in range(1, total + 1):
        with torch.no_grad():  # an optimizer step: the weights move by the step's update
            for name, tensor in model.state_dict().items():
                if tensor.is_floating_point():
                    tensor.add_(updates[step - 1][name])
        trainer.global_step = step
        callback.on_train_batch_end(trainer, model, None, None, step - 1)
    expected = airbench_lookahead(start, updates, total)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            torch.testing.assert_close(tensor, expected[name], rtol=1e-6, atol=1e-6)


def test_a_run_with_lookahead_resumes_exactly_after_sigterm(tmp_path):
    (tmp_path / "once").mkdir(), (tmp_path / "twice").mkdir()
    once = vlc(tmp_path / "once", *FIT, *LOOKAHEAD)
    assert once.returncode == 0, once.stderr[-2000:]
    stopped = vlc(tmp_path / "twice", *FIT, *LOOKAHEAD, *fault(17, "SIGTERM"))  # mid-epoch 1, between two averages
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert torch.load(tmp_path / "twice" / LAST, weights_only=False)["global_step"] == 18
    resumed = vlc(tmp_path / "twice", *FIT, *LOOKAHEAD, f"--ckpt_path={LAST}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ours = torch.load(tmp_path / "twice" / LAST, weights_only=False)
    theirs = torch.load(tmp_path / "once" / LAST, weights_only=False)
    assert ours["global_step"] == theirs["global_step"] == 36
    assert all(torch.equal(ours["state_dict"][k], v) for k, v in theirs["state_dict"].items())  # bit-identical
    (state,) = [state for key, state in theirs["callbacks"].items() if key.startswith("Lookahead")]
    assert state["done"] == 36 and len(state["average"]) > 0  # the average travels in the checkpoint
