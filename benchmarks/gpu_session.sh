#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool: H100/H200, JAX and no TensorFlow, nothing to
# download, at most 10 minutes a call): the JAX-backend training benchmark and the stored deep runs
# of the laptop profile, in issue-13 order, as far as the time allows.  Everything it makes goes to
# $OUT: the log, the benchmark JSON, and the finished run directories as one tarball (no weights).
#
# Prepare here (once per machine; the wheels Python 3.12 lacks there, see the device README):
#   benchmarks/gpu_session.sh --fetch-wheels
# then, through the device tool (carry .whl):
#   bash benchmarks/gpu_session.sh
# and back here:
#   tar xzf <files_at>/runs.tgz -C results        # only finished runs are in it
#   cp <files_at>/training_gpu_jax.json benchmarks/results/
#
# Settings (environment): BUDGET_S (default 540: seconds for the whole script, simulation and
# benchmark included), MODELS (default: the largest first), BENCH (default 0: 1 spends up to 200 s of
# the budget on bench_training.py --quick first), TRAIN_ARGS (appended to every
# `cmlib train`; tests only), N_CLUSTERS (default 7946; tests only).  A run is started only while
# more than MIN_RUN_S (default 120) seconds are left; a run cut by the budget stays unfinished and is
# not in the tarball, so no run ever "stops because the budget ran out" in the results.
set -uo pipefail

# what the GPU image lacks of cmlib's training path, at the versions of requirements/constraints.txt
NEEDS="keras namex optree astropy pyerfa astropy-iers-data colossus"

if [[ "${1:-}" == "--fetch-wheels" ]]; then
    mkdir -p .whl
    WHEELS=()
    for n in $NEEDS; do
        pin=$(grep -i "^$n==" requirements/constraints.txt) || { echo "$n is not pinned in requirements/constraints.txt" >&2; exit 2; }
        WHEELS+=("$pin")
    done
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform any -d .whl "${WHEELS[@]}"
    exit $?
fi

T0=$(date +%s)
OUT=${OUT:-$PWD/gpu_out}
mkdir -p "$OUT"
BUDGET_S=${BUDGET_S:-540}
MIN_RUN_S=${MIN_RUN_S:-120}
N_CLUSTERS=${N_CLUSTERS:-7946}
# the largest models first (issue 13: the GPU is for EfficientNet-B7 and ResNet152/152V2, which cost 4-13 h
# a run on the CPU); a seed already finished here is found and skipped in about a second
MODELS=${MODELS:-efficientnetb7 resnet152 resnet152v2 resnet50v2 vgg16 vgg19 resnet50 resnet101 resnet101v2}
TRAIN_ARGS=${TRAIN_ARGS:-}
PY=${PYTHON:-python3}
exec > >(tee -a "$OUT/gpu_session.log") 2>&1

left() { echo $(( BUDGET_S - ($(date +%s) - T0) )); }
say() { echo "[gpu_session $(( $(date +%s) - T0 )) s] $*"; }

if compgen -G ".whl/*.whl" > /dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { say "wheel install failed"; exit 2; }
    export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L 2>/dev/null | tee "$OUT/devices.txt"
$PY -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" \
    || { say "JAX/Keras not importable"; exit 2; }

# the data: the same seed gives the same clusters; its content hash is checked against the stored runs'
DATA=data/efeds_mock.h5
mkdir -p data
if [[ ! -f $DATA ]]; then
    $PY -m cmlib.cli simulate --n "$N_CLUSTERS" --seed 0 --out "$DATA" || { say "simulation failed"; exit 2; }
fi
$PY - "$DATA" <<'EOF'
import glob, json, sys
import h5py
got = h5py.File(sys.argv[1], "r").attrs["content_sha256"]
stored = {json.load(open(p))["data_sha256"] for p in glob.glob("results/runs/*/*/seed-*/config.json")}
print(f"data content_sha256 {got[:12]}: " + ("the stored runs' data" if got in stored else
      "NOT the data of any stored run: runs made here will show as made on other data"))
EOF
say "data ready, $(left) s left"

if [[ "${BENCH:-0}" == 1 ]]; then
    timeout $(( $(left) > 240 ? 200 : $(left) / 2 )) $PY benchmarks/bench_training.py --quick --data "$DATA" \
        --out "$OUT/training_gpu_jax.json" || say "benchmark stopped early (its JSON keeps the rows done)"
    say "benchmark done, $(left) s left"
fi

touch "$OUT/.start"
for m in $MODELS; do
    while read -r cmd; do
        [[ -z $cmd ]] && continue
        seeds=$(sed -E 's/.*--seeds ([0-9,-]+).*/\1/' <<<"$cmd")
        for s in $($PY -c "from cmlib.book.profiles import parse_seed_list as p; print(*p('$seeds'))"); do
            if (( $(left) < MIN_RUN_S )); then say "budget reached before $m seed $s"; break 3; fi
            one=$(sed -E "s/--seeds [0-9,-]+/--seeds $s/" <<<"$cmd")
            say "$one $TRAIN_ARGS"
            # shellcheck disable=SC2086
            timeout "$(left)" $PY -m cmlib.cli ${one#cmlib } $TRAIN_ARGS || say "$m seed $s did not finish"
        done
    done < <($PY -m cmlib.cli stored-runs --dry-run --models "$m")
done

# finished runs made in this call (status complete), without checkpoints or weights
$PY - "$OUT" <<'EOF'
import json, os, sys, tarfile
from pathlib import Path
out = Path(sys.argv[1]); start = (out / ".start").stat().st_mtime
done = []
for st in Path("results/runs").glob("*/*/seed-*/status.json"):
    s = json.loads(st.read_text())
    if s.get("status") == "complete" and st.stat().st_mtime >= start:
        done.append(st.parent)
with tarfile.open(out / "runs.tgz", "w:gz") as tar:
    for d in done:
        for f in d.iterdir():
            if f.is_file() and f.suffix not in (".keras", ".h5") and f.name != ".lock":
                tar.add(f, arcname=str(f.relative_to("results")))
print(f"{len(done)} finished run(s) in runs.tgz:", *sorted(str(d) for d in done), sep="\n  ")
EOF
rm -f "$OUT/.start"
say "done"
