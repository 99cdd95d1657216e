"""``vlc compare``: one table per task of the runs found under some folders, read from what they left on disk.

A run is a log folder (``logs/<experiment>/<version>``) holding a ``fit``'s TensorBoard event files, or, with another
logger, its ``run.yaml`` (and a CSV logger's ``metrics.csv``, read for the scores); the sessions of a resumed run are
one run (TensorBoard drops what a resumed session replaced). A run trained without a logger (``logger: false``) leaves
only checkpoints: a checkpoint folder whose ``last.ckpt`` names no logged run is a row of its own, with the epochs and
scores the checkpoint holds. The ``validate/`` and ``test/`` folders inside a run hold the evaluations of its
checkpoints: the newest test's scores join the run's row. A ``validate`` or ``test`` of a checkpoint whose run is
unknown is a row of its own. ``run.yaml`` (``vlc.callbacks.RunRecord``) gives each run's kind, task, status
(``complete``; ``incomplete``: still running, or killed; ``interrupted``; ``diverged``; ``failed``), its epochs and
its training time. A log folder with neither logged values nor ``run.yaml`` (a run stopped during set-up by an older
vlc, or by SIGKILL) is no row: a note under the tables names it. Runs are listed in natural order (``version_2``
before ``version_10``).
"""

import argparse
import csv
import functools
import re
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from vlc.checkpoints import read, run_of, task_class
from vlc.csv_cells import write_rows
from vlc.errors import UserError
from vlc.runs import EVENTS, LAST, METRICS, RUN_FILE, STAGES, metrics_files, read_run

MARKERS = (EVENTS, RUN_FILE, METRICS)
"""Files that make a folder a run's log folder."""
STAGE_PREFIXES = ("val/", "test/")
"""The tags of an evaluation's scores."""

COMMON = [("run", "run"), ("kind", "kind"), ("status", "status")]
TAIL = [("epochs", "epochs"), ("train_time_s", "train time"), ("trainable_params", "trainable params")]
TASKS = {
    "classification": {
        "class": "ImageClassifier",
        "columns": [("val_acc_final", "val acc"), ("val_acc_best", "best val acc"), ("test_acc", "test acc")],
        "final": "val/acc",
        "test": {"test_acc": "test/acc"},
    },
    "captioning": {
        "class": "ImageCaptioner",
        "columns": [
            ("val_bleu_4_final", "val BLEU-4"),
            ("val_bleu_4_best", "best val BLEU-4"),
            ("val_cider_d_final", "val CIDEr-D"),
            ("test_bleu_4", "test BLEU-4"),
            ("test_cider_d", "test CIDEr-D"),
        ],
        "final": "val/bleu_4",
        "test": {"test_bleu_4": "test/bleu_4", "test_cider_d": "test/cider_d"},
    },
}
TASK_OF_CLASS = {spec["class"]: task for task, spec in TASKS.items()}


class NotARun(Exception):
    """A folder found that gives no row; the message says why (a note under the tables)."""


def natural_key(path: Path) -> list:
    """A sort key that orders the numbers in a path by value: ``version_2`` before ``version_10``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(path))]


def _logged(folder: Path) -> bool:
    return any(any(folder.glob(marker)) for marker in MARKERS)


@functools.cache
def _checkpoint(folder: Path) -> dict | str:
    """The ``last.ckpt`` of a checkpoint folder, or why it cannot be read."""
    try:
        return read(folder / LAST, "vlc compare")
    except UserError as err:
        return str(err)


def find_runs(path: str) -> list[Path]:
    """The runs ``path`` stands for: itself or the folders below it, as log folders or checkpoint-only runs.

    A run's ``validate/`` and ``test/`` folders are not runs of their own: they join their run's row. A checkpoint
    folder of a logged run is not a run either: the run is its log folder.

    Raises:
        UserError: ``path`` is not a folder or holds no run.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{path}: no such folder; give run folders such as logs/cifar10/scratch, or logs/cifar10")
    logs = {file.parent for marker in MARKERS for file in folder.rglob(marker)}
    runs = [f for f in logs if not (f.name in STAGES and _logged(f.parent))]
    saved = {file.parent for file in folder.rglob(LAST)} - logs
    runs += [f for f in saved if isinstance(_checkpoint(f), str) or run_of(_checkpoint(f)) is None]
    if not runs:
        raise UserError(
            f"{path}: no runs in it or below it: no TensorBoard event files, {RUN_FILE} or {METRICS} (a run's logs), "
            f"nor the {LAST} of a run trained without a logger"
        )
    return sorted(runs, key=natural_key)


def csv_scalars(folder: Path) -> dict[str, list[float]]:
    """``tag -> values`` logged by a CSV logger into ``folder``'s ``metrics.csv`` (empty without one).

    A resumed run's earlier sessions come first, from their ``metrics-<n>.csv`` (``vlc.runs.keep_earlier_metrics``).
    """
    rows = []
    for path in metrics_files(folder):
        try:
            with path.open(newline="") as f:
                rows += list(csv.DictReader(f))
        except (OSError, UnicodeDecodeError, csv.Error):
            continue
    values: dict[str, list[float]] = {}
    for row in rows:
        for tag, text in row.items():
            try:
                number = float(text)
            except (TypeError, ValueError):  # empty: not logged at this step
                continue
            if tag not in ("epoch", "step"):
                values.setdefault(tag, []).append(number)
    return values


def scalars(folder: Path) -> dict[str, list[float]]:
    """``tag -> values`` of every session in ``folder`` (what a resumed session replaced is dropped)."""
    if not any(folder.glob(EVENTS)):
        return csv_scalars(folder)
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [event.value for event in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def newest_session(folder: Path) -> dict[str, float]:
    """``tag -> last value`` of the newest evaluation in ``folder`` that logged scores, or of its metrics.csv.

    A session that stopped before scoring (a bad labels file) leaves an event file without scores: the one before it
    is the latest evaluation.
    """
    if not any(folder.glob(EVENTS)):
        return {tag: values[-1] for tag, values in csv_scalars(folder).items()}
    for file in sorted(folder.glob(EVENTS), reverse=True):
        values = {}
        for event in EventFileLoader(str(file)).Load():
            for value in event.summary.value:
                if value.HasField("tensor") or value.HasField("simple_value"):
                    values[value.tag] = value.simple_value if value.HasField("simple_value") else _tensor(value)
        if any(tag.startswith(STAGE_PREFIXES) for tag in values):
            return values
    return {}


def _tensor(value) -> float | None:
    data = value.tensor.float_val or value.tensor.double_val
    return float(data[0]) if data else None


def logged_seconds(folder: Path) -> float | None:
    """Training time from the event files alone (runs without ``run.yaml``): the span of each session, summed."""
    files = list(folder.glob(EVENTS))
    if not files:
        return None
    total = 0.0
    for file in files:
        times = [event.wall_time for event in EventFileLoader(str(file)).Load()]
        total += max(times) - min(times) if times else 0.0
    return total


def task_of(tags: set[str]) -> str | None:
    """``classification`` or ``captioning`` from the tags a folder logged (runs without ``run.yaml``'s ``kind``)."""
    if {"val/acc", "test/acc"} & tags:
        return "classification"
    if {"val/bleu_4", "test/bleu_4"} & tags:
        return "captioning"
    return None


def summarize(folder: Path) -> dict:
    """One table row for a run folder (missing values are None), with its ``task``.

    Raises:
        NotARun: the folder holds neither a logged value nor ``run.yaml``, or only an unreadable checkpoint.
    """
    if not _logged(folder):
        return from_checkpoint(folder)
    values = scalars(folder)
    record = read_run(folder)
    if not values and not record:
        raise NotARun("nothing logged and no run.yaml: a run stopped, or still setting up, before training")
    kind = "fit" if any(tag.startswith("train/") for tag in values) else record.get("stage")
    kind = kind or ("test" if any(tag.startswith("test/") for tag in values) else "validate")
    task = record.get("kind") or TASK_OF_CLASS.get(record.get("task")) or task_of(set(values))  # older runs: tags
    row = {"run": str(folder), "kind": kind, "task": task}
    status = record.get("status")
    row["status"] = "incomplete" if status == "running" else status
    if kind == "fit":
        row.update(fit_columns(folder, values, record, row["task"]))
    evaluations = (
        [folder / "test"] if kind == "fit" and (folder / "test").is_dir() else [] if kind == "fit" else [folder]
    )
    for evaluation in evaluations:
        latest = newest_session(evaluation)
        row["task"] = row["task"] or task_of(set(latest))
        for key, tag in TASKS.get(row["task"], {}).get("test", {}).items():
            row[key] = latest.get(tag, row.get(key))
        if kind != "fit":  # a validate-only session: its validation scores
            row.update(final_and_best(values, row["task"]))
    return row


def from_checkpoint(folder: Path) -> dict:
    """The row of a run known only from its ``last.ckpt`` (trained without a logger): no status, time or curves.

    Raises:
        NotARun: the checkpoint cannot be read.
    """
    checkpoint = _checkpoint(folder)
    if isinstance(checkpoint, str):
        raise NotARun(checkpoint)
    task = getattr(task_class(checkpoint), "KIND", None)
    latest = checkpoint.get("vlc_val_scores") or {}
    row = {"run": str(folder), "kind": "fit", "task": task, "status": None, "from": LAST}
    row.update(final_and_best({tag: [value] for tag, value in latest.items()}, task))
    final = TASKS.get(task, {}).get("final")
    for name, state in (checkpoint.get("callbacks") or {}).items():
        if final and f"'monitor': '{final}'" in name and state.get("best_model_score") is not None:
            row[TASKS[task]["columns"][1][0]] = float(state["best_model_score"])
    progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
    row["epochs"] = progress.get("processed")
    return row


def final_and_best(values: dict[str, list[float]], task: str | None) -> dict:
    """The last and best values of the task's validation metrics."""
    row = {}
    if task == "classification":
        val = values.get("val/acc", [])
        row["val_acc_final"], row["val_acc_best"] = (val[-1], max(val)) if val else (None, None)
    elif task == "captioning":
        bleu = values.get("val/bleu_4", [])
        row["val_bleu_4_final"], row["val_bleu_4_best"] = (bleu[-1], max(bleu)) if bleu else (None, None)
        cider = values.get("val/cider_d", [])
        row["val_cider_d_final"] = cider[-1] if cider else None
    return row


def fit_columns(folder: Path, values: dict[str, list[float]], record: dict, task: str | None) -> dict:
    """Scores, epochs, training time and parameters of a training run."""
    row = final_and_best(values, task)
    row["epochs"] = record.get("epochs", len(values.get("train/loss_epoch", [])))
    sessions = [s for s in record.get("sessions", []) if isinstance(s, dict)]
    row["train_time_s"] = sum(s.get("seconds", 0.0) for s in sessions) if sessions else logged_seconds(folder)
    trainable = values.get("params/trainable")
    row["trainable_params"] = int(trainable[-1]) if trainable else None
    return row


def columns(task: str | None) -> list[tuple[str, str]]:
    """``(key, header)`` of a task's table."""
    return COMMON + TASKS.get(task, {"columns": []})["columns"] + TAIL


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "train_time_s":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}m{seconds:02d}s"
    if key == "trainable_params":
        return f"{value:,}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict], task: str | None) -> str:
    """The rows of one task as an aligned text table (scores as fractions, time as minutes and seconds)."""
    keys = columns(task)
    cells = [[header for _, header in keys]] + [[_cell(key, row.get(key)) for key, _ in keys] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(keys))]
    lines = [
        "  ".join(text.ljust(w) if i < 3 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
        for line in cells
    ]
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    """All rows as CSV: a ``task`` column, then every task's columns (plain numbers, empty when missing).

    Raises:
        UserError: the file cannot be written.
    """
    keys = ["task"] + list(dict.fromkeys(key for task in TASKS for key, _ in columns(task)))
    values = ([round(v, 6) if isinstance(v, float) else v for v in map(row.get, keys)] for row in rows)
    try:
        with open(path, "w", newline="") as f:
            write_rows(f, keys, values)
    except OSError as err:
        raise UserError(f"--csv: cannot write {path} ({err.strerror or err})") from None


def notes(rows: list[dict], skipped: list[str]) -> list[str]:
    """The lines under the tables: the folders that gave no row, and what rows from checkpoints alone lack."""
    lines = [f"not listed: {why}" for why in skipped]
    alone = sum(1 for row in rows if row.get("from") == LAST)
    if alone:
        lines.append(
            f"{alone} run(s) known only from their {LAST} (trained without a logger): no run.yaml, so no status, "
            "training time or parameters; the latest and best validation scores are the checkpoint's"
        )
    return lines


def main(argv: list[str]) -> None:
    """Parse and run ``vlc compare RUN [RUN ...] [--csv FILE]``."""
    parser = argparse.ArgumentParser(
        prog="vlc compare",
        description="Compare runs from their logs: scores, status, epochs, training time, parameters.",
    )
    parser.add_argument("runs", nargs="+", help="run folders (logs/cifar10/scratch) or folders of runs (logs/cifar10)")
    parser.add_argument("--csv", metavar="FILE", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    folders = list(dict.fromkeys(run for path in args.runs for run in find_runs(path)))
    rows, skipped = [], []
    for folder in folders:
        try:
            rows.append(summarize(folder))
        except NotARun as why:
            skipped.append(f"{folder}: {why}")
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    tables = [format_table([r for r in rows if r["task"] == task], task) for task in tasks]
    footer = notes(rows, skipped)
    print("\n\n".join(tables + (["\n".join(footer)] if footer else [])))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
