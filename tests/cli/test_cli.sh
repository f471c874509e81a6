#!/bin/sh
# test_cli.sh - the mome command line as a user meets it: --help everywhere,
# one-line errors with a non-zero exit, tokenize/run against llama.cpp goldens.
# Runs the plain build and, where present, the sanitizer build of the CLI.
set -u
. tests/cli_common.sh
STORIES=$SHARED/data/models/stories260K.gguf
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

for cmd in info tokenize run chat bench; do
    if $MOME $cmd --help >"$tmp/h" 2>&1 && grep -q "usage: mome $cmd" "$tmp/h"; then ok "help $cmd"; else bad "help $cmd"; fi
done
if $MOME --help | grep -q commands; then ok "help top"; else bad "help top"; fi

# errors: one line on stderr, non-zero exit, no crash
check_err() { # name, expected substring, command...
    name=$1; want=$2; shift 2
    "$@" >"$tmp/o" 2>"$tmp/e"; rc=$?
    lines=$(wc -l <"$tmp/e")
    if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && grep -q "$want" "$tmp/e"; then ok "$name"
    else bad "$name (rc=$rc, stderr: $(head -c 300 "$tmp/e"))"; fi
}
check_err "error unknown command" "unknown command" $MOME frobnicate
check_err "error unknown option" "unknown option" $MOME run --frob
check_err "error missing file" "cannot open" $MOME info /nonexistent.gguf
check_err "error bad number" "expects an integer" $MOME run -n abc
printf 'GGUF\003\000\000\000' >"$tmp/short.gguf"
check_err "error short gguf" "short.gguf" $MOME info "$tmp/short.gguf"
printf 'not a model at all, just text........' >"$tmp/text.gguf"
check_err "error bad magic" "bad magic" $MOME info "$tmp/text.gguf"

if [ -f "$STORIES" ]; then
    head -c 20000 "$STORIES" >"$tmp/trunc.gguf"
    check_err "error truncated model" "trunc.gguf" $MOME run -m "$tmp/trunc.gguf" -p hi
    if $MOME info "$STORIES" | grep -q "blk.4.ffn_up.weight"; then ok "info stories260K"; else bad "info stories260K"; fi
    # greedy from BOS, as llama2.c's documentation shows
    out=$($MOME run -m "$STORIES" --temp 0 -n 20 2>/dev/null)
    case "$out" in *"Once upon a time, there was a little girl named Lily"*) ok "run stories260K greedy";;
        *) bad "run stories260K greedy: '$out'";; esac
    ids=$($MOME tokenize -m "$STORIES" -p "Once upon a time")
    if [ "$ids" = "1 403 407 261 378" ]; then ok "tokenize stories260K with BOS"; else bad "tokenize stories260K: '$ids'"; fi
    ids=$($MOME tokenize -m "$STORIES" -p "Once upon a time" --no-bos)
    if [ "$ids" = "403 407 261 378" ]; then ok "tokenize --no-bos"; else bad "tokenize --no-bos: '$ids'"; fi
else
    sk "stories260K tests ($STORIES absent)"
fi

if [ -f "$MODEL" ]; then
    out=$($MOME run -m "$MODEL" --chat -p "What is the capital of France?" --temp 0 2>/dev/null)
    if [ "$out" = "The capital of France is Paris." ]; then ok "run --chat France (= llama.cpp)"; else bad "run --chat: '$out'"; fi
    ids=$($MOME tokenize -m "$MODEL" -p "<|im_start|>user
Hi<|im_end|>")
    if [ "$ids" = "1 4093 198 26843 2" ]; then ok "tokenize SmolLM2 special"; else bad "tokenize SmolLM2 special: '$ids'"; fi
    out=$(printf 'What is 2+2?\n' | $MOME chat -m "$MODEL" --temp 0 2>/dev/null)
    case "$out" in *4*) ok "chat from stdin";; *) bad "chat: '$out'";; esac
    if $MOME bench -m "$MODEL" -p 16 -n 4 -r 1 --json | grep -q '"tg_tps"'; then ok "bench --json"; else bad "bench --json"; fi
else
    sk "SmolLM2 tests ($MODEL absent)"
fi
finish
