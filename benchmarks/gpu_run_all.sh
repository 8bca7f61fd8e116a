#!/usr/bin/env bash
# Every GPU check in one command, within a time budget (default 470 s: fits one 8-minute call
# on a GPU machine, with the start-up around it). From the repository root:
#
#     bash benchmarks/gpu_run_all.sh            # or: make gpu-all
#
# Runs, in this order, each under its share of the budget (a part cut short keeps what it
# wrote; the next part still runs):
#   1. benchmarks/gpu_check.py --sections train eval ddp   (BoT R50 b64 step modes, MSMT-scale
#      evaluation, NCCL DDP)
#   2. the CUDA test suite: pytest -m cuda tests/gpu        (what `make gpu-test` runs)
#   3. benchmarks/gpu_e2e.py, when present                  (Market-size set, BoT R50 24 epochs)
#   4. benchmarks/gpu_check.py --sections train_b256 faiss tensorrt
# and writes benchmarks/results/gpu_run_<gpu name>/ : gpu_check.json, gpu_check_b256.json,
# gpu_test.xml (JUnit), gpu_e2e.json, the logs, and summary.json (each part's exit code,
# seconds, whether it timed out, the test counts and failures).
#
# Environment: PYTHON (default python), GPU_RUN_BUDGET_S (default 470), RESULTS_DIR (default
# benchmarks/results/gpu_run_<gpu name>), E2E_ARGS (extra gpu_e2e.py arguments, e.g.
# "--opts SOLVER.CUDA_GRAPH True"). Needs torch with CUDA, pytest and tabulate; installs nothing.
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET=${GPU_RUN_BUDGET_S:-470}
START=$(date +%s)

SLUG=$($PY -c "import sys; sys.path.insert(0, 'benchmarks'); import gpu_check; print(gpu_check.gpu_slug())")
OUT=${RESULTS_DIR:-benchmarks/results/gpu_run_${SLUG}}
mkdir -p "$OUT"
PARTS="$OUT/parts.tsv"
: > "$PARTS"

remaining() { echo $((BUDGET - ($(date +%s) - START))); }

# run NAME SECONDS COMMAND...: run under `timeout`, log to $OUT/NAME.log, record the outcome.
run() {
    local name=$1 limit=$2
    shift 2
    if [ "$limit" -lt 20 ]; then
        printf '%s\tskipped\t0\tno time left\n' "$name" >> "$PARTS"
        echo "[gpu_run_all] $name: skipped, no time left"
        return
    fi
    echo "[gpu_run_all] $name (at most ${limit}s): $*"
    local t0=$(date +%s)
    timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.log" 2>&1
    local code=$?
    local took=$(($(date +%s) - t0))
    printf '%s\t%s\t%s\t%s\n' "$name" "$code" "$took" "$limit" >> "$PARTS"
    echo "[gpu_run_all] $name: exit $code after ${took}s"
    tail -n 40 "$OUT/$name.log"
}

min() { [ "$1" -lt "$2" ] && echo "$1" || echo "$2"; }

run gpu_check $(min 200 "$(remaining)") \
    $PY benchmarks/gpu_check.py --sections train eval ddp --output "$OUT/gpu_check.json"

if $PY -c "import pytest" 2>/dev/null; then
    run gpu_test $(min 150 $(($(remaining) - 120))) \
        $PY -m pytest -q -m cuda tests/gpu -p no:cacheprovider --junitxml "$OUT/gpu_test.xml"
else
    printf 'gpu_test\tskipped\t0\tpytest is not installed\n' >> "$PARTS"
fi

if [ -f benchmarks/gpu_e2e.py ]; then
    E2E_LIMIT=$(($(remaining) - 30))
    # shellcheck disable=SC2086
    run gpu_e2e "$E2E_LIMIT" $PY benchmarks/gpu_e2e.py --budget-s $((E2E_LIMIT - 10)) \
        --output "$OUT/gpu_e2e.json" ${E2E_ARGS:-}
else
    printf 'gpu_e2e\tskipped\t0\tbenchmarks/gpu_e2e.py is not in this tree\n' >> "$PARTS"
fi

run gpu_check_b256 $(($(remaining) - 5)) \
    $PY benchmarks/gpu_check.py --sections train_b256 faiss tensorrt \
    --output "$OUT/gpu_check_b256.json"

$PY - "$OUT" "$BUDGET" "$START" <<'EOF'
import datetime, json, os, sys, time
import xml.etree.ElementTree as ET

out, budget, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
parts = []
with open(os.path.join(out, "parts.tsv"), encoding="utf-8") as f:
    for line in f:
        name, code, seconds, note = line.rstrip("\n").split("\t")
        part = {"part": name, "seconds": int(seconds)}
        if code == "skipped":
            part["skipped"] = note
        else:
            part["exit_code"] = int(code)
            part["timed_out"] = int(code) in (124, 130, 137)
            part["limit_s"] = int(note)
        parts.append(part)
tests = None
xml_path = os.path.join(out, "gpu_test.xml")
if os.path.exists(xml_path):
    suites = ET.parse(xml_path).getroot()
    suites = [suites] if suites.tag == "testsuite" else list(suites)
    tests = {k: sum(int(s.get(k, 0)) for s in suites)
             for k in ("tests", "failures", "errors", "skipped")}
    tests["failed"] = [
        f"{case.get('classname')}::{case.get('name')}"
        for s in suites for case in s.iter("testcase")
        if case.find("failure") is not None or case.find("error") is not None
    ]
try:
    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    torch_version = torch.__version__
except Exception as exc:  # the summary must still be written
    gpu, torch_version = f"unknown ({exc})", None
summary = {
    "date": datetime.date.today().isoformat(),
    "command": "bash benchmarks/gpu_run_all.sh",
    "gpu": gpu,
    "torch": torch_version,
    "budget_s": budget,
    "total_s": int(time.time()) - start,
    "parts": parts,
    "tests": tests,
}
tmp = os.path.join(out, "summary.json.tmp")
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(summary, f, indent=1)
os.replace(tmp, os.path.join(out, "summary.json"))
print(json.dumps(summary, indent=1))
EOF
