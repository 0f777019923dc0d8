"""What the CMO training stream pastes, counted: per class, the backgrounds (P) and the pasted
foregrounds (Q) of whole epochs against the samplers' expected shares, the share of samples
pasted, and lambda (the background share) of pasted samples.

It runs the training pipeline alone (no model) over the training set with the reference
settings (one coin per batch, p = 0.5, alpha = 1, ``reference`` Q weights n_y^-1: every class
equally often among foregrounds) and counts what the iterator delivers, the way the trainer
sees it: ``target_b``, ``target_f`` and ``lam`` of every sample. A sample is pasted where
``lam < 1``. The CMO window is opened from the first epoch so that every counted epoch pastes.

    python benchmarks/paste_census.py --dataset cifar10-lt --epochs 2 \\
        --json benchmarks/results/paste_census_cifar10_lt.json
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import format_table, machine_description, save_result  # noqa: E402


def expected_shares(labels: np.ndarray, num_classes: int, q_scheme: str) -> dict:
    """Per-class shares of P (the class's share of the data) and of Q (summed sample
    probabilities of :func:`dali_cmo.data.sampling.sample_weights`)."""
    from dali_cmo.data.sampling import sample_weights
    counts = np.bincount(labels, minlength=num_classes)
    q = np.bincount(labels, weights=sample_weights(labels, q_scheme), minlength=num_classes)
    return {"P": counts / counts.sum(), "Q": q}


def census(dataset, config, epochs: int) -> dict:
    """Counts of ``epochs`` epochs of the training stream (see the module docstring)."""
    from dali_cmo.data.iterator import CMOIterator
    from pipelines.training import TrainingPipeline
    num_classes = dataset.num_classes
    backgrounds = np.zeros(num_classes, np.int64)
    foregrounds = np.zeros(num_classes, np.int64)
    lams, samples, pasted_batches, batches = [], 0, 0, 0
    iterator = CMOIterator(TrainingPipeline(dataset, config))
    for _ in range(epochs):
        for batch in iterator.epoch_batches():
            lam = batch.lam.numpy()
            pasted = lam < 1
            backgrounds += np.bincount(batch.target_b.numpy(), minlength=num_classes)
            foregrounds += np.bincount(batch.target_f.numpy()[pasted], minlength=num_classes)
            lams.append(lam[pasted])
            samples += len(lam)
            batches += 1
            pasted_batches += bool(pasted.any())
    lams = np.concatenate(lams)
    return {"backgrounds": backgrounds, "foregrounds": foregrounds, "samples": samples,
            "batches": batches, "pasted_batches": pasted_batches, "lam": lams}


def report(dataset, config, counts: dict, epochs: int) -> dict:
    expected = expected_shares(dataset.labels, dataset.num_classes, config.q_scheme)
    pasted = int(counts["foregrounds"].sum())
    classes = []
    for k in range(dataset.num_classes):
        classes.append({
            "class": dataset.class_names[k], "train_images": int(dataset.class_counts[k]),
            "backgrounds": int(counts["backgrounds"][k]),
            "background_share": counts["backgrounds"][k] / counts["samples"],
            "expected_background_share": float(expected["P"][k]),
            "foregrounds": int(counts["foregrounds"][k]),
            "foreground_share": counts["foregrounds"][k] / max(pasted, 1),
            "expected_foreground_share": float(expected["Q"][k])})
    lam = counts["lam"]
    return {
        "benchmark": "paste_census", "machine": machine_description(),
        "settings": {"epochs": epochs, "batch_size": config.batch_size,
                     "probability": config.probability, "alpha": config.alpha,
                     "per_sample": config.per_sample, "q_scheme": config.q_scheme,
                     "seed": config.seed, "images": len(dataset)},
        "samples": counts["samples"], "batches": counts["batches"],
        "pasted_batches": counts["pasted_batches"], "pasted_samples": pasted,
        "pasted_batch_share": counts["pasted_batches"] / counts["batches"],
        "lam_of_pasted": {"mean": float(lam.mean()) if len(lam) else None,
                          "min": float(lam.min()) if len(lam) else None,
                          "max": float(lam.max()) if len(lam) else None},
        "classes": classes,
        "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:]),
    }


def render(result: dict) -> str:
    s = result["settings"]
    rows = [[c["class"], c["train_images"], f"{c['expected_background_share']:.4f}",
             f"{c['background_share']:.4f}", f"{c['expected_foreground_share']:.4f}",
             f"{c['foreground_share']:.4f}"] for c in result["classes"]]
    lam = result["lam_of_pasted"]
    return "\n".join([
        f"paste census: {s['images']} images, {s['epochs']} epoch(s), batch {s['batch_size']}, "
        f"p {s['probability']} ({'per sample' if s['per_sample'] else 'per batch'}), alpha "
        f"{s['alpha']}, Q {s['q_scheme']}, seed {s['seed']}",
        f"pasted: {result['pasted_batches']} of {result['batches']} batches "
        f"({result['pasted_batch_share']:.3f}), {result['pasted_samples']} of "
        f"{result['samples']} samples; lambda of pasted samples: mean "
        + (f"{lam['mean']:.3f} (min {lam['min']:.3f}, max {lam['max']:.3f})"
           if lam["mean"] is not None else "-"), "",
        format_table(["class", "train images", "P expected", "P seen", "Q expected", "Q seen"],
                     rows)])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--dataset", choices=("cifar10-lt", "demo"), default="cifar10-lt")
    parser.add_argument("--data", help="cifar10-lt: the CIFAR-10 folder (default: the shared one)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the counts, settings and machine here")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs must be >= 1; got {args.epochs}")
    from dali_cmo.data.datasets import read_image_folder
    from pipelines.training import TrainConfig
    if args.dataset == "demo":
        from dali_cmo.data.demo import demo_dir
        dataset = read_image_folder(demo_dir() / "train")
    else:
        from dali_cmo.data.cifar import load_cifar_lt
        from dali_cmo.data.shared_data import cifar10_dir
        dataset, _ = load_cifar_lt(args.data or cifar10_dir(), 10, 100.0)
    config = TrainConfig(style="cifar", image_size=32, variant="cmo", batch_size=args.batch_size,
                         epochs=args.epochs, cmo_start=-1, cmo_end=0, probability=0.5,
                         seed=args.seed, num_threads=2)
    result = report(dataset, config, census(dataset, config, args.epochs), args.epochs)
    print(render(result))
    save_result(args.json, result)
    return result


if __name__ == "__main__":
    main()
