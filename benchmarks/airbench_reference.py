# ruff: noqa: E501  (EDITS holds whole lines of the reference script)
"""vlc beside its anchor: airbench94 (KellerJordan/cifar10-airbench, ``legacy/airbench94.py``) on vlc's CIFAR-10 split.

The reference is written for CUDA; this tool makes it run on a CPU with the fewest changes, each listed in ``EDITS``
(device, float32 weights under bfloat16 autocast as vlc's ``bf16-mixed``, a wall clock for CUDA events, the data from
tensor files, the epochs and runs from the command line, and each epoch's accuracy printed as a ``CURVE`` line), and
writes those tensor files from vlc's own CIFAR-10 data module, so that both train on exactly the same images:

    git clone https://github.com/KellerJordan/cifar10-airbench /tmp/cifar10-airbench   # (or the fetch tool offline)
    python benchmarks/airbench_reference.py data --root /tmp/vlc-data/cifar10 --out /tmp/airbench-data
    python benchmarks/airbench_reference.py port --script /tmp/cifar10-airbench/legacy/airbench94.py --out /tmp/port94.py
    python /tmp/port94.py --data /tmp/airbench-data/split --epochs 4      # vlc's 45,000 / 5,000 split, test set
    python /tmp/port94.py --data /tmp/airbench-data/full --epochs 9.9     # airbench's own: all 50,000 images

``split/`` holds vlc's training and validation images (``data.seed 0``, ``val_fraction 0.1``) and the test set;
``full/`` all 50,000 training images. Each file is ``{"images": uint8 (N, 32, 32, 3), "labels", "classes"}``, the
layout the script reads. The port prints ``CURVE epoch E test_tta0 A val_tta0 B`` after each epoch and ``FINAL
test_tta2 ...`` (its six test-time views) at the end.
"""

import argparse
from pathlib import Path

import torch

from vlc.data.modules.cifar10 import Cifar10DataModule

EDITS = [
    # device and dtype: float32 weights on the CPU, bfloat16 autocast around forward passes (the GPU script: fp16)
    (
        "torch.backends.cudnn.benchmark = True",
        "import time\nimport argparse\nAUTOCAST = lambda: torch.autocast('cpu', dtype=torch.bfloat16)",
    ),
    ("map_location=torch.device(gpu)", "map_location='cpu'"),
    ("self.images = (self.images.half() / 255)", "self.images = (self.images.float() / 255)"),
    ("    net = net.half().cuda()\n", ""),
    # the data: tensor files built from the JPEG folders (no download offline)
    (
        "        if not os.path.exists(data_path):\n            dset = torchvision.datasets.CIFAR10(path, download=True, train=train)\n            images = torch.tensor(dset.data)\n            labels = torch.tensor(dset.targets)\n            torch.save({'images': images, 'labels': labels, 'classes': dset.classes}, data_path)\n",
        "",
    ),
    ("def __init__(self, path, train=True,", "def __init__(self, path, train=True, name=None,"),
    (
        "data_path = os.path.join(path, 'train.pt' if train else 'test.pt')",
        "data_path = os.path.join(path, name or ('train.pt' if train else 'test.pt'))",
    ),
    # timing: wall clock in place of CUDA events
    (
        "    starter = torch.cuda.Event(enable_timing=True)\n    ender = torch.cuda.Event(enable_timing=True)\n",
        "    class Clock:\n        def record(self): self.t = time.perf_counter()\n        def elapsed_time(self, end): return 1e3 * (end.t - self.t)\n    starter, ender = Clock(), Clock()\n",
    ),
    # forward passes under autocast (the whitening fit stays in float32: bf16 statistics gave NaN)
    (
        "            outputs = model(inputs)\n            loss = loss_fn(outputs, labels).sum()",
        "            with AUTOCAST():\n                outputs = model(inputs)\n            loss = loss_fn(outputs.float(), labels).sum()",
    ),
    (
        "    with torch.no_grad():\n        return torch.cat(",
        "    with torch.no_grad(), AUTOCAST():\n        return torch.cat(",
    ),
    (
        "        return torch.cat([infer_fn(inputs, model) for inputs in test_images.split(2000)])",
        "        return torch.cat([infer_fn(inputs, model).float() for inputs in test_images.split(2000)])",
    ),
    # data folder, epochs and runs from the command line; a validation split evaluated each epoch beside the test set
    (
        "    test_loader = CifarLoader('cifar10', train=False, batch_size=2000)\n    train_loader = CifarLoader('cifar10', train=True, batch_size=batch_size, aug=hyp['aug'])",
        "    torch.manual_seed(ARGS.seed + run if isinstance(run, int) else 0)\n    test_loader = CifarLoader(ARGS.data, train=False, batch_size=2000)\n    train_loader = CifarLoader(ARGS.data, train=True, batch_size=batch_size, aug=hyp['aug'])\n    val_loader = CifarLoader(ARGS.data, name='val.pt', train=False, batch_size=2000) if os.path.exists(os.path.join(ARGS.data, 'val.pt')) else None",
    ),
    (
        "        val_acc = evaluate(model, test_loader, tta_level=0)\n",
        "        val_acc = evaluate(model, test_loader, tta_level=0)\n        split_val = evaluate(model, val_loader, tta_level=0) if val_loader else float('nan')\n        print(f'CURVE epoch {epoch + 1} test_tta0 {val_acc:.4f} val_tta0 {split_val:.4f} train_loss {loss.item() / batch_size:.4f} time {total_time_seconds:.0f}', flush=True)\n",
    ),
    (
        "    tta_val_acc = evaluate(model, test_loader, tta_level=hyp['net']['tta_level'])\n",
        "    tta_val_acc = evaluate(model, test_loader, tta_level=hyp['net']['tta_level'])\n    if val_loader:\n        print(f'FINAL val_tta2 {evaluate(model, val_loader, tta_level=2):.4f} val_tta1 {evaluate(model, val_loader, tta_level=1):.4f}', flush=True)\n    print(f'FINAL test_tta2 {tta_val_acc:.4f} test_tta1 {evaluate(model, test_loader, tta_level=1):.4f} test_tta0 {evaluate(model, test_loader, tta_level=0):.4f}', flush=True)\n",
    ),
    ("        'train_epochs': 9.9,", "        'train_epochs': 9.9,  # replaced by --epochs"),
    (
        "    accs = torch.tensor([main(run) for run in range(25)])",
        "    accs = torch.tensor([main(run) for run in range(ARGS.runs)])",
    ),
    (
        'if __name__ == "__main__":\n',
        "if __name__ == \"__main__\":\n    p = argparse.ArgumentParser()\n    p.add_argument('--data', required=True)\n    p.add_argument('--epochs', type=float, default=9.9)\n    p.add_argument('--runs', type=int, default=1)\n    p.add_argument('--seed', type=int, default=0)\n    p.add_argument('--threads', type=int, default=2)\n    ARGS = p.parse_args()\n    torch.set_num_threads(ARGS.threads)\n    hyp['opt']['train_epochs'] = ARGS.epochs\n",
    ),
    (
        "    log_dir = os.path.join('logs', str(uuid.uuid4()))",
        "    log_dir = os.path.join('airbench_logs', str(uuid.uuid4()))",
    ),
]

"""``(old, new)`` replacements that turn ``legacy/airbench94.py`` into its CPU port; each old text occurs once."""


def nhwc(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The images ``(N, 32, 32, 3)`` uint8 and labels of one of vlc's in-memory datasets."""
    return dataset.images[dataset.index].permute(0, 2, 3, 1).contiguous(), torch.as_tensor(dataset.targets)


def write_data(root: str, out: Path) -> None:
    """``split/{train,val,test}.pt`` (vlc's split) and ``full/{train,test}.pt`` (all training images)."""
    dm = Cifar10DataModule(root=root, cache=True)
    dm.setup("fit"), dm.setup("test")
    classes = list(dm.class_names)
    splits = {name: nhwc(dm.datasets[name]) for name in ("train", "val", "test")}
    both = [torch.cat(pair) for pair in zip(splits["train"], splits["val"], strict=True)]
    for path, (images, labels) in {
        "split/train.pt": splits["train"],
        "split/val.pt": splits["val"],
        "split/test.pt": splits["test"],
        "full/train.pt": both,
        "full/test.pt": splits["test"],
    }.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"images": images, "labels": labels, "classes": classes}, out / path)
        print(f"{out / path}: {len(labels):,} images")


def port(script: Path, out: Path) -> None:
    """Apply ``EDITS`` to the reference script."""
    source = script.read_text().replace("torch.cuda.synchronize()", "pass")  # every occurrence
    for old, new in EDITS:
        if source.count(old) != 1:
            raise SystemExit(f"{script}: expected one occurrence of {old[:60]!r}: not legacy/airbench94.py?")
        source = source.replace(old, new)
    out.write_text(source)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser("data", help="tensor files of vlc's CIFAR-10 split")
    data.add_argument("--root", required=True, help="a CIFAR-10 folder vlc reads (data.root)")
    data.add_argument("--out", type=Path, required=True)
    script = commands.add_parser("port", help="the CPU port of legacy/airbench94.py")
    script.add_argument("--script", type=Path, required=True, help="legacy/airbench94.py of cifar10-airbench")
    script.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    write_data(args.root, args.out) if args.command == "data" else port(args.script, args.out)


if __name__ == "__main__":
    main()
