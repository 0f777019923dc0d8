#!/usr/bin/env bash
# The GPU check of dali-cmo in one command. Its steps, in this order (what their verdict is
# worth first; each is a program of its own, run under a time cap):
#   kernel_check     the CUDA kernel against the CPU operator's code, bit for bit (nvcc only, no
#                    DALI), then under compute-sanitizer memcheck where that can run
#   dali             DALI importable: as installed, from the site folder, or unpacked there from
#                    its parts (into a temporary folder, then renamed: never half there)
#   versions         python, torch, DALI, CuPy, pytest, nvcc
#   decode           one JPEG decoded on the GPU, whole and a region, against the CPU decoder
#   build            the operator library with CUDA for this card (kept when up to date)
#   smoke            the GPU operator against the CPU operator and the NumPy reference
#   tests_ops        the operators' GPU tests          (pytest -v, junit xml)
#   tests_pipelines  the training pipelines' GPU tests (pytest -v, junit xml)
#   paste_op         benchmarks/paste_op.py --device gpu
#   throughput       benchmarks/throughput.py --device gpu
#   e2e              benchmarks/throughput.py --device gpu --end-to-end
#
# usage: bash benchmarks/gpu_check.sh [options]
#   --budget-s S   seconds for the whole run (env GPU_CHECK_BUDGET_S; default 420). Each step
#                  must end once its share of the budget (SHARE below) and the earlier steps'
#                  shares have passed: time a step leaves unused goes to the later ones, and a
#                  slow step cannot eat theirs. A step stopped at its cap is a "timeout".
#   --steps A,B    only these steps (still in the order above); --skip A,B: all but these
#   --unfinished   only the steps of earlier runs in the work folder that have no verdict
#                  (not reached, stopped at their cap or killed): the rerun after a run that
#                  was cut short
#   --dry-run      on a CPU machine: kernel check in CPU emulation, CPU decoder, CPU operator,
#                  benchmarks --device cpu --quick; the GPU tests are "skipped (no GPU)"
#   --work DIR     where everything is written (env GPU_CHECK_WORK; default
#                  ${TMPDIR:-/tmp}/dali-cmo-gpu-check); kept between runs for --unfinished;
#                  --fresh empties it first
#   --out DIR      where, after every step, at most five files are copied (env OUT; default
#                  ./gpu_check_out): summary.json (every verdict and figure, the card, the
#                  versions, each step's seconds, exit code and cap), steps.tsv, and logs.tar.gz
#                  (logs, junit xml and JSON results, under 16 MiB)
#   --dali-parts DIR, --dali-site DIR
#                  DALI's parts (SHA256SUMS, dali.tar.xz.part*) and the folder they unpack into
#                  (env DALI_PARTS, DALI_SITE; default /tmp/dali-parts, /tmp/dali-site)
#   --carry DIR    what benchmarks/gpu_prepare.sh staged (unpack-dali.sh, images; default
#                  .gpu-carry in the checkout)
#   --images DIR   JPEGs for the decode probe and the benchmarks (default: the carry folder's,
#                  else the shared data's imagenet-samples)
#   --list         print the steps and their caps for this budget, and exit
# env: PYTHON (python3); GPU_CHECK_ARCH (the SM to build for; default: the card's);
#      GPU_CHECK_PASTE_ARGS, GPU_CHECK_THROUGHPUT_ARGS, GPU_CHECK_E2E_ARGS (benchmark settings);
#      GPU_CHECK_DRY_BUILD=installed (dry run: check the installed library instead of building
#      into a temporary folder); GPU_CHECK_FAKE_STEPS (tests: a shell command run in place of
#      every selected step, the step's name in $GPU_CHECK_STEP).
# A verdict reaches --out the moment it is known (a "running" row first), so a run killed at any
# point leaves a valid summary.json naming the step it was in. The procedure on a GPU machine
# with a short lease is in the README, section "GPU check".
# Exit status: 0 when every selected step is ok or skipped, 1 otherwise, 2 bad arguments.
set -uo pipefail

STEPS=(kernel_check dali versions decode build smoke tests_ops tests_pipelines paste_op
       throughput e2e)
# Percent of the budget per step (sum 100), after the expected times on one H100: compiling the
# kernel check and the library dominate, then the tests.
declare -A SHARE=([kernel_check]=14 [dali]=10 [versions]=3 [decode]=4 [build]=19 [smoke]=5
                  [tests_ops]=12 [tests_pipelines]=12 [paste_op]=7 [throughput]=6 [e2e]=8)
MIN_CAP_S=5            # a step with less time left is not started ("not_run")
TARBALL_MAX=$((15 * 1024 * 1024))  # under the 16 MiB a file may have to come back
LOG_TAIL=$((1024 * 1024))          # bytes kept of each log when the tarball would be larger

usage() { sed -n '2,/^set -uo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "gpu_check: $*" >&2; exit 2; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo" || exit 2
budget=${GPU_CHECK_BUDGET_S:-420}
work=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/dali-cmo-gpu-check}
out=${OUT:-$repo/gpu_check_out}
parts=${DALI_PARTS:-/tmp/dali-parts}
site=${DALI_SITE:-/tmp/dali-site}
carry=$repo/.gpu-carry
images=
mode=gpu only= skip= unfinished=0 fresh=0 list=0
while (( $# )); do
  case $1 in
    --budget-s) budget=${2:?}; shift ;;
    --steps|--only) only=${2:?}; shift ;;
    --skip) skip=${2:?}; shift ;;
    --unfinished) unfinished=1 ;;
    --dry-run) mode=dry-run ;;
    --work) work=${2:?}; shift ;;
    --fresh) fresh=1 ;;
    --out) out=${2:?}; shift ;;
    --dali-parts) parts=${2:?}; shift ;;
    --dali-site) site=${2:?}; shift ;;
    --carry) carry=${2:?}; shift ;;
    --images) images=${2:?}; shift ;;
    --list) list=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
  shift
done
[[ $budget =~ ^[0-9]+$ ]] || die "--budget-s needs whole seconds, got '$budget'"
for name in ${only//,/ } ${skip//,/ }; do
  [[ -v SHARE[$name] ]] || die "unknown step '$name'; steps: ${STEPS[*]}"
done
py=${PYTHON:-$(command -v python3 || command -v python || echo python3)}
dry_run=0; [[ $mode == dry-run ]] && dry_run=1
logs=$work/logs
table=$work/steps.tsv
(( fresh )) && rm -rf "$work"

# The last status recorded for a step in this work folder (empty: none).
last_status() { [[ -f $table ]] && awk -F'\t' -v n="$1" '$1 == n { s = $2 } END { print s }' "$table"; }
finished() { case $(last_status "$1") in ok|failed|skipped|'') return 0 ;; *) return 1 ;; esac; }

selected=()
for name in "${STEPS[@]}"; do
  [[ -n $only && ,$only, != *,$name,* ]] && continue
  [[ ,$skip, == *,$name,* ]] && continue
  (( unfinished )) && finished "$name" && continue
  selected+=("$name")
done

# Caps: the selected steps share the budget in proportion to SHARE; step k must end by
# start + budget * (shares of steps 1..k) / (shares of all selected steps).
total_share=0
for name in "${selected[@]}"; do total_share=$(( total_share + SHARE[$name] )); done
declare -A DEADLINE NOMINAL
sum=0
for name in "${selected[@]}"; do
  sum=$(( sum + SHARE[$name] ))
  DEADLINE[$name]=$(( budget * sum / total_share ))
  NOMINAL[$name]=$(( budget * SHARE[$name] / total_share ))
done
echo "[gpu-check] $mode, budget ${budget}s, ${#selected[@]} steps in this order (cap; time a" \
     "step leaves unused passes on):"
for name in "${selected[@]}"; do
  printf '[gpu-check]   %-16s %4ds  (ends by %ds)\n' "$name" "${NOMINAL[$name]}" "${DEADLINE[$name]}"
done
(( list )) && exit 0
(( ${#selected[@]} )) || echo "[gpu-check] no step selected"

mkdir -p "$logs" "$out" || die "cannot create $logs or $out"
out=$(cd "$out" && pwd)
now() { date +%s.%N; }
t_start=$(now)
elapsed() { awk -v a="$t_start" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
clean() { tr '\t\n\r' '   ' <<< "$*" | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-300; }
last_line() { grep -v '^[[:space:]]*$' "$1" 2> /dev/null | tail -n 1; }

card= arch=${GPU_CHECK_ARCH:-}
if (( ! dry_run )) && command -v nvidia-smi > /dev/null; then
  card=$(timeout 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap \
         --format=csv,noheader 2> /dev/null | head -n 1)
  [[ -n $arch ]] || arch=$(cut -d, -f4 <<< "$card" | tr -d ' .')
fi
echo "[gpu-check] card: ${card:-none}; work $work; out $out"

# publish [final]: summary.json from steps.tsv (printed when final), then summary.json,
# steps.tsv and logs.tar.gz copied to --out, each by a rename, so that --out holds whole files
# only (at most five, counting two copies a kill could leave half-made). Returns the summary's
# exit status.
publish() {
  local quiet=(--quiet) status
  [[ ${1:-} == final ]] && quiet=()
  "$py" benchmarks/gpu_check_summary.py "$work" --mode "$mode" --budget "$budget" \
    --elapsed "$(elapsed)" --card "$card" --images "$images" "${quiet[@]}"
  status=$?
  tar -C "$work" -czf "$work/logs.tar.gz.tmp" logs 2> /dev/null
  if (( $(stat -c %s "$work/logs.tar.gz.tmp") > TARBALL_MAX )); then
    rm -rf "$work/tails" && mkdir -p "$work/tails/logs"
    for f in "$logs"/*; do tail -c "$LOG_TAIL" "$f" > "$work/tails/logs/${f##*/}"; done
    tar -C "$work/tails" -czf "$work/logs.tar.gz.tmp" logs
  fi
  mv -f "$work/logs.tar.gz.tmp" "$work/logs.tar.gz"
  local f
  for f in summary.json steps.tsv logs.tar.gz; do
    [[ -f $work/$f ]] && cp "$work/$f" "$out/$f.part" && mv -f "$out/$f.part" "$out/$f"
  done
  return "$status"
}
# record NAME STATUS SECONDS EXIT CAP DETAIL [ARTIFACT]: a row of steps.tsv and a progress line.
record() {
  local detail; detail=$(clean "$6")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$detail" "${7:-}" >> "$table"
  printf '[gpu-check] %-16s %-8s %6ss  %s\n' "$1" "$2" "$3" "$detail"
  publish > /dev/null
}
skip_step() { record "$1" skipped 0 "" "" "skipped ($2)"; }

child= current=
# Stopped from outside (SIGTERM, ^C): the step in progress is recorded "killed" before exiting.
on_signal() {
  [[ -n $child ]] && kill -TERM "$child" 2> /dev/null
  [[ -n $current ]] && record "$current" killed "$(elapsed)" "" "" "the check was stopped during this step"
  exit 1
}
trap on_signal TERM INT HUP

# run NAME ARTIFACT CMD...: CMD under the step's cap, output to logs/NAME.log, its verdict
# recorded ("running" first). pytest steps are ok only when some test passed.
run() {
  local name=$1 artifact=$2; shift 2
  local cap; cap=$(cap_of "$name")
  if (( cap < MIN_CAP_S )); then
    record "$name" not_run 0 "" "$cap" "no time left in the ${budget}s budget"; return
  fi
  local log=$logs/$name.log t0 rc seconds status detail
  current=$name
  [[ -n $artifact ]] && rm -f "$logs/$artifact"  # an earlier run's, which is no verdict of this one
  record "$name" running 0 "" "$cap" "started at $(elapsed)s, cap ${cap}s" "$artifact"
  t0=$(now)
  GPU_CHECK_STEP=$name PYTHONUNBUFFERED=1 timeout -k 5 "$cap" "$@" > "$log" 2>&1 &
  child=$!
  wait "$child"; rc=$?
  child=
  seconds=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  detail=$(last_line "$log")
  if (( rc == 124 || rc == 137 )); then
    status=timeout detail="stopped at its ${cap}s cap; last line: $detail"
  elif (( rc != 0 )); then
    status=failed detail="exit $rc: $detail"
  elif [[ $name == tests_* && $detail != *passed* ]]; then
    status=failed detail="no test ran: $detail"
  else
    status=ok
  fi
  record "$name" "$status" "$seconds" "$rc" "$cap" "$detail" "$artifact"
  current=
}
cap_of() {
  awk -v a="$t_start" -v b="$(now)" -v d="${DEADLINE[$1]}" 'BEGIN { printf "%d", d - (b - a) }'
}

# The DALI site folder, where one was unpacked, is on the path of every later step.
with_site() { [[ -d $site/nvidia/dali && :${PYTHONPATH:-}: != *:$site:* ]] && export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$site; }
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH}
with_site
dev=gpu; (( dry_run )) && dev=cpu
if [[ -z $images ]]; then
  for d in "$carry/data/imagenet-samples" "${DALI_CMO_SHARED_DATA:-$repo/../shared/data}/imagenet-samples"; do
    if [[ -d $d ]]; then images=$d; break; fi
  done
fi
# On a GPU machine without ../shared the real-data tests read the carried images.
if [[ -z ${DALI_CMO_SHARED_DATA:-} && ! -d $repo/../shared/data && -d $carry/data ]]; then
  export DALI_CMO_SHARED_DATA=$carry/data
fi

# ---- the steps ------------------------------------------------------------------------------
step_kernel_check() {
  local args=(--json "$logs/kernel_check.json")
  if (( dry_run )); then args+=(--random 10); else args+=(--require-gpu ${arch:+--arch "$arch"}); fi
  run kernel_check kernel_check.json "$py" tests/ops/kernel_check/run_kernel_check.py "${args[@]}"
}

# DALI as installed, else from $site, else unpacked from $parts into $site.partial and renamed.
# Run as `bash -c dali_setup` under the step's cap (hence exported).
dali_setup() {
  set -euo pipefail
  probe() { "$py" -c 'import nvidia.dali as d; print("DALI", d.__version__, "from", d.__path__[0])'; }
  if probe 2> /dev/null; then return; fi
  if [[ ! -d $site/nvidia/dali ]]; then
    local unpack=$carry/unpack-dali.sh partial=$site.partial
    [[ -f $unpack ]] || unpack=$repo/../shared/gpu/unpack-dali.sh
    [[ -f $parts/SHA256SUMS ]] || { echo "no DALI: not importable, no $site, no $parts/SHA256SUMS"; exit 1; }
    [[ -f $unpack ]] || { echo "unpack-dali.sh not found (benchmarks/gpu_prepare.sh stages it)"; exit 1; }
    rm -rf "$partial"
    bash "$unpack" "$parts" "$partial"
    # The codec wheels' empty nvidia/__init__.py would make nvidia a regular package that hides
    # the machine's own nvidia.* wheels (torch's CUDA libraries): let both be found.
    if [[ -f $partial/nvidia/__init__.py && ! -s $partial/nvidia/__init__.py ]]; then
      echo '__path__ = __import__("pkgutil").extend_path(__path__, __name__)' > "$partial/nvidia/__init__.py"
    fi
    rm -rf "$site"
    mv -T "$partial" "$site"
  fi
  PYTHONPATH=$PYTHONPATH:$site probe
}
step_dali() {
  export -f dali_setup
  export py site parts carry repo
  run dali "" bash -c dali_setup
  with_site
}

step_versions() { run versions versions.json "$py" benchmarks/gpu_versions.py "$logs/versions.json"; }

step_decode() {
  [[ -n $images ]] || { skip_step decode "no JPEG folder: pass --images"; return; }
  run decode decode.json "$py" benchmarks/gpu_decode_probe.py "$dev" "$images" "$logs/decode.json"
}

step_build() {
  local args
  if (( dry_run )) && [[ ${GPU_CHECK_DRY_BUILD:-} == installed ]]; then
    run build "" "$py" -c 'import dali_cmo; i = dali_cmo.build_info(); print("the installed library as is:", ("CUDA sm_" + "/sm_".join(i["cuda_archs"])) if i["cuda"] else "CPU only", "DALI", i["dali_version"])'
    return
  elif (( dry_run )); then
    args=(--no-cuda --out-dir "$work/build-dry-run")
  elif [[ -z $arch ]]; then
    record build failed 0 "" "" "no GPU compute capability (set GPU_CHECK_ARCH)"; return
  else
    args=(--cuda --archs "$arch" --if-stale)
  fi
  run build "" "$py" -m dali_cmo build -v "${args[@]}"
}

step_smoke() { run smoke smoke.json "$py" benchmarks/gpu_smoke.py "$dev" "$logs/smoke.json"; }

# pytest_step NAME PATHS...: the GPU tests under PATHS, -v and junit (a step stopped at its cap
# still leaves its log up to the test it was in), a per-test timeout where pytest-timeout is.
pytest_step() {
  local name=$1; shift
  if (( dry_run )); then skip_step "$name" "no GPU"; return; fi
  if ! timeout 60 "$py" -c 'import pytest' 2> /dev/null; then
    skip_step "$name" "pytest is not installed; see the smoke step"; return
  fi
  local per_test=()
  if timeout 60 "$py" -c 'import pytest_timeout' 2> /dev/null; then
    per_test=(--timeout "$(( $(cap_of "$name") / 2 ))")
  fi
  run "$name" "junit_$name.xml" "$py" -m pytest -v -rs -p no:cacheprovider -m gpu \
    "${per_test[@]}" --junitxml="$logs/junit_$name.xml" "$@"
}
step_tests_ops() { pytest_step tests_ops tests/ops --ignore=tests/ops/test_gpu_pipelines.py; }
step_tests_pipelines() {
  pytest_step tests_pipelines tests/ops/test_gpu_pipelines.py tests/augment tests/data
}

# bench NAME SCRIPT SETTINGS [ARGS...]: SETTINGS (one string of arguments) keeps the run short.
bench() {
  local name=$1 script=$2 settings=$3; shift 3
  local extra; read -r -a extra <<< "$settings"
  run "$name" "$name.json" "$py" "$script" --device "$dev" "$@" "${extra[@]}" --json "$logs/$name.json"
}
img_args=(); [[ -n $images ]] && img_args=(--images-dir "$images")
if (( dry_run )); then
  paste_set="--quick" tp_set="--quick --batch-size 32" e2e_set="--quick --batch-size 16 --pipelines cmo"
else
  paste_set=${GPU_CHECK_PASTE_ARGS---reps 3}
  tp_set=${GPU_CHECK_THROUGHPUT_ARGS---reps 1 --batches 30 --warmup 10}
  e2e_set=${GPU_CHECK_E2E_ARGS---reps 1 --batches 5 --warmup 2 --e2e-batches 30 --e2e-warmup 10 --pipelines cmo,torch_reference}
fi
step_paste_op() { bench paste_op benchmarks/paste_op.py "$paste_set"; }
step_throughput() { bench throughput benchmarks/throughput.py "$tp_set" "${img_args[@]}"; }
step_e2e() { bench e2e benchmarks/throughput.py "$e2e_set" "${img_args[@]}" --end-to-end; }

# Every selected step is "pending" until it runs: a run cut short leaves them to --unfinished.
for name in "${selected[@]}"; do
  printf '%s\tpending\t0\t\t%s\t%s\t\n' "$name" "${NOMINAL[$name]}" "not reached yet" >> "$table"
done
publish > /dev/null
for name in "${selected[@]}"; do
  if [[ -n ${GPU_CHECK_FAKE_STEPS:-} ]]; then
    run "$name" "" bash -c "$GPU_CHECK_FAKE_STEPS"
  else
    "step_$name"
  fi
done
publish final
