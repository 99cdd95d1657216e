import json

import pytest
import torch

from vlc.vocabulary import Vocabulary, tokenize


@pytest.fixture
def vocab():
    return Vocabulary.build(["A red circle.", "a blue circle", "A red square!", "a star"])


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("A man's hat, on a DOG -- really?!") == [
        "a",
        "man",
        "s",
        "hat",
        "on",
        "a",
        "dog",
        "really",
    ]
    assert tokenize("  ... ,, __ ") == []
    assert tokenize("3 red stars.") == ["3", "red", "stars"]


def test_special_tokens_come_first():
    vocab = Vocabulary()
    assert (Vocabulary.PAD, Vocabulary.START, Vocabulary.END, Vocabulary.UNK) == (0, 1, 2, 3)
    assert vocab.words == ["<pad>", "<start>", "<end>", "<unk>"]
    assert len(vocab) == 4


def test_build_orders_by_count_then_alphabetically(vocab):
    # a: 4, circle: 2, red: 2, then blue, square, star once each
    assert vocab.words[4:] == ["a", "circle", "red", "blue", "square", "star"]
    assert Vocabulary.build(["b a", "a b"]).words[4:] == ["a", "b"]


def test_build_min_count_and_max_size():
    captions = ["a red circle", "a red square", "a star"]
    assert Vocabulary.build(captions, min_count=2).words[4:] == ["a", "red"]
    assert Vocabulary.build(captions, max_size=5).words == ["<pad>", "<start>", "<end>", "<unk>", "a"]
    assert len(Vocabulary.build(captions, max_size=4)) == 4
    with pytest.raises(ValueError, match="min_count"):
        Vocabulary.build(captions, min_count=0)
    with pytest.raises(ValueError, match="max_size"):
        Vocabulary.build(captions, max_size=3)


def test_constructor_rejects_duplicates_and_specials():
    with pytest.raises(ValueError, match="duplicate"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="duplicate or special"):
        Vocabulary(["<unk>"])


def test_index_and_contains(vocab):
    assert vocab.index("red") == 6
    assert vocab.index("giraffe") == Vocabulary.UNK
    assert "red" in vocab and "giraffe" not in vocab


def test_words_is_a_copy(vocab):
    vocab.words.append("x")
    assert "x" not in vocab.words


def test_encode(vocab):
    assert vocab.encode("A red giraffe.", max_len=10) == [1, 4, 6, 3, 2]
    assert vocab.encode("a red circle", max_len=4) == [1, 4, 6, 2]
    assert vocab.encode("a red circle", max_len=2) == [1, 2]
    assert vocab.encode("", max_len=5) == [1, 2]
    with pytest.raises(ValueError, match="max_len"):
        vocab.encode("a", max_len=1)


def test_decode(vocab):
    assert vocab.decode([1, 4, 6, 5, 2, 7, 7]) == "a red circle"
    assert vocab.decode([0, 1, 4, 3, 0]) == "a <unk>"
    assert vocab.decode(torch.tensor([1, 4, 2, 0, 0])) == "a"
    assert vocab.decode([]) == ""
    with pytest.raises(ValueError, match="1-D"):
        vocab.decode(torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="outside"):
        vocab.decode([1, 99])


def test_decode_inverts_encode(vocab):
    assert vocab.decode(vocab.encode("A blue, blue STAR!", max_len=20)) == "a blue blue star"


def test_dict_round_trip(vocab):
    data = vocab.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["words"] == vocab.words and data["version"] == 1
    assert Vocabulary.from_dict(data) == vocab
    assert Vocabulary.from_dict(data) != Vocabulary(["a"])


def test_save_load_round_trip(vocab, tmp_path):
    path = tmp_path / "sub" / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.encode("a red star", 10) == vocab.encode("a red star", 10)


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": "other", "version": 1, "words": []}', "'format'"),
        ('{"format": "vlc.vocabulary", "version": 7, "words": []}', "unsupported version 7"),
        ('{"format": "vlc.vocabulary", "version": 1}', "'words' to be a list"),
        ('{"format": "vlc.vocabulary", "version": 1, "words": ["a"]}', "special tokens"),
        (
            '{"format": "vlc.vocabulary", "version": 1, "words": ["<pad>", "<start>", "<end>", "<unk>", "a", "a"]}',
            "duplicate",
        ),
        (
            '{"format": "vlc.vocabulary", "version": 1, "words": ["<pad>", "<start>", "<end>", "<unk>", 5]}',
            "non-empty strings",
        ),
    ],
)
def test_load_malformed_file_raises_one_clear_value_error(tmp_path, content, problem):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        Vocabulary.load(path)
    message = str(info.value)
    assert str(path) in message and problem in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        Vocabulary.load(tmp_path / "nope.json")
