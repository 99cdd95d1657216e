"""``vlc compare``: runs, their evaluations and their status read back from real tiny runs' logs; bad input."""

import csv

import pytest
from cifar_helpers import write_cifar_pickles
from helpers import CONFIGS, TINY_AIRBENCH, events

from vlc.cli import main


def scratch(root, *extra: str) -> list[str]:
    return [
        "--config",
        str(CONFIGS / "cifar10" / "airbench.yaml"),
        f"--data.root={root}",
        "--data.image_size=16",
        "--data.batch_size=10",
        "--data.val_fraction=0.25",
        "--trainer.max_time=null",
        "--trainer.log_every_n_steps=1",
        *TINY_AIRBENCH,
        *extra,
    ]


def test_compare_fit_validate_and_test_sessions(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = write_cifar_pickles(tmp_path / "cifar", per_class=4).parent
    main(["fit", *scratch(root, "--trainer.max_epochs=1")])  # version_0
    main(["test", *scratch(root), "--ckpt_path=last"])  # evaluates version_0: filed under it
    main(["fit", *scratch(root, "--trainer.max_epochs=2")])  # version_1: a repeated run is a new run
    main(["validate", *scratch(root)])  # no checkpoint: a validate-only session of its own (version_2)
    with pytest.raises(SystemExit) as exit_info:  # version_3: interrupted by SIGTERM at step 2
        main(
            [
                "fit",
                *scratch(root, "--trainer.max_epochs=2", "--trainer.callbacks+=faults.Fault"),
                "--trainer.callbacks.step=2",
                "--trainer.callbacks.fault=SIGTERM",
            ]
        )
    assert exit_info.value.code == 143
    capsys.readouterr()

    main(["compare", "logs/cifar10", "--csv", "table.csv"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:5] == ["run", "kind", "status", "val", "acc"] and "trainable params" in lines[0]
    rows = {line.split()[0].rsplit("/", 1)[-1]: line.split() for line in lines[1:]}
    assert set(rows) == {"version_0", "version_1", "version_2", "version_3"}  # version_0/test is not a run
    assert rows["version_0"][1:3] == ["fit", "complete"] and rows["version_0"][5] != "-"  # its test accuracy
    assert rows["version_1"][1:3] == ["fit", "complete"] and rows["version_1"][5] == "-"  # not tested
    assert rows["version_2"][1:3] == ["validate", "complete"] and rows["version_2"][6] == "-"  # no epochs
    assert rows["version_3"][1:3] == ["fit", "interrupted"]
    assert rows["version_0"][6] == "1" and rows["version_1"][6] == "2"  # epochs
    assert rows["version_0"][8] == "6,002" == rows["version_1"][8]  # 24 + 5,760 conv + 48 norm biases + 170 head
    with open(tmp_path / "table.csv") as f:
        table = {row["run"].rsplit("/", 1)[-1]: row for row in csv.DictReader(f)}
    assert table["version_0"]["task"] == "classification" and 0.0 <= float(table["version_0"]["test_acc"]) <= 1.0
    assert table["version_1"]["test_acc"] == ""
    assert float(table["version_1"]["val_acc_best"]) >= float(table["version_1"]["val_acc_final"])
    assert 0 < float(table["version_0"]["train_time_s"]) < 120

    run = tmp_path / "logs" / "cifar10" / "airbench" / "version_1"
    assert {"lr-SGD/other", "lr-SGD/norm_bias"} <= set(events(run).Tags()["scalars"])  # a curve a group
    main(["compare", str(run)])  # one run folder
    assert capsys.readouterr().out.strip().splitlines()[1].startswith(f"{run} ")


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_compare_bad_input(tmp_path, monkeypatch, capsys, make):
    monkeypatch.chdir(tmp_path)
    if make == "empty":
        (tmp_path / "runs" / "v0").mkdir(parents=True)
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "runs"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("vlc: error: runs: ") and ("no such folder" if make == "missing" else "no TensorBoard") in err
