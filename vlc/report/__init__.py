"""``vlc report``: one self-contained HTML page of every prediction of a ``vlc predict`` file.

The page holds every image (a thumbnail inline as a ``data:`` URI, with its overlay when the prediction file names
one), its prediction and confidence or caption. With ``--labels``:

- for a classifier, an ``Id,Category`` CSV (:func:`vlc.data.datasets.tinyimagenet30.read_labels`): accuracy, top-5,
  per-class precision / recall / F1 / support, the confusion matrix with counts, the most confused pairs and the
  most confident mistakes (:mod:`vlc.report.classification`);
- for a captioner, a COCO captions JSON: each caption beside its references with its CIDEr-D, the best and worst
  captions (:mod:`vlc.report.captioning`).

The page needs no network and no JavaScript: it opens from the file in any browser.
"""

import argparse
import os
from pathlib import Path

from vlc.errors import UserError
from vlc.report.predictions import read_predictions

TASK = {"classification": "a classifier", "captioning": "a captioner"}
LABELS = {"classification": ("an Id,Category CSV", ".csv"), "captioning": ("a COCO captions JSON", ".json")}


def check_labels(kind: str, predictions: Path, labels: str) -> None:
    """``labels`` must be the kind of file ``kind``'s predictions are scored with (by its suffix).

    Raises:
        UserError: a COCO captions file for a classifier's predictions, or a labels CSV for a captioner's.
    """
    expected, suffix = LABELS[kind]
    if Path(labels).suffix.lower() != suffix:
        other = next(k for k in LABELS if k != kind)
        raise UserError(
            f"--labels {labels}: {predictions} holds {TASK[kind]}'s predictions, which are scored with {expected}; "
            f"{LABELS[other][0]} is for {TASK[other]}'s"
        )


def build(predictions_file: str, labels: str | None = None, classes: str | None = None) -> str:
    """The report page of ``predictions_file``, scored against ``labels`` when given.

    Raises:
        UserError: a wrong prediction, labels or classes file, or an overlay the predictions name that is missing.
    """
    from vlc.report.page import render

    predictions = read_predictions(predictions_file)
    if classes is not None and predictions.kind != "classification":
        raise UserError(f"--classes: {predictions.path} holds a captioner's predictions, which have no classes")
    if labels is None:
        return render(predictions)
    check_labels(predictions.kind, predictions.path, labels)
    if predictions.kind == "classification":
        from vlc.report.classification import score

        return render(predictions, scored=score(predictions, labels, classes))
    from vlc.report.captioning import score

    return render(predictions, captioned=score(predictions, labels))


def write(path: Path, text: str) -> None:
    """``text`` into ``path`` through a temporary file: a complete page or none.

    Raises:
        UserError: the file cannot be written.
    """
    temporary = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise UserError(f"--output: cannot write {path} ({err.strerror or err})") from None


def main(argv: list[str]) -> None:
    """Parse and run ``vlc report PREDICTIONS --output FILE [--labels FILE] [--classes FILE]``."""
    parser = argparse.ArgumentParser(
        prog="vlc report",
        description="One self-contained HTML page of every prediction of a vlc predict file (CSV or JSON).",
    )
    parser.add_argument("predictions", help="the prediction file vlc predict wrote (--writer.output)")
    parser.add_argument("--output", required=True, metavar="FILE", help="the HTML page to write")
    parser.add_argument(
        "--labels",
        metavar="FILE",
        help="the truth: an Id,Category CSV for a classifier's predictions, a COCO captions JSON for a captioner's",
    )
    parser.add_argument(
        "--classes",
        metavar="FILE",
        help="a classifier's class list (class.txt: idx<TAB>name); default: the classes the predictions name",
    )
    args = parser.parse_args(argv)
    output = Path(args.output)
    if output.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--output must end in .html, got {args.output!r}")
    write(output, build(args.predictions, args.labels, args.classes))
    print(f"wrote the report of {args.predictions} to {output} (open it in a browser: file://{output.resolve()})")
