/* test_model.c - the forward pass against llama.cpp's outputs.
 *
 * Golden files in tests/golden/ were written by tests/reference/make_goldens.py
 * from llama.cpp (llama-cpp-python 0.3.36, llama.cpp 0c1e570), f32 KV cache,
 * flash attention off. See tests/golden/README.md.
 *   - stories260K (F32): logits of 3 prompts at every position within
 *     max|d| <= 1e-3 * max|logit|; 64-token greedy continuations identical.
 *   - SmolLM2-135M-Instruct (Q4_1): next-token distributions over 600 tokens
 *     of GPL-3: mean KL(llama.cpp || mome) <= 0.01, top-1 agreement >= 98%;
 *     greedy chat answers identical to llama.cpp's.
 * Plus engine invariants: batched == incremental decoding, 1 thread == 2
 * threads, errors on bad input.
 */
#include <cjson/cJSON.h>
#include <math.h>

#include "mome.h"
#include "test.h"

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) { free(b); fclose(f); return NULL; }
    fclose(f);
    b[sz] = 0;
    if (n) *n = (size_t)sz;
    return b;
}

/* Returns the lines of a JSONL file parsed, count in *n. */
static cJSON **read_jsonl(const char *path, int *n) {
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

/* MOME_TEST_QUICK (set for the sanitizer build, ~20x slower): fewer
 * positions and questions; the plain build always runs everything. */
static int quick(void) { return getenv("MOME_TEST_QUICK") != NULL; }

static mome_model *load(const char *path, int threads) {
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = threads;
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

static void test_stories_logits(void) {
    const char *mp = test_shared_path("data/models/stories260K.gguf");
    if (!mp) SKIP("../shared/data/models/stories260K.gguf absent");
    int n;
    cJSON **g = read_jsonl("tests/golden/stories260K_logits.jsonl", &n);
    REQUIRE(g && n == 3, "tests/golden/stories260K_logits.jsonl missing or malformed");
    mome_model *m = load(mp, 1);
    REQUIRE(m, "load");
    for (int k = 0; k < n; k++) {
        int nt;
        int32_t *ids = json_ids(cJSON_GetObjectItem(g[k], "ids"), &nt);
        const cJSON *lg = cJSON_GetObjectItem(g[k], "logits");
        mome_ctx *c = new_ctx(m, 512, 512);
        CHECK(mome_decode(c, ids, nt, 0, 1) == 0, "decode: %s", mome_errmsg());
        double maxd = 0, maxl = 0;
        for (int t = 0; t < nt; t++) {
            const float *ours = mome_get_logits(c, t);
            const cJSON *row = cJSON_GetArrayItem(lg, t);
            for (int v = 0; v < 512; v++) {
                double ref = cJSON_GetArrayItem(row, v)->valuedouble;
                double d = fabs(ref - ours[v]);
                if (d > maxd) maxd = d;
                if (fabs(ref) > maxl) maxl = fabs(ref);
            }
        }
        printf("  stories260K prompt %d: %d positions, max|d| = %.3g, max|logit| = %.3g, ratio %.2e\n", k, nt, maxd,
               maxl, maxd / maxl);
        CHECK(maxd <= 1e-3 * maxl, "prompt %d: max|d| %.4g > 1e-3 * %.4g", k, maxd, maxl);
        mome_ctx_free(c);
        free(ids);
    }
    mome_model_free(m);
    free_jsonl(g, n);
}

static void test_stories_greedy(void) {
    const char *mp = test_shared_path("data/models/stories260K.gguf");
    if (!mp) SKIP("../shared/data/models/stories260K.gguf absent");
    int n;
    cJSON **g = read_jsonl("tests/golden/stories260K_greedy.jsonl", &n);
    REQUIRE(g && n == 4, "tests/golden/stories260K_greedy.jsonl missing or malformed");
    mome_model *m = load(mp, 2);
    REQUIRE(m, "load");
    for (int k = 0; k < n; k++) {
        int np, ng;
        int32_t *ids = json_ids(cJSON_GetObjectItem(g[k], "ids"), &np);
        int32_t *gen = json_ids(cJSON_GetObjectItem(g[k], "gen"), &ng);
        /* our tokenizer must feed the same ids */
        const char *prompt = cJSON_GetObjectItem(g[k], "prompt")->valuestring;
        int32_t mine[256];
        int nm = mome_tokenize(m, prompt, strlen(prompt), mine, 256, 1, 0);
        CHECK(nm == np && memcmp(mine, ids, sizeof(int32_t) * (size_t)np) == 0, "prompt %d tokenizes differently", k);
        mome_ctx *c = new_ctx(m, 256, 64);
        CHECK(mome_decode(c, ids, np, 0, 0) == 0, "decode: %s", mome_errmsg());
        int same = 0;
        for (int i = 0; i < ng; i++) {
            int32_t t = argmax(mome_get_logits(c, -1), 512);
            if (t != gen[i]) {
                CHECK(0, "prompt %d: token %d is %d, llama.cpp %d", k, i, t, gen[i]);
                break;
            }
            same++;
            mome_decode(c, &t, 1, np + i, 0);
        }
        printf("  stories260K greedy %d: %d/%d tokens identical\n", k, same, ng);
        mome_ctx_free(c);
        free(ids);
        free(gen);
    }
    mome_model_free(m);
    free_jsonl(g, n);
}

static void test_smollm2_kl(void) {
    const char *mp = test_default_model();
    if (!mp) SKIP("default model absent (make model)");
    int n;
    cJSON **g = read_jsonl("tests/golden/smollm2_topk.jsonl", &n);
    REQUIRE(g && n == 601, "tests/golden/smollm2_topk.jsonl missing or malformed");
    mome_model *m = load(mp, 0);
    REQUIRE(m, "load");
    int nt;
    int32_t *toks = json_ids(cJSON_GetObjectItem(g[0], "tokens"), &nt);
    if (quick()) nt = 96;
    mome_ctx *c = new_ctx(m, 1024, 512);
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
        double lse = mx + log(s);
        for (int v = 0; v < V; v++) lp[v] = l[v] - lse;
        /* KL(P_ref || P_mome) over the reference's top 64 plus one bucket for
         * the rest (grouping can only lower KL; the bucket holds ~1e-3 mass) */
        const cJSON *top = cJSON_GetObjectItem(g[t + 1], "top");
        double kl = 0, pr = 0, qr = 0;
        const cJSON *e;
        int first = 1;
        cJSON_ArrayForEach(e, top) {
            int id = (int)cJSON_GetArrayItem(e, 0)->valuedouble;
            double lref = cJSON_GetArrayItem(e, 1)->valuedouble;
            double p = exp(lref);
            kl += p * (lref - lp[id]);
            pr += p;
            qr += exp(lp[id]);
            if (first) {
                agree += argmax(l, V) == id;
                first = 0;
            }
        }
        double prest = 1 - pr, qrest = 1 - qr;
        if (prest > 1e-12 && qrest > 1e-12) kl += prest * log(prest / qrest);
        kl_sum += kl;
        if (kl > kl_max) kl_max = kl;
    }
    double mean = kl_sum / nt, top1 = (double)agree / nt;
    printf("  SmolLM2 vs llama.cpp over %d positions: mean KL %.5f (max %.4f), top-1 agreement %.2f%%\n", nt, mean,
           kl_max, 100 * top1);
    CHECK(mean <= 0.01, "mean KL %.5f > 0.01", mean);
    CHECK(top1 >= 0.98, "top-1 agreement %.4f < 0.98", top1);
    free(lp);
    free(toks);
    mome_ctx_free(c);
    mome_model_free(m);
    free_jsonl(g, n);
}

static void test_smollm2_chat(void) {
    const char *mp = test_default_model();
    if (!mp) SKIP("default model absent (make model)");
    int n;
    cJSON **g = read_jsonl("tests/golden/smollm2_chat.jsonl", &n);
    REQUIRE(g && n == 4, "tests/golden/smollm2_chat.jsonl missing or malformed");
    mome_model *m = load(mp, 0);
    REQUIRE(m, "load");
    for (int k = 0; k < (quick() ? 2 : n); k++) {
        const char *q = cJSON_GetObjectItem(g[k], "question")->valuestring;
        const char *prompt = cJSON_GetObjectItem(g[k], "prompt")->valuestring;
        mome_chat_msg msg = {"user", q};
        char *fmt = mome_chat_format(m, &msg, 1, 1);
        CHECK(fmt && strcmp(fmt, prompt) == 0, "chat template differs for '%s'", q);
        int np, ng;
        int32_t *ids = json_ids(cJSON_GetObjectItem(g[k], "ids"), &np);
        int32_t *gen = json_ids(cJSON_GetObjectItem(g[k], "gen"), &ng);
        int32_t mine[512];
        int nm = mome_tokenize(m, fmt, strlen(fmt), mine, 512, 1, 1);
        CHECK(nm == np && memcmp(mine, ids, sizeof(int32_t) * (size_t)np) == 0, "prompt ids differ for '%s'", q);
        mome_ctx *c = new_ctx(m, 256, 64);
        CHECK(mome_decode(c, ids, np, 0, 0) == 0, "decode: %s", mome_errmsg());
        int same = 0;
        for (int i = 0; i < ng; i++) {
            int32_t t = argmax(mome_get_logits(c, -1), mome_model_n_vocab(m));
            if (t != gen[i]) break;
            same++;
            if (mome_token_is_eog(m, t)) break;
            mome_decode(c, &t, 1, np + i, 0);
        }
        printf("  chat '%s': %d/%d greedy tokens identical (\"%s\")\n", q, same, ng,
               cJSON_GetObjectItem(g[k], "text")->valuestring);
        CHECK(same == ng, "'%s': only %d of %d tokens identical", q, same, ng);
        free(fmt);
        free(ids);
        free(gen);
        mome_ctx_free(c);
    }
    mome_model_free(m);
    free_jsonl(g, n);
}

/* Processing a prompt in one batch, in chunks, or token by token gives the
 * same logits; 1 and 2 threads agree. */
static void test_incremental_and_threads(void) {
    const char *mp = test_default_model();
    if (!mp) SKIP("default model absent (make model)");
    mome_model *m1 = load(mp, 1), *m2 = load(mp, 2);
    REQUIRE(m1 && m2, "load");
    const char *text = "The quick brown fox jumps over the lazy dog. It was a sunny day in the park.";
    int32_t ids[128];
    int n = mome_tokenize(m1, text, strlen(text), ids, 128, 1, 0);
    REQUIRE(n > 8 && n < 128, "tokenize");
    const int V = mome_model_n_vocab(m1);
    mome_ctx *a = new_ctx(m1, 128, 128), *b = new_ctx(m1, 128, 5), *c = new_ctx(m2, 128, 128);
    REQUIRE(a && b && c, "ctx");
    REQUIRE(mome_decode(a, ids, n, 0, 1) == 0, "decode a");
    REQUIRE(mome_decode(c, ids, n, 0, 1) == 0, "decode c");
    double dmax_inc = 0, dmax_thr = 0, lmax = 0;
    for (int t = 0; t < n; t++) {
        REQUIRE(mome_decode(b, ids + t, 1, t, 0) == 0, "decode b");
        const float *la = mome_get_logits(a, t), *lb = mome_get_logits(b, -1), *lc = mome_get_logits(c, t);
        for (int v = 0; v < V; v++) {
            dmax_inc = fmax(dmax_inc, fabs(la[v] - lb[v]));
            dmax_thr = fmax(dmax_thr, fabs(la[v] - lc[v]));
            lmax = fmax(lmax, fabs(la[v]));
        }
    }
    printf("  batch vs token-by-token max|d| %.3g, 1 vs 2 threads max|d| %.3g (max|logit| %.3g)\n", dmax_inc,
           dmax_thr, lmax);
    CHECK(dmax_inc <= 1e-3 * lmax, "incremental decoding differs: %.4g", dmax_inc);
    CHECK(dmax_thr == 0, "thread count changes the result: %.4g", dmax_thr);
    /* chunked batch (n_batch 5) with all logits equals one batch */
    mome_ctx *d = new_ctx(m1, 128, 5);
    REQUIRE(mome_decode(d, ids, n, 0, 1) == 0, "decode d");
    double dmax_chunk = 0;
    for (int t = 0; t < n; t++)
        for (int v = 0; v < V; v++) dmax_chunk = fmax(dmax_chunk, fabs(mome_get_logits(a, t)[v] - mome_get_logits(d, t)[v]));
    CHECK(dmax_chunk <= 1e-3 * lmax, "chunked decoding differs: %.4g", dmax_chunk);
    mome_ctx_free(a); mome_ctx_free(b); mome_ctx_free(c); mome_ctx_free(d);
    mome_model_free(m1);
    mome_model_free(m2);
}

static void test_decode_errors(void) {
    const char *mp = test_shared_path("data/models/stories260K.gguf");
    if (!mp) SKIP("../shared/data/models/stories260K.gguf absent");
    mome_model *m = load(mp, 1);
    REQUIRE(m, "load");
    mome_ctx *c = new_ctx(m, 16, 8);
    int32_t bad = 512, ok[20] = {1};
    CHECK(mome_decode(c, &bad, 1, 0, 0) < 0, "out-of-range token accepted");
    CHECK(strstr(mome_errmsg(), "out of range") != NULL, "message: %s", mome_errmsg());
    CHECK(mome_decode(c, ok, 20, 0, 0) < 0, "context overflow accepted");
    CHECK(mome_decode(c, ok, 1, 3, 0) < 0, "gap in positions accepted");
    CHECK(mome_decode(c, ok, 0, 0, 0) < 0, "empty batch accepted");
    CHECK(mome_decode(c, ok, 16, 0, 0) == 0, "full context rejected: %s", mome_errmsg());
    mome_ctx_free(c);
    mome_model_free(m);
    mome_model *x = NULL;
    CHECK(mome_model_load("tests/golden/README.md", NULL, &x) < 0 && x == NULL, "non-GGUF accepted");
    CHECK(strstr(mome_errmsg(), "README.md") != NULL, "message does not name the file: %s", mome_errmsg());
    CHECK(mome_model_load("/nonexistent/model.gguf", NULL, &x) < 0, "missing file accepted");
    const char *vocab = test_shared_path("data/models/ggml-vocab-llama-spm.gguf");
    if (vocab) {
        CHECK(mome_model_load(vocab, NULL, &x) < 0, "vocab-only file accepted as a model");
        printf("  vocab-only file: %s\n", mome_errmsg());
    }
}

int main(void) {
    RUN(test_stories_logits);
    RUN(test_stories_greedy);
    RUN(test_decode_errors);
    RUN(test_smollm2_chat);
    RUN(test_smollm2_kl);
    RUN(test_incremental_and_threads);
    return test_summary();
}
