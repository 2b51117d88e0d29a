#!/usr/bin/env bash
# Set up speech2face on a fresh Debian/Ubuntu machine with Python 3.11. Safe to run again: each step checks first.
#  1. system packages: git (DVC needs a git repository) and Python's venv module, installed with apt-get when
#     missing (as root, or through sudo). ffmpeg needs no system package: the pinned imageio-ffmpeg wheel ships it.
#     With S2F_SETUP_BROWSER=1 (what `make test` sets) also Debian's chromium and chromium-driver: the web page's
#     test drives a real headless browser, and no browser build is downloaded from anywhere else.
#  2. .venv at the project root from requirements.lock (exact pins), then s2f itself in editable mode.
#     The install is skipped when .venv already matches the lock (a stamp holds the lock's hash).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
log() { printf '[setup] %s\n' "$*"; }

apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  command -v apt-get >/dev/null || { log "missing system packages: $* (install them, then run again)"; exit 1; }
  log "apt-get install $*"
  $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v git >/dev/null || apt_install git
command -v "$PYTHON" >/dev/null || apt_install python3.11 python3.11-venv
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { log "$PYTHON is not Python 3.11"; exit 1; }
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3.11-venv
if [ "${S2F_SETUP_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null && command -v chromedriver >/dev/null || apt_install chromium chromium-driver
fi

stamp=.venv/.s2f-lock-sha256
want=$(sha256sum requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && .venv/bin/python -c 'import s2f' 2>/dev/null; then
  log ".venv is up to date with requirements.lock"
else
  [ -x .venv/bin/python ] || { log "creating .venv"; "$PYTHON" -m venv .venv; }
  log "installing requirements.lock into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q -r requirements.lock
  .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
  echo "$want" > "$stamp"
fi

# DVC runs stages in a git repository; a tarball download gets one here.
[ -d .git ] || { log "initialising a git repository for DVC"; git init -q && git add -A && \
  git -c user.name=s2f -c user.email=s2f@localhost commit -qm "speech2face source"; }
log "ready: .venv/bin/s2f, .venv/bin/dvc"
