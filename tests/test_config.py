from __future__ import annotations

import json
from dataclasses import FrozenInstanceError

import pytest

from bridge.config import PRESETS, BridgeConfig, FeatureConfig, create_config, override, with_modalities
from bridge.modality import Modality, parse_modalities


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    config = create_config(name)
    assert BridgeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_base_names_pretrained_encoders():
    config = create_config("base")
    assert config.face.weights == "hub" and config.face.img_size == 224
    assert config.audio.weights.startswith("MIT/ast")
    assert config.text.weights == "bert-base-uncased"


def test_config_is_frozen_and_checked():
    config = create_config("tiny")
    with pytest.raises(FrozenInstanceError):
        config.dim = 3
    with pytest.raises(ValueError, match="unknown preset"):
        create_config("huge")
    with pytest.raises(ValueError, match="unknown BridgeConfig fields"):
        create_config("tiny", colour="blue")
    with pytest.raises(ValueError, match="at least one modality"):
        create_config("tiny", face=None, audio=None, text=None)
    with pytest.raises(ValueError, match="unknown encoder kind"):
        BridgeConfig.from_dict({**config.to_dict(), "face": {"kind": "smell"}})


def test_feature_encoders_serve_any_modality():
    config = create_config("tiny", audio=FeatureConfig(input_dim=73), face=FeatureConfig(input_dim=100))
    again = BridgeConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again.audio == FeatureConfig(input_dim=73) and again.face.kind == "features"
    assert with_modalities(config, (Modality.TEXT,)).modalities == (Modality.TEXT,)


def test_parse_modalities():
    assert parse_modalities("text, face") == (Modality.FACE, Modality.TEXT)
    with pytest.raises(ValueError, match="unknown modality smell"):
        parse_modalities("face,smell")
    with pytest.raises(ValueError, match="no modality"):
        parse_modalities(" , ")


def test_override_sets_nested_and_top_level_fields_and_keeps_the_rest():
    base = create_config("small")
    config = override(base, ["text.freeze=false", "fusion.depth=3", "dim=256", "text.weights=null",
                             "labels=[\"neg\", \"pos\"]", "face.arch=vit_small_patch16_224"])
    assert config.text.freeze is False and config.text.weights is None
    assert config.fusion.depth == 3 and config.dim == 256 and config.labels == ("neg", "pos")
    assert config.face.arch == "vit_small_patch16_224"  # not JSON: kept as a string
    assert config.audio == base.audio and config.translator == base.translator
    assert override(base, []) == base


@pytest.mark.parametrize("assignment, message", [
    ("text.nope=1", "TextConfig has no field 'nope'"),
    ("speed=3", "BridgeConfig has no field 'speed'"),
    ("fusion=3", "fusion is a section"),
    ("text", "expected FIELD=VALUE"),
    ("=3", "expected FIELD=VALUE"),
    ("face.depth=3", "this model has no face"),
    ("dim=30", "not divisible by heads"),
    ("text.tokenizer=3", "TextConfig.tokenizer must be str"),
    ("text.freeze=1", "TextConfig.freeze must be bool"),
    ("translator.loss=l1", "not part of the model config any more; use train.py --translation-loss"),
    ("translator.depth=1.5", "TranslatorConfig.depth must be int"),
    ("dim=true", "BridgeConfig.dim must be int"),
])
def test_override_rejects_what_it_cannot_set(assignment, message):
    config = with_modalities(create_config("tiny"), (Modality.TEXT,))
    with pytest.raises(ValueError, match=message):
        override(config, [assignment])


def test_override_checks_choices_and_types_but_accepts_ints_for_floats():
    config = create_config("tiny")
    with pytest.raises(ValueError, match="FaceConfig.stem must be one of 'patch', 'conv', 'cnn', got 'foo'"):
        override(config, ["face.stem=foo"])
    with pytest.raises(ValueError, match="FaceConfig.depth must be int or null"):
        override(config, ["face.depth=2.5"])
    changed = override(config, ["face.margin=1", "fusion.dropout=0", "face.weights=null", "face.stem=cnn"])
    assert (changed.face.margin, changed.fusion.dropout, changed.face.weights, changed.face.stem) == (1, 0, None, "cnn")
