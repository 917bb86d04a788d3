"""``python -m bridge.demo``: a model on the demo's own real inputs (photo, sentence, spoken clip)."""

from __future__ import annotations

import shutil

import pytest

from bridge import demo


def test_demo_predicts_from_its_own_real_inputs(trained_checkpoint, tmp_path, capsys):
    assert demo.main(["--checkpoint", str(trained_checkpoint), "--output", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "photo.png", "sentence.txt"]
    out = capsys.readouterr().out
    voice = shutil.which("espeak-ng") is not None  # the clip's sound is the sentence, spoken
    table, _, after = out.partition("\n\n")  # the table, then any hint
    rows = {line[:24].strip(): line[24:].split() for line in table.splitlines()[3:] if not line.startswith(" ")}
    clip = "clip (frames + speech)" if voice else "clip (frames, silent)"
    assert list(rows) == ["photo", "sentence", clip, "clip + sentence"]
    assert (after.strip() == demo.NO_SPEECH) is not voice  # a silent clip is explained, with its fix
    assert rows["photo"][2:] == ["face", "audio+text"]  # the astronaut's face is found; the rest rebuilt
    assert rows["sentence"][2:] == ["text", "face+audio"]
    assert rows[clip][2] == ("face+audio" if voice else "face")
    assert rows["clip + sentence"][2:] == (["face+audio+text", "-"] if voice else ["face+text", "audio"])
    for emotion, p, *_ in rows.values():
        assert emotion in ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise") and 0 < float(p) <= 1


def test_demo_without_a_shipped_model(monkeypatch, tmp_path, capsys):
    import bridge.release

    monkeypatch.setattr(bridge.release, "RELEASES", tmp_path)  # a copy of bridge with no release in it
    assert demo.main(["--if-shipped"]) == 0
    assert "skipped: the shipped model emotion7 is not in this copy" in capsys.readouterr().out
    assert demo.main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("bridge.demo: error: the shipped model emotion7 is not")
    with pytest.raises(SystemExit):
        demo.main(["--bogus"])


def test_demo_says_why_its_clip_is_silent(trained_checkpoint, tmp_path, monkeypatch, capsys):
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "espeak-ng" else real_which(name, *a, **k))
    assert demo.main(["--checkpoint", str(trained_checkpoint), "--output", str(tmp_path)]) == 0
    table, _, after = capsys.readouterr().out.partition("\n\n")
    assert "clip (frames, silent)" in table and "clip (frames + speech)" not in table
    assert after.strip() == demo.NO_SPEECH and "apt-get install espeak-ng" in after
