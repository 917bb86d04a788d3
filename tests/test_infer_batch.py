"""infer.py --batch: a folder (files sharing a stem are one item) or a manifest -> one prediction
per item as CSV + JSON lines, a per-item error for a bad file, exit 2 for an unusable source."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

import infer
from bridge.data.export import export_sample
from bridge.data.synthetic import SyntheticEmotions
from bridge.media import write_video

RECORD_FIELDS = {"id", "inputs", "error", "label", "probabilities", "observed", "reconstructed", "notes",
                 "face_frames", "explanation"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """s1: face crop + voice + text; s2: voice; s3: text; v1: a video with sound; broken: a bad PNG;
    notes.md: ignored. Face images are crops (--no-face-detection)."""
    d = tmp_path_factory.mktemp("batch")
    samples = SyntheticEmotions(4, split="test", seed=5)
    for name, sample in (("s1", samples[0]), ("s2", samples[1]), ("s3", samples[2])):
        for kind, path in export_sample(sample, d / f"_{name}").items():
            if (name, kind) in {("s1", "image"), ("s1", "audio"), ("s1", "text"), ("s2", "audio"), ("s3", "text")}:
                shutil.move(path, d / f"{name}{path.suffix}")
        shutil.rmtree(d / f"_{name}")
    face = samples[3].face[0]
    frames = np.repeat(np.repeat(face[None, ..., None], 3, axis=-1), 5, axis=0)  # (5, s, s, 3)
    write_video(d / "v1.mp4", frames, fps=5, audio=np.resize(samples[3].audio, 16_000).astype(np.float32))
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "notes.md").write_text("not an input\n")
    return d


def _run(args, capsys) -> tuple[int, str, str]:
    rc = infer.main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def _one_line_error(err: str) -> str:
    err = err.strip()
    assert err.startswith("infer.py: error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_folder_writes_csv_and_jsonl_with_per_item_errors(trained_checkpoint, folder, tmp_path, capsys):
    rc, out, err = _run(["--checkpoint", str(trained_checkpoint), "--batch", str(folder), "--no-face-detection",
                         "--output", str(tmp_path / "pred.csv")], capsys)
    assert rc == 0
    assert "5 items, 1 failed, 1 files ignored" in err
    records = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in records}
    assert [r["id"] for r in records] == ["broken", "s1", "s2", "s3", "v1"]
    for r in records:
        assert set(r) == RECORD_FIELDS
    assert sorted(by_id["s1"]["observed"]) == ["audio", "face", "text"]
    assert set(by_id["s1"]["inputs"]) == {"image", "audio", "text_file"}
    assert by_id["s2"]["observed"] == ["audio"] and by_id["s3"]["observed"] == ["text"]
    assert sorted(by_id["v1"]["observed"]) == ["audio", "face"]
    for name in ("s1", "s2", "s3", "v1"):
        assert by_id[name]["error"] is None
        assert abs(sum(by_id[name]["probabilities"].values()) - 1) < 1e-4
    bad = by_id["broken"]
    assert bad["label"] is None and bad["probabilities"] == {} and "broken.png" in bad["error"]

    rows = list(csv.DictReader((tmp_path / "pred.csv").open()))
    labels = list(by_id["s1"]["probabilities"])
    assert [r["id"] for r in rows] == [r["id"] for r in records]
    assert rows[0].keys() >= {"id", "image", "video", "audio", "text_file", "text", "label", "observed", "error",
                              *(f"p_{n}" for n in labels)}
    csv_by_id = {r["id"]: r for r in rows}
    assert csv_by_id["broken"]["label"] == "" and "broken.png" in csv_by_id["broken"]["error"]
    assert csv_by_id["s1"]["label"] == by_id["s1"]["label"] and csv_by_id["s1"]["error"] == ""
    assert csv_by_id["s1"]["observed"] == "+".join(by_id["s1"]["observed"])
    assert float(csv_by_id["s1"][f"p_{labels[0]}"]) == pytest.approx(by_id["s1"]["probabilities"][labels[0]], abs=1e-6)
    assert "s1" in out and "broken" in out  # the human-readable table


def test_batch_prediction_equals_single_file_prediction(trained_checkpoint, folder, capsys):
    rc, out, _ = _run(["--checkpoint", str(trained_checkpoint), "--batch", str(folder), "--no-face-detection",
                       "--json"], capsys)
    assert rc == 0
    records = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert len(records) == 5
    rc, out, _ = _run(["--checkpoint", str(trained_checkpoint), "--no-face-detection", "--json",
                       "--image", str(folder / "s1.png"), "--audio", str(folder / "s1.wav"),
                       "--text", f"@{folder / 's1.txt'}"], capsys)
    assert rc == 0
    single = json.loads(out)
    batch = records["s1"]
    assert batch["label"] == single["label"] and batch["explanation"].keys() == single["explanation"].keys()
    for name, p in single["probabilities"].items():
        assert batch["probabilities"][name] == pytest.approx(p, abs=1e-6)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_manifest_without_labels(trained_checkpoint, folder, tmp_path, capsys, suffix):
    rows = [{"id": "a", "image": str(folder / "s1.png"), "audio": "", "text": "what a lovely surprise"},
            {"id": "b", "audio": str(folder / "s2.wav")},
            {"id": "c", "audio": "missing.wav"},  # relative to the manifest's folder, and absent
            {"id": "d"}]
    manifest = tmp_path / f"m{suffix}"
    if suffix == ".csv":
        with manifest.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["id", "image", "audio", "text"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc, out, err = _run(["--checkpoint", str(trained_checkpoint), "--batch", str(manifest), "--no-face-detection",
                         "--json"], capsys)
    assert rc == 0 and "4 items, 2 failed" in err
    records = {r["id"]: r for r in map(json.loads, out.splitlines())}
    assert sorted(records["a"]["observed"]) == ["face", "text"] and records["a"]["inputs"]["text"].startswith("what")
    assert records["b"]["observed"] == ["audio"] and records["b"]["error"] is None
    assert "missing.wav" in records["c"]["error"] and records["c"]["label"] is None
    assert "no image, video, audio or text" in records["d"]["error"]


@pytest.mark.parametrize("case", ["missing", "empty_folder", "bad_jsonl", "not_a_manifest", "with_image"])
def test_unusable_source_is_one_line_exit_2(case, trained_checkpoint, folder, tmp_path, capsys):
    source = tmp_path / "src"
    extra = []
    if case == "empty_folder":
        source.mkdir()
        (source / "readme.md").write_text("nothing to predict\n")
    elif case == "bad_jsonl":
        source = tmp_path / "m.jsonl"
        source.write_text('{"id": "a", "text": "fine"}\n{not json\n')
    elif case == "not_a_manifest":
        source = tmp_path / "m.yaml"
        source.write_text("a: b\n")
    elif case == "with_image":
        source, extra = folder, ["--image", str(folder / "s1.png")]
    out = tmp_path / "pred.csv"
    rc, stdout, err = _run(["--checkpoint", str(trained_checkpoint), "--batch", str(source), "--output", str(out),
                            *extra], capsys)
    assert rc == 2 and stdout == ""
    assert str(source.name) in _one_line_error(err) or case == "with_image"
    assert not out.exists() and not out.with_suffix(".jsonl").exists()
