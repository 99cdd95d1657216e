"""The benchmark suite runs end to end: ``benchmarks/suite.py --tiny`` through the real code, then its files read back.

The figures of the tiny sizes mean nothing; the test checks that every entry measures something and reports it.
"""

import json
import math
import sys

import pytest
from helpers import REPO

sys.path.append(str(REPO / "benchmarks"))  # the suite imports its sibling modules by name, as its scripts do

import suite  # noqa: E402


def values(figure: dict) -> list[float]:
    return figure["value"] if isinstance(figure["value"], list) else [figure["value"]]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("PL_GLOBAL_SEED", raising=False)  # restored afterwards: vlc fit seeds the process
        code = suite.main(
            ["--tiny", "--threads", "1", "--json", str(folder / "r.json"), "--markdown", str(folder / "r.md")]
        )
    return code, json.loads((folder / "r.json").read_text()), (folder / "r.md").read_text()


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
    assert rows["beam_search"]["details"]["differ"] == 0  # batched and one-by-one captions are identical
    for key in ("cpu_model", "cpu_capability", "cores", "torch", "lightning", "date"):
        assert data["hardware"][key]


def test_markdown_table_has_a_row_per_measurement(results):
    _, data, text = results
    assert "| entry | what is compared | figure A | figure B | ratio / verdict |" in text
    assert data["hardware"]["cpu_model"] in text and data["suite"]["command"] in text
    assert sum(line.startswith(("| train_loop", "| scaling/", "| compile")) for line in text.splitlines()) == 5
