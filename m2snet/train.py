"""Training, readable top to bottom: ``python -m m2snet train CONFIG.yaml [key=value ...]``.

Defaults follow the reference recipe (the authors' training setup): SGD with Nesterov momentum 0.9,
weight decay 5e-4, batch 16, peak learning rate 0.05 on a triangular schedule over epochs,
random flips and rotations, each batch resized to one of 224..352, structure loss + 0.1 x
LossNet, mixed precision on CUDA. A run folder gets the resolved config, a metrics log and
self-describing checkpoints last.pt / best.pt (best by validation Dice at 0.5).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

import m2snet
from m2snet import distributed
from m2snet.checkpoint import IMAGENET, initialize_from
from m2snet.data import SegmentationFolder
from m2snet.losses import build_lossnet, multiclass_loss, structure_loss
from m2snet.files import write_text
from m2snet.preprocess import normalize
from m2snet.train_config import ConfigError, DataConfig, TrainConfig, learning_rate, load_config
from m2snet.train_state import end_of_epoch, resume_state, set_rng_state

__all__ = ["ConfigError", "DataConfig", "TrainConfig", "learning_rate", "load_config", "train",
           "validate"]

log = logging.getLogger("m2snet.train")


def _normalize(images: torch.Tensor) -> torch.Tensor:
    return normalize(images, IMAGENET)  # what the checkpoint will say it was trained with


@torch.no_grad()
def validate(model, loader, device) -> float:
    """Binary: mean per-image Dice of the mask at probability 0.5 (1 when both are empty).
    Multi-class: mean over images of the Dice of each foreground class present in the
    prediction or the truth."""
    model.eval()
    scores = []
    for images, masks in loader:
        logits = model(_normalize(images.to(device)))
        if logits.shape[1] == 1:
            pred, gt = torch.sigmoid(logits) > 0.5, masks.to(device) > 0.5
        else:
            labels = masks.to(device)[:, 0].long()
            pred = F.one_hot(logits.argmax(dim=1), logits.shape[1])[..., 1:].permute(0, 3, 1, 2)
            gt = F.one_hot(labels, logits.shape[1])[..., 1:].permute(0, 3, 1, 2)
            pred, gt = pred.bool(), gt.bool()
        inter = (pred & gt).sum(dim=(2, 3)).float()
        total = (pred.sum(dim=(2, 3)) + gt.sum(dim=(2, 3))).float()
        dice = torch.where(total > 0, 2 * inter / total.clamp(min=1), torch.nan)
        per_image = dice.nanmean(dim=1)
        scores += torch.nan_to_num(per_image, nan=1.0).tolist()
    return float(np.mean(scores))


def train(config: TrainConfig, out: Path, progress: bool = True, resume: bool = False,
          stop_after: int | None = None) -> dict:
    """Train into ``out``. ``resume`` continues the run in ``out`` after its last finished
    epoch (same config; ``epochs`` may grow). ``stop_after`` ends this invocation after that
    many epochs (the run stays resumable)."""

    if not config.data.train:
        raise ConfigError("data.train is not set (a folder with images/ and masks/)")
    ctx = distributed.setup()
    try:
        return _train(config, out, progress, resume, stop_after, ctx)
    finally:
        distributed.teardown(ctx)


def _train(config: TrainConfig, out: Path, progress: bool, resume: bool,
           stop_after: int | None, ctx: distributed.Context) -> dict:
    random.seed(config.seed)  # the same on every process: one multi-scale size per step
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    state = resume_state(config, out) if resume else None
    _prepare_run_folder(config, out, resume, ctx)
    run = _Run.build(config, ctx, state)
    start, best, history, first = time.monotonic(), -1.0, [], 0
    if state is not None:
        run.optimizer.load_state_dict(state["optimizer"])
        run.scaler.load_state_dict(state["scaler"])
        best, history, first = state["best"], state["history"], state["epoch"]
        set_rng_state(state["rng"])
        if ctx.main:
            log.info("resuming %s after epoch %d of %d", out, first, config.epochs)
    deadline = start + config.max_minutes * 60 if config.max_minutes > 0 else None
    last = config.epochs if stop_after is None else min(config.epochs, first + stop_after)
    for epoch in range(first, last):
        losses, lr, stopped = run.epoch(epoch, deadline, progress)
        if config.bn_recalibrate > 0 and (stopped or epoch + 1 == config.epochs):
            recalibrate_batchnorm(run.net, config, ctx.device, run.layout, ctx.world)
        record = {"epoch": epoch + 1, "lr": lr,
                  "loss": distributed.mean(ctx, float(np.mean(losses))),
                  "minutes": (time.monotonic() - start) / 60}
        if run.val_loader is not None:
            record["val_dice"] = validate(run.net, run.val_loader, ctx.device)
        history.append(record)
        if ctx.main:
            best = end_of_epoch(config, out, record, best, history, run.net, run.optimizer,
                                 run.scaler)
        distributed.barrier(ctx)
        if stopped:
            if ctx.main:
                log.info("stopping: max_minutes=%g reached", config.max_minutes)
            break
    if ctx.active:
        # parameters only: BatchNorm statistics are per process (DDP broadcasts process 0's
        # at each forward; process 0's are the ones saved)
        digest = sum(float(p.detach().double().sum()) for p in run.net.parameters())
        log.info("process %d of %d: parameter checksum %.12e", ctx.rank, ctx.world, digest)
    return {"history": history, "best": best, "out": str(out)}


def _prepare_run_folder(config: TrainConfig, out: Path, resume: bool,
                        ctx: distributed.Context) -> None:
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "config.yaml", yaml.safe_dump(dataclasses.asdict(config),
                                                       sort_keys=False))
        if not resume:
            (out / "metrics.jsonl").unlink(missing_ok=True)
    if config.batch_size % ctx.world:
        raise ConfigError(f"batch_size {config.batch_size} does not split over {ctx.world} "
                          f"processes")


def _loaders(config: TrainConfig, ctx: distributed.Context):
    """(training set, its sampler or None, its loader, the validation loader or None)."""
    train_set = SegmentationFolder(config.data.train, config.input_size, augment=True)
    sampler = DistributedSampler(train_set, ctx.world, ctx.rank, shuffle=True, seed=config.seed,
                                 drop_last=True) if ctx.active else None
    loader = DataLoader(train_set, batch_size=config.batch_size // ctx.world,
                        shuffle=sampler is None, sampler=sampler, drop_last=True,
                        num_workers=config.workers, persistent_workers=config.workers > 0)
    val_loader = None
    if config.data.val and ctx.main:
        val_set = SegmentationFolder(config.data.val, config.input_size, augment=False)
        val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=0)
    if len(loader) == 0:
        raise ConfigError(f"data.train has {len(train_set)} images, fewer than one batch "
                          f"of {config.batch_size}")
    if train_set.num_classes != config.num_classes:
        raise ConfigError(f"data.train ({train_set.samples.layout} layout) has "
                          f"{train_set.num_classes} class(es) but num_classes="
                          f"{config.num_classes}")
    return train_set, sampler, loader, val_loader


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               nesterov=True, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    raise ConfigError(f"optimizer {config.optimizer!r} is not sgd or adamw")


@dataclasses.dataclass
class _Run:
    """Everything one training run steps: the network (``model`` is its DDP wrapper when
    distributed), data, loss, optimizer and gradient scaler."""
    config: TrainConfig
    ctx: distributed.Context
    net: torch.nn.Module
    model: torch.nn.Module
    layout: torch.memory_format
    sampler: object
    loader: DataLoader
    val_loader: DataLoader | None
    lossnet: torch.nn.Module | None
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler

    @classmethod
    def build(cls, config: TrainConfig, ctx: distributed.Context, state: dict | None) -> "_Run":
        device = ctx.device
        layout = torch.channels_last if config.channels_last else torch.contiguous_format
        net = m2snet.create_model(config.arch, config.backbone, config.num_classes,
                                  width=config.width, pretrained_backbone=config.pretrained_backbone
                                  ).to(device, memory_format=layout)
        train_set, sampler, loader, val_loader = _loaders(config, ctx)
        if config.num_classes > 1 and config.lossnet != "off":
            log.info("lossnet=%s ignored: LossNet compares binary masks", config.lossnet)
        lossnet = None if config.num_classes > 1 else build_lossnet(config.lossnet)
        lossnet = lossnet.to(device) if lossnet is not None else None
        if state is not None:
            net.load_state_dict(state["model"])
        elif config.init:  # fine-tuning
            log.info("initialized from %s", initialize_from(net, config.init))
        model = net
        if ctx.active:
            if device.type == "cuda":
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            model = DistributedDataParallel(model, device_ids=[device.index]
                                            if device.type == "cuda" else None)
            net = model.module
        optimizer = _optimizer(config, model)
        scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
        if ctx.main:
            log.info("training %s on %d images (%s%s), %d epochs",
                     m2snet.checkpoint.describe(net), len(train_set), device,
                     f", {ctx.world} processes" if ctx.active else "", config.epochs)
        return cls(config, ctx, net, model, layout, sampler, loader, val_loader, lossnet,
                   optimizer, scaler)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def epoch(self, epoch: int, deadline: float | None, progress: bool
              ) -> tuple[list[float], float, bool]:
        """One pass over the data: (losses, last learning rate, stopped by the deadline)."""
        from tqdm import tqdm
        config = self.config
        lr = learning_rate(config, epoch)
        self.set_lr(lr)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        self.model.train()
        losses = []
        bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{config.epochs}",
                   disable=not progress or not self.ctx.main, leave=False)
        for step, (images, masks) in enumerate(bar):
            if config.schedule == "cosine":
                lr = learning_rate(config, epoch + step / len(self.loader))
                self.set_lr(lr)
            losses.append(self.step(images, masks, random.choice(config.scales)))
            bar.set_postfix(loss=f"{np.mean(losses):.3f}", lr=f"{lr:.4f}")
            # every process must leave the epoch at the same step (collectives would hang)
            if deadline and distributed.any_true(self.ctx, time.monotonic() > deadline):
                return losses, lr, True
        return losses, lr, False

    def step(self, images: torch.Tensor, masks: torch.Tensor, size: int) -> float:
        """One optimizer step on a batch resized to ``size``; returns the loss."""
        device, multiclass = self.ctx.device, self.config.num_classes > 1
        x = F.interpolate(_normalize(images.to(device)), size=(size, size),
                          mode="bilinear", align_corners=False).contiguous(memory_format=self.layout)
        if multiclass:
            y = F.interpolate(masks.to(device).float(), size=(size, size),
                              mode="nearest")[:, 0].long()
        else:
            y = (F.interpolate(masks.to(device), size=(size, size), mode="bilinear",
                               align_corners=False) > 0.5).float()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            logits = self.model(x)
            loss = multiclass_loss(logits.float(), y) if multiclass else \
                structure_loss(logits.float(), y)
            if self.lossnet is not None:
                loss = loss + self.config.lossnet_weight * self.lossnet(
                    torch.sigmoid(logits.float()), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


@torch.no_grad()
def recalibrate_batchnorm(net, config: TrainConfig, device, layout, world: int = 1) -> None:
    """Replace BatchNorm running statistics by their plain average over ``bn_recalibrate``
    un-augmented batches at the inference size ("precise BN"). The running averages of a
    short, multi-scale run lag behind the weights and mix sizes the model never sees at
    inference; on the phantom demo model this raised mDice from 0.807 to 0.816."""
    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    data = SegmentationFolder(config.data.train, config.input_size, augment=False)
    loader = DataLoader(data, batch_size=max(1, config.batch_size // world),
                        shuffle=True, generator=torch.Generator().manual_seed(config.seed))
    net.train()
    for step, (images, _) in enumerate(loader):
        if step >= config.bn_recalibrate:
            break
        net(_normalize(images.to(device)).contiguous(memory_format=layout))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    log.info("BatchNorm statistics re-estimated over %d batches at %d px",
             min(step + 1, config.bn_recalibrate), config.input_size)

