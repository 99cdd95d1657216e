"""The attention captioner's per-word maps: teacher-forced weights, strips in predict and on the dashboard."""

import csv
import functools
import os

import numpy as np
import pytest
import torch
from helpers import CONFIGS, events, run_cli, run_dirs
from PIL import Image

from vlc.cli import main
from vlc.explain.attention import smooth_maps, word_attention
from vlc.explain.ood import CHECKPOINT_KEY
from vlc.explain.render import BAND, FRAME
from vlc.models import AttentionLSTMDecoder, ResidualCNN
from vlc.models.decoding import Decoding
from vlc.tasks.captioner import ImageCaptioner
from vlc.vocabulary import Vocabulary

VOCAB = Vocabulary(["a", "red", "blue", "circle", "square", "above", "below"])


def captioner(**kwargs) -> ImageCaptioner:
    torch.manual_seed(0)
    return ImageCaptioner(
        encoder=functools.partial(ResidualCNN, widths=[8, 16], stem_width=8, image_size=32),
        decoder=functools.partial(AttentionLSTMDecoder, embed_dim=8, hidden_dim=16, attention_dim=8),
        vocab=VOCAB.to_dict(),
        **kwargs,
    ).eval()


def images(n: int, size: int = 32) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)


def test_teacher_forced_weights_are_those_of_free_running_decoding():
    """A hand-run greedy decoding records the weights of every step (a hook on the attention); running the decoder
    again teacher-forced on the tokens it chose gives the same weights, each summing to 1 over the grid."""
    model = captioner()
    decoder, features = model.decoder, model.encode(images(3))  # (3, 64, 16): an 8x8 grid
    recorded = []
    hook = decoder.attention.register_forward_hook(lambda m, args, out: recorded.append(out[1][:, 0]))  # (B, N)
    state, token, chosen = decoder.init_state(features), torch.full((3,), Vocabulary.START), []
    with torch.no_grad():
        for _ in range(6):
            logits, state = decoder.step(token, state)
            token = logits.argmax(dim=-1)
            chosen.append(token)
    hook.remove()
    tokens = torch.stack([torch.full((3,), Vocabulary.START), *chosen[:-1]], dim=1)  # the inputs (B, 6)
    recorded = torch.stack(recorded[:6], dim=1)  # (B, 6, N)
    alphas = word_attention(decoder.train(), features, tokens)
    assert decoder.training  # its mode is restored
    torch.testing.assert_close(alphas, recorded)
    torch.testing.assert_close(alphas.sum(dim=-1), torch.ones(3, 6))


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_each_word_of_the_chosen_caption_gets_its_map_and_frame(strategy):
    model = captioner(decoding=Decoding(strategy=strategy, beam_width=3, max_len=7), attention_grid=4)
    batch = images(2)
    captions, _ = model(batch)
    attention = model.word_attention(batch, captions)
    strips = model.explain(batch, [{"caption": c} for c in captions])
    for caption, (words, weights, maps), strip in zip(captions, attention, strips):
        assert words == caption.split() and len(words) > 0
        assert weights.shape == (len(words), 4, 4)  # the pooled grid the decoder attends over
        torch.testing.assert_close(weights.sum(dim=(1, 2)), torch.ones(len(words)))
        assert maps.shape == (len(words), 32, 32) and maps.min() >= 0
        torch.testing.assert_close(maps.flatten(1).amax(dim=1), torch.ones(len(words)))
        assert strip.size == (len(words) * FRAME, FRAME + BAND)  # one frame per word


def test_smoothed_maps_follow_the_weights():
    weights = torch.zeros(2, 16)
    weights[0, 0] = 1  # the top-left cell of a 4x4 grid
    weights[1, 15] = 1  # the bottom-right one
    maps = smooth_maps(weights, (4, 4), (32, 32))
    assert maps.shape == (2, 32, 32)
    assert maps[0, :8, :8].mean() > 5 * maps[0, 24:, 24:].mean()
    assert maps[1, 24:, 24:].mean() > 5 * maps[1, :8, :8].mean()
    assert maps[0, 12, 4] > 0.05  # blurred: bilinear upsampling alone leaves 0 at the next cell's far side


TINY_DEMO = [
    "--config",
    str(CONFIGS / "demo" / "caption.yaml"),
    "--model.encoder.widths=[8, 16]",
    "--model.encoder.stem_width=8",
    "--model.encoder.image_size=32",
    "--model.decoder.hidden_dim=16",
    "--model.decoder.embed_dim=8",
    "--data.num_images=64",
    "--data.batch_size=32",
    "--model.scoring.num_samples=3",
    "--trainer.max_epochs=1",
    "--trainer.enable_progress_bar=false",
    "--trainer.precision=32-true",
]


def fit(work, *extra) -> str:
    """``vlc fit`` of the demo captioner shrunk, in ``work``; its last checkpoint."""
    cwd = os.getcwd()
    os.chdir(work)
    try:
        main(["fit", *TINY_DEMO, *extra])
    finally:
        os.chdir(cwd)
    return str(work / "checkpoints" / "demo-caption" / "version_0" / "last.ckpt")


def predict(ckpt, folder, output) -> list[str]:
    return [
        "predict",
        "--config",
        str(CONFIGS / "predict" / "caption.yaml"),
        f"--ckpt_path={ckpt}",
        f"--data.predict_dir={folder}",
        "--data.image_size=32",
        f"--writer.output={output}",
        "--writer.explain=true",
        "--trainer.enable_progress_bar=false",
    ]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"scene{i}.png")
    return folder


def test_attention_captioner_shows_strips_on_the_dashboard_and_writes_them(tmp_path, scenes, capsys):
    ckpt = fit(tmp_path, "--model.decoder.attention_dim=8")
    (run,) = run_dirs(tmp_path / "logs")
    (logged,) = events(run).Images("val/attention")  # one validation epoch
    assert logged.height == 3 * (FRAME + BAND)  # the 3 samples' strips, one below the other
    output = tmp_path / "out" / "caps.csv"
    assert run_cli(capsys, predict(ckpt, scenes, output))[0] == 0
    with output.open() as f:
        rows = list(csv.DictReader(f))
    assert [row["overlay"] for row in rows] == [f"caps.explain/scene{i}.png.png" for i in range(3)]
    stats = torch.load(ckpt, weights_only=False)[CHECKPOINT_KEY]  # the encoder's pooled features, measured at fit
    assert stats["images"] > 1 and len(stats["mean"]) == 16
    for row in rows:
        assert float(row["ood_score"]) > 0
        strip = Image.open(output.parent / row["overlay"])
        assert strip.size == (FRAME * max(1, len(row["caption"].split())), FRAME + BAND)  # one frame per word


def test_a_captioner_without_attention_says_so_in_one_line(tmp_path, scenes, capsys):
    ckpt = fit(tmp_path, "--model.decoder=vlc.models.LSTMDecoder")
    output = tmp_path / "caps.csv"
    code, err = run_cli(capsys, predict(ckpt, scenes, output))
    assert code == 0
    warnings = [line for line in err.splitlines() if "writer.explain" in line]
    assert warnings == [
        "vlc: warning: writer.explain: no overlays for this model: its decoder LSTMDecoder has no attention over "
        "the image (vlc.models.AttentionLSTMDecoder has) (the column overlay stays empty)"
    ]
    with output.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(row["overlay"] == "" and row["caption"] is not None for row in rows)
    assert not (tmp_path / "caps.explain").exists()
