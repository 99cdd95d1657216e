"""``python -m vlc.onnx_predict MODEL.onnx IMAGES --output pred.csv``: predict a folder with an exported model.

Needs only onnxruntime, numpy and Pillow. Writes the files ``vlc predict`` writes, with the same columns: the
predictions (CSV or JSON), ``<output stem>.skipped.csv`` (the files that could not be read, with the reason) and,
for a classifier, optionally the submission file ``Id,Category``.
"""

import sys
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from vlc.errors import OneLineArgumentParser, UserError, warn
from vlc.image_files import IMAGE_SUFFIXES, MAX_PIXELS, ImageDecoder
from vlc.onnx_format import step_file, vocab_file
from vlc.onnx_predict import runtime
from vlc.onnx_predict.folder import Folder
from vlc.prediction_files import write_predictions, write_skipped, write_submission

BATCH_SIZE = {"classification": 64, "captioning": 32}
"""Images per batch by default: those of ``configs/predict/classify.yaml`` and ``caption.yaml``."""


def parser() -> OneLineArgumentParser:
    """The options of ``python -m vlc.onnx_predict``."""
    p = OneLineArgumentParser(
        prog="python -m vlc.onnx_predict",
        description="Predict a folder of images with a model exported by vlc export (needs only onnxruntime, "
        "numpy and Pillow).",
    )
    p.add_argument(
        "model", help="the .onnx file vlc export wrote (a captioner's encoder: its step and vocabulary lie beside it)"
    )
    p.add_argument("images", help="a folder of images (searched recursively) or one image file")
    p.add_argument(
        "--output",
        help="the prediction file, .csv or .json (default predictions/classify.csv or "
        "predictions/caption.csv, as vlc predict)",
    )
    p.add_argument("--submission", help="a classifier's submission file Id,Category (the TinyImageNet30 format)")
    p.add_argument("--batch_size", type=int, help="images per batch (default 64 for a classifier, 32 for a captioner)")
    p.add_argument("--threads", type=int, help="onnxruntime's threads (default: one per core)")
    p.add_argument("--max_image_pixels", type=int, default=MAX_PIXELS, help="larger images are skipped")
    decoding = p.add_argument_group("a captioner's decoding (default: the checkpoint's model.decoding)")
    decoding.add_argument("--strategy", choices=("greedy", "beam"))
    for name in ("beam_width", "max_len", "min_len", "no_repeat_ngram", "num_captions"):
        decoding.add_argument(f"--{name}", type=int)
    decoding.add_argument("--length_penalty", type=float)
    decoding.add_argument(
        "--banned_endings",
        type=lambda text: [w for w in text.split(",") if w],
        help="comma-separated words a caption may not end on",
    )
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the predictor; a mistake is one line ``vlc: error: ...`` (exit code 2), never a traceback."""
    try:
        predict(parser().parse_args(sys.argv[1:] if argv is None else argv))
    except UserError as err:
        print(f"vlc: error: {err}", file=sys.stderr)
        raise SystemExit(err.exit_code) from None


def predict(args) -> None:
    """Check, read the model and the images, predict, write the files and say what was written."""
    for key in ("batch_size", "threads", "max_image_pixels"):
        if getattr(args, key) is not None and getattr(args, key) < 1:
            raise UserError(f"--{key}: expected a value > 0, got {getattr(args, key)}")
    session = runtime.open_session(args.model, args.threads)
    record = runtime.metadata(session, args.model)
    kind = record["kind"]
    output = Path(args.output or f"predictions/{'classify' if kind == 'classification' else 'caption'}.csv")
    if output.suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--output must end in .csv or .json, got {str(output)!r}")
    if args.submission and kind != "classification":
        raise UserError("--submission: a submission file needs a classifier's predictions")
    for path, key in ((output, "--output"), (Path(args.submission or output), "--submission")):
        _check_writable(path.parent, key)
    if kind == "classification":
        from vlc.onnx_predict.classify import classify

        run = partial(classify, session, record)
    else:
        run = captioner(args, session, record)  # the decoding options are checked before any image is read
    folder = Folder(args.images, ImageDecoder(args.max_image_pixels))
    rows = run(folder.batches(int(record["image_size"]), args.batch_size or BATCH_SIZE[kind]))
    skipped = write_skipped(output, folder.skipped)
    if not rows:
        suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
        raise UserError(f"{args.images}: no readable images (expected {suffixes} files; see {skipped})")
    if folder.skipped:
        warn(f"skipped {len(folder.skipped)} of {folder.total} files that cannot be read (listed in {skipped})")
    write_predictions(output, rows)
    print(f"wrote {len(rows)} predictions to {output}")
    print(f"skipped {len(folder.skipped)} files that could not be read, listed in {skipped}")
    if args.submission:
        write_submission(args.submission, rows)
        print(f"wrote the submission ({len(rows)} rows) to {args.submission}")


def captioner(args, encoder, record: dict) -> Callable[[Iterable], list[dict]]:
    """A captioner's rows of batches: its step and vocabulary opened beside ``args.model``, the options checked."""
    from vlc.onnx_predict.caption import DECODING, Captioner, check_decoding, decoding_options, load_vocabulary

    model = Path(args.model)
    vocab = load_vocabulary(vocab_file(model))
    decoding = check_decoding(decoding_options(record, {k: getattr(args, k) for k in DECODING}), vocab)
    step = runtime.open_session(step_file(model), args.threads)
    return partial(Captioner(encoder, step, record, vocab).rows, decoding=decoding)


def _check_writable(folder: Path, key: str) -> None:
    """``folder`` can be created or written to (as ``vlc.checks.check_writable``, which imports vlc's CLI)."""
    folder = folder.absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{key}: cannot write to {folder}/ ({existing} is a file, not a folder)")


if __name__ == "__main__":
    main()
