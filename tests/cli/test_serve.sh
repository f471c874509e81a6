#!/bin/sh
# test_serve.sh - mome serve end to end (tests/serve_test.py): the official
# openai client, raw-socket malformed input, a 1,000-request load test, the
# page in headless Chromium, the API key, SIGTERM draining. The openai
# client comes from the Python in use or from build/pydeps (tools/setup.sh
# deps installs it there); Chromium parts are skipped without Chromium.
set -u
. tests/cli_common.sh
if [ ! -f "$MODEL" ]; then echo "skip all: $MODEL absent (make model)"; echo "0 passed, 0 failed, 1 skipped"; exit 0; fi
export MOME
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}build/pydeps"
# libgomp's spinning idle threads would take the cores the HTTP threads need
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
exec python3 tests/serve_test.py
