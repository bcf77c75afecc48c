"""Weights files: the authors' layout, our self-describing format, and every bad file."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import pytest
import torch

import m2snet
from helpers.spec import authors_state_dict
from m2snet import CheckpointError


def _save_authors_file(path, arch="m2snet", prefix="module.", extra=None):
    state = {prefix + k: v for k, v in authors_state_dict(arch).items()}
    state.update(extra or {})
    torch.save(state, path)
    return state


@pytest.mark.parametrize("arch", ["m2snet", "msnet"])
@pytest.mark.parametrize("prefix", ["module.", ""])
def test_authors_file_loads_strictly_and_exactly(tmp_path, arch, prefix):
    path = tmp_path / f"{arch}.pth"
    saved = _save_authors_file(path, arch, prefix)
    model = m2snet.create_model(arch, weights=path)
    loaded = model.state_dict()
    for name, tensor in saved.items():
        name = name[len(prefix):]
        if name.startswith("resnet.fc."):
            assert name not in loaded
        else:
            assert torch.equal(loaded[name], tensor), name
    assert not model.training


def test_authors_file_with_explicit_fixed_convolution_loads(tmp_path):
    path = tmp_path / "m2snet.pth"
    _save_authors_file(path, extra={"module.conv_3.weight": torch.ones(64, 64, 3, 3),
                                    "module.conv_3.bias": torch.zeros(64),
                                    "module.conv_5.weight": torch.ones(64, 64, 5, 5),
                                    "module.conv_5.bias": torch.zeros(64)})
    model, ckpt = m2snet.load_model(path)
    assert ckpt.authors and ckpt.config == m2snet.ModelConfig("m2snet", "res2net50d", 1, 64)
    assert ckpt.normalization == m2snet.IMAGENET and ckpt.input_size == 352


def test_fixed_convolution_that_is_not_ones_is_refused(tmp_path):
    path = tmp_path / "m2snet.pth"
    weight = torch.ones(64, 64, 5, 5)
    weight[0, 0, 0, 0] = 2.0
    _save_authors_file(path, extra={"module.conv_5.weight": weight})
    with pytest.raises(CheckpointError, match="conv_5.weight must be all 1"):
        m2snet.create_model("m2snet", weights=path)


def test_authors_file_wrapped_in_state_dict_key(tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": authors_state_dict("msnet"), "epoch": 49}, path)
    _, ckpt = m2snet.load_model(path)
    assert ckpt.config.arch == "msnet"


def test_wrong_architecture_names_the_entries(tmp_path):
    path = tmp_path / "msnet.pth"
    _save_authors_file(path, "msnet")
    with pytest.raises(CheckpointError) as err:
        m2snet.create_model("m2snet", weights=path)
    message = str(err.value)
    assert "\n" not in message
    assert "arch is 'msnet', not 'm2snet'" in message


def test_missing_unexpected_and_misshaped_entries_are_listed(tmp_path):
    state = authors_state_dict("m2snet")
    del state["level1.0.bias"]
    state["extra_head.weight"] = torch.zeros(3)
    state["output2.0.weight"] = torch.zeros(64, 64, 1, 1)
    path = tmp_path / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        m2snet.create_model("m2snet", weights=path)
    message = str(err.value)
    assert message.startswith(f"{path}: does not fit M2SNet(res2net50d, 1 class(es), width 64)")
    assert "missing 1 entries (level1.0.bias)" in message
    assert "unexpected 1 entries (extra_head.weight)" in message
    assert "output2.0.weight (64, 64, 1, 1) vs (64, 64, 3, 3)" in message
    assert "\n" not in message


def test_light_checkpoint_into_authors_model_is_refused(tmp_path):
    light = m2snet.create_model(**m2snet.VARIANTS["m2snet-light"])
    path = m2snet.save_checkpoint(light, tmp_path / "light.pt")
    with pytest.raises(CheckpointError, match="backbone is 'mobilenetv3_large_100', not 'res2net50d'"):
        m2snet.create_model("m2snet", weights=path)


def test_own_checkpoint_round_trip_is_self_describing(tmp_path):
    torch.manual_seed(0)
    model = m2snet.create_model("m2snet", backbone="resnet18", num_classes=4, width=16)
    norm = m2snet.AUTHORS_TRAINING
    path = m2snet.save_checkpoint(model, tmp_path / "sub" / "ours.pt", input_size=256,
                                  normalization=norm, extra={"epoch": 3})
    assert os.listdir(path.parent) == ["ours.pt"]  # no temporary file left behind
    loaded, ckpt = m2snet.load_model(path)
    assert ckpt.config == m2snet.ModelConfig("m2snet", "resnet18", 4, 16)
    assert (ckpt.input_size, ckpt.normalization, ckpt.extra) == (256, norm, {"epoch": 3})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=f"^{path}: not a PyTorch checkpoint"):
        m2snet.load_model(path)


def test_truncated_file(tmp_path):
    good = tmp_path / "good.pth"
    _save_authors_file(good, "msnet")
    data = good.read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"^{path}: truncated or corrupt checkpoint archive"):
        m2snet.load_model(path)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["zip", "raw"])
def test_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path, container):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    payload = {"x5_x4.0.weight": torch.zeros(1), "hook": _RunsCode(marker)}
    if container == "zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps({"hook": payload["hook"]}, protocol=2))
    assert zipfile.is_zipfile(path) == (container == "zip")
    with pytest.raises(CheckpointError) as err:
        m2snet.load_model(path)
    assert not marker.exists()
    assert str(err.value).startswith(f"{path}: ")
    assert "\n" not in str(err.value)
    assert "refused: the file holds Python objects or code" in str(err.value)
    assert "system" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.pth: no such file"):
        m2snet.load_model(tmp_path / "nope.pth")


def test_not_a_state_dict(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match="not a model checkpoint .*found list"):
        m2snet.load_model(path)


def test_unknown_future_format(tmp_path):
    path = tmp_path / "future.pt"
    buffer = io.BytesIO()
    torch.save({"format": "m2snet-rt/99", "state_dict": {}}, buffer)
    path.write_bytes(buffer.getvalue())
    with pytest.raises(CheckpointError, match="unknown checkpoint format 'm2snet-rt/99'"):
        m2snet.load_model(path)


def test_half_checkpoint_is_smaller_and_loads_as_float32(tmp_path):
    torch.manual_seed(0)
    model = m2snet.create_model("m2snet", backbone="resnet18", width=16)
    with torch.no_grad():
        model.conv_5.norm.running_var.fill_(4.0e6)  # beyond float16's range
    full = m2snet.save_checkpoint(model, tmp_path / "full.pt")
    half = m2snet.save_checkpoint(model, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded, ckpt = m2snet.load_model(half)
    assert ckpt.state_dict["x5_x4.0.weight"].dtype == torch.float16
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    assert loaded.conv_5.norm.running_var[0] == 4.0e6
    weight = model.x5_x4[0].weight
    torch.testing.assert_close(loaded.x5_x4[0].weight, weight.half().float())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load(tmp_path, bad):
    state = authors_state_dict("m2snet")
    state["resnet.layer1.0.conv1.weight"][0, 0, 0, 0] = bad
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"broken.pth: 1 entries hold NaN or infinite "
                                              r"values \(resnet.layer1.0.conv1.weight\)"):
        m2snet.create_model("m2snet", weights=path)
