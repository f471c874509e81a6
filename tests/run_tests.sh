#!/bin/sh
# run_tests.sh - run every test executable (plain build, then the ASan+UBSan
# build of the unit tests, then the CLI tests) and print one closing line
# "N passed, N failed, N skipped" for the whole suite. Exits non-zero on any
# failure. Run from the repository root (make test does).
set -u
pass=0; fail=0; skip=0; failed=""
run_one() {
    name=$1; shift
    t0=$(date +%s)
    out=$("$@" 2>&1); rc=$?
    dt=$(( $(date +%s) - t0 ))
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -1)
    if [ -z "$line" ]; then
        printf '%s\n' "$out"
        echo "FAIL $name (no summary line, exit $rc)"
        fail=$((fail + 1)); failed="$failed $name"; return
    fi
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.*, ([0-9]+) skipped.*/\1/p'); s=${s:-0}
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ]; then
        printf '%s\n' "$out"
        [ "$f" -eq 0 ] && fail=$((fail + 1))
        failed="$failed $name"
        echo "FAIL $name ($line, exit $rc)"
    else
        printf '%s\n' "$out" | grep -E '^(skip|  SKIP)' || true
        echo "ok   $name: $line (${dt}s)"
    fi
}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in build/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$t" "$t"
done
export MOME_TEST_QUICK=1
for t in build/asan/tests/test_*; do
    [ -x "$t" ] || continue
    run_one "$t" "$t"
done
unset MOME_TEST_QUICK
for t in tests/cli/*.sh; do
    [ -f "$t" ] || continue
    run_one "$t" sh "$t"
done
echo
[ -n "$failed" ] && echo "failed:$failed"
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
