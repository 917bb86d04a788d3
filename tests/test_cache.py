"""The preprocessing cache: hits are faster than misses, and never stale."""

from __future__ import annotations

import pytest
import torch

from bridge.config import create_config
from bridge.data.export import export_sample
from bridge.data.manifest import read_manifest
from bridge.data.synthetic import SyntheticEmotions
from bridge.dataset import ExampleDataset
from bridge.modality import EMOTIONS
from bridge.preprocess import Preprocessor


@pytest.fixture()
def manifest(tmp_path):
    rows = ["id,label,split,image,audio,text"]
    for i, sample in enumerate(SyntheticEmotions(12, "train", seed=5)):
        export_sample(sample, tmp_path / f"s{i}")
        rows.append(f"s{i},{EMOTIONS[sample.label]},train,s{i}/face.png,s{i}/voice.wav,\"{sample.text}\"")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv"


def _load(manifest):
    return read_manifest(manifest, "train", detect_faces=False)


def _no_preprocessing(monkeypatch):
    def refuse(self, sample):
        raise AssertionError(f"preprocessed {sample.id} although it is cached")

    monkeypatch.setattr(Preprocessor, "__call__", refuse)


def test_cache_hit_skips_preprocessing_and_is_identical(manifest, tmp_path, monkeypatch):
    pre = Preprocessor(create_config("tiny"))
    cache = tmp_path / "cache"
    miss = ExampleDataset(_load(manifest), pre, cache_dir=cache)
    _no_preprocessing(monkeypatch)
    hit = ExampleDataset(_load(manifest), pre, cache_dir=cache)
    assert miss.cache_hits == 0 and hit.cache_hits == 12 and len(hit) == 12
    for a, b in zip(miss.examples, hit.examples):
        assert a.id == b.id and a.label == b.label and set(a.inputs) == set(b.inputs)
        for m in a.inputs:
            assert torch.equal(a.inputs[m][0], b.inputs[m][0]) and torch.equal(a.inputs[m][1], b.inputs[m][1])


def test_changed_settings_or_files_are_never_served_stale(manifest, tmp_path):
    cache = tmp_path / "cache"
    ExampleDataset(_load(manifest), Preprocessor(create_config("tiny")), cache_dir=cache)
    config = create_config("tiny")
    other = Preprocessor(create_config("tiny", audio=type(config.audio)(num_mel_bins=32)))
    fresh = ExampleDataset(_load(manifest), other, cache_dir=cache)
    assert fresh.cache_hits == 0  # different filterbank settings: a different shard
    # Replace one recording: only that item is preprocessed again.
    wav = manifest.parent / "s3" / "voice.wav"
    data = bytearray(wav.read_bytes())
    data[-200:] = bytes(200)
    wav.write_bytes(bytes(data))
    again = ExampleDataset(_load(manifest), Preprocessor(create_config("tiny")), cache_dir=cache)
    assert again.cache_hits == 11


def test_damaged_cache_is_rebuilt(manifest, tmp_path):
    pre = Preprocessor(create_config("tiny"))
    cache = tmp_path / "cache"
    ExampleDataset(_load(manifest), pre, cache_dir=cache)
    for f in cache.rglob("*.safetensors"):
        f.write_bytes(b"garbage")
    rebuilt = ExampleDataset(_load(manifest), pre, cache_dir=cache)
    assert rebuilt.cache_hits == 0 and len(rebuilt) == 12


def test_cache_on_real_ravdess_clips(tmp_path, monkeypatch):
    """Real FLAC recordings: the second pass reads the cache, faster and identical."""
    from bridge.data.paths import require_corpus
    from bridge.data.ravdess import read_ravdess

    try:
        root = require_corpus("ravdess")
    except FileNotFoundError as e:
        pytest.skip(f"real data absent: {e}")
    corpus = read_ravdess(root, "test")
    clips = corpus.subset(list(range(0, len(corpus), len(corpus) // 16))[:16])
    pre = Preprocessor(create_config("tiny", face=None, text=None))
    miss = ExampleDataset(clips, pre, cache_dir=tmp_path)
    _no_preprocessing(monkeypatch)
    hit = ExampleDataset(read_ravdess(root, "test").subset(list(range(0, len(corpus), len(corpus) // 16))[:16]),
                         pre, cache_dir=tmp_path)
    assert miss.cache_hits == 0 and hit.cache_hits == 16 == len(hit)
    assert all(torch.equal(a.inputs[m][0], b.inputs[m][0]) for a, b in zip(miss, hit) for m in a.inputs)
