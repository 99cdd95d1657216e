"""The argument parser of every vlc command: no abbreviations, and its errors in one line for the user."""

import re
from typing import get_args

from lightning.pytorch.cli import LightningArgumentParser

from vlc.errors import UserError
from vlc.trainer import Precision

NOISE = ("Does not validate against any", "Subtypes:", "Errors:", "- Expected a <class 'NoneType'>", "Given value")
"""Lines of a nested jsonargparse report that say nothing a user can act on."""

BACKBONE_OPTION = re.compile(r"^model\.(backbone|encoder)(?:\.init_args)?: Option '\w+' is not accepted")
FAMILIES = (
    "; each backbone family takes its own options (class_path vlc.models.ResidualCNN, AirbenchNet or "
    "TorchvisionBackbone; vlc.models.ImageBackbone is only their base): see docs/classification.md"
)

RESTRICTION = re.compile(r"Not of type \w+: (?:(\S+) )?does not conform to restriction v([<>=]+)(\S+)")


def one_line(message: str) -> str:
    """A nested jsonargparse report in one line: ``Parser key "data": - batch_size: ...`` -> ``data.batch_size: ...``.

    A number out of range (``PositiveInt``, ...) reads ``data.batch_size: expected a value > 0, got 0``.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    given = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Given value:")), "")
    text = " ".join(line for line in lines if not line.startswith(NOISE))
    keys = re.findall(r'Parser key "([^"]+)":\s*-?\s*', text)
    text = re.sub(r'Parser key "[^"]+":\s*-?\s*', "", text)
    nested = re.match(r"(\w+): (.*)", text)  # the error of one of a class's arguments: "batch_size: ..."
    if keys and nested:
        keys, text = [*keys, nested[1]], nested[2]
    text = RESTRICTION.sub(lambda m: f"expected a value {m[2]} {m[3]}, got {m[1] or given}", text)
    text = re.sub(r"expected v([<>=]+)(\S+),", r"expected a value \1 \2,", text)
    if ".".join(keys) == "trainer.precision":  # jsonargparse reports the last type of the Literal's mix: int
        known = ", ".join(dict.fromkeys(map(str, get_args(Precision)[1:])))
        text = f"expected auto or one of {known}; got {text.split(': ')[-1]}"
    text = f"{'.'.join(keys)}: {text}" if keys else text
    return text + FAMILIES if BACKBONE_OPTION.match(text) else text


class VlcArgumentParser(LightningArgumentParser):
    """A parser whose errors are one line for the user (jsonargparse prints the usage and a nested report).

    Options are never abbreviated: a misspelled ``--trainer.max_epoch`` is an unknown option, not ``max_epochs``.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message: str, ex: Exception | None = None):
        raise UserError(one_line(message))
