#!/usr/bin/env bash
# One-command validation of dali-cmo on a lent GPU host (one H100/H200, CUDA 13, driver 580,
# Python 3.12 with PyTorch/CuPy/nvcc, no DALI, no network, 64 MiB per transfer). It locates or
# unpacks DALI, builds the operator library for the GPU it finds, runs a CPU-vs-GPU smoke check,
# the GPU tests, the benchmarks and the operator's CPU tests, and writes everything under $OUT
# (else ./gpu_check_out/): summary.json, a printed one-line-per-step summary, logs, junit xml,
# benchmark JSONs, nvidia-smi line, versions. Nothing is pip-installed: it runs with
# PYTHONPATH=<repo>:<DALI site>. It finishes within GPU_CHECK_BUDGET_S (default 345 s): each
# step has its own timeout, capped by what is left; steps that no longer fit are "skipped".
#
# usage: bash benchmarks/gpu_check.sh [--dry-run]
#   --dry-run  on a CPU machine: the DALI and operator library already installed here are used,
#              the build goes --no-cuda into a temporary folder (dali_cmo/ops/lib is left alone),
#              GPU-only steps say "skipped (no GPU)", the benchmarks run with --device cpu --quick.
# env: OUT, PYTHON (default python3), DALI_SITE (default /tmp/dali-site), DALI_PARTS (default
#      /tmp/dali-parts), GPU_CHECK_BUDGET_S, GPU_CHECK_ARCH (override the detected SM, e.g. 90),
#      GPU_CHECK_IMAGES (image folder for the benchmarks), GPU_CHECK_SKIP_BENCH=1,
#      GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_PASTE_ARGS / GPU_CHECK_THROUGHPUT_ARGS /
#      GPU_CHECK_E2E_ARGS (the settings passed to each benchmark on the GPU; see step 7),
#      GPU_CHECK_DRY_CUDA=1 (dry run: build with nvcc for GPU_CHECK_ARCH, default 90, instead).
# Exit status: 0 when no step failed, 1 otherwise (the summary is written either way).
#
# ---- A GPU session, step by step ----------------------------------------------------------
# The `run` tool copies the checkout (tracked + untracked non-ignored files) plus the ignored
# paths named in `carry` to the host for every call: at most 64 MiB per call in all, so keep the
# checkout small (about 0.4 MiB now). First, here: `bash benchmarks/gpu_check.sh --dry-run`.
# On this machine, once (pip access; about 8 minutes on 2 cores, mostly xz):
#     benchmarks/gpu_prepare.sh                      # .gpu-carry/: unpack-dali.sh + 196 JPEGs (19.9 MiB)
#     ../shared/gpu/pack-dali.sh "$PWD/.dali-parts"  # an ABSOLUTE path: the script splits inside a
#                                                    # temp dir, so a relative OUTDIR fails there
#   -> .dali-parts/dali.tar.xz.part00..03 (56 MiB each), part04 (30.8 MiB), SHA256SUMS;
#      benchmarks/gpu_prepare.sh run again afterwards prints whether the last call fits.
# Then five run calls, back to back (timeout_s 60 each but the last): the host keeps /tmp (and
# the checkout copy) only while it stays warm, about 30 s idle between calls; after a cold
# start every part has to travel again.
#   run carry=[".dali-parts/dali.tar.xz.part00"]
#       command: mkdir -p /tmp/dali-parts && mv .dali-parts/dali.tar.xz.part00 /tmp/dali-parts/
#   ... the same for part01, part02, part03 ...
#   run carry=[".dali-parts/dali.tar.xz.part04", ".dali-parts/SHA256SUMS", ".gpu-carry"]
#       (30.8 + 19.9 + 0.4 = 51 MiB), timeout_s=420, command:
#       mkdir -p /tmp/dali-parts && mv .dali-parts/dali.tar.xz.part04 .dali-parts/SHA256SUMS /tmp/dali-parts/ && bash benchmarks/gpu_check.sh
#   (Were the last call over 64 MiB, move part04 + SHA256SUMS alone, then make a sixth call with
#    carry [".gpu-carry"] and command `bash benchmarks/gpu_check.sh`.)
# The script unpacks /tmp/dali-parts into /tmp/dali-site (about 35 s), and a rerun on the same
# warm host finds /tmp/dali-site and skips that. Results come back from $OUT: read summary.json
# (and the logs beside it). Device time is 15 minutes in all, machine start included: call
# `give_back` afterwards unless you rerun at once. Steps that no longer fit the budget are
# "skipped (no time left ...)": tune with GPU_CHECK_*_ARGS or a larger GPU_CHECK_BUDGET_S.
set -euo pipefail

dry_run=0
for arg in "$@"; do
  case $arg in
    --dry-run) dry_run=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (usage: $0 [--dry-run])" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${OUT:-$repo/gpu_check_out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
py=${PYTHON:-$(command -v python3 || command -v python || echo python3)}
budget=${GPU_CHECK_BUDGET_S:-345}
site=${DALI_SITE:-/tmp/dali-site}
parts=${DALI_PARTS:-/tmp/dali-parts}
carry=$repo/.gpu-carry
work=$(mktemp -d)
summarized=0 mode=gpu
(( dry_run )) && mode=dry-run
summarize() {
  summarized=1
  "$py" "$repo/benchmarks/gpu_check_summary.py" "$out" --mode "$mode" --elapsed "$(since "$t_start")" \
    --budget "$budget" --images "${images:-}"
}
# The summary is written even when the script itself stops on an unexpected error.
on_exit() {
  local status=$?
  if (( ! summarized )); then
    echo "[gpu-check] stopped early (exit $status); summarizing what ran" >&2
    summarize || true
    status=1
  fi
  rm -rf "$work"
  exit "$status"
}
trap on_exit EXIT
steps=$out/steps.tsv
: > "$steps"

now() { date +%s.%N; }
t_start=$(now)
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
left() { awk -v a="$t_start" -v b="$(now)" -v t="$budget" 'BEGIN { printf "%d", t - (b - a) }'; }
clean() { tr '\t\n\r' '   ' <<< "$*" | sed 's/  */ /g; s/ $//'; }

step_secs=0
# record NAME STATUS DETAIL [LOG] [ARTIFACT]: one row of steps.tsv and one progress line.
record() {
  local name=$1 status=$2 detail; detail=$(clean "$3")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$step_secs" "$detail" "${4:-}" "${5:-}" >> "$steps"
  printf '[gpu-check] %-20s %-8s %6ss  %s\n' "$name" "$status" "$step_secs" "$detail"
  step_secs=0
}
# timed LIMIT LOG CMD...: runs CMD under `timeout` (capped by the budget left), output to LOG.
# Sets rc (124: timed out; 99: no time left, not started) and step_secs.
timed() {
  local limit=$1 log=$2 t0 remaining; shift 2
  remaining=$(left)
  if (( remaining < 20 )); then
    rc=99 step_secs=0
    echo "not started: no time left in the ${budget}s budget" > "$log"
    return
  fi
  (( limit > remaining - 8 )) && limit=$(( remaining - 8 ))
  t0=$(now)
  set +e
  timeout -k 5 "$limit" "$@" > "$log" 2>&1
  rc=$?
  set -e
  step_secs=$(since "$t0")
  timed_limit=$limit
}
# why RC LOG: a short reason for a failed command, and its log tail on stdout.
why() {
  local rc=$1 log=$2
  if (( rc == 124 || rc == 137 )); then echo "timed out after ${timed_limit}s"; return; fi
  if (( rc == 99 )); then echo "no time left in the ${budget}s budget"; return; fi
  { echo "    --- last lines of $(basename "$log") ---"; tail -n 15 "$log" | sed 's/^/    /'; } >&2
  echo "exit $rc: $(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-160)"
}
finish_status() { (( $1 == 0 )) && echo ok || { (( $1 == 99 )) && echo skipped || echo failed; }; }

echo "[gpu-check] mode $mode, output $out, budget ${budget}s, python $py"

# ---- 1. the GPU ---------------------------------------------------------------------------
gpu_ok=0 arch=${GPU_CHECK_ARCH:-}
if (( dry_run )); then
  record gpu skipped "skipped (no GPU): dry run"
elif ! command -v nvidia-smi > /dev/null; then
  record gpu failed "nvidia-smi not found"
else
  timed 30 "$out/nvidia-smi.txt" nvidia-smi \
    --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader
  if (( rc == 0 )) && [[ -s $out/nvidia-smi.txt ]]; then
    gpu_ok=1
    line=$(head -n 1 "$out/nvidia-smi.txt")
    cap=$(cut -d, -f4 <<< "$line" | tr -d ' ')
    [[ -n $arch ]] || arch=${cap/./}
    nvidia-smi > "$out/nvidia-smi-full.txt" 2>&1 || true
    record gpu ok "$line (sm_$arch)" nvidia-smi.txt
  else
    record gpu "$(finish_status $rc)" "$(why "$rc" "$out/nvidia-smi.txt")" nvidia-smi.txt
  fi
fi

# ---- 2. DALI ------------------------------------------------------------------------------
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
dali_ok=0 dali_how=
dali_version() { timeout 60 "$py" -c 'import nvidia.dali as d; print(d.__version__)' 2>> "$out/dali.log"; }
# The site's nvidia/__init__.py (empty, from the codec wheels) would make it a regular package
# that hides the host's own nvidia.* wheels (torch's CUDA libraries) behind PYTHONPATH; a
# pkgutil.extend_path line lets both be found.
share_nvidia() {
  if [[ -f $site/nvidia/__init__.py && ! -s $site/nvidia/__init__.py ]]; then
    echo '__path__ = __import__("pkgutil").extend_path(__path__, __name__)' > "$site/nvidia/__init__.py"
    echo "made $site/nvidia a shared package (pkgutil.extend_path)" >> "$out/dali.log"
  fi
}
echo "probe: is nvidia.dali importable as is?" > "$out/dali.log"
t0=$(now)
if version=$(dali_version); then
  dali_ok=1 dali_how="installed"
elif [[ -d $site/nvidia/dali ]]; then
  share_nvidia
  export PYTHONPATH=$PYTHONPATH:$site
  version=$(dali_version) && dali_ok=1 dali_how="site folder $site"
elif [[ -f $parts/SHA256SUMS ]]; then
  unpack=$carry/unpack-dali.sh
  [[ -f $unpack ]] || unpack=$repo/../shared/gpu/unpack-dali.sh
  missing=$(cd "$parts" && awk '{ print $2 }' SHA256SUMS | while read -r f; do [[ -f $f ]] || echo "$f"; done \
            | tr '\n' ' ')
  if [[ -n $missing ]]; then
    echo "parts missing in $parts: $missing" >> "$out/dali.log"
  elif [[ ! -f $unpack ]]; then
    echo "unpack-dali.sh not found (run benchmarks/gpu_prepare.sh and carry .gpu-carry)" >> "$out/dali.log"
  else
    timed 150 "$work/unpack.log" bash "$unpack" "$parts" "$site"
    cat "$work/unpack.log" >> "$out/dali.log"
    if (( rc == 0 )); then
      share_nvidia
      export PYTHONPATH=$PYTHONPATH:$site
      version=$(dali_version) && dali_ok=1 dali_how="unpacked from $parts into $site"
    else
      echo "unpack: $(why "$rc" "$work/unpack.log")" >> "$out/dali.log"
    fi
  fi
else
  echo "no DALI: not importable, no $site/nvidia/dali, no $parts/SHA256SUMS" >> "$out/dali.log"
fi
step_secs=$(since "$t0")
if (( dali_ok )); then
  record dali ok "DALI $version ($dali_how)" dali.log
else
  record dali failed "$(grep -v '^\s*$' "$out/dali.log" | tail -n 1 | cut -c1-200)" dali.log
fi
echo "PYTHONPATH=$PYTHONPATH" >> "$out/dali.log"

# ---- 3. versions --------------------------------------------------------------------------
cat > "$work/versions.py" << 'EOF'
# Each import in its own interpreter (a crash in one, e.g. a CUDA library clash, spoils nothing
# else), then torch and DALI in one process, as the tests use them.
import json, platform, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
from dali_cmo.ops.build import find_nvcc

def probe(code):
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "missing (import timed out)"
    if r.returncode == 0:
        return r.stdout.strip()
    last = (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1]
    return f"missing ({last[:160]})"

def tool(cmd):
    try:
        lines = [l.strip() for l in subprocess.run(cmd, capture_output=True, text=True,
                                                   timeout=20).stdout.splitlines() if l.strip()]
        return next((l.rsplit(" V", 1)[-1] for l in lines if "release" in l), lines[0])
    except Exception:  # noqa: BLE001 - absent or broken: reported as missing
        return "missing"

mods = {"numpy": "numpy", "torch": "torch", "cupy": "cupy", "dali": "nvidia.dali",
        "pytest": "pytest", "scipy": "scipy", "PIL": "PIL"}
probes = {k: f"import {m} as x; print(x.__version__)" for k, m in mods.items()}
probes["torch"] = ("import torch; print(torch.__version__, '|', torch.version.cuda, "
                   "torch.cuda.is_available(), "
                   "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")
probes["torch_with_dali"] = ("import torch, nvidia.dali, nvidia.dali.fn; "
                             "print('ok, cuda available:', torch.cuda.is_available())")
with ThreadPoolExecutor(8) as pool:
    found = dict(zip(probes, pool.map(probe, probes.values())))
v = {"python": platform.python_version(), "executable": sys.executable, "host": platform.node(),
     **found, "nvcc": tool([find_nvcc() or "nvcc", "--version"]), "g++": tool(["g++", "--version"])}
if " | " in v["torch"]:
    v["torch"], v["torch_cuda"] = (part.strip() for part in v["torch"].split(" | ", 1))
json.dump(v, open(sys.argv[1], "w"), indent=2)
short = lambda k: "missing" if v[k].startswith("missing") else v[k]
torch = short("torch") + (f" (CUDA {v['torch_cuda'].split()[0]})" if "torch_cuda" in v else "")
print(f"python {v['python']}, torch {torch}, dali {short('dali')}, cupy {short('cupy')}, "
      f"pytest {short('pytest')}, scipy {short('scipy')}, nvcc {v['nvcc']}"
      + ("" if short("torch") == "missing" or short("dali") == "missing" else
         f", torch+dali in one process: {'ok' if not v['torch_with_dali'].startswith('missing') else 'FAILS'}"))
EOF
timed 90 "$out/versions.log" "$py" "$work/versions.py" "$out/versions.json"
if (( rc == 0 )); then
  record versions ok "$(tail -n 1 "$out/versions.log")" versions.log versions.json
else
  record versions "$(finish_status $rc)" "$(why "$rc" "$out/versions.log")" versions.log
fi
has_module() { timeout 60 "$py" -c "import $1" > /dev/null 2>&1; }

# ---- 4. build -----------------------------------------------------------------------------
build_ok=0
if (( ! dali_ok )); then
  record build skipped "skipped (no DALI)"
else
  if (( dry_run )); then
    if [[ ${GPU_CHECK_DRY_CUDA:-0} == 1 ]]; then
      build_args=(--cuda --archs "${arch:-90}")
    else
      build_args=(--no-cuda)
    fi
    build_args+=(--out-dir "$work/lib")
    note="dry run: into a temporary folder, dali_cmo/ops/lib kept"
  elif [[ -z $arch ]]; then
    build_args=() note="no compute capability found"
  else
    build_args=(--cuda --archs "$arch") note="sm_$arch"
  fi
  if (( ! dry_run )) && [[ -z $arch ]]; then
    record build failed "no GPU compute capability (set GPU_CHECK_ARCH)"
  else
    echo "$py -m dali_cmo build -v ${build_args[*]}" > "$out/build.log"
    timed 200 "$work/build.log" "$py" -m dali_cmo build -v "${build_args[@]}"
    cat "$work/build.log" >> "$out/build.log"
    if (( rc == 0 )); then
      build_ok=1
      record build ok "$(grep '^built ' "$out/build.log" | tail -n 1 | sed "s#$work/##; s#$repo/##") [$note]" build.log
    else
      record build "$(finish_status $rc)" "$(why "$rc" "$out/build.log")" build.log
    fi
  fi
fi
# the operator library the following steps load: the fresh one on the GPU host, the installed
# one in a dry run
plugin_ok=$(( dali_ok && (build_ok || dry_run) ))
skip_reason() { (( dali_ok )) && echo "skipped (build failed)" || echo "skipped (no DALI)"; }

# ---- 5. smoke: CPU vs GPU on the same boxes, without pytest or scipy -------------------------
cat > "$work/smoke.py" << 'EOF'
import json, sys, time
import numpy as np
import dali_cmo
from nvidia.dali import fn, pipeline_def, types

dali_cmo.load_plugin()
gpu = sys.argv[1] == "gpu"
B, H, W = (32, 224, 224) if gpu else (8, 64, 48)
rng = np.random.default_rng(0)
bgs = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(B)]
fgs = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(B)]
mean, std = [0.485 * 255, 0.456 * 255, 0.406 * 255], [0.229 * 255, 0.224 * 255, 0.225 * 255]

def make(device):
    @pipeline_def(batch_size=B, num_threads=2, device_id=0 if device == "gpu" else None, seed=7)
    def pipe():
        bg = fn.external_source(source=[bgs], cycle=True, layout="HWC")
        fg = fn.external_source(source=[fgs], cycle=True, layout="HWC")
        if device == "gpu":
            bg, fg = bg.gpu(), fg.gpu()
        return tuple(fn.cmo_paste(bg, fg, per_sample=True, probability=1.0, dtype=types.FLOAT16,
                                  output_layout="CHW", mean=mean, std=std, output_box=True))
    p = pipe()
    p.build()
    return p

def run(p):
    return [[np.array(t) for t in (o.as_cpu() if hasattr(o, "as_cpu") else o)] for o in p.run()]

result = {"batch": B, "shape": [H, W], "library": dali_cmo.build_info()}
cpu = make("cpu")
for it in range(3):
    images, lams, boxes = run(cpu)
    for bg, fg, img, lam, box in zip(bgs, fgs, images, lams, boxes):
        y1, x1, y2, x2 = (int(v) for v in box)
        assert 0 <= y1 <= y2 <= H and 0 <= x1 <= x2 <= W, box
        assert abs(float(lam) - (1 - (y2 - y1) * (x2 - x1) / (H * W))) < 1e-5, (lam, box)
        ref = bg.astype(np.float32)
        ref[y1:y2, x1:x2] = fg[y1:y2, x1:x2]
        ref = ((ref - np.float32(mean)) / np.float32(std)).transpose(2, 0, 1)
        np.testing.assert_allclose(img.astype(np.float32), ref, rtol=2e-3, atol=2e-3)
result["cpu_vs_numpy"] = "equal"
if gpu:
    cpu = make("cpu")
    g = make("gpu")
    for it in range(3):
        for a, b in zip(run(cpu), run(g)):
            for x, y in zip(a, b):
                np.testing.assert_array_equal(x, y)
    result["gpu_vs_cpu"] = "identical (3 batches)"
    for _ in range(5):
        g.run()
    n = 30
    t0 = time.perf_counter()
    for _ in range(n):
        outs = g.run()
    outs[0].as_cpu()
    dt = (time.perf_counter() - t0) / n
    result["gpu_ms_per_batch"] = round(dt * 1e3, 3)
    result["gpu_images_per_s"] = round(B / dt, 1)
json.dump(result, open(sys.argv[2], "w"), indent=2)
print(f"CPU = NumPy reference" + (f", GPU = CPU bit for bit, {result['gpu_images_per_s']} img/s "
      f"({B}x{H}x{W} fp16 CHW incl. H2D copy)" if gpu else ""))
EOF
if (( ! plugin_ok )); then
  record smoke skipped "$(skip_reason)"
else
  smoke_dev=cpu; (( gpu_ok )) && smoke_dev=gpu
  timed 90 "$out/smoke.log" "$py" "$work/smoke.py" "$smoke_dev" "$out/smoke.json"
  if (( rc == 0 )); then
    record smoke ok "$(tail -n 1 "$out/smoke.log")" smoke.log smoke.json
  else
    record smoke "$(finish_status $rc)" "$(why "$rc" "$out/smoke.log")" smoke.log
  fi
fi

# ---- 6. tests -----------------------------------------------------------------------------
has_pytest=0; has_module pytest && has_pytest=1
has_scipy=1; has_module scipy || has_scipy=0
scipy_note=; (( has_scipy )) || scipy_note=" [scipy missing: tests/ops/test_cmo_paste.py cannot be collected]"
# pytest NAME LIMIT JUNIT ARGS...
run_pytest() {
  local name=$1 limit=$2 junit=$3; shift 3
  timed "$limit" "$out/$name.log" "$py" -m pytest -q -p no:cacheprovider -rs \
    --continue-on-collection-errors --junitxml="$out/$junit" "$@"
  local last; last=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$out/$name.log" | tail -n 1 | tr -d '=' || true)
  if (( rc == 0 )) && [[ $name == tests_gpu && $last != *passed* ]]; then
    record "$name" failed "no GPU test ran: $last (skip reasons in $name.log)$scipy_note" "$name.log" "$junit"
  elif (( rc == 0 )); then
    record "$name" ok "$last$scipy_note" "$name.log" "$junit"
  elif (( rc == 5 )); then
    record "$name" skipped "no tests collected$scipy_note" "$name.log" "$junit"
  elif (( rc == 124 || rc == 137 || rc == 99 )); then
    record "$name" "$(finish_status $rc)" "$(why "$rc" "$out/$name.log")" "$name.log" "$junit"
  else
    why "$rc" "$out/$name.log" > /dev/null
    record "$name" failed "exit $rc: $last$scipy_note" "$name.log" "$junit"
  fi
}
# A pytest step, unless the operator library did not load or the host has no pytest.
pytest_step() {
  local name=$1
  if (( ! plugin_ok )); then
    record "$name" skipped "$(skip_reason)"
  elif (( ! has_pytest )); then
    record "$name" skipped "skipped (pytest is not installed on this host; see the smoke step)"
  else
    run_pytest "$@"
  fi
}
# On the GPU host (no ../shared there) the real-data tests see the carried image subset.
if (( ! dry_run )) && [[ -z ${DALI_CMO_SHARED_DATA:-} && ! -d $repo/../shared/data && -d $carry/data ]]; then
  export DALI_CMO_SHARED_DATA=$carry/data
fi
if (( dry_run )); then
  record tests_gpu skipped "skipped (no GPU)"
else
  pytest_step tests_gpu 240 junit_gpu.xml -m gpu tests/
fi

# ---- 7. benchmarks --------------------------------------------------------------------------
dev=gpu; (( dry_run )) && dev=cpu
images=${GPU_CHECK_IMAGES:-}
if [[ -z $images ]]; then
  for d in "$carry/data/imagenet-samples" "${DALI_CMO_SHARED_DATA:-$repo/../shared/data}/imagenet-samples"; do
    if [[ -d $d ]]; then images=$d; break; fi
  done
fi
# bench NAME SCRIPT LIMIT JSON SETTINGS [ARGS...]: SETTINGS (a string of arguments) bounds the
# run: the scripts' own defaults (3 repetitions of 100 batches of 256 over six pipelines, and
# again with a ResNet-50 behind each) do not fit the budget. An empty setting variable runs
# the defaults.
bench() {
  local name=$1 script=$2 limit=$3 json=$4 settings=$5 args; shift 5
  if [[ ${GPU_CHECK_SKIP_BENCH:-0} == 1 ]]; then
    record "$name" skipped "skipped (GPU_CHECK_SKIP_BENCH=1)"; return
  elif [[ ! -f $script ]]; then
    record "$name" skipped "not available ($script absent)"; return
  elif (( ! plugin_ok )); then
    record "$name" skipped "$(skip_reason)"; return
  elif (( ! dry_run && ! gpu_ok )); then
    record "$name" skipped "skipped (no GPU)"; return
  elif (( dry_run )) && ! grep -q -- '--quick' "$script"; then
    record "$name" skipped "skipped (dry run: $script has no --quick option)"; return
  fi
  read -r -a args <<< "$settings"
  args=(--device "$dev" "$@" "${args[@]}" --json "$out/$json")
  echo "$py $script ${args[*]}" > "$out/$name.log"
  timed "$limit" "$work/$name.log" "$py" "$script" "${args[@]}"
  cat "$work/$name.log" >> "$out/$name.log"
  local what="${settings:-default settings}"
  if (( rc == 0 )); then
    record "$name" ok "$what" "$name.log" "$json"
  else
    record "$name" "$(finish_status $rc)" "$(why "$rc" "$out/$name.log") [$what]" "$name.log" "$json"
  fi
}
img_args=()
if [[ -n $images ]]; then img_args=(--images-dir "$images"); fi
if (( dry_run )); then
  paste_set="--quick" tp_set="--quick --batch-size 32" e2e_set="--quick --batch-size 16 --pipelines cmo"
else
  paste_set=${GPU_CHECK_PASTE_ARGS---reps 3}
  tp_set=${GPU_CHECK_THROUGHPUT_ARGS---reps 1 --batches 30 --warmup 10}
  e2e_set=${GPU_CHECK_E2E_ARGS---reps 1 --batches 5 --warmup 2 --e2e-batches 30 --e2e-warmup 10 --pipelines cmo,torch_reference}
fi
bench bench_paste_op benchmarks/paste_op.py 60 "paste_op_$dev.json" "$paste_set"
bench bench_throughput benchmarks/throughput.py 100 "throughput_$dev.json" "$tp_set" "${img_args[@]}"
bench bench_throughput_e2e benchmarks/throughput.py 120 "throughput_${dev}_e2e.json" "$e2e_set" \
  "${img_args[@]}" --end-to-end

# ---- 8. the operator's CPU tests (last: they matter least on a GPU host) --------------------
if [[ ${GPU_CHECK_SKIP_TESTS:-0} == 1 ]]; then
  record tests_cmo_paste_cpu skipped "skipped (GPU_CHECK_SKIP_TESTS=1)"
else
  pytest_step tests_cmo_paste_cpu 120 junit_cmo_paste_cpu.xml -m "not gpu" tests/ops/test_cmo_paste.py
fi

# ---- summary ------------------------------------------------------------------------------
summarize
