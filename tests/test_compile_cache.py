"""Where torch.compile's cache goes: M2SNET_CACHE governs it whatever ran first.

Building any backend makes torch write its default cache folder into TORCHINDUCTOR_CACHE_DIR
(the cpu backend's first call sets $TMPDIR/torchinductor_<user>); that must not be taken for
the user's choice. Each case runs in a fresh process, since the precedence depends on the
environment at start-up; TMPDIR points at a folder of the test's so that anything written to
torch's default place is seen.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow

SCRIPT = """
import json, os, sys
import numpy as np
from realtime.engine import Segmenter, cache
frame = np.zeros((64, 64, 3), np.uint8)
for step in sys.argv[2:]:
    if step == "probe":
        print(json.dumps({"chosen": str(cache.use_for_torch_compile())}))
    else:
        Segmenter(sys.argv[1], backend=step)(frame)
print(json.dumps({"env": os.environ.get("TORCHINDUCTOR_CACHE_DIR")}))
"""


def _run(weights, steps: list[str], env_extra: dict) -> list[dict]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": os.environ.get("HOME", "/tmp"),
           **env_extra}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(weights), *steps],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def _files(folder) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def test_m2snet_cache_governs_compiled_code_in_either_order(tiny_weights, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"M2SNET_CACHE": str(tmp_path / "cache"), "TMPDIR": str(temp)}
    ours = tmp_path / "cache" / "inductor"
    [first] = _run(tiny_weights, ["cpu", "compile"], env)
    assert first["env"] == str(ours)
    written = _files(ours)
    assert written > 0  # compiled graphs landed under M2SNET_CACHE ...
    [second] = _run(tiny_weights, ["compile", "cpu"], env)  # ... where a second start finds them
    assert second["env"] == str(ours)
    # torch keeps its precompiled C++ headers under its default folder whatever the setting
    # (a path fixed when torch._inductor is imported); compiled graphs must not go there
    for folder in temp.glob("torchinductor*"):
        assert {p.name for p in folder.iterdir()} <= {"precompiled_headers"}


def test_a_folder_the_user_chose_before_start_is_kept(tiny_weights, tmp_path):
    user = tmp_path / "mine"
    probe, end = _run(tiny_weights, ["cpu", "probe"], {"M2SNET_CACHE": str(tmp_path / "cache"),
                                                       "TORCHINDUCTOR_CACHE_DIR": str(user)})
    assert probe["chosen"] == end["env"] == str(user)
    assert not (tmp_path / "cache" / "inductor").exists()
