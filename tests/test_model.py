"""The network: names, shapes and forward pass against the spec and the dense formulation."""

from __future__ import annotations

import pytest
import torch

import m2snet
from m2snet.calibration import calibrate
from helpers.spec import spec_entries
from spec_reference import forward as spec_forward


@pytest.mark.parametrize("arch", ["m2snet", "msnet"])
def test_parameter_names_and_shapes_are_the_authors(arch):
    model = m2snet.create_model(arch)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: s for k, s in spec_entries(arch) if not k.startswith("resnet.fc.")}
    assert ours == theirs


@pytest.mark.parametrize("size", [(64, 64), (96, 160), (128, 96)])
def test_factored_and_kernel_equal_dense_in_float64(float64_m2snet, size):
    model = float64_m2snet
    x = torch.randn(2, 3, *size, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    outputs = {}
    with torch.no_grad():
        for impl in ("dense", "factored", "kernel"):
            model.impl = impl
            outputs[impl] = model(x)
    model.impl = "factored"
    dense = outputs["dense"]
    assert dense.shape == (2, 1, *size)
    assert dense.abs().max() > 1.0  # a non-trivial output, not all zeros
    for impl in ("factored", "kernel"):
        # float64 summation-order differences only: ~1e-13 of the output scale.
        torch.testing.assert_close(outputs[impl], dense, rtol=1e-10, atol=1e-10 * dense.abs().max())


def test_forward_equals_independent_spec_implementation(float64_m2snet):
    model = float64_m2snet
    x = torch.randn(1, 3, 96, 128, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    state = model.state_dict()
    with torch.no_grad():
        expected = spec_forward(state, model.features(x), x)
        got = model(x)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10 * expected.abs().max())


def test_msnet_equals_spec_implementation():
    torch.manual_seed(3)
    model = m2snet.create_model("msnet").double()
    x = torch.randn(1, 3, 64, 96, dtype=torch.float64)
    calibrate(model, x)
    with torch.no_grad():
        expected = spec_forward(model.state_dict(), model.features(x), x)
        got = model(x)
    assert not hasattr(model, "conv_3")
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10 * expected.abs().max())


def test_float32_factored_close_to_dense(float64_m2snet):
    model = m2snet.create_model("m2snet")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in float64_m2snet.state_dict().items()})
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        factored = model(x)
        model.impl = "dense"
        dense = model(x)
    # float32 through ~70 layers: agreement to ~1e-5 of the output range.
    torch.testing.assert_close(factored, dense, rtol=1e-4, atol=1e-4 * dense.abs().max())


def test_training_mode_gradients_and_running_stats_match_dense():
    torch.manual_seed(5)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    results = {}
    for impl in ("dense", "factored"):
        torch.manual_seed(6)
        model = m2snet.create_model("m2snet", impl=impl).double().train()
        loss = model(x).sigmoid().mean()
        loss.backward()
        results[impl] = (model.x5_x4[0].weight.grad.clone(), model.conv_5.norm.weight.grad.clone(),
                         model.conv_3.norm.running_mean.clone(), model.conv_3.norm.running_var.clone())
    for got, expected in zip(results["factored"], results["dense"]):
        torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("backbone", ["mobilenetv3_large_100", "resnet18"])
def test_light_backbones_build_from_their_channels(backbone):
    model = m2snet.create_model("m2snet", backbone=backbone, width=24)
    assert hasattr(model, "backbone") and not hasattr(model, "resnet")
    assert model.x1_dem_1 is not None  # their first level is not 24 channels wide
    assert model.x5_dem_1[0].in_channels == model.encoder_spec.channels[-1]
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        y = model(x)
        model.impl = "dense"
        y_dense = model(x)
    assert y.shape == (2, 1, 96, 128)
    torch.testing.assert_close(y, y_dense, rtol=1e-4, atol=1e-4 * y_dense.abs().max())


def test_light_variant_is_registered():
    config = m2snet.VARIANTS["m2snet-light"]
    model = m2snet.create_model(**config)
    assert model.backbone_name == config["backbone"] and model.width == config["width"]
    full = sum(p.numel() for p in m2snet.create_model().parameters())
    light = sum(p.numel() for p in model.parameters())
    assert light * 5 < full


def test_num_classes_and_width_shape_the_head():
    model = m2snet.create_model("m2snet", num_classes=4, width=32)
    assert model.output1[0].weight.shape == (4, 32, 3, 3)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 4, 64, 64)


@pytest.mark.parametrize("kwargs, message", [
    (dict(arch="unet"), "unknown arch 'unet'; choose one of m2snet, msnet"),
    (dict(backbone="resnet_nonexistent"), "unknown backbone 'resnet_nonexistent'"),
    (dict(impl="fast"), "impl='fast' is not one of factored, dense, kernel"),
])
def test_bad_model_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        m2snet.create_model(**kwargs)


def test_input_size_not_multiple_of_32_is_explained():
    model = m2snet.create_model("msnet", backbone="resnet18", width=8)
    with pytest.raises(ValueError, match="multiples of 32, got 100x96"):
        model(torch.randn(1, 3, 100, 96))


@pytest.mark.parametrize("backbone", ["res2net50d", "resnet18"])
def test_backbone_levels_are_wired_as_timms_own_network_computes_them(backbone):
    """The five levels the decoder reads, against timm's own complete network (a fresh
    instance with the same weights) run by its own forward, read off with hooks: x1 after the
    stem's max-pool (stride 4), x2..x5 after layer1..layer4. Independent of how
    m2snet/encoders.py wires them (the spec reference above starts from model.features)."""
    import timm
    torch.manual_seed(5)
    model = m2snet.create_model("m2snet", backbone=backbone, width=8).eval()
    calibrate(model, torch.randn(2, 3, 64, 64))
    encoder = getattr(model, model.encoder_spec.attribute)
    reference = timm.create_model(backbone, pretrained=False).eval()
    weights = encoder.state_dict() if backbone == "res2net50d" else \
        {k.removeprefix("body."): v for k, v in encoder.state_dict().items()}
    missing, unexpected = reference.load_state_dict(weights, strict=False)
    assert not unexpected and all(k.startswith("fc.") for k in missing)  # only the classifier
    seen = {}
    for name in ("maxpool", "layer1", "layer2", "layer3", "layer4"):
        getattr(reference, name).register_forward_hook(
            lambda module, args, out, name=name: seen.__setitem__(name, out))
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        levels = model.features(x)
        reference(x)
    expected = [seen[name] for name in ("maxpool", "layer1", "layer2", "layer3", "layer4")]
    assert [tuple(t.shape[-2:]) for t in levels] == [(24, 32), (24, 32), (12, 16), (6, 8), (3, 4)]
    for got, want in zip(levels, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
