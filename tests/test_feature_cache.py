"""Feature cache placement (memory or disk, from the size of the features) and float16 storage.

The cache's basic behaviour (each image encoded once, the file removed, growth past 1024 rows) is in test_captioner.
"""

import pytest
import torch

from vlc import memory
from vlc.models import feature_cache
from vlc.models.feature_cache import FeatureCache, format_bytes, open_feature_cache

SHAPE = (4, 8)  # 32 values: 128 bytes an image in float32, 64 in float16


def open_cache(tmp_path, mode, num_images=10, dtype="float32", **kwargs) -> FeatureCache:
    return open_feature_cache(mode, num_images, SHAPE, dtype, tmp_path / "run", "features", **kwargs)


def fill(cache: FeatureCache, keys: range) -> torch.Tensor:
    """Put features of ``keys`` (random, with values from 1e-3 to 1e3) and return them."""
    generator = torch.Generator().manual_seed(len(keys))
    features = torch.randn(len(keys), *SHAPE, generator=generator) * 10 ** torch.randint(-3, 4, (len(keys), 1, 1))
    cache.put(list(keys), features)
    return features


def test_memory_over_the_budget_goes_to_disk_with_a_warning(tmp_path, capsys):
    cache = open_cache(tmp_path, "memory", budget_bytes=1000)  # 10 images x 128 bytes = 1.28 kB
    err = capsys.readouterr().err
    assert err.startswith("vlc: warning: feature cache: memory needs 1.28 kB (10 images x 4x8 float32)")
    assert "over the memory budget of 1 kB" in err and "choose the disk cache or float16 features" in err
    assert cache.path == tmp_path / "run" / "features.f32"
    assert cache.description == f"feature cache: disk ({cache.path}), 10 images x 4x8 float32 = 1.28 kB"
    fill(cache, range(10))
    assert cache.path.exists() and cache.path.stat().st_size == 10 * 128  # sized for num_images at once
    cache.close()
    assert not cache.path.exists()


def test_the_size_estimate_decides_memory_or_disk(tmp_path, capsys):
    assert open_cache(tmp_path, "auto", budget_bytes=1280).path is None  # fits exactly
    assert open_cache(tmp_path, "auto", budget_bytes=1279).path is not None
    assert open_cache(tmp_path, "auto", budget_bytes=639, dtype="float16").path is not None
    assert open_cache(tmp_path, "auto", budget_bytes=640, dtype="float16").path is None  # half the size
    assert open_cache(tmp_path, "disk", budget_bytes=10**9).path is not None
    assert capsys.readouterr().err == ""  # auto and disk never warn
    assert not (tmp_path / "run").exists()  # nothing written before the first features


def test_auto_keeps_features_in_memory_when_they_fit(tmp_path):
    cache = open_feature_cache("auto", 1234, (49, 2048), torch.float16, tmp_path, "features", budget_bytes=10**9)
    assert cache.path is None
    assert cache.description == "feature cache: memory, 1,234 images x 49x2048 float16 = 248 MB"  # 247,660,544 B


def test_the_default_budget_is_half_the_available_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(feature_cache, "available_memory", lambda: 2560)
    assert open_cache(tmp_path, "auto").path is None
    monkeypatch.setattr(feature_cache, "available_memory", lambda: 2558)
    assert open_cache(tmp_path, "auto").path is not None
    monkeypatch.setattr(feature_cache, "available_memory", lambda: None)  # unknown: no limit
    assert open_cache(tmp_path, "auto", num_images=10**12).path is None


def test_available_memory_reads_proc_meminfo_or_else_sysconf(monkeypatch):
    meminfo = feature_cache.available_memory()
    assert meminfo > 0

    def no_proc(*args):
        raise OSError("no /proc")

    monkeypatch.setattr(memory, "open", no_proc, raising=False)  # where the function lives
    assert 0 < feature_cache.available_memory() <= 2 * meminfo  # free pages: less than MemAvailable, about


def test_a_disk_cache_larger_than_the_free_space_warns(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(feature_cache.shutil, "disk_usage", lambda path: type("Usage", (), {"free": 1000}))
    open_cache(tmp_path, "disk")
    assert "1.28 kB (10 images x 4x8 float32) will not fit the 1 kB free in" in capsys.readouterr().err


@pytest.mark.parametrize("on_disk", [False, True])
def test_float16_storage_round_trip(tmp_path, on_disk):
    cache = FeatureCache(tmp_path / "f.f16" if on_disk else None, dtype="float16")
    features = fill(cache, range(6))
    stored = cache.get([5, 0, 3])
    assert stored.dtype == torch.float16
    torch.testing.assert_close(stored.float(), features[[5, 0, 3]], rtol=1e-3, atol=0)
    if on_disk:
        assert (tmp_path / "f.f16").stat().st_size == 1024 * 32 * 2


@pytest.mark.parametrize("on_disk", [False, True])
def test_float16_features_are_float32_and_the_same_in_every_epoch(tmp_path, on_disk):
    cache = FeatureCache(tmp_path / "f.f16" if on_disk else None, dtype=torch.float16)
    images = torch.randn(4, *SHAPE)
    first = cache.features(torch.arange(4), images, lambda x: x * 1.001)  # the encoder's output: float32
    again = cache.features(torch.arange(4), images, lambda x: pytest.fail("encoded twice"))
    mixed = cache.features(torch.tensor([3, 9]), images[[3, 0]], lambda x: x * 1.001)
    assert first.dtype == again.dtype == mixed.dtype == torch.float32
    torch.testing.assert_close(first, images * 1.001, rtol=1e-3, atol=0)
    assert torch.equal(first, again) and torch.equal(mixed[0], first[3])


def test_float16_disk_rows_survive_the_file_doubling(tmp_path):
    cache = FeatureCache(tmp_path / "f.f16", dtype="float16", capacity=4)
    batches = [fill(cache, range(start, start + 3)) for start in (0, 3, 6, 9)]  # 4 -> 8 -> 16 rows
    assert cache.table.shape == (16, *SHAPE) and (tmp_path / "f.f16").stat().st_size == 16 * 32 * 2
    torch.testing.assert_close(cache.get(list(range(12))).float(), torch.cat(batches), rtol=1e-3, atol=0)


def test_only_float32_and_float16_are_stored():
    with pytest.raises(ValueError, match="float32, float16"):
        FeatureCache(dtype=torch.bfloat16)


def test_sizes_are_written_with_three_digits():
    assert [format_bytes(n) for n in (0, 999, 1000, 1280, 247_660_544, 43.5e9)] == [
        "0 B",
        "999 B",
        "1 kB",
        "1.28 kB",
        "248 MB",
        "43.5 GB",
    ]
