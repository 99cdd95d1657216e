"""The ``vlc`` command: ``fit``/``validate``/``test``/``predict`` an experiment, ``export``, ``compare``, ``data``.

Every experiment is one YAML file naming a model and a data module by ``class_path``. The data module is the
source of truth for the class names, linked into the model and stored in its checkpoints; ``vlc predict``
takes them from the checkpoint, so prediction needs no dataset. The modules of this package:

- ``experiment``: ``VlcCLI``, LightningCLI over one command (checks, run folders, default callbacks, signals);
- ``from_checkpoint``: ``--ckpt_path`` resolved, read, checked and its hyper-parameters applied;
- ``parser``: the argument parser and its one-line errors;
- ``help``: ``vlc COMMAND --config FILE --help``, the experiment's own options;
- ``hints``: what a run prints when it ends (the next commands, how to resume).
"""

import sys
from importlib import metadata

from lightning.pytorch.utilities.exceptions import MisconfigurationException

from vlc.errors import find_user_error, lost_peer

COMMANDS = {
    "fit": "train a model (--ckpt_path last|auto|FILE resumes a run)",
    "validate": "score a checkpoint on the validation data",
    "test": "score a checkpoint on the test data",
    "predict": "predict a folder of images with a checkpoint, to CSV or JSON",
    "export": "a checkpoint as ONNX files that run without torch (python -m vlc.onnx_predict)",
    "compare": "a table of runs read from their logs (accuracy or caption scores, epochs, time, status)",
    "sweep": "vlc fit over a grid of settings and seeds, one run after another, resumable",
    "report": "one HTML page of a prediction file's images and predictions (scores with --labels)",
    "data": "prepare datasets on disk (vlc data tinyimagenet30 ...)",
}
TRAINER_COMMANDS = ("fit", "validate", "test", "predict")
SIGINT_EXIT = 130


def version() -> str:
    """``vlc X (torch Y, lightning Z)``."""
    parts = [f"{name} {metadata.version(name)}" for name in ("torch", "lightning")]
    return f"vlc {metadata.version('vlc')} ({', '.join(parts)})"


def usage() -> str:
    """The top-level help: every subcommand, one line each."""
    lines = ["usage: vlc COMMAND [options]   (vlc COMMAND --config FILE --help lists an experiment's options)"]
    lines += ["", "commands:", *(f"  {name:9s} {text}" for name, text in COMMANDS.items())]
    lines += ["", "options:", "  -h, --help  this message"]
    lines += ["  --version   vlc's version and those of torch and lightning"]
    return "\n".join(lines)


def dispatch(argv: list[str]) -> None:
    """Run ``vlc ARGV``."""
    command, args = argv[0], argv[1:]
    if command == "data":
        from vlc.data_tools import main as data_main

        data_main(args)
    elif command == "export":
        from vlc.export.command import main as export_main

        export_main(args)
    elif command == "sweep":
        from vlc.sweep import main as sweep_main

        sweep_main(args)
    elif command == "compare":
        from vlc.compare import main as compare_main

        compare_main(args)
    elif command == "report":
        from vlc.report import main as report_main

        report_main(args)
    elif command in TRAINER_COMMANDS and ("-h" in args or "--help" in args):
        from vlc.cli.help import print_help

        print_help(command, [arg for arg in args if arg not in ("-h", "--help")])
    elif command in TRAINER_COMMANDS:
        from vlc.checks import check_config_files
        from vlc.cli.experiment import run

        check_config_files(args)
        run(command, args)
    else:
        print(f"vlc: error: unknown command {command!r}; expected one of {', '.join(COMMANDS)}", file=sys.stderr)
        raise SystemExit(2)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``vlc`` console script; ``args`` replaces ``sys.argv[1:]`` (tests call it in-process)."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] in ([], ["-h"], ["--help"]):
        print(usage())
        return
    if argv[:1] == ["--version"]:
        print(version())
        return
    try:
        dispatch(argv)
    except KeyboardInterrupt:
        print("vlc: interrupted (SIGINT)", file=sys.stderr)
        raise SystemExit(SIGINT_EXIT) from None
    except MisconfigurationException as err:  # Lightning's word for a trainer setting that cannot work
        print(f"vlc: error: {' '.join(str(err).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as err:
        user_error = find_user_error(err)
        if user_error is None:
            lost = lost_peer(err)  # under torchrun or SLURM: another process stopped (and said why)
            if lost is None:
                raise
            print(f"vlc: error: {lost}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"vlc: error: {user_error}", file=sys.stderr)
        raise SystemExit(user_error.exit_code) from None
