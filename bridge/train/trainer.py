"""The training loop behind ``train.py``: modality dropout, modality mismatch, named loss terms,
per-epoch validation, curves, best checkpoint by validation macro F1 (on all modalities, or
averaged over modality patterns), and resume.

Process-wide settings (deterministic algorithms) are the script's (:mod:`bridge.runtime`);
building a :class:`Trainer` changes no global state, and :meth:`Trainer.fit` seeds the global
generators from ``TrainConfig.seed`` as the run it is."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm.auto import tqdm

from bridge.train.augment import AudioAugment, FaceAugment
from bridge.checkpoint import STATE_FILE, atomic_write_text, save_checkpoint, umask
from bridge.cli import first_line
from bridge.config import BridgeConfig, FeatureConfig
from bridge.contract import Fill
from bridge.data.sample import Sample
from bridge.dataset import ExampleDataset, balanced_indices, feature_statistics, make_loader, part_draw, part_quotas
from bridge.train.distributed import GlobalBatchSampler, World, barrier, gather_present, merge_ranks
from bridge.encoders.memo import TokenStateMemo
from bridge.eval.protocols import pattern_predictions, subsets
from bridge.freeze import memoise_frozen, train_mode
from bridge.train.losses import BridgeLoss, view_consistency
from bridge.eval.metrics import classification_report
from bridge.train.mismatch import mismatch_modalities, parse_mismatch
from bridge.modality import Modality, pattern_name
from bridge.model import BridgeModel
from bridge.preprocess import Preprocessor
from bridge.presence import drop_modalities
from bridge.runtime import pick_device, seed_everything
from bridge.train.transfer import load_encoder_weights, parse_init_encoders
from bridge.views import require_face_views

from bridge.train.config import SELECT_KEYS, TrainConfig  # noqa: F401 (re-exported)


def check_consistency(model_config: BridgeConfig, train_config: TrainConfig) -> None:
    """Raises ``ValueError`` for view consistency where it has no two views to compare: without
    face augmentation, without a raw-face encoder, or with faces swapped between samples (the
    second view is drawn from the faces before the swap)."""
    if train_config.consistency_weight < 0:
        raise ValueError(f"--consistency-weight must be >= 0, got {train_config.consistency_weight:g}")
    if train_config.consistency_weight == 0:
        return
    if not train_config.augment:
        raise ValueError("--consistency-weight compares two augmented views of each face: add --augment")
    if model_config.face is None or model_config.face.kind != "face":
        raise ValueError("--consistency-weight needs a model with a face encoder (not features)")
    if any(spec.split("=", 1)[0] == Modality.FACE.value for spec in train_config.mismatch):
        raise ValueError("--consistency-weight with --mismatch face=...: the second view would show the face "
                         "before the swap; drop one of them")


class TrainStep(nn.Module):
    """The model and its loss as one module, the unit DistributedDataParallel wraps: the loss's
    training-only unimodal heads are then synchronised too, and the translators the loss calls
    (cycle terms) are inside the wrapped forward."""

    def __init__(self, model: BridgeModel, criterion: BridgeLoss):
        super().__init__()
        self.model = model
        self.criterion = criterion

    def forward(self, batch: Any, present: dict[Modality, Tensor], fill: Fill, second_faces: Tensor | None = None,
                consistency_weight: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
        """The logits and loss terms; with ``second_faces`` (another augmented view of the batch's
        faces) the model also classifies that view, and the loss adds ``consistency_weight`` times
        the two predictions' symmetric KL divergence (``consistency``)."""
        out = self.model(batch, present=present, fill=fill, cycle=self.criterion.cycle_weight > 0,
                         teacher=self.criterion.distill_weight > 0)
        terms = self.criterion(out, batch)
        if second_faces is not None:
            other = dataclasses.replace(batch, inputs={**batch.inputs, Modality.FACE: second_faces})
            terms["consistency"] = view_consistency(out.logits, self.model(other, present=present, fill=fill).logits)
            terms["loss"] = terms["loss"] + consistency_weight * terms["consistency"]
        return out.logits, terms


class Trainer:
    """Trains a :class:`BridgeModel` and writes its checkpoint directory.

    Args:
        model_config: the model to build.
        train_config: optimisation settings.
        output: checkpoint directory (best model, training state, history, curves).
        data_info: JSON-able description of the data (name, splits, sizes), stored in the checkpoint.
        world: this process's place in a ``torchrun`` run (process group already set up);
            rank 0 alone writes and logs, every rank validates its share of the validation set.
    """

    def __init__(self, model_config: BridgeConfig, train_config: TrainConfig, output: Path,
                 data_info: dict[str, Any] | None = None, world: World = World()):
        if train_config.batch_size % world.size:
            raise ValueError(f"batch size {train_config.batch_size} (global) is not divisible by the "
                             f"{world.size} processes")
        require_face_views(model_config, train_config.test_views)
        check_consistency(model_config, train_config)
        self.model_config = model_config
        self.cfg = train_config
        self.output = Path(output)
        self.data_info = data_info or {}
        self.world = world
        self.device = pick_device(train_config.device)
        # The model and loss heads are initialised from the seed on a forked generator: the global
        # one is left alone here, and fit() continues from where this initialisation left it.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(train_config.seed)
            self.model = BridgeModel(model_config).to(self.device)
            self.init_sources = parse_init_encoders(train_config.init_encoders)
            self.init_report = load_encoder_weights(self.model, self.init_sources)  # before any resume overwrites
            self.preprocessor = Preprocessor(model_config)
            zero = train_config.fill == "zero"  # the zero-fill baseline trains no translators
            self.criterion = BridgeLoss(model_config, train_config.label_smoothing, train_config.unimodal_weight,
                                        0.0 if zero else train_config.translation_weight,
                                        0.0 if zero else train_config.cycle_weight,
                                        train_config.translation_loss,
                                        0.0 if zero else train_config.distill_weight,
                                        train_config.distill_temperature).to(self.device)
            self._rng_after_init = torch.get_rng_state()
        memoise_frozen(self.model, TokenStateMemo.megabytes(train_config.memo_mb) if train_config.memo_mb else None)
        self.augment = (FaceAugment(translate=train_config.augment_shift, scale=train_config.augment_zoom,
                                    surround=train_config.augment_surround)
                        if train_config.augment else None)
        audio = model_config.audio
        self.audio_augment = (AudioAugment(audio.arch, fbank_mean=audio.fbank_mean, fbank_std=audio.fbank_std)
                              if train_config.augment and audio is not None and audio.kind == "audio" else None)
        self.mismatch = parse_mismatch(train_config.mismatch, model_config.modalities)
        self.step: nn.Module = TrainStep(self.model, self.criterion)  # DDP-wrapped in fit when distributed
        self.history: list[dict[str, Any]] = []
        self.run_settings: dict[str, Any] = {}  # the command line's settings, recorded for --resume
        self.best_score = -math.inf
        self.start_epoch = 0

    # --- set-up ----------------------------------------------------------------------------
    def _optimizer(self, steps_per_epoch: int) -> None:
        pretrained = [p for m, cfg in self.model_config.encoders.items()
                      if getattr(cfg, "weights", None) or m in self.init_sources
                      for p in self.model.encoders[m.value].parameters() if p.requires_grad]
        pretrained_ids = {id(p) for p in pretrained}
        rest = [p for p in self.model.parameters() if p.requires_grad and id(p) not in pretrained_ids]
        rest += list(self.criterion.parameters())  # training-only unimodal heads
        groups = [{"params": rest, "lr": self.cfg.lr}]
        if pretrained:
            groups.append({"params": pretrained, "lr": self.cfg.lr * self.cfg.encoder_lr_scale})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=self.cfg.weight_decay)
        total = max(1, self.cfg.epochs * steps_per_epoch)
        warmup = max(1, int(self.cfg.warmup_epochs * steps_per_epoch))

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)

    def dropout_rate(self, epoch: int) -> float:
        if self.cfg.dropout_schedule == "linear" and self.cfg.dropout_warmup_epochs > 0:
            return self.cfg.modality_dropout * min(1.0, epoch / self.cfg.dropout_warmup_epochs)
        return self.cfg.modality_dropout

    # --- state -----------------------------------------------------------------------------
    def _save_state(self, epoch: int) -> None:
        state = {"epoch": epoch, "model": self.model.state_dict(), "criterion": self.criterion.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "best_score": self.best_score,
                 "history": json.dumps(self.history), "torch_rng": torch.get_rng_state(),
                 **({"cuda_rng": torch.cuda.get_rng_state(self.device)} if self.device.type == "cuda" else {}),
                 "train_config": json.dumps(dataclasses.asdict(self.cfg)), "run": json.dumps(self.run_settings)}
        self.output.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.output, prefix=f".{STATE_FILE}.")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600 files: honour the umask like any other file
            os.replace(tmp, self.output / STATE_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _load_state(self) -> None:
        path = self.output / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"cannot resume: {path} does not exist")
        try:  # weights_only: plain tensors and containers only; a pickle that would run code is refused
            # on the CPU: the RNG states must stay CPU byte tensors (on a GPU, set_rng_state refuses them);
            # load_state_dict moves the weights and the optimiser's moments to the model's device itself
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as e:
            raise ValueError(f"cannot resume from {path}: not a loadable bridge training state "
                             f"({first_line(e, 120)})") from None
        self.model.load_state_dict(state["model"])
        self.criterion.load_state_dict(state["criterion"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best_score = state["best_score"]
        self.history = json.loads(state["history"])
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.start_epoch = state["epoch"] + 1

    # --- loop ------------------------------------------------------------------------------
    def fit(self, train: Sequence[Sample], val: Sequence[Sample], resume: bool = False,
            cache_dir: str | Path | None = None, log=print) -> list[dict[str, Any]]:
        """Train for ``cfg.epochs`` epochs; returns the per-epoch history.

        Args:
            train, val: the splits.
            resume: continue from the training state in the output directory.
            cache_dir: preprocessing cache (None: preprocess in memory only).
            log: where progress lines go (rank 0's only, in a multi-process run).
        """
        world = self.world
        seed_everything(self.cfg.seed)
        torch.set_rng_state(self._rng_after_init)  # as if the model had been built just now
        if not world.is_main:
            log = _quiet
        train_set, val_set = self._datasets(train, val, cache_dir, log)
        draw = EpochDraw(train_set, self.cfg, world)
        if world.distributed:
            val_set = Subset(val_set, range(world.rank, len(val_set), world.size))  # type: ignore[assignment]
            # Every parameter gets a gradient every step unless a batch can lack a modality altogether
            # (its encoder then idles) or fill="zero" leaves the reconstruction unused.
            partial = any(m not in ex.inputs for ex in train_set.examples for m in self.model_config.modalities)
            self.step = DistributedDataParallel(self.step, find_unused_parameters=partial or self.cfg.fill == "zero")
        self._optimizer(draw.steps)
        if resume:
            self._load_state()
            log(f"resumed at epoch {self.start_epoch + 1}")
        val_loader = make_loader(val_set, draw.batch_size * 2, False, 0, self.cfg.num_workers)
        drop_gen = torch.Generator().manual_seed(self.cfg.seed + 1)
        for epoch in range(self.start_epoch, self.cfg.epochs):
            seed = draw.epoch_seed(epoch)
            drop_gen.manual_seed(seed)  # modality dropout: the same stream on every rank, drawn globally
            start = time.time()
            loader = draw.loader(epoch)
            aug_gen = torch.Generator().manual_seed(seed + 1_000_003 * (world.rank + 1) + 17)  # resumable
            train_stats = self._train_epoch(loader, epoch, drop_gen, aug_gen)
            val_stats = self._validate(val_loader)
            self._end_epoch(epoch, train_stats, val_stats, time.time() - start, log)
        barrier(world)  # when fit returns, on any rank, rank 0's files are complete
        return self.history

    def _datasets(self, train: Sequence[Sample], val: Sequence[Sample], cache_dir: str | Path | None,
                  log: Callable[[str], None]) -> tuple[ExampleDataset, ExampleDataset]:
        """The splits preprocessed (through the cache, filled by rank 0 first); the feature encoders'
        normalisation statistics set from the training split."""
        world = self.world
        if cache_dir and not world.is_main:
            barrier(world)  # rank 0 fills the cache first; the others then read it
        train_set = ExampleDataset(train, self.preprocessor, "preprocess train", cache_dir, world.is_main)
        val_set = ExampleDataset(val, self.preprocessor, "preprocess val", cache_dir, world.is_main)
        if cache_dir and world.is_main:
            barrier(world)
        if not len(train_set) or not len(val_set):
            raise ValueError("no usable training or validation samples")
        for name, ds in (("train", train_set), ("val", val_set)):
            if ds.skipped:
                log(f"{name}: skipped {sum(ds.skipped.values())} samples: " +
                    ", ".join(f"{k} ({v})" for k, v in ds.skipped.items()))
        for m, enc_cfg in self.model_config.encoders.items():
            if isinstance(enc_cfg, FeatureConfig) and enc_cfg.normalize and m not in self.init_sources:
                encoder = self.model.encoders[m.value]  # a FeatureEncoder
                encoder.set_statistics(*(t.to(self.device) for t in feature_statistics(train_set, m)))
        return train_set, val_set

    def _end_epoch(self, epoch: int, train_stats: dict[str, float], val_stats: dict[str, float], seconds: float,
                   log: Callable[[str], None]) -> None:
        """Record the epoch, keep the model if it is the best so far, log one line, save the state."""
        row = {"epoch": epoch + 1, "train": train_stats, "val": val_stats, "seconds": round(seconds, 2),
               "lr": self.scheduler.get_last_lr()[0]}
        self.history.append(row)
        score = val_stats[SELECT_KEYS[self.cfg.select]]
        improved = score > self.best_score  # the same on every rank: metrics are gathered
        if improved:
            self.best_score = score
            if self.world.is_main:
                self._save_best(row)
        parts = ", ".join(f"{k} {train_stats[k]:.4f}" for k in ("ce", "translation", "cycle", "distill", "unimodal")
                          if k in train_stats)
        log(f"epoch {epoch + 1}/{self.cfg.epochs}  train loss {train_stats['loss']:.4f} ({parts})  "
            f"val loss {val_stats['loss']:.4f} acc {val_stats['accuracy']:.3f} "
            f"macro-F1 {val_stats['macro_f1']:.3f}"
            + (f" (patterns {score:.3f})" if self.cfg.select == "patterns" else "")
            + f"{'  *best' if improved else ''}  [{row['seconds']:.0f}s]")
        if self.world.is_main:
            self._save_state(epoch)
            self._write_history()

    def _train_epoch(self, loader: DataLoader, epoch: int, drop_gen: torch.Generator,
                     aug_gen: torch.Generator) -> dict[str, float]:
        train_mode(self.model)  # frozen encoders stay in eval mode
        sums: dict[str, float] = {}
        n = 0
        p = self.dropout_rate(epoch)
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False, mininterval=0.5,
                   disable=not self.world.is_main)
        preds, labels = [], []
        for batch in bar:
            batch = batch.to(self.device)
            second = None
            if self.augment is not None and Modality.FACE in batch.inputs:
                faces = batch.inputs[Modality.FACE]
                batch.inputs[Modality.FACE] = self.augment(faces, aug_gen)
                if self.cfg.consistency_weight > 0:
                    second = self.augment(faces, aug_gen)
            if self.audio_augment is not None and Modality.AUDIO in batch.inputs:
                batch.inputs[Modality.AUDIO], batch.masks[Modality.AUDIO] = self.audio_augment(
                    batch.inputs[Modality.AUDIO], batch.masks[Modality.AUDIO], aug_gen)
            if self.mismatch:
                batch = mismatch_modalities(batch, self.mismatch, aug_gen)
            present = self._drop(batch.present, p, drop_gen) if p > 0 else batch.present
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bfloat16"):
                logits, terms = self.step(batch, present, self.cfg.fill, second, self.cfg.consistency_weight)
            self.optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_([*self.model.parameters(), *self.criterion.parameters()],
                                               self.cfg.grad_clip)
            self.optimizer.step()
            self.scheduler.step()
            preds.append(logits.detach().argmax(-1).cpu())
            labels.append(batch.labels.cpu())
            b = len(batch)
            n += b
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v.item() * b
            bar.set_postfix(loss=f"{sums['loss'] / n:.3f}", drop=f"{p:.2f}")
        # every rank's share of the epoch (padding samples included); a term may exist on some ranks only
        sums, n, y_true, y_pred = merge_ranks((sums, n, torch.cat(labels).numpy(), torch.cat(preds).numpy()),
                                              self.world)
        # Accuracy and macro F1 on the training batches as trained: with modality dropout applied.
        report = classification_report(y_true, y_pred, self.model_config.labels)
        return {**{k: v / n for k, v in sums.items()}, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}

    def _drop(self, present: dict[Modality, Tensor], p: float, drop_gen: torch.Generator) -> dict[Modality, Tensor]:
        """Modality dropout; a multi-process run draws it on the global batch (identically on
        every rank, as one process would) and keeps this rank's columns."""
        if not self.world.distributed:
            return drop_modalities(present, p, drop_gen)
        kept = drop_modalities(gather_present(present, self.world), p, drop_gen)
        return {m: kept[m][self.world.rank::self.world.size].to(self.device) for m in present}

    @torch.inference_mode()
    def _validate(self, loader: DataLoader) -> dict[str, float]:
        """Validation metrics; in a multi-process run each rank predicts its share and all ranks
        compute the metrics from everyone's predictions, so they agree exactly."""
        self.model.eval()
        probs, labels, loss, n = [], [], 0.0, 0
        for batch in loader:
            batch = batch.to(self.device)
            out = self.model(batch, fill=self.cfg.fill, cycle=self.criterion.cycle_weight > 0,
                             views=self.cfg.test_views, teacher=self.criterion.distill_weight > 0)
            loss += self.criterion(out, batch)["loss"].item() * len(batch)
            n += len(batch)
            probs.append(out.logits.softmax(-1).cpu())
            labels.append(batch.labels.cpu())
        if not probs:  # a rank whose share of a tiny validation set is empty
            probs, labels = [torch.zeros(0, len(self.model_config.labels))], [torch.zeros(0, dtype=torch.long)]
        loss, n, y_true, y_pred = merge_ranks((loss, n, torch.cat(labels).numpy(),
                                               torch.cat(probs).argmax(-1).numpy()), self.world)
        report = classification_report(y_true, y_pred, self.model_config.labels)
        stats = {"loss": loss / n, "accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}
        if self.cfg.select == "patterns":
            stats.update(self._validate_patterns(loader))
        return stats

    def _validate_patterns(self, loader: DataLoader) -> dict[str, float]:
        """Validation macro F1 per modality pattern (every non-empty subset of the model's
        modalities, the missing ones filled as in training) and their mean, ``macro_f1_patterns``."""
        patterns = subsets(self.model.modalities)
        preds = pattern_predictions(self.model, loader, self.device, patterns, (self.cfg.fill,), progress=False,
                                    views=self.cfg.test_views)
        mine = {pattern_name(p): (preds[(p, self.cfg.fill)]["labels"], preds[(p, self.cfg.fill)]["probs"].argmax(-1))
                for p in patterns if (p, self.cfg.fill) in preds}
        mine = merge_ranks(mine, self.world)
        mine = {k: mine[k] for k in map(pattern_name, patterns) if k in mine}  # the patterns' order, on any rank
        scores = {f"macro_f1/{k}": classification_report(t, p, self.model_config.labels)["macro_f1"]
                  for k, (t, p) in mine.items()}
        return {**scores, "macro_f1_patterns": float(np.mean(list(scores.values())))}

    def _save_best(self, row: dict[str, Any]) -> None:
        extra = {"training": dataclasses.asdict(self.cfg), "data": self.data_info, "run": self.run_settings,
                 "best": {"epoch": row["epoch"], "val": row["val"]}, "inference": {"test_views": self.cfg.test_views}}
        save_checkpoint(self.model, self.output, extra, tokenizer=self.preprocessor.tokenizer)

    def _write_history(self) -> None:
        atomic_write_text(self.output / "history.json", json.dumps(self.history, indent=2))
        from bridge.plots import plot_curves

        key = SELECT_KEYS[self.cfg.select]
        kept = max(self.history, key=lambda r: r["val"][key])["epoch"] if self.history else None  # first of equals
        plot_curves(self.history, self.output / "curves.png", kept=kept)


class EpochDraw:
    """Which training samples each epoch visits, in which order, in batches of what size: every
    sample shuffled by the epoch's seed, or (``--balance-parts``) an equal draw from each part of a
    joined corpus, scaled per part by ``--part-share``; in a multi-process run, this process's
    columns of the global batches (:class:`GlobalBatchSampler`), each process taking
    ``batch_size / N`` samples a step.

    Raises:
        ValueError: ``--balance-parts`` on a corpus with one part; a bad ``--part-share``.
    """

    def __init__(self, train_set: ExampleDataset, cfg: TrainConfig, world: World):
        self.train_set, self.cfg, self.world = train_set, cfg, world
        self.batch_size = cfg.batch_size // world.size  # this process's share of the global batch
        self.by_part, self.shares = part_draw(train_set.examples, cfg.balance_parts, cfg.part_share)
        size = sum(part_quotas(self.by_part, self.shares).values()) if self.by_part else len(train_set)
        self.sampler = (GlobalBatchSampler(range(size), world.size, world.rank, shuffle=True,  # type: ignore[arg-type]
                                           seed=cfg.seed * 1000) if world.distributed else None)
        self.steps = math.ceil((len(self.sampler) if self.sampler is not None else size) / self.batch_size)

    def epoch_seed(self, epoch: int) -> int:
        """The epoch's seed: its shuffle, its balanced draw, its modality dropout and augmentation."""
        return self.cfg.seed * 1000 + epoch

    def loader(self, epoch: int) -> DataLoader:
        seed = self.epoch_seed(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)  # shuffles with the epoch's seed, like the single-process loader
            torch.manual_seed(seed + 1_000_003 * (self.world.rank + 1))  # layer dropout: per rank, resumable
        data: Dataset = (self.train_set if self.by_part is None
                         else Subset(self.train_set, balanced_indices(self.by_part, seed, self.shares)))
        return make_loader(data, self.batch_size, True, seed, self.cfg.num_workers, self.sampler)


def _quiet(*args: Any, **kwargs: Any) -> None:
    """The log of ranks other than 0."""
