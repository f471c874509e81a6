#!/usr/bin/env bash
# mome serve vs llama.cpp's llama-server: requests/s, aggregate tokens/s and
# time to first token at 1, 4 and 16 concurrent clients (slots = clients),
# same model, threads and context per slot. All args go to bench_server.py:
#   bench/bench_server.sh [-m MODEL] [-c 1,4,16] [-r REQS_PER_CLIENT] [-n MAX_TOKENS] [-t THREADS] [-o OUT.md]
# llama-server is built once from the same llama.cpp sdist as the other
# references (tests/reference/setup.sh unpacks it) into .ref/llama.cpp/build-server.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
L="$ROOT/.ref/llama.cpp"
[ -d "$L" ] || "$ROOT/tests/reference/setup.sh"
if [ ! -x "$L/build-server/bin/llama-server" ]; then
    echo "[bench-server] building llama-server (Release, CPU only; ~10 min on 2 cores)" >&2
    cmake -S "$L" -B "$L/build-server" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF \
        -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_TOOLS=ON >"$ROOT/.ref/cmake-server.log" 2>&1
    cmake --build "$L/build-server" --config Release -j"${JOBS:-2}" --target llama-server >>"$ROOT/.ref/cmake-server.log" 2>&1
fi
[ -x build/mome ] || make all
exec python3 "$ROOT/bench/bench_server.py" --mome build/mome --llama "$L/build-server/bin/llama-server" "$@"
