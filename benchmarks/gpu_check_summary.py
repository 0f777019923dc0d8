"""Turn the step records of ``benchmarks/gpu_check.sh`` into ``summary.json`` and a short report;
print the device-time plan of a GPU session.

    python benchmarks/gpu_check_summary.py OUT_DIR [--mode gpu|dry-run|kernel-only] [--elapsed S]
                                           [--budget S] [--spent-before S] ...
    python benchmarks/gpu_check_summary.py --plan [--budget S]

Reads ``OUT_DIR/steps.tsv`` (name, status, seconds, detail, log, artifact per row) and the
artifacts it names: junit xml (test counts), benchmark / smoke / kernel-check JSON (numeric
figures), ``versions.json`` and ``nvidia-smi.txt``. Prints one line per step with the device
minutes it used, and whether the session has time left to rerun this call once. Standard
library only: the GPU host has no extras. Exit status 0 when no step failed, else 1.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

# A GPU session: 15 device minutes in all, the machine's start and idle waits included. The
# calls, in order, with the seconds each is expected to take (the last one is this script's
# budget); what remains must cover one rerun of the last call on the warm host, which skips the
# DALI unpack and the build (the library is kept when built from the same sources).
SESSION_S = 900
PLAN = [
    ("machine start", "", 120),
    ("call 1", "carry .dali-parts/dali.tar.xz.part00; mkdir -p /tmp/dali-parts && mv "
     ".dali-parts/dali.tar.xz.part00 /tmp/dali-parts/ && bash benchmarks/gpu_check.sh "
     "--kernel-only", 90),
    ("calls 2-4", "carry part01, part02, part03 (one per call), each moved into "
     "/tmp/dali-parts", 90),
    ("call 5", "carry part04, SHA256SUMS, .gpu-carry; move part04 and SHA256SUMS into "
     "/tmp/dali-parts, then bash benchmarks/gpu_check.sh", None),
]
REUSED_ON_RETRY = ("dali", "build")  # steps a rerun on the warm host does not repeat
UNPACK_AND_BUILD_S = 35 + 100        # their expected share of the last call

# pipelines whose ratio to the baseline goes on the summary line first
PREFERRED = ["cmo", "torch_reference", "cmo_p1"]
STEP_FIELDS = ("name", "status", "seconds", "detail", "log", "artifact")
# numeric figures worth a place in the one-line summary, most telling first
KEY_FIGURE = re.compile(r"(per_s|per_sec|/s|throughput|imgs?|images|fps|speed|ms|latency|overhead)",
                        re.IGNORECASE)


def read_steps(path: Path) -> list[dict]:
    steps = []
    if not path.is_file():
        return steps
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        values = line.split("\t") + [""] * len(STEP_FIELDS)
        step = dict(zip(STEP_FIELDS, values))
        try:
            step["seconds"] = float(step["seconds"])
        except ValueError:
            step["seconds"] = None
        steps.append(step)
    return steps


def junit_counts(path: Path) -> dict | None:
    """tests/passed/failed/errors/skipped from a pytest junit xml, or None."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, 0) or 0)
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    failed = [f"{case.get('classname', '')}::{case.get('name', '')}"
              for suite in suites for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    if failed:
        counts["failed_tests"] = failed[:20]
    return counts


def flatten_numbers(value, prefix: str = "", out: dict | None = None, limit: int = 60) -> dict:
    """Numeric leaves of a JSON value as {"a.b[0].c": number}, at most ``limit`` of them."""
    out = {} if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(value, bool):
        return out
    if isinstance(value, (int, float)):
        out[prefix or "value"] = value
    elif isinstance(value, dict):
        for key, item in value.items():
            flatten_numbers(item, f"{prefix}.{key}" if prefix else str(key), out, limit)
    elif isinstance(value, list):
        for i, item in enumerate(value[:10]):
            flatten_numbers(item, f"{prefix}[{i}]", out, limit)
    return out


def key_figures(figures: dict, n: int = 3, fallback: bool = True) -> dict:
    """Up to ``n`` figures whose names look like rates or timings, else (``fallback``) the first."""
    keyed = {k: v for k, v in figures.items() if KEY_FIGURE.search(k.rsplit(".", 1)[-1])}
    chosen = keyed or (figures if fallback else {})
    return dict(list(chosen.items())[:n])


def _median(value):
    """A number, or the "median" of a benchmarks/common.summarize() dict; else None."""
    if isinstance(value, dict):
        value = value.get("median")
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _round(x):
    return float(f"{x:.6g}") if isinstance(x, float) else x


def benchmark_figures(data: dict) -> tuple[dict, dict]:
    """(figures, key figures) of a benchmarks/throughput.py or paste_op.py report.

    figures: images/s per pipeline, ratios to the baseline (loader, end-to-end, CPU cost),
    time ratios, and how many targets were met; key figures: the few that go on the summary line.
    """
    figures = {}
    for name, entry in (data.get("results") or {}).items():
        if not isinstance(entry, dict):
            continue
        for field, label in (("images_per_s", "images_per_s"), ("ms_per_batch", "ms_per_batch")):
            if _median(entry.get(field)) is not None:
                figures[f"{name}.{label}"] = _median(entry[field])
        e2e = entry.get("end_to_end")
        if isinstance(e2e, dict) and _median(e2e.get("images_per_s")) is not None:
            figures[f"{name}.e2e_images_per_s"] = _median(e2e["images_per_s"])
    for group, suffix in (("ratios", "x_baseline"), ("end_to_end_ratios", "e2e_x_baseline"),
                          ("cpu_ratios", "cpu_x_baseline")):
        for name, value in (data.get(group) or {}).items():
            if _median(value) is not None:
                figures[f"{name}.{suffix}"] = _median(value)
            elif isinstance(value, dict):  # paste_op: {"time_ratio": {...}, "net_time_ratio": ...}
                for sub, subvalue in value.items():
                    if _median(subvalue) is not None:
                        figures[f"{name}.{sub}"] = _median(subvalue)
    targets = data.get("targets") or data.get("target") or {}
    if isinstance(targets, dict) and targets:
        met = [k for k, v in targets.items() if isinstance(v, dict) and v.get("met")]
        figures["targets_met"] = f"{len(met)}/{len(targets)}"
        unmet = [k for k in targets if k not in met]
        if unmet:
            figures["targets_unmet"] = "; ".join(unmet)
    figures = {k: _round(v) for k, v in figures.items()}

    def pick(test):
        return [k for k in figures if test(k)]
    order = (pick(lambda k: k.startswith("targets_"))
             + pick(lambda k: k.endswith(".time_ratio"))
             + pick(lambda k: k.endswith(".e2e_x_baseline") and not k.startswith("baseline."))
             + sorted(pick(lambda k: k.endswith(".x_baseline") and not k.startswith("baseline.")),
                      key=lambda k: PREFERRED.index(k.split(".")[0])
                      if k.split(".")[0] in PREFERRED else len(PREFERRED))[:3]
             + pick(lambda k: k in ("baseline.images_per_s", "paste.images_per_s")))
    return figures, {k: figures[k] for k in list(dict.fromkeys(order))[:7]}


def enrich(step: dict, out_dir: Path) -> None:
    artifact = step.get("artifact") or ""
    path = out_dir / artifact if artifact else None
    if path is None or not path.is_file():
        if artifact and step["status"] == "ok":
            step["note"] = f"{artifact} was not written"
        return
    if path.suffix == ".xml":
        counts = junit_counts(path)
        if counts is not None:
            step["tests"] = counts
    elif path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            step["note"] = f"{artifact} unreadable: {err}"
            return
        if isinstance(data, dict) and isinstance(data.get("results"), dict):
            step["figures"], step["key_figures"] = benchmark_figures(data)
            if not step["figures"]:
                del step["figures"], step["key_figures"]
            else:
                return
        step["figures"] = {k: _round(v) for k, v in flatten_numbers(data).items()}
        step["key_figures"] = key_figures(step["figures"], fallback=step["name"].startswith("bench"))


def fmt_number(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"
    return str(x)


def summary_line(step: dict) -> str:
    seconds = "" if step["seconds"] is None else f"{step['seconds']:.1f}s"
    detail = step["detail"]
    if "tests" in step and step["status"] != "ok":
        t = step["tests"]
        detail += (f" [{t['passed']} passed, {t['failures']} failed, {t['errors']} errors, "
                   f"{t['skipped']} skipped]")
        if t.get("failed_tests"):
            detail += " failing: " + ", ".join(t["failed_tests"][:3])
    if step.get("key_figures"):
        detail += " | " + ", ".join(f"{k}={fmt_number(v)}" for k, v in step["key_figures"].items())
    if step.get("note"):
        detail += f" ({step['note']})"
    if len(detail) > 240:
        detail = detail[:237] + "..."
    return f"  {step['name']:<20} {step['status']:<8} {seconds:>7}  {detail}"


def plan(budget_s: float) -> tuple[list[tuple[str, str, float]], float, float]:
    """The session plan with the last call's budget; (calls, seconds planned, retry seconds)."""
    calls = [(name, what, budget_s if seconds is None else seconds)
             for name, what, seconds in PLAN]
    return calls, sum(s for _, _, s in calls), budget_s - UNPACK_AND_BUILD_S


def print_plan(budget_s: float) -> int:
    calls, total, retry = plan(budget_s)
    print(f"GPU session plan ({SESSION_S / 60:.0f} device minutes in all):")
    for name, what, seconds in calls:
        print(f"  {name:<14} {seconds / 60:4.1f} min  {what}")
    spare = SESSION_S - total
    print(f"  planned {total / 60:.1f} min; left {spare / 60:.1f} min; one rerun of call 5 on the "
          f"warm host (no unpack, no rebuild) needs about {retry / 60:.1f} min: "
          + ("fits" if spare >= retry else "DOES NOT FIT: lower GPU_CHECK_BUDGET_S"))
    return 0 if spare >= retry else 1


def device_time(steps: list[dict], elapsed: float | None, spent_before: float | None) -> dict:
    """Device minutes per step and for the run, and whether a rerun of it still fits."""
    seconds = {s["name"]: s["seconds"] or 0.0 for s in steps}
    run_s = elapsed if elapsed is not None else sum(seconds.values())
    retry_s = run_s - sum(seconds.get(name, 0.0) for name in REUSED_ON_RETRY)
    before = spent_before if spent_before is not None else sum(s for _, _, s in plan(0)[0][:3])
    left = SESSION_S - before - run_s
    return {"minutes_per_step": {k: round(v / 60, 2) for k, v in seconds.items()},
            "run_minutes": round(run_s / 60, 2),
            "session_minutes_before": round(before / 60, 2),
            "session_minutes_before_is_estimate": spent_before is None,
            "session_minutes_left": round(left / 60, 2),
            "retry_minutes": round(retry_s / 60, 2), "retry_fits": left >= retry_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument("--mode", default="gpu")
    parser.add_argument("--elapsed", type=float)
    parser.add_argument("--budget", type=float)
    parser.add_argument("--spent-before", type=lambda v: float(v) if v else None,
                        help="device seconds the session used before this run")
    parser.add_argument("--images", default="")
    parser.add_argument("--plan", action="store_true", help="print the session plan and exit")
    args = parser.parse_args(argv)
    if args.plan:
        return print_plan(args.budget if args.budget is not None else 330)
    if args.out_dir is None:
        parser.error("OUT_DIR is required (or --plan)")
    out_dir = args.out_dir.resolve()

    steps = read_steps(out_dir / "steps.tsv")
    for step in steps:
        enrich(step, out_dir)
    versions = {}
    if (out_dir / "versions.json").is_file():
        try:
            versions = json.loads((out_dir / "versions.json").read_text())
        except ValueError:
            pass
    smi = out_dir / "nvidia-smi.txt"
    gpu_line = smi.read_text().strip().splitlines()[0] if smi.is_file() and smi.read_text().strip() else None
    images = None
    if args.images and Path(args.images).is_dir():
        images = {"dir": args.images, "files": sum(1 for p in Path(args.images).iterdir() if p.is_file())}
    failed = [s["name"] for s in steps if s["status"] == "failed"]
    summary = {
        "mode": args.mode,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": args.elapsed,
        "budget_s": args.budget,
        "out_dir": str(out_dir),
        "gpu": gpu_line,
        "versions": versions,
        "images": images,
        "ok": not failed and bool(steps),
        "failed_steps": failed,
        "steps": steps,
        "device_time": device_time(steps, args.elapsed, args.spent_before),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    elapsed = f"{args.elapsed:.0f} s" if args.elapsed is not None else "?"
    print(f"\ngpu-check summary ({args.mode}, {elapsed} of {args.budget or '?'} s budget) -> "
          f"{out_dir / 'summary.json'}")
    for step in steps:
        print(summary_line(step))
    t = summary["device_time"]
    print(f"device time: {t['run_minutes']:.1f} min this run ("
          + ", ".join(f"{k} {v:.1f}" for k, v in t["minutes_per_step"].items() if v >= 0.05)
          + f"); session {t['session_minutes_before']:.1f} min before"
          + (" (planned, not measured: pass GPU_CHECK_SPENT_S)"
             if t["session_minutes_before_is_estimate"] else "")
          + f", {t['session_minutes_left']:.1f} min left; a rerun without unpack and build needs "
          f"{t['retry_minutes']:.1f} min: " + ("fits" if t["retry_fits"] else "does NOT fit"))
    print("result: " + ("all steps ok or skipped" if summary["ok"] else
                        f"FAILED: {', '.join(failed) or 'no steps recorded'}"))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
