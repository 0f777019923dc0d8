#!/usr/bin/env bash
# Validation of dali-cmo on a GPU host in one command. This script only orchestrates: every step
# is a program of its own (Python files in benchmarks/ and tests/), run under a time limit,
# recorded in $OUT/steps.tsv and summarised by benchmarks/gpu_check_summary.py into
# $OUT/summary.json and one printed line per step, with the device minutes each step used.
#
# usage: bash benchmarks/gpu_check.sh [--dry-run | --kernel-only | --plan]
#   (none)         on a GPU host: all steps below
#   --kernel-only  the GPU and the standalone kernel check only: nvcc, no DALI (the first call of
#                  a GPU session, beside the first DALI part)
#   --dry-run      on a CPU machine: the installed DALI and operator library, the kernel check in
#                  its CPU mode, the build into a temporary folder (or, with
#                  GPU_CHECK_DRY_BUILD=installed, the installed library as is), GPU-only steps
#                  "skipped (no GPU)", benchmarks with --device cpu --quick
#   --plan         print the device-time plan of a GPU session and exit
# steps: gpu, kernel_check, dali, versions, build, smoke, tests_gpu, bench_paste_op,
#        bench_throughput, bench_throughput_e2e, tests_ops_cpu
# env: OUT (default ./gpu_check_out), PYTHON (python3), DALI_SITE (/tmp/dali-site), DALI_PARTS
#      (/tmp/dali-parts), GPU_CHECK_BUDGET_S (330), GPU_CHECK_ARCH (override the detected SM),
#      GPU_CHECK_IMAGES (images for the benchmarks), GPU_CHECK_SKIP_BENCH=1,
#      GPU_CHECK_SKIP_TESTS=1, GPU_CHECK_PASTE_ARGS / GPU_CHECK_THROUGHPUT_ARGS /
#      GPU_CHECK_E2E_ARGS (benchmark settings on the GPU), GPU_CHECK_DRY_CUDA=1 (dry run: build
#      with nvcc too), GPU_CHECK_SPENT_S (device seconds the session used before this call, for
#      the summary's retry estimate).
# The procedure on a GPU host (where DALI's parts go, which command each call runs) is in the
# README, section "GPU check"; how files reach such a host is in ../shared/gpu/README.md.
# Exit status: 0 when no step failed, 1 otherwise (the summary is written either way).
set -euo pipefail

mode=gpu
for arg in "$@"; do
  case $arg in
    --dry-run) mode=dry-run ;;
    --kernel-only) mode=kernel-only ;;
    --plan) mode=plan ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (usage: $0 [--dry-run | --kernel-only | --plan])" >&2; exit 2 ;;
  esac
done

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
py=${PYTHON:-$(command -v python3 || command -v python || echo python3)}
budget=${GPU_CHECK_BUDGET_S:-330}
if [[ $mode == plan ]]; then
  exec "$py" benchmarks/gpu_check_summary.py --plan --budget "$budget"
fi
out=${OUT:-$repo/gpu_check_out}
mkdir -p "$out"
out=$(cd "$out" && pwd)
site=${DALI_SITE:-/tmp/dali-site}
parts=${DALI_PARTS:-/tmp/dali-parts}
carry=$repo/.gpu-carry
work=$(mktemp -d)
dry_run=0; [[ $mode == dry-run ]] && dry_run=1
summarized=0
summarize() {
  summarized=1
  "$py" benchmarks/gpu_check_summary.py "$out" --mode "$mode" --elapsed "$(since "$t_start")" \
    --budget "$budget" --images "${images:-}" --spent-before "${GPU_CHECK_SPENT_S:-}"
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
# why RC LOG: a short reason for a failed command, and its log tail on stderr.
why() {
  local rc=$1 log=$2
  if (( rc == 124 || rc == 137 )); then echo "timed out after ${timed_limit}s"; return; fi
  if (( rc == 99 )); then echo "no time left in the ${budget}s budget"; return; fi
  { echo "    --- last lines of $(basename "$log") ---"; tail -n 15 "$log" | sed 's/^/    /'; } >&2
  echo "exit $rc: $(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-160)"
}
status_of() { (( $1 == 0 )) && echo ok || { (( $1 == 99 )) && echo skipped || echo failed; }; }
# step NAME LIMIT ARTIFACT CMD...: runs CMD, records ok (its last output line) or why not.
step() {
  local name=$1 limit=$2 artifact=$3; shift 3
  timed "$limit" "$out/$name.log" "$@"
  if (( rc == 0 )); then
    record "$name" ok "$(grep -v '^\s*$' "$out/$name.log" | tail -n 1)" "$name.log" "$artifact"
  else
    record "$name" "$(status_of $rc)" "$(why "$rc" "$out/$name.log")" "$name.log" "$artifact"
  fi
}

echo "[gpu-check] mode $mode, output $out, budget ${budget}s, python $py"
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}

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
    record gpu "$(status_of $rc)" "$(why "$rc" "$out/nvidia-smi.txt")" nvidia-smi.txt
  fi
fi

# ---- 2. the standalone kernel check (nvcc only; on a CPU machine the kernel body emulated) --
kernel_args=(--json "$out/kernel_check.json")
if (( dry_run )); then
  kernel_args+=(--random 10)
else
  kernel_args+=(--require-gpu ${arch:+--arch "$arch"})
fi
step kernel_check 150 kernel_check.json "$py" tests/ops/kernel_check/run_kernel_check.py "${kernel_args[@]}"
if [[ $mode == kernel-only ]]; then
  summarize
  exit $?
fi

# ---- 3. DALI ------------------------------------------------------------------------------
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

# ---- 4. versions --------------------------------------------------------------------------
step versions 90 versions.json "$py" benchmarks/gpu_versions.py "$out/versions.json"
has_module() { timeout 60 "$py" -c "import $1" > /dev/null 2>&1; }

# ---- 5. build (kept when the library was built from the same sources for this GPU) ----------
build_ok=0
if (( ! dali_ok )); then
  record build skipped "skipped (no DALI)"
elif (( dry_run )) && [[ ${GPU_CHECK_DRY_BUILD:-} == installed ]]; then
  step_secs=0
  build_ok=1
  built=$("$py" -c 'import dali_cmo; i = dali_cmo.build_info(); print(("CUDA sm_" + "/sm_".join(i["cuda_archs"])) if i["cuda"] else "CPU only", "DALI", i["dali_version"])' 2>&1 | tail -n 1)
  record build ok "the installed library as is ($built) [dry run, GPU_CHECK_DRY_BUILD=installed]"
elif (( ! dry_run )) && [[ -z $arch ]]; then
  record build failed "no GPU compute capability (set GPU_CHECK_ARCH)"
else
  if (( dry_run )); then
    build_args=(--out-dir "$work/lib")
    if [[ ${GPU_CHECK_DRY_CUDA:-0} == 1 ]]; then build_args+=(--cuda --archs "${arch:-90}"); else build_args+=(--no-cuda); fi
    note="dry run: into a temporary folder, dali_cmo/ops/lib kept"
  else
    build_args=(--cuda --archs "$arch" --if-stale) note="sm_$arch"
  fi
  timed 200 "$out/build.log" "$py" -m dali_cmo build -v "${build_args[@]}"
  if (( rc == 0 )); then
    build_ok=1
    record build ok "$(grep -E '^(built|kept) ' "$out/build.log" | tail -n 1 | sed "s#$work/##; s#$repo/##") [$note]" build.log
  else
    record build "$(status_of $rc)" "$(why "$rc" "$out/build.log")" build.log
  fi
fi
# the operator library the following steps load: the fresh one on the GPU host, the installed
# one in a dry run
plugin_ok=$(( dali_ok && (build_ok || dry_run) ))
skip_reason() { (( dali_ok )) && echo "skipped (build failed)" || echo "skipped (no DALI)"; }

# ---- 6. smoke: the operator against the tests' NumPy reference, GPU against CPU -------------
smoke_dev=cpu; (( gpu_ok )) && smoke_dev=gpu
if (( ! plugin_ok )); then
  record smoke skipped "$(skip_reason)"
else
  step smoke 90 smoke.json "$py" benchmarks/gpu_smoke.py "$smoke_dev" "$out/smoke.json"
fi

# ---- 7. tests -----------------------------------------------------------------------------
has_pytest=0; has_module pytest && has_pytest=1
# pytest_step NAME LIMIT JUNIT ARGS...: unless the library did not load or there is no pytest.
pytest_step() {
  local name=$1 limit=$2 junit=$3; shift 3
  if (( ! plugin_ok )); then
    record "$name" skipped "$(skip_reason)"; return
  elif (( ! has_pytest )); then
    record "$name" skipped "skipped (pytest is not installed on this host; see the smoke step)"; return
  fi
  timed "$limit" "$out/$name.log" "$py" -m pytest -q -p no:cacheprovider -rs \
    --continue-on-collection-errors --junitxml="$out/$junit" "$@"
  local last; last=$(grep -E '(passed|failed|error|skipped|no tests ran)' "$out/$name.log" | tail -n 1 | tr -d '=' || true)
  if (( rc == 0 )) && [[ $name == tests_gpu && $last != *passed* ]]; then
    record "$name" failed "no GPU test ran: $last (skip reasons in $name.log)" "$name.log" "$junit"
  elif (( rc == 0 )); then
    record "$name" ok "$last" "$name.log" "$junit"
  elif (( rc == 5 )); then
    record "$name" skipped "no tests collected" "$name.log" "$junit"
  elif (( rc == 124 || rc == 137 || rc == 99 )); then
    record "$name" "$(status_of $rc)" "$(why "$rc" "$out/$name.log")" "$name.log" "$junit"
  else
    why "$rc" "$out/$name.log" > /dev/null
    record "$name" failed "exit $rc: $last" "$name.log" "$junit"
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

# ---- 8. benchmarks --------------------------------------------------------------------------
dev=gpu; (( dry_run )) && dev=cpu
images=${GPU_CHECK_IMAGES:-}
if [[ -z $images ]]; then
  for d in "$carry/data/imagenet-samples" "${DALI_CMO_SHARED_DATA:-$repo/../shared/data}/imagenet-samples"; do
    if [[ -d $d ]]; then images=$d; break; fi
  done
fi
# bench NAME SCRIPT LIMIT JSON SETTINGS [ARGS...]: SETTINGS (a string of arguments) bounds the
# run: the scripts' own defaults do not fit the budget. An empty setting runs the defaults.
bench() {
  local name=$1 script=$2 limit=$3 json=$4 settings=$5 args; shift 5
  if [[ ${GPU_CHECK_SKIP_BENCH:-0} == 1 ]]; then
    record "$name" skipped "skipped (GPU_CHECK_SKIP_BENCH=1)"; return
  elif (( ! plugin_ok )); then
    record "$name" skipped "$(skip_reason)"; return
  elif (( ! dry_run && ! gpu_ok )); then
    record "$name" skipped "skipped (no GPU)"; return
  fi
  read -r -a args <<< "$settings"
  args=(--device "$dev" "$@" "${args[@]}" --json "$out/$json")
  timed "$limit" "$out/$name.log" "$py" "$script" "${args[@]}"
  local what="${settings:-default settings}"
  if (( rc == 0 )); then
    record "$name" ok "$what" "$name.log" "$json"
  else
    record "$name" "$(status_of $rc)" "$(why "$rc" "$out/$name.log") [$what]" "$name.log" "$json"
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

# ---- 9. the operators' CPU tests (last: they matter least on a GPU host) -------------------
if [[ ${GPU_CHECK_SKIP_TESTS:-0} == 1 ]]; then
  record tests_ops_cpu skipped "skipped (GPU_CHECK_SKIP_TESTS=1)"
else
  pytest_step tests_ops_cpu 120 junit_ops_cpu.xml -m "not gpu" tests/ops/test_cmo_paste.py \
    tests/ops/test_output_conversion.py tests/ops/test_kernel_emulation.py
fi

# ---- summary ------------------------------------------------------------------------------
summarize
