"""The captioning part of the report: a captioner's predictions beside the references of a COCO captions file."""

from dataclasses import dataclass
from pathlib import Path

from vlc.data.datasets.coco_captions import Skips, read_references
from vlc.errors import UserError
from vlc.metrics.cider import CIDErD
from vlc.report.predictions import Prediction, Predictions

SHOWN = 5
"""How many best and worst captions the report lists."""


@dataclass
class Captioned:
    """A captioner's predictions with their references and per-image CIDEr-D.

    Attributes:
        references: per prediction, its reference captions.
        cider: per prediction, its CIDEr-D (the corpus IDF of the predicted images' references).
        corpus: the corpus CIDEr-D (the mean of ``cider``).
        best, worst: the :data:`SHOWN` best and worst captioned images by CIDEr-D, as indices of the predictions.
        listed: how many images the captions file lists.
    """

    references: list[list[str]]
    cider: list[float]
    corpus: float
    best: list[int]
    worst: list[int]
    listed: int


def image_id(item: Prediction, by_name: dict[str, int], ids: set[int]) -> int | None:
    """The captions file's id of ``item``: its ``file`` as an id (a split's key), or its path ending in a file_name."""
    if item.file.isdigit() and int(item.file) in ids:
        return int(item.file)
    parts = Path(item.file).parts
    for start in range(len(parts)):
        image = by_name.get("/".join(parts[start:]))
        if image is not None:
            return image
    return None


def score(predictions: Predictions, captions_file: str) -> Captioned:
    """Match each prediction with its references in ``captions_file`` (a COCO captions JSON) and score it.

    Raises:
        UserError: the captions file is wrong, or has no captions for a predicted image.
    """
    try:
        files, references = read_references(Path(captions_file), Skips())
    except UserError as err:
        raise UserError(f"--labels {err}") from None
    by_name = {Path(name).as_posix(): i for i, name in files.items()}
    ids = [image_id(item, by_name, set(files)) for item in predictions.items]
    missing = [item.file for item, i in zip(predictions.items, ids) if i is None or not references.get(i)]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        raise UserError(
            f"--labels {captions_file}: no captions for {len(missing)} of the {len(ids)} predicted images ({shown}); "
            "expected an 'images' entry (file_name, or the id vlc predict wrote) with captions for each"
        )
    refs = [references[i] for i in ids]
    metric = CIDErD()
    metric.update([item.row["caption"] for item in predictions.items], refs)
    cider = metric.per_image()
    ranked = sorted(range(len(cider)), key=lambda i: (-cider[i], i))
    return Captioned(
        references=refs,
        cider=cider,
        corpus=sum(cider) / len(cider),
        best=ranked[:SHOWN],
        worst=ranked[::-1][:SHOWN],
        listed=len(files),
    )
