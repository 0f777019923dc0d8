"""What the CPU fast path buys: CIFAR-10-LT training steps end to end, per configuration.

Each configuration runs the trainer's step (DALI training pipeline -> ResNet-32 -> CE mixed
loss -> SGD, deterministic algorithms as ``train.py`` sets on CPU) for ``--steps`` batches of
128 after ``--warmup`` untimed ones, CMO pasting with p = 0.5, and reports images per second
of wall time and per CPU-second of this process (the steadier figure on a shared machine).
Configurations: JPEG decoded every epoch vs raw pixels; float32, channels-last, channels-last +
bfloat16 autocast.

    python benchmarks/cifar_speed.py --json benchmarks/results/cifar_speed.json
"""
from __future__ import annotations

import argparse
import time

from common import cpu_seconds, format_table, machine_description, write_json

CONFIGS = {  # name -> (pixels, channels_last, bf16)
    "jpeg fp32": ("jpeg", False, False),
    "raw fp32": ("raw", False, False),
    "raw channels-last": ("raw", True, False),
    "raw channels-last + bf16": ("raw", True, True),
    "jpeg channels-last + bf16": ("jpeg", True, True),
}


def measure(train_set, pixels: str, channels_last: bool, bf16: bool, args) -> dict:
    """Images/s (wall and per CPU-second) of ``args.steps`` training steps."""
    import torch

    from dali_cmo.iterator import CMOIterator
    from dali_cmo.losses import build_loss, mixed_loss
    from dali_cmo.models import build_model
    from pipelines.training import TrainConfig, TrainingPipeline

    torch.manual_seed(0)
    config = TrainConfig(style="cifar", image_size=32, batch_size=128, epochs=10, cmo_start=-1,
                         cmo_end=0, num_threads=args.workers)
    batches = CMOIterator(TrainingPipeline(train_set[pixels], config)).epoch_batches()
    model = build_model("resnet32", 10)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory)
    loss_fn = build_loss("ce", train_set[pixels].class_counts)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=2e-4)

    def step():
        batch = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(batch.images.contiguous(memory_format=memory))
        loss = mixed_loss(loss_fn, logits.float(), batch.target_b, batch.target_f, batch.lam)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    cpu, wall = cpu_seconds(), time.perf_counter()
    for _ in range(args.steps):
        step()
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    images = args.steps * 128
    return {"images_per_second": images / wall, "images_per_cpu_second": images / cpu}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None,
                        help="CIFAR-10 pickles or JPEG tree (default: the shared JPEG tree)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--workers", type=int, default=1, help="DALI threads")
    parser.add_argument("--configs", nargs="+", choices=tuple(CONFIGS), default=list(CONFIGS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from dali_cmo.cifar import load_cifar_lt
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    if args.data is None:
        from dali_cmo.shared_data import cifar10_dir
        args.data = str(cifar10_dir())
    train_set = {pixels: load_cifar_lt(args.data, 10, 100.0, raw=pixels == "raw")[0]
                 for pixels in {CONFIGS[name][0] for name in args.configs}}
    results = {}
    for name in args.configs:
        results[name] = measure(train_set, *CONFIGS[name], args)
        print(f"{name}: {results[name]['images_per_second']:.0f} img/s, "
              f"{results[name]['images_per_cpu_second']:.0f} img per CPU-s", flush=True)
    base = results[args.configs[0]]["images_per_cpu_second"]
    print(format_table(["configuration", "img/s", "img/CPU-s", f"x {args.configs[0]}"],
                       [[name, f"{r['images_per_second']:.0f}",
                         f"{r['images_per_cpu_second']:.0f}",
                         f"{r['images_per_cpu_second'] / base:.2f}"]
                        for name, r in results.items()]))
    if args.json:
        write_json(args.json, {"results": results, "steps": args.steps, "warmup": args.warmup,
                               "torch_threads": args.threads, "dali_threads": args.workers,
                               "data": args.data, "machine": machine_description()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
