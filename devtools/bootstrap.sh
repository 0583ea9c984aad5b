#!/usr/bin/env bash
# Set up a Debian 12 machine for the studio: apt packages, .venv, node_modules.
#
# Idempotent and quick when nothing changed: apt-get only runs when a package
# is missing, pip only when the requirements files changed, npm only when
# package.json / package-lock.json changed (sha256 stamps remember the last
# successful install).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

APT_PACKAGES=(
    postgresql redis-server nginx libnginx-mod-rtmp libnginx-mod-stream ffmpeg chromium coturn
    prometheus openssl
)

say() { printf 'bootstrap: %s\n' "$*"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# sha256 over the names and contents of the given files (missing ones count
# as empty).
fingerprint() {
    local file
    for file in "$@"; do
        printf '== %s\n' "$file"
        cat "$file" 2>/dev/null || true
    done | sha256sum | cut -d' ' -f1
}

apt_packages() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        installed "$pkg" || missing+=("$pkg")
    done
    # What the next steps need, when the machine lacks it.
    python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if [ ${#missing[@]} -eq 0 ]; then
        say "apt packages: all present"
        return
    fi
    say "apt packages: installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
}

python_venv() {
    if [ ! -x .venv/bin/python ]; then
        say "creating .venv"
        python3 -m venv .venv
    fi
    local stamp=.venv/.requirements.sha256 want
    # The Python version is part of the stamp: a rebuilt .venv reinstalls.
    want="$(.venv/bin/python -V)-$(fingerprint requirements.txt requirements-dev.txt)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "python requirements: up to date"
        return
    fi
    say "python requirements: pip install -r requirements-dev.txt"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    printf '%s\n' "$want" >"$stamp"
}

node_modules() {
    if [ ! -f package.json ]; then
        return
    fi
    local stamp=node_modules/.bootstrap.sha256 want
    want="$(fingerprint package.json package-lock.json)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        say "node modules: up to date"
        return
    fi
    if [ -f package-lock.json ]; then
        say "node modules: npm ci"
        npm ci --no-audit --no-fund --loglevel=error
    else
        say "node modules: npm install"
        npm install --no-audit --no-fund --loglevel=error
    fi
    # npm install may just have written the lock file: stamp what is there now.
    fingerprint package.json package-lock.json >"$stamp"
}

apt_packages
python_venv
node_modules
say "done"
