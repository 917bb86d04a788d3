"""Start a model's encoders from trained bridge checkpoints (``train.py --init-encoder``).

A face encoder trained on FER-2013, a voice encoder trained on RAVDESS and a text encoder
fine-tuned on MELD can start a tri-modal model: each named modality takes the source
checkpoint's encoder config (so the architecture and the preprocessing match what the weights
were trained with), its encoder weights, and, where the latent sizes agree, the summariser
that maps the encoder's tokens into the shared latent. Add ``--set face.freeze=true`` (and
``audio.freeze``, ``text.freeze``) to keep them fixed and train the translators and the fusion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from torch import nn

from bridge.checkpoint import run_state
from bridge.config import BridgeConfig
from bridge.modality import Modality


RECIPE_PREFIX = "recipe:"
RECIPE_RUNS = Path("checkpoints") / "recipes"  # where a recipe named as a source is trained


def train_recipe_sources(specs: Sequence[str], data_root: str | None,
                         train: Callable[[list[str]], int]) -> list[str]:
    """``MODALITY=recipe:PATH`` specs replaced by the recipe's run folder (``checkpoints/recipes/STEM``),
    trained first with ``train`` (train.py's ``main``) when it is not finished, resuming an interrupted
    run; other specs pass through. A recipe that itself names recipe sources trains them first, so
    ``train.py --recipe X`` alone rebuilds everything X starts from.

    Raises:
        ValueError: a recipe file that does not exist, or a source run that fails.
    """
    here = Path(__file__).resolve().parents[2]
    out = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path.strip().startswith(RECIPE_PREFIX):
            out.append(spec)
            continue
        recipe = Path(path.strip()[len(RECIPE_PREFIX):])
        if not recipe.is_file() and (here / recipe).is_file():
            recipe = here / recipe
        if not recipe.is_file():
            raise ValueError(f"--init-encoder {spec!r}: recipe {recipe} does not exist")
        run = RECIPE_RUNS / recipe.stem
        state = run_state(run, recipe)
        if state != "finished":
            print(f"{name.strip()}: training its source first: train.py --recipe {recipe} --output {run}", flush=True)
            argv = ["--recipe", str(recipe), "--output", str(run)] + (["--data-root", data_root] if data_root else [])
            if train(argv + (["--resume"] if state == "interrupted" else [])) != 0:
                raise ValueError(f"--init-encoder {spec!r}: training {recipe} failed; run the same command to resume")
        out.append(f"{name.strip()}={run}")
    return out


def parse_init_encoders(specs: Sequence[str]) -> dict[Modality, Path]:
    """``["face=checkpoints/fer", ...]`` -> ``{Modality.FACE: Path("checkpoints/fer"), ...}``.

    Raises:
        ValueError: a malformed or repeated spec, or an unknown modality.
    """
    sources: dict[Modality, Path] = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"--init-encoder {spec!r}: expected MODALITY=CHECKPOINT, e.g. face=checkpoints/fer2013")
        try:
            modality = Modality(name.strip())
        except ValueError:
            raise ValueError(f"--init-encoder {spec!r}: unknown modality {name.strip()!r} "
                             f"(choose from {', '.join(m.value for m in Modality)})") from None
        if modality in sources:
            raise ValueError(f"--init-encoder names {modality.value} twice")
        sources[modality] = Path(path.strip())
    return sources


def adopt_encoder_configs(config: BridgeConfig, sources: dict[Modality, Path]) -> BridgeConfig:
    """``config`` with each source modality's encoder config taken from its checkpoint.

    Raises:
        ValueError: the model lacks a named modality, a source is not a bridge checkpoint, or it
            has no encoder for that modality.
    """
    from bridge.checkpoint import read_meta

    encoders = {}
    for modality, path in sources.items():
        if modality not in config.modalities:
            raise ValueError(f"--init-encoder {modality.value}: this model has no {modality.value} "
                             f"(its modalities: {', '.join(m.value for m in config.modalities)})")
        try:
            source = BridgeConfig.from_dict(read_meta(path)["model"])
        except ValueError as e:  # CheckpointError included
            raise ValueError(f"--init-encoder {modality.value}: {e}") from None
        if modality not in source.modalities:
            raise ValueError(f"--init-encoder {modality.value}: {path} has no {modality.value} encoder "
                             f"(it has {', '.join(m.value for m in source.modalities)})")
        encoders[modality.value] = source.encoders[modality]
    return replace(config, **encoders)


def load_encoder_weights(model: nn.Module, sources: dict[Modality, Path]) -> list[str]:
    """Copy each source checkpoint's encoder (and summariser, when its shapes fit) into ``model``.

    Returns:
        One line per source saying what was copied.

    Raises:
        ValueError: an encoder whose shapes differ from the source's (an override changed its
            architecture after it was adopted).
    """
    from bridge.model import load_checkpoint

    done = []
    for modality, path in sources.items():
        source, _ = load_checkpoint(path)
        key = modality.value
        try:
            model.encoders[key].load_state_dict(source.encoders[key].state_dict())
        except RuntimeError as e:
            raise ValueError(f"--init-encoder {key}: the {key} encoder differs from the one in {path} "
                             f"(did --set change its architecture?): {_first_problem(e)}") from None
        copied = ["encoder"]
        target, summariser = model.summarisers[key].state_dict(), source.summarisers[key].state_dict()
        if target.keys() == summariser.keys() and all(target[k].shape == summariser[k].shape for k in target):
            model.summarisers[key].load_state_dict(summariser)
            copied.append("latent summariser")
        done.append(f"{key}: {' and '.join(copied)} from {path}")
    return done


def _first_problem(error: RuntimeError) -> str:
    # torch lists every missing key and size mismatch; the first is enough to point at the field.
    lines = [line.strip() for line in str(error).splitlines()[1:] if line.strip()]
    first = lines[0] if lines else str(error)
    return first if len(first) <= 160 else first[:157] + "..."
