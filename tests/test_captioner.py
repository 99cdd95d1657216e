"""ImageCaptioner and its parts: encoders, feature cache, GloVe embeddings, checkpoints and vocabulary checks."""

import functools
from dataclasses import asdict

import lightning as L
import pytest
import torch
from jsonargparse.typing import PositiveInt

from vlc.callbacks.caption_baselines import CaptionBaselines
from vlc.callbacks.caption_files import CaptionSamples, VocabularyFile
from vlc.callbacks.feature_cache import FeatureCaching
from vlc.checkpoints import check_fits
from vlc.data.modules.shapes import ShapesCaptionsDataModule
from vlc.errors import UserError
from vlc.metrics.scoring import Scoring
from vlc.models import AttentionLSTMDecoder, LSTMDecoder, ResidualCNN, TorchvisionBackbone
from vlc.models.caption_alignment import caption_loss
from vlc.models.decoding import Decoding
from vlc.models.feature_cache import FeatureCache
from vlc.tasks.captioner import ImageCaptioner
from vlc.vocabulary import Vocabulary

VOCAB = Vocabulary(["a", "red", "blue", "circle", "square", "above", "below"])
TINY_ENCODER = functools.partial(ResidualCNN, widths=[8, 16], stem_width=8, image_size=32)
DECODERS = {
    "lstm": functools.partial(LSTMDecoder, embed_dim=8, hidden_dim=16),
    "attention": functools.partial(AttentionLSTMDecoder, embed_dim=8, hidden_dim=16, attention_dim=8),
}


def captioner(decoder="lstm", **kwargs) -> ImageCaptioner:
    """A tiny captioner; ``decoder`` is a name of ``DECODERS`` or a decoder class with its arguments."""
    kwargs = {"encoder": TINY_ENCODER, "decoder": DECODERS.get(decoder, decoder), **kwargs}
    return ImageCaptioner(vocab=VOCAB.to_dict(), **kwargs)


def images(n: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def count_calls(module: torch.nn.Module) -> list[int]:
    """Images seen by ``module.forward`` so far (a list holding one number, updated by a hook)."""
    seen = [0]
    module.register_forward_hook(lambda m, args, out: seen.__setitem__(0, seen[0] + args[0].shape[0]))
    return seen


def test_the_decoder_gets_pooled_features_or_annotation_vectors():
    for decoder, shape in (("lstm", (2, 16)), ("attention", (2, 64, 16))):
        assert captioner(decoder).encode(images(2)).shape == shape  # the 8x8 grid of 16 channels


def test_attention_grid_pools_the_annotation_vectors_to_its_size():
    model = captioner("attention", attention_grid=4)
    grid = model.encoder(images(2)).float()  # (2, 16, 8, 8)
    expected = grid.view(2, 16, 4, 2, 4, 2).mean(dim=(3, 5)).flatten(2).transpose(1, 2)  # 2x2 cells averaged
    torch.testing.assert_close(model.encode(images(2)), expected)  # (2, 16, 16): a 4x4 grid
    assert captioner("lstm", attention_grid=4).encode(images(2)).shape == (2, 16)  # pooled decoders ignore it


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
    model = ImageCaptioner(encoder=TINY_ENCODER, freeze_encoder=True, decoder=DECODERS[decoder], vocab=data.vocab)
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
    assert seen[0] == 1 + 12 + 6  # the cache's size probe, then train and val images, once each in the first epoch
    assert all(torch.equal(v, before[k]) for k, v in model.encoder.state_dict().items())  # BN stats too
    assert (
        model.features.cache is None and not (tmp_path / "vocab.json").exists()
    )  # no logger, no checkpoints: no run folder


# -- GloVe, decoding, prediction ---------------------------------------------------------------------------
def test_glove_vectors_are_read_when_fitting_starts_and_kept_in_the_checkpoint(tmp_path, capsys):
    path = tmp_path / "glove.txt"
    path.write_text("red 1 2 3 4 5\nblue 5 4 3 2 1\nzebra 0 0 0 0 1\n")
    glove_decoder = functools.partial(LSTMDecoder, embed_dim=5, hidden_dim=16)
    model = captioner(decoder=glove_decoder, glove_path=str(path), train_embeddings=False)
    weight = model.decoder.embedding.weight
    assert not model.glove.any() and weight[VOCAB.index("red")].tolist() != [1, 2, 3, 4, 5]  # nothing read yet
    model.load_pretrained()
    assert weight[VOCAB.index("red")].tolist() == [1, 2, 3, 4, 5] and not weight.requires_grad
    assert "2 of 7 vocabulary words found, 5 missing" in capsys.readouterr().out
    assert model.val_metrics["caption_cosine"].embedding is model.glove
    reloaded = captioner(decoder=glove_decoder, glove_path=str(tmp_path / "gone.txt"))  # as from a checkpoint
    reloaded.load_state_dict(model.state_dict())
    assert torch.equal(reloaded.test_metrics["caption_cosine"].embedding, model.glove)
    with pytest.raises(UserError, match="holds 5-d vectors but the decoder's embed_dim is 8.*embed_dim: 5"):
        captioner(glove_path=str(path)).load_pretrained()
    path.write_text("red 1 2 3\nblue 1 2\n")
    with pytest.raises(UserError, match="line 2: expected 3 values"):
        captioner(glove_path=str(path)).load_pretrained()
    with pytest.raises(UserError, match="GloVe file not found"):
        captioner(glove_path=str(tmp_path / "missing.txt")).load_pretrained()
    capsys.readouterr()
    captioner(train_embeddings=False)
    assert "keeps random word embeddings fixed" in capsys.readouterr().err


@pytest.mark.parametrize("decoder", ["lstm", "attention"])
@pytest.mark.parametrize("decoding", ["greedy", "beam"])
def test_predict_rows_and_loss(decoder, decoding):
    torch.manual_seed(0)
    model = captioner(decoder, decoding=Decoding(decoding, beam_width=3, max_len=6)).eval()
    rows = model.predict_step({"images": images(3), "files": ["a.png", "b.png", "c.png"]}, 0)
    assert [row["file"] for row in rows] == ["a.png", "b.png", "c.png"]
    for row in rows:
        assert isinstance(row["caption"], str) and len(row["caption"].split()) <= 6 and row["score"] <= 0
    captions = torch.tensor([[1, 4, 5, 7, 2, 0], [1, 4, 6, 8, 9, 2]])
    ce, penalty, logits = caption_loss(model.decoder, model.encode(images(2)), captions)
    assert logits.shape == (2, 5, len(VOCAB)) and ce.item() > 0 and (penalty.item() > 0) == (decoder == "attention")


def test_greedy_is_beam_width_one():
    torch.manual_seed(1)
    greedy = captioner(decoding=Decoding("greedy")).eval()
    beam = captioner(decoding=Decoding("beam", beam_width=1)).eval()
    beam.load_state_dict(greedy.state_dict())
    x = images(4)
    assert greedy(x)[0] == beam(x)[0]


# -- checkpoints and vocabularies ----------------------------------------------------------------------------
def test_hyper_parameters_are_saved_as_given_and_no_file_is_read_to_build_the_model(tmp_path):
    encoder = functools.partial(TorchvisionBackbone, "resnet18", image_size=32, weights=str(tmp_path / "gone.pth"))
    model = captioner(encoder=encoder, glove_path="gone.txt", init_from="gone.ckpt")  # read only when fitting
    assert (model.hparams.glove_path, model.hparams.init_from) == ("gone.txt", "gone.ckpt")


def test_vocabulary_mismatch_is_a_user_error():
    model = captioner()
    weights = model.state_dict()
    check_fits(model, {"hyper_parameters": {"vocab": VOCAB.to_dict()}, "state_dict": weights}, "x.ckpt")  # fine
    other = Vocabulary(["a", "red", "green", "circle"]).to_dict()
    with pytest.raises(UserError, match="does not match the checkpoint's.*'green' vs 'blue'.*data.vocab_file"):
        check_fits(model, {"hyper_parameters": {"vocab": other}, "state_dict": weights}, "x.ckpt")
    with pytest.raises(UserError, match="model.vocab is not set"):
        ImageCaptioner(encoder=TINY_ENCODER, vocab=None)


def test_decoding_and_scoring_are_objects_saved_as_plain_dicts():
    decoding = Decoding("beam", beam_width=PositiveInt(4), banned_endings=["a"], num_captions=2)
    model = captioner(decoding=decoding, scoring=Scoring(num_samples=2))
    assert (
        model.hparams.decoding == {**asdict(decoding), "beam_width": 4}
        and type(model.hparams.decoding["beam_width"]) is int
    )
    assert model.hparams.scoring == {"tokenizer": "vlc", "meteor": False, "num_samples": 2, "baselines": True}
    again = captioner(decoding=model.hparams.decoding, scoring=model.hparams.scoring)  # as a checkpoint holds them
    assert (again.decoding, again.scoring) == (decoding, Scoring(num_samples=2))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"beam_width": 0}, "model.decoding.beam_width: expected at least 1, got 0"),
        ({"no_repeat_ngram": -1}, "model.decoding.no_repeat_ngram: expected at least 0, got -1"),
        ({"num_captions": 2}, "model.decoding.num_captions: 2 captions need strategy: beam"),
        ({"strategy": "beam", "beam_width": 2, "num_captions": 3}, "beam_width of at least 3"),
    ],
)
def test_decoding_values_are_checked(kwargs, message):
    with pytest.raises(UserError, match=message):
        Decoding(**kwargs)


def test_banned_endings_must_be_words_of_the_vocabulary():
    with pytest.raises(UserError, match=r"model.decoding.banned_endings: \['giraffe'\] are not words"):
        captioner(decoding=Decoding(banned_endings=["a", "giraffe"]))


def test_the_captioner_brings_its_callbacks():
    model = captioner(decoding=Decoding(), scoring=Scoring(baselines=False))
    callbacks = {type(callback): callback for callback in model.configure_callbacks()}
    assert set(callbacks) == {CaptionSamples, VocabularyFile, CaptionBaselines, FeatureCaching}
    assert callbacks[VocabularyFile].vocab is model.vocab and not callbacks[CaptionBaselines].active
    assert CaptionBaselines().active is False and VocabularyFile().vocab is None  # inert for other tasks


def test_meteor_is_skipped_with_a_warning_without_java(monkeypatch, capsys):
    monkeypatch.setattr("vlc.tasks.captioner.meteor_available", lambda: False)
    monkeypatch.setattr("vlc.metrics.scoring.meteor_available", lambda: False)
    model = captioner(scoring=Scoring(meteor=True))
    assert "meteor" not in model.val_metrics
    assert "METEOR needs Java" in capsys.readouterr().err
