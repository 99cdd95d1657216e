"""The report's one HTML page: the context the template needs, rendered by jinja2 from ``templates/report.html``."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from vlc.errors import warn
from vlc.report.captioning import Captioned
from vlc.report.classification import Scored, macro
from vlc.report.predictions import Prediction, Predictions
from vlc.report.thumbnails import THUMBNAIL, try_data_uri


@dataclass
class Card:
    """One image of the page: its thumbnail (or why there is none), its overlay, and what was predicted."""

    item: Prediction
    image: str | None
    missing: str | None
    overlay: str | None


def cards(predictions: Predictions) -> list[Card]:
    """A card for every prediction; images that cannot be found or read are named in one warning."""
    out, unreadable = [], []
    for item in predictions.items:
        image, why = try_data_uri(predictions.image_path(item))
        overlay, overlay_why = try_data_uri(item.overlay, 2 * THUMBNAIL) if item.overlay else (None, None)
        if why or overlay_why:
            unreadable.append(f"{item.file} ({why or overlay_why})")
        out.append(Card(item, image, why, overlay))
    if unreadable:
        more = f" and {len(unreadable) - 3} more" if len(unreadable) > 3 else ""
        warn(f"{len(unreadable)} images of {predictions.path} are not shown: {', '.join(unreadable[:3])}{more}")
    return out


def render(predictions: Predictions, scored: Scored | None = None, captioned: Captioned | None = None) -> str:
    """The page for ``predictions``, with their scores against labels (classifier) or references (captioner)."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("vlc.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["ratio"] = lambda value: "–" if value is None else f"{value:.3f}"
    environment.filters["name"] = _name
    environment.filters["id"] = id
    all_cards = cards(predictions)
    context = {
        "title": f"vlc report: {predictions.path.name}",
        "source": str(predictions.path),
        "made": datetime.now().isoformat(timespec="seconds"),
        "kind": predictions.kind,
        "cards": all_cards,
        "by_item": {id(card.item): card for card in all_cards},
        "scored": scored,
        "captioned": captioned,
        "macro": macro(scored.classes) if scored else None,
        "truth": _truth(predictions, scored),
        "cell": _cell_colour,
        "unlike": predictions.unlike,
    }
    return environment.get_template("report.html").render(context)


def _name(file: str) -> str:
    """A file's name with its folder, short enough for a card: ``.../train/cat.jpg``."""
    parts = Path(file).parts
    return "/".join(parts[-2:]) if len(parts) > 1 else file


def _truth(predictions: Predictions, scored: Scored | None) -> dict[int, str]:
    """The true class of each prediction (by ``id`` of its row), when labels were given."""
    if scored is None:
        return {}
    return {id(item): scored.class_names[t] for item, t in zip(predictions.items, scored.truth)}


def _cell_colour(count: int, row_total: int) -> str:
    """A confusion cell's inline style: blue as deep as the cell's share of its row, white text on dark cells."""
    share = count / row_total if row_total else 0.0
    light = round(255 - 200 * share)
    text = "#fff" if share > 0.5 else "#000"
    return f"background: rgb({light}, {light}, 255); color: {text}"
