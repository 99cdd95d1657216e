"""Annotation and config files with the mistakes editors and people make: one line naming the file and line."""

import json

import pytest
from helpers import CONFIGS, TINY_NET, run_fails, write_tinyimagenet30
from test_caption_data import write_coco

from vlc.data import CocoCaptionsDataModule, TinyImageNet30DataModule


def fails(capsys, args: list[str]) -> str:
    """The one error line of a run that must stop before training."""
    err = run_fails(capsys, args)
    (line,) = [line for line in err.splitlines() if line.startswith("vlc: error:")]
    return line.removeprefix("vlc: error: ")


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_tinyimagenet30(tmp_path / "data", per_class=2)
    return tmp_path / "data"


def fit_tiny(root) -> list[str]:
    config = str(CONFIGS / "tinyimagenet30" / "cnn.yaml")
    return ["fit", "--config", config, f"--data.root={root}", "--trainer.max_epochs=1", *TINY_NET]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"0\tbaboon\n1\tbaboon\n2\tbee\n", ", line 2: class name 'baboon' is already used on line 1"),
        (b"0\tbaboon\n1\tbanana\n1\tbee\n", ", line 3: index 1 is already used on line 2"),
        (b"0\tbaboon\n1\tbanana\n3\tbee\n", ": class indices must be 0..2 without gaps; missing [2], highest 3"),
        (b"0\tbaboon\n1\tban\xe9na\n2\tbee\n", ", line 2: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        (b"0\tbaboon\nbanana\n", ", line 2: expected 'idx<TAB>name', got 'banana'"),
        (b"", ": no classes; expected lines 'idx<TAB>name'"),
    ],
)
def test_class_file_mistakes_stop_with_the_line(tiny, capsys, content, message):
    (tiny / "class.txt").write_bytes(content)
    assert fails(capsys, fit_tiny(tiny)) == f"{tiny / 'class.txt'}{message}"


def test_class_file_with_bom_and_crlf_is_read(tiny):
    (tiny / "class.txt").write_bytes("\ufeff0\tbaboon\r\n1\tbanana\r\n2\tbee\r\n".encode())
    labels = tiny / "test_labels.csv"
    labels.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes().replace(b"\n", b"\r\n"))
    dm = TinyImageNet30DataModule(root=str(tiny), test_labels=str(labels))
    assert dm.class_names == ["baboon", "banana", "bee"]
    dm.setup("test")
    assert len(dm.datasets["test"]) == 6


def coco_fit(images_dir, captions_file) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "coco" / "resnet50_lstm.yaml"),
        "--model.encoder.weights=null",
        f"--data.images_dir={images_dir}",
        f"--data.captions_file={captions_file}",
        "--trainer.max_epochs=1",
    ]


@pytest.mark.parametrize(
    ("mistake", "message"),
    [
        ("duplicate id", ": images[5] and images[1] both have id 1001"),
        ("duplicate file", ": images[5] and images[0] both have file_name '000000001000.jpg'"),
        ("not utf-8", ", line 1: not UTF-8 text (byte 0xe9); save the file as UTF-8"),
        ("syntax", ", line 1, column 2: not valid JSON (Expecting property name enclosed in double quotes)"),
    ],
)
def test_coco_captions_file_mistakes_stop_naming_the_entry(tmp_path, monkeypatch, capsys, mistake, message):
    monkeypatch.chdir(tmp_path)
    images_dir, captions_file = write_coco(tmp_path, n=5)
    data = json.loads(captions_file.read_text())
    if mistake == "duplicate id":
        data["images"].append({"id": 1001, "file_name": "other.jpg"})
    elif mistake == "duplicate file":
        data["images"].append({"id": 2000, "file_name": "000000001000.jpg"})
    content = json.dumps(data).encode()
    if mistake == "not utf-8":
        content = content.replace(b"A dog", b"A caf\xe9")  # Latin-1, as an old editor saves it
    elif mistake == "syntax":
        content = b"{images: []}"
    captions_file.write_bytes(content)
    assert fails(capsys, coco_fit(images_dir, captions_file)) == f"{captions_file}{message}"


def test_coco_captions_with_bom_are_read_and_empty_captions_counted(tmp_path, capsys):
    extra = [{"image_id": 1000, "id": 900, "caption": " ... !"}, {"image_id": 1001, "id": 901, "caption": ""}]
    images_dir, captions_file = write_coco(tmp_path, n=5, extra_annotations=extra)
    captions_file.write_bytes(b"\xef\xbb\xbf" + captions_file.read_bytes())
    dm = CocoCaptionsDataModule(images_dir=str(images_dir), captions_file=str(captions_file), image_size=16)
    keys, references = dm.index
    assert keys == [1000, 1001, 1002, 1003, 1004] and " ... !" not in references[0]
    assert "2 captions empty or of punctuation only" in capsys.readouterr().err


def test_config_mistakes_name_the_file_and_line(tmp_path, capsys):
    good = str(CONFIGS / "demo" / "classify.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer:\n  max_epochs: 2\n  callbacks: [a, b\n")
    assert fails(capsys, ["fit", "--config", good, "--config", str(broken)]).startswith(
        f"{broken}, line 4, column 1: not valid YAML"
    )
    tabs = tmp_path / "tabs.yaml"
    tabs.write_text("trainer:\n\tmax_epochs: 2\n")
    assert fails(capsys, ["fit", f"--config={tabs}", "--config", good]) == (
        f"{tabs}, line 2, column 1: not valid YAML (found character '\\t' that cannot start any token)"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert fails(capsys, ["fit", "--config", str(empty)]) == (
        f"{empty}: the config is empty; expected keys such as model:, data: and trainer:"
    )
    assert fails(capsys, ["fit", "--config", str(tmp_path / "missing.yaml")]) == (
        f"--config {tmp_path / 'missing.yaml'}: no such file"
    )


def test_short_config_flag_is_checked_and_inline_yaml_is_left_to_the_parser(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("trainer: [\n")
    assert fails(capsys, ["fit", "-c", str(broken)]).startswith(f"{broken}, line 2, column 1: not valid YAML")
    good = str(CONFIGS / "demo" / "classify.yaml")
    inline = "{trainer: {max_epochs: -5}}"  # jsonargparse reads a --config value that is no file as YAML
    assert fails(capsys, ["fit", "--config", good, "--config", inline]) == (
        "trainer.max_epochs: expected -1 (no limit) or more, got -5"
    )
