"""What only a GPU can check: `pytest -m cuda` (each test skips with its reason on a machine without CUDA).

Mixed precision keeps NBN's normalisation in fp32, the fp16 GradScaler path trains and resumes, CUDA
graphs (compile=reduce-overhead) keep BatchNorm's running statistics right, the CUDA random state
survives a resume, the tensor loader gives the same batches on CUDA as on CPU, the NBN-aware
SyncBatchNorm equals NBN in one process, and a short digits run with every fast switch works.
"""
import math
import socket

import pytest
import torch

from nbn_tutorial import data, train
from nbn_tutorial.nn import NormalizedBatchNorm2d, NormalizedSyncBatchNorm, normalized_affine

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none is visible here)")]

TINY = ["dataset=digits-lt", "batch_size=64", "warmup_epochs=1", "milestones=[]", "lr_decay=[]", "lr=0.05",
        "device=cuda"]


def cuda_config(*overrides: str) -> train.Config:
    return train.load_config(None, [*TINY, *overrides])


def _layer(channels: int = 64) -> NormalizedBatchNorm2d:
    torch.manual_seed(0)
    layer = NormalizedBatchNorm2d(channels, alpha=1.3).cuda()
    with torch.no_grad():
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_nbn_under_autocast_normalises_in_fp32(dtype):
    layer = _layer(2048)
    with torch.autocast("cuda", dtype=dtype):
        weight, bias = normalized_affine(layer.weight, layer.bias, layer.alpha)
    assert weight.dtype == torch.float32 and bias.dtype == torch.float32
    exact_w, exact_b = normalized_affine(layer.weight.double(), layer.bias.double(), layer.alpha.double())
    assert torch.allclose(weight.double(), exact_w, rtol=1e-6, atol=1e-9)
    assert torch.allclose(bias.double(), exact_b, rtol=1e-6, atol=1e-9)
    x = torch.randn(8, 2048, 4, 4, device="cuda")
    reference = layer(x)
    with torch.autocast("cuda", dtype=dtype):
        mixed = layer(x.to(dtype))
    tolerance = 3e-2 if dtype == torch.bfloat16 else 5e-3
    assert torch.allclose(mixed.float(), reference, atol=tolerance * reference.abs().max().item())


def test_fp16_grad_scaler_trains_saves_and_resumes(tmp_path):
    config = cuda_config("epochs=2", "norm=nbn", "amp=fp16", "compile=off")
    straight = train.train(config, tmp_path / "straight", progress=False)
    state = train.read_checkpoint(straight / "last.pt")
    assert state["scaler"] and state["scaler"]["scale"] > 0, "the GradScaler state is checkpointed"
    rows = train.read_metrics(straight)
    assert all(math.isfinite(loss) for loss in rows["train_loss"])
    halves = train.train(cuda_config("epochs=2", "norm=nbn", "amp=fp16", "compile=off", "stop_after_epochs=1"),
                         tmp_path / "halves", progress=False)
    train.train(config, halves, resume=True, progress=False)
    assert train.read_metrics(halves)["epoch"].tolist() == [1, 2]


def test_reduce_overhead_cuda_graphs_keep_batchnorm_statistics_right(tmp_path):
    run = train.train(cuda_config("epochs=2", "norm=nbn", "compile=reduce-overhead"), tmp_path / "graphs",
                      progress=False)
    state = train.read_checkpoint(run / "last.pt")
    running_means = [value for key, value in state["model"].items() if key.endswith("running_mean")]
    assert running_means and all(value.abs().sum() > 0 for value in running_means), "BN statistics were updated"
    logged = train.read_metrics(run).iloc[-1]
    eager = train.evaluate_checkpoint(run / "last.pt", device="cuda")  # evaluates eagerly
    assert eager["test_acc"] == pytest.approx(logged["test_acc"], abs=1.5 / 300)


def test_cuda_random_state_survives_a_resume(tmp_path):
    config = cuda_config("epochs=2", "compile=off", "stop_after_epochs=1")
    run = train.train(config, tmp_path / "rng", progress=False)
    saved = train.read_checkpoint(run / "last.pt")["rng"]["cuda"]
    assert len(saved) == 1 and saved[0].dtype == torch.uint8
    torch.cuda.manual_seed(12345)  # scramble, then restore from the checkpoint
    train.set_rng_states(train.read_checkpoint(run / "last.pt")["rng"], torch.device("cuda"))
    assert torch.equal(torch.cuda.get_rng_state(), saved[0])
    train.train(cuda_config("epochs=2", "compile=off"), run, resume=True, progress=False)
    assert train.read_metrics(run)["epoch"].tolist() == [1, 2]


def test_tensor_loader_gives_the_same_batches_on_cuda_as_on_cpu():
    dataset = data.build_dataset("fashion-mnist-lt") if data.DEBIAN_FASHION_MNIST.is_dir() else \
        data.build_dataset("digits-lt")
    loaders = {device: data.TensorLoader(dataset, batch_size=128, train=True, device=device, seed=3)
               for device in ("cpu", "cuda")}
    for loader in loaders.values():
        loader.set_epoch(2)
    for (x_cpu, y_cpu), (x_cuda, y_cuda) in zip(*loaders.values()):
        assert torch.equal(y_cpu, y_cuda.cpu())
        assert torch.allclose(x_cpu, x_cuda.cpu(), atol=1e-6)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("with_group", [False, True], ids=["no-group", "one-process-group"])
def test_sync_nbn_equals_nbn_in_one_process(with_group):
    import torch.distributed as dist

    reference = _layer(32).train()
    sync = NormalizedSyncBatchNorm(32, alpha=1.3).cuda().train()
    sync.load_state_dict(reference.state_dict())
    x = torch.randn(16, 32, 6, 6, device="cuda", requires_grad=True)
    x_sync = x.detach().clone().requires_grad_(True)
    started = with_group and not dist.is_initialized()
    if started:
        dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:
        out, out_sync = reference(x), sync(x_sync)
        out.square().sum().backward()
        out_sync.square().sum().backward()
    finally:
        if started:
            dist.destroy_process_group()
    assert torch.allclose(out, out_sync, atol=1e-5)
    assert torch.allclose(x.grad, x_sync.grad, atol=1e-5)
    for name in ("weight", "bias", "alpha"):
        assert torch.allclose(getattr(reference, name).grad, getattr(sync, name).grad, atol=1e-5), name
    assert torch.allclose(reference.running_var, sync.running_var, atol=1e-6)


def test_two_epoch_digits_run_with_the_fast_switches(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "nbn_tutorial", "train", "--config", "quick_digits_nbn", "--set", "epochs=2",
               "--set", "device=cuda", "--out", str(tmp_path / "fast"), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    config = train.load_config(tmp_path / "fast" / "config.yaml")
    runtime = train.resolve_runtime(config, torch.device("cuda"))
    assert runtime.amp_dtype == torch.bfloat16 and runtime.channels_last and runtime.compile_mode == "default"
    assert runtime.fused_sgd and runtime.cudnn_benchmark
    assert train.read_metrics(tmp_path / "fast").iloc[-1]["test_acc"] > 0.2  # above chance (0.1) after 2 epochs
