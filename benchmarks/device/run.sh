#!/bin/bash
# GPU check: run from the repository root on a machine with a CUDA GPU, after benchmarks/device/prepare.sh
# (its .whl/ and .gpu/ folders beside the code). Writes its logs under $OUT (default /tmp/gpu-check):
#   summary.txt    the machine, then one line per step with its exit status;
#   cudatests.log  the CUDA tests; demo.log + demo-compare.txt  the demo graded on the GPU against each
#   sample's expected points (with the feedback of any that differs); student.json/.log/-real.ipynb
#   benchmarks/device/student.py; pytest.log  the part-3 and grading tests with kernels on the GPU.
# LIMIT (seconds, default 540) bounds the whole; each step has its own share.
set -u
export PYTHONUNBUFFERED=1 OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
T0=$(date +%s)
LIMIT=${LIMIT:-540}
S=$OUT/summary.txt
el() { echo $(( $(date +%s) - T0 )); }
log() { echo "[$(el)s] $*" | tee -a "$S"; }
left() { echo $(( LIMIT - $(el) )); }
{ nvidia-smi -L; nproc; python3 --version
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  head -1 /etc/os-release; uname -r; } >> "$S" 2>&1

# 1. Packages (into the Python that runs this) and bubblewrap, where missing.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile .whl/*.whl > "$OUT/setup.log" 2>&1 \
    && log "wheels installed" || log "pip install of the wheels FAILED (setup.log)"
  python3 -m ipykernel install --sys-prefix --name python3 >> "$OUT/setup.log" 2>&1 || log "ipykernel install FAILED"
fi
if ! command -v bwrap > /dev/null && ls .gpu/bubblewrap_*.deb > /dev/null 2>&1; then
  mkdir -p /opt/bw && for f in .gpu/*.deb; do dpkg -x "$f" /opt/bw; done
  if ldd /opt/bw/usr/bin/bwrap | grep -q "not found"; then
    printf '#!/bin/sh\nLD_LIBRARY_PATH=/opt/bw/lib/x86_64-linux-gnu:/opt/bw/usr/lib/x86_64-linux-gnu exec /opt/bw/usr/bin/bwrap "$@"\n' \
      > /usr/local/bin/bwrap
    chmod +x /usr/local/bin/bwrap
  else
    ln -sf /opt/bw/usr/bin/bwrap /usr/local/bin/bwrap
  fi
fi
python3 -c "
from autograder.runner.sandbox import sandbox_support; print('sandbox:', sandbox_support() or 'works')
from autograder.runner.cgroups import SlotCgroup
try:
    SlotCgroup.create('probe', 2**30, 64).close(); print('cgroup limits: work')
except Exception as e: print('cgroup limits:', type(e).__name__, e)
" >> "$S" 2>&1
log "setup done"

# 2. The CUDA tests.
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_evaluate.py > "$OUT/cudatests.log" 2>&1
log "cuda tests rc $?: $(tail -1 "$OUT/cudatests.log")"

# 3. The demo, grader and kernels on the GPU, against each sample's expected points.
timeout 200 python3 -m autograder demo --out /tmp/gpu-demo > "$OUT/demo.log" 2>&1
log "demo rc $?"
python3 -m benchmarks.device.compare /tmp/gpu-demo/grading/grades.csv /tmp/gpu-demo/grading/feedback \
  > "$OUT/demo-compare.txt" 2>&1
log "demo grades as expected: rc $? ($(grep -c '^same' "$OUT/demo-compare.txt") same, $(grep -c '^DIFFERENT' "$OUT/demo-compare.txt") different)"

# 4. A student's run of the bundle on the real sample, then its grades.
if [ -f .gpu/CINIC-10-sample.tar.gz ]; then
  STUDENT_CELL_TIMEOUT=120 SAMPLE_TAR=.gpu/CINIC-10-sample.tar.gz timeout 240 python3 benchmarks/device/student.py > "$OUT/student.log" 2>&1
  log "student run rc $?"
  python3 -m pip uninstall -y -q pruning-course-helpers >> "$OUT/setup.log" 2>&1
else
  log "no .gpu/CINIC-10-sample.tar.gz: student run skipped"
fi

# 5. The part-3 and grading tests with the kernels on the GPU, in what time is left.
T=$(( $(left) - 20 ))
if [ "$T" -gt 60 ]; then
  timeout -s INT -k 15 "$T" python3 -m pytest -v -rfE -p no:cacheprovider -n 8 tests/test_removal.py \
    tests/test_grading_app.py tests/test_notebook.py > "$OUT/pytest.log" 2>&1
  log "pytest rc $? (limit ${T}s): $(tail -1 "$OUT/pytest.log")"
fi
log "end"
