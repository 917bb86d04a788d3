"""train.py --mismatch: some training samples take a modality from a sample of another label."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import train
from bridge.batch import Batch
from bridge.checkpoint import STATE_FILE
from bridge.train.mismatch import mismatch_modalities, parse_mismatch, resolve_auto
from bridge.modality import Modality
from bridge.model import load_checkpoint

FACE, AUDIO, TEXT = Modality.FACE, Modality.AUDIO, Modality.TEXT


def _batch(n: int, labels: torch.Tensor, audio_present: torch.Tensor | None = None) -> Batch:
    """Every row of every input holds its own index, so a swapped row says where it came from."""
    rows = torch.arange(n, dtype=torch.float32)
    inputs = {FACE: rows[:, None, None, None, None].expand(n, 1, 1, 2, 2).clone(),
              AUDIO: rows[:, None, None].expand(n, 4, 3).clone(),
              TEXT: torch.arange(n)[:, None].expand(n, 6).clone()}
    masks = {FACE: torch.ones(n, 1, dtype=torch.bool), AUDIO: torch.arange(4)[None, :] < (rows[:, None] % 4 + 1),
             TEXT: torch.ones(n, 6, dtype=torch.bool)}
    present = {m: torch.ones(n, dtype=torch.bool) for m in inputs}
    if audio_present is not None:
        present[AUDIO] = audio_present
    return Batch(inputs, masks, present, labels, [str(i) for i in range(n)])


def test_swapped_inputs_come_from_another_label_at_the_rate_asked():
    n = 4000
    labels = torch.randint(0, 7, (n,), generator=torch.Generator().manual_seed(0))
    has_audio = torch.arange(n) % 10 != 0  # every tenth sample has no audio: never swapped, never a donor
    batch = _batch(n, labels, has_audio)
    out = mismatch_modalities(batch, {AUDIO: 0.4}, torch.Generator().manual_seed(1))
    source = out.inputs[AUDIO][:, 0, 0].long()
    swapped = source != torch.arange(n)
    assert (labels[source[swapped]] != labels[swapped]).all()  # always from another label
    assert has_audio[source[swapped]].all() and not swapped[~has_audio].any()
    assert torch.equal(out.masks[AUDIO], batch.masks[AUDIO][source])  # the padding mask travels with the input
    assert (out.inputs[AUDIO] == source[:, None, None].float()).all()  # whole rows, not parts
    rate = swapped[has_audio].float().mean().item()
    assert 0.37 < rate < 0.43
    for m in (FACE, TEXT):  # modalities without a rate are untouched
        assert torch.equal(out.inputs[m], batch.inputs[m]) and torch.equal(out.masks[m], batch.masks[m])
    assert all(torch.equal(out.present[m], batch.present[m]) for m in out.present)
    assert torch.equal(out.labels, labels) and out.ids == batch.ids
    again = mismatch_modalities(batch, {AUDIO: 0.4}, torch.Generator().manual_seed(1))
    assert torch.equal(again.inputs[AUDIO], out.inputs[AUDIO])  # the generator fixes it


def test_a_modality_alone_is_never_swapped():
    """A sample with one modality (a text-only sample beside label-paired ones) keeps it: a swap
    would only mislabel it. It may still give its input to a sample that has more."""
    n = 2000
    labels = torch.randint(0, 7, (n,), generator=torch.Generator().manual_seed(0))
    batch = _batch(n, labels)
    alone = torch.arange(n) % 4 == 0
    batch.present[FACE] = ~alone
    batch.present[AUDIO] = ~alone
    out = mismatch_modalities(batch, {TEXT: 0.5}, torch.Generator().manual_seed(1))
    source = out.inputs[TEXT][:, 0]
    swapped = source != torch.arange(n)
    assert not swapped[alone].any()
    assert 0.45 < swapped[~alone].float().mean().item() < 0.55
    assert alone[source[swapped]].any()  # text-only samples still donate


def test_several_modalities_swap_independently_and_a_one_label_batch_keeps_its_own():
    n = 3000
    labels = torch.arange(n) % 7
    out = mismatch_modalities(_batch(n, labels), {FACE: 0.2, TEXT: 0.6}, torch.Generator().manual_seed(0))
    face = out.inputs[FACE].flatten(1)[:, 0].long() != torch.arange(n)
    text = out.inputs[TEXT][:, 0] != torch.arange(n)
    assert 0.17 < face.float().mean() < 0.23 and 0.57 < text.float().mean() < 0.63
    assert abs((face & text).float().mean() - 0.2 * 0.6) < 0.03  # independent draws
    same = _batch(50, torch.full((50,), 3))
    kept = mismatch_modalities(same, {AUDIO: 0.9}, torch.Generator().manual_seed(0))
    assert torch.equal(kept.inputs[AUDIO], same.inputs[AUDIO])  # no donor of another label: nothing changes


@pytest.mark.parametrize("spec, message", [
    ("audio", "expected MODALITY=RATE"),
    ("smell=0.2", "expected MODALITY=RATE"),
    ("audio=lots", "expected MODALITY=RATE"),
    ("audio=1", r"the rate must be in \[0, 1\)"),
    ("audio=-0.1", r"the rate must be in \[0, 1\)"),
])
def test_parse_mismatch_rejects_malformed_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_mismatch([spec], (FACE, AUDIO, TEXT))


def test_parse_mismatch_reads_rates_and_rejects_repeats_and_absent_modalities():
    assert parse_mismatch(["audio=0.35", " text = 0.3"], (FACE, AUDIO, TEXT)) == {AUDIO: 0.35, TEXT: 0.3}
    with pytest.raises(ValueError, match="names audio twice"):
        parse_mismatch(["audio=0.1", "audio=0.2"], (AUDIO,))
    with pytest.raises(ValueError, match="this model has no text"):
        parse_mismatch(["text=0.1"], (FACE, AUDIO))


def test_train_with_mismatch_records_it_and_a_bad_spec_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(["--limit", "32", "--epochs", "1", "--batch-size", "16", "--no-cache", "--output", str(out),
                       "--mismatch", "audio=0.5", "--mismatch", "text=0.2"]) == 0
    _, meta = load_checkpoint(out)
    assert meta["training"]["mismatch"] == ["audio=0.5", "text=0.2"]
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert train.main(["--limit", "16", "--epochs", "1", "--no-cache", "--modalities", "face,audio",
                       "--output", str(bad), "--mismatch", "text=0.2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: --mismatch 'text=0.2': this model has no text") and "Traceback" not in err
    assert not bad.exists()


def test_auto_mismatch_is_measured_on_the_source_and_recorded_as_a_number(tmp_path, capsys):
    import json

    import evaluate

    source = tmp_path / "face"
    assert train.main(["--limit", "32", "--epochs", "1", "--batch-size", "16", "--modalities", "face",
                       "--set", "face.stem=cnn", "--output", str(source)]) == 0
    uar = {}
    for split in ("train", "val"):  # what the rate is defined by, measured by hand
        assert evaluate.main(["--checkpoint", str(source), "--split", split, "--limit", "32",
                              "--protocols", "patterns", "--output", str(tmp_path / split)]) == 0
        report = json.loads((tmp_path / split / "results.json").read_text())
        uar[split] = report["results"]["face"]["reconstruct"]["uar"]
    expected = f"{max(0.0, 1 - uar['val'] / uar['train']):.2f}"
    capsys.readouterr()
    out = tmp_path / "tri"
    assert train.main(["--limit", "32", "--epochs", "1", "--batch-size", "16", "--modalities", "face,audio",
                       "--output", str(out), "--init-encoder", f"face={source}",
                       "--mismatch", "face=auto", "--mismatch", "audio=0.2"]) == 0
    said = capsys.readouterr().out
    assert f"mismatch face={expected}: 1 - validation / training UAR of {source} " in said
    _, meta = load_checkpoint(out)
    assert meta["training"]["mismatch"] == [f"face={expected}", "audio=0.2"]  # a resumed run keeps the number
    state = torch.load(out / STATE_FILE, weights_only=True)
    assert json.loads(state["run"])["mismatch"] == [f"face={expected}", "audio=0.2"]


def test_auto_mismatch_without_a_source_for_it_is_one_line_before_anything_trains(tmp_path, capsys):
    out = tmp_path / "run"
    assert train.main(["--limit", "16", "--epochs", "1", "--no-cache", "--output", str(out),
                       "--init-encoder", "face=recipe:recipes/fer2013.json", "--mismatch", "audio=auto"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("train.py: error: --mismatch 'audio=auto' measures the rate on the checkpoint "
                          "--init-encoder audio=... starts from, and this run names none for audio")
    assert "Traceback" not in err and not out.exists() and not (tmp_path / "checkpoints").exists()
    measured = []  # a modality named twice: refused before any rate is measured
    with pytest.raises(ValueError, match="--mismatch names face twice"):
        resolve_auto(["face=auto", "face=0.1"], {FACE: Path("src")}, None,
                     measure=lambda source, root, corpus: measured.append(source) or (0.1, 0.8, 0.72))
    assert measured == []
    from bridge.train.mismatch import auto_modalities

    assert auto_modalities(["0.1", "0.1"], ()) == {}  # not MODALITY=RATE: parse_mismatch's message, not "twice"


def test_resolve_auto_keeps_numbers_and_order():
    from pathlib import Path

    from bridge.train.mismatch import resolve_auto

    lines, asked = [], []

    def measure(source, root, corpus):
        asked.append((str(source), corpus))
        return 0.123, 0.8, 0.7016

    specs = resolve_auto(["audio=0.3", "face = auto", "text=auto:meld"], {FACE: Path("src"), TEXT: Path("txt")},
                         None, lines.append, measure=measure)
    assert specs == ["audio=0.3", "face=0.12", "text=0.12"] and asked == [("src", None), ("txt", "meld")]
    assert lines == ["mismatch face=0.12: 1 - validation / training UAR of src (70.2 / 80.0)",
                     "mismatch text=0.12: 1 - validation / training UAR of txt on meld (70.2 / 80.0)"]
    with pytest.raises(ValueError, match="no corpus 'nope'"):  # before anything is measured
        resolve_auto(["text=auto:nope"], {TEXT: Path("txt")}, None, measure=measure)
    assert len(asked) == 2


def test_a_rate_measured_on_another_corpus_reads_that_corpus_whole(trained_checkpoint, monkeypatch):
    from bridge.commands import evaluate
    from bridge.train.mismatch import source_rate

    seen, real = [], evaluate.prepare
    monkeypatch.setattr(evaluate, "prepare", lambda args, **k: seen.append((args.data, args.limit)) or real(args, **k))
    rate, train_uar, val_uar = source_rate(trained_checkpoint, None, "synthetic")
    assert seen == [("synthetic", None)] * 2  # not the source's --limit: that counted the items of its own corpus
    assert 0 <= rate < 1 and 0 < train_uar <= 1 and rate == pytest.approx(max(0.0, 1 - val_uar / train_uar))
