/* test_memory.c - the memory layer: product-key top-k against brute force,
 * an empty memory is exactly the base model, save/load round trips, a memory
 * for another base model is refused, damaged memory files are rejected, and
 * the two-thread single-token path equals the one-thread one bit for bit.
 */
#include <math.h>
#include <unistd.h>

#include "memory.h"
#include "model.h"
#include "test.h"
#include "tinymodel.h"

static mem_config small_cfg(int layer) {
    mem_config c = mem_default_config();
    c.n_sub = 32; /* N = 1024: brute force is cheap */
    c.k = 8;
    c.rank = 2;
    c.train_top = 4;
    c.dk = 16;
    c.layer = layer;
    return c;
}

static mome_memory *new_mem(mome_model *m, const mem_config *c) {
    mome_memory *mem = calloc(1, sizeof *mem);
    memcpy(mem->base_sha256, mome_model_sha256(m), 65);
    mem->base_name = strdup("test");
    mem->n_embd = m->hp.n_embd;
    mem->n_layer = m->hp.n_layer;
    mem->n_vocab = m->hp.n_vocab;
    mem->n_banks = 1;
    mem->banks = calloc(1, sizeof(mem_bank));
    if (mem_bank_init(&mem->banks[0], c, m->hp.n_embd)) return NULL;
    return mem;
}

static void test_topk_brute_force(void) {
    mem_config c = small_cfg(0);
    mem_bank b;
    REQUIRE(mem_bank_init(&b, &c, 48) == 0, "init");
    mome_memory holder = {0};
    holder.n_embd = 48;
    holder.n_banks = 1;
    holder.banks = &b;
    mem_scratch *sc = mem_scratch_new(&holder, 1);
    REQUIRE(sc, "scratch");
    uint64_t st = 7;
    int bad = 0;
    for (int trial = 0; trial < 200; trial++) {
        float h[48], q[32];
        for (int i = 0; i < 48; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            h[i] = (float)((st >> 33) % 2000) / 1000.0f - 1.0f;
        }
        mem_rms_normalize(h, sc->xhat, 48);
        mem_query(&b, sc->xhat, q, sc);
        mem_sel sel;
        mem_select(&b, q, &sel, sc);
        /* brute force over all N experts */
        const int N = (int)(c.n_sub * c.n_sub);
        float *all = malloc(sizeof(float) * (size_t)N);
        for (int e = 0; e < N; e++) {
            const float *k1 = b.keys + (size_t)(e / c.n_sub) * c.dk, *k2 = b.keys + ((size_t)c.n_sub + e % c.n_sub) * c.dk;
            float s = 0;
            for (int j = 0; j < c.dk; j++) s += k1[j] * q[j] + k2[j] * q[c.dk + j];
            all[e] = s;
        }
        for (int i = 0; i < c.k; i++) {
            int best = -1;
            for (int e = 0; e < N; e++)
                if (best < 0 || all[e] > all[best]) best = e;
            /* same expert, or an exact tie in score */
            if ((int)sel.id[i] != best && fabsf(all[sel.id[i]] - all[best]) > 1e-5f) bad++;
            CHECK(fabsf(sel.score[i] - all[best]) < 1e-4f, "trial %d rank %d: score %g vs %g", trial, i, sel.score[i],
                  all[best]);
            all[best] = -INFINITY;
        }
        double wsum = 0;
        for (int i = 0; i < sel.k; i++) wsum += sel.w[i];
        CHECK(fabs(wsum - 1) < 1e-5, "weights sum to %g", wsum);
        free(all);
    }
    CHECK(bad == 0, "%d selections differ from brute force", bad);
    mem_scratch_free(sc, 1);
    mem_bank_free(&b);
}

static const char *tiny_path(void) {
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mome_test_mem_%d.gguf", (int)getpid());
    tinymodel_params p = tinymodel_default_params();
    p.n_layer = 3;
    p.wtype = MOME_DTYPE_F32;
    if (tinymodel_write(path, &p)) return NULL;
    return path;
}

static void test_empty_memory_is_exact(void) {
    const char *path = tiny_path();
    REQUIRE(path, "tiny model: %s", mome_errmsg());
    mome_model *m = NULL;
    REQUIRE(mome_model_load(path, NULL, &m) == 0, "load: %s", mome_errmsg());
    mem_config c = small_cfg(1);
    mome_memory *mem = new_mem(m, &c);
    REQUIRE(mem, "memory");
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 64;
    mome_ctx *a, *b;
    REQUIRE(mome_ctx_init(m, &cp, &a) == 0 && mome_ctx_init(m, &cp, &b) == 0, "ctx");
    REQUIRE(mome_ctx_set_memory(b, mem) == 0, "attach: %s", mome_errmsg());
    int32_t ids[12] = {1, 300, 301, 302, 40, 50, 60, 70, 80, 90, 100, 110};
    REQUIRE(mome_decode(a, ids, 12, 0, 1) == 0 && mome_decode(b, ids, 12, 0, 1) == 0, "decode");
    const int V = m->hp.n_vocab;
    CHECK(memcmp(mome_get_logits(a, 0), mome_get_logits(b, 0), sizeof(float) * (size_t)V * 12) == 0,
          "an empty memory changed the logits");
    /* an expert with B = 0 (created, never trained) is exact too */
    int32_t s = mem_get_slot(&mem->banks[0], 5);
    REQUIRE(s >= 0, "slot");
    float q[64] = {0};
    q[0] = 1;
    q[c.dk] = 1;
    mem_add_anchor(&mem->banks[0], s, q);
    REQUIRE(mome_decode(b, ids, 12, 0, 1) == 0, "decode");
    CHECK(memcmp(mome_get_logits(a, 0), mome_get_logits(b, 0), sizeof(float) * (size_t)V * 12) == 0,
          "an untrained expert changed the logits");
    /* a trained expert whose anchor is far from every query changes nothing either */
    for (int i = 0; i < m->hp.n_embd * c.rank; i++) mem->banks[0].B[(size_t)s * m->hp.n_embd * c.rank + i] = 1.0f;
    REQUIRE(mome_decode(b, ids, 12, 0, 1) == 0, "decode");
    int same = memcmp(mome_get_logits(a, 0), mome_get_logits(b, 0), sizeof(float) * (size_t)V * 12) == 0;
    printf("  gated-out trained expert leaves logits identical: %s\n", same ? "yes" : "no (query happened to be near)");
    mome_ctx_free(a);
    mome_ctx_free(b);

    /* save / load round trip */
    char mp[96];
    snprintf(mp, sizeof mp, "/tmp/mome_test_mem_%d.mome", (int)getpid());
    REQUIRE(mem_save(mem, mp, 0) == 0, "save: %s", mome_errmsg());
    mome_memory *back = NULL;
    REQUIRE(mome_memory_load(mp, m, &back) == 0, "load: %s", mome_errmsg());
    const mem_bank *x = &mem->banks[0], *y = &back->banks[0];
    CHECK(y->n_slots == x->n_slots && y->n_anchors == x->n_anchors, "counts differ");
    CHECK(memcmp(x->B, y->B, sizeof(float) * (size_t)x->n_slots * c.rank * m->hp.n_embd) == 0, "B differs");
    CHECK(memcmp(x->A, y->A, sizeof(float) * (size_t)x->n_slots * c.rank * m->hp.n_embd) == 0, "A differs");
    CHECK(memcmp(x->keys, y->keys, sizeof(float) * 2 * c.n_sub * c.dk) == 0, "keys differ");
    CHECK(mem_find_slot(y, 5) == 0, "expert 5 not found after load");
    mome_memory_free(back);

    /* damaged files: every truncation is rejected cleanly */
    FILE *f = fopen(mp, "rb");
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)sz);
    CHECK(fread(buf, 1, (size_t)sz, f) == (size_t)sz, "read");
    fclose(f);
    char tp[96];
    snprintf(tp, sizeof tp, "/tmp/mome_test_trunc_%d.mome", (int)getpid());
    int rejected = 0, tried = 0;
    for (long cut = 0; cut < sz; cut += 1 + sz / 300) {
        FILE *o = fopen(tp, "wb");
        fwrite(buf, 1, (size_t)cut, o);
        fclose(o);
        mome_memory *t = NULL;
        tried++;
        if (mome_memory_load(tp, m, &t) != 0) rejected++;
        else mome_memory_free(t);
    }
    CHECK(rejected == tried, "%d of %d truncated memory files were accepted", tried - rejected, tried);
    unlink(tp);
    free(buf);

    /* a memory made for another base model is refused */
    tinymodel_params p2 = tinymodel_default_params();
    p2.n_layer = 3;
    p2.seed = 99;
    p2.wtype = MOME_DTYPE_F32;
    char other[96];
    snprintf(other, sizeof other, "/tmp/mome_test_other_%d.gguf", (int)getpid());
    REQUIRE(tinymodel_write(other, &p2) == 0, "other model");
    mome_model *m2 = NULL;
    REQUIRE(mome_model_load(other, NULL, &m2) == 0, "load other");
    mome_memory *wrong = NULL;
    CHECK(mome_memory_load(mp, m2, &wrong) != 0, "memory for another model accepted");
    CHECK(strstr(mome_errmsg(), "another base model") != NULL, "message: %s", mome_errmsg());
    mome_model_free(m2);
    unlink(other);
    unlink(mp);
    mome_memory_free(mem);
    mome_model_free(m);
    unlink(path);
}

/* With every expert trained and open, the memory's two-thread single-token
 * path (mem_row_half + mem_row_finish) gives the same bits as the one-thread
 * path (mem_apply_row), token by token and against a batched prompt. */
static void test_split_row_is_exact(void) {
    const char *path = tiny_path();
    REQUIRE(path, "tiny model: %s", mome_errmsg());
    mome_model *m = NULL;
    REQUIRE(mome_model_load(path, NULL, &m) == 0, "load: %s", mome_errmsg());
    mem_config c = small_cfg(1);
    c.gate_lo = -3.0f; /* every anchored slot fully open: cos >= -1 */
    c.gate_hi = -2.0f;
    mome_memory *mem = new_mem(m, &c);
    REQUIRE(mem, "memory");
    mem_bank *bk = &mem->banks[0];
    const int C = m->hp.n_embd;
    float q[64] = {0};
    q[0] = 1;
    q[c.dk] = 1;
    uint64_t st = 11;
    for (uint32_t id = 0; id < c.n_sub * c.n_sub; id++) {
        int32_t s = mem_get_slot(bk, id);
        REQUIRE(s >= 0 && mem_add_anchor(bk, s, q) == 0, "slot");
        for (int i = 0; i < C * c.rank; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            bk->B[(size_t)s * C * c.rank + i] = ((float)((st >> 33) % 2000) / 1000.0f - 1.0f) * 0.05f;
        }
    }
    /* the row functions directly */
    mem_scratch *sc = mem_scratch_new(mem, 3);
    REQUIRE(sc, "scratch");
    int diff = 0;
    for (int trial = 0; trial < 50; trial++) {
        float h0[512], h1[512];
        REQUIRE(C <= 512, "width");
        for (int i = 0; i < C; i++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            h0[i] = h1[i] = (float)((st >> 33) % 2000) / 1000.0f - 1.0f;
        }
        mem_apply_row(bk, h0, &sc[0]);
        mem_row_half(bk, h1, 0, &sc[1]);
        mem_row_half(bk, h1, 1, &sc[2]);
        mem_row_finish(bk, h1, &sc[1], &sc[2]);
        diff += memcmp(h0, h1, sizeof(float) * (size_t)C) != 0;
    }
    CHECK(diff == 0, "%d of 50 rows differ between the split and the one-thread path", diff);
    mem_scratch_free(sc, 3);
    /* the engine, one token at a time: one thread (mem_apply_row) vs two
     * (the split path); and the open experts must change the logits */
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 1;
    mome_ctx *a, *b, *base;
    REQUIRE(mome_ctx_init(m, &cp, &a) == 0 && mome_ctx_init(m, &cp, &base) == 0, "ctx");
    cp.n_threads = 2;
    REQUIRE(mome_ctx_init(m, &cp, &b) == 0, "ctx");
    REQUIRE(mome_ctx_set_memory(a, mem) == 0 && mome_ctx_set_memory(b, mem) == 0, "attach: %s", mome_errmsg());
    int32_t ids[12] = {1, 300, 301, 302, 40, 50, 60, 70, 80, 90, 100, 110};
    const int V = m->hp.n_vocab;
    int bad = 0, changed = 0;
    for (int t = 0; t < 12; t++) {
        REQUIRE(mome_decode(a, ids + t, 1, t, 0) == 0 && mome_decode(b, ids + t, 1, t, 0) == 0 &&
                    mome_decode(base, ids + t, 1, t, 0) == 0,
                "decode");
        bad += memcmp(mome_get_logits(a, -1), mome_get_logits(b, -1), sizeof(float) * (size_t)V) != 0;
        changed += memcmp(mome_get_logits(a, -1), mome_get_logits(base, -1), sizeof(float) * (size_t)V) != 0;
    }
    CHECK(bad == 0, "%d of 12 positions differ between one- and two-thread single-token decoding", bad);
    CHECK(changed == 12, "the open experts changed only %d of 12 positions: the test would prove little", changed);
    mome_ctx_free(a);
    mome_ctx_free(b);
    mome_ctx_free(base);
    mome_memory_free(mem);
    mome_model_free(m);
    unlink(path);
}

int main(void) {
    RUN(test_topk_brute_force);
    RUN(test_empty_memory_is_exact);
    RUN(test_split_row_is_exact);
    return test_summary();
}
