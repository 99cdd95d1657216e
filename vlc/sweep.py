"""``vlc sweep``: a grid of ``vlc fit`` runs, one after another, resumable, ending with the table of its runs.

    vlc sweep --config configs/demo/classify.yaml --grid model.label_smoothing=0,0.1 --grid data.batch_size=32,64 \
        --seeds 0,1,2 [any other vlc fit option]

Each point of the grid (every combination of the values, each with every seed) is a normal ``vlc fit`` of the
experiment with ``--KEY=VALUE`` (and ``--seed_everything=SEED``) added, logged as version ``<sweep>_<k>`` of the
experiment (``logs/<experiment>/<sweep>_<k>``, its checkpoints in ``checkpoints/<experiment>/<sweep>_<k>``). The
sweep's state is ``logs/sweeps/<sweep>.yaml``: its command, and each point's options, version and status. The sweep
is named by ``--name`` or by a hash of its command, so running the same command again after an interruption
continues it: finished points are kept, an interrupted one resumes from its ``last.ckpt``, the rest start. A point
that diverges is recorded as such and the sweep goes on; a mistake in the options (the first point's one-line error)
stops it. The sweep ends with ``vlc compare``'s table of its runs and, with several seeds, the mean and spread of
each setting's best validation score.
"""

import argparse
import hashlib
import itertools
import json
import statistics
import sys
from pathlib import Path

import yaml

from vlc.errors import Diverged, UserError

SWEEPS = Path("logs") / "sweeps"
"""Where each sweep's state is kept: ``<sweep>.yaml``."""
INTERRUPTED = (130, 143)
"""The exit codes of a run stopped by SIGINT or SIGTERM (``vlc.callbacks.interruption``)."""


def split_values(text: str) -> list[str]:
    """``0.1,0.3`` -> ``["0.1", "0.3"]``; commas inside brackets or braces stay (``[8, 16],[16, 32]``)."""
    values, depth, current = [], 0, ""
    for char in text:
        depth += (char in "[{") - (char in "]}")
        if char == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += char
    return [*values, current.strip()]


def parse_grid(option: str) -> tuple[str, list[str]]:
    """``KEY=V1,V2`` -> ``(KEY, [V1, V2])``.

    Raises:
        UserError: not of that form.
    """
    key, sep, values = option.partition("=")
    key = key.strip().removeprefix("--")
    if not sep or not key or not values.strip() or "" in split_values(values):
        raise UserError(f"--grid {option!r}: expected KEY=VALUE,VALUE,... such as model.dropout=0,0.1")
    return key, split_values(values)


def points(grid: list[tuple[str, list[str]]], seeds: list[int] | None) -> list[dict]:
    """Every combination of the grid's values, each with every seed: ``{"settings": {...}, "seed": s}``."""
    keys = [key for key, _ in grid]
    combos = itertools.product(*(values for _, values in grid)) if grid else [()]
    return [
        {"settings": dict(zip(keys, combo)), "seed": seed}
        for combo in combos
        for seed in (seeds if seeds is not None else [None])
    ]


def label(point: dict) -> str:
    """``label_smoothing=0.1 batch_size=32 seed=0``: a point by the last part of its keys."""
    parts = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point["settings"].items()]
    return " ".join(parts + ([f"seed={point['seed']}"] if point["seed"] is not None else []))


def fit_args(point: dict) -> list[str]:
    """The options a point adds to the sweep's ``vlc fit``."""
    args = [f"--{key}={value}" for key, value in point["settings"].items()]
    args += [f"--seed_everything={point['seed']}"] if point["seed"] is not None else []
    return [*args, f"--trainer.logger.init_args.version={point['version']}"]


def found(pattern: str) -> Path | None:
    """The one path matching ``pattern`` (relative to the working folder), or None."""
    matches = sorted(Path().glob(pattern))
    return matches[0] if matches else None


def load_state(name: str, command: dict, grid: list, seeds: list[int] | None) -> dict:
    """The sweep's state: read back (its points as they were left) or new (every point pending).

    Raises:
        UserError: a sweep of this ``--name`` was another command.
    """
    path = SWEEPS / f"{name}.yaml"
    if path.is_file():
        state = yaml.safe_load(path.read_text())
        if state["command"] != command:
            raise UserError(f"--name {name}: {path} holds another sweep ({state['command']}); use another name")
        return state
    state = {"command": command, "points": points(grid, seeds)}
    for k, point in enumerate(state["points"]):
        point.update(version=f"{name}_{k}", status="pending")
    return state


def save_state(name: str, state: dict) -> None:
    """Write the state at once and whole (a new file moved over the old one)."""
    SWEEPS.mkdir(parents=True, exist_ok=True)
    path = SWEEPS / f"{name}.yaml"
    temporary = path.with_suffix(".yaml.tmp")
    temporary.write_text(yaml.safe_dump(state, sort_keys=False))
    temporary.replace(path)


def run_point(rest: list[str], point: dict) -> str:
    """Fit one point (resuming its ``last.ckpt`` if it has one); its status: complete, diverged or interrupted.

    Raises:
        SystemExit: the run stopped on a user mistake (exit 2).
    """
    from vlc.cli import main

    args = ["fit", *rest, *fit_args(point)]
    last = found(f"checkpoints/*/{point['version']}/last.ckpt")
    if last is not None:
        args += [f"--ckpt_path={last}"]
    try:
        main(args)
    except SystemExit as stop:
        if stop.code in (0, None):  # its checkpoint had already trained to the end (vlc.cli.from_checkpoint)
            return "complete"
        if stop.code in INTERRUPTED:
            return "interrupted"
        if stop.code == Diverged.exit_code:
            return "diverged"
        raise
    return "complete"


def table(state: dict) -> str:
    """``vlc compare``'s table of the sweep's runs (labelled by their settings) and the mean and spread over seeds."""
    from vlc.compare import TASKS, NotARun, format_table, summarize

    rows = []
    for point in state["points"]:
        run = found(f"*/*/{point['version']}/run.yaml")
        try:
            row = summarize(run.parent) if run is not None else None
        except NotARun:
            row = None
        if row is not None:
            rows.append({**row, "run": label(point), "point": point})
    if not rows:
        return "no run of the sweep has logged anything yet"
    task = rows[0]["task"]
    lines = [format_table(rows, task)]
    best, header = next(((k, h) for k, h in TASKS.get(task, {}).get("columns", []) if "best" in k), (None, None))
    seeds = {point["seed"] for point in state["points"]}
    if best is None or len(seeds) < 2:
        return "\n".join(lines)
    lines.append("")
    for settings, group in itertools.groupby(rows, key=lambda row: json.dumps(row["point"]["settings"])):
        scores = [row[best] for row in group if row.get(best) is not None]
        name = label({"settings": json.loads(settings), "seed": None}) or "(the config)"
        spread = f" ± {statistics.stdev(scores):.4f}" if len(scores) > 1 else ""
        mean = f"{statistics.mean(scores):.4f}{spread}" if scores else "-"
        lines.append(f"{name}: {header} {mean} over {len(scores)} seed(s)")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Parse and run ``vlc sweep --grid KEY=V1,V2 ... [--seeds S1,S2] [--name NAME] FIT_OPTIONS``."""
    parser = argparse.ArgumentParser(
        prog="vlc sweep",
        description="Run vlc fit over a grid of settings, one run after another; run it again to resume.",
        epilog="Every other option (--config FILE, --trainer.max_epochs 3, ...) goes to each vlc fit.",
    )
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="a setting and its values")
    parser.add_argument("--seeds", metavar="S1,S2", help="run every setting with each of these seeds")
    parser.add_argument("--name", help="the sweep's name (default: a hash of its command)")
    args, rest = parser.parse_known_args(argv)
    if not args.grid and not args.seeds:
        raise UserError("vlc sweep needs --grid KEY=V1,V2 (one or more) or --seeds S1,S2")
    if not any(arg == "--config" or arg.startswith("--config=") for arg in rest):
        raise UserError("vlc sweep needs --config FILE: the experiment each point runs")
    grid = [parse_grid(option) for option in args.grid]
    try:
        seeds = [int(seed) for seed in split_values(args.seeds)] if args.seeds else None
    except ValueError:
        raise UserError(f"--seeds {args.seeds!r}: expected whole numbers such as 0,1,2") from None
    command = {"grid": args.grid, "seeds": args.seeds, "fit": rest}  # what the sweep is, whatever its name
    name = args.name or "sweep-" + hashlib.sha1(json.dumps(command).encode()).hexdigest()[:8]
    state = load_state(name, command, grid, seeds)
    todo = [point for point in state["points"] if point["status"] != "complete"]
    print(f"vlc sweep {name}: {len(state['points'])} runs, {len(todo)} to do (state: {SWEEPS / name}.yaml)")
    for point in todo:
        print(f"\n== {name} run {state['points'].index(point) + 1}/{len(state['points'])}: {label(point)}", flush=True)
        point["status"] = "running"
        save_state(name, state)
        try:
            point["status"] = run_point(rest, point)
        except BaseException:
            point["status"] = "failed"
            raise
        finally:
            save_state(name, state)
        if point["status"] == "interrupted":
            print(f"vlc sweep {name}: interrupted; run the same command again to resume it", file=sys.stderr)
            raise SystemExit(INTERRUPTED[1])
    print(f"\nvlc sweep {name}:\n{table(state)}")
