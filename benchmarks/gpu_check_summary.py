"""Turn the step records of ``benchmarks/gpu_check.sh`` into ``summary.json`` and a short report.

    python benchmarks/gpu_check_summary.py WORK_DIR [--mode gpu|dry-run] [--budget S]
                                           [--elapsed S] [--card TEXT] [--images DIR] [--quiet]

Reads ``WORK_DIR/steps.tsv`` (one row per verdict: name, status, seconds, exit code, cap,
detail, artifact; a step's last row counts, so a rerun's verdicts replace earlier ones) and the
artifacts under ``WORK_DIR/logs``: junit xml (test counts; when a step was stopped before pytest
wrote it, the counts and the test in progress from its ``-v`` log), benchmark, smoke, decode and
kernel-check JSON (figures) and ``versions.json``. Writes ``WORK_DIR/summary.json`` atomically
(a kill leaves the previous one whole) and, unless --quiet, prints one line per step and which
steps a rerun with ``--unfinished`` would run. Standard library only: a GPU machine may have no
extras. Exit status 0 when every step is ok or skipped, else 1.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

STEP_FIELDS = ("name", "status", "seconds", "exit", "cap", "detail", "artifact")
FINAL = ("ok", "failed", "skipped")  # the statuses of a step that came to a verdict
# pipelines whose ratio to the baseline goes on the summary line first
PREFERRED = ["cmo", "torch_reference", "cmo_p1"]
BENCHMARKS = ("paste_op", "throughput", "e2e")  # steps whose first figures stand in for key ones
# numeric figures worth a place in the one-line summary, most telling first
KEY_FIGURE = re.compile(r"(per_s|per_sec|/s|throughput|imgs?|images|fps|speed|ms|latency|overhead)",
                        re.IGNORECASE)
PYTEST_RESULT = re.compile(r"^(\S+::\S+) (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b")


def _number(text: str):
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return None


def read_steps(path: Path) -> list[dict]:
    """The last row of every step, in the order the steps first appear."""
    steps: dict[str, dict] = {}
    if not path.is_file():
        return []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        step = dict(zip(STEP_FIELDS, line.split("\t") + [""] * len(STEP_FIELDS)))
        for key in ("seconds", "exit", "cap"):
            step[key] = _number(step[key])
        steps[step["name"]] = step
    return list(steps.values())


def pytest_log_counts(path: Path) -> dict | None:
    """Results of a ``pytest -v`` log cut short: counts per outcome, failed tests, and the test
    that was running (its node id printed, its outcome not)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    counts: dict = {}
    failed = []
    for line in text.splitlines():
        found = PYTEST_RESULT.match(line)
        if found:
            outcome = found.group(2).lower()
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome in ("failed", "error"):
                failed.append(found.group(1))
    if not counts and "::" not in text:
        return None
    if failed:
        counts["failed_tests"] = failed[:20]
    last = text.rstrip().splitlines()[-1] if text.strip() else ""
    if "::" in last and not PYTEST_RESULT.match(last):
        counts["running_test"] = last.split()[0]
    return counts


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
        step["key_figures"] = key_figures(step["figures"], fallback=step["name"] in BENCHMARKS)


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
    if "tests_from_log" in step:
        t = step["tests_from_log"]
        detail += " [from the log: " + ", ".join(
            f"{v} {k}" for k, v in t.items() if isinstance(v, int)) + (
            f"; stopped in {t['running_test']}" if "running_test" in t else "") + "]"
    if step.get("key_figures"):
        detail += " | " + ", ".join(f"{k}={fmt_number(v)}" for k, v in step["key_figures"].items())
    if step.get("note"):
        detail += f" ({step['note']})"
    if len(detail) > 240:
        detail = detail[:237] + "..."
    return f"  {step['name']:<16} {step['status']:<8} {seconds:>7}  {detail}"


def write_atomically(path: Path, text: str) -> None:
    staged = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    staged.write_text(text)
    staged.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("--mode", default="gpu")
    parser.add_argument("--budget", type=float)
    parser.add_argument("--elapsed", type=float, help="seconds this run has taken so far")
    parser.add_argument("--card", default="", help="the GPU, as nvidia-smi names it")
    parser.add_argument("--images", default="")
    parser.add_argument("--quiet", action="store_true", help="write summary.json only")
    args = parser.parse_args(argv)
    work_dir = args.work_dir.resolve()
    logs = work_dir / "logs"

    steps = read_steps(work_dir / "steps.tsv")
    for step in steps:
        enrich(step, logs)
        if step["name"].startswith("tests_") and "tests" not in step:
            counts = pytest_log_counts(logs / f"{step['name']}.log")
            if counts is not None:
                step["tests_from_log"] = counts
    versions = {}
    try:
        versions = json.loads((logs / "versions.json").read_text())
    except (OSError, ValueError):
        pass
    images = None
    if args.images and Path(args.images).is_dir():
        images = {"dir": args.images,
                  "files": sum(1 for p in Path(args.images).iterdir() if p.is_file())}
    failed = [s["name"] for s in steps if s["status"] == "failed"]
    unfinished = [s["name"] for s in steps if s["status"] not in FINAL]
    summary = {
        "mode": args.mode,
        "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": args.elapsed,
        "budget_s": args.budget,
        "card": args.card or None,
        "versions": versions,
        "images": images,
        "ok": bool(steps) and not failed and not unfinished,
        "failed_steps": failed,
        "unfinished_steps": unfinished,
        "rerun": "bash benchmarks/gpu_check.sh --unfinished --budget-s SECONDS"
                 if unfinished else None,
        "steps": steps,
    }
    write_atomically(work_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    if args.quiet:
        return 0 if summary["ok"] else 1

    elapsed = f"{args.elapsed:.0f} s" if args.elapsed is not None else "?"
    budget = f"{args.budget:.0f} s" if args.budget is not None else "?"
    print(f"\ngpu-check summary ({args.mode}, {elapsed} of {budget}; card: {args.card or 'none'})"
          f" -> {work_dir / 'summary.json'}")
    for step in steps:
        print(summary_line(step))
    if unfinished:
        print(f"unfinished: {', '.join(unfinished)}; rerun them alone with "
              f"`{summary['rerun']}`")
    print("result: " + ("all steps ok or skipped" if summary["ok"] else
                        "NOT ok: " + ", ".join(f"{s['name']} {s['status']}" for s in steps
                                               if s["status"] not in ("ok", "skipped"))
                        if steps else "no steps recorded"))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
