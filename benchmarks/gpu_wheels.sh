#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.py needs on a GPU machine whose Python already holds PyTorch, numpy, scipy,
# pandas, pyarrow, OpenCV and PyYAML but nothing else of ksdiff's stack, and that reaches no package index (the
# lent H100/H200 machines: Python 3.12, /opt/torch/.venv). Run here, where pip reaches PyPI; the wheels land
# in .whl/ (git-ignored), about 31 MB, for the machine to install with
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
# (benchmarks/README.md, "GPU check", has the whole command).
#
# What gpu_check imports beyond that machine's packages, found by running it (--device cpu) and listing
# sys.modules: jsonschema and its three dependencies (the config's validation), syncnet_python (SyncNet's
# architecture, for LSE) with what its __init__ imports (ffmpeg-python, future, scenedetect,
# python_speech_features), and pocketsphinx (the CMUdict file the transcript tokenizer reads). PyAV is left out:
# scenedetect imports it only if it is there, and its wheel alone is 36 MB of a call's 64 MB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY_VERSION:-3.12}
plat=()
for n in 17 24 27 28 31 34 35; do plat+=(--platform "manylinux_2_${n}_x86_64"); done
plat+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)
mkdir -p .whl
# The versions envs/requirements.txt pins, except pocketsphinx: 5.1.1 has no wheel for Python 3.12 (5.0.4's
# CMUdict is what the tokenizer reads; a GPU check compares the GPU with the CPU on one machine, one dictionary).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp "${plat[@]}" -d .whl \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 \
  ffmpeg-python==0.2.0 future==1.0.0 scenedetect==0.6.7.1 syncnet-python==0.2.3 pocketsphinx==5.0.4
# python_speech_features 0.6 is published as a source archive only; its wheel is pure Python, built here.
python3 -m pip wheel -q --no-deps -w .whl python_speech_features==0.6
du -sh .whl
