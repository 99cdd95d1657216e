"""The benchmark suite runs end to end: ``benchmarks/suite.py --tiny`` through the real code, then its files read back.

The figures of the tiny sizes mean nothing; the test checks that every entry measures something and reports it, a
row per shipped classifier network for train_loop and flops; ``benchmarks/compute.py`` counts a run's FLOPs.
"""

import json
import math
import os
import subprocess
import sys

import pytest
from helpers import REPO

sys.path.append(str(REPO / "benchmarks"))  # the suite imports its sibling modules by name, as its scripts do

import compute  # noqa: E402
import suite  # noqa: E402
from classifier import NETWORKS  # noqa: E402


def values(figure: dict) -> list[float]:
    return figure["value"] if isinstance(figure["value"], list) else [figure["value"]]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """The suite as its users run it, in a process of its own: run in the test process, it left something (a weakref,
    not yet found) that made a later ddp_spawn fit fail to pickle its process."""
    folder = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k != "PL_GLOBAL_SEED"}
    args = ["--tiny", "--threads", "1", "--json", str(folder / "r.json"), "--markdown", str(folder / "r.md")]
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "suite.py"), *args], env=env, cwd=folder)
    return run.returncode, json.loads((folder / "r.json").read_text()), (folder / "r.md").read_text()


def test_every_entry_reports_positive_finite_figures(results):
    code, data, _ = results
    rows = {row["name"]: row for row in data["rows"]}
    assert code == 0, [row["error"] for row in data["rows"] if row["error"]]
    assert {row["entry"] for row in data["rows"]} == set(suite.ENTRIES)
    assert {"scaling/data", "scaling/vocab", "scaling/beam"} <= set(rows)
    assert rows["compile"]["skipped"]  # too slow for --tiny: skipped with its reason
    for row in data["rows"]:
        if row["skipped"]:
            continue
        assert row["error"] is None
        for figure in (row["a"], row["b"]):
            for value in values(figure):
                assert math.isfinite(value), (row["name"], figure)
                assert value > 0 or (figure["unit"] == "MiB" and value == 0), (row["name"], figure)
        assert row["ratio"] is None or (math.isfinite(row["ratio"]) and row["ratio"] > 0)
    for entry in ("train_loop", "flops"):  # a row per shipped classifier network, each its own
        assert {name for name in rows if name.startswith(f"{entry}/")} == {f"{entry}/{n}" for n in NETWORKS}
    for name, (config, _) in NETWORKS.items():  # each row names the network it trained, and its config
        assert f"{name} (" in rows[f"train_loop/{name}"]["compared"]
        assert str(config.relative_to(REPO)) in rows[f"flops/{name}"]["compared"]
    assert rows["flops/resnet18"]["details"]["flops_per_image"] > 10 * rows["flops/cnn"]["details"]["flops_per_image"]
    assert set(rows["flops/cnn"]["details"]["matmul_peak_flops_per_s"]) == {"bf16", "fp32"}
    assert rows["beam_search"]["details"]["differ"] == 0  # batched and one-by-one captions are identical
    for key in ("cpu_model", "cpu_capability", "cores", "torch", "lightning", "date"):
        assert data["hardware"][key]


def test_markdown_table_has_a_row_per_measurement(results):
    _, data, text = results
    assert "| entry | what is compared | figure A | figure B | ratio / verdict |" in text
    assert data["hardware"]["cpu_model"] in text and data["suite"]["command"] in text
    lines = text.splitlines()
    assert sum(line.startswith(("| train_loop/", "| flops/")) for line in lines) == 2 * len(NETWORKS)
    assert sum(line.startswith(("| scaling/", "| compile")) for line in lines) == 4


def test_compute_counts_the_airbench_run_close_to_its_paper(capsys):
    """airbench94: 0.36 PFLOP for 9.9 epochs of 50,000 images and its test-time views (6) on 10,000 test images."""
    args = ["--config", str(REPO / "configs/cifar10/airbench.yaml"), "--epochs", "9.9", "--matmul", "0"]
    test = ["--test-images", "10000", "--test-views", "6"]
    assert compute.main([*args, "--images", "50000", "--val-images", "0", *test]) == 0
    total = capsys.readouterr().out.splitlines()[-1]
    assert total.startswith("total: ") and total.endswith(" PFLOP"), total
    assert abs(float(total.split()[1]) - 0.36) < 0.36 * 0.05, total
    recipe = compute.Recipe.read(REPO / "configs/cifar10/airbench.yaml")
    one, two = compute.compute(recipe, 1000, 1), compute.compute(recipe, 1000, 2)
    assert two["training"] == 2 * one["training"] and one["validation"] > 0  # 111 images held out, 2 views


def test_compute_refuses_a_config_without_a_classifier(capsys):
    with pytest.raises(SystemExit) as exit_:
        compute.main(["--config", str(REPO / "configs/coco/attention.yaml"), "--images", "10", "--epochs", "1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith("compute.py: error: --config ") and "backbone missing; expected a classifier config" in err


def test_a_failing_network_gets_its_own_row_and_the_others_go_on(tmp_path, monkeypatch):
    """``--networks`` picks the rows; a network whose training fails (here a config made unreadable by the test, as a
    bad edit would) reports its error in its row, and the next network is still measured."""
    args = suite.parse_args(["--tiny", "--networks", "airbench32", "cnn"])
    bench = suite.Suite(suite.MODES[args.mode], "32-true", tmp_path, networks=args.networks)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [not, a, mapping\n")
    bench.recipes["airbench32"].path = broken  # vlc fit of airbench32 now reads a broken config
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    rows = {row.name: row for row in bench.train_loop()}
    assert list(rows) == ["train_loop/airbench32", "train_loop/cnn"]
    assert rows["train_loop/airbench32"].error and rows["train_loop/airbench32"].a is None
    assert rows["train_loop/cnn"].error is None and rows["train_loop/cnn"].a.value > 0
    assert bench.flops()[0].error == rows["train_loop/airbench32"].error  # not trained a second time
