/* test_memory.c - the memory of facts on the default model (SmolLM2; skipped
 * when it is absent): an empty memory and a memory whose fact is not asked
 * leave every logit bit-identical; the routing state machine finds the
 * decision row after a user turn (behind a system prompt and after an earlier
 * exchange too), never in plain text, and follows an answer only while its
 * tokens are fed; a selected fact changes the logits from its decision row
 * on and nowhere before; save/load round trips (f32 exact, f16 rounded as
 * mem_round_f16 says); damaged or foreign memory files get one clear error;
 * a tuning checkpoint round trips the tuner's state and refuses bad fields.
 * The k-fact mixture: its output with one fact is mem_value_row's bit for
 * bit, its value gradient a_i rms(h) dL/dx matches finite differences, the
 * k best facts are those a brute-force sort finds (ties to the later fact),
 * the selection rule (the best must be selected, partners must reach their
 * threshold, a forced fact takes the k-th place), a fact leaves the mixture
 * when its answer's token is not fed, and a mixture memory is a version-3
 * file while a one-fact memory stays version 2. The wording check (--cover):
 * its kept tokens, centre and cover against brute force, the selection it
 * decides, its version-4 round trip and a bad token count refused.
 * Alternative keys: the best over a fact's keys against brute force, their
 * limits, round trip and a bad count refused. The subject check: whole
 * words, case and spaces aside, through text and tokens alike; the
 * selection it silences; round trip; bad lengths refused. The margin over
 * the rival: the rival is the best fact with another answer among the K
 * best whose subject the question names (or that has none); the best
 * is silent when it does not lead by the margin, selected when it does or
 * is its stored question; a fact's own margin (share x its lead) decides
 * below the memory's; round trip and bad margins and leads refused.
 * Hostile files: a memory with every optional part, its per-fact arrays
 * edited (sums kept, so that a negative length passes the total) and its
 * bytes mutated at random, is refused naming the file or loads into a
 * memory that selects, decodes and saves (ASan build too); removing the
 * subject-length or question-token-count check makes ASan fail here.
 * The relation check: the question's state is the same bits alone, behind
 * a system prompt and after an earlier exchange; verify against brute force
 * over a fact's f16 states; its order and count limits; the selection it
 * silences; round trip; a bad state count refused.
 */
#include <math.h>
#include <unistd.h>

#include "blas.h"
#include "gguf.h"
#include "memory.h"
#include "model.h"
#include "quant.h"
#include "test.h"

static const char *model_path(void) {
    static char p[1024];
    const char *dir = getenv("MOME_MODELS");
    snprintf(p, sizeof p, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", dir ? dir : "models");
    return access(p, R_OK) == 0 ? p : NULL;
}

/* An empty file of our own under /tmp, named into path (64 bytes) after tag: 0, or -1. */
static int temp_file(char *path, const char *tag) {
    snprintf(path, 64, "/tmp/mome_test_%s_XXXXXX", tag);
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

/* mem saved to path and loaded back into *out: the round trip most tests check. */
static int save_load(const mome_memory *mem, const char *path, int f16, mome_model *m, mome_memory **out) {
    return mem_save(mem, path, f16) == 0 ? mome_memory_load(path, m, out) : -1;
}

static mome_model *load(void) {
    const char *p = model_path();
    if (!p) return NULL;
    mome_model *m = NULL;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 2;
    return mome_model_load(p, &mp, &m) == 0 ? m : NULL;
}

/* ids of a chat prompt */
static int prompt_ids(mome_model *m, const mome_chat_msg *msgs, int n, int32_t **ids) {
    char *t = mome_chat_format(m, msgs, n, 1);
    if (!t) return -1;
    int k = mome_tokenize_alloc(m, t, 1, 1, ids);
    free(t);
    return k;
}

/* the positions of decision rows in a token sequence */
static int decisions(const mome_memory *mem, const int32_t *ids, int n, int *where, int cap) {
    mem_pos *st = calloc((size_t)n, sizeof *st);
    int k = 0;
    for (int i = 0; i < n; i++)
        if (mem_pos_next(mem, st, ids, i, &st[i]) && k < cap) where[k++] = i;
    free(st);
    return k;
}

static void test_routing_states(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    CHECK(mem->mk.n_user_open >= 2 && mem->mk.n_head >= 2, "marks %d %d", mem->mk.n_user_open, mem->mk.n_head);
    int32_t *ids = NULL;
    int w[4];
    mome_chat_msg one = {"user", "What is the port of the staging database?"};
    int n = prompt_ids(m, &one, 1, &ids);
    REQUIRE(n > 4, "tokenize");
    CHECK(decisions(mem, ids, n, w, 4) == 1 && w[0] == n - 1, "one decision at the last prompt token (got %d at %d of %d)",
          decisions(mem, ids, n, w, 4), w[0], n);
    free(ids);
    mome_chat_msg conv[4] = {{"system", "You are helpful."}, {"user", "Hi"}, {"assistant", "Hello!"},
                             {"user", "What is the port?"}};
    n = prompt_ids(m, conv, 4, &ids);
    int k = decisions(mem, ids, n, w, 4);
    /* one per user turn: after "Hi" and at the end */
    CHECK(k == 2 && w[1] == n - 1, "behind a system prompt and an exchange: %d decisions, last at %d of %d", k,
          k ? w[k - 1] : -1, n);
    free(ids);
    n = mome_tokenize_alloc(m, "What is the port of the staging database? It is 5432.", 1, 0, &ids);
    CHECK(decisions(mem, ids, n, w, 4) == 0, "plain text has no decision row");
    free(ids);
    /* an answer in progress continues only with its own tokens */
    float *key = calloc((size_t)2 * m->hp.n_embd, sizeof(float));
    int32_t ans[3] = {100, 200, 300};
    REQUIRE(mem_add_fact(mem, key, key + m->hp.n_embd, ans, 3) == 0, "add");
    mem_pos st[4];
    memset(st, 0, sizeof st);
    st[0].mix = (mem_mix){.n = 1, .fact = {0}, .e = {1.0f}};
    st[0].row = 0;
    st[0].pool_start = st[0].span0 = st[0].span1 = -1;
    const int32_t toks[3] = {7, 100, 201};
    mem_pos_next(mem, st, toks, 1, &st[1]);
    mem_pos_next(mem, st, toks, 2, &st[2]);
    CHECK(st[1].mix.n == 1 && st[1].mix.fact[0] == 0 && st[1].row == 1, "row 1 follows the first answer token");
    CHECK(st[2].mix.n == 0, "another token ends the answer");
    /* a mixture: a fact leaves it when its own next token is not fed, the
     * others go on with their weights */
    int32_t ans2[2] = {100, 250};
    REQUIRE(mem_add_fact(mem, key, key + m->hp.n_embd, ans2, 2) == 1, "add");
    st[0].mix = (mem_mix){.n = 2, .fact = {1, 0}, .e = {1.0f, 0.25f}};
    const int32_t toks2[4] = {7, 100, 200, 300};
    for (int i = 1; i < 4; i++) mem_pos_next(mem, st, toks2, i, &st[i]);
    CHECK(st[1].mix.n == 2 && st[1].row == 1, "a token both answers share keeps both (%d)", st[1].mix.n);
    CHECK(st[2].mix.n == 1 && st[2].mix.fact[0] == 0 && st[2].mix.e[0] == 0.25f && st[2].row == 2,
          "the other answer's token drops fact 1, fact 0 keeps its weight");
    CHECK(st[3].mix.n == 1 && st[3].row == 3, "fact 0 goes on to its end-of-turn row");
    free(key);
    mome_memory_free(mem);
    mome_model_free(m);
}

static void test_exact_and_selected(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, V = m->hp.n_vocab;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 128;
    mome_ctx *a, *b;
    REQUIRE(mome_ctx_init(m, &cp, &a) == 0 && mome_ctx_init(m, &cp, &b) == 0, "ctx");
    REQUIRE(mome_ctx_set_memory(b, mem) == 0, "attach: %s", mome_errmsg());
    mome_chat_msg q = {"user", "What is the port of the staging database?"};
    int32_t *ids = NULL;
    int n = prompt_ids(m, &q, 1, &ids);
    REQUIRE(n > 0, "tokenize");
    REQUIRE(mome_decode(a, ids, n, 0, 1) == 0 && mome_decode(b, ids, n, 0, 1) == 0, "decode");
    CHECK(memcmp(mome_get_logits(a, 0), mome_get_logits(b, 0), sizeof(float) * (size_t)V * n) == 0,
          "an empty memory changed the logits");
    /* the question's own keys, captured at the decision row */
    float *keys = calloc((size_t)2 * C, sizeof(float));
    b->dec_keys = keys;
    b->mem_route_off = 1;
    REQUIRE(mome_decode(b, ids, n, 0, 1) == 0, "decode");
    b->dec_keys = NULL;
    b->mem_route_off = 0;
    int32_t dpos = -1;
    CHECK(mome_ctx_memory_decision(b, &dpos, NULL, NULL) && dpos == n - 1, "decision row %d", dpos);
    /* a fact with another question: nothing changes */
    float *other = calloc((size_t)2 * C, sizeof(float));
    for (int i = 0; i < 2 * C; i++) other[i] = keys[i] + (i % 7 == 0 ? 3.0f : -1.0f);
    int32_t ans[2] = {1000, 2000};
    REQUIRE(mem_add_fact(mem, other, other + C, ans, 2) == 0, "add other");
    float *mu = calloc((size_t)2 * C, sizeof(float));
    mem_set_centres(mem, mu, mu + C);
    float *v = mem_values(mem, 0);
    for (int i = 0; i < 3 * C; i++) v[i] = 0.5f;
    mome_memory_set_routing(mem, 0.99f, -1);
    REQUIRE(mome_decode(b, ids, n, 0, 1) == 0, "decode");
    CHECK(memcmp(mome_get_logits(a, 0), mome_get_logits(b, 0), sizeof(float) * (size_t)V * n) == 0,
          "a fact for another question changed the logits");
    /* this question's fact: the decision row's logits change, none before */
    REQUIRE(mem_add_fact(mem, keys, keys + C, ans, 2) == 1, "add own");
    v = mem_values(mem, 1);
    for (int i = 0; i < 3 * C; i++) v[i] = 0.5f;
    REQUIRE(mome_decode(b, ids, n, 0, 1) == 0, "decode");
    int32_t fact = -1;
    float score = 0;
    mome_ctx_memory_decision(b, NULL, &fact, &score);
    CHECK(fact == 1 && fabsf(score - 1.0f) < 1e-4f, "selected fact %d score %f", fact, score);
    CHECK(memcmp(mome_get_logits(a, 0), mome_get_logits(b, 0), sizeof(float) * (size_t)V * (n - 1)) == 0,
          "rows before the decision row changed");
    CHECK(memcmp(mome_get_logits(a, n - 1), mome_get_logits(b, n - 1), sizeof(float) * (size_t)V) != 0,
          "the decision row did not change");
    /* attached later, after decoding without it: the same logits */
    mome_ctx *c;
    REQUIRE(mome_ctx_init(m, &cp, &c) == 0, "ctx");
    REQUIRE(mome_decode(c, ids, n - 1, 0, 0) == 0, "decode");
    REQUIRE(mome_ctx_set_memory(c, mem) == 0, "attach");
    REQUIRE(mome_decode(c, ids + n - 1, 1, n - 1, 0) == 0, "decode");
    CHECK(memcmp(mome_get_logits(c, -1), mome_get_logits(b, n - 1), sizeof(float) * (size_t)V) == 0,
          "a memory attached mid-sequence decides like one attached from the start");
    /* save / load */
    char path[64];
    REQUIRE(temp_file(path, "mem") == 0, "mkstemp");
    mome_memory *l = NULL;
    REQUIRE(save_load(mem, path, 0, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(l->n_facts == 2 && l->n_ans[1] == 2 && l->ans[l->ans_off[1] + 1] == 2000, "facts round trip");
    CHECK(memcmp(l->val, mem->val, (size_t)6 * C * sizeof(float)) == 0, "f32 values exact");
    CHECK(l->tau == mem->tau && l->w_pool == mem->w_pool, "routing parameters");
    mome_memory_free(l);
    mem_values(mem, 1)[0] = 0.1f; /* not an f16 value */
    REQUIRE(mem_save(mem, path, 1) == 0, "save f16");
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load f16: %s", mome_errmsg());
    mem_round_f16(mem);
    CHECK(memcmp(l->val, mem->val, (size_t)6 * C * sizeof(float)) == 0, "f16 values as mem_round_f16 rounds");
    mome_memory_free(l);
    unlink(path);
    free(keys); free(other); free(mu); free(ids);
    mome_ctx_free(a); mome_ctx_free(b); mome_ctx_free(c);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* A memory file (one fact of two answer tokens) with the 32-bit value of
 * one metadata key patched in place (for an array, its first element). */
/* mome.version of a memory file (0 when it cannot be read). */
static uint32_t file_version(const char *path) {
    gguf_file *gf = NULL;
    uint32_t ver = 0;
    if (gguf_open(path, &gf) == 0 && gguf_get_u32(gf, "mome.version", &ver) != 1) ver = 0;
    gguf_close(gf);
    return ver;
}

/* Overwrites the first int32 value of metadata key `key` (the first element
 * of an array) in a memory file. */
static int patch_key(const char *path, const char *key, int64_t val) {
    int rc;
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    const size_t kl = strlen(key);
    long at = -1;
    for (size_t i = 8; i + kl + 32 < n && at < 0; i++)
        if (!memcmp(buf + i, key, kl) && buf[i + kl] != '.' && buf[i + kl] != '_') {
            uint32_t type;
            memcpy(&type, buf + i + kl, 4);
            at = (long)(i + kl + 4 + (type == GGUF_TYPE_ARRAY ? 12 : 0));
        }
    int32_t v = (int32_t)val;
    rc = at < 0 || fseek(f, at, SEEK_SET) || fwrite(&v, 4, 1, f) != 1 ? -1 : 0;
    fclose(f);
    return rc;
}

static int write_variant(mome_model *m, const char *path, const char *key, int64_t val) {
    mome_memory *mem = NULL;
    if (mem_new(m, 6, 24, &mem)) return -1;
    float *k = calloc((size_t)2 * m->hp.n_embd, sizeof(float));
    int32_t ans[2] = {5, 6};
    mem_add_fact(mem, k, k + m->hp.n_embd, ans, 2);
    free(k);
    int rc = mem_save(mem, path, 1);
    mome_memory_free(mem);
    if (rc || !key) return rc;
    return patch_key(path, key, val);
}

static void test_bad_files(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    char path[64];
    REQUIRE(temp_file(path, "bad") == 0, "mkstemp");
    static const struct { const char *key; int64_t val; const char *msg; } cases[] = {
        {"mome.version", 1, "version 1"},
        {"mome.n_facts", 7, "facts"},
        {"mome.n_answer", 9, "answer"},
        {"mome.key_layer", 40, "key layer"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        REQUIRE(write_variant(m, path, cases[i].key, cases[i].val) == 0, "write %s: %s", cases[i].key, mome_errmsg());
        mome_memory *l = NULL;
        int rc = mome_memory_load(path, m, &l);
        CHECK(rc != 0 && !l && strstr(mome_errmsg(), cases[i].msg), "%s = %lld: rc %d, '%s'", cases[i].key,
              (long long)cases[i].val, rc, mome_errmsg());
        mome_memory_free(l);
    }
    /* truncated */
    REQUIRE(write_variant(m, path, NULL, 0) == 0, "write");
    REQUIRE(truncate(path, 600) == 0, "truncate");
    mome_memory *l = NULL;
    CHECK(mome_memory_load(path, m, &l) != 0 && !l, "a truncated memory file is refused");
    unlink(path);
    mome_model_free(m);
}

/* The relation gate: fitted by logistic regression it separates what it was
 * shown and what is like it; in the engine a rejected question leaves the
 * logits bit-identical; it survives save/load; a bad gate in a file is
 * refused. */
static void test_gate(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, V = m->hp.n_vocab;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    float *x = calloc((size_t)C, sizeof(float));
    CHECK(mem_gate(mem, 0, x) == INFINITY, "no gate: everything passes");
    int32_t ans1[1] = {7}, pf[40] = {0};
    REQUIRE(mem_add_fact(mem, x, x, ans1, 1) == 0, "add");
    REQUIRE(mem_gate_fit(mem, x, pf, 1, 0.25f) == 0 && !mem->gate_w, "no negatives: no gate");
    /* two clouds around +d and -d (raw keys; centres are zero) */
    uint64_t r = 42;
#define RND() ((float)((r = r * 6364136223846793005ULL + 1442695040888963407ULL) >> 40) / (float)(1 << 24) - 0.5f)
    float *pos = malloc((size_t)40 * C * sizeof(float)), *neg = malloc((size_t)C * sizeof(float));
    for (int i = 0; i < 40; i++)
        for (int j = 0; j < C; j++) pos[(size_t)i * C + j] = (j % 5 == 0 ? 0.3f : 0.0f) + RND();
    for (int i = 0; i < 40; i++) {
        for (int j = 0; j < C; j++) neg[j] = (j % 5 == 0 ? -0.3f : 0.0f) + RND();
        REQUIRE(mem_gate_add_negative(mem, neg) == 0, "add negative");
    }
    REQUIRE(mem_gate_fit(mem, pos, pf, 30, 0.25f) == 0 && mem->gate_w, "fit: %s", mome_errmsg());
    pf[3] = 5;
    CHECK(mem_gate_fit(mem, pos, pf, 30, 0.25f) != 0 && !mem->gate_w, "a positive of a fact that does not exist");
    pf[3] = 0;
    REQUIRE(mem_gate_fit(mem, pos, pf, 30, 0.25f) == 0 && mem->gate_w, "fit: %s", mome_errmsg());
    float *u = malloc((size_t)C * sizeof(float));
    int right = 0;
    for (int i = 0; i < 40; i++) { /* 30 seen, 10 held out */
        double s = 0;
        for (int j = 0; j < C; j++) s += (double)pos[(size_t)i * C + j] * pos[(size_t)i * C + j];
        for (int j = 0; j < C; j++) u[j] = pos[(size_t)i * C + j] / (float)sqrt(s);
        right += mem_gate(mem, 0, u) >= 0;
        for (int j = 0; j < C; j++) neg[j] = (j % 5 == 0 ? -0.3f : 0.0f) + RND();
        s = 0;
        for (int j = 0; j < C; j++) s += (double)neg[j] * neg[j];
        for (int j = 0; j < C; j++) u[j] = neg[j] / (float)sqrt(s);
        right += mem_gate(mem, 0, u) < 0;
    }
    CHECK(right == 80, "the gate classifies %d of 80 (seen and held-out) right", right);
    /* the engine: a fact for this very question, and a gate that rejects it */
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 128;
    mome_ctx *a, *b;
    REQUIRE(mome_ctx_init(m, &cp, &a) == 0 && mome_ctx_init(m, &cp, &b) == 0, "ctx");
    mome_chat_msg q = {"user", "What is the population of Peru?"};
    int32_t *ids = NULL;
    int n = prompt_ids(m, &q, 1, &ids);
    REQUIRE(n > 0, "tokenize");
    mome_memory *e = NULL;
    REQUIRE(mem_new(m, 6, 24, &e) == 0, "mem_new");
    REQUIRE(mome_ctx_set_memory(b, e) == 0, "attach");
    float *keys = calloc((size_t)2 * C, sizeof(float));
    b->dec_keys = keys;
    b->mem_route_off = 1;
    REQUIRE(mome_decode(b, ids, n, 0, 0) == 0, "decode");
    b->dec_keys = NULL;
    b->mem_route_off = 0;
    int32_t ans[2] = {1000, 2000};
    REQUIRE(mem_add_fact(e, keys, keys + C, ans, 2) == 0, "add");
    for (int i = 0; i < 3 * C; i++) mem_values(e, 0)[i] = 0.5f;
    REQUIRE(mome_decode(a, ids, n, 0, 0) == 0, "decode");
    REQUIRE(mome_decode(b, ids, n, 0, 0) == 0, "decode");
    int32_t fact = -1;
    mome_ctx_memory_decision(b, NULL, &fact, NULL);
    CHECK(fact == 0, "without a gate the question selects its fact (%d)", fact);
    for (int i = 0; i < 8; i++) REQUIRE(mem_gate_add_negative(e, keys + C) == 0, "neg");
    /* accepted: keys unlike this one, of a second fact (fact 0 has no
     * positive, so its bias stays the shared one) */
    REQUIRE(mem_add_fact(e, keys, keys, ans, 2) == 1, "add");
    for (int i = 0; i < 40; i++) {
        pf[i] = 1;
        for (int j = 0; j < C; j++) pos[(size_t)i * C + j] = -keys[C + j] + RND();
    }
    REQUIRE(mem_gate_fit(e, pos, pf, 40, 0.25f) == 0 && e->gate_w, "fit");
    REQUIRE(mome_decode(b, ids, n, 0, 0) == 0, "decode");
    mome_ctx_memory_decision(b, NULL, &fact, NULL);
    CHECK(fact == -1 && b->dec_cand.gate < 0, "the gate rejects the question (fact %d, gate %f)", fact, b->dec_cand.gate);
    CHECK(memcmp(mome_get_logits(a, -1), mome_get_logits(b, -1), sizeof(float) * (size_t)V) == 0,
          "a rejected question's logits are bit-identical");
    /* save / load keeps the gate and its negatives */
    char path[64];
    REQUIRE(temp_file(path, "gate") == 0, "mkstemp");
    mome_memory *l = NULL;
    REQUIRE(save_load(e, path, 1, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(l->gate_w && !memcmp(l->gate_w, e->gate_w, (size_t)C * sizeof(float)) && l->n_gate_bias == 2 &&
              !memcmp(l->gate_bias, e->gate_bias, 2 * sizeof(float)),
          "gate round trip");
    CHECK(l->n_gneg == 8 && !memcmp(l->gneg, e->gneg, (size_t)8 * C * sizeof(float)), "gate negatives round trip");
    mome_memory_free(l);
    /* a gate for more facts than the file has, or a non-finite bias, is refused */
    float *bias3 = malloc(3 * sizeof(float));
    memcpy(bias3, e->gate_bias, 2 * sizeof(float));
    bias3[2] = 0;
    free(e->gate_bias);
    e->gate_bias = bias3;
    e->n_gate_bias = 3;
    REQUIRE(mem_save(e, path, 1) == 0, "save");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "gate_bias"), "3 biases for 2 facts: '%s'",
          mome_errmsg());
    e->n_gate_bias = 2;
    e->gate_bias[1] = NAN;
    REQUIRE(mem_save(e, path, 1) == 0, "save");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "NaN"), "NaN bias: '%s'", mome_errmsg());
    unlink(path);
#undef RND
    free(x); free(pos); free(neg); free(u); free(keys); free(ids);
    mome_ctx_free(a); mome_ctx_free(b);
    mome_memory_free(e);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* A tuning checkpoint round trips the tuner's whole state (states, Adam's
 * moments, counts, the cursor); a state code outside the enum and moments of
 * the wrong shape are refused with one line. */
static void test_checkpoint(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    float *k = calloc((size_t)2 * C, sizeof(float));
    int32_t ans[2] = {5, 6};
    REQUIRE(mem_add_fact(mem, k, k + C, ans, 2) == 0 && mem_add_fact(mem, k, k + C, ans, 1) == 1, "add");
    int32_t state[2] = {MEM_CKPT_LEARNED, MEM_CKPT_GIVEN_UP}, n_fail[2] = {2, 6}, adam_t[2] = {7, 9};
    float tl[2] = {0.01f, 0.0025f}, loss[2] = {0.5f, 1.25f};
    const int64_t rows = 3 + 2; /* (answer tokens + end of turn) per fact */
    float *adam = malloc((size_t)2 * rows * C * sizeof(float));
    for (int64_t i = 0; i < 2 * rows * C; i++) adam[i] = (float)i * 1e-3f - 0.25f;
    mem_ckpt_meta meta = {2, state, tl, 42, 12.5, n_fail, adam_t, loss, 1, adam, rows, NULL};
    char path[64];
    REQUIRE(temp_file(path, "ckpt") == 0, "mkstemp");
    REQUIRE(mem_save_ckpt(mem, path, &meta) == 0, "save: %s", mome_errmsg());
    mome_memory *l = NULL;
    mem_ckpt_meta got;
    REQUIRE(mem_load_ckpt(path, m, &l, &got) == 0, "load: %s", mome_errmsg());
    CHECK(got.n == 2 && got.step == 42 && got.seconds == 12.5 && got.cursor == 1 && got.n_adam_rows == rows,
          "scalars round trip");
    CHECK(!memcmp(got.state, state, sizeof state) && !memcmp(got.n_fail, n_fail, sizeof n_fail) &&
              !memcmp(got.adam_t, adam_t, sizeof adam_t) && !memcmp(got.loss, loss, sizeof loss) &&
              !memcmp(got.target_loss, tl, sizeof tl),
          "per-fact state round trips");
    CHECK(got.adam && !memcmp(got.adam, adam, (size_t)2 * rows * C * sizeof(float)), "Adam's moments exact");
    mem_ckpt_meta_free(&got);
    mome_memory_free(l);
    state[1] = 7;
    REQUIRE(mem_save_ckpt(mem, path, &meta) == 0, "save");
    CHECK(mem_load_ckpt(path, m, &l, &got) == MOME_ERR_FORMAT && !l && strstr(mome_errmsg(), "state 7") &&
              !strchr(mome_errmsg(), '\n'),
          "a state outside the enum is refused: %s", mome_errmsg());
    state[1] = MEM_CKPT_VERIFIED;
    meta.n_adam_rows = 0; /* moments without rows: written as none, then */
    meta.adam = adam;
    REQUIRE(mem_save_ckpt(mem, path, &meta) == 0, "save");
    CHECK(mem_load_ckpt(path, m, &l, &got) == MOME_ERR_FORMAT && strstr(mome_errmsg(), "optimizer state"),
          "counts without moments are refused: %s", mome_errmsg());
    meta.adam = NULL; /* an older checkpoint: no optimizer state at all */
    REQUIRE(mem_save_ckpt(mem, path, &meta) == 0, "save");
    CHECK(mem_load_ckpt(path, m, &l, &got) == 0 && !got.adam && got.state[1] == MEM_CKPT_VERIFIED,
          "a checkpoint without the optimizer state loads: %s", mome_errmsg());
    mem_ckpt_meta_free(&got);
    mome_memory_free(l);
    unlink(path);
    free(adam);
    free(k);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* ------------------------------------------------------------ mixtures */

static float frand(uint64_t *s) {
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((*s >> 40) & 0xffffff) / 16777216.0f - 0.5f;
}

/* n random key pairs (pool, last: 2C floats each) from seed; NULL: oom. */
static float *random_keys(int n, int C, uint64_t seed) {
    float *k = malloc((size_t)n * 2 * C * sizeof(float));
    for (size_t i = 0; k && i < (size_t)n * 2 * C; i++) k[i] = frand(&seed);
    return k;
}

/* L(x) = sum_c w_c x_c + x_c^2 / 2 of the mixture's output, in double. */
static double mix_loss(const float *h, const float *const *v, const float *e, int n, const float *w, float *x, int C) {
    mem_mix_row(h, v, e, n, x, C, NULL);
    double l = 0;
    for (int c = 0; c < C; c++) l += (double)w[c] * x[c] + 0.5 * (double)x[c] * x[c];
    return l;
}

/* The mixture's row output and its value gradient (model-free). */
static void test_mix_row_grad(void) {
    enum { C = 24, N = 3 };
    uint64_t seed = 7;
    float h[C], w[C], x[C], x1[C], vals[N][C], a[N];
    for (int c = 0; c < C; c++) {
        h[c] = 2.0f * frand(&seed);
        w[c] = frand(&seed);
    }
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) vals[i][c] = frand(&seed);
    const float *v[N] = {vals[0], vals[1], vals[2]};
    const float e[N] = {1.0f, 0.6f, 0.15f};
    /* one fact: mem_value_row's bits, weight 1 */
    float one = 0.0f;
    const float r1 = mem_mix_row(h, v, e + 1, 1, x1, C, &one);
    const float r0 = mem_value_row(h, v[0], x, C);
    CHECK(r0 == r1 && one == 1.0f && !memcmp(x, x1, sizeof x), "one fact is mem_value_row bit for bit");
    /* in place (x = h), as the engine calls it */
    float hh[C];
    memcpy(hh, h, sizeof h);
    mem_mix_row(hh, v, e, N, hh, C, NULL);
    mem_mix_row(h, v, e, N, x, C, a);
    CHECK(!memcmp(hh, x, sizeof x), "in place = out of place");
    CHECK(fabsf(a[0] + a[1] + a[2] - 1.0f) < 1e-6f && a[0] > a[1] && a[1] > a[2], "weights %g %g %g", a[0], a[1], a[2]);
    /* dL/dv_i[c] = a_i rms(h) dL/dx_c against central differences */
    const float rms = mem_mix_row(h, v, e, N, x, C, a);
    double worst = 0;
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c += 5) {
            const double g = (double)a[i] * rms * (w[c] + x[c]);
            const float keep = vals[i][c], step = 1e-2f;
            vals[i][c] = keep + step;
            const double lp = mix_loss(h, v, e, N, w, x1, C);
            vals[i][c] = keep - step;
            const double lm = mix_loss(h, v, e, N, w, x1, C);
            vals[i][c] = keep;
            const double fd = (lp - lm) / (2.0 * step);
            const double err = fabs(fd - g) / (fabs(g) + 1e-3);
            if (err > worst) worst = err;
        }
    CHECK(worst < 2e-3, "value gradient vs finite differences: worst relative error %g", worst);
}

/* mem_best_k against a brute-force order; the selection rule. */
static void test_mix_select(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, NF = 12;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    float *keys = random_keys(NF + 1, C, 11), *q = malloc((size_t)2 * C * sizeof(float));
    REQUIRE(keys && q, "oom");
    int32_t ans[2] = {100, 200};
    for (int f = 0; f < NF; f++) {
        /* facts 4 and 5 have the same keys (a tie) */
        const float *k = keys + (size_t)(f == 5 ? 4 : f) * 2 * C;
        REQUIRE(mem_add_fact(mem, k, k + C, ans, 2) == f, "add");
    }
    /* a question near fact 3, a little toward 4/5 and 7 */
    float *qk = keys + (size_t)NF * 2 * C;
    for (int i = 0; i < 2 * C; i++) qk[i] = keys[3 * 2 * C + i] + 0.6f * keys[4 * 2 * C + i] + 0.4f * keys[7 * 2 * C + i];
    int32_t idx[MEM_MAX_K];
    float sc[MEM_MAX_K];
    float all[64];
    const int n = mem_best_k(mem, qk, qk + C, NF, q, idx, sc);
    REQUIRE(n == NF, "all %d facts (%d)", NF, n);
    for (int i = 0; i < n; i++) all[idx[i]] = sc[i];
    int sorted = 1, perm = 1;
    int seen[64] = {0};
    for (int i = 0; i < n; i++) {
        seen[idx[i]]++;
        if (i && sc[i] > sc[i - 1]) sorted = 0;
        if (i && sc[i] == sc[i - 1] && idx[i] > idx[i - 1]) sorted = 0; /* ties: the later fact first */
    }
    for (int f = 0; f < NF; f++) perm &= seen[f] == 1;
    CHECK(sorted && perm && all[4] == all[5], "mem_best_k orders every fact by score, ties to the later one");
    CHECK(idx[0] == 3, "the question's own fact first (got %d)", idx[0]);
    float s0;
    CHECK(mem_best(mem, qk, qk + C, q, &s0) == idx[0] && s0 == sc[0], "mem_best is mem_best_k's first");
    int32_t t3[3];
    float s3[3];
    CHECK(mem_best_k(mem, qk, qk + C, 3, q, t3, s3) == 3 && !memcmp(t3, idx, sizeof t3) && !memcmp(s3, sc, sizeof s3),
          "the 3 best are the first 3 of the order");
    /* the rule: k = 1 selects the best alone at tau */
    mem_mix mx;
    mem_cand cd;
    mome_memory_set_routing(mem, sc[0] - 1e-3f, NAN);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && mx.fact[0] == idx[0] && mx.e[0] == 1.0f &&
              cd.best == idx[0] && cd.score == sc[0] && isinf(cd.gate),
          "k = 1: the best fact, weight 1");
    mome_memory_set_routing(mem, sc[0] + 1e-3f, NAN);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 0 && cd.best == idx[0], "below tau: silent");
    /* k = 4: partners at tau join; the memory still speaks only when the best is selected */
    mome_memory_set_mix(mem, 4, 0.1f, NAN);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, NULL) == 0, "k = 4, best below tau: silent");
    mome_memory_set_routing(mem, sc[2] - 1e-4f, NAN);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, NULL) == 3 && mx.fact[0] == idx[0] &&
              mx.fact[1] == idx[1] && mx.fact[2] == idx[2],
          "k = 4, tau between the 3rd and 4th scores: 3 facts (%d)", mx.n);
    CHECK(mx.e[0] == 1.0f && fabsf(mx.e[1] - expf((sc[1] - sc[0]) / 0.1f)) < 1e-6f, "weights exp((s_i - s_max) / T)");
    mome_memory_set_mix(mem, 4, 0.1f, -1.0f);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, NULL) == 4 && mx.fact[3] == idx[3],
          "partner threshold -1: the 4 best");
    /* forced (the tuner): a fact outside the 4 best takes the 4th place */
    const int far = idx[NF - 1];
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, far, q, &mx, NULL) == 4 && mx.fact[3] == far &&
              mx.fact[0] == idx[0] && mx.e[0] == 1.0f && mx.e[3] < mx.e[2],
          "a forced fact replaces the 4th");
    /* a mixture memory is version 3 and round trips; one fact stays version 2 */
    char path[64];
    REQUIRE(temp_file(path, "mix") == 0, "mkstemp");
    mome_memory_set_mix(mem, 4, 0.25f, 0.3f);
    REQUIRE(mem_save(mem, path, 1) == 0, "save: %s", mome_errmsg());
    uint32_t ver = file_version(path);
    CHECK(ver == 3, "mixture memory: version %u", ver);
    gguf_file *gf = NULL;
    mome_memory *l = NULL;
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load: %s", mome_errmsg());
    CHECK(l->top_k == 4 && l->mix_temp == 0.25f && l->mix_tau == 0.3f && mome_memory_top_k(l) == 4, "k, T, tau round trip");
    mome_memory_free(l);
    mome_memory_set_mix(mem, 1, NAN, NAN);
    REQUIRE(mem_save(mem, path, 1) == 0, "save");
    REQUIRE(gguf_open(path, &gf) == 0, "open");
    int32_t kk;
    CHECK(gguf_get_u32(gf, "mome.version", &ver) == 1 && ver == 2 && gguf_get_i32(gf, "mome.top_k", &kk) == 0,
          "one fact per question: version 2, no mixture keys");
    gguf_close(gf);
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load v2: %s", mome_errmsg());
    CHECK(l->top_k == 1, "a version-2 file mixes one fact");
    mome_memory_free(l);
    unlink(path);
    free(keys);
    free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* A memory of nf facts with the key pairs `keys`, fact f answering
 * {first[f], 7} (subject `subj[f]` when not NULL), every score above the
 * threshold; NULL on error. */
static mome_memory *answer_memory(mome_model *m, const float *keys, int nf, const int32_t *first, const char *const *subj) {
    const int C = m->hp.n_embd;
    mome_memory *mem = NULL;
    if (mem_new(m, 6, 24, &mem)) return NULL;
    mome_memory_set_routing(mem, -1.0f, NAN);
    for (int f = 0; f < nf; f++) {
        const int32_t a[2] = {first[f], 7};
        char question[64];
        snprintf(question, sizeof question, "What is the code of %s?", subj && subj[f] ? subj[f] : "");
        if (mem_add_fact(mem, keys + (size_t)f * 2 * C, keys + (size_t)f * 2 * C + C, a, 2) != f ||
            (subj && subj[f] && mem_set_fact_subject(mem, f, subj[f], question) != 1)) {
            mome_memory_free(mem);
            return NULL;
        }
    }
    return mem;
}

static void test_margin(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    enum { NF = 12 };
    const int C = m->hp.n_embd;
    float *keys = random_keys(NF + 1, C, 5), *q = malloc(MEM_SELECT_SCRATCH(C) * sizeof(float));
    REQUIRE(keys && q, "oom");
    float *qk = keys + (size_t)NF * 2 * C;
    for (int i = 0; i < 2 * C; i++) qk[i] = keys[3 * 2 * C + i] + 0.8f * keys[4 * 2 * C + i] + 0.5f * keys[7 * 2 * C + i];
    int32_t idx[MEM_MAX_K], first[NF];
    float sc[MEM_MAX_K];
    /* the order, from a memory whose answers all differ */
    for (int f = 0; f < NF; f++) first[f] = 100 + f;
    mome_memory *mem = answer_memory(m, keys, NF, first, NULL);
    REQUIRE(mem, "memory: %s", mome_errmsg());
    REQUIRE(mem_best_k(mem, qk, qk + C, NF, q, idx, sc) == NF, "order");
    REQUIRE(sc[0] < MEM_MARGIN_SURE && sc[0] - sc[1] > 0.02f && sc[1] - sc[2] > 0.02f, "a question that is not stored, "
            "clear leads (%g %g %g)", sc[0], sc[1], sc[2]);
    mem_mix mx;
    mem_cand cd;
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && cd.rival == sc[1] && cd.second == sc[1],
          "answers all differ: the rival is the runner-up");
    const float lead1 = sc[0] - sc[1], lead2 = sc[0] - sc[2];
    mome_memory_set_margin(mem, lead1 + 0.01f);
    CHECK(mome_memory_margin(mem) == lead1 + 0.01f, "margin set");
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 0 && cd.best == idx[0], "a lead below the margin: silent");
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, idx[0], q, &mx, NULL) == 1, "a forced fact is in regardless");
    mome_memory_set_margin(mem, lead1 - 0.01f);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && mx.fact[0] == idx[0], "a lead above it: selected");
    /* the same memory where the runner-up answers as the best: the third is the rival */
    first[idx[1]] = 100 + idx[0];
    mome_memory *m2 = answer_memory(m, keys, NF, first, NULL);
    REQUIRE(m2, "memory: %s", mome_errmsg());
    mome_memory_set_margin(m2, (lead1 + lead2) / 2);
    CHECK(mem_mix_select(m2, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && cd.rival == sc[2] && cd.second == sc[1],
          "a runner-up with the same answer is no rival: selected (rival %g, third %g)", cd.rival, sc[2]);
    /* its own stored question: selected whatever the margin */
    mome_memory_set_margin(m2, 2.0f);
    CHECK(mem_mix_select(m2, keys + 3 * 2 * C, keys + 3 * 2 * C + C, NULL, -1, q, &mx, &cd) == 1 && mx.fact[0] == 3 &&
              cd.score >= MEM_MARGIN_SURE,
          "the stored question passes any margin (score %g)", cd.score);
    mome_memory_free(m2);
    /* the rival comes from the K best: fact 11 (another answer, the K+1-th) is none */
    REQUIRE(mem_best_k(mem, qk, qk + C, NF, q, idx, sc) == NF, "order");
    for (int f = 0; f < NF; f++) first[f] = f == idx[MEM_MARGIN_K] ? 101 : 100;
    m2 = answer_memory(m, keys, NF, first, NULL);
    REQUIRE(m2, "memory: %s", mome_errmsg());
    mome_memory_set_margin(m2, 2.0f);
    CHECK(mem_mix_select(m2, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && isinf(cd.rival) && cd.rival < 0,
          "the %d best share one answer: no rival, selected (%g)", MEM_MARGIN_K, cd.rival);
    mome_memory_free(m2);
    /* a runner-up whose subject the question does not name is no rival */
    const char *subj[NF] = {0};
    subj[idx[0]] = "Austria";
    subj[idx[1]] = "Germany";
    for (int f = 0; f < NF; f++) first[f] = 100 + f;
    m2 = answer_memory(m, keys, NF, first, subj);
    REQUIRE(m2, "memory: %s", mome_errmsg());
    mome_memory_set_margin(m2, (lead1 + lead2) / 2);
    const mem_query at = {NULL, NULL, 0, "what is the code of austria", NULL, NULL}, both = {NULL, NULL, 0, "Austria or Germany?", NULL, NULL};
    CHECK(mem_mix_select(m2, qk, qk + C, &at, -1, q, &mx, &cd) == 1 && cd.rival == sc[2],
          "the runner-up's subject not named: the third is the rival, selected (%g)", cd.rival);
    CHECK(mem_mix_select(m2, qk, qk + C, &both, -1, q, &mx, &cd) == 0 && cd.rival == sc[1],
          "both subjects named: the runner-up is the rival, silent (%g)", cd.rival);
    mome_memory_free(m2);
    /* a fact's own margin, share x its lead: below the memory's it decides, above it or NAN the memory's does */
    CHECK(mem->margin_share == MEM_DEFAULT_MARGIN_SHARE, "default share");
    mome_memory_set_margin_share(mem, 1.0f);
    mome_memory_set_margin(mem, lead1 + 0.01f);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 0 && cd.margin == lead1 + 0.01f, "the memory's margin");
    REQUIRE(mem_set_fact_lead(mem, idx[0], lead1 - 0.01f) == 0, "set");
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && cd.margin == lead1 - 0.01f,
          "its own margin below the lead: selected");
    CHECK(mem_fact_margin(mem, idx[1]) == lead1 + 0.01f, "another fact keeps the memory's");
    mome_memory_set_margin_share(mem, 0.5f);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && cd.margin == 0.5f * (lead1 - 0.01f),
          "share 0.5: half its lead");
    mome_memory_set_margin_share(mem, 1.0f);
    REQUIRE(mem_set_fact_lead(mem, idx[0], 1.5f) == 0, "set");
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 0 && cd.margin == lead1 + 0.01f,
          "its own margin above the memory's: capped");
    mome_memory_set_margin(mem, 0.0f);
    CHECK(mem_mix_select(mem, qk, qk + C, NULL, -1, q, &mx, &cd) == 1 && cd.margin == 0.0f, "the memory's 0 turns it off");
    CHECK(mem_set_fact_lead(mem, idx[0], 2.5f) < 0 && mem_set_fact_lead(mem, NF, 0.1f) < 0 &&
              mem_set_fact_lead(mem, idx[0], -0.1f) < 0,
          "a lead outside [0, 2] or for no fact is refused");
    REQUIRE(mem_set_fact_lead(mem, idx[0], 0.0625f) == 0, "set");
    mome_memory_set_margin_share(mem, 0.75f);
    /* round trip; a file without it has none; a bad one is refused */
    char path[64];
    REQUIRE(temp_file(path, "margin") == 0, "mkstemp");
    mome_memory_set_margin(mem, 0.125f);
    REQUIRE(mem_save(mem, path, 1) == 0, "save: %s", mome_errmsg());
    int32_t bits;
    mome_memory *l = NULL;
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load: %s", mome_errmsg());
    CHECK(mome_memory_margin(l) == 0.125f, "margin round trips (%g)", mome_memory_margin(l));
    CHECK(l->margin_share == 0.75f && mem_fact_margin(l, idx[0]) == 0.75f * 0.0625f && isnan(l->flead[idx[1]]) &&
              mem_fact_margin(l, idx[1]) == 0.125f,
          "the share and the facts' leads round trip");
    mome_memory_free(l);
    memcpy(&bits, &(float){-1.0f}, 4);
    REQUIRE(patch_key(path, "mome.fact_lead", bits) == 0, "patch");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "mome.fact_lead of fact 0"),
          "a fact lead of -1 is refused: '%s'", mome_errmsg());
    REQUIRE(mem_save(mem, path, 1) == 0, "save");
    memcpy(&bits, &(float){3.0f}, 4);
    REQUIRE(patch_key(path, "mome.route_margin", bits) == 0, "patch");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "mome.route_margin"),
          "a margin of 3 is refused: '%s'", mome_errmsg());
    mome_memory_set_margin(mem, 0.0f);
    REQUIRE(mem_save(mem, path, 1) == 0, "save");
    gguf_file *gf = NULL;
    float fv;
    REQUIRE(gguf_open(path, &gf) == 0, "open");
    CHECK(gguf_get_f32(gf, "mome.route_margin", &fv) == 0, "no margin: no key in the file");
    gguf_close(gf);
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load");
    CHECK(mome_memory_margin(l) == 0.0f, "a file without it: no margin");
    mome_memory_free(l);
    unlink(path);
    free(keys);
    free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* The wording check: kept tokens are the content ones, rounded to f16; the
 * centre is their mean; cover(f, q) is the brute-force min-max of centred
 * cosines; a fact's own tokens cover it, a question that lacks one of its
 * words does not and then leaves the memory silent; the check survives
 * save/load as a version-4 file, and a bad token count is refused. */
static double ref_cover(const float *ft, int nf, const float *qt, int nq, const float *mu, int C) {
    double cov = INFINITY;
    for (int j = 0; j < nf; j++) {
        double best = -INFINITY;
        for (int i = 0; i < nq; i++) {
            double d = 0, a = 0, b = 0, qs = 0;
            for (int c = 0; c < C; c++) qs += (double)qt[(size_t)i * C + c] * qt[(size_t)i * C + c];
            const double r = 1.0 / sqrt(qs / C + 1e-6); /* x̂ = h / rms(h), as mem_rms_normalize */
            for (int c = 0; c < C; c++) {
                const double x = qt[(size_t)i * C + c] * r - mu[c], y = (double)ft[(size_t)j * C + c] - mu[c];
                d += x * y; a += x * x; b += y * y;
            }
            const double cs = d / sqrt(a * b);
            if (cs > best) best = cs;
        }
        if (best < cov) cov = best;
    }
    return cov;
}

static void test_cover(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, NF = 3, NT = 6;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    CHECK(isnan(mome_memory_cover_threshold(mem)), "a new memory has no wording check");
    mome_memory_set_cover(mem, 0.2f);
    /* content tokens, and one whitespace token that must be dropped */
    int32_t content[8], blank = -1;
    int nc = 0;
    for (int v = 300; v < m->hp.n_vocab && (nc < 8 || blank < 0); v++) {
        if (mem->content[v] && nc < 8) content[nc++] = v;
        else if (mem->blank[v] && blank < 0) blank = v;
    }
    REQUIRE(nc == 8 && blank >= 0, "content and blank tokens");
    uint64_t seed = 7;
    float *rows = malloc(sizeof(float) * (size_t)NF * (NT + 1) * C), *kept = malloc(sizeof(float) * (size_t)NF * NT * C);
    float *keys = calloc((size_t)2 * C, sizeof(float));
    for (size_t i = 0; i < (size_t)NF * (NT + 1) * C; i++) rows[i] = 3.0f * (frand(&seed) - 0.5f);
    int32_t toks[NT + 1];
    for (int f = 0; f < NF; f++) {
        for (int i = 0; i < NT + 1; i++) toks[i] = i == 2 ? blank : content[(i + f) % 8];
        for (int c = 0; c < C; c++) keys[c] = keys[C + c] = frand(&seed);
        int32_t ans[2] = {5, 6};
        REQUIRE(mem_add_fact(mem, keys, keys + C, ans, 2) == f, "add");
        const mem_query q = {rows + (size_t)f * (NT + 1) * C, toks, NT + 1, NULL, NULL, NULL};
        REQUIRE(mem_set_fact_tokens(mem, f, &q) == 0, "tokens: %s", mome_errmsg());
        CHECK(mem->n_tok[f] == NT, "fact %d keeps %d tokens, want %d (the blank one dropped)", f, mem->n_tok[f], NT);
        for (int i = 0, k = 0; i < NT + 1; i++) {
            if (i == 2) continue;
            mem_rms_normalize(q.rows + (size_t)i * C, kept + ((size_t)f * NT + k) * C, C);
            for (int c = 0; c < C; c++) {
                float *x = kept + ((size_t)f * NT + k) * C + c;
                *x = quant_f16_to_f32(quant_f32_to_f16(*x));
            }
            k++;
        }
    }
    CHECK(mem_set_fact_tokens(mem, 0, &(mem_query){rows, toks, 1, NULL, NULL, NULL}) != 0, "tokens twice for one fact are refused");
    mem_update_tok_centre(mem);
    double err = 0;
    for (int c = 0; c < C; c++) {
        double s = 0;
        for (int r = 0; r < NF * NT; r++) s += kept[(size_t)r * C + c];
        err = fmax(err, fabs(s / (NF * NT) - mem->mu_tok[c]));
    }
    CHECK(err < 1e-5, "token centre off by %g", err);
    float *scr = malloc(sizeof(float) * MEM_COVER_SCRATCH(C));
    /* own tokens, and a question that lacks fact 0's token 3 (a random row in its place) */
    for (int f = 0; f < NF; f++) {
        for (int i = 0; i < NT + 1; i++) toks[i] = i == 2 ? blank : content[(i + f) % 8];
        const mem_query q = {rows + (size_t)f * (NT + 1) * C, toks, NT + 1, NULL, NULL, NULL};
        const float cv = mem_cover(mem, f, &q, scr);
        CHECK(cv > 0.999f, "fact %d: its own tokens cover it %.4f", f, cv);
    }
    float *other = malloc(sizeof(float) * (size_t)(NT + 1) * C);
    memcpy(other, rows, sizeof(float) * (size_t)(NT + 1) * C);
    for (int c = 0; c < C; c++) other[(size_t)4 * C + c] = 3.0f * (frand(&seed) - 0.5f);
    for (int i = 0; i < NT + 1; i++) toks[i] = i == 2 ? blank : content[i % 8];
    const mem_query qo = {other, toks, NT + 1, NULL, NULL, NULL};
    /* the reference over the question's content rows only */
    float *qc = malloc(sizeof(float) * (size_t)NT * C);
    for (int i = 0, k = 0; i < NT + 1; i++)
        if (i != 2) memcpy(qc + (size_t)k++ * C, other + (size_t)i * C, sizeof(float) * C);
    const float cv = mem_cover(mem, 0, &qo, scr);
    const double rf = ref_cover(kept, NT, qc, NT, mem->mu_tok, C);
    CHECK(fabs(cv - rf) < 1e-4, "cover %.6f, brute force %.6f", cv, rf);
    CHECK(cv < 0.2f, "a question without one of the fact's words covers it %.3f", cv);
    /* the selection: the same keys, the wording decides */
    float *q = malloc(sizeof(float) * MEM_SELECT_SCRATCH(C));
    mem_mix mx;
    mem_cand cd;
    const mem_query qs = {rows, toks, NT + 1, NULL, NULL, NULL}; /* fact 0's own rows; toks are still fact 0's */
    CHECK(mem_mix_select(mem, mem->kpool, mem->klast, &qs, -1, q, &mx, &cd) == 1 && mx.fact[0] == 0,
          "own wording selects fact 0 (cover %.3f)", cd.cover);
    CHECK(mem_mix_select(mem, mem->kpool, mem->klast, &qo, -1, q, &mx, &cd) == 0,
          "a missing word leaves the memory silent (cover %.3f)", cd.cover);
    CHECK(mem_mix_select(mem, mem->kpool, mem->klast, NULL, -1, q, &mx, NULL) == 1,
          "no tokens given: no check");
    /* save / load */
    char path[64];
    REQUIRE(temp_file(path, "cover") == 0, "mkstemp");
    REQUIRE(mem_save(mem, path, 1) == 0, "save: %s", mome_errmsg());
    const uint32_t ver = file_version(path);
    CHECK(ver == 4, "a memory with the wording check is a version-4 file (%u)", ver);
    mome_memory *l = NULL;
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load: %s", mome_errmsg());
    CHECK(l->cover_tau == 0.2f && l->n_tok_total == mem->n_tok_total &&
              !memcmp(l->ktok, mem->ktok, sizeof(uint16_t) * (size_t)C * mem->n_tok_total) &&
              !memcmp(l->mu_tok, mem->mu_tok, sizeof(float) * C),
          "the wording check round trips");
    CHECK(mem_cover(l, 0, &qo, scr) == cv, "cover after load %.6f vs %.6f", mem_cover(l, 0, &qo, scr), cv);
    mome_memory_free(l);
    REQUIRE(patch_key(path, "mome.n_question_tokens", 65) == 0, "patch");
    l = NULL;
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "question tokens"),
          "a fact with 65 question tokens is refused: '%s'", mome_errmsg());
    mome_memory_free(l);
    unlink(path);
    free(rows); free(kept); free(keys); free(scr); free(other); free(qc); free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* brute-force centred cosine in double */
static double ref_ccos(const float *a, const float *b, const float *mu, int C) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < C; i++) {
        const double x = (double)a[i] - mu[i], y = (double)b[i] - mu[i];
        ab += x * y; aa += x * x; bb += y * y;
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

/* Alternative keys: a fact scores the best of its own and alternative keys
 * (brute force, also after new centres), a question asked as the
 * alternative wording finds its fact, they are added only to the newest
 * fact and at most MEM_MAX_ALT, they round trip (kept in f16 from the
 * start, so bit for bit), a memory without them writes no field, and a bad
 * count is refused. */
static void test_alt_keys(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, NF = 5;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    /* keys: NF facts, 2 alternatives for fact 2 and 1 for fact 4, a question, new centres */
    float *keys = random_keys(NF + 5, C, 23), *q = malloc((size_t)2 * C * sizeof(float));
    REQUIRE(keys && q, "oom");
    const float *alt[3] = {keys + (size_t)NF * 2 * C, keys + (size_t)(NF + 1) * 2 * C, keys + (size_t)(NF + 2) * 2 * C};
    int32_t ans[2] = {100, 200};
    char path[64];
    REQUIRE(temp_file(path, "alt") == 0, "mkstemp");
    for (int f = 0; f < NF; f++) REQUIRE(mem_add_fact(mem, keys + (size_t)f * 2 * C, keys + (size_t)f * 2 * C + C, ans, 2) == f, "add");
    REQUIRE(mem_save(mem, path, 1) == 0, "save");
    gguf_file *gf = NULL;
    const gguf_kv *kv;
    REQUIRE(gguf_open(path, &gf) == 0, "open");
    CHECK(gguf_get_arr(gf, "mome.n_alt_keys", GGUF_TYPE_INT32, &kv) == 0 && !gguf_find_tensor(gf, "mem.alt_key_pool"),
          "no alternative keys: no field in the file");
    gguf_close(gf);
    REQUIRE(mem_add_alt_key(mem, 3, alt[0], alt[0] + C) == 0, "alt for fact 3: %s", mome_errmsg());
    CHECK(mem_add_alt_key(mem, 2, alt[0], alt[0] + C) != 0, "alternative keys out of fact order are refused");
    /* rebuild with the alternatives in place, added after every fact (as the tuner does) */
    mome_memory_free(mem);
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new");
    for (int f = 0; f < NF; f++)
        REQUIRE(mem_add_fact(mem, keys + (size_t)f * 2 * C, keys + (size_t)f * 2 * C + C, ans, 2) == f, "add");
    for (int f = 0; f < NF; f++) {
        if (f == 2) for (int a = 0; a < 2; a++) REQUIRE(mem_add_alt_key(mem, f, alt[a], alt[a] + C) == 0, "alt: %s", mome_errmsg());
        if (f == 4) {
            REQUIRE(mem_add_alt_key(mem, f, alt[2], alt[2] + C) == 0, "alt");
            for (int a = 1; a < MEM_MAX_ALT; a++) REQUIRE(mem_add_alt_key(mem, f, alt[2], alt[2] + C) == 0, "alt");
            CHECK(mem_add_alt_key(mem, f, alt[2], alt[2] + C) != 0, "more than %d alternative keys are refused", MEM_MAX_ALT);
        }
    }
    CHECK(mem->n_alt_total == 2 + MEM_MAX_ALT && mem->n_alt[2] == 2 && mem->n_alt[4] == MEM_MAX_ALT, "counts");
    int ok = 1;
    for (size_t i = 0; i < (size_t)C; i++) ok &= mem->akpool[i] == quant_f16_to_f32(quant_f32_to_f16(alt[0][i]));
    CHECK(ok, "alternative keys are kept as f16 values");
    /* brute force: every fact's score is the best over its keys, for a question near alt[1] and after new centres */
    float *qk = keys + (size_t)(NF + 3) * 2 * C;
    for (int round = 0; round < 2; round++) {
        if (round == 1) {
            float *mu = malloc((size_t)2 * C * sizeof(float));
            REQUIRE(mu, "oom");
            for (int i = 0; i < 2 * C; i++) mu[i] = 0.3f * keys[(size_t)(NF + 4) * 2 * C + i];
            REQUIRE(mem_set_centres(mem, mu, mu + C) == 0, "centres");
            free(mu);
        }
        for (int i = 0; i < 2 * C; i++) qk[i] = alt[1][i] + 0.2f * keys[(size_t)3 * 2 * C + i];
        int32_t idx[MEM_MAX_K];
        float sc[MEM_MAX_K];
        REQUIRE(mem_best_k(mem, qk, qk + C, NF, q, idx, sc) == NF, "all facts");
        double worst = 0;
        for (int i = 0; i < NF; i++) {
            const int f = idx[i];
            const float *kp = mem->kpool + (size_t)f * C, *kl = mem->klast + (size_t)f * C;
            double best = 0.7 * ref_ccos(qk, kp, mem->mu_pool, C) + 0.3 * ref_ccos(qk + C, kl, mem->mu_last, C);
            for (int64_t a = mem->alt_off[f]; a < mem->alt_off[f] + mem->n_alt[f]; a++) {
                const double s = 0.7 * ref_ccos(qk, mem->akpool + (size_t)a * C, mem->mu_pool, C) +
                                 0.3 * ref_ccos(qk + C, mem->aklast + (size_t)a * C, mem->mu_last, C);
                if (s > best) best = s;
            }
            if (fabs(best - sc[i]) > worst) worst = fabs(best - sc[i]);
        }
        CHECK(worst < 1e-5, "round %d: scores are the best over each fact's keys (max error %.2e)", round, worst);
        CHECK(idx[0] == 2 && sc[0] > 0.9f, "round %d: a question near fact 2's alternative wording finds fact 2 (%d, %.3f)",
              round, idx[0], sc[0]);
    }
    /* round trip */
    mome_memory *l = NULL;
    REQUIRE(save_load(mem, path, 1, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(l->n_alt_total == mem->n_alt_total && !memcmp(l->n_alt, mem->n_alt, NF * sizeof(int32_t)) &&
              !memcmp(l->akpool, mem->akpool, sizeof(float) * (size_t)C * mem->n_alt_total) &&
              !memcmp(l->aklast, mem->aklast, sizeof(float) * (size_t)C * mem->n_alt_total),
          "alternative keys round trip bit for bit");
    float s1, s2;
    CHECK(mem_best(l, qk, qk + C, q, &s1) == mem_best(mem, qk, qk + C, q, &s2) && s1 == s2, "the loaded memory scores alike");
    mome_memory_free(l);
    REQUIRE(patch_key(path, "mome.n_alt_keys", MEM_MAX_ALT + 1) == 0, "patch");
    l = NULL;
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "alternative keys"),
          "a fact with %d alternative keys is refused: '%s'", MEM_MAX_ALT + 1, mome_errmsg());
    mome_memory_free(l);
    unlink(path);
    free(keys);
    free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* The subject check: subjects are kept normalised and only when the
 * question names them; a question passes when its text (given, or its
 * tokens' text) names the subject as whole words, whatever its ASCII case and
 * spacing; the selection stays silent when the best fact's subject is not
 * named; subjects round trip and a bad length is refused. */
static void test_subject(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new: %s", mome_errmsg());
    float *keys = random_keys(3, C, 5), *q = malloc(MEM_SELECT_SCRATCH(C) * sizeof(float));
    REQUIRE(keys && q, "oom");
    int32_t ans[2] = {100, 200};
    REQUIRE(mem_add_fact(mem, keys, keys + C, ans, 2) == 0, "add");
    CHECK(mem_set_fact_subject(mem, 0, "United  States", "What is the code of Canada?") == 0 && mem->subj_len[0] == 0 &&
              mem->n_subj_total == 0,
          "a subject the question does not name is not kept");
    CHECK(mem_set_fact_subject(mem, 0, " United  States ", "What is the ISO code of United States?") == 1 &&
              mem->subj_len[0] == 13 && !memcmp(mem->subj, "united states", 13),
          "kept normalised: '%.*s'", mem->subj_len[0], mem->subj);
    REQUIRE(mem_add_fact(mem, keys + 2 * C, keys + 3 * C, ans, 2) == 1, "add");
    CHECK(mem_set_fact_subject(mem, 0, "X", "X?") < 0, "a subject for an older fact is refused");
    struct { const char *q; int want; } cases[] = {
        {"What is the ISO code of United States?", 1},
        {"what is the iso code of united states", 1},
        {"WHAT  IS THE ISO CODE OF   UNITED\tSTATES ?", 1},
        {"United States's code?", 1},
        {"What is the code of the United Statesman?", 0},
        {"What is the code of Reunited States?", 0},
        {"What is the code of United States-Mexico?", 0},
        {"What is the code of (United States)?", 1},
        {"What is the code of Germany?", 0},
        {"What is the code of United Kingdom?", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mem_query qt = {NULL, NULL, 0, cases[i].q, NULL, NULL};
        CHECK(mem_subject_check(mem, 0, &qt) == cases[i].want, "text '%s': %d", cases[i].q, cases[i].want);
        /* the same through the question's tokens, as the engine reads it */
        int32_t *ids = NULL;
        const int n = mome_tokenize_alloc(m, cases[i].q, 0, 0, &ids);
        REQUIRE(n > 0, "tokenize");
        const mem_query qk = {NULL, ids, n, NULL, NULL, NULL};
        CHECK(mem_subject_check(mem, 0, &qk) == cases[i].want, "tokens of '%s': %d", cases[i].q, cases[i].want);
        free(ids);
    }
    /* a question longer than the text the check keeps: its end is searched */
    {
        const size_t pad = 3 * MEM_SUBJECT_TEXT;
        char *lq = malloc(pad + 64);
        REQUIRE(lq, "oom");
        memset(lq, 'a', pad);
        for (size_t i = 7; i < pad; i += 8) lq[i] = ' ';
        strcpy(lq + pad, " United States?");
        const mem_query at_end = {NULL, NULL, 0, lq, NULL, NULL};
        CHECK(mem_subject_check(mem, 0, &at_end) == 1, "a long question naming its subject at the end names it");
        memcpy(lq, "United States ", 14);
        strcpy(lq + pad, " Canada?");
        const mem_query at_start = {NULL, NULL, 0, lq, NULL, NULL};
        CHECK(mem_subject_check(mem, 0, &at_start) == 0, "a long question naming it only at the start: only its end is read");
        free(lq);
    }
    const mem_query none = {NULL, NULL, 0, "anything", NULL, NULL};
    CHECK(mem_subject_check(mem, 1, &none) == -1, "a fact without a subject is not checked");
    /* the selection: fact 0's own keys, asked with and without its subject */
    mome_memory_set_routing(mem, 0.5f, NAN);
    mem_mix mx;
    mem_cand cd;
    const mem_query yes = {NULL, NULL, 0, cases[1].q, NULL, NULL}, no = {NULL, NULL, 0, cases[6].q, NULL, NULL};
    CHECK(mem_mix_select(mem, keys, keys + C, &yes, -1, q, &mx, &cd) == 1 && mx.fact[0] == 0 && cd.subject == 1,
          "named: selected");
    CHECK(mem_mix_select(mem, keys, keys + C, &no, -1, q, &mx, &cd) == 0 && cd.best == 0 && cd.subject == 0 && cd.score > 0.99f,
          "not named: silent though the keys match (best %d, subject %d)", cd.best, cd.subject);
    CHECK(mem_mix_select(mem, keys, keys + C, NULL, -1, q, &mx, &cd) == 1 && cd.subject == -1, "no question text: no check");
    CHECK(mem_mix_select(mem, keys, keys + C, &no, 0, q, &mx, NULL) == 1 && mx.fact[0] == 0, "a forced fact is in regardless");
    /* round trip */
    char path[64];
    REQUIRE(temp_file(path, "subject") == 0, "mkstemp");
    mome_memory *l = NULL;
    REQUIRE(save_load(mem, path, 1, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(l->n_subj_total == 13 && l->subj_len[0] == 13 && l->subj_len[1] == 0 && !memcmp(l->subj, "united states", 13) &&
              mem_subject_check(l, 0, &yes) == 1 && mem_subject_check(l, 0, &no) == 0,
          "subjects round trip");
    mome_memory_free(l);
    REQUIRE(patch_key(path, "mome.subject_len", MEM_MAX_SUBJECT + 1) == 0, "patch");
    l = NULL;
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "subject"),
          "a subject of %d bytes is refused: '%s'", MEM_MAX_SUBJECT + 1, mome_errmsg());
    REQUIRE(patch_key(path, "mome.subject_len", 12) == 0, "patch");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "add up"),
          "lengths that do not add up to the text are refused: '%s'", mome_errmsg());
    unlink(path);
    free(keys);
    free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* ------------------------------------------------------------ hostile files */

/* A memory with every part a file can hold: a two-fact mixture, the wording
 * check's tokens, subjects, an alternative key, leads, a margin and share,
 * a gate with its negatives; fact 0's keys are those of `ids` (n tokens), so
 * that the question selects it. NULL on failure (mome_errmsg). */
/* The relation check's state the engine used at the last decision row of
 * the prompt msgs (the memory attached to c), into out (C); the decision
 * row's position or -1. */
static int engine_state(mome_ctx *c, const mome_chat_msg *msgs, int nm, float *out) {
    int32_t *ids = NULL, pos = -1;
    const int n = prompt_ids(c->m, msgs, nm, &ids);
    if (n <= 0 || mome_decode(c, ids, n, 0, 0) != 0 || !mome_ctx_memory_decision(c, &pos, NULL, NULL)) pos = -1;
    if (pos >= 0) mem_rms_normalize(c->vrows + (size_t)pos * c->m->hp.n_embd, out, c->m->hp.n_embd);
    free(ids);
    return pos;
}


/* An empty memory (key block 6, values at 24) with the relation check at
 * block 18 and threshold tau, or NULL. */
static mome_memory *checked_memory(mome_model *m, float tau) {
    mome_memory *mem = NULL;
    if (mem_new(m, 6, 24, &mem) == 0 && mem_verify_init(mem, 18, tau) == 0) return mem;
    mome_memory_free(mem);
    return NULL;
}

/* Facts whose question names no subject need verify >= max(ver_tau,
 * ver_tau_unnamed) (mem_verify_tau): a question at cosine 0.7 to each fact's
 * state answers a named fact at ver_tau 0.5 and not an unnamed one at the
 * default 0.94, until the latter is lowered; a memory threshold of -1 checks
 * nothing, a higher memory threshold wins; the setting round trips, the
 * default writes no field, and a value outside [-1, 1] is refused. */
static void test_verify_unnamed(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd;
    mome_memory *mem = checked_memory(m, 0.5f);
    REQUIRE(mem, "mem: %s", mome_errmsg());
    float *keys = random_keys(4, C, 91), *vs = random_keys(4, C, 92), *qv = malloc(2 * sizeof(float) * C),
          *mu = calloc((size_t)C, sizeof(float)), *q = malloc(MEM_SELECT_SCRATCH(C) * sizeof(float));
    REQUIRE(keys && vs && qv && mu && q, "oom");
    /* qv[f] = 0.7 vs[f] + sqrt(0.51) u, u the unit part of vs[f + 2] orthogonal to vs[f] */
    for (int f = 0; f < 2; f++) {
        const float *a = vs + (size_t)f * C, *b = vs + (size_t)(f + 2) * C;
        double aa = 0, ab = 0, uu = 0;
        for (int i = 0; i < C; i++) aa += (double)a[i] * a[i], ab += (double)a[i] * b[i];
        for (int i = 0; i < C; i++) qv[(size_t)f * C + i] = (float)(b[i] - ab / aa * a[i]);
        for (int i = 0; i < C; i++) uu += (double)qv[(size_t)f * C + i] * qv[(size_t)f * C + i];
        for (int i = 0; i < C; i++)
            qv[(size_t)f * C + i] = (float)(0.7 * a[i] / sqrt(aa) + sqrt(0.51) * qv[(size_t)f * C + i] / sqrt(uu));
    }
    const int32_t ans0[1] = {100}, ans1[1] = {200};
    REQUIRE(mem_add_fact(mem, keys, keys + C, ans0, 1) == 0 && mem_set_fact_subject(mem, 0, "Austria", "What is the code of Austria?") == 1 &&
                mem_add_fact(mem, keys + 2 * C, keys + 3 * C, ans1, 1) == 1 && mem_set_fact_verify(mem, 0, vs, 1) == 0 &&
                mem_set_fact_verify(mem, 1, vs + C, 1) == 0 && mem_set_verify_centre(mem, mu) == 0,
            "facts: %s", mome_errmsg());
    mome_memory_set_routing(mem, -1.0f, NAN);
    mem_mix mx;
    mem_cand cd;
    const mem_query named = {NULL, NULL, 0, "What is the code of Austria?", qv, NULL};
    const mem_query unnamed = {NULL, NULL, 0, "who wrote the code", qv + C, NULL};
    CHECK(mome_memory_verify_unnamed(mem) == MOME_DEFAULT_VERIFY_UNNAMED && mem_verify_tau(mem, 0) == 0.5f &&
              mem_verify_tau(mem, 1) == MOME_DEFAULT_VERIFY_UNNAMED,
          "thresholds: named %g, unnamed %g", (double)mem_verify_tau(mem, 0), (double)mem_verify_tau(mem, 1));
    CHECK(mem_mix_select(mem, keys, keys + C, &named, -1, q, &mx, &cd) == 1 && cd.best == 0 && fabsf(cd.verify - 0.7f) < 1e-2f,
          "a named fact answers at verify %.3f >= 0.5", (double)cd.verify);
    CHECK(mem_mix_select(mem, keys + 2 * C, keys + 3 * C, &unnamed, -1, q, &mx, &cd) == 0 && cd.best == 1 &&
              fabsf(cd.verify - 0.7f) < 1e-2f,
          "an unnamed fact at verify %.3f stays silent under the default %g", (double)cd.verify, (double)MOME_DEFAULT_VERIFY_UNNAMED);
    mome_memory_set_verify_unnamed(mem, 0.6f);
    CHECK(mem_mix_select(mem, keys + 2 * C, keys + 3 * C, &unnamed, -1, q, &mx, &cd) == 1 && mx.fact[0] == 1,
          "and answers once its threshold is 0.6");
    mome_memory_set_verify_unnamed(mem, 0.95f);
    mome_memory_set_verify(mem, -1.0f);
    CHECK(mem_mix_select(mem, keys + 2 * C, keys + 3 * C, &unnamed, -1, q, &mx, &cd) == 1 && mem_verify_tau(mem, 1) == -1.0f,
          "a memory threshold of -1 checks nothing, unnamed facts too");
    mome_memory_set_verify(mem, 0.8f);
    mome_memory_set_verify_unnamed(mem, 0.6f);
    CHECK(mem_verify_tau(mem, 1) == 0.8f && mem_mix_select(mem, keys + 2 * C, keys + 3 * C, &unnamed, -1, q, &mx, &cd) == 0,
          "the memory's higher threshold applies to unnamed facts");
    mome_memory_set_verify_unnamed(mem, 1.5f);
    CHECK(mome_memory_verify_unnamed(mem) == 0.6f, "a threshold outside [-1, 1] is ignored");
    /* round trip; the default writes no field; a bad value is refused */
    char path[64];
    REQUIRE(temp_file(path, "unnamed") == 0, "mkstemp");
    mome_memory *l = NULL;
    REQUIRE(save_load(mem, path, 1, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(mome_memory_verify_unnamed(l) == 0.6f && l->ver_tau == 0.8f, "the unnamed threshold round trips (%g)",
          (double)mome_memory_verify_unnamed(l));
    mome_memory_free(l);
    l = NULL;
    int32_t bits;
    memcpy(&bits, &(float){1.5f}, 4);
    REQUIRE(patch_key(path, "mome.verify_tau_unnamed", bits) == 0, "patch");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "mome.verify_tau_unnamed"),
          "an unnamed threshold of 1.5 is refused: '%s'", mome_errmsg());
    mome_memory_set_verify_unnamed(mem, MOME_DEFAULT_VERIFY_UNNAMED);
    REQUIRE(mem_save(mem, path, 1) == 0, "save");
    gguf_file *gf = NULL;
    float v;
    REQUIRE(gguf_open(path, &gf) == 0, "open");
    CHECK(gguf_get_f32(gf, "mome.verify_tau_unnamed", &v) == 0, "the default writes no field");
    gguf_close(gf);
    REQUIRE(mome_memory_load(path, m, &l) == 0 && mome_memory_verify_unnamed(l) == MOME_DEFAULT_VERIFY_UNNAMED, "load");
    mome_memory_free(l);
    unlink(path);
    free(keys); free(vs); free(qv); free(mu); free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}
/* Siblings (rank_siblings): among the best facts that keep the best's
 * subject, named by the question, the relation check picks which answers;
 * nothing moves without a check, a named subject, a sibling or one that
 * reaches the threshold. */
static void test_siblings(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd;
    mome_memory *mem = checked_memory(m, 0.0f);
    REQUIRE(mem, "mem: %s", mome_errmsg());
    float *keys = random_keys(3, C, 77), *vs = random_keys(2, C, 78), *mu = calloc((size_t)C, sizeof(float)),
          *q = malloc(MEM_SELECT_SCRATCH(C) * sizeof(float));
    REQUIRE(keys && vs && mu && q, "oom");
    const int32_t ans0[1] = {100}, ans1[1] = {200}, ans2[1] = {300};
    /* fact 0: the question's keys, relation state A; fact 1: other keys, state B; same subject */
    REQUIRE(mem_add_fact(mem, keys, keys + C, ans0, 1) == 0 && mem_set_fact_subject(mem, 0, "Austria", "What is the code of Austria?") == 1 &&
                mem_add_fact(mem, keys + 2 * C, keys + 3 * C, ans1, 1) == 1 &&
                mem_set_fact_subject(mem, 1, "Austria", "What is the number of Austria?") == 1 &&
                mem_set_fact_verify(mem, 0, vs, 1) == 0 && mem_set_fact_verify(mem, 1, vs + C, 1) == 0 && mem_set_verify_centre(mem, mu) == 0,
            "facts: %s", mome_errmsg());
    mome_memory_set_routing(mem, -1.0f, NAN);
    mem_mix mx;
    mem_cand cd;
    const mem_query asks_b = {NULL, NULL, 0, "What is the number of Austria?", vs + C, NULL};
    const mem_query asks_a = {NULL, NULL, 0, "What is the code of Austria?", vs, NULL};
    const mem_query unnamed = {NULL, NULL, 0, "What is the number of it?", vs + C, NULL};
    mem_mix_select(mem, keys, keys + C, &asks_a, -1, q, &mx, &cd);
    CHECK(cd.best == 0 && mx.n == 1 && mx.fact[0] == 0, "the best by key score and by the check answers (best %d)", cd.best);
    mem_mix_select(mem, keys, keys + C, &asks_b, -1, q, &mx, &cd);
    CHECK(cd.best == 1 && mx.n == 1 && mx.fact[0] == 1 && cd.verify > 0.999f && cd.second > cd.score,
          "the sibling the check prefers answers, below the best key score (best %d, verify %.3f)", cd.best, (double)cd.verify);
    mem_mix_select(mem, keys, keys + C, &unnamed, -1, q, &mx, &cd);
    CHECK(cd.best == 0, "a question that does not name the subject: the key score decides (best %d)", cd.best);
    mem_mix_select(mem, keys, keys + C, &asks_b, 0, q, &mx, &cd);
    CHECK(mx.n >= 1 && mx.fact[0] == 0, "a forced fact (the tuner's mixtures) is not re-ranked");
    mome_memory_set_routing(mem, 0.99f, NAN); /* fact 1's key score is below it */
    mem_mix_select(mem, keys, keys + C, &asks_b, -1, q, &mx, &cd);
    CHECK(cd.best == 0, "a sibling below the score threshold stays behind (best %d)", cd.best);
    mome_memory_set_routing(mem, -1.0f, NAN);
    const float tau = mem->ver_tau;
    mem->ver_tau = NAN;
    mem_mix_select(mem, keys, keys + C, &asks_b, -1, q, &mx, &cd);
    CHECK(cd.best == 0, "no check: the key score decides (best %d)", cd.best);
    mem->ver_tau = tau;
    /* a third fact about another subject, with B's state: not a sibling */
    REQUIRE(mem_add_fact(mem, keys + 4 * C, keys + 5 * C, ans2, 1) == 2 &&
                mem_set_fact_subject(mem, 2, "Germany", "What is the number of Germany and Austria?") == 1 &&
                mem_set_fact_verify(mem, 2, vs + C, 1) == 0,
            "fact 2: %s", mome_errmsg());
    memcpy(mem->subj + mem->subj_off[1], "austrib", 7); /* fact 1 no longer shares fact 0's subject */
    const mem_query both = {NULL, NULL, 0, "What is the number of Germany and Austria?", vs + C, NULL};
    mem_mix_select(mem, keys, keys + C, &both, -1, q, &mx, &cd);
    CHECK(cd.best == 0, "facts about other subjects are not siblings (best %d)", cd.best);
    free(keys); free(vs); free(mu); free(q);
    mome_memory_free(mem);
    mome_model_free(m);
}

static void test_verify(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, NF = 3;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new");
    CHECK(mem_verify_init(mem, 24, 0.5f) != 0 && mem_verify_init(mem, 0, 0.5f) != 0 && mem_verify_init(mem, 18, 1.5f) != 0,
          "a check at or above the value block, at block 0 or with a threshold outside [-1, 1] is refused");
    REQUIRE(mem_verify_init(mem, 18, 0.9f) == 0, "init: %s", mome_errmsg());
    mome_memory_set_routing(mem, -1.0f, NAN);
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 256;
    mome_ctx *c = NULL;
    REQUIRE(mome_ctx_init(m, &cp, &c) == 0 && mome_ctx_set_memory(c, mem) == 0, "ctx");
    /* the state reads the question alone: bit for bit the same behind a system prompt and after an exchange */
    float *st = malloc(sizeof(float) * (size_t)6 * C), *keys = random_keys(NF + 1, C, 41);
    REQUIRE(st && keys, "oom");
    const char *own = "What is the code of Austria?";
    const mome_chat_msg alone[] = {{"user", own}};
    const mome_chat_msg sys[] = {{"system", "You are terse."}, {"user", own}};
    const mome_chat_msg turn[] = {{"user", "Hi."}, {"assistant", "Hello."}, {"user", own}};
    const mome_chat_msg other[] = {{"user", "Who owns Austria?"}};
    const mome_chat_msg lower[] = {{"system", "You are terse."}, {"user", "what is the code of austria?"}};
    REQUIRE(engine_state(c, alone, 1, st) >= 0 && engine_state(c, sys, 2, st + C) >= 0 &&
                engine_state(c, turn, 3, st + 2 * C) >= 0 && engine_state(c, other, 1, st + 3 * C) >= 0 &&
                engine_state(c, lower, 2, st + 4 * C) >= 0,
            "every prompt has a decision row: %s", mome_errmsg());
    CHECK(!memcmp(st, st + C, sizeof(float) * C) && !memcmp(st, st + 2 * C, sizeof(float) * C),
          "the question's state is the same bits alone (read in place), behind a system prompt and after an earlier "
          "exchange (its own pass)");
    CHECK(memcmp(st, st + 3 * C, sizeof(float) * C) != 0, "another question has another state");
    int32_t *qi = NULL;
    const int nq = prompt_ids(m, alone, 1, &qi);
    int32_t s0 = -1, s1 = -1;
    REQUIRE(nq > 0 && mem_find_question(mem, qi, nq, &s0, &s1) == nq - 1 && s1 > s0, "the question's span");
    REQUIRE(ctx_question_state(c, qi + s0, s1 - s0, st + 5 * C) == 0, "question state: %s", mome_errmsg());
    CHECK(!memcmp(st, st + 5 * C, sizeof(float) * C), "ctx_question_state gives the engine's state (the tuner's path)");
    /* facts: 0 keeps its question (and its lower case), 1 the other question's state, 2 none */
    const int32_t ans[2] = {100, 7};
    for (int f = 0; f < NF; f++) REQUIRE(mem_add_fact(mem, keys + (size_t)f * 2 * C, keys + (size_t)f * 2 * C + C, ans, 2) == f, "add");
    float two[2 * 576];
    REQUIRE(C <= 576, "C");
    memcpy(two, st, sizeof(float) * C);
    memcpy(two + C, st + 4 * C, sizeof(float) * C);
    REQUIRE(mem_set_fact_verify(mem, 0, two, 2) == 0, "states of fact 0: %s", mome_errmsg());
    CHECK(mem_set_fact_verify(mem, 0, two, 1) != 0, "a fact's states are set once");
    CHECK(mem_set_fact_verify(mem, 1, two, MEM_MAX_VER + 1) != 0, "more than %d states are refused", MEM_MAX_VER);
    REQUIRE(mem_set_fact_verify(mem, 1, st + 3 * C, 1) == 0, "states of fact 1");
    float *mu = malloc(sizeof(float) * C), *scr = malloc(sizeof(float) * 4 * C);
    REQUIRE(mu && scr, "oom");
    for (int i = 0; i < C; i++) mu[i] = 0.5f * (st[i] + st[3 * C + i]);
    REQUIRE(mem_set_verify_centre(mem, mu) == 0, "centre");
    /* brute force over the f16 states */
    double worst = 0;
    for (int q = 0; q < 5; q++)
        for (int f = 0; f < 2; f++) {
            double best = -INFINITY;
            for (int j = 0; j < mem->n_ver[f]; j++) {
                float k16[576];
                for (int i = 0; i < C; i++) k16[i] = quant_f16_to_f32(quant_f32_to_f16((f == 0 ? two + (size_t)j * C : st + 3 * C)[i]));
                const double d = ref_ccos(st + (size_t)q * C, k16, mu, C);
                if (d > best) best = d;
            }
            const double e = fabs(best - mem_verify(mem, f, st + (size_t)q * C, scr));
            if (e > worst) worst = e;
        }
    CHECK(worst < 1e-5, "verify is the best centred cosine over the fact's states (max error %.2e)", worst);
    CHECK(isinf(mem_verify(mem, 2, st, scr)) && isinf(mem_verify(mem, 0, NULL, scr)), "no states or no question state: no check");
    CHECK(mem_verify(mem, 0, st, scr) > 0.999f && mem_verify(mem, 0, st + 3 * C, scr) < 0.9f,
          "the stored question verifies, the other question does not (%.3f, %.3f)", (double)mem_verify(mem, 0, st, scr),
          (double)mem_verify(mem, 0, st + 3 * C, scr));
    /* the selection: fact 0's keys are the question's; the other question, given fact 0's keys, is silenced */
    c->dec_keys = keys; /* fact 0's own keys, from its question */
    c->mem_route_off = 1;
    REQUIRE(mome_decode(c, qi, nq, 0, 0) == 0, "decode");
    c->dec_keys = NULL;
    c->mem_route_off = 0;
    memcpy(mem->kpool, keys, sizeof(float) * C);
    memcpy(mem->klast, keys + C, sizeof(float) * C);
    REQUIRE(mem_set_centres(mem, mem->mu_pool, mem->mu_last) == 0, "centres");
    int32_t fact = -1;
    float tmp[576];
    engine_state(c, sys, 2, tmp);
    mome_ctx_memory_decision(c, NULL, &fact, NULL);
    CHECK(fact == 0 && c->dec_cand.verify > 0.999f, "the question behind a system prompt selects its fact (%d, verify %.3f)",
          fact, (double)c->dec_cand.verify);
    c->dec_keys = keys;
    c->mem_route_off = 1;
    engine_state(c, other, 1, tmp); /* the other question's own keys, into keys */
    c->dec_keys = NULL;
    c->mem_route_off = 0;
    memcpy(mem->kpool, keys, sizeof(float) * C); /* fact 0 keyed on the other question, verified on its own */
    memcpy(mem->klast, keys + C, sizeof(float) * C);
    REQUIRE(mem_set_centres(mem, mem->mu_pool, mem->mu_last) == 0, "centres");
    engine_state(c, other, 1, tmp);
    mome_ctx_memory_decision(c, NULL, &fact, NULL);
    CHECK(c->dec_cand.best == 0 && fact == -1 && c->dec_cand.verify < 0.9f,
          "a question whose keys find the fact but whose state is another question's is silenced (best %d, fact %d, verify %.3f)",
          c->dec_cand.best, fact, (double)c->dec_cand.verify);
    mome_memory_set_verify(mem, -1.0f);
    engine_state(c, other, 1, tmp);
    mome_ctx_memory_decision(c, NULL, &fact, NULL);
    CHECK(fact == 0, "at threshold -1 it answers (%d)", fact);
    mome_memory_set_verify(mem, 0.9f);
    /* whitened: cos(W (q - c_f), W (k - c_f)) with each fact's centre (f16), against brute force */
    float *w = malloc(sizeof(float) * (size_t)C * C), *cw = malloc(sizeof(float) * 2 * C);
    REQUIRE(w && cw, "oom");
    uint64_t wseed = 5;
    for (int i = 0; i < C; i++)
        for (int j = i; j < C; j++) w[(size_t)i * C + j] = w[(size_t)j * C + i] = (i == j) + 0.05f * frand(&wseed);
    CHECK(mem_set_fact_verify_centre(mem, 0, st) != 0, "a fact centre needs the whitening");
    REQUIRE(mem_set_verify_whiten(mem, w) == 0, "whiten: %s", mome_errmsg());
    for (int i = 0; i < C; i++) cw[i] = 0.3f * st[3 * C + i] + 0.7f * mu[i];
    REQUIRE(mem_set_fact_verify_centre(mem, 0, cw) == 0 && mem_set_fact_verify_centre(mem, NF, cw) != 0, "fact centres");
    worst = 0;
    for (int q = 0; q < 5; q++)
        for (int f = 0; f < 2; f++) {
            double best = -INFINITY;
            float c16[576];
            for (int i = 0; i < C; i++) c16[i] = quant_f16_to_f32(quant_f32_to_f16(f == 0 ? cw[i] : mu[i]));
            for (int j = 0; j < mem->n_ver[f]; j++) {
                const float *k = f == 0 ? two + (size_t)j * C : st + 3 * C;
                double na = 0, nb = 0, d = 0;
                for (int i = 0; i < C; i++) {
                    double sa = 0, sb = 0;
                    for (int l = 0; l < C; l++) {
                        sa += (double)w[(size_t)i * C + l] * (st[(size_t)q * C + l] - c16[l]);
                        sb += (double)w[(size_t)i * C + l] * (quant_f16_to_f32(quant_f32_to_f16(k[l])) - c16[l]);
                    }
                    na += sa * sa, nb += sb * sb, d += sa * sb;
                }
                if (d / sqrt(na * nb) > best) best = d / sqrt(na * nb);
            }
            const double e = fabs(best - mem_verify(mem, f, st + (size_t)q * C, scr));
            if (e > worst) worst = e;
        }
    CHECK(worst < 1e-4, "whitened verify is the best cosine of W (x - c_f) over the fact's states, fact 0 its centre, "
                        "fact 1 mu_ver (max error %.2e)", worst);
    /* round trip, and a bad count */
    char path[64];
    REQUIRE(temp_file(path, "verify") == 0, "mkstemp");
    mome_memory *l = NULL;
    REQUIRE(save_load(mem, path, 1, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(l->ver_layer == 18 && l->ver_tau == 0.9f && l->n_ver_total == 3 && !memcmp(l->n_ver, mem->n_ver, NF * sizeof(int32_t)) &&
              !memcmp(l->kver, mem->kver, sizeof(uint16_t) * 3 * C) && !memcmp(l->mu_ver, mem->mu_ver, sizeof(float) * C),
          "the relation check round trips bit for bit");
    CHECK(mem_verify(l, 0, st, scr) == mem_verify(mem, 0, st, scr) && mem_verify(l, 1, st, scr) == mem_verify(mem, 1, st, scr) &&
              l->ver_w && !memcmp(l->ver_w, w, sizeof(float) * C * C) && !memcmp(l->ver_ctr, mem->ver_ctr, sizeof(uint16_t) * NF * C),
          "and verifies alike, its whitening and fact centres too");
    /* a fact added to the loaded memory gets mu_ver as its centre */
    int nf = NF;
    for (; nf <= 70; nf++) REQUIRE(mem_add_fact(l, keys, keys + C, ans, 2) == nf, "add after load");
    int same = 1;
    for (int i = 0; i < C; i++) same &= l->ver_ctr[(size_t)70 * C + i] == quant_f32_to_f16(l->mu_ver[i]);
    CHECK(same && mem_set_fact_verify_centre(l, 70, cw) == 0, "facts added after loading (past the loaded capacity) centre on mu_ver");
    mome_memory_free(l);
    l = NULL;
    REQUIRE(patch_key(path, "mome.n_verify", MEM_MAX_VER + 1) == 0, "patch");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "relation-check states"),
          "a fact with %d states is refused: '%s'", MEM_MAX_VER + 1, mome_errmsg());
    mome_memory_free(l);
    mome_memory *plain = NULL;
    REQUIRE(mem_new(m, 6, 24, &plain) == 0 && mem_add_fact(plain, keys, keys + C, ans, 2) == 0 && mem_save(plain, path, 1) == 0, "plain");
    gguf_file *gf = NULL;
    int32_t lay;
    REQUIRE(gguf_open(path, &gf) == 0, "open");
    CHECK(gguf_get_i32(gf, "mome.verify_layer", &lay) == 0 && !gguf_find_tensor(gf, "mem.verify_states"),
          "a memory without the check writes no field");
    gguf_close(gf);
    mome_memory_free(plain);
    unlink(path);
    free(st); free(keys); free(qi); free(mu); free(scr); free(w); free(cw);
    mome_ctx_free(c);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* The meaning key's wrapper (mem_set_verify_wrap, mome tune --verify-key
 * meaning): the check reads the question inside the memory's own text, in a
 * pass of its own (never in place), so its state is the last token's of
 * open + the question's tokens + close, checked against a plain decode of
 * those tokens; the same bits alone, behind a system prompt and after an
 * exchange; a block at or above the value block only with the wrapper; the
 * wrapper round trips, and a token outside the vocabulary is refused. */
static void test_verify_wrap(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd, V = m->hp.n_vocab;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0, "mem_new");
    int32_t open[MEM_MAX_MARK + 1], close[MEM_MAX_MARK];
    const char *otext = "This sentence : \"", *ctext = "\" means in one word:\"";
    const int no = mome_tokenize(m, otext, strlen(otext), open, MEM_MAX_MARK, 0, 0);
    const int nc = mome_tokenize(m, ctext, strlen(ctext), close, MEM_MAX_MARK, 0, 0);
    REQUIRE(no > 0 && no <= MEM_MAX_MARK && nc > 0 && nc <= MEM_MAX_MARK, "wrapper tokens (%d, %d)", no, nc);
    CHECK(mem_verify_init(mem, 26, 0.9f) != 0, "without the wrapper the check stays below the value block");
    const int32_t bad = V;
    CHECK(mem_set_verify_wrap(mem, open, 0, close, nc) != 0 && mem_set_verify_wrap(mem, open, no, &bad, 1) != 0 &&
              mem_set_verify_wrap(mem, open, MEM_MAX_MARK + 1, close, nc) != 0 && mem->n_ver_open == 0,
          "an empty or too long wrapper, or a token outside the vocabulary, is refused and changes nothing");
    REQUIRE(mem_set_verify_wrap(mem, open, no, close, nc) == 0 && mem_verify_init(mem, 26, 0.9f) == 0, "wrap: %s", mome_errmsg());
    mome_memory_set_routing(mem, -1.0f, NAN);
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 256;
    mome_ctx *c = NULL, *d = NULL;
    REQUIRE(mome_ctx_init(m, &cp, &c) == 0 && mome_ctx_set_memory(c, mem) == 0 && mome_ctx_init(m, &cp, &d) == 0, "ctx");
    float *st = malloc(sizeof(float) * (size_t)4 * C);
    REQUIRE(st, "oom");
    const char *own = "What is the code of Austria?";
    const mome_chat_msg alone[] = {{"user", own}};
    const mome_chat_msg sys[] = {{"system", "You are terse."}, {"user", own}};
    const mome_chat_msg turn[] = {{"user", "Hi."}, {"assistant", "Hello."}, {"user", own}};
    REQUIRE(engine_state(c, alone, 1, st) >= 0 && engine_state(c, sys, 2, st + C) >= 0 && engine_state(c, turn, 3, st + 2 * C) >= 0,
            "every prompt has a decision row: %s", mome_errmsg());
    CHECK(!memcmp(st, st + C, sizeof(float) * C) && !memcmp(st, st + 2 * C, sizeof(float) * C),
          "the wrapped question's state is the same bits alone, behind a system prompt and after an exchange");
    /* independently: decode open + content + close without a memory, the input of block 26 at the last token */
    int32_t *qi = NULL, s0 = -1, s1 = -1;
    const int nq = prompt_ids(m, alone, 1, &qi);
    REQUIRE(nq > 0 && mem_find_question(mem, qi, nq, &s0, &s1) == nq - 1 && s1 > s0, "the question's span");
    int32_t toks[64];
    const int n = no + (s1 - s0) + nc;
    REQUIRE(n <= 64, "wrapped length");
    memcpy(toks, open, sizeof(int32_t) * no);
    memcpy(toks + no, qi + s0, sizeof(int32_t) * (s1 - s0));
    memcpy(toks + no + (s1 - s0), close, sizeof(int32_t) * nc);
    REQUIRE((d->capture = malloc(sizeof(float) * (size_t)n * C)), "oom");
    d->capture_layer = 26;
    REQUIRE(mome_decode(d, toks, n, 0, 0) == 0, "decode: %s", mome_errmsg());
    mem_rms_normalize(d->capture + (size_t)(n - 1) * C, st + 3 * C, C);
    free(d->capture); /* the caller's buffer */
    d->capture = NULL;
    double worst = 0;
    for (int i = 0; i < C; i++) worst = fmax(worst, fabs(st[3 * C + i] - st[i]));
    CHECK(worst < 1e-4, "it is the last token's state of a plain decode of the wrapped question (max diff %.2e)", worst);
    /* the wrapper's opening is kept between questions: the same bits after
     * another question, and when the block changes */
    const mome_chat_msg other[] = {{"user", "Who founded the company that makes the Prius?"}};
    float *again = malloc(sizeof(float) * (size_t)2 * C);
    REQUIRE(again, "oom");
    REQUIRE(engine_state(c, other, 1, again) >= 0 && engine_state(c, alone, 1, again) >= 0, "again: %s", mome_errmsg());
    CHECK(!memcmp(again, st, sizeof(float) * C), "the kept opening gives the same bits as a fresh one");
    mome_ctx *e = NULL;
    REQUIRE(mem_verify_init(mem, 24, 0.9f) == 0 && mome_ctx_init(m, &cp, &e) == 0 && mome_ctx_set_memory(e, mem) == 0, "block 24");
    REQUIRE(engine_state(c, alone, 1, again) >= 0 && engine_state(e, alone, 1, again + C) >= 0, "at 24: %s", mome_errmsg());
    CHECK(!memcmp(again, again + C, sizeof(float) * C) && memcmp(again, st, sizeof(float) * C),
          "at block 24: the same bits as a fresh context's, not block 26's");
    /* e kept an opening decoded through block 23 only: at 26 it decodes it again */
    REQUIRE(mem_verify_init(mem, 26, 0.9f) == 0 && engine_state(e, alone, 1, again) >= 0, "back to 26: %s", mome_errmsg());
    CHECK(!memcmp(again, st, sizeof(float) * C), "an opening kept from a lower block is decoded again");
    mome_ctx_free(e);
    free(again);
    /* round trip, and a patched token */
    float *keys = random_keys(2, C, 91);
    const int32_t ans[2] = {5, 6};
    REQUIRE(keys && mem_add_fact(mem, keys, keys + C, ans, 2) == 0 && mem_set_fact_verify(mem, 0, st, 1) == 0, "fact");
    char path[64];
    REQUIRE(temp_file(path, "wrap") == 0, "mkstemp");
    mome_memory *l = NULL;
    REQUIRE(save_load(mem, path, 1, m, &l) == 0, "save / load: %s", mome_errmsg());
    CHECK(l->ver_layer == 26 && l->n_ver_open == no && l->n_ver_close == nc && !memcmp(l->ver_open, open, sizeof(int32_t) * no) &&
              !memcmp(l->ver_close, close, sizeof(int32_t) * nc) && !l->ver_pool,
          "the wrapper and its block round trip");
    mome_memory_free(l);
    l = NULL;
    REQUIRE(patch_key(path, "mome.verify_close", V) == 0, "patch");
    CHECK(mome_memory_load(path, m, &l) != 0 && !l && strstr(mome_errmsg(), "outside the vocabulary"),
          "a wrapper token outside the vocabulary is refused: '%s'", mome_errmsg());
    unlink(path);
    free(st); free(keys); free(qi);
    mome_ctx_free(c);
    mome_ctx_free(d);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* The relation feature (mem_relation_feature): the mean x̂ over the tokens
 * that do not spell the subject, against brute force; in the engine, the
 * same bits whether the question opens the context (read in place) or
 * follows a system prompt or an earlier exchange (its own pass). */
static void test_relation_feature(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd;
    mome_memory *mem = NULL;
    REQUIRE(mem_new(m, 6, 24, &mem) == 0 && mem_verify_init(mem, 18, -1.0f) == 0, "mem_new");
    mem->ver_pool = 1;
    int32_t *a = NULL, *b = NULL, *q = NULL;
    const int na = mome_tokenize_alloc(m, "What is the code of", 0, 0, &a), nb = mome_tokenize_alloc(m, " Austria", 0, 0, &b),
              nq = mome_tokenize_alloc(m, "?", 0, 0, &q);
    REQUIRE(na > 0 && nb > 0 && nq > 0 && na + nb + nq <= 64, "tokenize");
    int32_t toks[64];
    const int n = na + nb + nq;
    memcpy(toks, a, sizeof(int32_t) * na);
    memcpy(toks + na, b, sizeof(int32_t) * nb);
    memcpy(toks + na + nb, q, sizeof(int32_t) * nq);
    float *rows = malloc(sizeof(float) * (size_t)n * C), *got = malloc(sizeof(float) * C), *xh = malloc(sizeof(float) * C);
    double *want = calloc((size_t)C, sizeof(double));
    REQUIRE(rows && got && xh && want, "oom");
    uint64_t seed = 17;
    for (size_t i = 0; i < (size_t)n * C; i++) rows[i] = 3.0f * frand(&seed);
    static const char *const subj[] = {"Austria", "AUSTRIA ", NULL, "Germany"};
    for (int s = 0; s < 4; s++) {
        memset(want, 0, sizeof(double) * C);
        int k = 0;
        for (int t = 0; t < n; t++) {
            if (s < 2 && t >= na && t < na + nb) continue; /* the subject's tokens */
            mem_rms_normalize(rows + (size_t)t * C, xh, C);
            for (int c = 0; c < C; c++) want[c] += xh[c];
            k++;
        }
        REQUIRE(mem_relation_feature(mem, subj[s], toks, n, rows, got) == 0, "feature");
        double worst = 0;
        for (int c = 0; c < C; c++) worst = fmax(worst, fabs(got[c] - want[c] / k));
        CHECK(worst < 1e-5, "subject '%s': the mean over the %d tokens left (max error %.2e)", subj[s] ? subj[s] : "(none)", k, worst);
    }
    /* the engine: one fact keeps its question's feature */
    mome_memory_set_routing(mem, -1.0f, NAN);
    float *keys = random_keys(1, C, 5);
    const int32_t ans[2] = {100, 7};
    const char *own = "What is the code of Austria?";
    REQUIRE(keys && mem_add_fact(mem, keys, keys + C, ans, 2) == 0 && mem_set_fact_subject(mem, 0, "Austria", own) == 1, "fact");
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 256;
    mome_ctx *c = NULL;
    REQUIRE(mome_ctx_init(m, &cp, &c) == 0 && mome_ctx_set_memory(c, mem) == 0, "ctx");
    const mome_chat_msg alone[] = {{"user", own}};
    int32_t *ids = NULL, s0 = -1, s1 = -1;
    const int np = prompt_ids(m, alone, 1, &ids);
    REQUIRE(np > 0 && mem_find_question(mem, ids, np, &s0, &s1) == np - 1, "span");
    float *qrows = malloc(sizeof(float) * (size_t)(s1 - s0) * C), *mu = calloc((size_t)C, sizeof(float));
    REQUIRE(qrows && mu && ctx_question_rows(c, ids + s0, s1 - s0, qrows) == 0, "rows: %s", mome_errmsg());
    REQUIRE(mem_relation_feature(mem, "Austria", ids + s0, s1 - s0, qrows, got) == 0 && mem_set_fact_verify(mem, 0, got, 1) == 0 &&
                mem_set_verify_centre(mem, mu) == 0, "state");
    const mome_chat_msg sys[] = {{"system", "You are terse."}, {"user", own}};
    const mome_chat_msg turn[] = {{"user", "Hi."}, {"assistant", "Hello."}, {"user", own}};
    const mome_chat_msg other[] = {{"user", "Who owns Austria?"}};
    const mome_chat_msg *const cases[] = {alone, sys, turn, other};
    const int ncase[] = {1, 2, 3, 1};
    float v[4];
    for (int i = 0; i < 4; i++) {
        REQUIRE(engine_state(c, cases[i], ncase[i], xh) >= 0, "decision row");
        v[i] = c->dec_cand.verify;
    }
    CHECK(v[0] > 0.9999f && v[0] == v[1] && v[0] == v[2], "the feature is the stored one, bit for bit alone, behind a system "
                                                         "prompt and after an exchange (%.6f %.6f %.6f)", v[0], v[1], v[2]);
    CHECK(v[3] < 0.99f, "another question about the subject has another feature (%.4f)", v[3]);
    free(a); free(b); free(q); free(rows); free(got); free(xh); free(want); free(keys); free(ids); free(qrows); free(mu);
    mome_ctx_free(c);
    mome_memory_free(mem);
    mome_model_free(m);
}

/* blas_inv_sqrt_sym: W (A + lambda I) W = I for a random SPD A, lambda =
 * ridge x mean eigenvalue (trace / n), W symmetric. */
static void test_whiten(void) {
    enum { N = 40, K = 60 };
    double *a = calloc(N * N, sizeof(double)), *a0 = calloc(N * N, sizeof(double));
    float *w = malloc(sizeof(float) * N * N), *b = malloc(sizeof(float) * K * N);
    REQUIRE(a && a0 && w && b, "oom");
    uint64_t seed = 9;
    for (int i = 0; i < K * N; i++) b[i] = frand(&seed) * (1.0f + (float)(i % N)); /* a spread of eigenvalues */
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) a0[i * N + j] += (double)b[k * N + i] * b[k * N + j] / K;
    double tr = 0;
    for (int i = 0; i < N; i++) tr += a0[i * N + i];
    memcpy(a, a0, sizeof(double) * N * N);
    REQUIRE(blas_inv_sqrt_sym(a, N, 0.1, w) == 0, "eigensolver: %s", mome_errmsg());
    double worst = 0, asym = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < N; k++)
                for (int l = 0; l < N; l++) s += (double)w[i * N + k] * (a0[k * N + l] + (k == l) * 0.1 * tr / N) * w[l * N + j];
            if (fabs(s - (i == j)) > worst) worst = fabs(s - (i == j));
            if (fabs(w[i * N + j] - w[j * N + i]) > asym) asym = fabs(w[i * N + j] - w[j * N + i]);
        }
    CHECK(worst < 1e-4 && asym == 0, "W (A + lambda I) W = I (max error %.2e), W symmetric", worst);
    free(a); free(a0); free(w); free(b);
}

static mome_memory *every_part_memory(mome_model *m, const int32_t *ids, int n) {
    const int C = m->hp.n_embd, NF = 3, NT = 5;
    mome_memory *mem = NULL;
    if (mem_new(m, 6, 24, &mem)) return NULL;
    mome_memory_set_cover(mem, 0.2f);
    mome_memory_set_mix(mem, 2, 0.1f, 0.3f);
    mome_memory_set_margin(mem, 0.2f);
    mome_memory_set_margin_share(mem, 0.7f);
    if (mem_verify_init(mem, 18, -1.0f)) { mome_memory_free(mem); return NULL; }
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 128;
    mome_ctx *c = NULL;
    uint64_t seed = 11;
    float *keys = random_keys(NF + 3, C, 3), *rows = malloc(sizeof(float) * (size_t)(NT + 1) * C);
    int ok = keys && rows && mome_ctx_init(m, &cp, &c) == 0 && mome_ctx_set_memory(c, mem) == 0;
    if (ok) { /* fact 0: the question's own keys */
        c->dec_keys = keys;
        c->mem_route_off = 1;
        ok = mome_decode(c, ids, n, 0, 0) == 0;
        c->dec_keys = NULL;
        c->mem_route_off = 0;
    }
    static const char *const subj[] = {"Austria", "Germany", NULL};
    int32_t content[NT + 1];
    int nc = 0;
    for (int v = 300; ok && v < m->hp.n_vocab && nc < NT + 1; v++)
        if (mem->content[v]) content[nc++] = v;
    ok = ok && nc == NT + 1;
    for (int f = 0; ok && f < NF; f++) {
        const int32_t ans[3] = {100 + f, 7, 9};
        ok = mem_add_fact(mem, keys + (size_t)f * 2 * C, keys + (size_t)f * 2 * C + C, ans, f == 1 ? 3 : 2) == f;
        for (size_t i = 0; ok && i < (size_t)(NT + 1) * C; i++) rows[i] = 2.0f * frand(&seed);
        /* fact 0: the question's words as the engine read them; the others random rows */
        const mem_pos *ps = &c->mpos[n - 1];
        const mem_query q0 = {c->mrows + (size_t)ps->span0 * C, c->tokens + ps->span0, ps->span1 - ps->span0, NULL, NULL, NULL},
                        q = {rows, content, NT + 1 - f, NULL, NULL, NULL};
        ok = ok && (f > 0 || ps->span1 > ps->span0) && mem_set_fact_tokens(mem, f, f ? &q : &q0) == 0;
        char question[64];
        snprintf(question, sizeof question, "What is the code of %s?", subj[f] ? subj[f] : "it");
        ok = ok && (!subj[f] || mem_set_fact_subject(mem, f, subj[f], question) == 1);
        ok = ok && mem_set_fact_lead(mem, f, f == 1 ? NAN : 0.1f + 0.2f * (float)f) == 0;
        float *v = mem_values(mem, f);
        for (int i = 0; ok && i < (f == 1 ? 4 : 3) * C; i++) v[i] = 0.25f * frand(&seed);
    }
    ok = ok && mem_add_alt_key(mem, NF - 1, keys + (size_t)NF * 2 * C, keys + (size_t)NF * 2 * C + C) == 0;
    /* relation-check states: fact 0 its question's (the engine's), fact 1 three random ones, fact 2 none */
    float *vs = malloc(sizeof(float) * (size_t)3 * C);
    int32_t s0 = -1, s1 = -1;
    ok = ok && vs && mem_find_question(mem, ids, n, &s0, &s1) == n - 1 && ctx_question_state(c, ids + s0, s1 - s0, vs) == 0;
    ok = ok && mem_set_fact_verify(mem, 0, vs, 1) == 0;
    for (size_t i = 0; ok && i < (size_t)3 * C; i++) vs[i] = frand(&seed);
    ok = ok && mem_set_fact_verify(mem, 1, vs, 3) == 0 && mem_set_fact_verify(mem, 2, vs, 0) == 0;
    ok = ok && mem_set_verify_centre(mem, vs + C) == 0;
    float *w = malloc(sizeof(float) * (size_t)C * C);
    for (size_t i = 0; ok && w && i < (size_t)C * C; i++) w[i] = (i % (size_t)(C + 1) == 0) + 0.01f * frand(&seed);
    ok = ok && w && mem_set_verify_whiten(mem, w) == 0 && mem_set_fact_verify_centre(mem, 1, vs + 2 * C) == 0;
    mem->ver_pool = 1; /* the relation feature */
    free(w);
    free(vs);
    ok = ok && mem_update_tok_centre(mem) == 0;
    for (int g = 0; ok && g < 2; g++) ok = mem_gate_add_negative(mem, keys + (size_t)(NF + 1 + g) * 2 * C + C) == 0;
    const int32_t pf[3] = {0, 1, 2};
    float *pos = malloc(sizeof(float) * (size_t)NF * C);
    for (int f = 0; ok && pos && f < NF; f++) memcpy(pos + (size_t)f * C, keys + (size_t)f * 2 * C + C, sizeof(float) * C);
    ok = ok && pos && mem_gate_fit(mem, pos, pf, NF, 0.25f) == 0 && mem->gate_w;
    mome_memory_set_routing(mem, -1.0f, NAN);
    free(pos);
    free(keys);
    free(rows);
    mome_ctx_free(c);
    if (!ok) { mome_memory_free(mem); return NULL; }
    return mem;
}

static uint64_t fz_rng = 0x2545F4914F6CDD1Dull;
static uint64_t fz_next(void) { return test_xorshift(&fz_rng); }

/* What a hostile file must meet (test_hostile_files). */
typedef struct hostile {
    mome_model *m;
    mome_ctx *c;
    const char *path, *again;
    const int32_t *ids; /* the question, n tokens */
    int n;
    float *q, *key, *rows; /* scratch */
    uint64_t seed;
    int accepted, decoded, fired;
} hostile;

/* Writes the image and loads it: refused with a message naming the file,
 * or a memory that selects under random keys and, when decode, decodes the
 * question and saves and loads again. 1 accepted, 0 refused, -1 failed
 * (reported). */
static int hostile_one(hostile *h, const uint8_t *img, size_t len, int decode, const char *what) {
    const int C = h->m->hp.n_embd;
    FILE *fp = fopen(h->path, "wb");
    if (!fp || fwrite(img, 1, len, fp) != len || fclose(fp) != 0) { CHECK(0, "write %s", what); return -1; }
    mome_memory *l = NULL;
    const int rc = mome_memory_load(h->path, h->m, &l);
    if (rc != 0) {
        if (l || !strstr(mome_errmsg(), h->path)) {
            CHECK(0, "%s: rc %d, memory %p, message without the file name: '%s'", what, rc, (void *)l, mome_errmsg());
            return -1;
        }
        return 0;
    }
    h->accepted++;
    int bad = 0;
    for (int i = 0; i < 2 * C; i++) h->key[i] = frand(&h->seed);
    for (int i = 0; i < 4 * C; i++) h->rows[i] = frand(&h->seed);
    const mem_query qt = {h->rows, h->ids + h->n - 6, 4, "What is the code of Austria?", NULL, NULL};
    mem_mix mx;
    mem_cand cd;
    const int k = mem_mix_select(l, h->key, h->key + C, &qt, -1, h->q, &mx, &cd);
    if (k < 0 || k > l->top_k) { CHECK(0, "%s: a mixture of %d facts", what, k); bad = 1; }
    if (!bad && decode) {
        h->decoded++;
        if (mome_ctx_set_memory(h->c, l) != 0 || mome_decode(h->c, h->ids, h->n, 0, 0) != 0) {
            CHECK(0, "%s: an accepted memory does not decode: %s", what, mome_errmsg());
            bad = 1;
        } else {
            int32_t fact = -1;
            mome_ctx_memory_decision(h->c, NULL, &fact, NULL);
            h->fired += fact >= 0;
        }
        mome_ctx_set_memory(h->c, NULL);
        mome_memory *l2 = NULL;
        if (!bad && (mem_save(l, h->again, 1) != 0 || mome_memory_load(h->again, h->m, &l2) != 0)) {
            CHECK(0, "%s: an accepted memory does not save and load again: %s", what, mome_errmsg());
            bad = 1;
        }
        mome_memory_free(l2);
    }
    mome_memory_free(l);
    return bad ? -1 : 1;
}

/* A memory file with every optional part, attacked two ways; each file is
 * refused with a message naming it, or loads into a memory that selects,
 * mixes and decodes a question without a fault (the ASan build runs this
 * too) and saves again. 1. Every per-fact array (answer lengths, subject
 * lengths, question-token counts, alternative-key counts, relation-check
 * state counts, leads) with one
 * entry set to a hostile value, and with two entries moved by +d and -d so
 * that their sum, which the loader checks against the data, still holds
 * (a negative length then points outside the data). 2. Random mutations
 * (bit flips, interesting bytes, 4-byte words such as counts, token ids and
 * floats, truncation), biased to the header where the counts and the
 * per-fact arrays live. */
static void test_hostile_files(void) {
    mome_model *m = load();
    if (!m) { SKIP("models/SmolLM2-135M-Instruct.Q4_1.gguf absent (make model)"); return; }
    const int C = m->hp.n_embd;
    mome_chat_msg qm = {"user", "What is the code of Austria?"};
    int32_t *ids = NULL;
    const int n = prompt_ids(m, &qm, 1, &ids);
    REQUIRE(n > 0, "tokenize");
    mome_memory *mem = every_part_memory(m, ids, n);
    REQUIRE(mem, "memory: %s", mome_errmsg());
    char path[] = "/tmp/mome_test_fuzz_XXXXXX", again[64];
    int fd = mkstemp(path);
    REQUIRE(fd >= 0, "mkstemp");
    close(fd);
    snprintf(again, sizeof again, "%s.again", path);
    REQUIRE(mem_save(mem, path, 1) == 0, "save: %s", mome_errmsg());
    mome_memory *rt = NULL;
    REQUIRE(mome_memory_load(path, m, &rt) == 0, "load: %s", mome_errmsg());
    CHECK(rt->ver_pool == 1 && rt->ver_w && !memcmp(rt->ver_w, mem->ver_w, sizeof(float) * C * C) &&
              !memcmp(rt->ver_ctr, mem->ver_ctr, sizeof(uint16_t) * 3 * C),
          "the relation feature, the whitening and the fact centres round trip");
    mome_memory_free(rt);
    mome_memory_free(mem);
    FILE *fp = fopen(path, "rb");
    REQUIRE(fp, "open");
    fseek(fp, 0, SEEK_END);
    const size_t size = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *orig = malloc(size), *mut = malloc(size);
    REQUIRE(orig && mut && fread(orig, 1, size, fp) == size, "read");
    fclose(fp);
    /* where the header ends and the per-fact arrays are */
    static const char *const arrays[] = {"mome.n_answer", "mome.subject_len", "mome.n_question_tokens", "mome.n_alt_keys",
                                         "mome.n_verify", "mome.fact_lead"};
    enum { NA = sizeof arrays / sizeof arrays[0] };
    size_t at_arr[NA];
    uint64_t n_arr[NA];
    gguf_file *gf = NULL;
    REQUIRE(gguf_open(path, &gf) == 0, "gguf: %s", mome_errmsg());
    const size_t header = gf->data_offset;
    for (int a = 0; a < NA; a++) {
        const gguf_kv *kv = gguf_get_kv(gf, arrays[a]);
        REQUIRE(kv && kv->type == GGUF_TYPE_ARRAY && kv->n == 3, "%s: one entry per fact", arrays[a]);
        at_arr[a] = (size_t)(kv->data - gf->map);
        n_arr[a] = kv->n;
    }
    gguf_close(gf);

    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 64;
    hostile h = {m, NULL, path, again, ids, n, malloc(MEM_SELECT_SCRATCH(C) * sizeof(float)),
                 malloc(2 * sizeof(float) * C), malloc(4 * sizeof(float) * C), 5, 0, 0, 0};
    REQUIRE(h.q && h.key && h.rows && mome_ctx_init(m, &cp, &h.c) == 0, "ctx");
    /* the original: loads with every part, and the question selects its fact */
    mome_memory *l = NULL;
    REQUIRE(mome_memory_load(path, m, &l) == 0, "load: %s", mome_errmsg());
    CHECK(l->top_k == 2 && l->n_alt_total == 1 && l->n_subj_total > 0 && l->gate_w && !isnan(l->cover_tau) &&
              l->margin == 0.2f && l->flead[0] == 0.1f && l->ver_layer == 18 && l->n_ver_total == 4,
          "every part round trips");
    REQUIRE(mome_ctx_set_memory(h.c, l) == 0 && mome_decode(h.c, ids, n, 0, 0) == 0, "decode: %s", mome_errmsg());
    int32_t fact = -1;
    mome_ctx_memory_decision(h.c, NULL, &fact, NULL);
    CHECK(fact == 0, "the question selects its fact (%d)", fact);
    mome_ctx_set_memory(h.c, NULL);
    mome_memory_free(l);

    /* 1. the per-fact arrays */
    static const int32_t ivals[] = {-1, 0, 1, 2, 7, 64, 65, 1000, -2147483647 - 1, 2147483647};
    static const int32_t deltas[] = {1, 3, 100, 1 << 20, 2147483647};
    static const float fvals[] = {-0.5f, 0.0f, 2.0f, 2.5f, INFINITY, -INFINITY, 1e30f};
    int structured = 0, failed = 0;
    char what[128];
    for (int a = 0; a < NA && !failed; a++) {
        const int is_f = a == NA - 1;
        for (uint64_t i = 0; i < n_arr[a] && !failed; i++) {
            const int nv = is_f ? (int)(sizeof fvals / 4) : (int)(sizeof ivals / 4);
            for (int v = 0; v < nv && !failed; v++) {
                memcpy(mut, orig, size);
                memcpy(mut + at_arr[a] + 4 * i, is_f ? (const void *)&fvals[v] : (const void *)&ivals[v], 4);
                snprintf(what, sizeof what, "%s[%llu] = value %d", arrays[a], (unsigned long long)i, v);
                failed = hostile_one(&h, mut, size, 1, what) < 0;
                structured++;
            }
            for (uint64_t j = 0; j < n_arr[a] && !is_f && !failed; j++) {
                if (j == i) continue;
                for (size_t d = 0; d < sizeof deltas / 4 && !failed; d++) {
                    int32_t x, y;
                    memcpy(mut, orig, size);
                    memcpy(&x, mut + at_arr[a] + 4 * i, 4);
                    memcpy(&y, mut + at_arr[a] + 4 * j, 4);
                    x = (int32_t)((uint32_t)x + (uint32_t)deltas[d]);
                    y = (int32_t)((uint32_t)y - (uint32_t)deltas[d]);
                    memcpy(mut + at_arr[a] + 4 * i, &x, 4);
                    memcpy(mut + at_arr[a] + 4 * j, &y, 4);
                    snprintf(what, sizeof what, "%s[%llu] += %d, [%llu] -= it", arrays[a], (unsigned long long)i,
                             deltas[d], (unsigned long long)j);
                    failed = hostile_one(&h, mut, size, 1, what) < 0;
                    structured++;
                }
            }
        }
    }
    const int structured_ok = h.accepted;
    /* 2. random mutations */
    const uint8_t interesting[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20};
    const uint32_t words[] = {0, 1, 2, 0x7fffffffu, 0x80000000u, 0xffffffffu, 0x7fc00000u /* NaN */, 0x7f800000u /* Inf */,
                              0x40400000u /* 3.0f */, 0xbf800000u /* -1.0f */, 49152, 1u << 20};
    const int N = 600;
    for (int it = 0; it < N && !failed; it++) {
        memcpy(mut, orig, size);
        size_t len = size;
        const int kind = (int)(fz_next() % 4), edits = 1 + (int)(fz_next() % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = (size_t)(fz_next() % (fz_next() % 4 ? header : size));
            if (kind == 0 || kind == 3) mut[at] ^= (uint8_t)(1u << (fz_next() % 8));
            else if (kind == 1) mut[at] = interesting[fz_next() % sizeof interesting];
            else if ((at &= ~(size_t)3) + 4 <= size) memcpy(mut + at, &words[fz_next() % (sizeof words / 4)], 4);
        }
        if (kind == 3 && fz_next() % 2) len = (size_t)(fz_next() % size);
        snprintf(what, sizeof what, "mutant %d", it);
        /* every 8th accepted one is decoded: the engine's pass costs (ASan) */
        failed = hostile_one(&h, mut, len, h.accepted % 8 == 1, what) < 0;
    }
    fprintf(stderr,
            "  hostile memory files: %d of %d per-fact array edits and %d of %d random mutants accepted; %d decoded (%d "
            "selected a fact)\n",
            structured_ok, structured, h.accepted - structured_ok, N, h.decoded, h.fired);
    CHECK(h.accepted - structured_ok > 0 && h.accepted - structured_ok < N, "the mutants both load and fail");
    unlink(path);
    unlink(again);
    free(orig); free(mut); free(h.q); free(h.key); free(h.rows); free(ids);
    mome_ctx_free(h.c);
    mome_model_free(m);
}

int main(void) {
    RUN(test_routing_states);
    RUN(test_mix_row_grad);
    RUN(test_mix_select);
    RUN(test_exact_and_selected);
    RUN(test_bad_files);
    RUN(test_gate);
    RUN(test_checkpoint);
    RUN(test_cover);
    RUN(test_alt_keys);
    RUN(test_subject);
    RUN(test_margin);
    RUN(test_hostile_files);
    RUN(test_siblings);
    RUN(test_verify_unnamed);
    RUN(test_verify);
    RUN(test_verify_wrap);
    RUN(test_whiten);
    RUN(test_relation_feature);
    return test_summary();
}
