"""``vlc compare``: one table per task of the runs found under some folders, read from their logs.

A run is a log folder holding a ``fit``'s event files (``logs/<experiment>/<version>``); the sessions of a resumed
run are one run (TensorBoard drops what a resumed session replaced). The ``validate/`` and ``test/`` folders inside a
run hold the evaluations of its checkpoints: the newest test's scores join the run's row. A ``validate`` or ``test`` of
a checkpoint whose run is unknown is a row of its own. ``run.yaml`` (``vlc.callbacks.RunRecord``) gives each run's
status (``complete``; ``incomplete``: still running, or killed; ``interrupted``; ``diverged``; ``failed``), its
epochs and its training time.
"""

import argparse
import csv
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from vlc.callbacks.run_record import read_run
from vlc.errors import UserError

EVENTS = "events.out.tfevents.*"
STAGES = ("validate", "test")
"""Sub-folders of a run that hold evaluations of its checkpoints."""

COMMON = [("run", "run"), ("kind", "kind"), ("status", "status")]
TAIL = [("epochs", "epochs"), ("train_time_s", "train time"), ("trainable_params", "trainable params")]
TASKS = {
    "classification": {
        "columns": [("val_acc_final", "val acc"), ("val_acc_best", "best val acc"), ("test_acc", "test acc")],
        "final": "val/acc",
        "test": {"test_acc": "test/acc"},
    },
    "captioning": {
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


def find_runs(path: str) -> list[Path]:
    """The log folders ``path`` stands for: itself when it holds event files, else those below it.

    A run's ``validate/`` and ``test/`` folders are not runs of their own: they join their run's row.

    Raises:
        UserError: ``path`` is not a folder or has no event file in or below it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{path}: no such folder; give run folders such as logs/cifar10/scratch, or logs/cifar10")
    folders = sorted({file.parent for file in folder.rglob(EVENTS)} | ({folder} if any(folder.glob(EVENTS)) else set()))
    if not folders:
        raise UserError(f"{path}: no TensorBoard event files ({EVENTS}) in it or below it")
    return [f for f in folders if not (f.name in STAGES and any(f.parent.glob(EVENTS)))]


def scalars(folder: Path) -> dict[str, list]:
    """``tag -> scalar events`` of every session in ``folder`` (what a resumed session replaced is dropped)."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


def newest_session(folder: Path) -> dict[str, float]:
    """``tag -> last value`` of the newest event file in ``folder`` (the latest evaluation)."""
    files = sorted(folder.glob(EVENTS))
    values = {}
    for event in EventFileLoader(str(files[-1])).Load() if files else []:
        for value in event.summary.value:
            if value.HasField("tensor") or value.HasField("simple_value"):
                values[value.tag] = value.simple_value if value.HasField("simple_value") else _tensor(value)
    return values


def _tensor(value) -> float | None:
    data = value.tensor.float_val or value.tensor.double_val
    return float(data[0]) if data else None


def logged_seconds(folder: Path) -> float:
    """Training time from the event files alone (runs without ``run.yaml``): the span of each session, summed."""
    total = 0.0
    for file in folder.glob(EVENTS):
        times = [event.wall_time for event in EventFileLoader(str(file)).Load()]
        total += max(times) - min(times) if times else 0.0
    return total


def task_of(tags: set[str]) -> str | None:
    """``classification`` or ``captioning`` from the tags a folder logged."""
    if {"val/acc", "test/acc"} & tags:
        return "classification"
    if {"val/bleu_4", "test/bleu_4"} & tags:
        return "captioning"
    return None


def summarize(folder: Path) -> dict:
    """One table row for a log folder (missing values are None), with its ``task``."""
    values = scalars(folder)
    record = read_run(folder)
    kind = "fit" if any(tag.startswith("train/") for tag in values) else record.get("stage")
    kind = kind or ("test" if any(tag.startswith("test/") for tag in values) else "validate")
    row = {"run": str(folder), "kind": kind, "task": task_of(set(values))}
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


def final_and_best(values: dict[str, list], task: str | None) -> dict:
    """The last and best values of the task's validation metrics."""
    row = {}
    if task == "classification":
        val = [e.value for e in values.get("val/acc", [])]
        row["val_acc_final"], row["val_acc_best"] = (val[-1], max(val)) if val else (None, None)
    elif task == "captioning":
        bleu = [e.value for e in values.get("val/bleu_4", [])]
        row["val_bleu_4_final"], row["val_bleu_4_best"] = (bleu[-1], max(bleu)) if bleu else (None, None)
        cider = values.get("val/cider_d", [])
        row["val_cider_d_final"] = cider[-1].value if cider else None
    return row


def fit_columns(folder: Path, values: dict[str, list], record: dict, task: str | None) -> dict:
    """Scores, epochs, training time and parameters of a training run."""
    row = final_and_best(values, task)
    row["epochs"] = record.get("epochs", len(values.get("train/loss_epoch", [])))
    sessions = [s for s in record.get("sessions", []) if isinstance(s, dict)]
    row["train_time_s"] = sum(s.get("seconds", 0.0) for s in sessions) if sessions else logged_seconds(folder)
    trainable = values.get("params/trainable")
    row["trainable_params"] = int(trainable[-1].value) if trainable else None
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
    """All rows as CSV: a ``task`` column, then every task's columns (plain numbers, empty when missing)."""
    keys = ["task"] + list(dict.fromkeys(key for task in TASKS for key, _ in columns(task)))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows([{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for row in rows])


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
    rows = [summarize(folder) for folder in folders]
    tasks = list(dict.fromkeys(row["task"] for row in rows))
    print("\n\n".join(format_table([r for r in rows if r["task"] == task], task) for task in tasks))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
