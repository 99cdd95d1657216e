"""vlc report on the prediction files of real `vlc predict` runs of a tiny classifier: the page read back as HTML."""

import csv
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import CONFIGS, run_cli, run_fails, tiny_classifier_fit, write_tinyimagenet30
from PIL import Image
from torchmetrics.classification import MulticlassF1Score, MulticlassPrecision, MulticlassRecall

from vlc.cli import main

CLASSES = ("baboon", "banana", "bee")


class Page(HTMLParser):
    """The tags of an HTML page: every (tag, attributes) pair, and the text of each table's body rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.rows: dict[str, list[list[str]]] = {}  # table class -> its rows' cells
        self._table, self._cells = None, None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("class", "")
            self.rows.setdefault(self._table, [])
        elif tag == "tr" and self._table is not None:
            self._cells = []
            self.rows[self._table].append(self._cells)
        elif tag in ("td", "th") and self._cells is not None:
            self._cells.append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = self._cells = None

    def handle_data(self, data):
        if self._cells:
            self._cells[-1] += data.strip()

    def find(self, tag: str, css: str | None = None) -> list[dict]:
        return [a for t, a in self.tags if t == tag and (css is None or css in a.get("class", "").split())]

    def external(self) -> list[str]:
        """Every src or href that is not a data: URI or a fragment."""
        links = [a.get(key) for _, a in self.tags for key in ("src", "href") if a.get(key)]
        return [link for link in links if not link.startswith(("data:", "#"))]


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A tiny classifier trained for one short epoch on 3 classes, and its predictions of the test set (CSV, JSON)."""
    work = tmp_path_factory.mktemp("report")
    labels = write_tinyimagenet30(work / "data", CLASSES, per_class=6, test_per_class=3)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(tiny_classifier_fit(work / "data", "--trainer.limit_train_batches=2"))
        ckpt = next((work / "checkpoints").rglob("last.ckpt"))
        for suffix in ("csv", "json"):
            main(
                [
                    "predict",
                    "--config",
                    str(CONFIGS / "predict" / "classify.yaml"),
                    f"--ckpt_path={ckpt}",
                    f"--data.predict_dir={work / 'data' / 'test_set'}",
                    "--data.image_size=16",
                    f"--writer.output={work / 'out' / f'pred.{suffix}'}",
                ]
            )
        yield work, labels
    finally:
        os.chdir(cwd)


def report(capsys, *args: str) -> tuple[int, str]:
    return run_cli(capsys, ["report", *map(str, args)])


def error(err: str) -> str:
    """The one ``vlc: error:`` line of a failed command's stderr (warnings may come before it)."""
    lines = [line for line in err.splitlines() if line.startswith("vlc: error:")]
    assert len(lines) == 1 and err.endswith(lines[0] + "\n"), err
    return lines[0]


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_classifier_report_with_labels_scores_every_image_inline(predicted, capsys):
    work, labels = predicted
    out = work / "out" / "report.html"
    code, err = report(
        capsys, work / "out" / "pred.csv", "--output", out, "--labels", labels, "--classes", work / "data" / "class.txt"
    )
    assert code == 0, err
    page = Page(out.read_text())
    rows = read_csv(work / "out" / "pred.csv")
    assert page.external() == [] and not page.find("script") and not page.find("link")
    assert len(page.find("figure", "prediction")) == len(rows) == 9
    assert all(img["src"].startswith("data:image/") for img in page.find("img"))
    classes = page.rows["classes"]
    assert [r[0] for r in classes[1:-1]] == list(CLASSES)  # header, one row per class, the macro row

    truth = {r["Id"]: int(r["Category"]) for r in read_csv(labels)}
    target = torch.tensor([truth[Path(r["file"]).name] for r in rows])
    preds = torch.tensor([int(r["class_index"]) for r in rows])
    summary = dict(r[:2] for r in page.rows["summary"])
    assert float(summary["accuracy"]) == pytest.approx((preds == target).float().mean().item(), abs=1e-4)
    for column, metric in ((1, MulticlassPrecision), (2, MulticlassRecall), (3, MulticlassF1Score)):
        expected = metric(3, average=None, zero_division=0)(preds, target).tolist()
        for row, value in zip(classes[1:-1], expected):
            assert float(row[column].replace("–", "0")) == pytest.approx(value, abs=1e-3)
        macro = metric(3, average="macro")(preds, target).item()
        assert float(classes[-1][column]) == pytest.approx(macro, abs=1e-3)
    assert [int(r[4]) for r in classes[1:-1]] == [3, 3, 3]  # support

    matrix = page.rows["confusion"]
    counts = {(r[0], name): int(c or 0) for r in matrix[1:] for name, c in zip(matrix[0][1:], r[1:])}
    assert sum(counts.values()) == 9
    for name, t in zip(CLASSES, range(3)):
        for other, p in zip(CLASSES, range(3)):
            assert counts[name, other] == int(((target == t) & (preds == p)).sum())
    mistakes = page.find("figure", "mistake")
    assert len(mistakes) == int((preds != target).sum())


def test_most_confident_mistakes_come_first(predicted, capsys, tmp_path):
    work, labels = predicted
    rows = read_csv(work / "out" / "pred.csv")
    wrong = {r["file"] for r in rows[::2]}  # every other image labelled with a class it was not predicted as
    with (tmp_path / "labels.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Id", "Category"])
        for r in rows:
            label = (int(r["class_index"]) + 1) % 3 if r["file"] in wrong else int(r["class_index"])
            writer.writerow([Path(r["file"]).name, label])
    out = tmp_path / "r.html"
    assert report(capsys, work / "out" / "pred.json", "--output", out, "--labels", tmp_path / "labels.csv")[0] == 0
    text = out.read_text()
    page = Page(text)
    mistakes = text[text.index('class="gallery mistakes"') : text.index("<h2>Every image")]
    probabilities = {r["file"]: float(r["probability"]) for r in rows if r["file"] in wrong}
    listed = sorted(probabilities, key=mistakes.index)  # in the order the page shows them
    assert len(page.find("figure", "mistake")) == len(wrong)
    assert [probabilities[f] for f in listed] == sorted(probabilities.values(), reverse=True)
    assert float(dict(r[:2] for r in page.rows["summary"])["accuracy"]) == pytest.approx(
        1 - len(wrong) / len(rows), abs=1e-4
    )


def test_report_without_labels_and_with_an_overlay(predicted, capsys, tmp_path):
    work, _ = predicted
    rows = json.loads((work / "out" / "pred.json").read_text())
    overlay = tmp_path / "pred.explain" / "test_set" / "test_0_0.png"
    overlay.parent.mkdir(parents=True)
    Image.fromarray(np.full((32, 32, 3), (255, 0, 0), dtype=np.uint8)).save(overlay)
    for n, row in enumerate(rows):
        row["overlay"] = "pred.explain/test_set/test_0_0.png" if row["file"].endswith("test_0_0.JPEG") else ""
        row["ood_score"] = 2.5 if n < 3 else 0.4  # as vlc predict writes it with a checkpoint's input statistics
    (tmp_path / "pred.json").write_text(json.dumps(rows))
    out = tmp_path / "page.html"
    assert report(capsys, tmp_path / "pred.json", "--output", out)[0] == 0
    page = Page(out.read_text())
    assert len(page.find("figure", "prediction")) == 9 and len(page.find("figure", "overlaid")) == 1
    assert len(page.find("img")) == 9 and page.external() == []  # the overlaid image shown once, in its overlay
    assert [img["alt"] for img in page.find("img") if "explanation" in img["alt"]] == [
        next(r["file"] for r in rows if r["file"].endswith("test_0_0.JPEG")) + " and its explanation"
    ]
    assert "classes" not in page.rows  # no scores without labels
    assert "3 of the 9 images look unlike the model's validation images" in " ".join(out.read_text().split())
    assert out.read_text().count("ood_score 2.50") == 3
    overlay.unlink()
    err = error(run_fails(capsys, ["report", str(tmp_path / "pred.json"), "--output", str(out)]))
    assert "pred.explain/test_set/test_0_0.png" in err
    assert "does not exist" in err


def test_a_wrong_labels_file_is_one_line(predicted, capsys, tmp_path):
    work, labels = predicted
    pred = work / "out" / "pred.csv"
    out = tmp_path / "r.html"
    lines = labels.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:-2]) + "\n")
    err = error(run_fails(capsys, ["report", str(pred), "--output", str(out), "--labels", str(short)]))
    assert err.startswith("vlc: error: --labels") and "no row for 2 of the 9 predicted images" in err
    unknown = tmp_path / "unknown.csv"
    unknown.write_text(lines[0] + "\n" + "\n".join(lines[1:-1]) + "\n" + lines[-1].split(",")[0] + ",zebra\n")
    err = error(run_fails(capsys, ["report", str(pred), "--output", str(out), "--labels", str(unknown)]))
    assert f"{unknown}, line 10: unknown Category 'zebra'" in err
    coco = tmp_path / "captions.json"
    coco.write_text(json.dumps({"images": [], "annotations": []}))
    err = error(run_fails(capsys, ["report", str(pred), "--output", str(out), "--labels", str(coco)]))
    assert "holds a classifier's predictions" in err and "Id,Category CSV" in err
    other = tmp_path / "class.txt"
    other.write_text("0\tcat\n1\tdog\n2\temu\n")
    err = run_fails(
        capsys, ["report", str(pred), "--output", str(out), "--labels", str(labels), "--classes", str(other)]
    )
    assert "the predictions come from a model of other classes" in err
    assert not out.exists()


def test_not_a_prediction_file(capsys, tmp_path):
    bad = tmp_path / "table.csv"
    bad.write_text("file,value\na.jpg,3\n")
    err = error(run_fails(capsys, ["report", str(bad), "--output", str(tmp_path / "r.html")]))
    assert "not a prediction file of vlc predict" in err


CHROMIUM = next(
    (shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None
)


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium installed to render the page")
def test_the_page_renders_offline_in_a_headless_browser(predicted, capsys, tmp_path):
    work, labels = predicted
    out = tmp_path / "report.html"
    assert report(capsys, work / "out" / "pred.csv", "--output", out, "--labels", labels)[0] == 0
    shot = tmp_path / "shot.png"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-javascript",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1000,1400",
        f"--screenshot={shot}",
        out.as_uri(),
    ]
    subprocess.run(command, capture_output=True, timeout=120, check=False)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (1400, 1000)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50 and pixels.std() > 10  # text, tables and images


@pytest.fixture(scope="module")
def captioned(tmp_path_factory):
    """A tiny captioner trained for one epoch on COCO-format files, and its captions of those images (CSV)."""
    from helpers import tiny_captioner
    from test_caption_data import write_coco

    work = tmp_path_factory.mktemp("captions")
    images_dir, captions_file = write_coco(work / "coco", n=8)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(["fit", *tiny_captioner(images_dir, captions_file), "--data.batch_size=4", "--trainer.max_epochs=1"])
        ckpt = next((work / "checkpoints").rglob("last.ckpt"))
        config = str(CONFIGS / "predict" / "caption.yaml")
        main(
            [
                "predict",
                "--config",
                config,
                f"--ckpt_path={ckpt}",
                f"--data.predict_dir={images_dir}",
                "--data.image_size=16",
                f"--writer.output={work / 'out' / 'captions.csv'}",
            ]
        )
        yield work, captions_file
    finally:
        os.chdir(cwd)


def test_captioner_report_shows_references_and_cider(captioned, capsys):
    from vlc.metrics.cider import CIDErD

    work, captions_file = captioned
    out = work / "out" / "captions.html"
    assert report(capsys, work / "out" / "captions.csv", "--output", out, "--labels", captions_file)[0] == 0
    page = Page(out.read_text())
    rows = read_csv(work / "out" / "captions.csv")
    assert len(page.find("figure", "prediction")) == len(rows) == 8 and page.external() == []
    assert len(page.find("figure", "best")) == len(page.find("figure", "worst")) == 5
    coco = json.loads(captions_file.read_text())
    names = {image["id"]: image["file_name"] for image in coco["images"]}
    refs = {
        name: [a["caption"] for a in coco["annotations"] if names[a["image_id"]] == name] for name in names.values()
    }
    metric = CIDErD()
    metric.update([r["caption"] for r in rows], [refs[Path(r["file"]).name] for r in rows])
    corpus = float(dict(r[:2] for r in page.rows["summary"])["CIDEr-D (mean over images)"])
    assert corpus == pytest.approx(metric.compute().item(), abs=1e-3)  # the mean of the per-image scores
    text = out.read_text()
    for r in rows:
        assert all(ref in text for ref in refs[Path(r["file"]).name])
    sections = text.split('<div class="gallery')
    best, worst, every = ([float(v) for v in re.findall(r"CIDEr-D ([0-9.]+)", part)] for part in sections[1:4])
    assert len(every) == 8 and sum(every) / 8 == pytest.approx(corpus, abs=1e-3)
    assert best == sorted(every, reverse=True)[:5] and worst == sorted(every)[:5]


def test_a_caption_file_with_a_labels_csv_is_one_line(captioned, predicted, capsys, tmp_path):
    work, captions_file = captioned
    _, labels = predicted
    out = tmp_path / "r.html"
    err = error(
        run_fails(capsys, ["report", str(work / "out" / "captions.csv"), "--output", str(out), "--labels", str(labels)])
    )
    assert "holds a captioner's predictions" in err and "COCO captions JSON" in err
    coco = json.loads(captions_file.read_text())
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] != coco["images"][0]["id"]]
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps(coco))
    err = error(
        run_fails(
            capsys, ["report", str(work / "out" / "captions.csv"), "--output", str(out), "--labels", str(partial)]
        )
    )
    assert "no captions for 1 of the 8 predicted images" in err and coco["images"][0]["file_name"] in err
    assert not out.exists()
