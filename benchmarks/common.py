"""What every benchmark shares: best-of-N timing, peak memory, training timers, quiet runs and the machine.

Imported by the benchmark scripts (``python benchmarks/NAME.py`` puts this folder on ``sys.path``) and by
``benchmarks/suite.py``, so that each thing is measured one way.
"""

import contextlib
import ctypes
import datetime
import gc
import io
import json
import logging
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

import lightning as L
import torch

from vlc.trainer import auto_precision, native_bf16_cpu

REPO = Path(__file__).resolve().parents[1]
"""The repository root (the configs are read from there)."""


# -- time ---------------------------------------------------------------------------------------------------------
def synchronize(device: torch.device | str | None) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; the CPU needs nothing)."""
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn: Callable[[], object], repeats: int, device=None, warmup: int = 1) -> tuple[float, object]:
    """Best wall-clock seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls, and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(max(1, repeats)):
        synchronize(device)
        start = time.perf_counter()
        result = fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times), result


def best_window(stamps: list[float], warmup: int, window: int) -> tuple[float, list[float]]:
    """Seconds of the fastest run of ``window`` consecutive steps after ``warmup`` steps, and of every run.

    Args:
        stamps: ``time.perf_counter()`` at the end of each step, in order.
        warmup: first steps left out (allocation, first batches).
        window: steps per timed run; the runs follow each other without overlap.
    """
    ends = stamps[max(warmup, 1) - 1 :]
    runs = [ends[i + window] - ends[i] for i in range(0, len(ends) - window, window)]
    if not runs:
        raise ValueError(f"{len(stamps)} steps leave no run of {window} steps after {warmup} warm-up steps")
    return min(runs), runs


class StepTimer(L.Callback):
    """``time.perf_counter()`` at the end of every training batch (after the optimizer step and the batch's hooks).

    Args:
        path: a JSON file the stamps are written to when training ends (for a run started through ``vlc fit``,
            which builds its callbacks itself: ``--trainer.callbacks+={"class_path": "common.StepTimer", ...}``).
    """

    def __init__(self, path: str | None = None) -> None:
        self.path, self.stamps = path, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.stamps.append(time.perf_counter())

    def on_train_end(self, trainer, pl_module) -> None:
        if self.path:
            Path(self.path).write_text(json.dumps(self.stamps))


class EpochTimer(L.Callback):
    """Wall-clock seconds of every training epoch.

    Args:
        path: a JSON file the seconds are written to when training ends (see :class:`StepTimer`).
    """

    def __init__(self, path: str | None = None) -> None:
        self.path, self.times = path, []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.times.append(time.perf_counter() - self.start)

    def on_train_end(self, trainer, pl_module) -> None:
        if self.path:
            Path(self.path).write_text(json.dumps(self.times))


# -- memory -------------------------------------------------------------------------------------------------------
def peak_rss() -> int:
    """The process's peak resident memory so far, in bytes (``VmHWM``; ``ru_maxrss`` where /proc is missing)."""
    status = _proc_status()
    if "VmHWM" in status:
        return status["VmHWM"]
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def current_rss() -> int | None:
    """The process's resident memory now, in bytes (None without /proc)."""
    return _proc_status().get("VmRSS")


def _proc_status() -> dict[str, int]:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return {}
    return {k: int(v.split()[0]) * 1024 for k, _, v in (line.partition(":") for line in lines) if v.endswith("kB")}


def reset_peak_rss() -> bool:
    """Set the peak resident memory back to the current one (Linux 4.0+: ``/proc/self/clear_refs``); whether it was."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def release_free_memory() -> None:
    """Collect garbage and give the allocator's free pages back to the system (glibc ``malloc_trim``).

    Memory freed earlier in the process would otherwise be reused without showing in the resident memory.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakMemory:
    """How far the resident memory (RSS) of this process peaks above where it stood when the block started.

    The peak is reset on entry (``/proc/self/clear_refs``) after garbage collection and ``malloc_trim``, so each
    block is measured from the process's resident memory at its start, as a fresh process would be after its setup.
    Where the reset is not possible the rise is measured above the process's earlier peak (``exact`` is then
    False), which under-counts a block that peaks below it.

    Example:
        with PeakMemory() as memory:
            work()
        print(memory.rise / 2**20, "MiB")
    """

    def __enter__(self) -> "PeakMemory":
        release_free_memory()
        self.exact = reset_peak_rss() and current_rss() is not None
        self.before = current_rss() if self.exact else peak_rss()
        return self

    def __exit__(self, *exc) -> None:
        self.rise = max(0, peak_rss() - self.before)


# -- running quietly ----------------------------------------------------------------------------------------------
@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[Path]:
    """Run the block in ``path`` (``vlc fit`` writes ``logs/`` and ``checkpoints/`` under the current folder)."""
    before = Path.cwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(before)


LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning")


@contextlib.contextmanager
def quiet(enabled: bool = True) -> Iterator[io.StringIO]:
    """Keep what the code inside prints (stdout, stderr, Lightning's log, warnings) out of the terminal.

    The captured text is yielded; it is printed when the block raises, so that a failure keeps its context.
    """
    captured = io.StringIO()
    if not enabled:
        yield captured
        return
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
            yield captured
    except BaseException:
        sys.stderr.write(captured.getvalue()[-4000:])
        raise
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# -- the machine --------------------------------------------------------------------------------------------------
def bf16_fast() -> bool:
    """Whether this CPU runs bfloat16 matrix products natively (AVX-512 BF16 or AMX): ``vlc.trainer``'s test."""
    return native_bf16_cpu() is not None


def default_precision() -> str:
    """What ``precision: auto`` picks on this CPU: ``bf16-mixed`` where bfloat16 is native, else ``32-true``."""
    return auto_precision("cpu")[0]


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (``platform.processor()`` elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """The repository's commit, ``+dirty`` when the work tree has changes (None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def machine() -> dict:
    """The hardware and software the figures were measured with."""
    return {
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_fast": bf16_fast(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": metadata.version("lightning"),
        "vlc": metadata.version("vlc"),
        "commit": git_commit(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
