"""NBN layer, converters and heads, checked against the formula written out independently here."""
import copy
import io
import math
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
import torchvision
from torch import nn

from nbn_tutorial.errors import UserError
from nbn_tutorial.nn import (
    LogitRectificationHead,
    NormalizedBatchNorm2d,
    NormalizedSyncBatchNorm,
    NormedLinear,
    alpha_parameters,
    convert_sync_batchnorm,
    convert_to_nbn,
    nbn_layers,
    normalized_affine,
)

C = 6


def reference_nbn(x, gamma, beta, alpha, mean=None, var=None, eps=1e-5):
    """The NBN formula by hand: batch (or given) statistics, w = γ/(√Σγ² + 1e-6)·α, b likewise."""
    if mean is None:
        mean = x.mean(dim=(0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))  # biased, as batch norm uses
    w = gamma * alpha / (torch.sqrt((gamma ** 2).sum()) + 1e-6)
    b = beta * alpha / (torch.sqrt((beta ** 2).sum()) + 1e-6)
    x_hat = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps)
    return x_hat * w[None, :, None, None] + b[None, :, None, None]


def randomized_layer(dtype=torch.float64, alpha=1.7):
    """An NBN layer with non-trivial γ, β, α and running statistics."""
    torch.manual_seed(0)
    layer = NormalizedBatchNorm2d(C, alpha=alpha, dtype=dtype)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(C, dtype=dtype))
        layer.bias.copy_(torch.randn(C, dtype=dtype))
        layer.running_mean.copy_(torch.randn(C, dtype=dtype))
        layer.running_var.copy_(torch.rand(C, dtype=dtype) + 0.5)
    return layer


def small_cnn():
    """Conv-BN stack with BN layers of two widths, plus a BatchNorm1d."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(8))


def test_normalized_affine_matches_formula_and_is_fp32():
    gamma, beta, alpha = torch.randn(5), torch.randn(5), torch.tensor(2.5)
    w, b = normalized_affine(gamma, beta, alpha)
    gamma_norm = math.sqrt(sum(g * g for g in gamma.tolist()))
    beta_norm = math.sqrt(sum(v * v for v in beta.tolist()))
    assert torch.allclose(w, gamma * 2.5 / (gamma_norm + 1e-6), atol=1e-6)
    assert torch.allclose(b, beta * 2.5 / (beta_norm + 1e-6), atol=1e-6)
    w16, b16 = normalized_affine(gamma.bfloat16(), beta.bfloat16(), alpha.bfloat16())
    assert w16.dtype == b16.dtype == torch.float32


def test_normalized_affine_adds_eps_to_the_norm_not_under_the_root():
    gamma = torch.tensor([3e-6, 4e-6], dtype=torch.float64)  # ‖γ‖ = 5e-6, comparable to eps
    w, b = normalized_affine(gamma, -gamma, torch.tensor(2.0, dtype=torch.float64))
    assert torch.allclose(w, gamma / 6e-6 * 2.0, rtol=1e-12)
    assert torch.allclose(b, -w, rtol=1e-12)


def test_normalized_affine_stays_fp32_under_autocast():
    gamma, beta, alpha = torch.randn(64), torch.randn(64), torch.tensor(1.3)
    expected = normalized_affine(gamma, beta, alpha)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = normalized_affine(gamma, beta, alpha)
    for e, g in zip(expected, got):
        assert g.dtype == torch.float32
        assert torch.equal(e, g)


@pytest.mark.parametrize("training", [True, False])
def test_forward_and_gradients_match_formula(training):
    layer = randomized_layer().train(training)
    x = torch.randn(4, C, 5, 5, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(4, C, 5, 5, dtype=torch.float64)
    gamma, beta, alpha = (p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias, layer.alpha))
    x_ref = x.detach().clone().requires_grad_()
    stats = {} if training else {"mean": layer.running_mean.clone(), "var": layer.running_var.clone()}

    out = layer(x)
    expected = reference_nbn(x_ref, gamma, beta, alpha, **stats)
    assert torch.allclose(out, expected, atol=1e-6, rtol=0)

    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    for got, want in [(layer.weight.grad, gamma.grad), (layer.bias.grad, beta.grad),
                      (layer.alpha.grad, alpha.grad), (x.grad, x_ref.grad)]:
        assert torch.allclose(got, want, atol=1e-6, rtol=0)
    assert layer.alpha.grad.abs() > 0


def test_float32_layer_matches_formula():
    layer = randomized_layer(dtype=torch.float32)
    x = torch.randn(4, C, 5, 5)
    expected = reference_nbn(x.double(), layer.weight.double(), layer.bias.double(), layer.alpha.double())
    assert torch.allclose(layer(x).double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("momentum, track", [(0.1, True), (None, True), (0.1, False)])
def test_running_statistics_follow_batchnorm(momentum, track):
    nbn = NormalizedBatchNorm2d(C, momentum=momentum, alpha=math.sqrt(C), track_running_stats=track)
    bn = nn.BatchNorm2d(C, momentum=momentum, track_running_stats=track)
    for _ in range(3):
        x = torch.randn(4, C, 3, 3) * 2 + 1
        nbn(x), bn(x)
    for name, buffer in bn.named_buffers():
        assert torch.allclose(getattr(nbn, name), buffer), name
    if not track:
        assert nbn.running_mean is None
        x = torch.randn(4, C, 3, 3)
        assert torch.allclose(nbn.eval()(x), bn.eval()(x), atol=1e-6)  # eval uses batch statistics


@pytest.mark.parametrize("training", [True, False])
def test_unit_gamma_fresh_layer_equals_fresh_batchnorm(training):
    nbn = NormalizedBatchNorm2d(C, alpha=math.sqrt(C)).train(training)
    bn = nn.BatchNorm2d(C).train(training)
    x = torch.randn(4, C, 5, 5)
    assert torch.allclose(nbn(x), bn(x), atol=1e-6, rtol=0)


def test_unit_gamma_conversion_keeps_fresh_model_function():
    model = small_cnn()
    nbn_model = copy.deepcopy(model)
    convert_to_nbn(nbn_model, where="all", share_alpha=False, alpha_init="unit-gamma")
    assert sorted(p.item() for p in alpha_parameters(nbn_model)) == pytest.approx([2.0, math.sqrt(8), math.sqrt(8)])
    x = torch.randn(4, 3, 6, 6)
    assert torch.allclose(nbn_model(x), model(x), atol=1e-5)
    assert torch.allclose(nbn_model.eval()(x), model.eval()(x), atol=1e-5)


def test_gradient_is_finite_for_zero_beta():
    layer = NormalizedBatchNorm2d(C)  # fresh: β = 0, so ‖β‖ = 0
    layer(torch.randn(4, C, 3, 3)).pow(2).sum().backward()
    for p in layer.parameters():
        assert torch.isfinite(p.grad).all()


def test_channels_last_matches_contiguous():
    layer = randomized_layer(dtype=torch.float32)
    x = torch.randn(4, C, 5, 5)
    x_last = x.detach().clone().to(memory_format=torch.channels_last).requires_grad_()
    x = x.requires_grad_()
    expected = layer(x)
    layer_last = randomized_layer(dtype=torch.float32)
    got = layer_last(x_last)
    assert torch.allclose(got, expected, atol=1e-6)
    expected.pow(2).sum().backward()
    got.pow(2).sum().backward()
    assert torch.allclose(x_last.grad, x.grad, atol=1e-5)
    assert torch.allclose(layer_last.alpha.grad, layer.alpha.grad, atol=1e-5)


def test_bf16_autocast_forward_is_close_to_fp32():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, C, 3), NormalizedBatchNorm2d(C, alpha=2.0))
    x = torch.randn(4, 3, 8, 8)
    expected = model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = model(x)
    assert got.dtype == torch.bfloat16
    assert torch.allclose(got.float(), expected, atol=0.1)


def test_layer_state_dict_round_trip():
    layer = randomized_layer(dtype=torch.float32)
    layer(torch.randn(4, C, 3, 3))
    assert set(layer.state_dict()) == set(nn.BatchNorm2d(C).state_dict()) | {"alpha"}
    buffer = io.BytesIO()
    torch.save(layer.state_dict(), buffer)
    buffer.seek(0)
    restored = NormalizedBatchNorm2d(C)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    x = torch.randn(4, C, 3, 3)
    assert torch.equal(restored.eval()(x), layer.eval()(x))


def test_batchnorm_state_dict_loads_into_nbn():
    bn = nn.BatchNorm2d(C)
    with torch.no_grad():
        bn.weight.uniform_()
        bn.running_mean.uniform_()
    nbn = NormalizedBatchNorm2d(C)
    missing, unexpected = nbn.load_state_dict(bn.state_dict(), strict=False)
    assert (missing, unexpected) == (["alpha"], [])
    assert torch.equal(nbn.weight, bn.weight) and torch.equal(nbn.running_mean, bn.running_mean)


def test_shared_alpha_is_owned_once_by_the_root():
    model = small_cnn()
    converted = convert_to_nbn(model, where="all")
    assert len(converted) == 3
    assert [name for name, _ in nbn_layers(model)] == ["1", "4", "7"]
    alpha_names = [name for name, _ in model.named_parameters() if "alpha" in name]
    assert alpha_names == ["nbn_alpha"]
    assert [key for key in model.state_dict() if "alpha" in key] == ["nbn_alpha"]
    assert all(layer.alpha is model.nbn_alpha for _, layer in converted)
    assert alpha_parameters(model) == [model.nbn_alpha]
    assert model.nbn_alpha.item() == 1.0


def test_shared_alpha_gradient_sums_layer_contributions():
    shared, separate = small_cnn(), small_cnn()
    convert_to_nbn(shared, where="all", alpha_init=1.5)
    convert_to_nbn(separate, where="all", share_alpha=False, alpha_init=1.5)
    x = torch.randn(4, 3, 6, 6)
    shared(x).pow(2).sum().backward()
    separate(x).pow(2).sum().backward()
    assert len(alpha_parameters(separate)) == 3
    expected = sum(p.grad for p in alpha_parameters(separate))
    assert torch.allclose(shared.nbn_alpha.grad, expected, atol=1e-5)


def test_shared_alpha_survives_deepcopy_to_and_state_dict_loading():
    model = small_cnn()
    convert_to_nbn(model, where="all", alpha_init=0.5)
    clone = copy.deepcopy(model)
    assert clone.nbn_alpha is not model.nbn_alpha
    assert all(layer.alpha is clone.nbn_alpha for _, layer in nbn_layers(clone))

    clone.to(torch.float64)
    assert clone.nbn_alpha.dtype == torch.float64
    assert all(layer.alpha is clone.nbn_alpha for _, layer in nbn_layers(clone))
    clone.float()

    with torch.no_grad():
        model.nbn_alpha.fill_(3.0)
    for assign in (False, True):
        target = copy.deepcopy(clone)
        target.load_state_dict(model.state_dict(), assign=assign)
        assert all(layer.alpha is target.nbn_alpha for _, layer in nbn_layers(target))
        x = torch.randn(2, 3, 6, 6)
        assert torch.equal(target.eval()(x), model.eval()(x))


def test_converted_model_state_dict_round_trip_through_torch_save():
    model = small_cnn()
    convert_to_nbn(model, where="all", alpha_init=2.0)
    model(torch.randn(4, 3, 6, 6))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = small_cnn()
    convert_to_nbn(fresh, where="all")
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    assert fresh.nbn_alpha.item() == 2.0
    x = torch.randn(2, 3, 6, 6)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_conversion_keeps_parameters_and_running_stats():
    model = small_cnn()
    model(torch.randn(4, 3, 6, 6))
    originals = {name: module for name, module in model.named_modules() if isinstance(module, nn.BatchNorm2d)}
    converted = dict(convert_to_nbn(model, where="all"))
    assert converted.keys() == originals.keys()
    for name, layer in converted.items():
        assert model.get_submodule(name) is layer
        assert layer.weight is originals[name].weight and layer.bias is originals[name].bias
        assert layer.running_mean is originals[name].running_mean
        assert layer.num_batches_tracked.item() == 1


def test_predicate_selects_layers():
    model = small_cnn()
    converted = convert_to_nbn(model, where=lambda name, module: module.num_features == 8, share_alpha=False)
    assert [name for name, _ in converted] == ["4", "7"]
    assert isinstance(model[1], nn.BatchNorm2d) and not isinstance(model[1], NormalizedBatchNorm2d)
    assert isinstance(model[10], nn.BatchNorm1d)


@pytest.mark.parametrize("constructor", ["resnet50", "resnext50_32x4d"])
def test_official_placement_on_torchvision_models(constructor):
    model = getattr(torchvision.models, constructor)(weights=None)
    converted = convert_to_nbn(model)
    assert [name for name, _ in converted] == ["layer4.0.bn3", "layer4.0.downsample.1", "layer4.1.bn3", "layer4.2.bn3"]
    assert alpha_parameters(model) == [model.nbn_alpha] and model.nbn_alpha.item() == 1.0
    assert sum("alpha" in name for name, _ in model.named_parameters()) == 1


def test_last_stage_and_all_placements_on_resnet50():
    last_stage = torchvision.models.resnet50(weights=None)
    assert len(convert_to_nbn(last_stage, where="last-stage", share_alpha=False)) == 3 * 3 + 1
    everything = torchvision.models.resnet50(weights=None)
    assert len(convert_to_nbn(everything, where="all", alpha_init=1.0)) == 1 + 3 * 16 + 4


def test_bad_conversion_requests_raise_user_errors():
    with pytest.raises(UserError, match="official, last-stage, all"):
        convert_to_nbn(small_cnn(), where="everywhere")
    with pytest.raises(UserError, match="no ResNet stages"):
        convert_to_nbn(small_cnn(), where="official")
    with pytest.raises(UserError, match="different channel counts"):
        convert_to_nbn(small_cnn(), where="all", alpha_init="unit-gamma")
    with pytest.raises(UserError, match="alpha_init"):
        convert_to_nbn(small_cnn(), where="all", alpha_init="big")
    with pytest.raises(UserError, match="selects no BatchNorm2d"):
        convert_to_nbn(small_cnn(), where=lambda name, module: False)
    model = small_cnn()
    convert_to_nbn(model, where="all")
    with pytest.raises(UserError, match="already has NBN layers"):
        convert_to_nbn(model, where="all")


def nbn_model_with_both_alpha_kinds():
    """Shared α on layers 1 and 4, an owned α on layer 7, and a plain BatchNorm1d."""
    model = small_cnn()
    convert_to_nbn(model, where=lambda name, module: name in ("1", "4"), alpha_init=0.7)
    model[7] = NormalizedBatchNorm2d(8, alpha=1.9)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("training", [True, False])
def test_sync_conversion_keeps_outputs_and_parameters(training):
    model = nbn_model_with_both_alpha_kinds().train(training)
    reference = copy.deepcopy(model)
    parameters_before = [(name, id(p)) for name, p in model.named_parameters()]
    synced = convert_sync_batchnorm(model)
    assert synced is model
    assert [name for name, layer in nbn_layers(synced) if isinstance(layer, NormalizedSyncBatchNorm)] == ["1", "4", "7"]
    assert type(synced[10]) is nn.SyncBatchNorm
    assert [(name, id(p)) for name, p in synced.named_parameters()] == parameters_before
    assert synced[1].alpha is synced.nbn_alpha and synced[7].alpha_is_shared is False
    for _ in range(2):
        x = torch.randn(4, 3, 6, 6)
        assert torch.equal(synced(x), reference(x))
    assert all(torch.equal(a, b) for a, b in zip(synced.buffers(), reference.buffers()))


def test_sync_conversion_gradients_match():
    model = nbn_model_with_both_alpha_kinds()
    reference = copy.deepcopy(model)
    convert_sync_batchnorm(model)
    x = torch.randn(4, 3, 6, 6)
    model(x).pow(2).sum().backward()
    reference(x).pow(2).sum().backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p.grad, q.grad), name


def test_torch_sync_converter_would_lose_nbn():
    """Why convert_sync_batchnorm exists: torch's converter turns NBN into plain SyncBatchNorm."""
    model = nbn_model_with_both_alpha_kinds()
    reference = copy.deepcopy(model)
    plain = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert type(plain[7]) is nn.SyncBatchNorm and not nbn_layers(plain)
    assert "7.alpha" not in dict(plain.named_parameters())
    x = torch.randn(4, 3, 6, 6)
    assert not torch.allclose(plain(x), reference(x), atol=1e-3)


def _ddp_worker(rank: int, port: int) -> None:
    """Each rank starts from a different α; DDP's initial broadcast must reach every layer of rank 1."""
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model = small_cnn()
        convert_to_nbn(model, where="all", alpha_init=1.0 + rank)
        ddp = nn.parallel.DistributedDataParallel(model)
        assert all(layer.alpha is model.nbn_alpha for _, layer in nbn_layers(model))
        assert model.nbn_alpha.item() == 1.0
        ddp(torch.randn(4, 3, 6, 6)).pow(2).sum().backward()
        gathered = [torch.zeros(()) for _ in range(2)]
        dist.all_gather(gathered, model.nbn_alpha.grad)
        assert gathered[0] == gathered[1]  # gradients of the shared α were all-reduced
        del ddp
    finally:
        dist.destroy_process_group()


@pytest.mark.alone
def test_ddp_broadcast_keeps_layers_on_the_shared_alpha():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(port,), nprocs=2)


def compile_test_model():
    model = small_cnn()
    convert_to_nbn(model, where=lambda name, module: name in ("1", "4"), alpha_init=1.3)
    model[7] = NormalizedBatchNorm2d(8, alpha=0.8)
    return model


def test_torch_compile_aot_eager_matches_eager_forward_and_gradients():
    eager = compile_test_model()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model, backend="aot_eager", fullgraph=True)
    x = torch.randn(4, 3, 6, 6)
    expected, got = eager(x), compiled(x)
    assert torch.allclose(got, expected, atol=1e-5)
    expected.pow(2).sum().backward()
    got.pow(2).sum().backward()
    for (name, p), q in zip(eager.named_parameters(), compiled_model.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-4), name
    assert all(torch.allclose(a, b) for a, b in zip(eager.buffers(), compiled_model.buffers()))


def test_torch_compile_inductor_matches_eager():
    eager = compile_test_model()
    compiled_model = copy.deepcopy(eager)
    compiled = torch.compile(compiled_model)  # default backend: inductor (C++ code generation on CPU)
    x = torch.randn(4, 3, 6, 6)
    expected, got = eager(x), compiled(x)
    assert torch.allclose(got, expected, atol=1e-5)
    expected.pow(2).sum().backward()
    got.pow(2).sum().backward()
    assert torch.allclose(compiled_model.nbn_alpha.grad, eager.nbn_alpha.grad, atol=1e-4)
    assert torch.allclose(compiled_model[7].alpha.grad, eager[7].alpha.grad, atol=1e-4)


def test_logit_rectification_head_is_linear_then_plain_batchnorm():
    torch.manual_seed(0)
    head = LogitRectificationHead(5, 3)
    assert head.bn.affine is False and head.classifier_weight() is head.fc.weight
    x = torch.randn(8, 5)
    logits = x @ head.fc.weight.t() + head.fc.bias
    mean, var = logits.mean(0), logits.var(0, unbiased=False)
    assert torch.allclose(head(x), (logits - mean) / torch.sqrt(var + 1e-5), atol=1e-5)


def test_normed_linear_is_cosine_similarity():
    torch.manual_seed(0)
    head = NormedLinear(5, 3)
    assert head.weight.shape == (5, 3)
    assert torch.allclose(head.weight.norm(dim=0), torch.ones(3), atol=1e-4)  # LDAM-DRW's renorm init
    assert head.classifier_weight().shape == (3, 5)
    x = torch.randn(4, 5)
    cosines = torch.tensor([[F.cosine_similarity(x[i], head.weight[:, j], dim=0).item() for j in range(3)]
                            for i in range(4)])
    assert torch.allclose(head(x), cosines, atol=1e-6)
