"""The benchmark scripts keep working: each runs end to end with tiny settings and prints its ratio line.

These are smoke tests, not timed assertions: the figures themselves come from `benchmarks/run_all.py`.
"""
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
sys.path.append(str(BENCHMARKS))  # the scripts' modules (reference_loop, demo_budget, ...) for in-process tests


def run_script(name: str, *args: str, timeout: float = 240) -> str:
    """Run benchmarks/<name>.py on the CPU with one torch thread (immune to other jobs' load); return its output."""
    command = [sys.executable, str(BENCHMARKS / f"{name}.py"), "--device", "cpu", "--threads", "1", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=BENCHMARKS.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def ratio_values(output: str) -> list[float]:
    """The numbers of the `RATIO label: 1.234x` lines."""
    return [float(match) for match in re.findall(r"^RATIO .*: ([0-9.]+)x", output, flags=re.MULTILINE)]


def test_nbn_overhead_prints_a_ratio_per_nbn_placement():
    output = run_script("nbn_overhead", "--batch-size", "8", "--steps", "1", "--repeats", "2",
                        "--where", "official,all")
    ratios = ratio_values(output)
    assert len(ratios) == 2 and all(ratio > 0 for ratio in ratios), output
    assert "nbn[official]" in output and "nbn[all]" in output


def test_loader_prints_training_and_loader_only_ratios():
    output = run_script("loader", "--images", "64", "--batch-size", "32", "--repeats", "1",
                        "--workers", "1")
    ratios = ratio_values(output)
    assert len(ratios) == 2 and all(ratio > 0 for ratio in ratios), output
    assert "training step" in output and "loader only" in output


def test_cifar_lt_speed_times_engine_and_reference_loop():
    output = run_script("cifar_lt_speed", "--epochs", "1", "--train-per-class", "100",
                        "--test-per-class", "5", "--workers", "0")
    assert len(ratio_values(output)) == 1, output
    assert "200-epoch wall extrapolated" in output


@pytest.mark.skipif(not FASHION_MNIST.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_parity_prints_mean_std_and_a_verdict():
    output = run_script("parity", "--seeds", "2", "--epochs", "1", "--train-per-class", "100",
                        "--test-per-class", "5", "--workers", "0")
    assert len(ratio_values(output)) == 1, output
    assert "mean ± std over 2 seeds" in output and "verdict: " in output


@pytest.fixture
def one_torch_thread():
    """One torch thread for an in-process test, as the scripts get with --threads 1."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_reference_loop_trains_and_reports_protocol_metrics(one_torch_thread):
    from reference_loop import protocol_lr, scaled_schedule, train_reference
    from synthetic import cifar_arrays

    images, targets = cifar_arrays(per_class=6, seed=0)
    result = train_reference(images, targets, images[:20], targets[:20], epochs=2, seed=0, device="cpu",
                             batch_size=16, num_workers=0)
    assert len(result["history"]) == 2 and 0 <= result["balanced_acc"] <= 1
    assert {"many_acc", "medium_acc", "few_acc", "train_images_per_s"} <= set(result)
    assert scaled_schedule(200) == (5, (160, 180))
    assert [protocol_lr(e, 0.1, 5, (160, 180)) for e in (0, 4, 5, 159, 160, 179, 180)] == pytest.approx(
        [0.02, 0.1, 0.1, 0.1, 0.001, 0.001, 0.00001])


@pytest.mark.parametrize("epochs", [1, 8, 200])
def test_reference_schedule_is_the_engines_schedule(epochs):
    from nbn_tutorial.train import Config, learning_rate
    from reference_loop import protocol_lr, scaled_schedule

    warmup, milestones = scaled_schedule(epochs)
    config = Config(epochs=epochs, warmup_epochs=warmup, milestones=list(milestones))
    assert [protocol_lr(e, config.lr, warmup, milestones) for e in range(epochs)] == pytest.approx(
        [learning_rate(config, e) for e in range(epochs)])


def test_imagenet_pipeline_measures_original_and_cache():
    output = run_script("imagenet_pipeline", "--images", "12", "--classes", "3",
                        "--batch-size", "4", "--repeats", "1", "--max-workers", "1")
    assert len(ratio_values(output)) == 1, output
    assert "cores needed for 2500 images/s" in output
    assert "cache (short side 256)" in output


def test_resized_cache_keeps_paths_and_bounds_the_short_side(tmp_path):
    from PIL import Image

    from imagenet_pipeline import LIST_FILE, build_resized_cache, generate_jpeg_tree  # the package's, re-exported

    folder, _ = generate_jpeg_tree(tmp_path / "original", num_images=4, num_classes=2, workers=1)
    small = folder / "train" / "small.JPEG"
    Image.new("RGB", (120, 90), "red").save(small)  # smaller than the cache size: must not be enlarged
    with open(folder / LIST_FILE, "a") as list_file:
        list_file.write("train/small.JPEG 1\n")
    cache = build_resized_cache(folder, [folder / LIST_FILE], tmp_path / "cache", short_side=64, workers=1)
    assert (cache / LIST_FILE).read_text() == (folder / LIST_FILE).read_text()
    for line in (folder / LIST_FILE).read_text().splitlines():
        relative = line.rsplit(" ", 1)[0]
        with Image.open(folder / relative) as original, Image.open(cache / relative) as cached:
            assert min(cached.size) == min(64, min(original.size))
            assert abs(cached.width / cached.height - original.width / original.height) < 0.02


def test_tree_memory_sampler_sees_a_grandchild_allocation():
    from demo_budget import measure_command

    allocate = "import time; block = b'x' * (300 * 2**20); time.sleep(2)"
    parent = textwrap.dedent(f"""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", {allocate!r}], check=True)
    """)
    result = measure_command([sys.executable, "-c", parent], interval=0.1)
    assert result.returncode == 0, result.output_tail
    assert result.samples >= 5
    assert 300 * 2**20 <= result.peak_bytes < 2 * 2**30
    assert result.wall_s >= 2


def test_the_bf16_parity_check_reads_the_committed_parity_study():
    from bf16_parity import parity_lines

    folder = BENCHMARKS / "results" / "bf16_parity"
    lines, passed = parity_lines(folder)
    assert (folder / "parity.txt").read_text().splitlines() == lines, "parity.txt is what the script prints"
    assert passed == lines[-1].startswith("PARITY passed")
    assert sum(line.startswith("RATIO") for line in lines) == 2
