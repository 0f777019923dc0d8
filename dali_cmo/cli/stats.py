"""``python -m dali_cmo stats``: class statistics of a long-tailed dataset and what P and Q draw.

Prints the number of classes and images, the imbalance ratio ``max_k n_k / min_k n_k``, the
largest and smallest class, the Many / Medium / Few split, and for each group the expected
share of draws under P (``sum n_k / N``) and under the chosen Q
(:func:`dali_cmo.data.sampling.expected_class_shares`).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from dali_cmo.data.datasets import LongTailDataset, load_dataset, long_tailed_subset
from dali_cmo.data.groups import GROUP_NAMES, GroupRule
from dali_cmo.data.sampling import SCHEMES, effective_number_beta, expected_class_shares

def _beta(text: str) -> float | str:
    if text == "paper":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number in (0, 1) or 'paper', got {text!r}") from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register the ``stats`` command on ``subparsers``; returns its parser."""
    parser = subparsers.add_parser(
        "stats", help="class statistics of a long-tailed dataset and the P/Q draw shares",
        description="Class counts, imbalance ratio, Many/Medium/Few groups and the expected "
                    "share of background (P) and foreground (Q) draws per group.")
    parser.add_argument("source",
                        help="split file (path label per line), iNat JSON or image folder")
    parser.add_argument("--root",
                        help="image root for split files and JSON (default: their folder)")
    parser.add_argument("--num-classes", type=int, help="number of classes (split files)")
    parser.add_argument("--scheme", choices=SCHEMES, default="reference", help="Q weight scheme (default: reference, the CMO code's)")
    parser.add_argument("--r", type=float, default=1.0, help="exponent r of reference/class_power")
    parser.add_argument("--beta", type=_beta,
                        help="effective_number beta in (0, 1) or 'paper' for (N-1)/N "
                             "(default: the paper's (N-1)/N; 0.9999 is Cui et al.'s)")
    parser.add_argument("--imbalance-ratio", type=float,
                        help="first take the CIFAR-LT subset with this max/min ratio")
    parser.add_argument("--seed", type=int, default=0, help="seed of the long-tailed subset")
    parser.add_argument("--many", type=int, default=100, help="Many: more than this many images")
    parser.add_argument("--few", type=int, default=20, help="Few: fewer than this many images")
    parser.add_argument("--few-inclusive", action="store_true",
                        help="Few: at most --few images (ImageNet-LT scripts' convention)")
    parser.add_argument("--no-check-files", dest="check_files", action="store_false",
                        help="do not check that the listed files exist")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)
    return parser


def _class_entry(dataset: LongTailDataset, k: int) -> dict:
    return {"class_id": k, "name": dataset.class_names[k], "count": int(dataset.class_counts[k])}


def _q_description(args: argparse.Namespace, num_images: int) -> dict:
    if args.scheme in ("reference", "class_power"):
        return {"scheme": args.scheme, "r": args.r}
    if args.scheme == "effective_number":
        return {"scheme": args.scheme, "beta": effective_number_beta(args.beta, num_images)}
    return {"scheme": args.scheme}


def statistics(dataset: LongTailDataset, args: argparse.Namespace) -> dict:
    """Everything ``stats`` reports, as a JSON-ready dict."""
    counts = dataset.class_counts
    rule = GroupRule(args.many, args.few, args.few_inclusive)
    groups = dataset.class_groups(rule)
    p_shares = counts / counts.sum()
    q_shares = expected_class_shares(counts, args.scheme, args.r, args.beta)
    head, tail = int(np.argmax(counts)), int(np.argmin(counts))
    return {
        "source": dataset.source,
        "num_classes": dataset.num_classes,
        "num_images": len(dataset),
        "imbalance_ratio": float(counts[head] / counts[tail]),
        "head": _class_entry(dataset, head),
        "tail": _class_entry(dataset, tail),
        "thresholds": {"many": args.many, "few": args.few, "few_inclusive": args.few_inclusive},
        "group_rule": rule.describe(),
        "q": _q_description(args, len(dataset)),
        "groups": {name: {"classes": len(ids), "images": int(counts[ids].sum()),
                          "p_share": float(p_shares[ids].sum()),
                          "q_share": float(q_shares[ids].sum())}
                   for name, ids in ((g, getattr(groups, g)) for g in GROUP_NAMES)},
    }


def format_text(stats: dict) -> str:
    """The human-readable report of :func:`statistics`."""
    q = ", ".join(f"{key}={value}" for key, value in stats["q"].items())
    lines = [
        f"source           {stats['source']}",
        f"classes          {stats['num_classes']:,}",
        f"images           {stats['num_images']:,}",
        f"imbalance ratio  {stats['imbalance_ratio']:.2f} (largest / smallest class)",
        "head class       {name} (id {class_id}): {count:,} images".format(**stats["head"]),
        "tail class       {name} (id {class_id}): {count:,} images".format(**stats["tail"]),
        f"groups           {stats['group_rule']} images",
        f"Q                {q}",
        "",
        f"{'group':<8}{'classes':>9}{'images':>10}{'P share':>10}{'Q share':>10}",
    ]
    lines += [f"{name:<8}{g['classes']:>9,}{g['images']:>10,}"
              f"{g['p_share']:>10.4f}{g['q_share']:>10.4f}"
              for name, g in stats["groups"].items()]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run ``stats``; returns the exit status (1 with a message on stderr for bad input)."""
    try:
        dataset = load_dataset(args.source, args.root, check_files=args.check_files,
                               num_classes=args.num_classes)
        if args.imbalance_ratio is not None:
            dataset = long_tailed_subset(dataset, args.imbalance_ratio, seed=args.seed)
        stats = statistics(dataset, args)
    except (ValueError, OSError) as error:  # DatasetError is a ValueError
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(stats, indent=2) if args.json else format_text(stats))
    return 0
