"""``vlc sweep``: a grid of real ``vlc fit`` runs, each its own run folder, one table, resumed after SIGTERM."""

import pytest
import yaml
from helpers import CONFIGS, run_cli, run_fails

from vlc.cli import main
from vlc.errors import UserError
from vlc.sweep import label, parse_grid, points, split_values

TINY_DEMO = [
    "--config",
    str(CONFIGS / "demo" / "classify.yaml"),
    "--data.num_images=256",
    "--data.batch_size=32",
    "--trainer.max_epochs=1",
    "--trainer.limit_val_batches=1",
    "--trainer.enable_progress_bar=false",
    "--model.init_args.backbone.init_args.widths=[8, 16]",
    "--model.init_args.backbone.init_args.stem_width=8",
]
GRID = ["--grid", "trainer.limit_train_batches=2,6", "--grid", "model.label_smoothing=0,0.1"]


def test_grid_values_keep_lists_and_every_combination_is_a_point():
    assert split_values("[8, 16],[16, 32], 3") == ["[8, 16]", "[16, 32]", "3"]
    assert parse_grid("--model.dropout=0,0.1") == ("model.dropout", ["0", "0.1"])
    grid = [("a.x", ["1", "2"]), ("b.y", ["3"])]
    assert [label(p) for p in points(grid, [0, 1])] == [
        "x=1 y=3 seed=0",
        "x=1 y=3 seed=1",
        "x=2 y=3 seed=0",
        "x=2 y=3 seed=1",
    ]
    for bad in ("model.dropout", "=0,1", "model.dropout=", "model.dropout=0,,1"):
        with pytest.raises(UserError, match="expected KEY=VALUE,VALUE"):
            parse_grid(bad)


def test_a_2x2_sweep_of_the_demo_writes_four_runs_and_one_table_and_resumes_after_sigterm(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    # SIGTERM at step 3, once: the runs of 2 steps never reach it, the third point (6 steps) stops after its 4th
    fault = ["--trainer.callbacks+=faults.Fault", "--trainer.callbacks.step=3", "--trainer.callbacks.fault=SIGTERM"]
    fault += [f"--trainer.callbacks.once={tmp_path / 'fired'}"]
    sweep = ["sweep", *GRID, "--name=s", *TINY_DEMO, *fault]
    code, err = run_cli(capsys, sweep)
    assert code == 143 and "vlc sweep s: interrupted; run the same command again to resume it" in err
    state = yaml.safe_load((tmp_path / "logs" / "sweeps" / "s.yaml").read_text())
    assert [p["status"] for p in state["points"]] == ["complete", "complete", "interrupted", "pending"]

    code, err = run_cli(capsys, sweep)  # the same command: the sweep goes on
    assert code == 0, err
    state = yaml.safe_load((tmp_path / "logs" / "sweeps" / "s.yaml").read_text())
    assert [p["status"] for p in state["points"]] == ["complete"] * 4
    runs = sorted((tmp_path / "logs" / "demo-classify").glob("s_*/run.yaml"))
    assert [run.parent.name for run in runs] == ["s_0", "s_1", "s_2", "s_3"]
    sessions = [len(yaml.safe_load(run.read_text())["sessions"]) for run in runs]
    assert sessions == [1, 1, 2, 1]  # finished runs kept, the interrupted one resumed from its last.ckpt
    assert yaml.safe_load(runs[2].read_text())["steps"] == 6


def test_the_table_lists_every_point_and_the_spread_over_seeds(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "sweep",
            "--grid",
            "model.label_smoothing=0,0.1",
            "--seeds",
            "0,1",
            *TINY_DEMO,
            "--trainer.limit_train_batches=2",
        ]
    )
    out = capsys.readouterr().out
    table = out[out.rindex("run ") :].splitlines()
    labels = [f"label_smoothing={value} seed={seed}" for value in ("0", "0.1") for seed in (0, 1)]
    assert [line.split("  ")[0] for line in table[1:5]] == labels
    assert all(" complete " in line for line in table[1:5])
    assert "label_smoothing=0: best val acc " in out and "over 2 seed(s)" in out


def test_mistakes_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert "vlc sweep needs --grid" in run_fails(capsys, ["sweep", *TINY_DEMO])
    assert "vlc sweep needs --config FILE" in run_fails(capsys, ["sweep", "--grid", "model.dropout=0,1"])
    assert "--seeds 'a,b': expected whole numbers" in run_fails(capsys, ["sweep", "--seeds", "a,b", *TINY_DEMO])
    err = run_fails(capsys, ["sweep", "--grid", "model.no_such_option=1,2", *TINY_DEMO])
    assert "no_such_option" in err and len(err.strip().splitlines()) == 1  # the first point's error stops the sweep
    run_cli(capsys, ["sweep", "--name=x", "--grid", "model.dropout=0", *TINY_DEMO, "--trainer.limit_train_batches=1"])
    err = run_fails(capsys, ["sweep", "--name=x", "--grid", "model.dropout=0.5", *TINY_DEMO])
    assert "--name x: logs/sweeps/x.yaml holds another sweep" in err
