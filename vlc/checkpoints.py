"""Finding, reading and checking vlc checkpoints: every way a checkpoint file reaches a run goes through here.

Where the files lie is ``vlc.runs``; each checkpoint records its run (log folder name and version), so that a
resumed run continues its own logs and an evaluation is filed under the run it evaluated (:func:`run_of`).
"""

import importlib
from pathlib import Path
from typing import Any

import torch

from vlc.checkpoint_upgrade import TASK_KEY, upgrade
from vlc.errors import UserError
from vlc.runs import LAST

KEYWORDS = ("last", "best", "auto")
"""``--ckpt_path`` values vlc resolves itself (besides a file or a folder)."""


# -- finding ---------------------------------------------------------------------------------------------------
def newest_run(folder: Path) -> Path | None:
    """The run folder under ``folder`` (itself, or one level down) whose ``last.ckpt`` is the newest."""
    candidates = [folder / LAST, *folder.glob(f"*/{LAST}")]
    existing = [path for path in candidates if path.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime).parent if existing else None


def best_in(run: Path) -> Path | None:
    """The best checkpoint of a run folder: the one its ``last.ckpt`` names as best, or the newest ``best*.ckpt``."""
    try:
        states = torch.load(run / LAST, map_location="cpu", weights_only=True, mmap=True).get("callbacks", {})
    except Exception:  # no readable last.ckpt: fall back on the file names
        states = {}
    for state in states.values():
        named = run / Path(str(state.get("best_model_path") or "")).name if isinstance(state, dict) else run
        if named != run and named.is_file():
            return named
    best = sorted(run.glob("best*.ckpt"), key=lambda p: p.stat().st_mtime)
    return best[-1] if best else None


def resolve(value: str | None, folder: Path, subcommand: str) -> str | None:
    """The checkpoint file that ``--ckpt_path value`` means, or None to start without one.

    Args:
        value: ``None``; a ``.ckpt`` file; a folder (the newest run's ``last.ckpt`` under it); ``last`` (that of the
            experiment's ``folder``); ``best`` (the best checkpoint of the experiment's newest run); ``auto``
            (``last`` when there is one, else nothing: for job schedulers that requeue the same ``fit`` command).
        folder: the experiment's checkpoint folder, ``checkpoints/<experiment>`` (or the fixed ``dirpath``).
        subcommand: ``fit``, ``validate``, ``test`` or ``predict`` (for the messages).

    Raises:
        UserError: there is nothing where ``value`` points.
    """
    if value is None or value == "hpc":
        return value
    if value not in KEYWORDS:
        path = Path(value).expanduser()
        if path.is_dir():
            run = newest_run(path)
            if run is None:
                raise UserError(f"--ckpt_path {value}: no {LAST} in this folder or its run folders")
            return str(run / LAST)
        if not path.is_file():
            raise UserError(
                f"--ckpt_path {value}: no such file; expected a .ckpt file, a run folder, or last/best/auto"
            )
        return str(path)
    if subcommand == "predict":
        raise UserError(
            f"--ckpt_path {value}: vlc predict does not know the experiment; give a .ckpt file or an experiment's "
            "checkpoint folder such as checkpoints/demo-classify (its newest run's last.ckpt)"
        )
    run = newest_run(folder)
    if run is None:
        if value == "auto":
            return None
        raise UserError(
            f"--ckpt_path {value}: no checkpoint to {'resume' if subcommand == 'fit' else 'use'} in {folder}/ (the "
            "checkpoint folder of this config's runs); check the config and the current folder"
            + (", or use --ckpt_path auto to start afresh when there is none" if subcommand == "fit" else "")
        )
    if value == "best":
        best = best_in(run)
        if best is None:
            raise UserError(f"--ckpt_path best: the newest run in {run}/ has no best-*.ckpt")
        return str(best)
    return str(run / LAST)


# -- reading ---------------------------------------------------------------------------------------------------
def read(path: str | Path, key: str = "--ckpt_path") -> dict[str, Any]:
    """The content of a Lightning checkpoint file, tensors memory-mapped (cheap even for large files).

    Raises:
        UserError: the file is missing, truncated, or not a checkpoint written by ``vlc fit``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"{key}: {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # zip, pickle and torch errors alike: not a (complete) checkpoint
        raise UserError(
            f"{key}: {path} is not a readable checkpoint (truncated or not a .ckpt file: {_first_line(err)})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise UserError(f"{key}: {path} is not a checkpoint written by 'vlc fit' (it has no state_dict)")
    return upgrade(checkpoint)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:120]}" if text else type(err).__name__


def task_class(checkpoint: dict) -> type | None:
    """The LightningModule class that wrote ``checkpoint`` (as it records it), None if unknown."""
    record = checkpoint.get(TASK_KEY)
    return import_class(record["class_path"]) if isinstance(record, dict) and "class_path" in record else None


def import_class(class_path: str) -> type | None:
    """The class named by a dotted path, None when it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return None


def run_of(checkpoint: dict) -> dict | None:
    """The run (``name``, ``version`` of its log folder) that wrote ``checkpoint``, None if not recorded."""
    run = checkpoint.get("vlc_run")
    return run if isinstance(run, dict) and {"name", "version"} <= set(run) else None


def classifier_backbone(path: str | Path, key: str) -> dict[str, torch.Tensor]:
    """The backbone tensors of a classification checkpoint, keyed relative to the backbone (``body.*``, ``mean``).

    Args:
        path: a checkpoint written by ``vlc fit`` of an ``ImageClassifier`` (any vlc version), or an experiment's
            checkpoint folder (its newest run's ``last.ckpt``).
        key: the config key that named ``path``, for the messages.

    Raises:
        UserError: the file does not exist, cannot be read, or is not a vlc classification checkpoint.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        run = newest_run(path)
        path = run / LAST if run is not None else path / LAST
    hint = "torchvision weights (a name or a state-dict file) go to the backbone's weights"
    if not path.is_file():
        raise UserError(f"{key}: {path} does not exist; expected a vlc classification checkpoint (.ckpt); {hint}")
    checkpoint = read(path, key)
    tensors = {}
    if "num_classes" in (checkpoint.get("hyper_parameters") or {}):
        state = checkpoint["state_dict"]
        tensors = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    if not tensors:
        raise UserError(
            f"{key}: {path} is not a vlc classification checkpoint (no backbone tensors); "
            f"use a .ckpt written by 'vlc fit' of an image classifier; {hint}"
        )
    return tensors


# -- checking --------------------------------------------------------------------------------------------------
def check_task(checkpoint: dict, path: str, configured: type | None, subcommand: str) -> None:
    """Stop when the checkpoint was written by another kind of model than the config's ``model``.

    Raises:
        UserError: naming both, and what to do.
    """
    saved = task_class(checkpoint)
    if saved is None:
        raise UserError(f"--ckpt_path: {path} was not written by 'vlc fit' (no vlc model in its hyper-parameters)")
    if configured is None or issubclass(saved, configured) or issubclass(configured, saved):
        return
    hint = {
        "predict": f"predict with {saved.PREDICT_CONFIG}",
        "fit": "resume it with the config it was trained with",
    }.get(subcommand, "evaluate it with the config it was trained with")
    raise UserError(
        f"--ckpt_path: {path} was trained as {saved.__name__}, but the config's model is {configured.__name__}; {hint}"
    )


def check_fits(module: torch.nn.Module, checkpoint: dict, path: str) -> None:
    """Stop when the checkpoint's classes, vocabulary or weights differ from those of ``module``.

    ``module`` is built from the config and the data; the message says what differs, where loading would fail in
    ``load_state_dict`` or, worse, silently score against the wrong class names.

    Raises:
        UserError: the first difference found.
    """
    saved, current = checkpoint.get("hyper_parameters") or {}, getattr(module, "hparams", {})
    for key in ("num_classes", "class_names"):
        if saved.get(key) is not None and current.get(key) is not None and list_or(saved[key]) != list_or(current[key]):
            raise UserError(f"--ckpt_path: {path} was trained on other classes: {_difference(saved, current)}")
    if saved.get("vocab") is not None and current.get("vocab") is not None:
        _check_vocab(saved["vocab"], current["vocab"], path)
    weights, own = checkpoint["state_dict"], module.state_dict()
    missing = [k for k in own if k not in weights and k not in metric_keys(module)]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in weights and weights[k].shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{len(v)} {label} ({', '.join(v[:2])}{', ...' if len(v) > 2 else ''})"
            for label, v in (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
            if v
        ]
        raise UserError(f"--ckpt_path: the weights of {path} do not fit the configured model: " + "; ".join(parts))


def _check_vocab(saved: dict, current: dict, path: str) -> None:
    from vlc.vocabulary import Vocabulary, vocab_difference

    try:
        saved_vocab = Vocabulary.from_dict(saved)
    except ValueError as err:
        raise UserError(f"--ckpt_path: {path} holds an invalid vocabulary: {err}") from None
    current_vocab = Vocabulary.from_dict(current)
    if saved_vocab != current_vocab:
        difference = vocab_difference(saved_vocab, current_vocab)
        raise UserError(
            f"--ckpt_path: the vocabulary does not match the checkpoint's ({difference}): "
            "the checkpoint's ids would decode to other words. Use the training vocabulary: set data.vocab_file to the "
            "vocab.json written beside the checkpoint"
        )


def list_or(value: Any) -> Any:
    """Tuples as lists, nested too (values read from YAML or from a checkpoint may be either)."""
    return [list_or(v) for v in value] if isinstance(value, (list, tuple)) else value


def metric_keys(module: torch.nn.Module) -> set[str]:
    """The state-dict keys of the torchmetrics objects of ``module`` (training averages saved in checkpoints)."""
    from torchmetrics import Metric

    prefixes = tuple(f"{name}." for name, sub in module.named_modules() if isinstance(sub, Metric) and name)
    return {key for key in module.state_dict() if key.startswith(prefixes)}


def fill_metric_states(module: torch.nn.Module, checkpoint: dict) -> None:
    """Give a checkpoint written before metric states were saved (older vlc) the module's fresh ones, so it loads."""
    state, own = checkpoint.get("state_dict", {}), module.state_dict()
    for key in metric_keys(module) - set(state):
        state[key] = own[key]


def _difference(saved: dict, current: dict) -> str:
    """The first difference between two class lists, e.g. ``class 1 is 'banana' in the checkpoint, 'bee' here``."""
    a, b = list(saved.get("class_names") or []), list(current.get("class_names") or [])
    if len(a) != len(b) or saved.get("num_classes") != current.get("num_classes"):
        ours, theirs = saved.get("num_classes", len(a)), current.get("num_classes", len(b))
        return f"{ours} classes in the checkpoint, {theirs} in the data"
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    order = " (the same names in another order)" if sorted(a) == sorted(b) else ""
    return f"class {i} is {a[i]!r} in the checkpoint but {b[i]!r} in the data{order}; use one trained on this data"
