"""``vlc export --ckpt_path CKPT --output model.onnx``: a checkpoint as ONNX files, checked, and what to run next."""

import sys
from importlib import metadata
from pathlib import Path

import yaml

from vlc.errors import OneLineArgumentParser, UserError
from vlc.onnx_format import FORMAT, VERSION

USAGE = "vlc export --ckpt_path CKPT --output FILE.onnx [--config CONFIG] [options]"


def parser() -> OneLineArgumentParser:
    """The options of ``vlc export``."""
    p = OneLineArgumentParser(
        prog="vlc export",
        usage=USAGE,
        description="Export a checkpoint to ONNX (a classifier: one file; a captioner: encoder, decoder step and "
        "vocabulary), checked against the checkpoint's outputs; run it with python -m vlc.onnx_predict.",
    )
    p.add_argument("--ckpt_path", required=True, help="a .ckpt file, a run folder, or last/best with --config")
    p.add_argument("--output", required=True, help="the .onnx file (a captioner's step and vocabulary go beside it)")
    p.add_argument("--config", action="append", default=[], help="the experiment's config, for last/best")
    p.add_argument("--image_size", type=int, help="the side images are resized to (default: the backbone's)")
    for name in ("flip_average", "translate_average"):
        p.add_argument(f"--{name}", type=boolean, help=f"a classifier's {name} (default: the checkpoint's)")
    return p


def main(argv: list[str]) -> None:
    """Run ``vlc export ARGV``.

    Raises:
        UserError: a missing extra, a checkpoint that cannot be found or is of an unknown kind, an output that
            cannot be written, or an export whose outputs differ from the checkpoint's.
    """
    from vlc.export.onnx_file import require_extra

    args = parser().parse_args(argv)
    output = Path(args.output)
    if output.suffix.lower() != ".onnx":
        raise UserError(f"--output must end in .onnx, got {args.output!r}")
    if args.image_size is not None and args.image_size < 1:
        raise UserError(f"--image_size: expected a value > 0, got {args.image_size}")
    from vlc.checks import check_writable

    check_writable(output.parent, "--output")
    require_extra()
    path = find_checkpoint(args.ckpt_path, args.config)
    from vlc.checkpoints import read
    from vlc.export.checkpoint import checkpoint_kind, load_task

    kind = checkpoint_kind(read(path), path)
    evaluation = {k: getattr(args, k) for k in ("flip_average", "translate_average") if getattr(args, k) is not None}
    if evaluation and kind != "classification":
        raise UserError(f"--{next(iter(evaluation))}: a classifier's option; {path} holds a captioner")
    task = load_task(path, evaluation)
    size = image_size(task, args.image_size)
    record = {"format": FORMAT, "version": VERSION, "kind": kind, "image_size": size}
    record |= {"vlc_version": metadata.version("vlc"), "checkpoint": str(path)}
    if kind == "classification":
        from vlc.export.classifier import export_classifier

        lines = export_classifier(task, output, record)
    else:
        from vlc.export.captioner import export_captioner

        lines = export_captioner(task, output, record)
    print("\n".join(lines))
    print(f"next: python -m vlc.onnx_predict {output} YOUR_IMAGES/ --output predictions.csv  (needs onnxruntime)")
    sys.stdout.flush()


def find_checkpoint(value: str, configs: list[str]) -> str:
    """The checkpoint file ``--ckpt_path value`` means, as ``vlc predict`` finds it; ``last``/``best`` need a config.

    Raises:
        UserError: nothing is where ``value`` points, or ``last``/``best`` without ``--config``.
    """
    from vlc import checkpoints, runs

    if value not in checkpoints.KEYWORDS:
        return checkpoints.resolve(value, Path("."), "export")
    if value == "auto" or not configs:
        raise UserError(
            f"--ckpt_path {value}: vlc export takes a .ckpt file, a run folder, or last/best with --config CONFIG "
            "(the experiment whose newest run to look in)"
        )
    from vlc.checks import check_config_files
    from vlc.cli.experiment import build
    from vlc.cli.help import parsed_config

    args = [arg for config in configs for arg in ("--config", config)]
    check_config_files(args)
    return checkpoints.resolve(value, runs.checkpoint_folder(parsed_config(build, "validate", args)), "export")


def image_size(task, given: int | None) -> int:
    """The side the predictor resizes images to: ``given``, the backbone's ``image_size``, or ``vlc predict``'s.

    A backbone without ``image_size`` takes images at the size it is given; ``vlc predict`` then decodes them at
    its config's ``data.image_size``, which the export follows (and says so).
    """
    size = given or task.image_backbone.image_size
    if size:
        return int(size)
    from vlc.cli.hints import CONFIGS

    config = CONFIGS.parent / task.PREDICT_CONFIG
    if not config.is_file():
        raise UserError(
            "--image_size: the backbone takes images at any size (no image_size): give the size it was trained at"
        )
    size = int(yaml.safe_load(config.read_text())["data"]["init_args"]["image_size"])
    print(
        f"vlc: note: the backbone takes images at any size (no image_size): the predictor resizes them to {size}, "
        f"as {task.PREDICT_CONFIG} does; --image_size N sets the size the model was trained at",
        file=sys.stderr,
    )
    return size


def boolean(text: str) -> bool:
    """``true``/``false`` (also yes/no, 1/0) as a bool."""
    if text.lower() in ("true", "yes", "1"):
        return True
    if text.lower() in ("false", "no", "0"):
        return False
    raise ValueError(text)
