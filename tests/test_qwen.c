/* test_qwen.c - the qwen2 architecture against llama.cpp on the real
 * Qwen2.5-Coder 0.5B and 1.5B Instruct files (issue 10).
 *
 * The files come from tools/fetch_qwen.sh (make qwen); every test skips with
 * a message when its model is absent. Golden files in tests/golden/ were
 * written by tests/reference/make_goldens_qwen.py from llama.cpp (the same
 * reference build as the SmolLM2 goldens; f32 KV cache, flash attention off):
 *   - tok_qwen2.{inp,out}: llama.cpp's qwen2 tokenizer test strings plus the
 *     extra strings of the SmolLM2 goldens: ids identical;
 *   - qwen05_chat.jsonl / qwen15_chat.jsonl: 6 conversations rendered by
 *     llama_chat_apply_template (mome_chat_format gives the same text and
 *     ids), by the template's own Jinja code with its default system message
 *     (mome_chat_default_system + mome_chat_format give the same text), and
 *     the first 32 greedy tokens of each answer: identical;
 *   - qwen05_topk.jsonl / qwen15_topk.jsonl: next-token distributions over
 *     320 positions of held-out text: mean KL(llama.cpp || mome) <= 0.01 and
 *     top-1 agreement >= 98%.
 * MOME_TEST_QUICK (the sanitizer build): 24 positions and one conversation.
 */
#include <cjson/cJSON.h>
#include <math.h>

#include <unistd.h>

#include "model.h"
#include "mome.h"
#include "test.h"
#include "tinymodel.h"

#define Q05 "Qwen2.5-Coder-0.5B-Instruct.gguf"
#define Q15 "Qwen2.5-Coder-1.5B-Instruct.Q4_K_M.gguf"

static int quick(void) { return getenv("MOME_TEST_QUICK") != NULL; }

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz < 0) { fclose(f); return NULL; }
    char *b = malloc((size_t)sz + 1);
    if (!b || fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); fclose(f); return NULL; }
    fclose(f);
    b[sz] = 0;
    if (n) *n = (size_t)sz;
    return b;
}

static cJSON **read_jsonl(const char *path, int *n) {
    *n = 0;
    char *b = slurp(path, NULL);
    if (!b) return NULL;
    int cap = 16, k = 0;
    cJSON **v = malloc(sizeof(cJSON *) * (size_t)cap);
    char *save = NULL;
    for (char *line = strtok_r(b, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!*line) continue;
        if (k == cap) v = realloc(v, sizeof(cJSON *) * (size_t)(cap *= 2));
        v[k++] = cJSON_Parse(line);
    }
    free(b);
    *n = k;
    return v;
}

static void free_jsonl(cJSON **v, int n) {
    for (int i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

static int32_t *json_ids(const cJSON *arr, int *n) {
    *n = cJSON_GetArraySize(arr);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(*n + 1));
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) ids[i++] = (int32_t)e->valuedouble;
    return ids;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItem(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static mome_model *load(const char *path) {
    mome_model_params mp = mome_model_default_params();
    mome_model *m = NULL;
    if (mome_model_load(path, &mp, &m)) fprintf(stderr, "  load %s: %s\n", path, mome_errmsg());
    return m;
}

static mome_ctx *new_ctx(mome_model *m, int n_ctx, int n_batch) {
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    mome_ctx *c = NULL;
    if (mome_ctx_init(m, &cp, &c)) fprintf(stderr, "  ctx: %s\n", mome_errmsg());
    return c;
}

static int argmax(const float *v, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* ------------------------------------------------------------ tokenizer */

static void tokenizer_vectors(const char *file) {
    const char *mp = test_model_file(file);
    if (!mp) SKIP("models/%s absent (make qwen)", file);
    mome_model_params p = mome_model_default_params();
    p.vocab_only = 1;
    mome_model *m = NULL;
    REQUIRE(mome_model_load(mp, &p, &m) == MOME_OK, "load: %s", mome_errmsg());
    size_t li, lo;
    char *inp = slurp("tests/golden/tok_qwen2.inp", &li), *out = slurp("tests/golden/tok_qwen2.out", &lo);
    REQUIRE(inp && out, "tests/golden/tok_qwen2.{inp,out} missing");
    const char *sep = "\n__ggml_vocab_test__\n";
    const size_t seplen = strlen(sep);
    int n = 0, bad = 0;
    size_t pos = 0;
    char *cur = out; /* one line per string; an empty line is an empty list */
    while (pos < li) {
        char *next = memmem(inp + pos, li - pos, sep, seplen);
        const size_t slen = next ? (size_t)(next - (inp + pos)) : li - pos;
        const char *s = inp + pos;
        pos = next ? (size_t)(next - inp) + seplen : li;
        REQUIRE(cur && *cur, "fewer output lines than strings");
        char *eol = strchr(cur, '\n');
        if (eol) *eol = 0;
        int32_t exp[2048];
        int ne = 0;
        for (char *q = cur;;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            if (ne < 2048) exp[ne++] = (int32_t)v;
            q = e;
        }
        cur = eol ? eol + 1 : NULL;
        int32_t got[2048];
        const int ng = mome_tokenize(m, s, slen, got, 2048, 0, 0);
        const int ok = ng == ne && memcmp(got, exp, sizeof(int32_t) * (size_t)ne) == 0;
        if (!ok && bad < 3) fprintf(stderr, "    string %d (%.40s): %d ids, expected %d\n", n, s, ng, ne);
        bad += !ok;
        n++;
    }
    printf("  %s: %d/%d strings tokenize as llama.cpp does\n", file, n - bad, n);
    CHECK(n == 104 && bad == 0, "%d of %d strings differ", bad, n);
    /* special tokens: ChatML marks, end of generation */
    int32_t ids[8];
    CHECK(mome_tokenize(m, "<|im_end|>", 10, ids, 8, 0, 1) == 1 && ids[0] == 151645, "<|im_end|> is one token");
    CHECK(mome_tokenize(m, "<|im_start|>", 12, ids, 8, 0, 1) == 1 && ids[0] == 151644, "<|im_start|> is one token");
    CHECK(mome_tokenize(m, "<|im_end|>", 10, ids, 8, 0, 0) > 1, "<|im_end|> as plain text is several tokens");
    CHECK(mome_token_eot(m) == 151645, "end of turn is <|im_end|> (%d)", mome_token_eot(m));
    CHECK(mome_token_is_eog(m, 151645) && mome_token_is_eog(m, 151643), "<|im_end|> and <|endoftext|> end generation");
    CHECK(!mome_token_is_eog(m, 151644), "<|im_start|> does not end generation");
    CHECK(mome_tokenize(m, "hi", 2, ids, 8, 1, 0) == 1, "no BOS is added (add_bos_token false)");
    free(inp);
    free(out);
    mome_model_free(m);
}
static void test_tokenizer_q05(void) { tokenizer_vectors(Q05); }
static void test_tokenizer_q15(void) { tokenizer_vectors(Q15); }

/* ------------------------------------------------------ chat and greedy */

static void chat_golden(const char *file, const char *golden) {
    const char *mp = test_model_file(file);
    if (!mp) SKIP("models/%s absent (make qwen)", file);
    int n;
    cJSON **g = read_jsonl(golden, &n);
    REQUIRE(g && n == 6, "%s missing or malformed", golden);
    mome_model *m = load(mp);
    REQUIRE(m, "load");
    char *defsys = mome_chat_default_system(m);
    CHECK(defsys && strcmp(defsys, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.") == 0,
          "default system message: %s", defsys ? defsys : "(none)");
    const int V = mome_model_n_vocab(m);
    mome_ctx *c = new_ctx(m, 1024, 256);
    REQUIRE(c, "ctx");
    int total = 0, total_same = 0;
    for (int k = 0; k < n; k++) {
        const cJSON *msgs = cJSON_GetObjectItem(g[k], "messages");
        const int nm = cJSON_GetArraySize(msgs);
        mome_chat_msg cm[8];
        REQUIRE(nm >= 1 && nm < 8, "messages");
        for (int i = 0; i < nm; i++) {
            const cJSON *e = cJSON_GetArrayItem(msgs, i);
            cm[i + 1].role = cJSON_GetArrayItem(e, 0)->valuestring;
            cm[i + 1].content = cJSON_GetArrayItem(e, 1)->valuestring;
        }
        const char *prompt = jstr(g[k], "prompt"), *jinja = jstr(g[k], "jinja_prompt");
        /* as llama_chat_apply_template renders it */
        char *fmt = mome_chat_format(m, cm + 1, nm, 1);
        CHECK(fmt && prompt && strcmp(fmt, prompt) == 0, "conversation %d: chat text differs from llama.cpp's", k);
        /* as the template's Jinja code renders it (its default system message
         * when the conversation has none) */
        const int has_sys = strcmp(cm[1].role, "system") == 0;
        cm[0] = (mome_chat_msg){"system", defsys};
        char *fj = has_sys || !defsys ? mome_chat_format(m, cm + 1, nm, 1) : mome_chat_format(m, cm, nm + 1, 1);
        CHECK(fj && jinja && strcmp(fj, jinja) == 0, "conversation %d: text differs from the Jinja rendering", k);
        int np, ng;
        int32_t *ids = json_ids(cJSON_GetObjectItem(g[k], "ids"), &np);
        int32_t *gen = json_ids(cJSON_GetObjectItem(g[k], "gen"), &ng);
        int32_t *mine = NULL;
        const int nmine = fmt ? mome_tokenize_alloc(m, fmt, 1, 1, &mine) : -1;
        CHECK(nmine == np && mine && memcmp(mine, ids, sizeof(int32_t) * (size_t)np) == 0,
              "conversation %d: prompt ids differ", k);
        free(mine);
        if (!quick() || k == 0) {
            const int want = quick() && ng > 8 ? 8 : ng;
            int same = 0;
            CHECK(mome_decode(c, ids, np, 0, 0) == MOME_OK, "decode: %s", mome_errmsg());
            for (int i = 0; i < want; i++) {
                int32_t t = argmax(mome_get_logits(c, -1), V);
                if (t != gen[i]) break;
                same++;
                if (mome_token_is_eog(m, t)) break;
                if (mome_decode(c, &t, 1, np + i, 0) != MOME_OK) break;
            }
            printf("  %s chat %d: %d/%d greedy tokens identical (\"%.60s\")\n", file, k, same, want,
                   jstr(g[k], "text") ? jstr(g[k], "text") : "");
            CHECK(same == want, "conversation %d: only %d of %d greedy tokens identical", k, same, want);
            total += want;
            total_same += same;
        }
        free(fmt);
        free(fj);
        free(ids);
        free(gen);
    }
    printf("  %s: %d/%d greedy tokens identical over the conversations\n", file, total_same, total);
    free(defsys);
    mome_ctx_free(c);
    mome_model_free(m);
    free_jsonl(g, n);
}
static void test_chat_q05(void) { chat_golden(Q05, "tests/golden/qwen05_chat.jsonl"); }
static void test_chat_q15(void) { chat_golden(Q15, "tests/golden/qwen15_chat.jsonl"); }

/* ------------------------------------------------------------ KL / top-1 */

static void kl_golden(const char *file, const char *golden) {
    const char *mp = test_model_file(file);
    if (!mp) SKIP("models/%s absent (make qwen)", file);
    int n;
    cJSON **g = read_jsonl(golden, &n);
    REQUIRE(g && n == 321, "%s missing or malformed", golden);
    mome_model *m = load(mp);
    REQUIRE(m, "load");
    int nt;
    int32_t *toks = json_ids(cJSON_GetObjectItem(g[0], "tokens"), &nt);
    if (quick()) nt = 24;
    mome_ctx *c = new_ctx(m, 512, 512);
    REQUIRE(c, "ctx");
    REQUIRE(mome_decode(c, toks, nt, 0, 1) == 0, "decode: %s", mome_errmsg());
    const int V = mome_model_n_vocab(m);
    double kl_sum = 0, kl_max = 0;
    int agree = 0;
    double *lp = malloc(sizeof(double) * (size_t)V);
    for (int t = 0; t < nt; t++) {
        const float *l = mome_get_logits(c, t);
        double mx = l[0], s = 0;
        for (int v = 1; v < V; v++) if (l[v] > mx) mx = l[v];
        for (int v = 0; v < V; v++) s += exp(l[v] - mx);
        const double lse = mx + log(s);
        for (int v = 0; v < V; v++) lp[v] = l[v] - lse;
        /* KL(P_ref || P_mome) over the reference's top 40 plus one bucket for
         * the rest (grouping can only lower KL) */
        const cJSON *top = cJSON_GetObjectItem(g[t + 1], "top");
        double kl = 0, pr = 0, qr = 0;
        const cJSON *e;
        int first = 1;
        cJSON_ArrayForEach(e, top) {
            const int id = (int)cJSON_GetArrayItem(e, 0)->valuedouble;
            const double lref = cJSON_GetArrayItem(e, 1)->valuedouble, p = exp(lref);
            kl += p * (lref - lp[id]);
            pr += p;
            qr += exp(lp[id]);
            if (first) {
                agree += argmax(l, V) == id;
                first = 0;
            }
        }
        const double prest = 1 - pr, qrest = 1 - qr;
        if (prest > 1e-12 && qrest > 1e-12) kl += prest * log(prest / qrest);
        kl_sum += kl;
        if (kl > kl_max) kl_max = kl;
    }
    const double mean = kl_sum / nt, top1 = (double)agree / nt;
    printf("  %s vs llama.cpp over %d positions: mean KL %.5f (max %.4f), top-1 agreement %.2f%%\n", file, nt, mean,
           kl_max, 100 * top1);
    CHECK(mean <= 0.01, "mean KL %.5f > 0.01", mean);
    CHECK(top1 >= 0.98, "top-1 agreement %.4f < 0.98", top1);
    free(lp);
    free(toks);
    mome_ctx_free(c);
    mome_model_free(m);
    free_jsonl(g, n);
}
static void test_kl_q05(void) { kl_golden(Q05, "tests/golden/qwen05_topk.jsonl"); }
static void test_kl_q15(void) { kl_golden(Q15, "tests/golden/qwen15_topk.jsonl"); }

/* ------------------------------------------------ files mome cannot run */

/* The sdist's vocabulary-only files: run says there are no weights (or
 * names the unknown architecture), in one line; tokenizing works. */
static void test_vocab_only_and_unknown_arch(void) {
    const char *p = test_ref_path("models/ggml-vocab-gemma-4.gguf");
    if (!p) SKIP(".ref/llama.cpp/models absent (tests/reference/setup.sh unpacks it)");
    char gemma[4096], qwen[4096];
    snprintf(gemma, sizeof gemma, "%s", p);
    p = test_ref_path("models/ggml-vocab-qwen2.gguf");
    REQUIRE(p, "ggml-vocab-qwen2.gguf");
    snprintf(qwen, sizeof qwen, "%s", p);
    mome_model *m = NULL;
    mome_model_params mp = mome_model_default_params();
    CHECK(mome_model_load(gemma, &mp, &m) == MOME_ERR_UNSUPPORTED && !m, "gemma4 refused");
    CHECK(strstr(mome_errmsg(), "architecture 'gemma4' is not supported") && !strchr(mome_errmsg(), '\n'),
          "message: %s", mome_errmsg());
    CHECK(mome_model_load(qwen, &mp, &m) == MOME_ERR_UNSUPPORTED && !m, "vocab-only refused");
    CHECK(strstr(mome_errmsg(), "has no weights") && !strchr(mome_errmsg(), '\n'), "message: %s", mome_errmsg());
    mp.vocab_only = 1;
    REQUIRE(mome_model_load(qwen, &mp, &m) == MOME_OK, "vocab-only load: %s", mome_errmsg());
    int32_t ids[8];
    CHECK(mome_tokenize(m, "Hello world", 11, ids, 8, 0, 0) == 2 && ids[0] == 9707 && ids[1] == 1879, "Hello world");
    mome_ctx *c = NULL;
    CHECK(mome_ctx_init(m, NULL, &c) != MOME_OK && !c, "no context on a vocab-only model");
    mome_model_free(m);
    /* gemma4 tokenizes too when only the vocabulary is asked for, or says why not */
    m = NULL;
    int rc = mome_model_load(gemma, &mp, &m);
    CHECK(rc == MOME_OK || !strchr(mome_errmsg(), '\n'), "gemma4 vocabulary: %s", mome_errmsg());
    mome_model_free(m);
}

/* Without the sdist: a tiny random model written with another architecture
 * name is refused in one line naming it, and its tokenizer still loads
 * (vocab_only); the same file as qwen2 without the Q/K/V biases qwen2
 * requires names the missing tensor. */
static void test_arch_errors_tiny(void) {
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/mome_test_qwen_XXXXXX");
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    tinymodel_params p = tinymodel_default_params();
    p.arch = "gemma4";
    REQUIRE(tinymodel_write(path, &p) == MOME_OK, "tinymodel: %s", mome_errmsg());
    mome_model_params mp = mome_model_default_params();
    mome_model *m = NULL;
    CHECK(mome_model_load(path, &mp, &m) == MOME_ERR_UNSUPPORTED && !m, "gemma4 refused");
    CHECK(strstr(mome_errmsg(), "architecture 'gemma4' is not supported (mome runs: llama, mistral, qwen2)") &&
              !strchr(mome_errmsg(), '\n'),
          "message: %s", mome_errmsg());
    mp.vocab_only = 1;
    CHECK(mome_model_load(path, &mp, &m) == MOME_OK && m, "vocab_only: %s", mome_errmsg());
    if (m) {
        int32_t ids[16];
        CHECK(mome_tokenize(m, "the cat", 7, ids, 16, 1, 0) > 1 && ids[0] == 1, "tokenizes with BOS");
        mome_model_free(m);
        m = NULL;
    }
    p.arch = "qwen2";
    p.qkv_bias = 0;
    REQUIRE(tinymodel_write(path, &p) == MOME_OK, "tinymodel: %s", mome_errmsg());
    mp.vocab_only = 0;
    CHECK(mome_model_load(path, &mp, &m) != MOME_OK && !m, "qwen2 without biases refused");
    CHECK(strstr(mome_errmsg(), "blk.0.attn_q.bias") != NULL, "message: %s", mome_errmsg());
    p.qkv_bias = 1;
    REQUIRE(tinymodel_write(path, &p) == MOME_OK, "tinymodel: %s", mome_errmsg());
    CHECK(mome_model_load(path, &mp, &m) == MOME_OK && m, "qwen2 with biases: %s", mome_errmsg());
    mome_model_free(m);
    remove(path);
    rmdir(dir);
}

/* An answer never depends on the question asked before it in the same
 * context: where a row's bits depend on the rows beside it in a matrix call
 * (the 0.5B's Q6_K), mome_ctx_shared_prefix reuses nothing, and a second
 * prompt's logits equal a decode from scratch. (Eval --parallel 1 and 16 gave
 * different answers to 4 of 8 questions before.) */
static void test_prefix_reuse_exact(void) {
    const char *path = test_model_file(Q05);
    if (!path) SKIP("models/%s absent (make qwen)", Q05);
    mome_model *m = load(path);
    REQUIRE(m, "load");
    /* a shared system prompt and a short second question: with its head
     * reused, the second prompt's last 6 tokens take Q6_K's vec_dot order,
     * decoded from scratch its 23 the tiled one (raw reuse: other logits) */
    const mome_chat_msg a[2] = {{"system", "You are a helpful assistant. Answer briefly."},
                                {"user", "Who wrote the novel Moby-Dick?"}};
    const mome_chat_msg b[2] = {{"system", "You are a helpful assistant. Answer briefly."}, {"user", "Hi"}};
    char *ta = mome_chat_format(m, a, 2, 1), *tb = mome_chat_format(m, b, 2, 1);
    int32_t *ia = NULL, *ib = NULL;
    const int na = mome_tokenize_alloc(m, ta, 1, 1, &ia), nb = mome_tokenize_alloc(m, tb, 1, 1, &ib);
    REQUIRE(na > 8 && nb > 8, "tokenize");
    mome_ctx *c1 = new_ctx(m, 256, 256), *c2 = new_ctx(m, 256, 256);
    REQUIRE(c1 && c2, "ctx");
    REQUIRE(mome_decode(c1, ia, na, 0, 0) == 0, "decode a");
    const int keep = mome_ctx_shared_prefix(c1, ib, nb);
    CHECK(keep == 0 || m->chunk_invariant, "a head is reused only where it is exact (keep %d)", keep);
    REQUIRE(mome_decode(c1, ib + keep, nb - keep, keep, 0) == 0, "decode b after a");
    REQUIRE(mome_decode(c2, ib, nb, 0, 0) == 0, "decode b");
    CHECK(memcmp(mome_get_logits(c1, -1), mome_get_logits(c2, -1), sizeof(float) * (size_t)m->hp.n_vocab) == 0,
          "the second prompt's logits equal a decode from scratch");
    mome_ctx_free(c1); mome_ctx_free(c2);
    free(ia); free(ib); free(ta); free(tb);
    mome_model_free(m);
}

int main(void) {
    RUN(test_tokenizer_q05);
    RUN(test_tokenizer_q15);
    RUN(test_chat_q05);
    RUN(test_chat_q15);
    RUN(test_kl_q05);
    RUN(test_kl_q15);
    RUN(test_vocab_only_and_unknown_arch);
    RUN(test_arch_errors_tiny);
    RUN(test_prefix_reuse_exact);
    return test_summary();
}
