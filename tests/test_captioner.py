"""ImageCaptioner and its parts: encoders, feature cache, GloVe embeddings, checkpoints and vocabulary checks."""

import functools
import urllib.error

import lightning as L
import pytest
import torch
import torchvision

from vlc.checkpoints import check_fits
from vlc.data.shapes_captions import ShapesCaptionsDataModule
from vlc.data.vocab import Vocabulary
from vlc.errors import UserError
from vlc.models.cnn import ResidualCNN
from vlc.models.encoders import ImageEncoder
from vlc.models.feature_cache import FeatureCache
from vlc.tasks.captioner import ImageCaptioner

VOCAB = Vocabulary(["a", "red", "blue", "circle", "square", "above", "below"])
TINY_ENCODER = functools.partial(ImageEncoder, widths=[8, 16], stem_width=8, image_size=32)


def captioner(**kwargs) -> ImageCaptioner:
    kwargs = {"encoder": TINY_ENCODER, "embed_dim": 8, "hidden_dim": 16, "attention_dim": 8, **kwargs}
    return ImageCaptioner(vocab=VOCAB.to_dict(), **kwargs)


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def count_calls(module: torch.nn.Module) -> list[int]:
    """Images seen by ``module.forward`` so far (a list holding one number, updated by a hook)."""
    seen = [0]
    module.register_forward_hook(lambda m, args, out: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    return seen


# -- encoders ----------------------------------------------------------------------------------------------
def test_cnn_encoder_grid_resizes_and_normalises():
    encoder = TINY_ENCODER()
    grid = encoder(images(2, size=48))  # resized to 32 first
    assert grid.shape == (2, 16, 8, 8) and encoder.num_features == 16
    assert set(encoder.state_dict()) >= {"mean", "std"}  # the preprocessing travels in the checkpoint


@pytest.mark.parametrize(
    ("name", "size", "channels", "side"), [("resnet18", 64, 512, 2), ("inception_v3", 75, 2048, 1)]
)
def test_torchvision_encoder_cuts_before_pooling(name, size, channels, side):
    encoder = ImageEncoder(backbone=name, image_size=size)
    assert encoder.num_features == channels
    assert encoder.eval()(images(1, size)).shape == (1, channels, side, side)
    if name == "inception_v3":
        assert torch.allclose(encoder.mean, torch.full_like(encoder.mean, 127.5))  # its weights expect [-1, 1]


def test_offline_weights_fail_fast_with_a_clear_message(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(UserError, match="looks offline.*pass the file as weights"):
        ImageEncoder(backbone="resnet18", weights="DEFAULT")
    with pytest.raises(UserError, match="for cnn use encoder.init_from"):
        ImageEncoder(backbone="cnn", weights="DEFAULT")


def test_torchvision_weights_by_name_and_file(monkeypatch, tmp_path):
    """torchvision's InceptionV3 weights carry the auxiliary classifier that vlc builds without."""
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda *a, **k: reference.state_dict())
    encoder = ImageEncoder(backbone="inception_v3", weights="DEFAULT")
    torch.testing.assert_close(encoder.body.Conv2d_1a_3x3.conv.weight, reference.Conv2d_1a_3x3.conv.weight)
    wrong = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), wrong)
    with pytest.raises(UserError, match="resnet18.pth is not a torchvision resnet50 state dict"):
        ImageEncoder(backbone="resnet50", weights=str(wrong))
    assert ImageEncoder(backbone="cnn", weights="None").backbone == "cnn"  # a command line's null


def test_init_from_a_classification_checkpoint(tmp_path):
    net = ResidualCNN(5, widths=[8, 16], stem_width=8)
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    hparams = {
        "num_classes": 5,
        "net": {"class_path": "vlc.models.ResidualCNN"},
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
    }
    path = tmp_path / "classifier.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    encoder = TINY_ENCODER(init_from=str(path))
    for key, value in encoder.body.state_dict().items():
        torch.testing.assert_close(value, net.features.state_dict()[key])
    assert torch.allclose(encoder.std, torch.full_like(encoder.std, 0.25 * 255))
    with pytest.raises(UserError, match="does not match this encoder"):
        ImageEncoder(widths=[8, 32], stem_width=8, init_from=str(path))
    with pytest.raises(UserError, match="does not exist"):
        TINY_ENCODER(init_from=str(tmp_path / "nope.ckpt"))


# -- feature cache -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("on_disk", [False, True])
def test_feature_cache_encodes_each_image_once(tmp_path, on_disk):
    cache = FeatureCache(tmp_path / "features.f32" if on_disk else None)
    calls = []

    def encode(x):
        calls.append(len(x))
        return x.float().mean(dim=(2, 3))  # (b, 3)

    batch, keys = images(6), torch.arange(100, 106)
    first = cache.features(keys, batch, encode)
    again = cache.features(keys.flip(0), batch.flip(0), encode)
    torch.testing.assert_close(again, first.flip(0))
    mixed = cache.features(torch.tensor([100, 200, 105]), batch[[0, 1, 5]], encode)  # one new image
    torch.testing.assert_close(mixed, batch[[0, 1, 5]].float().mean(dim=(2, 3)))
    assert calls == [6, 1] and len(cache) == 7 and (cache.hits, cache.misses) == (8, 7)
    cache.close()
    assert len(cache) == 0 and not (tmp_path / "features.f32").exists()


def test_disk_cache_grows_past_its_first_capacity(tmp_path):
    cache = FeatureCache(tmp_path / "f.f32")
    for start in range(0, 1500, 500):
        keys = torch.arange(start, start + 500)
        cache.put(keys.tolist(), keys.float().unsqueeze(1).repeat(1, 4))
    assert cache.get([0, 777, 1499])[:, 0].tolist() == [0.0, 777.0, 1499.0]


@pytest.mark.parametrize("decoder", ["lstm", "attention"])
def test_frozen_encoder_runs_once_per_image_during_training(tmp_path, decoder):
    data = ShapesCaptionsDataModule(num_images=24, batch_size=6, split=(0.5, 0.25, 0.25), image_size=32)
    model = ImageCaptioner(
        encoder=TINY_ENCODER, freeze_encoder=True, decoder=decoder, vocab=data.vocab, embed_dim=8, hidden_dim=16
    )
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    seen = count_calls(model.encoder)
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert seen[0] == 12 + 6  # train and val images, each encoded in the first epoch only
    assert all(torch.equal(v, before[k]) for k, v in model.encoder.state_dict().items())  # BN stats too
    assert model.cache is None and not (tmp_path / "vocab.json").exists()  # no logger, no checkpoints: no run folder


# -- GloVe, decoding, prediction ---------------------------------------------------------------------------
def test_glove_sets_the_embedding_size_and_vectors(tmp_path, capsys):
    path = tmp_path / "glove.txt"
    path.write_text("red 1 2 3 4 5\nblue 5 4 3 2 1\nzebra 0 0 0 0 1\n")
    model = captioner(glove_path=str(path), train_embeddings=False)
    weight = model.decoder.embedding.weight
    assert weight.shape == (len(VOCAB), 5) and model.hparams.embed_dim == 5
    assert weight[VOCAB.index("red")].tolist() == [1, 2, 3, 4, 5] and not weight.requires_grad
    assert "2 of 7 vocabulary words found, 5 missing" in model.glove_report
    assert model.val_metrics["caption_cosine"].embedding is model.glove
    checkpoint = {"hyper_parameters": {}}
    model.on_save_checkpoint(checkpoint)
    reloaded = captioner(embed_dim=5)  # as from the checkpoint: glove_path null
    reloaded.on_load_checkpoint(checkpoint)
    assert torch.equal(reloaded.test_metrics["caption_cosine"].embedding, model.glove)
    path.write_text("red 1 2 3\nblue 1 2\n")
    with pytest.raises(UserError, match="line 2: expected 3 values"):
        captioner(glove_path=str(path))
    with pytest.raises(UserError, match="GloVe file not found"):
        captioner(glove_path=str(tmp_path / "missing.txt"))
    capsys.readouterr()
    captioner(train_embeddings=False)
    assert "keeps random word embeddings fixed" in capsys.readouterr().err


@pytest.mark.parametrize("decoder", ["lstm", "attention"])
@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_predict_rows_and_loss(decoder, decoding):
    torch.manual_seed(0)
    model = captioner(decoder=decoder, decoding=decoding, beam_width=3, max_len=6).eval()
    rows = model.predict_step((images(3), ["a.png", "b.png", "c.png"]), 0)
    assert [row["file"] for row in rows] == ["a.png", "b.png", "c.png"]
    for row in rows:
        assert isinstance(row["caption"], str) and len(row["caption"].split()) <= 6 and row["score"] <= 0
    captions = torch.tensor([[1, 4, 5, 7, 2, 0], [1, 4, 6, 8, 9, 2]])
    ce, penalty, logits = model._loss(model.encode(images(2)), captions)
    assert logits.shape == (2, 5, len(VOCAB)) and ce.item() > 0 and (penalty.item() > 0) == (decoder == "attention")


def test_greedy_is_beam_width_one():
    torch.manual_seed(1)
    greedy = captioner(decoding="greedy").eval()
    beam = captioner(decoding="beam", beam_width=1).eval()
    beam.load_state_dict(greedy.state_dict())
    x = images(4)
    assert greedy(x)[0] == beam(x)[0]


# -- checkpoints and vocabularies ----------------------------------------------------------------------------
def test_checkpoint_hparams_need_no_files():
    model = captioner()
    checkpoint = {
        "hyper_parameters": {
            "glove_path": "glove.txt",
            "embed_dim": 256,
            "encoder": {"class_path": "vlc.models.ImageEncoder", "init_args": {"weights": "DEFAULT", "init_from": "c"}},
        }
    }
    model.on_save_checkpoint(checkpoint)
    hp = checkpoint["hyper_parameters"]
    assert hp["glove_path"] is None and hp["embed_dim"] == 8
    assert hp["encoder"]["init_args"] == {"weights": None, "init_from": None}


def test_vocabulary_mismatch_is_a_user_error():
    model = captioner()
    weights = model.state_dict()
    check_fits(model, {"hyper_parameters": {"vocab": VOCAB.to_dict()}, "state_dict": weights}, "x.ckpt")  # fine
    other = Vocabulary(["a", "red", "green", "circle"]).to_dict()
    with pytest.raises(UserError, match="does not match the checkpoint's.*'green' vs 'blue'.*data.vocab_file"):
        check_fits(model, {"hyper_parameters": {"vocab": other}, "state_dict": weights}, "x.ckpt")
    with pytest.raises(UserError, match="model.vocab is not set"):
        ImageCaptioner(encoder=TINY_ENCODER, vocab=None)


def test_meteor_is_skipped_with_a_warning_without_java(monkeypatch, capsys):
    monkeypatch.setattr("vlc.tasks.captioner.meteor_available", lambda: False)
    model = captioner(meteor=True)
    assert "meteor" not in model.val_metrics
    assert "METEOR needs Java" in capsys.readouterr().err
