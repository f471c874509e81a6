/* test_probe.c - teacher-forced answer losses (probe.c) against a brute-force
 * computation: the same conversation fed one token at a time into a fresh
 * context (the path greedy decoding takes), each position's distribution
 * normalised in long double and the answer token's rank counted by sorting.
 * An off-by-one between logits and targets, a wrong end-of-turn token, a
 * prefix reuse that drops the last prompt token, or a rank counted the wrong
 * way would all show. The model is a tiny random llama (tinymodel.h).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "mome.h"
#include "probe.h"
#include "test.h"
#include "tinymodel.h"
#include "util.h"

static char g_tmp[256];
static mome_model *g_model;

static mome_model *tiny(void) {
    if (g_model) return g_model;
    tinymodel_params p = tinymodel_default_params();
    p.n_ctx = 1024;
    p.seed = 11;
    char path[600];
    snprintf(path, sizeof path, "%s/tiny.gguf", g_tmp);
    if (tinymodel_write(path, &p) != MOME_OK) return NULL;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 2;
    if (mome_model_load(path, &mp, &g_model)) fprintf(stderr, "  load: %s\n", mome_errmsg());
    return g_model;
}

static int cmp_desc(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* Brute force: per-token loss and rank of the target (1 + the number of
 * logits strictly larger, + equal ones with a lower id), token by token. */
static int brute(mome_model *m, const mome_chat_msg *msgs, int n_msgs, const char *answer, double *loss, int *rank,
                 int *T) {
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 2;
    mome_ctx *c;
    if (mome_ctx_init(m, &cp, &c)) return -1;
    char *prompt = mome_chat_format(m, msgs, n_msgs, 1);
    int32_t *p = NULL, *a = NULL;
    const int P = mome_tokenize_alloc(m, prompt, 1, 1, &p);
    const int A = mome_tokenize_alloc(m, answer, 0, 0, &a);
    free(prompt);
    const int V = mome_model_n_vocab(m);
    float *sorted = malloc((size_t)V * sizeof *sorted);
    int rc = (P < 1 || A < 1 || !sorted) ? -1 : 0;
    *T = A + 1;
    for (int pos = 0; !rc && pos < P + A; pos++) {
        const int32_t tok = pos < P ? p[pos] : a[pos - P];
        if (mome_decode(c, &tok, 1, pos, 0)) { rc = -1; break; }
        if (pos < P - 1) continue;
        const int i = pos - (P - 1);
        const int32_t tgt = i < A ? a[i] : mome_token_eot(m);
        const float *lg = mome_get_logits(c, -1);
        long double z = 0;
        for (int v = 0; v < V; v++) z += expl((long double)lg[v]);
        loss[i] = (double)(logl(z) - (long double)lg[tgt]);
        memcpy(sorted, lg, (size_t)V * sizeof *sorted);
        qsort(sorted, (size_t)V, sizeof *sorted, cmp_desc);
        int r = 0;
        while (r < V && sorted[r] > lg[tgt]) r++;
        for (int v = 0; v < tgt; v++) r += lg[v] == lg[tgt];
        rank[i] = r + 1;
    }
    free(sorted);
    free(p);
    free(a);
    mome_ctx_free(c);
    return rc;
}

static void test_against_brute_force(void) {
    mome_model *m = tiny();
    REQUIRE(m, "no tiny model");
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 2;
    mome_ctx *c;
    REQUIRE(mome_ctx_init(m, &cp, &c) == MOME_OK, "%s", mome_errmsg());
    /* the same context for every case: later cases reuse the prompt head */
    static const char *const sys[] = {NULL, "Be brief.", "Be brief.", NULL};
    static const char *const qs[] = {"What is the code of Welsh?", "Capital of Peru?", "Capital of Chile?", "Hi"};
    static const char *const as[] = {"cym", "Lima, the city of kings", "Santiago", "x"};
    int n_wrong_seen = 0;
    for (int k = 0; k < 4; k++) {
        mome_chat_msg msgs[2];
        int n = 0;
        if (sys[k]) msgs[n++] = (mome_chat_msg){"system", sys[k]};
        msgs[n++] = (mome_chat_msg){"user", qs[k]};
        double bl[64];
        int br[64], T = 0;
        REQUIRE(brute(m, msgs, n, as[k], bl, br, &T) == 0, "brute force failed: %s", mome_errmsg());
        float tl[64];
        probe_result r;
        REQUIRE(probe_answer(m, c, msgs, n, as[k], tl, 64, &r) == MOME_OK, "%s", mome_errmsg());
        CHECK(r.n_tokens == T, "case %d: %d tokens, brute force %d", k, r.n_tokens, T);
        double sum = 0, mx = 0;
        int fw = -1, fr = 0;
        for (int i = 0; i < T && i < 64; i++) {
            sum += bl[i];
            if (bl[i] > mx) mx = bl[i];
            if (fw < 0 && br[i] > 1) fw = i, fr = br[i];
            CHECK(fabs(tl[i] - bl[i]) < 1e-3 * (1 + bl[i]), "case %d token %d: loss %g, brute force %g", k, i,
                  (double)tl[i], bl[i]);
        }
        CHECK(fabs(r.mean_loss - sum / T) < 1e-3 * (1 + sum / T), "case %d: mean %g vs %g", k, r.mean_loss, sum / T);
        CHECK(fabs(r.max_loss - mx) < 1e-3 * (1 + mx), "case %d: max %g vs %g", k, r.max_loss, mx);
        CHECK(r.first_wrong == fw && r.first_wrong_rank == fr, "case %d: first wrong %d (rank %d), brute force %d (rank %d)",
              k, r.first_wrong, r.first_wrong_rank, fw, fr);
        CHECK(r.mean_loss > 0 && r.max_loss >= r.mean_loss, "case %d: mean %g max %g", k, r.mean_loss, r.max_loss);
        n_wrong_seen += fw >= 0;
    }
    /* a random model gets these answers wrong: the rank path is exercised */
    CHECK(n_wrong_seen > 0, "no case had a wrong token");
    /* cap: only the first token's loss is written */
    mome_chat_msg one = {"user", "Capital of Peru?"};
    float tl2[2] = {-1, -1};
    probe_result r2;
    CHECK(probe_answer(m, c, &one, 1, "Lima", tl2, 1, &r2) == MOME_OK && tl2[0] > 0 && tl2[1] == -1, "cap");
    CHECK(probe_answer(m, c, &one, 1, "", NULL, 0, &r2) == MOME_ERR_ARG && r2.first_wrong == -1, "empty answer");
    mome_ctx_free(c);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mome_test_probe_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_against_brute_force);
    if (g_model) mome_model_free(g_model);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary();
}
