#!/bin/bash
# GPU check, preparation on a machine with pip and apt (not the GPU machine): everything the check needs
# that a CUDA image with torch, torchvision, numpy, matplotlib and pytest lacks, into two ignored folders
# of the repository root that travel with it:
#   .whl/  wheels for CPython 3.12 on x86-64 Linux (benchmarks/device/wheels.txt, torch-pruning, RapidFuzz),
#          nbgrader's without its documentation, tests and browser extension (about 20 MB in all);
#   .gpu/  Debian's bubblewrap and the libraries it links, and the real sample (SAMPLE, optional).
# Usage: bash benchmarks/device/prepare.sh [path/to/CINIC-10-sample.tar.gz]
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || printf '/.whl/\n/.gpu/\n' >> .git/info/exclude
rm -rf .whl && mkdir -p .whl .gpu
plat=""
for n in 5 17 24 26 27 28 31 34; do plat="$plat --platform manylinux_2_${n}_x86_64"; done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp $plat \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r benchmarks/device/wheels.txt \
  "torch-pruning>=1.5"
python3 - <<'PY'
import glob, os, zipfile
src = glob.glob(".whl/nbgrader-*.whl")[0]
drop = lambda n: n.startswith(("nbgrader/docs/", "nbgrader/tests/", "nbgrader/labextension/static/",
                               "nbgrader/server_extensions/formgrader/static/")) or "/share/jupyter/labextensions/" in n
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(src + ".tmp", "w", zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        if drop(info.filename):
            continue
        data = zi.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD"):
            data = "".join(l + "\n" for l in data.decode().splitlines() if not drop(l.split(",")[0])).encode()
        zo.writestr(info, data)
os.replace(src + ".tmp", src)
PY
(cd .gpu && apt-get download bubblewrap libselinux1 libpcre2-8-0 libcap2 2>/dev/null)
if [ -n "${1:-}" ]; then cp "$1" .gpu/CINIC-10-sample.tar.gz; fi
du -sh .whl .gpu
