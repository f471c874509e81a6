/* test_tokenizer.c - SPM / BPE tokenizers against llama.cpp's outputs.
 *
 * Vector sets (each one RUN, mismatches counted, the first few printed):
 *   ../shared/data/models/ggml-vocab-llama-spm.gguf.{inp,out}       (SKIP w/o shared)
 *   ../shared/data/models/ggml-vocab-deepseek-coder.gguf.{inp,out}  (SKIP w/o shared)
 *   tests/golden/tok_smollm2.{inp,out}           + models/SmolLM2 (SKIP w/o model)
 *   tests/golden/tok_stories260K.{inp,out}       + shared stories260K.gguf
 *   tests/golden/tok_smollm2_special.jsonl       + models/SmolLM2
 * The golden files ship with the repo: if one is missing the test FAILS
 * (set MOME_GOLDEN_OPTIONAL=1 to skip instead).
 */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "mome.h"
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
#include "test.h"
#pragma GCC diagnostic pop
#include "tokenizer.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0) break;
        n += r;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

static int golden_path(const char *rel, char *out, size_t cap) {
    snprintf(out, cap, "tests/golden/%s", rel);
    FILE *f = fopen(out, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

static int golden_optional(void) {
    const char *e = getenv("MOME_GOLDEN_OPTIONAL");
    return e && *e && strcmp(e, "0") != 0;
}

typedef struct model_tok {
    gguf_file *f;
    tokenizer *t;
} model_tok;

static int open_tok(const char *path, model_tok *m) {
    memset(m, 0, sizeof *m);
    if (gguf_open(path, &m->f)) return -1;
    if (tokenizer_load(m->f, &m->t)) {
        gguf_close(m->f);
        m->f = NULL;
        return -1;
    }
    return 0;
}

static void close_tok(model_tok *m) {
    tokenizer_free(m->t);
    gguf_close(m->f);
}

/* encode into a malloc'd array (exercises the "count > cap" retry path) */
static int32_t *encode(const tokenizer *t, const char *s, size_t len, int add_special, int parse_special, int *n) {
    int32_t small[4];
    int r = tokenizer_encode(t, s, len, add_special, parse_special, small, 4);
    if (r < 0) {
        *n = r;
        return NULL;
    }
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(r + 1));
    int r2 = tokenizer_encode(t, s, len, add_special, parse_special, ids, r);
    if (r2 != r) {
        free(ids);
        *n = -1000;
        return NULL;
    }
    for (int i = 0; i < r && i < 4; i++)
        if (small[i] != ids[i]) {
            free(ids);
            *n = -1001;
            return NULL;
        }
    *n = r;
    return ids;
}

static char *detok(const tokenizer *t, const int32_t *ids, int n, int special, size_t *len) {
    size_t cap = 64, m = 0;
    char *out = malloc(cap);
    for (int i = 0; i < n; i++) {
        char piece[8];
        int l = tokenizer_token_to_piece(t, ids[i], piece, (int)sizeof piece, special);
        if (l < 0) {
            free(out);
            return NULL;
        }
        while (m + (size_t)l + 1 > cap) {
            cap *= 2;
            out = realloc(out, cap);
        }
        if (l <= (int)sizeof piece) {
            memcpy(out + m, piece, (size_t)l);
        } else {
            int l2 = tokenizer_token_to_piece(t, ids[i], out + m, l, special);
            if (l2 != l) {
                free(out);
                return NULL;
            }
        }
        m += (size_t)l;
    }
    out[m] = 0;
    *len = m;
    return out;
}

static void print_str(const char *s, size_t n) {
    fputc('"', stderr);
    for (size_t i = 0; i < n && i < 120; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c == '\t') fputs("\\t", stderr);
        else if (c < 32) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fputs(n > 120 ? "...\"" : "\"", stderr);
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "      %s:", label);
    for (int i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    if (n > 40) fprintf(stderr, " ...(%d)", n);
    fprintf(stderr, "\n");
}

/* Run llama.cpp's test-tokenizer-0 format: inp strings separated by
 * "\n__ggml_vocab_test__\n", out one line of ids per string. Tokenized with
 * add_special = false, parse_special = false. Returns mismatches (or -1). */
static int run_vectors(const tokenizer *t, const char *inp_path, const char *out_path, int *n_cases,
                       int roundtrip) {
    size_t li, lo;
    char *inp = read_all(inp_path, &li), *out = read_all(out_path, &lo);
    if (!inp || !out) {
        free(inp), free(out);
        return -1;
    }
    const char *sep = "\n__ggml_vocab_test__\n";
    size_t seplen = strlen(sep);
    int bad = 0, n = 0, bad_rt = 0;
    size_t pos = 0;
    char *line = out;
    while (pos < li) {
        char *next = memmem(inp + pos, li - pos, sep, seplen);
        size_t slen = next ? (size_t)(next - (inp + pos)) : li - pos;
        const char *s = inp + pos;
        pos = next ? (size_t)(next - inp) + seplen : li;
        /* expected ids */
        if (!line || !*line) {
            fprintf(stderr, "  %s: fewer output lines than inputs\n", out_path);
            bad++;
            break;
        }
        char *eol = strchr(line, '\n');
        if (eol) *eol = 0;
        int32_t exp[4096];
        int ne = 0;
        char *p = line;
        for (;;) {
            while (*p == ' ') p++;
            if (!*p) break;
            char *e;
            long v = strtol(p, &e, 10);
            if (e == p) break;
            if (ne < 4096) exp[ne++] = (int32_t)v;
            p = e;
        }
        line = eol ? eol + 1 : NULL;
        int ng;
        int32_t *got = encode(t, s, slen, 0, 0, &ng);
        int ok = got && ng == ne && memcmp(got, exp, sizeof(int32_t) * (size_t)ne) == 0;
        if (!ok) {
            if (bad < 5) {
                fprintf(stderr, "    mismatch #%d: text ", n);
                print_str(s, slen);
                fprintf(stderr, "\n");
                print_ids("expected", exp, ne);
                if (got) print_ids("got     ", got, ng);
                else fprintf(stderr, "      got error %d: %s\n", ng, mome_errmsg());
            }
            bad++;
        }
        if (roundtrip && got) {
            size_t dl;
            char *d = detok(t, got, ng, 0, &dl);
            if (!d || dl != slen || memcmp(d, s, slen) != 0) {
                if (bad_rt < 3) {
                    fprintf(stderr, "    round trip #%d: ", n);
                    print_str(s, slen);
                    fprintf(stderr, " -> ");
                    if (d) print_str(d, dl);
                    fprintf(stderr, "\n");
                }
                bad_rt++;
            }
            free(d);
        }
        free(got);
        n++;
    }
    free(inp);
    free(out);
    *n_cases = n;
    if (roundtrip) fprintf(stderr, "    round trip: %d/%d ok\n", n - bad_rt, n);
    return bad + bad_rt;
}

static void vector_set(const char *model, const char *inp, const char *out, int roundtrip) {
    model_tok m;
    int lrc0 = open_tok(model, &m);
    REQUIRE(lrc0 == 0, "load %s: %s", model, mome_errmsg());
    int n = 0;
    int bad = run_vectors(m.t, inp, out, &n, roundtrip);
    CHECK(bad == 0, "%d mismatches of %d cases (%s)", bad, n, inp);
    fprintf(stderr, "    %s: %d/%d cases match\n", inp, bad >= 0 ? n - bad : 0, n);
    close_tok(&m);
}

/* ------------------------------------------------------------ vector sets */

static void test_vectors_llama_spm(void) {
    char inp[4300], out[4300], model[4200];
    const char *p = test_shared_path("data/models/ggml-vocab-llama-spm.gguf");
    if (!p) SKIP("../shared/data/models/ggml-vocab-llama-spm.gguf absent");
    snprintf(model, sizeof model, "%s", p);
    snprintf(inp, sizeof inp, "%s.inp", model);
    snprintf(out, sizeof out, "%s.out", model);
    vector_set(model, inp, out, 0);
}

static void test_vectors_deepseek_coder(void) {
    char inp[4300], out[4300], model[4200];
    const char *p = test_shared_path("data/models/ggml-vocab-deepseek-coder.gguf");
    if (!p) SKIP("../shared/data/models/ggml-vocab-deepseek-coder.gguf absent");
    snprintf(model, sizeof model, "%s", p);
    snprintf(inp, sizeof inp, "%s.inp", model);
    snprintf(out, sizeof out, "%s.out", model);
    vector_set(model, inp, out, 1);
}

/* llama.cpp's own vectors for vocabularies of its source tree (the sdist the
 * reference build unpacks): the Qwen2 (qwen2 pre-tokenizer), Llama 3
 * (llama-bpe) and Phi-3 (SentencePiece) vocabularies. */
static void sdist_vectors(const char *name) {
    char rel[128], model[4200], inp[4300], out[4300];
    snprintf(rel, sizeof rel, "models/ggml-vocab-%s.gguf", name);
    const char *p = test_ref_path(rel);
    if (!p) SKIP(".ref/llama.cpp/%s absent (tests/reference/setup.sh unpacks it)", rel);
    snprintf(model, sizeof model, "%s", p);
    snprintf(inp, sizeof inp, "%s.inp", model);
    snprintf(out, sizeof out, "%s.out", model);
    vector_set(model, inp, out, 0);
}
static void test_vectors_qwen2(void) { sdist_vectors("qwen2"); }
static void test_vectors_llama_bpe(void) { sdist_vectors("llama-bpe"); }
static void test_vectors_phi3(void) { sdist_vectors("phi-3"); }

static void test_golden_smollm2(void) {
    char inp[256], out[256];
    int hi = golden_path("tok_smollm2.inp", inp, sizeof inp), ho = golden_path("tok_smollm2.out", out, sizeof out);
    if (!hi || !ho) {
        if (golden_optional()) SKIP("tests/golden/tok_smollm2.{inp,out} absent");
        CHECK(0, "tests/golden/tok_smollm2.{inp,out} missing (shipped with the repo)");
        return;
    }
    const char *model = test_default_model();
    if (!model) SKIP("default model (models/SmolLM2-135M-Instruct.Q4_1.gguf) absent");
    vector_set(model, inp, out, 1);
}

static void test_golden_stories260K(void) {
    char inp[256], out[256], model[4200];
    int hi = golden_path("tok_stories260K.inp", inp, sizeof inp),
        ho = golden_path("tok_stories260K.out", out, sizeof out);
    if (!hi || !ho) {
        if (golden_optional()) SKIP("tests/golden/tok_stories260K.{inp,out} absent");
        CHECK(0, "tests/golden/tok_stories260K.{inp,out} missing (shipped with the repo)");
        return;
    }
    const char *p = test_shared_path("data/models/stories260K.gguf");
    if (!p) SKIP("../shared/data/models/stories260K.gguf absent");
    snprintf(model, sizeof model, "%s", p);
    vector_set(model, inp, out, 0);
}

static void test_golden_smollm2_special(void) {
    char path[256];
    if (!golden_path("tok_smollm2_special.jsonl", path, sizeof path)) {
        if (golden_optional()) SKIP("tests/golden/tok_smollm2_special.jsonl absent");
        CHECK(0, "tests/golden/tok_smollm2_special.jsonl missing (shipped with the repo)");
        return;
    }
    const char *model = test_default_model();
    if (!model) SKIP("default model absent");
    model_tok m;
    int lrc1 = open_tok(model, &m);
    REQUIRE(lrc1 == 0, "load: %s", mome_errmsg());
    size_t len;
    char *all = read_all(path, &len);
    REQUIRE(all, "read %s", path);
    int n = 0, bad = 0;
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        if (!j) continue;
        const cJSON *jt = cJSON_GetObjectItem(j, "text"), *ji = cJSON_GetObjectItem(j, "ids");
        CHECK(cJSON_IsString(jt) && cJSON_IsArray(ji), "bad json line");
        if (cJSON_IsString(jt) && cJSON_IsArray(ji)) {
            int ne = cJSON_GetArraySize(ji);
            int32_t *exp = malloc(sizeof(int32_t) * (size_t)(ne + 1));
            for (int i = 0; i < ne; i++) exp[i] = (int32_t)cJSON_GetArrayItem(ji, i)->valuedouble;
            const char *s = jt->valuestring;
            int ng;
            int32_t *got = encode(m.t, s, strlen(s), 0, 1, &ng);
            int ok = got && ng == ne && memcmp(got, exp, sizeof(int32_t) * (size_t)ne) == 0;
            if (!ok) {
                if (bad < 5) {
                    fprintf(stderr, "    mismatch #%d: ", n);
                    print_str(s, strlen(s));
                    fprintf(stderr, "\n");
                    print_ids("expected", exp, ne);
                    if (got) print_ids("got     ", got, ng);
                }
                bad++;
            }
            /* special round trip: rendering control tokens gives the text back */
            if (got) {
                size_t dl;
                char *d = detok(m.t, got, ng, 1, &dl);
                CHECK(d && dl == strlen(s) && memcmp(d, s, dl) == 0, "special round trip of line %d", n);
                free(d);
            }
            free(got);
            free(exp);
            n++;
        }
        cJSON_Delete(j);
    }
    fprintf(stderr, "    tok_smollm2_special.jsonl: %d/%d cases match\n", n - bad, n);
    CHECK(bad == 0, "%d of %d special cases differ", bad, n);
    CHECK(n >= 1, "no cases");
    free(all);
    close_tok(&m);
}

/* ------------------------------------------------------------ behaviour */

static void test_bos_handling(void) {
    const char *p;
    int n;
    int32_t *ids;
    if ((p = test_shared_path("data/models/stories260K.gguf"))) {
        model_tok m;
        int lrc2 = open_tok(p, &m);
        REQUIRE(lrc2 == 0, "load: %s", mome_errmsg());
        CHECK(tokenizer_type(m.t) == TOKENIZER_SPM, "spm");
        CHECK(tokenizer_add_bos(m.t) == 1 && tokenizer_bos(m.t) == 1, "stories: add_bos %d bos %d",
              tokenizer_add_bos(m.t), tokenizer_bos(m.t));
        ids = encode(m.t, "Once upon", 9, 1, 0, &n);
        CHECK(ids && n >= 2 && ids[0] == 1, "BOS first");
        free(ids);
        ids = encode(m.t, "Once upon", 9, 0, 0, &n);
        CHECK(ids && n >= 1 && ids[0] != 1, "no BOS without add_special");
        free(ids);
        ids = encode(m.t, "", 0, 1, 0, &n);
        CHECK(ids && n == 1 && ids[0] == 1, "empty text + add_special -> [BOS] (n=%d)", n);
        free(ids);
        ids = encode(m.t, "", 0, 0, 0, &n);
        CHECK(n == 0, "empty text -> nothing");
        free(ids);
        CHECK(tokenizer_is_eog(m.t, 2) && !tokenizer_is_eog(m.t, 100), "eos is eog");
        close_tok(&m);
    }
    if ((p = test_shared_path("data/models/ggml-vocab-deepseek-coder.gguf"))) {
        model_tok m;
        int lrc3 = open_tok(p, &m);
        REQUIRE(lrc3 == 0, "load: %s", mome_errmsg());
        CHECK(tokenizer_type(m.t) == TOKENIZER_BPE, "bpe");
        ids = encode(m.t, "Hello", 5, 1, 0, &n);
        CHECK(ids && n >= 2 && ids[0] == 32013, "deepseek add_bos_token=true -> BOS 32013 first");
        free(ids);
        close_tok(&m);
    }
    const char *model = test_default_model();
    if (model) {
        model_tok m;
        int lrc4 = open_tok(model, &m);
        REQUIRE(lrc4 == 0, "load: %s", mome_errmsg());
        CHECK(strcmp(tokenizer_pre_name(m.t), "smollm") == 0, "pre %s", tokenizer_pre_name(m.t));
        CHECK(tokenizer_add_bos(m.t) == 0, "SmolLM2 add_bos_token=false");
        ids = encode(m.t, "Hello", 5, 1, 0, &n);
        CHECK(ids && n == 1 && ids[0] != tokenizer_bos(m.t), "no BOS for SmolLM2 (n=%d)", n);
        free(ids);
        int32_t im_end = tokenizer_find(m.t, "<|im_end|>"), eot = tokenizer_find(m.t, "<|endoftext|>");
        CHECK(im_end == 2 && eot == 0, "ids %d %d", im_end, eot);
        CHECK(tokenizer_is_eog(m.t, im_end) && tokenizer_is_eog(m.t, eot), "im_end/endoftext are eog");
        CHECK(!tokenizer_is_eog(m.t, 1), "im_start not eog");
        CHECK(tokenizer_is_control(m.t, 1), "im_start is control");
        /* parse_special off: the markup is plain text */
        ids = encode(m.t, "<|im_start|>", 12, 0, 0, &n);
        CHECK(ids && n > 1, "plain text markup -> several tokens (n=%d)", n);
        free(ids);
        ids = encode(m.t, "<|im_start|>", 12, 0, 1, &n);
        CHECK(ids && n == 1 && ids[0] == 1, "parse_special -> [1]");
        free(ids);
        /* control tokens render only with render_special */
        char buf[32];
        CHECK(tokenizer_token_to_piece(m.t, 1, buf, sizeof buf, 0) == 0, "control hidden");
        CHECK(tokenizer_token_to_piece(m.t, 1, buf, sizeof buf, 1) == 12 && memcmp(buf, "<|im_start|>", 12) == 0,
              "control rendered");
        CHECK(tokenizer_token_to_piece(m.t, 1, buf, 3, 1) == 12, "needed length when cap is small");
        CHECK(tokenizer_token_to_piece(m.t, -1, buf, sizeof buf, 1) < 0, "bad id");
        CHECK(tokenizer_token_to_piece(m.t, tokenizer_n_vocab(m.t), buf, sizeof buf, 1) < 0, "bad id");
        close_tok(&m);
    }
    if (!test_shared_path("data/models/stories260K.gguf") && !model) SKIP("no models");
}

static void test_spm_byte_fallback(void) {
    const char *p = test_shared_path("data/models/stories260K.gguf");
    if (!p) SKIP("stories260K.gguf absent");
    model_tok m;
    int lrc5 = open_tok(p, &m);
    REQUIRE(lrc5 == 0, "load: %s", mome_errmsg());
    CHECK(tokenizer_n_vocab(m.t) == 512, "vocab 512");
    const char *s = "a\xe2\x98\x83"; /* "a☃" (U+2603 is not in the 512 vocab) */
    int n;
    int32_t *ids = encode(m.t, s, strlen(s), 0, 0, &n);
    REQUIRE(ids && n >= 3, "n=%d", n);
    /* the last three are the byte tokens <0xE2><0x98><0x83> */
    const char *want[3] = {"<0xE2>", "<0x98>", "<0x83>"};
    for (int i = 0; i < 3; i++) {
        size_t l;
        const char *tx = tokenizer_text(m.t, ids[n - 3 + i], &l);
        CHECK(tx && l == 6 && memcmp(tx, want[i], 6) == 0, "byte token %d", i);
        CHECK(tokenizer_attr(m.t, ids[n - 3 + i]) & TOK_ATTR_BYTE, "byte attr");
    }
    size_t dl;
    char *d = detok(m.t, ids, n, 0, &dl);
    CHECK(d && dl == strlen(s) + 1 && d[0] == ' ' && memcmp(d + 1, s, strlen(s)) == 0, "detok = ' ' + text");
    free(d);
    free(ids);
    /* invalid UTF-8 never crashes, and maps to byte tokens */
    /* (no spaces after the broken lead bytes: a lead byte swallows the first
     * byte of the U+2581 that replaces a space, which then decodes as bytes
     * of U+2581, exactly as in llama.cpp) */
    const char bad[] = "x\xff\xc3y\xe2\x82z\xf8\x80";
    ids = encode(m.t, bad, sizeof bad - 1, 1, 1, &n);
    CHECK(ids && n > 0, "invalid utf-8 encodes");
    if (ids) {
        d = detok(m.t, ids, n, 0, &dl);
        CHECK(d && dl == sizeof bad && memcmp(d + 1, bad, sizeof bad - 1) == 0, "invalid bytes round trip");
        free(d);
    }
    free(ids);
    close_tok(&m);
}

static void test_bpe_invalid_utf8_and_roundtrip(void) {
    const char *model = test_default_model();
    if (!model) SKIP("default model absent");
    model_tok m;
    int lrc6 = open_tok(model, &m);
    REQUIRE(lrc6 == 0, "load: %s", mome_errmsg());
    /* invalid bytes become U+FFFD (as llama.cpp) */
    const char bad[] = "ab\xff" "c\xc3(\xed\xa0\x80z\xf8\x88\x80\x80\x80 \xf4\x90\x80\x80!\0end";
    int n;
    int32_t *ids = encode(m.t, bad, sizeof bad - 1, 0, 0, &n);
    CHECK(ids && n > 0, "invalid utf-8 encodes (%d): %s", n, mome_errmsg());
    if (ids) {
        size_t dl;
        char *d = detok(m.t, ids, n, 0, &dl);
        CHECK(d != NULL, "detok");
        if (d) CHECK(memmem(d, dl, "ab\xef\xbf\xbd" "c\xef\xbf\xbd(", 9) != NULL, "FFFD replacement");
        free(d);
    }
    free(ids);
    /* round trip on a long valid text */
    const char *p = test_shared_path("data/text/tinyshakespeare.txt");
    if (p) {
        size_t len;
        char *txt = read_all(p, &len);
        REQUIRE(txt, "read");
        size_t use = len > 200000 ? 200000 : len;
        ids = encode(m.t, txt, use, 0, 0, &n);
        REQUIRE(ids, "encode");
        size_t dl;
        char *d = detok(m.t, ids, n, 0, &dl);
        CHECK(d && dl == use && memcmp(d, txt, use) == 0, "round trip of 200 kB of Shakespeare");
        free(d);
        free(ids);
        free(txt);
    }
    close_tok(&m);
}

static void test_speed(void) {
    const char *model = test_default_model();
    const char *p = test_shared_path("data/text/tinyshakespeare.txt");
    if (!model || !p) SKIP("default model or tinyshakespeare absent");
    gguf_file *f;
    int lrc7 = gguf_open(model, &f);
    REQUIRE(lrc7 == 0, "open");
    tokenizer *t;
    double t0 = mome_time_s();
    int lrc8 = tokenizer_load(f, &t);
    REQUIRE(lrc8 == 0, "load: %s", mome_errmsg());
    double t1 = mome_time_s();
    size_t len;
    char *txt = read_all(p, &len);
    int32_t *ids = malloc(sizeof(int32_t) * len);
    double t2 = mome_time_s();
    int n = tokenizer_encode(t, txt, len, 0, 0, ids, (int)len);
    double t3 = mome_time_s();
    CHECK(n > 0 && n <= (int)len, "n=%d", n);
    fprintf(stderr, "    SmolLM2 tokenizer load %.1f ms; encode %zu bytes -> %d tokens in %.3f s = %.2f M tok/s, %.1f MB/s\n",
            (t1 - t0) * 1e3, len, n, t3 - t2, n / (t3 - t2) / 1e6, len / (t3 - t2) / 1e6);
#ifndef __SANITIZE_ADDRESS__
    CHECK(t1 - t0 < 0.5, "load took %.3f s", t1 - t0);
#endif
    free(ids);
    free(txt);
    tokenizer_free(t);
    gguf_close(f);
}

/* ------------------------------------------------------------ hostile metadata */

typedef struct gb {
    unsigned char *p;
    size_t n, cap;
    uint64_t n_kv;
} gb;

static void gb_raw(gb *b, const void *d, size_t n) {
    while (b->n + n > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 1024;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void gb_u32(gb *b, uint32_t v) { gb_raw(b, &v, 4); }
static void gb_u64(gb *b, uint64_t v) { gb_raw(b, &v, 8); }
static void gb_str(gb *b, const char *s) {
    gb_u64(b, strlen(s));
    gb_raw(b, s, strlen(s));
}
static void gb_key(gb *b, const char *k, uint32_t type) {
    gb_str(b, k);
    gb_u32(b, type);
    b->n_kv++;
}
static void kv_str(gb *b, const char *k, const char *v) {
    gb_key(b, k, GGUF_TYPE_STRING);
    gb_str(b, v);
}
static void kv_u32(gb *b, const char *k, uint32_t v) {
    gb_key(b, k, GGUF_TYPE_UINT32);
    gb_u32(b, v);
}
static void kv_strs(gb *b, const char *k, const char **v, int n) {
    gb_key(b, k, GGUF_TYPE_ARRAY);
    gb_u32(b, GGUF_TYPE_STRING);
    gb_u64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) gb_str(b, v[i]);
}
static void kv_arr32(gb *b, const char *k, uint32_t type, const void *v, int n) {
    gb_key(b, k, GGUF_TYPE_ARRAY);
    gb_u32(b, type);
    gb_u64(b, (uint64_t)n);
    gb_raw(b, v, 4 * (size_t)n);
}

/* header + body: returns a buffer holding the whole image */
static unsigned char *gb_finish(gb *body, size_t *size) {
    gb img = {0};
    gb_raw(&img, "GGUF", 4);
    gb_u32(&img, 3);
    gb_u64(&img, 0);          /* tensors */
    gb_u64(&img, body->n_kv); /* kvs */
    gb_raw(&img, body->p, body->n);
    free(body->p);
    memset(body, 0, sizeof *body);
    while (img.n % 32) gb_raw(&img, "", 1);
    *size = img.n;
    return img.p;
}

/* A tiny valid byte-level BPE vocab: the bytes 'a','b','c',' ' (as Ġ) and a
 * couple of merges. variant selects one defect. */
enum { V_OK, V_SCORES_LEN, V_MERGE_MISSING, V_MERGE_NOSPACE, V_BOS_RANGE, V_EMPTY_VOCAB, V_NO_MODEL,
       V_UNKNOWN_PRE, V_TYPE_WRONG, V_TOKENS_NOT_STR, V_TYPES_LEN, V_UNKNOWN_MODEL, V_NO_MERGES, V_EMPTY_TOKEN,
       V_COUNT };

static int load_variant(int v, tokenizer **out, gguf_file **fout, unsigned char **img) {
    gb b = {0};
    const char *toks[] = {"a", "b", "c", "\xc4\xa0", "ab", "abc", "\xc4\xa0" "a", "<|im_end|>", ""};
    int nt = v == V_EMPTY_TOKEN ? 9 : 8;
    const char *merges_ok[] = {"a b", "ab c", "\xc4\xa0 a"};
    const char *merges_missing[] = {"a b", "ab zz"};
    const char *merges_nospace[] = {"a b", "abc"};
    int32_t types[9] = {1, 1, 1, 1, 1, 1, 1, 3, 1};
    float scores[9] = {0};
    if (v != V_NO_MODEL) kv_str(&b, "tokenizer.ggml.model", v == V_UNKNOWN_MODEL ? "wordpiece-9000" : "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", v == V_UNKNOWN_PRE ? "no-such-pre" : "smollm");
    if (v == V_TOKENS_NOT_STR)
        kv_arr32(&b, "tokenizer.ggml.tokens", GGUF_TYPE_INT32, types, 8);
    else
        kv_strs(&b, "tokenizer.ggml.tokens", toks, v == V_EMPTY_VOCAB ? 0 : nt);
    if (v == V_SCORES_LEN)
        kv_arr32(&b, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 5);
    else
        kv_arr32(&b, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, v == V_EMPTY_VOCAB ? 0 : nt);
    if (v == V_TYPE_WRONG)
        kv_arr32(&b, "tokenizer.ggml.token_type", GGUF_TYPE_FLOAT32, scores, nt);
    else if (v == V_TYPES_LEN)
        kv_arr32(&b, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, nt + 1 > 9 ? 9 : nt - 1);
    else
        kv_arr32(&b, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, v == V_EMPTY_VOCAB ? 0 : nt);
    if (v == V_MERGE_MISSING) kv_strs(&b, "tokenizer.ggml.merges", merges_missing, 2);
    else if (v == V_MERGE_NOSPACE) kv_strs(&b, "tokenizer.ggml.merges", merges_nospace, 2);
    else if (v != V_NO_MERGES) kv_strs(&b, "tokenizer.ggml.merges", merges_ok, 3);
    kv_u32(&b, "tokenizer.ggml.bos_token_id", v == V_BOS_RANGE ? 1000000 : 7);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", v == V_BOS_RANGE ? 0xFFFFFFFFu : 7);
    size_t size;
    *img = gb_finish(&b, &size);
    *out = NULL;
    *fout = NULL;
    if (gguf_open_buffer(*img, size, "hostile.gguf", fout)) return -100;
    return tokenizer_load(*fout, out);
}

static void test_hostile_metadata(void) {
    static const char *names[V_COUNT] = {"ok", "scores length", "merge names a missing token", "merge without space",
                                         "bos out of range", "empty vocab", "no tokenizer.ggml.model",
                                         "unknown pre-tokenizer", "token_type of f32", "tokens not strings",
                                         "token_type length", "unknown model", "no merges", "empty token"};
    for (int v = 0; v < V_COUNT; v++) {
        tokenizer *t;
        gguf_file *f;
        unsigned char *img;
        int rc = load_variant(v, &t, &f, &img);
        CHECK(rc != -100, "variant %s: gguf image rejected: %s", names[v], mome_errmsg());
        int should_load = v == V_OK || v == V_BOS_RANGE || v == V_EMPTY_TOKEN;
        if (should_load) {
            CHECK(rc == 0 && t, "variant %s should load: %s", names[v], mome_errmsg());
        } else {
            CHECK(rc < 0 && !t, "variant %s should fail (rc %d)", names[v], rc);
            if (rc < 0) fprintf(stderr, "    %-28s -> %s\n", names[v], mome_errmsg());
            CHECK(strlen(mome_errmsg()) > 0, "message");
        }
        if (t) {
            int n;
            int32_t *ids = encode(t, "abc a ab", 8, 1, 1, &n);
            CHECK(ids && n > 0, "encode on variant %s", names[v]);
            if (v == V_OK) {
                /* "abc" -> [abc]; " a" -> [Ġa]; " ab": a b (rank 0) beats Ġ a (rank 2) -> [Ġ, ab].
                 * No BOS: BPE defaults to add_bos_token = false. */
                int32_t want[] = {5, 6, 3, 4};
                CHECK(ids && n == 4 && memcmp(ids, want, sizeof want) == 0, "tiny bpe result (n=%d)", n);
                CHECK(tokenizer_is_eog(t, 7), "<|im_end|> eog");
            }
            if (v == V_BOS_RANGE) {
                CHECK(tokenizer_bos(t) == -1 && tokenizer_eos(t) == -1, "out-of-range ids treated as absent (%d %d)",
                      tokenizer_bos(t), tokenizer_eos(t));
            }
            if (v == V_EMPTY_TOKEN) {
                size_t l;
                const char *tx = tokenizer_text(t, 8, &l);
                CHECK(tx && l == 9 && memcmp(tx, "[EMPTY_8]", 9) == 0, "empty token renamed");
            }
            free(ids);
            /* every id renders without crashing */
            for (int32_t i = 0; i < tokenizer_n_vocab(t); i++) {
                char buf[64];
                CHECK(tokenizer_token_to_piece(t, i, buf, sizeof buf, 1) >= 0, "piece %d", i);
            }
        }
        tokenizer_free(t);
        gguf_close(f);
        free(img);
    }
}

static void test_partition_priority(void) {
    /* llama.cpp's partition takes the longest special token first everywhere,
     * not the leftmost: with user-defined "ab" and "bcd", "abcd" -> a [bcd]. */
    gb b = {0};
    const char *toks[] = {"a", "b", "c", "d", "ab", "bcd"};
    int32_t types[] = {1, 1, 1, 1, 4, 4};
    const char *merges[] = {"a b"};
    kv_str(&b, "tokenizer.ggml.model", "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", "gpt-2");
    kv_strs(&b, "tokenizer.ggml.tokens", toks, 6);
    kv_arr32(&b, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 6);
    kv_strs(&b, "tokenizer.ggml.merges", merges, 1);
    size_t size;
    unsigned char *img = gb_finish(&b, &size);
    gguf_file *f;
    tokenizer *t;
    int lrc9 = gguf_open_buffer(img, size, "prio.gguf", &f);
    REQUIRE(lrc9 == 0, "open: %s", mome_errmsg());
    int lrc10 = tokenizer_load(f, &t);
    REQUIRE(lrc10 == 0, "load: %s", mome_errmsg());
    int n;
    int32_t *ids = encode(t, "abcdab", 6, 0, 0, &n); /* user-defined: matched even without parse_special */
    int32_t want[] = {0, 5, 4};
    CHECK(ids && n == 3 && memcmp(ids, want, sizeof want) == 0, "a [bcd] [ab] (n=%d)", n);
    free(ids);
    tokenizer_free(t);
    gguf_close(f);
    free(img);
}


/* random byte strings mixed with special-token texts, every add_special /
 * parse_special combination: no crash (run under ASan+UBSan), the count is
 * the same with a small and a large buffer, ids in range */
static void test_random_inputs(void) {
    const char *paths[3];
    char sp[2][4200];
    int np = 0;
    const char *p;
    if ((p = test_shared_path("data/models/stories260K.gguf"))) snprintf(sp[0], sizeof sp[0], "%s", p), paths[np++] = sp[0];
    if ((p = test_shared_path("data/models/ggml-vocab-deepseek-coder.gguf")))
        snprintf(sp[1], sizeof sp[1], "%s", p), paths[np++] = sp[1];
    if ((p = test_default_model())) paths[np++] = p;
    if (!np) SKIP("no models");
    static const char *frags[] = {"<|im_start|>", "<|im_end|>", "<s>", "</s>", " ", "  ", "\n", "\t", "a", "Hello",
                                  "\xc3\xa9", "\xe2\x96\x81", "\xff", "\xc3", "\xed\xa0\x80", "\xf0\x9f\x98\x80", "123",
                                  "'s", "<0x41>", "<|endoftext|>", "\0", "\xe4\xb8\xad\xe6\x96\x87"};
    const int nf = (int)(sizeof frags / sizeof frags[0]);
    uint64_t rng = 0x9e3779b97f4a7c15ULL;
    for (int k = 0; k < np; k++) {
        model_tok m;
        int lrc = open_tok(paths[k], &m);
        REQUIRE(lrc == 0, "load %s: %s", paths[k], mome_errmsg());
        for (int it = 0; it < 300; it++) {
            char buf[512];
            size_t n = 0;
            int parts = (int)(rng % 12);
            for (int q = 0; q < parts; q++) {
                rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
                const char *f = frags[(rng >> 33) % (uint64_t)nf];
                size_t l = strcmp(f, "\0") == 0 ? 1 : strlen(f);
                if (n + l < sizeof buf) memcpy(buf + n, f, l), n += l;
                if ((rng >> 20) % 4 == 0 && n + 1 < sizeof buf) buf[n++] = (char)(rng >> 40);
            }
            for (int flags = 0; flags < 4; flags++) {
                int cnt;
                int32_t *ids = encode(m.t, buf, n, flags & 1, flags >> 1, &cnt);
                CHECK(ids || cnt == 0, "encode failed (%d): %s", cnt, mome_errmsg());
                for (int i = 0; ids && i < cnt; i++) CHECK(ids[i] >= 0 && ids[i] < tokenizer_n_vocab(m.t), "id range");
                free(ids);
            }
        }
        close_tok(&m);
    }
}

int main(void) {
    RUN(test_vectors_llama_spm);
    RUN(test_vectors_deepseek_coder);
    RUN(test_vectors_qwen2);
    RUN(test_vectors_llama_bpe);
    RUN(test_vectors_phi3);
    RUN(test_golden_smollm2);
    RUN(test_golden_stories260K);
    RUN(test_golden_smollm2_special);
    RUN(test_bos_handling);
    RUN(test_spm_byte_fallback);
    RUN(test_bpe_invalid_utf8_and_roundtrip);
    RUN(test_hostile_metadata);
    RUN(test_partition_priority);
    RUN(test_random_inputs);
    RUN(test_speed);
    return test_summary();
}
