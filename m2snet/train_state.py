"""A training run's resumable state and what is written at the end of each epoch: the
metrics line, last/best self-describing checkpoints, and optimizer, scaler and random
generator states (so that a resumed run equals an uninterrupted one)."""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from pathlib import Path

import numpy as np
import torch

from m2snet.checkpoint import IMAGENET, save_checkpoint
from m2snet.files import atomic_path
from m2snet.train_config import ConfigError, TrainConfig

log = logging.getLogger("m2snet.train")


STATE = "state.pt"  # optimizer, scaler, RNG states and history: what --resume needs


def save_state(out: Path, **state) -> None:
    with atomic_path(out / STATE) as partial:
        torch.save(state, partial)


def rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
            "python_version": random.getstate()[0], "python_gauss": random.getstate()[2],
            "numpy": torch.from_numpy(keys.astype(np.int64)), "numpy_pos": pos,
            "numpy_gauss": (has_gauss, cached)}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"],
                         *state["numpy_gauss"]))


def resume_state(config: TrainConfig, out: Path) -> dict:
    path = out / STATE
    if not path.is_file():
        raise ConfigError(f"{out}: nothing to resume (no {STATE}; it is written after each "
                          f"epoch)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    saved, now = state["config"], dataclasses.asdict(config)
    changeable = {"epochs", "max_minutes", "workers"}
    changed = [k for k in now if k not in changeable and now[k] != saved.get(k)]
    if changed:
        raise ConfigError(f"cannot resume {out} with a different {', '.join(changed)} "
                          f"(only {', '.join(sorted(changeable))} may change)")
    return state


def end_of_epoch(config, out, record, best, history, net, optimizer, scaler) -> float:
    """Process 0: log the epoch, write last/best checkpoints and the resumable state."""
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    log.info("epoch %d: %s", record["epoch"], ", ".join(
        f"{k} {v:.4g}" for k, v in record.items() if k != "epoch"))
    net.eval()
    extra = {"epoch": record["epoch"], "loss": record["loss"]}
    if "val_dice" in record:
        extra["val_dice"] = record["val_dice"]
    save_checkpoint(net, out / "last.pt", input_size=config.input_size,
                    normalization=IMAGENET, extra=extra)
    score = record.get("val_dice", -record["loss"])
    if score > best:
        best = score
        save_checkpoint(net, out / "best.pt", input_size=config.input_size,
                        normalization=IMAGENET, extra=extra)
    save_state(out, config=dataclasses.asdict(config), epoch=record["epoch"], best=best,
                history=history, model=net.state_dict(), optimizer=optimizer.state_dict(),
                scaler=scaler.state_dict(), rng=rng_state())
    return best
