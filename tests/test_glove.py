import pytest
import torch

from vlc.models.glove import load_glove

GLOVE = """the 0.1 0.2 0.3 0.4
cat 1.0 -1.0 0.5 2.5
paris 9 9 9 9
Paris 1e-1 2E1 -3 4.0
red -0.5 0.25 0 1
"""


@pytest.fixture
def glove_file(tmp_path):
    path = tmp_path / "glove.tiny.4d.txt"
    path.write_text(GLOVE, encoding="utf-8")
    return path


def test_found_words_get_their_vectors(glove_file):
    words = ["<pad>", "<start>", "<end>", "<unk>", "cat", "red", "zebra", "the"]
    matrix, found, missing = load_glove(glove_file, words)
    assert matrix.shape == (8, 4) and matrix.dtype == torch.float32
    assert found == 3 and missing == ["zebra"]
    assert matrix[4].tolist() == [1.0, -1.0, 0.5, 2.5]
    assert matrix[5].tolist() == [-0.5, 0.25, 0.0, 1.0]
    assert torch.allclose(matrix[7], torch.tensor([0.1, 0.2, 0.3, 0.4]))


def test_pad_is_zero_and_other_rows_are_small_random(glove_file):
    words = ["<pad>", "<start>", "<end>", "<unk>", *[f"missing{i}" for i in range(200)]]
    matrix, found, missing = load_glove(glove_file, words, std=0.1, seed=3)
    assert found == 0 and len(missing) == 200 and "<start>" not in missing
    assert matrix[0].abs().sum() == 0
    random_rows = matrix[1:]
    assert (random_rows.abs().sum(dim=1) > 0).all()
    assert 0.08 < random_rows.std().item() < 0.12 and abs(random_rows.mean().item()) < 0.02


def test_random_rows_are_seeded(glove_file):
    words = ["<pad>", "zebra", "cat"]
    a, _, _ = load_glove(glove_file, words, seed=1)
    b, _, _ = load_glove(glove_file, words, seed=1)
    c, _, _ = load_glove(glove_file, words, seed=2)
    assert torch.equal(a, b) and not torch.equal(a[1], c[1])
    assert torch.equal(a[2], c[2])


def test_lower_case_fallback_and_exact_match_priority(glove_file):
    matrix, found, missing = load_glove(glove_file, ["CAT", "Paris", "paris", "RED"])
    assert found == 4 and missing == []
    assert matrix[0].tolist() == [1.0, -1.0, 0.5, 2.5]  # CAT -> cat
    assert torch.allclose(matrix[1], torch.tensor([0.1, 20.0, -3.0, 4.0]))  # exact Paris wins over paris
    assert matrix[2].tolist() == [9.0, 9.0, 9.0, 9.0]


def test_blank_lines_trailing_spaces_and_crlf(tmp_path):
    path = tmp_path / "g.txt"
    path.write_bytes(b"a 1 2 \r\n\r\nb 3 4\r\n\n")
    matrix, found, _ = load_glove(path, ["a", "b"])
    assert found == 2 and matrix.tolist() == [[1.0, 2.0], [3.0, 4.0]]


@pytest.mark.parametrize("needed", [["cat"], ["the"]])
def test_ragged_line_names_file_and_line(tmp_path, needed):
    path = tmp_path / "ragged.txt"
    path.write_text("the 0.1 0.2 0.3\ndog 1 2 3\ncat 1 2\n")
    with pytest.raises(ValueError) as info:
        load_glove(path, needed)  # checked even when the ragged word is not needed
    assert str(path) in str(info.value)
    assert "line 3: expected 3 values after the word, got 2" in str(info.value)


def test_non_float_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("the 0.1 0.2\ncat 1 oops\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: expected floats.*oops"):
        load_glove(path, ["cat"])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="GloVe file not found: .*nope.txt"):
        load_glove(tmp_path / "nope.txt", ["a"])
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no word vectors"):
        load_glove(empty, ["a"])
    no_floats = tmp_path / "words.txt"
    no_floats.write_text("hello\n")
    with pytest.raises(ValueError, match="line 1: expected a word followed by floats"):
        load_glove(no_floats, ["a"])
