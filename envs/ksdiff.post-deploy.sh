#!/usr/bin/env bash
# Run by Snakemake inside the new conda env of envs/ksdiff.yaml (--sdm conda): the wheels
# that must come without their declared dependencies (envs/requirements-nodeps.txt says
# why) and ksdiff itself, editable from the workflow's source folder, which the workflow
# exports as KSDIFF_SOURCE (this script runs from a copy, so it cannot find it by path).
set -euo pipefail
: "${KSDIFF_SOURCE:?KSDIFF_SOURCE is unset: run this through the ksdiff Snakefile}"
python -m pip install -q --no-deps -r "$KSDIFF_SOURCE/envs/requirements-nodeps.txt"
python -m pip install -q --no-deps -e "$KSDIFF_SOURCE"
# librosa's numba code compiled and cached once, before the jobs (ksdiff/numba_cache.py says why).
python -c 'from ksdiff.numba_cache import import_librosa; import_librosa()'
