"""NBN's cost per training step: ResNet-32 with NBN vs the same network with plain BN, in one run.

Each round times `--steps` full training steps (forward, cross-entropy, backward, SGD with momentum and
weight decay) of every variant on the same CIFAR-shaped batch, the order reversed every round, after a
warm-up round; the ratio is the median over rounds of NBN time / BN time measured in the same round.
Modes: eager, and compiled (torch.compile) with --compile or by default on CUDA. On CUDA the fast
settings are used (channels_last, bf16 autocast, fused SGD) unless switched off. Target: ratio <= 1.05.

    python benchmarks/nbn_overhead.py --device cpu                # eager, where=official
    python benchmarks/nbn_overhead.py --device cpu --compile --where official,all
"""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from bench_utils import (add_device_argument, environment_line, format_table, interleaved_times, median,
                         paired_ratio, ratio_line, resolve_device, spread)

TARGET_RATIO = 1.05


def build_variant(norm: str, where: str, num_classes: int, seed: int, device: torch.device,
                  channels_last: bool) -> torch.nn.Module:
    """ResNet-32 with plain BN or NBN at `where`, same initial weights for the same seed."""
    from nbn_tutorial.models import build_model

    torch.manual_seed(seed)
    model = build_model("resnet32", num_classes, norm=norm, norm_where=where).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def training_steps(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int,
                   amp: bool, fused: bool) -> Callable[[], None]:
    """A closure running `steps` SGD steps (momentum 0.9, wd 2e-4) of `model` on one batch."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=2e-4,
                                **({"fused": True} if fused else {}))
    device_type = images.device.type

    def run() -> None:
        for _ in range(steps):
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    return run


def measure_mode(compiled: bool, wheres: Sequence[str], args: argparse.Namespace,
                 device: torch.device) -> tuple[list[list[object]], list[str]]:
    """Table rows and ratio lines of one execution mode (eager or compiled)."""
    mode = "compiled" if compiled else "eager"
    generator = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, 32, 32, generator=generator).to(device)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=generator).to(device)
    variants = {"bn": ("bn", "official")} | {f"nbn[{w}]": ("nbn", w) for w in wheres}
    sides = {}
    for name, (norm, where) in variants.items():
        model = build_variant(norm, where, args.num_classes, args.seed, device, args.channels_last)
        if compiled:
            model = torch.compile(model, mode=args.compile_mode)
        sides[name] = training_steps(model, images, labels, args.steps, args.amp, args.fused_sgd)
    times = interleaved_times(sides, args.repeats, device, warmup=args.warmup)
    rows, lines = [], []
    for name, values in times.items():
        per_step_ms = [1000 * t / args.steps for t in values]
        ratio = paired_ratio(values, times["bn"])
        rows.append([mode, name, median(per_step_ms), spread(per_step_ms),
                     args.batch_size * args.steps / median(values), ratio])
        if name != "bn":
            lines.append(ratio_line(f"nbn/bn step time, {mode}, {name}", ratio, TARGET_RATIO,
                                    higher_is_better=False))
    return rows, lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options; device-dependent defaults are filled in after the device is known."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_device_argument(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="training steps per timed call (cpu 2, cuda 50)")
    parser.add_argument("--repeats", type=int, default=15, help="timed rounds per variant (median taken)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed warm-up rounds (compilation happens here)")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--where", default="official",
                        help="comma-separated NBN placements to compare with BN: official, last-stage, all")
    parser.add_argument("--compile", dest="compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure torch.compile'd models (default: on for cuda, off for cpu)")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune-no-cudagraphs")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: on for cuda)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                        help="channels_last memory format (default: on for cuda)")
    parser.add_argument("--fused-sgd", action=argparse.BooleanOptionalAction, default=None,
                        help="fused SGD (default: on for cuda)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the NBN/BN step-time table and ratios."""
    args = parse_args(argv)
    device = resolve_device(args.device, args.threads)
    on_cuda = device.type == "cuda"
    for option in ("compile", "amp", "channels_last", "fused_sgd"):
        if getattr(args, option) is None:
            setattr(args, option, on_cuda)
    args.steps = args.steps or (50 if on_cuda else 2)
    print(environment_line(device))
    print(f"# ResNet-32 training step, batch {args.batch_size}, {args.steps} steps per round, "
          f"{args.repeats} rounds (+{args.warmup} warm-up), amp={args.amp}, channels_last={args.channels_last}, "
          f"fused_sgd={args.fused_sgd}")
    wheres = [w.strip() for w in args.where.split(",") if w.strip()]
    rows, lines = [], []
    for compiled in ([False, True] if args.compile else [False]):
        mode_rows, mode_lines = measure_mode(compiled, wheres, args, device)
        rows += mode_rows
        lines += mode_lines
    print(format_table(["mode", "variant", "ms/step (median)", "min..max", "images/s", "time ratio to bn"], rows))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
