"""The ground floor imports no data: metrics, models and checkpoints load without any dataset or data module."""

import subprocess
import sys

import pytest

GROUND = ["vlc.metrics.bleu", "vlc.metrics.caption_cosine", "vlc.vocabulary", "vlc.images", "vlc.checkpoints"]


def loaded_after(statement: str) -> set[str]:
    """The ``vlc.data`` modules a fresh interpreter holds after running ``statement``."""
    code = f"import sys\n{statement}\nprint(*sorted(m for m in sys.modules if m.startswith('vlc.data')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("module", GROUND)
def test_the_ground_floor_imports_nothing_of_vlc_data(module):
    assert loaded_after(f"import {module}") == set()


def test_one_data_module_imports_no_other_dataset():
    loaded = loaded_after("from vlc.data import ShapesDataModule")
    assert "vlc.data.modules.shapes" in loaded
    assert not {m for m in loaded if m.endswith(("cifar10", "coco_captions", "tinyimagenet30"))}


def test_every_name_of_vlc_data_resolves_to_its_class():
    import vlc.data

    for name in vlc.data.__all__:
        assert getattr(vlc.data, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        vlc.data.Nothing  # noqa: B018
