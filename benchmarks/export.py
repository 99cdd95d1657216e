"""Benchmark the ONNX predictor against ``vlc predict`` on the same folder and threads, and check that they agree.

    python benchmarks/export.py --ckpt_path CKPT --images DIR [--threads 2] [--repeats 3] [--json out.json]

The checkpoint (a classifier or a captioner) is exported with ``vlc export``; then ``vlc predict`` (its predict
config, ``data.image_size`` set to the exported size) and ``python -m vlc.onnx_predict`` predict the folder, each the
whole command in this process (parsing, loading the model, decoding the files, the model, the CSV), best of
``--repeats`` after a warm-up, with the same number of threads (``torch.set_num_threads`` and onnxruntime's
``intra_op_num_threads``). Each command is also timed once in a fresh process, as a user runs it (importing torch
and Lightning included). The two prediction files must agree: the same top-1 class of every image and probabilities
within 1e-4, or the same captions with scores within 1e-4 (the script fails otherwise). ``benchmarks/suite.py``'s
``export`` entry calls :func:`measure` on its own checkpoint and folder.
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import REPO, best_time, machine, quiet

from vlc.checkpoints import read
from vlc.cli import main as vlc
from vlc.onnx_predict.__main__ import main as onnx_predict

PREDICT_CONFIGS = {"classification": "configs/predict/classify.yaml", "captioning": "configs/predict/caption.yaml"}
TOLERANCE = 1e-4


def export(checkpoint: Path, output: Path, verbose: bool = False) -> dict:
    """``vlc export`` of ``checkpoint`` to ``output`` in this process; the metadata it wrote."""
    import onnx

    with quiet(not verbose):
        vlc(["export", f"--ckpt_path={checkpoint}", f"--output={output}"])
    return json.loads({p.key: p.value for p in onnx.load(output).metadata_props}["vlc"])


def predict_command(checkpoint: Path, kind: str, folder: Path, size: int, output: Path) -> list[str]:
    """The arguments of ``vlc predict`` with the task's predict config on ``folder`` decoded at ``size``."""
    return [
        *("predict", "--config", str(REPO / PREDICT_CONFIGS[kind]), f"--ckpt_path={checkpoint}"),
        *(f"--data.predict_dir={folder}", f"--data.image_size={size}", f"--writer.output={output}"),
        "--trainer.enable_progress_bar=false",
    ]


def rows(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as f:
        return {row["file"]: row for row in csv.DictReader(f)}


def agreement(expected: Path, got: Path) -> dict:
    """How the predictor's file agrees with ``vlc predict``'s: same top-1 (or caption) counts, largest difference."""
    want, have = rows(expected), rows(got)
    if sorted(want) != sorted(have):
        raise RuntimeError(f"{got} has {len(have)} rows for other files than {expected}'s {len(want)}")
    if "label" in next(iter(want.values())):
        same = sum(have[f]["label"] == want[f]["label"] for f in want)
        gaps = [
            abs(p - q)
            for f in want
            for (_, p), (_, q) in zip(json.loads(want[f]["top_k"]), json.loads(have[f]["top_k"]))
        ]
        return {"images": len(want), "same_top1": same, "max_probability_difference": max(gaps)}
    same = sum(have[f]["caption"] == want[f]["caption"] for f in want)
    gap = max(abs(float(have[f]["score"]) - float(want[f]["score"])) for f in want)
    return {"images": len(want), "same_captions": same, "max_score_difference": gap}


def measure(checkpoint: Path, folder: Path, workdir: Path, threads: int, repeats: int, verbose: bool = False) -> dict:
    """Export ``checkpoint``, then time ``vlc predict`` and the ONNX predictor on ``folder`` in this process.

    Returns:
        The seconds of each (best of ``repeats``), the rows written, the agreement (see :func:`agreement`) and the
        export's metadata; raises ``RuntimeError`` when the files disagree.
    """
    kind = read(checkpoint)["vlc_task"]["kind"]
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / "model.onnx"
    start = time.perf_counter()
    record = export(checkpoint, model, verbose)
    export_s = time.perf_counter() - start
    size = int(record["image_size"])
    torch_csv, onnx_csv = workdir / "vlc_predict.csv", workdir / "onnx_predict.csv"
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with quiet(not verbose):
            vlc_s, _ = best_time(lambda: vlc(predict_command(checkpoint, kind, folder, size, torch_csv)), repeats)
            onnx_args = [str(model), str(folder), "--output", str(onnx_csv), "--threads", str(threads)]
            onnx_s, _ = best_time(lambda: onnx_predict(onnx_args), repeats)
    finally:
        torch.set_num_threads(previous)
    agreed = agreement(torch_csv, onnx_csv)
    same = agreed.get("same_top1", agreed.get("same_captions"))
    gap = agreed.get("max_probability_difference", agreed.get("max_score_difference"))
    if same != agreed["images"] or gap > TOLERANCE:
        raise RuntimeError(f"the ONNX predictor disagrees with vlc predict: {agreed}")
    return {
        "kind": kind,
        "threads": threads,
        "image_size": size,
        "export_seconds": export_s,
        "vlc_predict_seconds": vlc_s,
        "onnx_predict_seconds": onnx_s,
        **agreed,
        "model": str(model),
    }


def fresh_processes(checkpoint: Path, folder: Path, result: dict, workdir: Path) -> dict:
    """Seconds of each command run once in a new process, as a user runs it (imports included)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(result["threads"]), "PYTHONPATH": str(REPO)}
    commands = {
        "vlc_predict_process_seconds": [sys.executable, "-m", "vlc"]
        + predict_command(checkpoint, result["kind"], folder, result["image_size"], workdir / "p1.csv"),
        "onnx_predict_process_seconds": [sys.executable, "-m", "vlc.onnx_predict", result["model"], str(folder)]
        + ["--output", str(workdir / "p2.csv"), "--threads", str(result["threads"])],
    }
    seconds = {}
    for key, command in commands.items():
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        seconds[key] = time.perf_counter() - start
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_path", type=Path, required=True, help="a checkpoint file of vlc fit")
    parser.add_argument("--images", type=Path, required=True, help="the folder of images to predict")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlc-export-bench"))
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    result = measure(args.ckpt_path, args.images, args.workdir, args.threads, args.repeats, args.verbose)
    result |= fresh_processes(args.ckpt_path, args.images, result, args.workdir)
    n = result["images"]
    result |= {"hardware": machine(), "vlc_predict_images_per_s": n / result["vlc_predict_seconds"]}
    result["onnx_predict_images_per_s"] = n / result["onnx_predict_seconds"]
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
