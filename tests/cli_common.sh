# cli_common.sh - sourced by the tests in tests/cli/ (run from the repository
# root): pass/fail/skip counters, the binary, the default model, the shared
# data folder, and the closing "N passed, N failed, N skipped" line.
pass=0; fail=0; skip=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
sk() { skip=$((skip + 1)); echo "skip $1"; }
MOME=${MOME:-build/mome}
MODEL=${MOME_MODELS:-models}/SmolLM2-135M-Instruct.Q4_1.gguf
SHARED=${MOME_SHARED:-../shared}
# prints the closing line; exits non-zero if a check failed
finish() {
    echo "$pass passed, $fail failed, $skip skipped"
    [ $fail -eq 0 ]
    exit
}
