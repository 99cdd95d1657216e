"""``vlc compare``: a table of two real tiny runs read back from their TensorBoard logs; bad input."""

import csv

import pytest
from cifar_helpers import write_cifar_pickles
from helpers import CONFIGS, TINY_NET, events

from vlc.cli import main


def scratch(root, version: str, *extra: str) -> list[str]:
    return [
        "--config",
        str(CONFIGS / "cifar10" / "scratch.yaml"),
        f"--data.root={root}",
        "--data.image_size=16",
        "--data.batch_size=10",
        "--data.val_fraction=0.25",
        "--trainer.max_time=null",
        "--trainer.log_every_n_steps=1",
        f"--trainer.logger.init_args.version={version}",
        *TINY_NET,
        *extra,
    ]


def test_compare_two_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    root = write_cifar_pickles(tmp_path / "cifar", per_class=4).parent
    main(["fit", *scratch(root, "run_a", "--trainer.max_epochs=1")])
    main(["test", *scratch(root, "run_a"), "--ckpt_path=checkpoints/cifar10/scratch/last.ckpt"])
    main(["fit", *scratch(root, "run_b", "--trainer.max_epochs=2")])
    capsys.readouterr()

    main(["compare", "logs/cifar10", "--csv", "table.csv"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["run", "val", "acc"] and "trainable params" in lines[0]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"logs/cifar10/run_a", "logs/cifar10/run_b"}
    assert rows["logs/cifar10/run_b"][3] == "-"  # not tested
    assert rows["logs/cifar10/run_a"][4] == "1" and rows["logs/cifar10/run_b"][4] == "2"  # epochs
    assert rows["logs/cifar10/run_a"][6] == "5,346" == rows["logs/cifar10/run_b"][6]
    with open(tmp_path / "table.csv") as f:
        table = {row["run"]: row for row in csv.DictReader(f)}
    assert (
        0.0 <= float(table["logs/cifar10/run_a"]["test_acc"]) <= 1.0 and table["logs/cifar10/run_b"]["test_acc"] == ""
    )
    assert float(table["logs/cifar10/run_b"]["val_acc_best"]) >= float(table["logs/cifar10/run_b"]["val_acc_final"])
    assert 0 < float(table["logs/cifar10/run_a"]["wall_time_s"]) < 120

    assert "lr-SGD" in events(tmp_path / "logs" / "cifar10" / "run_b").Tags()["scalars"]  # one group: one lr curve
    main(["compare", "logs/cifar10/run_b"])  # one run folder
    assert capsys.readouterr().out.strip().splitlines()[1].startswith("logs/cifar10/run_b ")


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
