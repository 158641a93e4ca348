"""Decoded-volume cache: hits, misses, LRU eviction under a byte budget, and identical samples."""

import os
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from aaclip_med.data import load_image
from aaclip_med.data.cache import VolumeCache
from aaclip_med.data.dataset import ManifestDataset
from tests._synthetic import write_dicom_series, write_nifti


def _counting_loader():
    calls = []

    def load(path):
        calls.append(path.name)
        return load_image(path)

    return load, calls


def _volume(tmp_path, name, depth=3, value=0.0):
    data = (np.arange(4 * 5 * depth, dtype=np.float32).reshape(4, 5, depth) + value)
    return write_nifti(tmp_path / name, data), data


def test_hit_miss_and_lru_eviction(tmp_path):
    a, _ = _volume(tmp_path, "a.nii.gz", value=0)
    b, _ = _volume(tmp_path, "b.nii.gz", value=100)
    c, _ = _volume(tmp_path, "c.nii.gz", value=200)
    one = 4 * 5 * 3 * 4  # bytes of one float32 (1, 4, 5, 3) volume
    cache = VolumeCache(max_bytes=2 * one)  # room for two volumes
    load, calls = _counting_loader()
    first = cache.get(a, load)
    assert cache.get(a, load) is first  # hit: the same decoded tensor, not read again
    cache.get(b, load)
    cache.get(a, load)  # a becomes the most recently used
    cache.get(c, load)  # over budget: evicts b, the least recently used
    assert calls == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
    assert cache.stats() == {"hits": 2, "misses": 3, "evictions": 1, "entries": 2, "bytes": 2 * one, "peak_bytes": 2 * one}
    cache.get(a, load)
    cache.get(b, load)  # b was evicted: read again
    assert calls[-1] == "b.nii.gz" and len(calls) == 4


def test_oversized_volume_and_2d_images_are_not_kept(tmp_path, caplog):
    a, _ = _volume(tmp_path, "a.nii.gz")
    cache = VolumeCache(max_bytes=100)  # smaller than one volume
    load, calls = _counting_loader()
    with caplog.at_level("WARNING", logger="aaclip_med.data.cache"):
        cache.get(a, load)
        cache.get(a, load)
    assert calls == ["a.nii.gz", "a.nii.gz"] and len(cache) == 0 and cache.bytes == 0
    warnings = [r.getMessage() for r in caplog.records if "exceeds the volume cache budget" in r.getMessage()]
    assert len(warnings) == 1 and "a.nii.gz" in warnings[0]  # said once, naming the file
    off = VolumeCache(max_bytes=0)
    off.get(a, load)
    assert len(off) == 0 and off.stats()["misses"] == 0
    with pytest.raises(ValueError, match="max_bytes"):
        VolumeCache(-1)


def test_changed_file_is_read_again(tmp_path):
    path, data = _volume(tmp_path, "a.nii.gz")
    cache = VolumeCache()
    load, calls = _counting_loader()
    np.testing.assert_array_equal(cache.get(path, load)[0].numpy(), data)
    write_nifti(path, data + 5)  # replaced on disk
    os.utime(path, ns=(1, 10**18))  # a distinct modification time even on coarse clocks
    np.testing.assert_array_equal(cache.get(path, load)[0].numpy(), data + 5)
    assert len(calls) == 2


def test_dicom_series_folder_is_cached(tmp_path):
    volume = np.arange(3 * 6 * 5).reshape(3, 6, 5) * 3 - 100
    write_dicom_series(tmp_path / "s", volume)
    cache = VolumeCache()
    load, calls = _counting_loader()
    cache.get(tmp_path / "s", load)
    cache.get(tmp_path / "s", load)
    assert calls == ["s"] and cache.hits == 1


def test_pickled_cache_starts_empty(tmp_path):
    a, _ = _volume(tmp_path, "a.nii.gz")
    cache = VolumeCache(max_bytes=12345)
    cache.get(a, load_image)
    clone = pickle.loads(pickle.dumps(cache))  # what a spawned DataLoader worker receives
    assert len(clone) == 0 and clone.bytes == 0 and clone.max_bytes == 12345 and clone.misses == 0
    clone.get(a, load_image)
    assert len(clone) == 1


def _records(depth):
    rec = {"image_path": "v.nii.gz", "label": 0.0, "class_name": "scan", "mask_path": "m.nii.gz"}
    return [rec | {"slice_index": k} for k in range(depth)]


def test_cached_samples_equal_uncached(tmp_path):
    depth = 6
    data = np.random.default_rng(0).normal(size=(5, 4, depth)).astype(np.float32)
    mask = np.zeros((5, 4, depth), np.float32)
    mask[1:3, 1:3, 2:4] = 1
    write_nifti(tmp_path / "v.nii.gz", data)
    write_nifti(tmp_path / "m.nii.gz", mask)
    cached = ManifestDataset(_records(depth), tmp_path)
    plain = ManifestDataset(_records(depth), tmp_path, cache_bytes=0)
    for k in range(depth):
        got, want = cached[k], plain[k]
        for key in ("image", "mask"):
            torch.testing.assert_close(got[key].as_tensor(), want[key].as_tensor(), rtol=0, atol=0)
            np.testing.assert_array_equal(got[key].affine, want[key].affine)
        assert got["image"].meta["slice_index"] == k == want["image"].meta["slice_index"]
        got["image"].add_(1000)  # a sample modified downstream must not reach the cached volume
    # image and mask volumes each decoded once for the 6 slice records
    assert cached.volume_cache.stats()["misses"] == 2 and cached.volume_cache.hits == 2 * depth - 2
    torch.testing.assert_close(cached[0]["image"].as_tensor(), plain[0]["image"].as_tensor(), rtol=0, atol=0)


def test_each_dataloader_worker_reads_each_volume_once(tmp_path):
    depth = 8
    write_nifti(tmp_path / "v.nii.gz", np.ones((5, 4, depth), np.float32))
    write_nifti(tmp_path / "m.nii.gz", np.zeros((5, 4, depth), np.float32))
    ds = ManifestDataset(_records(depth), tmp_path)

    def misses(_):
        return [ds.volume_cache.stats()["misses"]]

    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=misses)
    counts = list(loader)  # each worker reports its own process's cache after each batch
    assert len(counts) == depth // 2
    assert max(c[0] for c in counts) == 2  # per worker: one image and one mask read, never more
    assert ds.volume_cache.stats()["misses"] == 0  # the main process read nothing
