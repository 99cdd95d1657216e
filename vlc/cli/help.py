"""``vlc COMMAND --config FILE --help``: the experiment's own options, their values and meanings.

Lightning's generic help lists every trainer argument and none of the model's or data's; this one parses the config
(nothing is built or read) and lists what the experiment has: the model's and data module's arguments, nested ones
included, each with its value and the first sentence of its docstring, then the trainer settings it changes.
"""

import dataclasses
import inspect
import re
import typing

import docstring_parser
from jsonargparse import Namespace
from lightning import Trainer

from vlc.checkpoints import import_class
from vlc.cli import COMMANDS
from vlc.cli.hints import CONFIGS, program, relative
from vlc.errors import UserError

PLACEHOLDER = "REQUIRED"
REQUIRED = re.compile(r"([\w.]+): the following arguments are required: ([\w, ]+)")

TRAINER_KEYS = ("max_epochs", "max_time", "precision", "accelerator", "devices", "limit_train_batches")
"""Trainer settings a fit's help always lists (other commands': the middle three); the others only when the config
changes them from Lightning's default."""


class Parsed(Exception):
    """Raised by ``VlcCLI`` in help mode once the config is parsed: the parser and the config, nothing built."""

    def __init__(self, parser, config: Namespace) -> None:
        super().__init__("parsed")
        self.parser, self.config = parser, config


def print_help(command: str, args: list[str]) -> None:
    """Print the help of ``vlc COMMAND`` for the experiment of ``args`` (its ``--config`` files and options)."""
    print(f"usage: {program()} {command} --config FILE [--ckpt_path CKPT] [--SECTION.KEY VALUE ...]")
    print(f"{COMMANDS[command]}\n")
    if "--config" not in {arg.split("=", 1)[0] for arg in args} and "-c" not in args:
        configs = sorted(relative(path) for path in CONFIGS.glob("*/*.yaml") if path.parent.name != "predict")
        print("an experiment is a config file; `--config FILE --help` lists its options. The example configs:")
        print("\n".join(f"  {path}" for path in configs))
        return
    from vlc.cli.experiment import CKPT_HELP, build

    config = parsed_config(build, command, args)
    print(f"  --ckpt_path CKPT  {CKPT_HELP}\n")
    from vlc.callbacks.prediction_writer import PredictionWriter

    for section, cls in (("model", None), ("data", None), ("writer", PredictionWriter)):
        if isinstance(config.get(section), Namespace):
            _print_section(section, config[section], cls)
    always = TRAINER_KEYS if command == "fit" else TRAINER_KEYS[2:5]
    trainer = {key: value for key, value in config.trainer.as_dict().items() if _shown(key, value, always)}
    print("trainer (lightning.pytorch.Trainer; every Trainer argument is --trainer.KEY):")
    docs = _docs(Trainer)
    for key, value in trainer.items():
        _print_option(f"trainer.{key}", value, docs.get(key, ""))


def parsed_config(build, command: str, args: list[str]) -> Namespace:
    """The experiment's config, options it requires but does not set given as ``REQUIRED`` (shown so)."""
    for _ in range(8):
        try:
            build(command, args, help_only=True)
        except Parsed as parsed:
            return parsed.config
        except UserError as err:
            missing = REQUIRED.match(str(err))
            if missing is None:
                raise
            section = missing[1]
            args = [*args, *(f"--{section}.{name.strip()}={PLACEHOLDER}" for name in missing[2].split(","))]
    raise UserError(f"the config leaves too many required options unset to list them: {' '.join(args)}")


def _shown(key: str, value, always: tuple[str, ...]) -> bool:
    if key in always:
        return True
    if key in ("callbacks", "logger", "plugins"):
        return False
    default = inspect.signature(Trainer.__init__).parameters.get(key)
    return default is not None and value != default.default


def _print_section(section: str, value: Namespace, cls: type | None) -> None:
    kind = value.get("class_path")
    print(f"{section} ({kind}):" if kind else f"{section}:")
    for key, item, doc in _options(value, cls):
        _print_option(f"{section}.{key}" if key else section, item, doc)
    print()


def _options(value: Namespace, cls: type | None = None, prefix: str = ""):
    """``(dotted key, value, doc)`` of the leaf options under ``value``, ``init_args`` levels left out.

    Of a class outside vlc (an optimizer, a scheduler) only the arguments the config changes are listed.
    """
    if "class_path" in vars(value):
        cls = import_class(value.class_path)
        if prefix:
            yield prefix.rstrip("."), value.class_path, ""
        value = value.get("init_args") or Namespace()
    docs, hints = _docs(cls), _hints(cls)
    defaults = _defaults(cls) if cls is not None and not cls.__module__.startswith("vlc") else {}
    for key, item in vars(value).items():
        if isinstance(item, Namespace):
            yield from _options(item, _dataclass(hints.get(key)), f"{prefix}{key}.")
        elif key not in defaults or defaults[key] != item:
            yield f"{prefix}{key}", item, docs.get(key, "")


def _defaults(cls: type) -> dict:
    parameters = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}


def _print_option(key: str, value, doc: str) -> None:
    shown = f"--{key} {_value(value)}"
    print(f"  {shown:44s} {doc}" if doc else f"  {shown}")


def _value(value) -> str:
    if isinstance(value, str):
        return value if value and " " not in value else repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_value(item) for item in value) + "]"
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _docs(cls: type | None) -> dict[str, str]:
    """The first sentence of each argument's description in ``cls``'s (or its ``__init__``'s) docstring."""
    docs = {}
    if cls is None:
        return docs
    for source in reversed(inspect.getmro(cls) if isinstance(cls, type) else ()):
        for text in (source.__doc__, getattr(source.__init__, "__doc__", None)):
            for param in docstring_parser.parse(text or "").params:
                first = " ".join((param.description or "").split()).split(". ")[0].rstrip(".").replace("``", "")
                docs[param.arg_name] = first if len(first) <= 100 else first[:97] + "..."
    return docs


def _hints(cls: type | None) -> dict:
    try:
        return typing.get_type_hints(cls.__init__) if isinstance(cls, type) else {}
    except Exception:  # an annotation that does not resolve here: the options are listed without docs
        return {}


def _dataclass(annotation) -> type | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None
