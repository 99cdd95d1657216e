"""``vlc compare``: one table of accuracy, epochs, wall time and trainable parameters for several runs.

A run is a TensorBoard version folder (``logs/cifar10/scratch``); a folder without event files of its own
stands for every run below it (``logs/cifar10``). Each event file in a run folder is one session: the
values come from its last training session and, when ``vlc test`` logged into the same folder (same
``version``), from its last test session.
"""

import argparse
import csv
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vlc.errors import UserError

EVENTS = "events.out.tfevents.*"
COLUMNS = ("run", "val_acc_final", "val_acc_best", "test_acc", "epochs", "wall_time_s", "trainable_params")
HEADERS = ("run", "val acc", "best val acc", "test acc", "epochs", "wall time", "trainable params")


def find_runs(path: str) -> list[Path]:
    """The run folders ``path`` stands for: itself when it holds event files, else those below it.

    Raises:
        UserError: ``path`` is not a folder or has no event file in or below it.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{path}: no such folder; give run folders such as logs/cifar10/scratch, or logs/cifar10")
    if any(folder.glob(EVENTS)):
        return [folder]
    runs = sorted({file.parent for file in folder.rglob(EVENTS)})
    if not runs:
        raise UserError(f"{path}: no TensorBoard event files ({EVENTS}) in it or below it")
    return runs


def read_session(file: Path) -> tuple[float, dict[str, list]]:
    """Start time and ``tag -> scalar events`` of one event file."""
    events = EventAccumulator(str(file), size_guidance={"scalars": 0})
    events.Reload()
    return events.FirstEventTimestamp(), {tag: events.Scalars(tag) for tag in events.Tags()["scalars"]}


def summarize(run: Path) -> dict:
    """One table row for the run folder ``run`` (missing values are None)."""
    sessions = sorted((read_session(file) for file in run.glob(EVENTS)), key=lambda s: s[0])
    fits = [s for s in sessions if "val/acc" in s[1] or "train/loss_epoch" in s[1]]
    tests = [s for s in sessions if "test/acc" in s[1]]
    row = dict.fromkeys(COLUMNS)
    row["run"] = str(run)
    if fits:
        start, scalars = fits[-1]
        val = [e.value for e in scalars.get("val/acc", [])]
        row["val_acc_final"], row["val_acc_best"] = (val[-1], max(val)) if val else (None, None)
        row["epochs"] = len(scalars.get("train/loss_epoch", [])) or len(val)
        row["wall_time_s"] = max(e.wall_time for events in scalars.values() for e in events) - start
        trainable = scalars.get("params/trainable")
        row["trainable_params"] = int(trainable[-1].value) if trainable else None
    if tests:
        row["test_acc"] = tests[-1][1]["test/acc"][-1].value
    return row


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "wall_time_s":
        minutes, seconds = divmod(round(value), 60)
        return f"{minutes}m{seconds:02d}s"
    if key == "trainable_params":
        return f"{value:,}"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def format_table(rows: list[dict]) -> str:
    """The rows as an aligned text table (accuracies as fractions, wall time as minutes and seconds)."""
    cells = [list(HEADERS)] + [[_cell(key, row[key]) for key in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
        for line in cells
    ]
    return "\n".join(lines)


def write_csv(rows: list[dict], path: str) -> None:
    """The rows as CSV with the columns of ``COLUMNS`` (plain numbers, empty when missing)."""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([{k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for row in rows])


def main(argv: list[str]) -> None:
    """Parse and run ``vlc compare RUN [RUN ...] [--csv FILE]``."""
    parser = argparse.ArgumentParser(
        prog="vlc compare",
        description="Compare training runs from their TensorBoard logs: accuracy, epochs, wall time, parameters.",
    )
    parser.add_argument("runs", nargs="+", help="run folders (logs/cifar10/scratch) or folders of runs (logs/cifar10)")
    parser.add_argument("--csv", metavar="FILE", help="also write the table to this CSV file")
    args = parser.parse_args(argv)
    runs = list(dict.fromkeys(run for path in args.runs for run in find_runs(path)))
    rows = [summarize(run) for run in runs]
    print(format_table(rows))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {args.csv}", file=sys.stderr)
