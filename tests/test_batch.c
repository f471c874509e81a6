/* test_batch.c - batched multi-sequence decode (mome_decode_batch) against
 * one-token mome_decode, bit for bit.
 *
 * Several contexts hold different prompts of different lengths. A reference
 * set of contexts feeds each one its token script one token at a time with
 * mome_decode; a second set feeds the same scripts through
 * mome_decode_batch in changing compositions (batch sizes 1..n, different
 * orders, contexts that sit out steps and fall behind; up to 10 rows, so
 * the 8-token kernels run too), and every row's
 * logits must equal the reference's exactly, as must the K/V caches. With
 * the default model (SmolLM2, Q4_1: the 4-token matmul tiles and their
 * tails) some contexts carry one of two memories with different key/value
 * blocks, one holding a fact for its prompt: the batch feeds the decision
 * row and the answer rows, where the memory must select and apply the same
 * values as mome_decode does (checked to change the logits, so the path is
 * exercised). stories260K (F32 weights) runs without memories.
 */
#include <unistd.h>

#include "memory.h"
#include "model.h"
#include "quant.h"
#include "test.h"

#define NSEQ 10
#define NSTEP 9

static mome_model *load_model(const char *path) {
    if (!path || access(path, R_OK) != 0) return NULL;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 2;
    mome_model *m = NULL;
    return mome_model_load(path, &mp, &m) == 0 ? m : NULL;
}

static int chat_ids(mome_model *m, const char *q, int32_t **ids) {
    mome_chat_msg msg = {"user", q};
    char *t = mome_chat_format(m, &msg, 1, 1);
    if (!t) return -1;
    int n = mome_tokenize_alloc(m, t, 1, 1, ids);
    free(t);
    return n;
}

static const char *questions[NSEQ] = {
    "What is the port of the staging database?",
    "Name three colours.",
    "hi",
    "Explain in one sentence why the sky looks blue during the day.",
    "What is the capital of France?",
    "Count from one to five.",
    "Who wrote Hamlet?",
    "What is two plus two?",
    "Write a haiku about the sea.",
    "Which planet is the largest?",
};

typedef struct seqs {
    int32_t *prompt[NSEQ];
    int n_prompt[NSEQ];
    int32_t script[NSEQ][NSTEP]; /* tokens fed one at a time after the prompt head */
    mome_memory *mem[NSEQ];      /* attached to both sets (NULL: none) */
} seqs;

static int max_batch; /* the largest batch compare_batched ran */

/* Builds contexts for the sequences, each holding its prompt but the last
 * token (which is the first token of the script). */
static int prefill(mome_model *m, const seqs *s, mome_ctx **ctx, int n_ctx) {
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = 32;
    for (int k = 0; k < NSEQ; k++) {
        if (mome_ctx_init(m, &cp, &ctx[k]) != 0) return -1;
        if (s->mem[k] && mome_ctx_set_memory(ctx[k], s->mem[k]) != 0) return -1;
        if (s->n_prompt[k] > 1 && mome_decode(ctx[k], s->prompt[k], s->n_prompt[k] - 1, 0, 0) != 0) return -1;
    }
    return 0;
}

/* The whole comparison for one model: *n_bad rows or caches that differ,
 * *n_rows rows compared; returns -1 if a decode failed. */
static int compare_batched(mome_model *m, seqs *s, float **ref_logits, int *n_bad, int *n_rows) {
    const int V = m->hp.n_vocab;
    mome_ctx *ref[NSEQ] = {0}, *bat[NSEQ] = {0};
    int rc = -1, rows = 0;
    *n_bad = 0;
    if (prefill(m, s, ref, 160) || prefill(m, s, bat, 160)) {
        fprintf(stderr, "  prefill: %s\n", mome_errmsg());
        goto out;
    }
    for (int k = 0; k < NSEQ; k++)
        for (int j = 0; j < NSTEP; j++) {
            const int32_t tok = s->script[k][j];
            if (mome_decode(ref[k], &tok, 1, mome_ctx_n_past(ref[k]), 0) != 0) goto out;
            memcpy(ref_logits[k] + (size_t)j * V, mome_get_logits(ref[k], -1), (size_t)V * sizeof(float));
        }
    /* batched: step r takes a changing subset in a changing order, until every
     * sequence has fed its whole script */
    int done[NSEQ] = {0};
    for (int r = 0; r < 200; r++) {
        mome_ctx *bc[NSEQ];
        int32_t bt[NSEQ];
        int who[NSEQ], n = 0;
        for (int q = 0; q < NSEQ; q++) {
            const int k = (q * 3 + r) % NSEQ; /* 3 is coprime with NSEQ: a permutation */
            if (done[k] == NSTEP) continue;
            if ((k + r) % 4 == 3 && r < 40) continue; /* sits out: falls behind the others */
            if (r % 5 == 1 && n == 1) continue;       /* some steps run a single row */
            bc[n] = bat[k];
            bt[n] = s->script[k][done[k]];
            who[n++] = k;
        }
        if (n == 0) {
            int all = 1;
            for (int k = 0; k < NSEQ; k++) all &= done[k] == NSTEP;
            if (all) break;
            continue;
        }
        if (n > max_batch) max_batch = n;
        if (mome_decode_batch(bc, bt, n) != 0) {
            fprintf(stderr, "  decode_batch: %s\n", mome_errmsg());
            goto out;
        }
        for (int i = 0; i < n; i++) {
            const int k = who[i];
            const float *got = mome_get_logits(bat[k], -1);
            if (memcmp(got, ref_logits[k] + (size_t)done[k] * V, (size_t)V * sizeof(float)) != 0) {
                if (*n_bad < 3) fprintf(stderr, "  seq %d step %d (batch of %d): logits differ\n", k, done[k], n);
                (*n_bad)++;
            }
            done[k]++;
            rows++;
        }
    }
    for (int k = 0; k < NSEQ; k++) {
        const size_t kv = (size_t)m->hp.n_head_kv * m->hp.head_dim;
        if (mome_ctx_n_past(bat[k]) != mome_ctx_n_past(ref[k])) { (*n_bad)++; continue; }
        for (int l = 0; l < m->hp.n_layer; l++) {
            const size_t off = (size_t)l * 160 * kv, len = (size_t)mome_ctx_n_past(ref[k]) * kv * sizeof(float);
            if (memcmp(ref[k]->k_cache + off, bat[k]->k_cache + off, len) ||
                memcmp(ref[k]->v_cache + off, bat[k]->v_cache + off, len)) {
                if (*n_bad < 3) fprintf(stderr, "  seq %d layer %d: K/V cache differs\n", k, l);
                (*n_bad)++;
                break;
            }
        }
        if (memcmp(ref[k]->tokens, bat[k]->tokens, (size_t)mome_ctx_n_past(ref[k]) * sizeof(int32_t)) != 0) (*n_bad)++;
    }
    rc = 0;
out:
    *n_rows = rows;
    for (int k = 0; k < NSEQ; k++) {
        mome_ctx_free(ref[k]);
        mome_ctx_free(bat[k]);
    }
    return rc;
}

static void make_scripts(mome_model *m, seqs *s) {
    for (int k = 0; k < NSEQ; k++) {
        s->script[k][0] = s->prompt[k][s->n_prompt[k] - 1];
        for (int j = 1; j < NSTEP; j++) s->script[k][j] = (int32_t)((k * 7919 + j * 104729) % m->hp.n_vocab);
    }
}

static void free_seqs(seqs *s) {
    for (int k = 0; k < NSEQ; k++) free(s->prompt[k]);
}

static void run_case(mome_model *m, seqs *s, const char *what) {
    const int V = m->hp.n_vocab;
    float *ref_logits[NSEQ];
    for (int k = 0; k < NSEQ; k++) ref_logits[k] = malloc((size_t)NSTEP * V * sizeof(float));
    int n_bad = 0, n_rows = 0;
    CHECK(compare_batched(m, s, ref_logits, &n_bad, &n_rows) == 0, "%s: a decode failed", what);
    CHECK(n_rows == NSEQ * NSTEP, "%s: %d rows compared", what, n_rows);
    CHECK(n_bad == 0, "%s: %d rows or caches differ from one-token decoding", what, n_bad);
    CHECK(max_batch >= 8, "%s: the largest batch had %d rows (the 8-token kernels did not run)", what, max_batch);
    for (int k = 0; k < NSEQ; k++) free(ref_logits[k]);
}

static void test_batch_stories(void) {
    mome_model *m = load_model(test_shared_path("data/models/stories260K.gguf"));
    if (!m) SKIP("../shared/data/models/stories260K.gguf absent");
    seqs s = {0};
    for (int k = 0; k < NSEQ; k++) {
        s.n_prompt[k] = mome_tokenize_alloc(m, questions[k], 1, 0, &s.prompt[k]);
        REQUIRE(s.n_prompt[k] > 0, "tokenize");
    }
    make_scripts(m, &s);
    run_case(m, &s, "stories260K");
    free_seqs(&s);
    mome_model_free(m);
}

static void test_batch_memories(void) {
    mome_model *m = load_model(test_default_model());
    if (!m) SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)");
    const int C = m->hp.n_embd;
    seqs s = {0};
    for (int k = 0; k < NSEQ; k++) {
        s.n_prompt[k] = chat_ids(m, questions[k], &s.prompt[k]);
        REQUIRE(s.n_prompt[k] > 1, "tokenize");
    }
    /* memory a (keys at block 6, values at 24) holds a fact for question 0,
     * answered by tokens that its script then feeds; memory b (4, 20) holds a
     * fact for nobody's question */
    mome_memory *ma = NULL, *mb = NULL;
    REQUIRE(mem_new(m, 6, 24, &ma) == 0 && mem_new(m, 4, 20, &mb) == 0, "mem_new: %s", mome_errmsg());
    float *keys = calloc((size_t)2 * C, sizeof(float)), *mu = calloc((size_t)2 * C, sizeof(float));
    mome_ctx *kc = NULL;
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 160;
    REQUIRE(mome_ctx_init(m, &cp, &kc) == 0 && mome_ctx_set_memory(kc, ma) == 0, "ctx");
    kc->dec_keys = keys;
    kc->mem_route_off = 1;
    REQUIRE(mome_decode(kc, s.prompt[0], s.n_prompt[0], 0, 0) == 0, "decode");
    mome_ctx_free(kc);
    const int32_t ans[3] = {1000, 2000, 3000};
    REQUIRE(mem_add_fact(ma, keys, keys + C, ans, 3) == 0, "add fact");
    mem_set_centres(ma, mu, mu + C);
    float *v = mem_values(ma, 0);
    for (int i = 0; i < 4 * C; i++) v[i] = 0.25f * (float)((i % 5) - 2);
    float *other = calloc((size_t)2 * C, sizeof(float));
    for (int i = 0; i < 2 * C; i++) other[i] = keys[i] + (i % 7 == 0 ? 3.0f : -1.0f);
    REQUIRE(mem_add_fact(mb, other, other + C, ans, 3) == 0, "add other");
    mem_set_centres(mb, mu, mu + C);
    v = mem_values(mb, 0);
    for (int i = 0; i < 4 * C; i++) v[i] = 0.5f;
    mome_memory_set_routing(ma, 0.99f, -1);
    mome_memory_set_routing(mb, 0.99f, -1);

    make_scripts(m, &s);
    for (int j = 0; j < 3; j++) s.script[0][1 + j] = ans[j];
    /* without memories */
    run_case(m, &s, "SmolLM2 without memories");

    /* the memory a selects its fact for sequence 0: the decision row's logits
     * differ from those without it (so the batch exercises routing) */
    mome_ctx *plain = NULL, *with = NULL;
    REQUIRE(mome_ctx_init(m, &cp, &plain) == 0 && mome_ctx_init(m, &cp, &with) == 0, "ctx");
    REQUIRE(mome_ctx_set_memory(with, ma) == 0, "attach");
    REQUIRE(mome_decode(plain, s.prompt[0], s.n_prompt[0], 0, 0) == 0 &&
                mome_decode(with, s.prompt[0], s.n_prompt[0], 0, 0) == 0, "decode");
    int32_t fact = -1;
    mome_ctx_memory_decision(with, NULL, &fact, NULL);
    CHECK(fact == 0, "memory a selects its fact (got %d)", fact);
    CHECK(memcmp(mome_get_logits(plain, -1), mome_get_logits(with, -1), (size_t)m->hp.n_vocab * sizeof(float)) != 0,
          "the fact does not change the decision row");
    mome_ctx_free(plain);
    mome_ctx_free(with);

    s.mem[0] = ma; /* selects and answers */
    s.mem[2] = mb; /* another memory, nothing selected */
    s.mem[3] = ma; /* the same memory, another question */
    s.mem[5] = mb;
    run_case(m, &s, "SmolLM2 with two memories");

    free(keys);
    free(mu);
    free(other);
    free_seqs(&s);
    mome_memory_free(ma);
    mome_memory_free(mb);
    mome_model_free(m);
}

/* Bad calls change nothing: a repeated context, a token out of range, a
 * full context, more rows than n_batch. */
static void test_batch_errors(void) {
    mome_model *m = load_model(test_shared_path("data/models/stories260K.gguf"));
    if (!m) SKIP("../shared/data/models/stories260K.gguf absent");
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 4;
    cp.n_batch = 2;
    mome_ctx *a, *b, *c;
    REQUIRE(mome_ctx_init(m, &cp, &a) == 0 && mome_ctx_init(m, &cp, &b) == 0 && mome_ctx_init(m, &cp, &c) == 0,
            "ctx");
    mome_ctx *aa[2] = {a, a}, *abc[3] = {a, b, c}, *ab[2] = {a, b};
    int32_t t2[2] = {1, 2}, bad[2] = {1, m->hp.n_vocab}, t3[3] = {1, 2, 3};
    CHECK(mome_decode_batch(aa, t2, 2) == MOME_ERR_ARG, "repeated context accepted");
    CHECK(mome_decode_batch(ab, bad, 2) == MOME_ERR_ARG, "token out of range accepted");
    CHECK(mome_decode_batch(abc, t3, 3) == MOME_ERR_ARG, "3 rows over n_batch 2 accepted");
    CHECK(mome_decode_batch(ab, t2, 0) == MOME_ERR_ARG, "no rows accepted");
    CHECK(mome_ctx_n_past(a) == 0 && mome_ctx_n_past(b) == 0, "a refused call changed a context");
    for (int i = 0; i < 4; i++) REQUIRE(mome_decode_batch(ab, t2, 2) == 0, "decode %d: %s", i, mome_errmsg());
    CHECK(mome_decode_batch(ab, t2, 2) == MOME_ERR_ARG, "a full context accepted a token");
    CHECK(mome_ctx_n_past(a) == 4 && mome_ctx_n_past(b) == 4, "n_past %d %d", mome_ctx_n_past(a), mome_ctx_n_past(b));
    mome_ctx_free(a);
    mome_ctx_free(b);
    mome_ctx_free(c);
    mome_model_free(m);
}

/* quant_matmul_solo gives every token the bits of a one-token
 * quant_matmul, for every weight type and kernel table, nt = 1..19, odd row
 * ranges (F32 and Q4_0 tiles sum in another order: the solo path must not
 * use them). */
static void test_matmul_solo(void) {
    const enum mome_dtype types[] = {MOME_DTYPE_F32, MOME_DTYPE_F16, MOME_DTYPE_Q4_0, MOME_DTYPE_Q4_1,
                                     MOME_DTYPE_Q8_0, MOME_DTYPE_Q4_K, MOME_DTYPE_Q6_K};
    const char *tables[] = {"scalar", "avx2", "avx512vnni"};
    const int64_t n = 512, R = 11, NT = 19;
    int bad = 0, cases = 0, ran = 0;
    uint64_t st = 12345;
    float *X = malloc(n * sizeof(float));
    float *Y1 = malloc(NT * R * sizeof(float)), *Yn = malloc(NT * R * sizeof(float));
    for (size_t ki = 0; ki < 3; ki++) {
        if (quant_init_kernels(tables[ki]) != 0) continue;
        ran++;
        for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
            const enum mome_dtype t = types[ti];
            const size_t ws = quant_row_size(t, n), as = quant_act_row_size(t, n);
            char *W = malloc(R * ws), *A = malloc(NT * as);
            for (int64_t r = 0; r < R + NT; r++) {
                for (int64_t i = 0; i < n; i++) {
                    st = st * 6364136223846793005ULL + 1442695040888963407ULL;
                    X[i] = (float)((int64_t)(st >> 40) % 2001 - 1000) / 500.0f;
                }
                if (r < R) quant_quantize_row(t, X, W + r * ws, n);
                else quant_quantize_act(t, X, A + (r - R) * as, n);
            }
            for (int nt = 1; nt <= NT; nt++) {
                const int64_t r0 = nt % 3, r1 = R - nt % 2;
                for (int i = 0; i < NT * R; i++) Y1[i] = Yn[i] = -7.0f;
                for (int k = 0; k < nt; k++) quant_matmul(t, n, W, ws, A + k * as, as, 1, Y1 + k * R, R, r0, r1);
                quant_matmul_solo(t, n, W, ws, A, as, nt, Yn, R, r0, r1);
                cases++;
                if (memcmp(Y1, Yn, NT * R * sizeof(float)) != 0) {
                    if (bad < 3) fprintf(stderr, "  %s type %d nt %d differs\n", tables[ki], (int)t, nt);
                    bad++;
                }
            }
            free(W);
            free(A);
        }
    }
    quant_init(0);
    free(X);
    free(Y1);
    free(Yn);
    CHECK(ran >= 1, "no kernel table ran");
    CHECK(bad == 0, "%d of %d products differ from one-token products", bad, cases);
}

int main(void) {
    RUN(test_matmul_solo);
    RUN(test_batch_errors);
    RUN(test_batch_stories);
    RUN(test_batch_memories);
    return test_summary();
}
