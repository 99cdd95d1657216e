"""vlc's benchmark suite: every speed comparison, run side by side in one process, as one table and one JSON file.

    python benchmarks/suite.py --quick                     # all entries, small sizes (minutes on 2 cores)
    python benchmarks/suite.py --full --json benchmarks/results.json --markdown benchmarks/results.md
    python benchmarks/suite.py --quick --only train_loop flops
    python benchmarks/suite.py --quick --only train_loop flops --networks cnn airbench32
    python benchmarks/suite.py --from-json benchmarks/results.json --markdown table.md   # render, no run

Entries (see BENCHMARKS.md): train_loop, flops, data_pipeline, predict, export, feature_cache, beam_search,
compile, scaling, shards. Each compares two figures measured in the same process after the same warm-up, best of N
repeats.
train_loop and flops give a row per shipped classifier network (``--networks``: classifier.NETWORKS), at its own
image and batch size in --full; the other entries use the default network, that of configs/tinyimagenet30/cnn.yaml.
The precision is bf16-mixed where this CPU runs bfloat16 natively and 32-true elsewhere (``--precision``).
``--tiny`` runs every entry on minimal sizes (tiny networks), for the smoke test: its figures mean nothing.
"""

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from beam_search import compare, make_decoder, search_options
from classifier import (
    NETWORKS,
    Recipe,
    bare_forward,
    hand_fit,
    last_checkpoint,
    load_classifier,
    loader_pass,
    matmul_peak,
    per_class,
    predict_config,
    read_dataset,
    read_folder,
    training_flops,
    vlc_fit,
    vlc_predict,
    write_dataset,
)
from common import REPO, PeakMemory, best_time, best_window, default_precision, machine, quiet
from export import measure as export_measure
from feature_cache import after_first, epoch_times
from shards import compare as shards_compare

from vlc.models.caption_alignment import caption_loss
from vlc.models.decoding import beam_search, greedy_decode
from vlc.tasks.captioner import adam
from vlc.vocabulary import Vocabulary

ENTRIES = ("train_loop", "flops", "data_pipeline", "predict", "export", "feature_cache", "beam_search", "compile")
ENTRIES += ("scaling", "shards")
FACTORS, VOCABS, WIDTHS = (1, 2, 4), (1000, 5000, 10000), (1, 3, 5)
DESCRIPTIONS = {
    "train_loop": "training images/s of each network: `vlc fit` vs a hand-written loop",
    "flops": "achieved training FLOP/s of each network vs the matrix-multiply peak",
    "data_pipeline": "images/s the training loader delivers vs images/s training consumes",
    "predict": "images/s: `vlc predict` on JPEG files vs the bare forward on decoded tensors",
    "export": "images/s: the ONNX predictor (onnxruntime, no torch) vs `vlc predict` on the same files and threads",
    "feature_cache": "caption training epoch with and without the feature cache",
    "beam_search": "captions/s: batched vs one-at-a-time beam search",
    "compile": "training images/s: torch.compile vs eager",
    "scaling": "time and peak memory against data, vocabulary and beam width",
    "shards": "epoch time and peak memory: streamed from shards vs the in-memory cache vs the files",
}
"""What each entry compares, in a few words (the rows say it with the sizes)."""
DEFAULT = "cnn"
"""The network of the entries other than train_loop and flops (that of configs/tinyimagenet30/cnn.yaml)."""
SCALE_VAL_FRACTION = 0.01
"""The data axis's validation share: below half an image per class, so nothing is held out."""
TARGET = 0.95
"""The share of the hand-written loop's throughput that vlc's training should reach."""


@dataclass(frozen=True)
class Sizes:
    """How big each measurement is in one mode.

    Args:
        tiny: the networks in their tiny version (``classifier.NETWORKS``' backbone overrides).
        image_size: side of the JPEG images (None: each network's own; the default network's is 64).
        classes: classes of the JPEG datasets.
        batch: training batch (None: each network's own, that of its config).
        warmup: training steps left out before the timed windows.
        window: training steps per timed window.
        windows: timed windows (the best is kept).
        repeats: best of how many runs elsewhere.
        matmul: side of the matrices of the peak measurement.
        predict_images: JPEG files ``vlc predict`` reads.
        cache: ``feature_cache.epoch_times`` arguments.
        beam: ``beam_search.make_decoder`` arguments with the search's ``width`` and ``max_len``.
        decoder: the vocabulary axis: decoder sizes, ``batch_size``, ``caption_len`` and ``max_len``.
        scale_images: training images of the data axis at 1x.
        scale_epochs: epochs of each point of the data axis (the best is kept).
        shards: ``shards.compare``'s ``per_class``, ``factors`` and ``epochs``.
    """

    tiny: bool
    image_size: int | None
    classes: int
    batch: int | None
    warmup: int
    window: int
    windows: int
    repeats: int
    matmul: int
    predict_images: int
    cache: dict
    beam: dict
    decoder: dict
    scale_images: int
    scale_epochs: int
    shards: dict


BEAM = {"kind": "lstm", "vocab_size": 3000, "feature_dim": 2048, "embed_dim": 256, "hidden_dim": 512}
DECODER = {"feature_dim": 512, "embed_dim": 256, "hidden_dim": 512, "caption_len": 16, "max_len": 20}
MODES = {
    "full": Sizes(
        tiny=False,
        image_size=None,
        classes=30,
        batch=None,
        warmup=2,
        window=4,
        windows=3,
        repeats=3,
        matmul=2048,
        predict_images=256,
        cache={"images": 256, "batch_size": 64, "epochs": 3, "backbone": "resnet50", "image_size": 224},
        beam={**BEAM, "batch_size": 64, "width": 5, "max_len": 20},
        decoder={**DECODER, "batch_size": 64},
        scale_images=240,
        scale_epochs=2,
        shards={"per_class": 64, "factors": (1, 4, 16), "epochs": 2},
    ),
    "quick": Sizes(
        tiny=False,
        image_size=None,
        classes=8,
        batch=8,
        warmup=2,
        window=3,
        windows=2,
        repeats=2,
        matmul=1024,
        predict_images=32,
        cache={"images": 32, "batch_size": 16, "epochs": 3, "backbone": "cnn", "image_size": 64},
        beam={**BEAM, "batch_size": 4, "width": 5, "max_len": 20},
        decoder={**DECODER, "batch_size": 16},
        scale_images=16,
        scale_epochs=1,
        shards={"per_class": 4, "factors": (1, 4, 16), "epochs": 1},
    ),
    "tiny": Sizes(
        tiny=True,
        image_size=16,
        classes=3,
        batch=4,
        warmup=1,
        window=2,
        windows=2,
        repeats=1,
        matmul=128,
        predict_images=6,
        cache={
            **{"images": 8, "batch_size": 4, "epochs": 2, "backbone": "cnn", "image_size": 16},
            "backbone_args": NETWORKS["cnn"][1],
        },
        beam={"kind": "lstm", "vocab_size": 50, "feature_dim": 16, "embed_dim": 8, "hidden_dim": 16}
        | {"batch_size": 3, "width": 3, "max_len": 6},
        decoder={"feature_dim": 16, "embed_dim": 8, "hidden_dim": 16, "caption_len": 5, "max_len": 5, "batch_size": 2},
        scale_images=6,
        scale_epochs=1,
        shards={"per_class": 2, "factors": (1,), "epochs": 1},
    ),
}


@dataclass
class Figure:
    """One measured figure (or one per point of a scaling axis)."""

    label: str
    value: float | list[float]
    unit: str

    def text(self) -> str:
        values = self.value if isinstance(self.value, list) else [self.value]
        return f"{self.label}: {'/'.join(number(v) for v in values)} {self.unit}"


@dataclass
class Row:
    """One line of the table: two figures measured side by side, their ratio and what it means."""

    entry: str
    name: str
    compared: str
    a: Figure | None = None
    b: Figure | None = None
    ratio: float | None = None
    verdict: str = ""
    details: dict = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None
    error: str | None = None


def number(value: float) -> str:
    """A figure with three significant digits (thousands separated)."""
    if value is None or not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def ratio(a: float, b: float) -> float | None:
    """``a / b``, None when ``b`` is 0."""
    return a / b if b else None


class Suite:
    """The entries, with what they share: the data folders, the training figures and a checkpoint.

    Args:
        sizes: the mode's sizes.
        precision: Lightning's precision of the training measurements.
        workdir: where data, logs and checkpoints go (a temporary folder).
        verbose: let ``vlc`` print.
        networks: the networks of ``train_loop`` and ``flops`` (names of ``classifier.NETWORKS``; default: all).
    """

    def __init__(
        self, sizes: Sizes, precision: str, workdir: Path, verbose: bool = False, networks: list[str] | None = None
    ) -> None:
        self.sizes, self.precision, self.workdir, self.verbose = sizes, precision, workdir, verbose
        self.networks = list(networks or NETWORKS)
        self.recipes = {
            name: Recipe.read(path, tiny if sizes.tiny else None)
            for name, (path, tiny) in NETWORKS.items()
            if name in self.networks or name == DEFAULT
        }
        self.recipe = self.recipes[DEFAULT]
        self.batch, self.image_size = self.batch_of(DEFAULT), self.size_of(DEFAULT)
        self.steps = sizes.warmup + sizes.window * sizes.windows
        self._folders: dict[str, Path] = {}
        self._training: dict[str, dict | BaseException] = {}
        self._peaks: dict[str, float] = {}
        self.fits = 0

    # -- what entries share --------------------------------------------------------------------------------------
    def batch_of(self, network: str) -> int:
        """The training batch of ``network``: the mode's, or its config's."""
        return self.sizes.batch or int(self.recipes[network].data.get("batch_size", 128))

    def size_of(self, network: str) -> int:
        """Side of ``network``'s JPEG images: the mode's, or that of its config's dataset."""
        return self.sizes.image_size or self.recipes[network].image_size

    def folder(self, name: str, images: int, size: int, val_fraction: float, test: int = 0) -> Path:
        """A JPEG dataset with at least ``images`` training images after the validation split (written once)."""
        if name not in self._folders:
            per = per_class(images, self.sizes.classes, val_fraction)
            root = self.workdir / "data" / name
            self._folders[name] = write_dataset(root, self.sizes.classes, per, size, test)
        return self._folders[name]

    def train_folder(self, network: str = "cnn") -> Path:
        """The training data of ``train_loop`` for ``network`` (one epoch covers every step); the default network's
        has a ``test_set`` for ``predict``."""
        size, val_fraction = self.size_of(network), float(self.recipes[network].data.get("val_fraction", 0.1))
        test = self.sizes.predict_images if network == DEFAULT else 0
        name = "train" if network == DEFAULT else f"train-{network}"
        return self.folder(name, self.steps * self.batch_of(network), size, val_fraction, test)

    def fit(self, timer: str, root: Path, args: list[str], network: str = DEFAULT):
        """``vlc fit`` of ``network`` on ``root`` with its batch and the suite's precision (``classifier.vlc_fit``)."""
        self.fits += 1
        common = [f"--data.batch_size={self.batch_of(network)}", f"--trainer.precision={self.precision}"]
        run = self.workdir / "runs" / f"{self.fits}"
        run.mkdir(parents=True)
        return vlc_fit(self.recipes[network], root, run, timer, common + args, self.verbose)

    def training(self, network: str = DEFAULT) -> dict:
        """Images/s of ``vlc fit`` and of the hand-written loop (measured once per network, shared by entries)."""
        if isinstance(self._training.get(network), BaseException):  # failed in an earlier entry: not run twice
            raise self._training[network]
        if network not in self._training:
            s, root, batch = self.sizes, self.train_folder(network), self.batch_of(network)
            try:
                stamps = self.fit("StepTimer", root, [f"--trainer.max_steps={self.steps}"], network)
            except (Exception, SystemExit) as err:
                self._training[network] = err
                raise
            images, labels = read_dataset(root)
            _, hand = hand_fit(self.recipes[network], images, labels, batch, self.steps, self.precision)
            vlc_best, vlc_runs = best_window(stamps, s.warmup, s.window)
            hand_best, hand_runs = best_window(hand, s.warmup, s.window)
            self._training[network] = {
                "vlc": batch * s.window / vlc_best,
                "hand": batch * s.window / hand_best,
                "vlc_window_seconds": vlc_runs,
                "hand_window_seconds": hand_runs,
                "checkpoint": str(last_checkpoint(self.workdir / "runs" / f"{self.fits}")),
            }
        return self._training[network]

    def checkpoint(self) -> Path:
        """A checkpoint of the default network's ``vlc fit`` (the training run's, or one step's)."""
        if isinstance(self._training.get(DEFAULT), dict):
            return Path(self._training[DEFAULT]["checkpoint"])
        self.fit("StepTimer", self.train_folder(), ["--trainer.max_steps=1"])
        return last_checkpoint(self.workdir / "runs" / f"{self.fits}")

    def peak(self, dtype: torch.dtype) -> float:
        """FLOP/s of ``torch.mm`` in ``dtype`` (``classifier.matmul_peak``, measured once per dtype)."""
        name = str(dtype).removeprefix("torch.")
        if name not in self._peaks:
            self._peaks[name] = matmul_peak(self.sizes.matmul, dtype, max(3, self.sizes.repeats))
        return self._peaks[name]

    def network_text(self, network: str) -> str:
        """``cnn (ResidualCNN, configs/tinyimagenet30/cnn.yaml, 64 px)``: what a row measures."""
        recipe = self.recipes[network]
        config = recipe.path.relative_to(REPO) if recipe.path.is_relative_to(REPO) else recipe.path
        return f"{network} ({recipe.family}, {config}, {recipe.input_size(self.size_of(network))} px)"

    # -- the entries ---------------------------------------------------------------------------------------------
    def each_network(self, entry: str, row) -> list[Row]:
        """``row(network)`` for every network; a network that fails gets a row with its error, the others go on."""
        rows = []
        for network in self.networks:
            try:
                rows.append(row(network))
            except (Exception, SystemExit) as err:
                if self.verbose:
                    traceback.print_exc()
                what = f"{DESCRIPTIONS[entry]}: {self.network_text(network)}"
                rows.append(Row(entry, f"{entry}/{network}", what, error=f"{type(err).__name__}: {err}"))
        return rows

    def train_loop(self) -> list[Row]:
        return self.each_network("train_loop", self.train_loop_row)

    def train_loop_row(self, network: str) -> Row:
        s, t, batch = self.sizes, self.training(network), self.batch_of(network)
        row = Row(
            "train_loop",
            f"train_loop/{network}",
            f"training images/s of {self.network_text(network)}: `vlc fit` vs a hand-written loop on tensors, same "
            f"network and augmentation ({self.recipes[network].data.get('augment', 'none')}), {self.precision}, "
            f"batch {batch}",
            Figure("vlc fit", t["vlc"], "images/s"),
            Figure("hand loop", t["hand"], "images/s"),
            ratio(t["vlc"], t["hand"]),
            details={k: v for k, v in t.items() if k != "checkpoint"}
            | {"network": network, "batch": batch, "image_size": self.size_of(network)}
            | {"warmup_steps": s.warmup, "window_steps": s.window, "windows": s.windows},
        )
        met = row.ratio is not None and row.ratio >= TARGET
        row.verdict = f"{row.ratio:.2f} ({'meets' if met else 'below'} the {TARGET} target)"
        return row

    def flops(self) -> list[Row]:
        return self.each_network("flops", self.flops_row)

    def flops_row(self, network: str) -> Row:
        s, t, recipe = self.sizes, self.training(network), self.recipes[network]
        per_image = training_flops(recipe, s.classes, self.batch_of(network), self.size_of(network))
        dtype = torch.bfloat16 if self.precision.startswith("bf16") else torch.float32
        peaks = {name: self.peak(d) for name, d in (("bf16", torch.bfloat16), ("fp32", torch.float32))}
        achieved = per_image * t["vlc"]
        shares = ", ".join(f"{100 * achieved / peak:.0f}% of the {name} peak" for name, peak in peaks.items())
        return Row(
            "flops",
            f"flops/{network}",
            f"training FLOP/s of `vlc fit` on {self.network_text(network)}: {number(per_image / 1e9)} GFLOP per "
            f"image (FlopCounterMode, forward+backward) x its images/s, vs torch.mm {s.matmul}x{s.matmul} "
            f"{str(dtype).removeprefix('torch.')}",
            Figure("achieved", achieved / 1e9, "GFLOP/s"),
            Figure("matmul peak", self.peak(dtype) / 1e9, "GFLOP/s"),
            ratio(achieved, self.peak(dtype)),
            shares,
            {
                "network": network,
                "flops_per_image": per_image,
                "images_per_s": t["vlc"],
                "hand_loop_flops_per_s": per_image * t["hand"],
                "matmul_peak_flops_per_s": peaks,
            },
        )

    def data_pipeline(self) -> list[Row]:
        s, t = self.sizes, self.training()
        seconds, images = loader_pass(self.recipe, self.train_folder(), self.batch, s.repeats)
        delivered = images / seconds
        return [
            Row(
                "data_pipeline",
                "data_pipeline",
                "images/s the training loader delivers (with train_batch's augmentation) vs images/s training "
                "consumes (train_loop)",
                Figure("loader", delivered, "images/s"),
                Figure("training", t["vlc"], "images/s"),
                ratio(delivered, t["vlc"]),
                f"{delivered / t['vlc']:.0f}x what training needs; loading takes {100 * t['vlc'] / delivered:.1f}% "
                "of training time (num_workers 0: in series)",
                {"images_per_pass": images, "pass_seconds": seconds},
            )
        ]

    def predict(self) -> list[Row]:
        s = self.sizes
        checkpoint, folder = self.checkpoint(), self.train_folder() / "test_set"
        config = predict_config()
        output = self.workdir / "predictions.csv"
        command_s, _ = best_time(
            lambda: vlc_predict(checkpoint, folder, self.image_size, output, self.verbose), s.repeats, warmup=0
        )
        rows = output.read_text().splitlines()
        model, images = load_classifier(checkpoint), read_folder(folder, self.image_size)
        forward_s, _ = best_time(
            lambda: bare_forward(model, images, config["batch_size"], config["precision"]), s.repeats
        )
        n = len(images)
        if len(rows) != n + 1:  # a header, then a row per image
            raise RuntimeError(f"vlc predict wrote {len(rows) - 1} rows for {n} images")
        return [
            Row(
                "predict",
                "predict",
                f"images/s: `vlc predict` on {n} JPEG files (whole command, in-process) vs the model's forward on "
                f"decoded tensors, {config['precision']}",
                Figure("vlc predict", n / command_s, "images/s"),
                Figure("bare forward", n / forward_s, "images/s"),
                ratio(forward_s, command_s),
                f"{number(forward_s / command_s)}: the command costs {command_s - forward_s:.1f} s more for {n} images",
                {
                    "images": n,
                    "command_seconds": command_s,
                    "forward_seconds": forward_s,
                    "batch": config["batch_size"],
                },
            )
        ]

    def export(self) -> list[Row]:
        s = self.sizes
        checkpoint, folder = self.checkpoint(), self.train_folder() / "test_set"
        threads = torch.get_num_threads()
        r = export_measure(checkpoint, folder, self.workdir / "export", threads, s.repeats, self.verbose)
        n, onnx_s, vlc_s = r["images"], r["onnx_predict_seconds"], r["vlc_predict_seconds"]
        return [
            Row(
                "export",
                "export",
                f"images/s: `python -m vlc.onnx_predict` of the `vlc export` file against `vlc predict` on {n} JPEG "
                f"files (each whole command in-process), {threads} threads",
                Figure("onnx predictor", n / onnx_s, "images/s"),
                Figure("vlc predict", n / vlc_s, "images/s"),
                ratio(vlc_s, onnx_s),
                f"{number(vlc_s / onnx_s)}x faster; the same top-1 for {r['same_top1']}/{n} images, probabilities "
                f"within {r['max_probability_difference']:.1g}",
                r,
            )
        ]

    def feature_cache(self) -> list[Row]:
        c = self.sizes.cache
        with quiet(not self.verbose):
            times = {cache: epoch_times(cache, precision=self.precision, **c) for cache in ("off", "memory")}
        off, memory = after_first(times["off"]), after_first(times["memory"])
        return [
            Row(
                "feature_cache",
                "feature_cache",
                f"caption training epoch after the first, frozen {c['backbone']} (random weights) at "
                f"{c['image_size']} px + LSTM, {c['images']} images: re-encoding vs memory cache",
                Figure("cache off", off, "s"),
                Figure("memory cache", memory, "s"),
                ratio(off, memory),
                f"{off / memory:.1f}x faster with the cache",
                {"epoch_seconds": times, **c},
            )
        ]

    def beam_search(self) -> list[Row]:
        b = dict(self.sizes.beam)
        width, max_len = b.pop("width"), b.pop("max_len")
        decoder, features = make_decoder(**b)
        result = compare(decoder, features, width, max_len, self.sizes.repeats)
        n, seconds = b["batch_size"], result["seconds"]
        if result["differ"]:  # in float32 the batched search must find exactly the one-by-one captions
            raise RuntimeError(f"{result['differ']} of {n} captions differ between batched and one-by-one search")
        return [
            Row(
                "beam_search",
                "beam_search",
                f"captions/s of beam search width {width}, {n} images, vocabulary {b['vocab_size']}, float32: "
                "batched vs one image at a time",
                Figure("batched", n / seconds["batched"], "captions/s"),
                Figure("one by one", n / seconds["one_by_one"], "captions/s"),
                ratio(seconds["one_by_one"], seconds["batched"]),
                f"{seconds['one_by_one'] / seconds['batched']:.1f}x, identical captions (0 of {n} differ)",
                {**result, **self.sizes.beam},
            )
        ]

    def compile(self) -> list[Row]:
        s = self.sizes
        images, labels = read_dataset(self.train_folder())
        import torch._inductor.config as inductor  # here: loading it costs the other entries nothing

        # a cold compile, as the first run on a machine: no kernels from the caches of earlier runs
        with quiet(not self.verbose), inductor.patch(force_disable_caches=True):
            runs = {
                mode: hand_fit(
                    self.recipe, images, labels, self.batch, self.steps, self.precision, compile=mode == "compiled"
                )
                for mode in ("eager", "compiled")
            }
        step = {mode: best_window(stamps, s.warmup, s.window)[0] / s.window for mode, (_, stamps) in runs.items()}
        start, stamps = runs["compiled"]
        compile_s = stamps[0] - start - step["eager"]
        gain = step["eager"] - step["compiled"]
        payback = f", pays back after {compile_s / gain:,.0f} steps" if gain > 0 else ", never pays back"
        return [
            Row(
                "compile",
                "compile",
                f"training images/s of the hand-written step, eager vs torch.compile (default mode), "
                f"{self.precision}, batch {self.batch}",
                Figure("eager", self.batch / step["eager"], "images/s"),
                Figure("compiled", self.batch / step["compiled"], "images/s"),
                ratio(step["eager"], step["compiled"]),
                f"{step['eager'] / step['compiled']:.2f}x compiled; compiling takes {compile_s:.0f} s{payback}",
                {"compile_seconds": compile_s, "step_seconds": step},
            )
        ]

    def scaling(self) -> list[Row]:
        rows = []
        for axis in (self.scaling_data, self.scaling_vocab, self.scaling_beam):
            start = time.perf_counter()
            rows.append(axis())
            rows[-1].seconds = time.perf_counter() - start
        return rows

    def scaling_data(self) -> Row:
        s = self.sizes
        per = max(1, round(s.scale_images / s.classes))  # images per class at 1x
        # no validation split (validation is off anyway): every image trains, so the sizes are exactly 1:2:4
        split = [f"--data.val_fraction={SCALE_VAL_FRACTION}", f"--trainer.max_epochs={s.scale_epochs}"]
        roots = {
            f: write_dataset(self.workdir / "data" / f"scale{f}", s.classes, per * f, self.image_size) for f in FACTORS
        }
        images = [s.classes * (per * f - round(per * f * SCALE_VAL_FRACTION)) for f in FACTORS]
        if self.fits == 0:  # the first vlc fit of a process allocates for good: keep it out of the points
            self.fit("EpochTimer", roots[1], ["--trainer.max_steps=1"])
        times, rises = [], []
        for factor in FACTORS:
            with PeakMemory() as memory:
                epochs = self.fit("EpochTimer", roots[factor], split)
            times.append(min(epochs))
            rises.append(memory.rise / 2**20)
        return Row(
            "scaling",
            "scaling/data",
            f"`vlc fit` epoch (best of {s.scale_epochs}) and peak RSS rise over the RSS before the run, "
            f"{'/'.join(map(str, images))} training images, batch {self.batch}",
            Figure("epoch", times, "s"),
            Figure("peak rise", rises, "MiB"),
            ratio(times[-1], times[0]),
            f"4x data: time {times[-1] / times[0]:.1f}x, memory {growth(rises)}",
            {"factors": list(FACTORS), "images": images, "exact_peak": memory.exact},
        )

    def scaling_vocab(self) -> Row:
        d, repeats = dict(self.sizes.decoder), self.sizes.repeats
        batch, length, max_len = d.pop("batch_size"), d.pop("caption_len"), d.pop("max_len")
        ids = {"start_idx": Vocabulary.START, "end_idx": Vocabulary.END, "pad_idx": Vocabulary.PAD}

        def point(vocab: int) -> tuple[float, float]:
            decoder, features = make_decoder("lstm", vocab, batch_size=batch, **d)
            optimizer = adam(decoder.parameters())
            captions = torch.randint(len(Vocabulary.SPECIALS), vocab, (batch, length))
            captions[:, 0] = Vocabulary.START

            def step() -> None:
                loss = caption_loss(decoder.train(), features, captions)[0]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

            step_s, _ = best_time(step, repeats)
            greedy_s, _ = best_time(lambda: greedy_decode(decoder.eval(), features, max_len, **ids), repeats)
            return step_s, greedy_s

        point(VOCABS[0])  # warm-up: first calls allocate for good
        steps, greedy, rises = [], [], []
        for vocab in VOCABS:
            with PeakMemory() as memory:
                step_s, greedy_s = point(vocab)
            steps.append(step_s), greedy.append(greedy_s), rises.append(memory.rise / 2**20)
        return Row(
            "scaling",
            "scaling/vocab",
            f"LSTM decoder (hidden {d['hidden_dim']}) training step on {batch} captions of {length} tokens, greedy "
            f"decoding, peak RSS rise over the RSS before each point, vocabulary 1k/5k/10k",
            Figure("training step", steps, "s"),
            Figure("peak rise", rises, "MiB"),
            ratio(steps[-1], steps[0]),
            f"10x vocabulary: step {steps[-1] / steps[0]:.1f}x, greedy {greedy[-1] / greedy[0]:.1f}x, "
            f"memory {growth(rises)}",
            {"vocabularies": list(VOCABS), "greedy_seconds": greedy, "batch": batch, "caption_len": length, **d},
        )

    def scaling_beam(self) -> Row:
        b, repeats = dict(self.sizes.beam), self.sizes.repeats
        b.pop("width")
        max_len = b.pop("max_len")
        decoder, features = make_decoder(**b)
        search = {
            width: lambda width=width: beam_search(decoder, features, **search_options(width, max_len))
            for width in WIDTHS
        }
        search[WIDTHS[0]]()  # warm-up
        times, rises = [], []
        for width in WIDTHS:
            with PeakMemory() as memory:
                seconds, _ = best_time(search[width], repeats)
            times.append(seconds), rises.append(memory.rise / 2**20)
        return Row(
            "scaling",
            "scaling/beam",
            f"batched beam search of {b['batch_size']} images (vocabulary {b['vocab_size']}, max {max_len} tokens) "
            "and peak RSS rise over the RSS before each point, width 1/3/5",
            Figure("search", times, "s"),
            Figure("peak rise", rises, "MiB"),
            ratio(times[-1], times[0]),
            f"width 5 vs 1: time {times[-1] / times[0]:.1f}x, memory {growth(rises)}",
            {"widths": list(WIDTHS), **self.sizes.beam},
        )

    def shards(self) -> list[Row]:
        s, c = self.sizes, self.sizes.shards
        if self.fits == 0:  # the first vlc fit of a process allocates for good: keep it out of the points
            self.fit("EpochTimer", self.folder("warmup", s.classes), ["--trainer.max_steps=1"])
        result = shards_compare(
            self.workdir / "shards",
            lambda root, args: self.fit("EpochTimer", root, args),
            s.classes,
            c["per_class"],
            c["factors"],
            s.image_size,
            c["epochs"],
        )
        seconds, mib, images = result["seconds"], result["mib"], result["images"]
        sizes = f"{'/'.join(map(str, images))} training images ({'/'.join(f'{f}x' for f in c['factors'])})"
        last = {way: f"{seconds[way][-1]:.2f} s, {mib[way][-1]:.0f} MiB" for way in seconds}
        at = f"at {images[-1]} images: " + ", ".join(f"{way} {text}" for way, text in last.items())
        return [
            Row(
                "shards",
                "shards/time",
                f"`vlc fit` epoch (best of {c['epochs']}), {sizes}, batch {s.batch}: streamed from shards vs decoded "
                "from the files every epoch",
                Figure("streamed", seconds["streamed"], "s"),
                Figure("files", seconds["files"], "s"),
                ratio(seconds["streamed"][-1], seconds["files"][-1]),
                at,
                result,
            ),
            Row(
                "shards",
                "shards/memory",
                f"peak RSS rise over the RSS before the run, {sizes}: streamed from shards vs the in-memory cache",
                Figure("streamed", mib["streamed"], "MiB"),
                Figure("cached", mib["cached"], "MiB"),
                ratio(mib["streamed"][-1], mib["cached"][-1]) if mib["streamed"][-1] > 0 else None,
                at,
                result,
            ),
        ]


def growth(values: list[float]) -> str:
    """How the last of ``values`` compares with the first: ``3.2x``, or both figures when the first is 0."""
    if values[0] > 0:
        return f"{values[-1] / values[0]:.1f}x"
    return f"{number(values[0])} -> {number(values[-1])} MiB"


# -- running, the table, the files ----------------------------------------------------------------------------------
def run(suite: Suite, names: list[str], skip: dict[str, str]) -> list[Row]:
    """Run the entries ``names`` in order; a failing entry becomes a row with its error, the others go on."""
    rows = []
    for name in names:
        print(f"{name} ...", end=" ", file=sys.stderr, flush=True)
        start = time.perf_counter()
        if name in skip:
            result = [Row(name, name, DESCRIPTIONS[name], skipped=skip[name])]
        else:
            try:
                result = getattr(suite, name)()
            except (Exception, SystemExit) as err:
                if suite.verbose:
                    traceback.print_exc()
                result = [Row(name, name, DESCRIPTIONS[name], error=f"{type(err).__name__}: {err}")]
        seconds = time.perf_counter() - start
        for row in result:
            row.seconds = row.seconds or seconds
        print(f"{seconds:.1f} s" + (" (failed)" if any(r.error for r in result) else ""), file=sys.stderr)
        rows += result
    return rows


COLUMNS = ("entry", "what is compared", "figure A", "figure B", "ratio / verdict")


def table_rows(rows: list[dict]) -> list[tuple[str, ...]]:
    """The table's cells of each row (rows as stored in the JSON file)."""
    cells = []
    for row in rows:
        if row.get("skipped") or row.get("error"):
            status = f"skipped: {row['skipped']}" if row.get("skipped") else f"FAILED: {row['error']}"
            cells.append((row["name"], row["compared"], "", "", status))
            continue
        a, b = (Figure(**row[key]).text() for key in ("a", "b"))
        cells.append((row["name"], row["compared"], a, b, row["verdict"]))
    return cells


def print_table(rows: list[dict]) -> None:
    cells = table_rows(rows)
    widths = [max(len(line[i]) for line in [COLUMNS, *cells]) for i in range(len(COLUMNS))]
    widths[1] = min(widths[1], 60)
    for line in [COLUMNS, tuple("-" * w for w in widths), *cells]:
        text = [cell if len(cell) <= w else cell[: w - 3] + "..." for cell, w in zip(line, widths)]
        print(" | ".join(cell.ljust(w) for cell, w in zip(text, widths)).rstrip())


def markdown(results: dict) -> str:
    """The results as a Markdown section: the command, date, machine and versions, then the table."""
    m, s = results["hardware"], results["suite"]
    lines = [
        f"Measured {m['date']} with `{s['command']}` ({s['mode']} mode, {s['precision']}, "
        f"{s['seconds']:.0f} s in all), vlc {m['vlc']} at commit {m['commit']}.",
        "",
        f"Machine: {m['cpu_model']} ({m['cpu_capability']}, bfloat16 {'native' if m['bf16_fast'] else 'not native'}), "
        f"{m['cores_usable']} cores usable of {m['cores']}, {m['torch_threads']} torch threads, load average "
        f"{', '.join(map(str, m['load_average'] or []))} at the start; Python {m['python']}, torch {m['torch']}, "
        f"lightning {m['lightning']}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in table_rows(results["rows"])]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--full", dest="mode", action="store_const", const="full", help="the sizes of the results")
    mode.add_argument("--quick", dest="mode", action="store_const", const="quick", help="small sizes (default)")
    mode.add_argument("--tiny", dest="mode", action="store_const", const="tiny", help="minimal sizes (smoke test)")
    parser.add_argument("--only", nargs="+", choices=ENTRIES, metavar="NAME", help=f"run these of {', '.join(ENTRIES)}")
    parser.add_argument(
        "--networks",
        nargs="+",
        choices=list(NETWORKS),
        metavar="NAME",
        help=f"train_loop and flops measure these networks of {', '.join(NETWORKS)} (default: all)",
    )
    parser.add_argument("--precision", choices=["auto", "32-true", "bf16-mixed"], default="auto")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every measurement to this JSON file")
    parser.add_argument("--markdown", type=Path, metavar="PATH", help="write the table as Markdown to this file")
    parser.add_argument("--from-json", type=Path, metavar="PATH", help="render a JSON file of results; run nothing")
    parser.add_argument("--verbose", action="store_true", help="let vlc print, and show tracebacks")
    args = parser.parse_args(argv)
    args.mode = args.mode or "quick"
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the suite (or render ``--from-json``); 1 when an entry failed."""
    args = parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        command = ["python", "benchmarks/suite.py", *(sys.argv[1:] if argv is None else argv)]
        threads = torch.get_num_threads()
        try:
            results = measure(args, command)
        finally:
            torch.set_num_threads(threads)
    print_table(results["rows"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(results))
    return 1 if any(row.get("error") for row in results["rows"]) else 0


def measure(args: argparse.Namespace, command: list[str]) -> dict:
    """Run the entries of ``args`` and gather the results, the machine and the command."""
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = default_precision() if args.precision == "auto" else args.precision
    names = [name for name in ENTRIES if not args.only or name in args.only]
    skip = {}
    if args.mode != "full" and "compile" in names and not (args.only and "compile" in args.only):
        skip["compile"] = "compile takes 15-30 s (more on 2 cores): run --full or --only compile"
    hardware, start = machine(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vlc-bench-") as workdir:
        suite = Suite(MODES[args.mode], precision, Path(workdir), args.verbose, args.networks)
        rows = run(suite, names, skip)
    return {
        "suite": {
            "command": shlex.join(command),
            "mode": args.mode,
            "precision": precision,
            "entries": names,
            "networks": suite.networks,
            "seconds": time.perf_counter() - start,
        },
        "hardware": hardware,
        "rows": [asdict(row) for row in rows],
    }


if __name__ == "__main__":
    sys.exit(main())
