"""The dashboard's figures and HParams tab, readable: confusion counts in clustered order, ROC best/worst + macro."""

import io
import os

import numpy as np
import pytest
import torch
from helpers import events, run_dirs, tiny_classifier_fit, write_tinyimagenet30
from matplotlib.colors import to_hex
from PIL import Image
from tensorboard.plugins.hparams import plugin_data_pb2
from torchmetrics.classification import MulticlassAUROC, MulticlassConfusionMatrix, MulticlassROC

from vlc.cli import main
from vlc.metrics.figures import confusion_matrix_figure, confusion_order, roc_figure
from vlc.tasks.hparams import experiment_hparams


def predictions(n: int, images: int = 600, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities of ``images`` images of ``n`` classes, class ``i`` often taken for ``(i + n // 2) % n``, and
    classes easier as their index grows."""
    generator = torch.Generator().manual_seed(seed)
    target = torch.randint(0, n, (images,), generator=generator)
    logits = torch.randn(images, n, generator=generator)
    rows = torch.arange(images)
    logits[rows, target] += torch.linspace(0.5, 4, n)[target]
    logits[rows, (target + n // 2) % n] += 1.5
    return logits.softmax(dim=-1), target


def test_confusion_order_puts_confused_classes_side_by_side():
    counts = np.diag([10] * 6)
    for a, b in ((0, 3), (1, 4), (2, 5)):  # three pairs, far apart in index order
        counts[a, b] = counts[b, a] = 4
    order = confusion_order(counts)
    assert sorted(order) == list(range(6))
    position = {c: i for i, c in enumerate(order)}
    assert all(abs(position[a] - position[b]) == 1 for a, b in ((0, 3), (1, 4), (2, 5)))
    assert confusion_order(np.diag([5, 5, 5])) == [0, 1, 2]  # nothing confused: index order


@pytest.mark.parametrize("n", [30, 31])
def test_confusion_matrix_shows_counts_up_to_30_classes_in_a_card_sized_figure(n):
    probs, target = predictions(n)
    metric = MulticlassConfusionMatrix(n)
    metric.update(probs, target)
    names = [f"class{i}" for i in range(n)]
    fig = confusion_matrix_figure(metric, names)
    ax = fig.axes[0]
    counts = metric.compute().numpy()
    order = [names.index(label.get_text()) for label in ax.get_yticklabels()]
    assert order == confusion_order(counts) and [t.get_text() for t in ax.get_xticklabels()] == [
        names[i] for i in order
    ]
    texts = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
    if n <= 30:
        expected = {(r, c): int(counts[t, p]) for r, t in enumerate(order) for c, p in enumerate(order) if counts[t, p]}
        assert texts == expected
        pairs = [(i, (i + n // 2) % n) for i in range(n)]  # the confused pairs sit side by side
        position = {c: i for i, c in enumerate(order)}
        assert sum(abs(position[a] - position[b]) == 1 for a, b in pairs) >= n // 2
    else:
        assert texts == {}
    width, height = fig.get_size_inches() * fig.dpi
    assert width == height <= (800 if n <= 30 else 1000)  # a TensorBoard card shows it at about 500 pixels


def test_roc_names_the_worst_and_best_classes_in_distinct_colours_with_the_macro_curve():
    n = 30
    probs, target = predictions(n, images=1500)
    metric = MulticlassROC(n, thresholds=200)
    metric.update(probs, target)
    fig = roc_figure(metric, [f"c{i}" for i in range(n)])
    ax = fig.axes[0]
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert len(labels) == 7 and labels[-1].startswith("macro ")
    auroc = MulticlassAUROC(n, average=None, thresholds=200)(probs, target)
    ranked = auroc.argsort().tolist()
    assert [label.split()[0] for label in labels[:6]] == [f"c{i}" for i in ranked[:3] + ranked[-3:]]
    macro = MulticlassAUROC(n, average="macro", thresholds=200)(probs, target).item()
    assert float(labels[-1].split()[1]) == pytest.approx(macro, abs=2e-3)
    named = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len({to_hex(line.get_color()) for line in named}) == 7  # no colour repeats
    grey = [line for line in ax.get_lines() if to_hex(line.get_color()) == to_hex("0.8")]
    assert len(grey) == n - 6


def test_experiment_hparams_are_the_settings_without_internals():
    config = {
        "model": {
            "class_path": "vlc.tasks.ImageCaptioner",
            "init_args": {
                "encoder": {"class_path": "vlc.models.ResidualCNN", "init_args": {"widths": [8, 16], "mean": None}},
                "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.001, "foreach": None}},
                "decoding": {"strategy": "beam", "beam_width": 3},
                "scoring": {"tokenizer": "vlc"},
                "feature_cache": "auto",
                "_instantiator": "x",
            },
        },
        "data": {"class_path": "vlc.data.CocoCaptionsDataModule", "init_args": {"images_dir": "/d", "batch_size": 4}},
        "trainer": {"max_epochs": 3, "max_steps": -1, "precision": "bf16-mixed", "logger": {"class_path": "x"}},
        "seed_everything": 0,
    }
    assert experiment_hparams(config) == {
        "model": "ImageCaptioner",
        "model.encoder": "ResidualCNN",
        "model.encoder.widths": "[8, 16]",
        "model.optimizer": "Adam",
        "model.optimizer.lr": 0.001,
        "model.decoding.strategy": "beam",
        "model.decoding.beam_width": 3,
        "data": "CocoCaptionsDataModule",
        "data.batch_size": 4,
        "trainer.max_epochs": 3,
        "trainer.precision": "bf16-mixed",
        "seed_everything": 0,
    }


def test_a_fit_logs_the_readable_figures_and_the_real_hyper_parameters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=6)
    main(tiny_classifier_fit(tmp_path / "data", "--trainer.limit_train_batches=2", "--model.dropout=0.25"))
    (run,) = run_dirs(tmp_path / "logs")
    acc = events(run)
    raw = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(raw).session_start_info.hparams
    names = set(hparams)
    assert {"model.optimizer.lr", "model.scheduler.max_lr", "data.batch_size", "trainer.max_epochs"} <= names
    assert hparams["model.backbone"].string_value == "ResidualCNN" and hparams["model.dropout"].number_value == 0.25
    assert hparams["data"].string_value == "TinyImageNet30DataModule"
    internal = ("_class_path", "_instantiator", "init_args", "class_path", "foreach", "root", "num_workers")
    assert not [name for name in names if any(word in name for word in internal)]
    assert "hp/best_val_acc" in acc.Tags()["scalars"]
    (image,) = acc.Images("val/confusion_matrix")
    width, height = Image.open(io.BytesIO(image.encoded_image_string)).size
    assert width <= 800 and height <= 800
    assert os.path.isfile(run / "config.yaml")
