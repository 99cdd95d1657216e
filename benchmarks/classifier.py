"""The shipped classifiers measured: trained by ``vlc fit`` and by a hand-written loop, their data, FLOPs, prediction.

Each network, with its optimizer, schedule and data options, is that of a shipped config (:data:`NETWORKS`; the
default is ``configs/tinyimagenet30/cnn.yaml``, vlc's residual CNN on 64x64 images), read from the file, so the
benchmark follows the recipe when it changes. vlc's side always runs the real command in this process
(``vlc.cli.main``), with the timers of ``common`` added as callbacks; the images are JPEG files in the TinyImageNet30
layout that :func:`write_dataset` renders (shapes scenes), at the network's own input size. Used by
``benchmarks/suite.py`` and ``benchmarks/compute.py``.
"""

import itertools
import json
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from common import REPO, best_time, quiet, working_directory
from PIL import Image
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vlc.checkpoints import import_class
from vlc.cli import main as vlc
from vlc.data.augment import augment
from vlc.data.datasets.shapes import make_images
from vlc.images import ImageReader, list_images

CNN_CONFIG = REPO / "configs" / "tinyimagenet30" / "cnn.yaml"
PREDICT_CONFIG = REPO / "configs" / "predict" / "classify.yaml"
CONFIGS = REPO / "configs"
TINY_CNN = {"widths": [8, 16], "stem_width": 8}
TINY_AIRBENCH = {"widths": [8, 16, 16], "image_size": 16}
NETWORKS = {
    "cnn": (CONFIGS / "tinyimagenet30" / "cnn.yaml", TINY_CNN),
    "airbench64": (CONFIGS / "tinyimagenet30" / "airbench.yaml", TINY_AIRBENCH),
    "resnet18": (CONFIGS / "tinyimagenet30" / "resnet18.yaml", {"image_size": 32}),  # bf16 at 16 px diverged
    "airbench32": (CONFIGS / "cifar10" / "airbench.yaml", TINY_AIRBENCH),
    "demo": (CONFIGS / "demo" / "classify.yaml", TINY_CNN),
}
"""Every shipped classifier network: the config it comes from and the backbone overrides of a tiny version (the
smoke test's). ``configs/cifar10/transfer_{full,frozen}.yaml`` train ``airbench32``'s network from a checkpoint (the
frozen one through its last group only, a cheaper backward); they add no network of their own."""
DATASETS = {
    "vlc.data.TinyImageNet30DataModule": (64, 30),
    "vlc.data.Cifar10DataModule": (32, 10),
    "vlc.data.ShapesDataModule": (64, 30),
}
"""The images of each classification data module: side in pixels and classes."""
FIT_DATA = ("batch_size", "val_fraction", "augment", "flip", "crop_padding", "cache", "num_workers")
"""The data options of a config that ``vlc fit`` keeps on the suite's JPEG folder (TinyImageNet30's data module)."""


def _callable(spec: dict | None, **overrides) -> partial | None:
    """``{"class_path": ..., "init_args": {...}}`` of a config as a callable with those arguments."""
    if spec is None:
        return None
    return partial(import_class(spec["class_path"]), **{**spec.get("init_args", {}), **overrides})


@dataclass
class Recipe:
    """The classification recipe of a config file: network, optimisation and data options.

    Args:
        backbone: the backbone of the config (``class_path``, ``init_args`` with the overrides).
        backbone_overrides: the arguments that replace the config's (``widths``, ``stem_width``: a tiny network
            for the smoke test); passed to ``vlc fit`` on its command line too.
        model: the ``ImageClassifier`` arguments of the config (``dropout``, ``label_smoothing``, ``optimizer``...).
        data: the data module's arguments of the config (``batch_size``, ``augment``, ``val_fraction``...).
        precision: the config's trainer precision, when it names one.
        path: the config file.
        image_size: side of the images the data module gives (before the backbone's own resize, if any).
        num_classes: classes of the config's dataset.
    """

    backbone: dict
    backbone_overrides: dict
    model: dict
    data: dict
    precision: str | None
    path: Path = CNN_CONFIG
    image_size: int = 64
    num_classes: int = 30

    @classmethod
    def read(cls, path: Path = CNN_CONFIG, backbone_overrides: dict | None = None) -> "Recipe":
        """The recipe of a classifier config; ``ValueError`` naming the key when it is not one."""
        config = yaml.safe_load(Path(path).read_text()) or {}
        model = dict(config.get("model", {}).get("init_args", {}))
        if "backbone" not in model:
            raise ValueError(f"{path}: model.init_args.backbone missing; expected a classifier config")
        spec = model.pop("backbone")
        backbone = {**spec, "init_args": {**spec.get("init_args", {}), **(backbone_overrides or {})}}
        data_spec = config.get("data", {})
        if data_spec.get("class_path") not in DATASETS:
            found = data_spec.get("class_path")
            raise ValueError(f"{path}: data.class_path {found!r}; expected one of {list(DATASETS)}")
        data = dict(data_spec.get("init_args", {}))
        size, classes = DATASETS[data_spec["class_path"]]
        size = data.get("image_size") or size  # the data module's resize (CIFAR-10's image_size), if any
        precision = config.get("trainer", {}).get("precision")
        return cls(backbone, dict(backbone_overrides or {}), model, data, precision, Path(path), size, classes)

    @property
    def family(self) -> str:
        """The backbone's class name (``ResidualCNN``, ``AirbenchNet``...)."""
        return self.backbone["class_path"].rsplit(".", 1)[-1]

    def input_size(self, size: int | None = None) -> int:
        """Side of the images the network computes on: the backbone's ``image_size`` if set, else ``size`` (the
        images given; default: the dataset's)."""
        return self.backbone["init_args"].get("image_size") or size or self.image_size

    def fit_config(self, root: Path, path: Path) -> Path:
        """Write to ``path`` the config that ``vlc fit`` runs: this one, with its data options on ``root`` (a
        :func:`write_dataset` folder, read by TinyImageNet30's data module) and no ``init_from`` checkpoint."""
        config = yaml.safe_load(self.path.read_text())
        config["model"]["init_args"].pop("init_from", None)
        data = {key: self.data[key] for key in FIT_DATA if key in self.data}
        config["data"] = {
            "class_path": "vlc.data.TinyImageNet30DataModule",
            "init_args": {"root": str(root), "test_labels": None, **data},
        }
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def network(self, num_classes: int) -> nn.Module:
        """The network alone (backbone, pooling, dropout, head), as :class:`HandClassifier`."""
        return HandClassifier(self.backbone, num_classes, self.model.get("dropout", 0.0))

    def cli_args(self) -> list[str]:
        """``vlc fit`` arguments that apply ``backbone_overrides``."""
        prefix = "--model.init_args.backbone.init_args"
        return [f"{prefix}.{key}={json.dumps(value)}" for key, value in self.backbone_overrides.items()]


class HandClassifier(nn.Module):
    """The classifier's layers without Lightning: the backbone, global average pooling, dropout, linear head."""

    def __init__(self, backbone: dict, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = _callable(backbone)()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.num_features, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(images).mean(dim=(2, 3))))


# -- data -------------------------------------------------------------------------------------------------------
def write_dataset(root: Path, num_classes: int, per_class: int, size: int, test: int = 0) -> Path:
    """A TinyImageNet30-layout folder of JPEG shapes scenes: ``class.txt``, ``train_set/<class>/``, ``test_set/``.

    Args:
        root: the folder to create.
        num_classes: classes (``class00``, ``class01``...); scene ``i`` goes to class ``i % num_classes``.
        per_class: training images per class.
        size: side of the images in pixels.
        test: images in ``test_set`` (unlabelled; what ``vlc predict`` reads).
    """
    names = [f"class{i:02d}" for i in range(num_classes)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "class.txt").write_text("".join(f"{i}\t{name}\n" for i, name in enumerate(names)))
    n = num_classes * per_class
    for i, image in enumerate(make_images(0, 0, n + test, size=size)):
        folder = root / "train_set" / names[i % num_classes] if i < n else root / "test_set"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:06d}.JPEG", quality=90)
    return root


def read_dataset(root: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Every training image of a :func:`write_dataset` folder, decoded: ``(N, 3, H, W)`` uint8 and labels ``(N,)``."""
    reader, images, labels = ImageReader(), [], []
    for label, folder in enumerate(sorted((root / "train_set").iterdir())):
        for path in list_images(folder):
            images.append(reader(path))
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def read_folder(folder: Path, size: int) -> torch.Tensor:
    """Every image under ``folder`` decoded by vlc's reader at ``size``: ``(N, 3, size, size)`` uint8."""
    reader = ImageReader(size)
    return torch.stack([reader(path) for path in list_images(folder)])


# -- training through vlc -----------------------------------------------------------------------------------------
_runs = itertools.count()


def vlc_fit(recipe: Recipe, root: Path, workdir: Path, timer: str, args: list[str], verbose: bool = False):
    """Run ``vlc fit`` with the recipe's config (:meth:`Recipe.fit_config`) on ``root`` in this process; the timer's
    record.

    Validation is off (an epoch is training steps only) and so is the progress bar; the run writes its logs and
    checkpoints under ``workdir``.

    Args:
        recipe: the network: its config and backbone overrides.
        root: the data folder (``data.root``).
        workdir: the current folder of the run.
        timer: ``StepTimer`` (a stamp per step) or ``EpochTimer`` (seconds per epoch), added to the run's callbacks.
        args: more ``vlc fit`` arguments (batch size, precision, length of the run).
        verbose: let the run print (otherwise its output is shown only if it fails).
    """
    run = next(_runs)
    record, config = workdir / f"timer-{run}.json", recipe.fit_config(root, workdir / f"config-{run}.yaml")
    callback = json.dumps({"class_path": f"common.{timer}", "init_args": {"path": str(record)}})
    command = [
        *("fit", "--config", str(config)),
        *("--trainer.max_time=null", "--trainer.limit_val_batches=0", "--trainer.enable_progress_bar=false"),
        f"--trainer.callbacks+={callback}",
        *recipe.cli_args(),
        *args,
    ]
    with working_directory(workdir), quiet(not verbose):
        vlc(command)
    return json.loads(record.read_text())


def last_checkpoint(workdir: Path) -> Path:
    """The newest ``last.ckpt`` a ``vlc fit`` wrote under ``workdir``."""
    return max(workdir.rglob("last.ckpt"), key=lambda path: path.stat().st_mtime)


# -- training by hand ---------------------------------------------------------------------------------------------
def autocast(precision: str):
    """The autocast context of a Lightning precision (``bf16-mixed``; nothing for ``32-true``)."""
    enabled = precision.startswith("bf16")
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def hand_fit(
    recipe: Recipe,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int,
    steps: int,
    precision: str,
    compile: bool = False,
) -> tuple[float, list[float]]:
    """Train the recipe's network with a minimal PyTorch loop over in-memory tensors.

    Each step takes the next ``batch_size`` images of a shuffled order, crops and flips them as the data module
    does (``vlc.data.augment.augment`` with the recipe's preset and crop padding; random flips where the config
    alternates them: the same work), then runs forward (under the precision's
    autocast), the label-smoothed cross-entropy, backward, the recipe's optimizer and scheduler.

    Returns:
        ``time.perf_counter()`` before the first step, and at the end of every step.
    """
    torch.manual_seed(0)
    model = recipe.network(int(labels.max()) + 1).train()
    forward = torch.compile(model) if compile else model
    optimizer = _callable(recipe.model.get("optimizer"))(model.parameters())
    scheduler = _callable(recipe.model.get("scheduler"), total_steps=steps)
    scheduler = scheduler(optimizer) if scheduler is not None else None
    preset, smoothing = recipe.data.get("augment", "none"), recipe.model.get("label_smoothing", 0.0)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(images), generator=generator)
    start, stamps = time.perf_counter(), []
    for step in range(steps):
        index = order[torch.arange(step * batch_size, (step + 1) * batch_size) % len(order)]
        batch = augment(images[index], preset, generator, recipe.data.get("crop_padding"))
        with autocast(precision):
            loss = F.cross_entropy(forward(batch), labels[index], label_smoothing=smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        stamps.append(time.perf_counter())
    return start, stamps


# -- the data module's loader -------------------------------------------------------------------------------------
def loader_pass(recipe: Recipe, root: Path, batch_size: int, repeats: int) -> tuple[float, int]:
    """Best seconds of one pass over the training loader of the recipe's data module, with ``train_batch``.

    Every batch goes through what ``on_after_batch_transfer`` does in training (unreadable images taken out, then
    ``train_batch``: the augmentation, with a generator seeded per batch). Returns the seconds and the images.
    """
    data_class = import_class(yaml.safe_load(CNN_CONFIG.read_text())["data"]["class_path"])
    data = data_class(**{**recipe.data, "root": str(root), "batch_size": batch_size, "test_labels": None})
    data.setup("fit")
    loader = data.train_dataloader()

    def one_pass() -> int:
        count = 0
        for i, batch in enumerate(loader):
            batch = data.bad_images.take(batch, None)
            batch = data.train_batch(batch, torch.Generator().manual_seed(i))
            count += len(batch["images"])
        return count

    return best_time(one_pass, repeats)


# -- FLOPs ----------------------------------------------------------------------------------------------------------
def training_flops(recipe: Recipe, num_classes: int, batch_size: int, size: int) -> float:
    """FLOPs of one training step per image (forward and backward; convolutions and matrix products), counted by
    ``torch.utils.flop_counter.FlopCounterMode``, for images of ``size`` pixels (the backbone may resize them)."""
    model = recipe.network(num_classes).train()
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    labels = torch.arange(batch_size) % num_classes
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(images), labels).backward()
    return counter.get_total_flops() / batch_size


def forward_flops(recipe: Recipe, num_classes: int, batch_size: int, size: int) -> float:
    """FLOPs of one evaluation forward per image and view (no gradients), counted as :func:`training_flops`."""
    model = recipe.network(num_classes).eval()
    images = torch.randint(0, 256, (batch_size, 3, size, size), dtype=torch.uint8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(images)
    return counter.get_total_flops() / batch_size


def matmul_peak(n: int, dtype: torch.dtype, repeats: int) -> float:
    """FLOP/s of the best of ``repeats`` ``torch.mm`` of two ``n x n`` matrices of ``dtype`` (``2 n^3`` FLOPs)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    seconds, _ = best_time(lambda: torch.mm(a, b), repeats)
    return 2 * n**3 / seconds


# -- prediction -----------------------------------------------------------------------------------------------------
def predict_config() -> dict:
    """The trainer and data options of ``configs/predict/classify.yaml``."""
    config = yaml.safe_load(PREDICT_CONFIG.read_text())
    return {"precision": config["trainer"].get("precision", "32-true"), **config["data"].get("init_args", {})}


def vlc_predict(checkpoint: Path, folder: Path, size: int, output: Path, verbose: bool = False) -> None:
    """``vlc predict --config configs/predict/classify.yaml`` on ``folder`` in this process (a CSV to ``output``)."""
    command = [
        *("predict", "--config", str(PREDICT_CONFIG), f"--ckpt_path={checkpoint}"),
        *(f"--data.predict_dir={folder}", f"--data.image_size={size}", f"--writer.output={output}"),
        "--trainer.enable_progress_bar=false",
    ]
    with quiet(not verbose):
        vlc(command)


def load_classifier(checkpoint: Path) -> nn.Module:
    """The task of a ``vlc fit`` checkpoint, built from its hyper-parameters with its weights, in eval mode."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    hparams = {k: v for k, v in state["hyper_parameters"].items() if not k.startswith("_")}
    task = import_class(state["hyper_parameters"].get("_class_path", "vlc.tasks.ImageClassifier"))
    hparams["backbone"] = _callable(hparams["backbone"])
    model = task(**hparams)
    model.load_state_dict(state["state_dict"])
    return model.eval()


def bare_forward(model: nn.Module, images: torch.Tensor, batch_size: int, precision: str) -> None:
    """The model's forward over decoded images in batches, as prediction runs it (no gradients)."""
    with torch.inference_mode(), autocast(precision):
        for batch in images.split(batch_size):
            model(batch)


def per_class(images: int, num_classes: int, val_fraction: float) -> int:
    """Images per class so that ``images`` remain for training after the validation split (and a batch to spare)."""
    return int(np.ceil(images / num_classes / (1 - val_fraction))) + 1
