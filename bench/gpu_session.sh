#!/usr/bin/env bash
# Everything one GPU session measures, in one command run from the repository root on a
# machine with one H100 or H200, within one 10-minute device command (one deadline of
# 590 s: the build stops after 90 s, the GPU tests after at most 120 s, the verification,
# which writes its JSON after every stage, 20 s before the deadline; run it with
# timeout_s=600):
#   1. the environment (nvidia-smi, Python and package versions) into OUT/env.txt;
#   2. the native extension, built in place;
#   3. GPT-2's plan for the card (sublayers, sequence 1024, oversized layers tiled);
#   4. the tests of tests/test_cuda_sim.py that need a GPU (timings, both barriers);
#   5. bench/gpu_verify.py on the bundled groups and the plan's first 3 distinct groups:
#      calibration (16-byte stream, and the 4-byte one for comparison), barrier costs,
#      the kernel-variant sweep, the verification table;
#   6. in the time left, the other tests of tests/test_cuda_sim.py on the GPU instead of
#      the simulator (not the machine-code probe, which depends on the local ptxas).
# OUT holds at most 7 files: env.txt, session.log (build and tests), plan.json,
# verify.log, calibration.json, verification.json, bandwidth.png.
# Wheels under .whl/ are installed into /tmp/site first, where present: numba-cuda
# 0.30 compiles no kernel under numpy 2.5, so on an image with numpy 2.5 carry numpy
# 2.4.6 for the image's Python, fetched on a machine with network access:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl numpy==2.4.6
#
# Usage: bash bench/gpu_session.sh OUT_DIR [auto|h100|h200] [gpu_verify options...]
# (OUT_DIR: a new or empty folder)
# (auto, the default: the profile named by the card nvidia-smi reports). The gpu_verify
# options, the plan and the device are checked (gpu_verify --check) before the tests.
# The deadline counts from the script's start: a device whose time left after its start
# is under 600 s needs GPU_SESSION_SECONDS below that time, or the command is cut short
# before the script's own limits act.
# Exit status: 0 every criterion passed; 1 the verification ran and some criterion
# failed; 2 bad usage of this script; 3 a GPU test failed; 4 the carried wheels do not
# install, or numpy >= 2.5, or no numba-cuda (carry numpy 2.4.6 in .whl/); 5 the build
# failed; 6 the verification was stopped at its time limit (its JSON keeps what it
# measured); 7 the verification could not run (no device, a bad plan file or option,
# no time left for it) or was killed; 8 the verification stopped on an error (its traceback is in
# verify.log, its JSON keeps what it measured). A failed test outranks the
# verification's status.
set -uo pipefail

usage="usage: bash bench/gpu_session.sh OUT_DIR [auto|h100|h200] [gpu_verify options...]"
[ $# -ge 1 ] && [[ "$1" != -* ]] || { echo "$usage" >&2; exit 2; }
out=$1
card=auto
if [ $# -ge 2 ] && [[ "$2" != -* ]]; then card=$2; shift 2; else shift 1; fi
if [ "$card" = auto ]; then
  case "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" in
    *H200*) card=h200 ;;
    *H100*) card=h100 ;;
    *) echo "cannot tell the card from nvidia-smi: name h100 or h200" >&2; exit 2 ;;
  esac
fi
case "$card" in h100|h200) ;; *) echo "card must be auto, h100 or h200, got '$card'" >&2; exit 2 ;; esac
if [ -e "$out" ] && { [ ! -d "$out" ] || [ -n "$(ls -A "$out")" ]; }; then
  echo "OUT_DIR '$out' must be a new or empty folder: files of an earlier run would pass for this one's" >&2
  exit 2
fi
echo "planning for the $card profile"
mkdir -p "$out"

if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "cannot install the carried wheels" >&2; exit 4; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -c "import sys, numpy, numba_cuda
sys.exit(tuple(int(p) for p in numpy.__version__.split('.')[:2]) >= (2, 5))" || {
  echo "numba-cuda compiles no kernel under numpy $(python3 -c 'import numpy; print(numpy.__version__)' 2>&1): carry numpy 2.4.6 in .whl/ (see the header), or install numba-cuda" >&2
  exit 4
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.current.sm,clocks.current.memory,temperature.gpu,power.draw \
  --format=csv > "$out/env.txt"
python3 -c "import platform, numpy, numba, numba_cuda
print(platform.python_version(), 'numpy', numpy.__version__, 'numba', numba.__version__,
      'numba-cuda', numba_cuda.__version__)" >> "$out/env.txt"
cat "$out/env.txt"

echo "== build"
log="$out/session.log"
echo "== build" > "$log"
timeout 90 python3 setup.py -q build_ext --inplace >> "$log" 2>&1 || { tail -20 "$log"; exit 5; }

echo "== plan"
plan_option=(--plan "$out/plan.json" --plan-groups 3)
python3 -m layerwise_fast plan layerwise_fast/examples/configs/gpt2.json --hardware "$card" \
  --sequence 1024 --on-oversize tile --layers sublayer --format json > "$out/plan.json" || {
  echo "the plan failed: verifying the bundled groups alone" >&2
  rm -f "$out/plan.json"; plan_option=()
}

echo "== options"
python3 bench/gpu_verify.py --out "$out" ${plan_option[@]+"${plan_option[@]}"} "$@" --check || {
  echo "gpu_verify refuses its options, the plan or the device (above): nothing was run" >&2
  exit 7
}

echo "== GPU tests"
# One deadline for the whole script (590 s of a 600 s command; GPU_SESSION_SECONDS sets
# another). The tests that need a GPU get at most 120 s (at least 30) and leave the
# verification at least 300 s where the deadline allows; the verification gets all but
# the last 20 s; the other tests run in what the verification leaves (stopped there,
# they fail nothing).
deadline=${GPU_SESSION_SECONDS:-590}
tests_limit=$(( deadline - SECONDS - 320 )); tests_limit=$(( tests_limit > 120 ? 120 : tests_limit ))
tests_limit=$(( tests_limit < 30 ? 30 : tests_limit ))
echo "== GPU tests: those that need a GPU" >> "$log"
NUMBA_ENABLE_CUDASIM=0 timeout "$tests_limit" python3 -m pytest -q -p no:cacheprovider \
  tests/test_cuda_sim.py -k "test_gpu_" >> "$log" 2>&1
tests_status=$?
echo "GPU-only tests: pytest exit status $tests_status (124: stopped by its time limit)"
tail -2 "$log"

echo "== verification"
verify_limit=$(( deadline - SECONDS - 20 ))
if [ "$verify_limit" -ge 60 ]; then
  echo "verification time limit: $verify_limit s"
  timeout "$verify_limit" python3 bench/gpu_verify.py --out "$out" ${plan_option[@]+"${plan_option[@]}"} "$@" \
    2>&1 | tee "$out/verify.log" | tail -70
  verify_status=${PIPESTATUS[0]}
else
  echo "no time left for the verification ($verify_limit s before the deadline's last 20 s)" | tee "$out/verify.log"
  verify_status=skipped
fi
echo "gpu_verify exit status $verify_status"

others_limit=$(( deadline - SECONDS ))
others_status=skipped
if [ "$others_limit" -ge 10 ]; then
  echo "== GPU tests: the others, on the GPU" | tee -a "$log"
  NUMBA_ENABLE_CUDASIM=0 timeout "$others_limit" python3 -m pytest -q -p no:cacheprovider \
    tests/test_cuda_sim.py -k "not test_gpu_ and not assemble_without_spills" >> "$log" 2>&1
  others_status=$?
  tail -2 "$log"
fi
echo "other tests on the GPU: pytest exit status $others_status (124: stopped by its time limit)"
# The tests must pass (the others may stop at their time limit); the verification's own
# status (1: a criterion failed) is reported, its time limit as 6, an error as 8.
[ "$tests_status" -eq 0 ] || exit 3
case "$others_status" in 0|5|124|skipped) ;; *) exit 3 ;; esac
case "$verify_status" in 0|1) exit "$verify_status" ;; 3) exit 8 ;; 124) exit 6 ;; *) exit 7 ;; esac  # skipped: 7
