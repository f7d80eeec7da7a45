#!/usr/bin/env bash
# Installs everything ksdiff needs on a fresh Debian machine with Python 3.11:
# Debian packages (espeak-ng for the synthetic speech, ffmpeg for muxing, chromium and its
# driver for the user-study page's test), a virtual environment at .venv with the pinned
# stack, and ksdiff itself.
# Safe to rerun: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
# Headless Chromium + its WebDriver for the user-study page's browser test (tests/test_study_browser.py);
# about 70 s more on a fresh machine (measured: apt-get update + install, 67 s).
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "[install] apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.ksdiff-installed
want=$(cat envs/requirements.txt envs/requirements-nodeps.txt pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[install] pip install (pinned stack; a few minutes on a fresh machine)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r envs/requirements.txt
  # torchvision's CPU build where PyTorch's index is reachable (==0.28.0 below is then already satisfied);
  # otherwise PyPI's CUDA build, whose models ksdiff.metrics.tv_compat imports without its C++ ops.
  .venv/bin/python -m pip install -q --no-deps --retries 0 --timeout 15 "torchvision==0.28.0+cpu" --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || echo "[install] torchvision's CPU wheel not reachable: PyPI's build is used (its models only)"
  .venv/bin/python -m pip install -q --no-deps -r envs/requirements-nodeps.txt
  .venv/bin/python -m pip install -q --no-deps -e .
  echo "$want" > "$stamp"
fi
# librosa's numba code is compiled and cached here, by one process, before any job or test starts: processes
# compiling it together on an empty cache can leave one that crashes every later process (ksdiff/numba_cache.py).
# About 20 s on a fresh install, 2 s once cached.
.venv/bin/python -c 'from ksdiff.numba_cache import import_librosa; import_librosa()'
echo "[install] ready: $(.venv/bin/python -c 'import ksdiff, torch, mediapipe; print("ksdiff", ksdiff.__version__, "torch", torch.__version__, "mediapipe", mediapipe.__version__)')"
