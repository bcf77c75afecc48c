"""Where compiled engines live on disk, and the key that says when one can be reused.

An engine is only valid for the exact weights, GPU, library versions, input shape and
precision it was built for; the key hashes all of them, so a change of any one builds anew.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from kernels.cache_folder import cache_root

log = logging.getLogger("realtime.engine")

# The user's own choice of torch.compile's cache, as it stood before anything in this process
# compiled: torch writes its default into os.environ the first time it compiles, and that
# value must not be taken for a choice of the user's.
_USER_INDUCTOR_DIR = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or None


def default_dir() -> Path:
    return cache_root() / "engines"


def writable(directory: Path, user: str) -> bool:
    """Whether ``user``'s compiled artifacts can be written under ``directory`` (created if
    need be). The cache only saves time: when it cannot be written, one warning says so and
    the caller goes on without it."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        usable = os.access(directory, os.W_OK)
    except OSError:
        usable = False
    if not usable:
        log.warning("%s: %s cannot be written; compiled code is not kept for the next start",
                    user, directory)
    return usable


def use_for_torch_compile() -> Path | None:
    """Point torch.compile's on-disk cache (compiled graphs, autotuning) under ours so that a
    second start reuses the first one's work. Precedence: TORCHINDUCTOR_CACHE_DIR as the user
    set it before start-up, else $M2SNET_CACHE/inductor (or the default cache root's), else,
    when that cannot be written, torch's own default (None is returned)."""
    if _USER_INDUCTOR_DIR is not None:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = _USER_INDUCTOR_DIR
        return Path(_USER_INDUCTOR_DIR)
    ours = cache_root() / "inductor"
    if not writable(ours, "torch.compile"):
        os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)  # torch's default, not an old choice
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(ours)
    return ours


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    versions = {"torch": torch.__version__, "cuda": str(torch.version.cuda)}
    try:
        import torch_tensorrt
        versions["torch_tensorrt"] = torch_tensorrt.__version__
        import tensorrt
        versions["tensorrt"] = tensorrt.__version__
    except Exception:  # absent, or no driver: such a machine builds no engine anyway
        pass
    return versions


def cache_key(weights_sha256: str, gpu_name: str, versions: dict[str, str],
              shape: tuple[int, ...], precision: str, backend: str = "tensorrt") -> str:
    payload = json.dumps({"weights": weights_sha256, "gpu": gpu_name, "versions": versions,
                          "shape": list(shape), "precision": precision, "backend": backend},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def engine_file(backend: str, weights: Path, identity: tuple[str, dict, tuple], precision: str,
                suffix: str, directory: Path | None = None) -> Path:
    """Where ``backend``'s artifact for these weights lives. ``identity`` is what the backend
    says its artifact depends on besides the weights and precision: (device name, library
    versions, input shape) - a TensorRT engine is for one GPU and one shape, OpenVINO's traced
    network for any CPU and any batch."""
    device, versions, shape = identity
    key = cache_key(file_sha256(weights), device, versions, shape, precision, backend=backend)
    return engine_path(directory or default_dir(), key, shape, precision, suffix)


def engine_path(directory: Path, key: str, shape: tuple[int, ...], precision: str,
                suffix: str = ".ep") -> Path:
    dims = "x".join(str(d) for d in shape)
    return directory / f"m2snet-{dims}-{precision}-{key[:16]}{suffix}"
