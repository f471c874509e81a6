#!/usr/bin/env bash
# mome vs llama.cpp throughput, side by side. All args go to bench/bench_engine.py:
#   bench/bench_engine.sh [-m MODEL] [-r REPS] [-t 1,2] [-p 128] [-n 128] [-o OUT.md]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ ! -x "$ROOT/.ref/llama.cpp/build/bin/llama-bench" ] || [ ! -x "$ROOT/.venv-ref/bin/python" ]; then
    "$ROOT/tests/reference/setup.sh"
fi
exec "$ROOT/.venv-ref/bin/python" "$ROOT/bench/bench_engine.py" "$@"
