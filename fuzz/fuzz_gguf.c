/* fuzz_gguf.c - libFuzzer harness for the GGUF reader (gguf_open_buffer).
 *
 * Build (from the repository root):
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Isrc \
 *         -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         fuzz/fuzz_gguf.c src/gguf.c src/util.c src/quant.c -lm -o build/fuzz_gguf
 * Seed corpus: tests write small valid files; any .gguf works, e.g.
 *   mkdir -p build/fuzz_corpus && build/fuzz_gguf -max_len=4096 build/fuzz_corpus
 * With -dict=fuzz/gguf.dict the fuzzer finds the structure faster.
 *
 * Every accepted input is walked completely (all keys, values, strings and
 * tensor bytes) so out-of-bounds pointers handed out by the reader are caught.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

static volatile unsigned g_sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* exact-size copy so ASan sees reads past the end */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    gguf_file *f = NULL;
    if (gguf_open_buffer(buf, size, "fuzz.gguf", &f) == 0) {
        unsigned acc = 0;
        char out[128];
        for (uint64_t i = 0; i < f->n_kv; i++) {
            const gguf_kv *kv = &f->kv[i];
            for (uint64_t j = 0; j < kv->key.len; j++) acc += (uint8_t)kv->key.ptr[j];
            gguf_format_value(kv, out, sizeof out);
            gguf_format_value(kv, out, 7);
            if (kv->type == GGUF_TYPE_STRING || (kv->type == GGUF_TYPE_ARRAY && kv->arr_type == GGUF_TYPE_STRING)) {
                for (uint64_t s = 0; s < kv->n; s++)
                    for (uint64_t j = 0; j < kv->strs[s].len; j++) acc += (uint8_t)kv->strs[s].ptr[j];
            } else if (kv->type == GGUF_TYPE_ARRAY) {
                for (uint64_t j = 0; j < kv->n && j < 4096; j++) acc += gguf_arr_get_num(kv, j) != 0;
            }
            uint32_t u32;
            float f32;
            gguf_str str;
            char key[80];
            size_t kl = kv->key.len < sizeof key - 1 ? (size_t)kv->key.len : sizeof key - 1;
            memcpy(key, kv->key.ptr, kl);
            key[kl] = 0;
            (void)gguf_get_u32(f, key, &u32);
            (void)gguf_get_f32(f, key, &f32);
            (void)gguf_get_str(f, key, &str);
        }
        for (uint64_t i = 0; i < f->n_tensors; i++) {
            const gguf_tensor *t = &f->tensors[i];
            const uint8_t *p = t->data;
            for (size_t j = 0; j < t->nbytes; j++) acc += p[j];
        }
        g_sink = acc;
        gguf_close(f);
    }
    free(buf);
    return 0;
}
