"""The private Lightning API vlc still uses, where Lightning has no public equivalent: each test fails loudly, with
what changed, on a Lightning upgrade that moves it (``grep -rn 'Lightning-AI/pytorch-lightning#' vlc`` lists the uses
and their upstream issues)."""

import inspect

import lightning as L
import pytest

from vlc.callbacks.interruption import SpawnLauncher, request_stop, spawned

UPGRADE = "Lightning changed its private API that vlc.callbacks.interruption uses: "


def test_the_stop_flag_is_lightnings_sigterm_flag():
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    assert hasattr(trainer, "_signal_connector"), UPGRADE + "Trainer._signal_connector is gone (request_stop)"
    assert trainer.received_sigterm is False
    request_stop(trainer)
    assert trainer.received_sigterm is True, UPGRADE + "received_sigterm no longer reads _signal_connector"
    request_stop(trainer, False)
    assert trainer.received_sigterm is False


def test_the_training_loop_stops_on_that_flag_after_a_batch():
    from lightning.pytorch.loops import training_epoch_loop

    source = inspect.getsource(training_epoch_loop._TrainingEpochLoop.on_advance_end)
    assert "received_sigterm" in source and "SIGTERMException" in source, (
        UPGRADE + "the training loop no longer raises SIGTERMException after a batch when received_sigterm is set"
    )


def test_the_spawn_launcher_hooks_vlc_overrides_are_there():
    from lightning.pytorch.strategies.launchers.multiprocessing import _MultiProcessingLauncher
    from lightning.pytorch.trainer.call import _interrupt

    wrapping = list(inspect.signature(_MultiProcessingLauncher._wrapping_function).parameters)
    assert wrapping[:7] == ["self", "process_idx", "trainer", "function", "args", "kwargs", "return_queue"], (
        UPGRADE + f"_MultiProcessingLauncher._wrapping_function takes {wrapping} (SpawnLauncher reads return_queue)"
    )
    recover = list(inspect.signature(_MultiProcessingLauncher._recover_results_in_main_process).parameters)
    assert recover == ["self", "worker_output", "trainer"], UPGRADE + f"_recover_results_in_main_process: {recover}"
    assert list(inspect.signature(_interrupt).parameters) == ["trainer", "exception"], UPGRADE + "_interrupt"
    assert callable(getattr(L.Trainer, "_teardown", None)), UPGRADE + "Trainer._teardown is gone"
    assert issubclass(SpawnLauncher, _MultiProcessingLauncher)


@pytest.mark.parametrize("strategy", ["ddp_spawn", "auto"])
def test_the_launcher_is_replaced_under_ddp_spawn_only(strategy):
    from vlc.callbacks.interruption import Interruption

    devices = 2 if strategy == "ddp_spawn" else 1
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False, enable_progress_bar=False)
    launcher = trainer.strategy.launcher
    assert spawned(trainer) == (strategy == "ddp_spawn")
    if strategy == "ddp_spawn":
        assert hasattr(launcher, "_start_method"), UPGRADE + "_MultiProcessingLauncher._start_method is gone"
        assert hasattr(trainer.strategy, "_launcher"), UPGRADE + "Strategy._launcher is gone"
    Interruption().watch(trainer, training=True)
    assert isinstance(trainer.strategy.launcher, SpawnLauncher) == (strategy == "ddp_spawn"), (
        UPGRADE + "setting Strategy._launcher no longer replaces the launcher"
    )
    assert spawned(trainer) == (strategy == "ddp_spawn")
