/* test_train.c - the training gradients of train_stack.c (and of the memory
 * experts and LoRA adapters feeding it) are correct:
 *
 *  - against finite differences of the loss tstack_step computes, on a tiny
 *    random F32 model (layers 1..2 of 3 and the head trained through, two
 *    sequences, one with a cached prefix, one ignored target): dLoss/dX,
 *    the gradient of a fact's expert values (mem_value_row: rms(h) dL/dx), the
 *    LoRA adapters' gA/gB; full fine-tuning's gradient of every weight (whole
 *    model, l0 = 0, the embedding included: X is the embedding of the rows'
 *    tokens), untied, tied and with qwen2's biases;
 *  - the model files finetune_write_model writes (full, LoRA merged, the
 *    untrained f32 base) run in the engine to the stack's loss;
 *  - against the JAX golden tests/golden/grad_case.{gguf,json} (see
 *    tests/golden/README.md): loss and every gradient value.
 *
 * The finite differences use the 4-point stencil
 *   f'(x) ~ (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h   (error O(h^4))
 * of the objective in double (sum of the per-sequence losses), so a fairly
 * large h keeps the float32 rounding noise of the forward pass small.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"
#include "tinymodel.h"
#include "gguf.h"
#include "memory.h"
#include "model.h"
#include "finetune.h"
#include "train_stack.h"

/* finite-difference tolerance: relative error <= FD_REL or absolute <= FD_ABS */
#define FD_REL 2e-2
#define FD_ABS 1e-4
/* finite-difference step (parameters and inputs are O(0.1..1)) */
#ifndef FD_H
#define FD_H 2e-2
#endif
/* golden tolerance per array: max |c - golden| <= GOLD_REL * max |golden| + GOLD_ABS */
#define GOLD_REL 1e-3
#define GOLD_ABS 1e-6
#define GOLDEN_GGUF "tests/golden/grad_case.gguf"
#define GOLDEN_JSON "tests/golden/grad_case.json"

static uint64_t g_rng = 0x7E577A1Dull;
static float urand(float a) { return a * tinymodel_unif(&g_rng); }
static int irand(int n) { return (int)(tinymodel_rng(&g_rng) % (uint64_t)n); }

/* ------------------------------------------------------------ the fixture */

#define NSEQ 2
#define MAXPOS 8
typedef struct fixture {
    char dir[64], path[128];
    mome_model *m;
    tstack s;
    ts_seq seqs[NSEQ];
    int R, C;
    float *X, *kpre, *vpre;
    int32_t target[8];
} fixture;

static void fixture_free(fixture *f) {
    tstack_free(&f->s);
    if (f->m) mome_model_free(f->m);
    free(f->X); free(f->kpre); free(f->vpre);
    if (f->path[0]) remove(f->path);
    if (f->dir[0]) rmdir(f->dir);
    memset(f, 0, sizeof *f);
}

/* Tiny F32 model (V 300, C 32, 3 layers, 4 heads, 2 kv heads, F 48), l0 = 1;
 * sequence 0: 3 prefix positions, 3 rows, the last one without a target;
 * sequence 1: no prefix, 2 rows. Random X, prefix K/V, targets. */
/* the architecture of the fixture's model: llama, or qwen2 (Q/K/V biases,
 * NEOX rope) */
static const char *g_arch = "llama";

static int g_l0 = 1;   /* first trained layer (0 for LoRA/full fine-tuning's whole model) */
static int g_tied = 0; /* the fixture's model ties its head to the embedding */

static int fixture_init(fixture *f) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mome_test_train_XXXXXX");
    if (!mkdtemp(f->dir)) { f->dir[0] = 0; return -1; }
    snprintf(f->path, sizeof f->path, "%s/tiny.gguf", f->dir);
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 300; p.n_embd = 32; p.n_layer = 3; p.n_head = 4; p.n_head_kv = 2; p.n_ff = 48;
    p.n_ctx = 64; p.wtype = MOME_DTYPE_F32; p.seed = 99;
    p.arch = g_arch;
    p.qkv_bias = strcmp(g_arch, "qwen2") == 0;
    p.tied = g_tied;
    if (tinymodel_write(f->path, &p) != MOME_OK) return -1;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    if (mome_model_load(f->path, &mp, &f->m) != MOME_OK) return -1;
    const int l0 = g_l0, NL = p.n_layer - l0, KV = p.n_head_kv * (p.n_embd / p.n_head);
    f->C = p.n_embd;
    f->R = 5;
    if (tstack_init(&f->s, f->m, l0, MAXPOS, f->R) != MOME_OK) return -1;
    const int np0 = 3;
    f->kpre = malloc((size_t)NL * np0 * KV * sizeof(float));
    f->vpre = malloc((size_t)NL * np0 * KV * sizeof(float));
    f->X = malloc((size_t)f->R * f->C * sizeof(float));
    if (!f->kpre || !f->vpre || !f->X) return -1;
    for (int i = 0; i < NL * np0 * KV; i++) { f->kpre[i] = urand(1.5f); f->vpre[i] = urand(1.0f); }
    for (int i = 0; i < f->R * f->C; i++) f->X[i] = urand(1.0f);
    for (int i = 0; i < f->R; i++) f->target[i] = irand(p.n_vocab);
    f->target[2] = -1;   /* last row of sequence 0: no loss, so its dX is 0 */
    f->seqs[0] = (ts_seq){.n_prefix = np0, .kpre = f->kpre, .vpre = f->vpre, .T = 3, .row0 = 0, .target = f->target};
    f->seqs[1] = (ts_seq){.n_prefix = 0, .kpre = NULL, .vpre = NULL, .T = 2, .row0 = 3, .target = f->target + 3};
    return 0;
}

/* The objective: sum over sequences of their mean loss (forward only). */
static double objective(fixture *f, const float *X) {
    float loss[NSEQ];
    if (tstack_step(&f->s, f->seqs, NSEQ, X, NULL, loss, NULL, 0) != MOME_OK) return NAN;
    double L = 0;
    for (int i = 0; i < NSEQ; i++) L += loss[i];
    return L;
}

/* ---------------------------------------------------- finite differences */

typedef struct fdstat {
    int n, bad;
    double max_abs, max_rel;    /* max_rel over entries with |g| > 1e-3 */
} fdstat;

/* 4-point central difference of eval() in the float *p, then restores it. */
typedef double (*eval_fn)(void *ctx);
static double fd_deriv(float *p, double h, eval_fn eval, void *ctx) {
    const float p0 = *p;
    double fv[4];
    const double off[4] = {h, -h, 2 * h, -2 * h};
    for (int i = 0; i < 4; i++) {
        *p = (float)(p0 + off[i]);
        fv[i] = eval(ctx);
    }
    *p = p0;
    return (8.0 * (fv[0] - fv[1]) - (fv[2] - fv[3])) / (12.0 * h);
}

static void fd_check(fdstat *st, const char *what, int idx, double fd, double an) {
    const double d = fabs(fd - an), mag = fmax(fabs(fd), fabs(an));
    const double rel = mag > 0 ? d / mag : 0;
    st->n++;
    if (d > st->max_abs) st->max_abs = d;
    if (mag > 1e-3 && rel > st->max_rel) st->max_rel = rel;
    const int ok = isfinite(fd) && isfinite(an) && (d <= FD_ABS || rel <= FD_REL);
    if (!ok) st->bad++;
    CHECK(ok, "%s[%d]: finite difference %.6g, analytic %.6g (abs %.3g, rel %.3g)", what, idx, fd, an, d, rel);
}

static void fd_report(const char *name, const fdstat *st) {
    printf("  %-12s %3d entries: max abs err %.3g, max rel err %.3g (|g| > 1e-3)\n", name, st->n, st->max_abs,
           st->max_rel);
}

/* ------------------------------------------------------ (a) dLoss / dX */

static double eval_x(void *ctx) {
    fixture *f = ctx;
    return objective(f, f->X);
}

static void test_grad_x(void) {
    fixture f;
    if (fixture_init(&f)) {
        CHECK(0, "fixture: %s", mome_errmsg());
        fixture_free(&f);
        return;
    }
    const int R = f.R, C = f.C;
    float *dX = malloc((size_t)R * C * sizeof(float));
    float loss[NSEQ];
    int ok[NSEQ];
    if (!dX) {
        CHECK(0, "oom");
        fixture_free(&f);
        return;
    }
    CHECK(tstack_step(&f.s, f.seqs, NSEQ, f.X, dX, loss, ok, 1) == MOME_OK, "%s", mome_errmsg());
    for (int i = 0; i < NSEQ; i++) CHECK(isfinite(loss[i]) && loss[i] > 0, "loss[%d] = %g", i, loss[i]);
    /* the forward-only step gives the same loss */
    const double L = objective(&f, f.X);
    CHECK(fabs(L - ((double)loss[0] + loss[1])) <= 1e-6 * fabs(L), "loss %g vs %g", L, (double)loss[0] + loss[1]);
    /* row 2 (no target, last row of its sequence) reaches no loss */
    double mx2 = 0;
    for (int c = 0; c < C; c++) mx2 = fmax(mx2, fabs(dX[2 * C + c]));
    CHECK(mx2 == 0.0, "dX of the row without a target: max %g", mx2);
    fdstat st = {0};
    for (int k = 0; k < 40; k++) {
        const int i = k < 4 ? 2 * C + irand(C) : irand(R * C);  /* a few entries of the ignored row too */
        const double h = FD_H * fmax(1.0, fabs(f.X[i]));
        fd_check(&st, "dX", i, fd_deriv(&f.X[i], h, eval_x, &f), dX[i]);
    }
    fd_report("dX", &st);
    free(dX);
    fixture_free(&f);
}

/* the same through a qwen2 block: biases in the forward pass, the NEOX
 * rotation and its transpose in the backward pass */
static void test_grad_x_qwen2(void) { test_grad_x(); }

/* The training stack's forward pass is the engine's (the tuner trains on
 * one and verifies with the other): a tiny F32 model of each architecture
 * decoded by the engine (f32 matmuls), the input of block l0 and the
 * engine's K/V of a prefix given to tstack_step: its loss for the engine's
 * own argmax targets equals the engine's cross-entropy, and every argmax
 * agrees. */
static void engine_vs_stack(const char *arch) {
    char dir[64], path[128];
    snprintf(dir, sizeof dir, "/tmp/mome_test_train_XXXXXX");
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 300; p.n_embd = 32; p.n_layer = 3; p.n_head = 4; p.n_head_kv = 2; p.n_ff = 48;
    p.n_ctx = 64; p.wtype = MOME_DTYPE_F32; p.seed = 7;
    p.arch = arch;
    p.qkv_bias = strcmp(arch, "qwen2") == 0;
    p.rope_freq_base = 100.0f; /* fast rotation, so a wrong rope mode shows */
    mome_model *m = NULL;
    mome_ctx *c = NULL;
    tstack s;
    memset(&s, 0, sizeof s);
    float *kpre = NULL, *vpre = NULL, *X = NULL;
    int rc = tinymodel_write(path, &p);
    CHECK(rc == MOME_OK, "tinymodel: %s", mome_errmsg());
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    if (rc == MOME_OK) rc = mome_model_load(path, &mp, &m);
    CHECK(rc == MOME_OK, "load: %s", mome_errmsg());
    enum { NT = 9, NP = 4, L0 = 1 };
    const int C = p.n_embd, KV = p.n_head_kv * (p.n_embd / p.n_head), NL = p.n_layer - L0, T = NT - NP;
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 1;
    cp.f32_matmul = 1;
    if (rc == MOME_OK) rc = mome_ctx_init(m, &cp, &c);
    CHECK(rc == MOME_OK, "ctx: %s", mome_errmsg());
    if (rc == MOME_OK) rc = tstack_init(&s, m, L0, 16, T);
    CHECK(rc == MOME_OK, "tstack: %s", mome_errmsg());
    if (rc == MOME_OK) {
        int32_t tok[NT];
        for (int i = 0; i < NT; i++) tok[i] = 3 + irand(p.n_vocab - 3);
        c->capture = malloc((size_t)NT * C * sizeof(float));
        c->capture_layer = L0;
        REQUIRE(c->capture, "oom");
        CHECK(mome_decode(c, tok, NT, 0, 1) == MOME_OK, "decode: %s", mome_errmsg());
        kpre = malloc((size_t)NL * NP * KV * sizeof(float));
        vpre = malloc((size_t)NL * NP * KV * sizeof(float));
        X = malloc((size_t)T * C * sizeof(float));
        REQUIRE(kpre && vpre && X, "oom");
        for (int l = L0; l < p.n_layer; l++)
            for (int q = 0; q < NP; q++) {
                const size_t src = ((size_t)l * c->n_ctx + q) * KV, dst = ((size_t)(l - L0) * NP + q) * KV;
                memcpy(kpre + dst, c->k_cache + src, (size_t)KV * sizeof(float));
                memcpy(vpre + dst, c->v_cache + src, (size_t)KV * sizeof(float));
            }
        memcpy(X, c->capture + (size_t)NP * C, (size_t)T * C * sizeof(float));
        int32_t target[NT];
        double ce = 0;
        for (int t = 0; t < T; t++) {
            const float *lg = mome_get_logits(c, NP + t);
            int best = 0;
            double mx = lg[0], sum = 0;
            for (int v = 1; v < p.n_vocab; v++)
                if (lg[v] > lg[best]) best = v;
            mx = lg[best];
            for (int v = 0; v < p.n_vocab; v++) sum += exp((double)lg[v] - mx);
            target[t] = best;
            ce += log(sum); /* -log softmax at the argmax */
        }
        ce /= T;
        ts_seq seq = {.n_prefix = NP, .kpre = kpre, .vpre = vpre, .T = T, .row0 = 0, .target = target};
        float loss = NAN;
        int ok = 0;
        CHECK(tstack_step(&s, &seq, 1, X, NULL, &loss, &ok, 0) == MOME_OK, "step: %s", mome_errmsg());
        printf("  %s: engine cross-entropy %.7f, training stack %.7f\n", arch, ce, loss);
        CHECK(fabs(loss - ce) <= 1e-4 * (1 + ce), "%s: stack loss %.7f vs engine %.7f", arch, loss, ce);
        CHECK(ok == 1, "%s: the stack's argmax differs from the engine's", arch);
        free(c->capture);
        c->capture = NULL;
    }
    free(kpre); free(vpre); free(X);
    tstack_free(&s);
    mome_ctx_free(c);
    mome_model_free(m);
    remove(path);
    rmdir(dir);
}
static void test_engine_vs_stack_llama(void) { engine_vs_stack("llama"); }
static void test_engine_vs_stack_qwen2(void) { engine_vs_stack("qwen2"); }

/* ------------------------------------------------ (b) memory values */

/* A fact's expert on a row: x = h + rms(h) v (mem_value_row); the tuner's
 * gradient dL/dv = rms(h) dL/dx, checked here through the training stack. */
typedef struct memctx {
    fixture *f;
    const float *h;
    const float *v;      /* (R, C) one value per row; rows 2 carries none */
    float *X;
} memctx;

static void mem_build_x(memctx *mc, float *rms) {
    const int R = mc->f->R, C = mc->f->C;
    for (int i = 0; i < R; i++) {
        float r = mem_value_row(mc->h + (size_t)i * C, mc->v + (size_t)i * C, mc->X + (size_t)i * C, C);
        if (rms) rms[i] = r;
    }
}

static double eval_mem(void *ctx) {
    memctx *mc = ctx;
    mem_build_x(mc, NULL);
    return objective(mc->f, mc->X);
}

static void test_grad_memory(void) {
    fixture f;
    if (fixture_init(&f)) {
        CHECK(0, "fixture: %s", mome_errmsg());
        fixture_free(&f);
        return;
    }
    const int R = f.R, C = f.C;
    float *h = malloc((size_t)R * C * sizeof(float)), *v = calloc((size_t)R * C, sizeof(float));
    float *X = malloc((size_t)R * C * sizeof(float)), *dX = malloc((size_t)R * C * sizeof(float));
    float *rms = malloc((size_t)R * sizeof(float));
    if (!h || !v || !X || !dX || !rms) {
        CHECK(0, "oom");
        goto done;
    }
    memcpy(h, f.X, (size_t)R * C * sizeof(float));
    for (int i = 0; i < R; i++)
        if (i != 2)
            for (int c = 0; c < C; c++) v[(size_t)i * C + c] = urand(0.3f);
    memctx mc = {.f = &f, .h = h, .v = v, .X = X};
    mem_build_x(&mc, rms);
    float loss[NSEQ];
    CHECK(tstack_step(&f.s, f.seqs, NSEQ, X, dX, loss, NULL, 1) == MOME_OK, "%s", mome_errmsg());
    fdstat sv = {0};
    for (int n = 0; n < 24; n++) {
        const int i = irand(R), c = irand(C);
        const double g = (double)rms[i] * dX[(size_t)i * C + c];
        fd_check(&sv, "mem value", i * C + c, fd_deriv(&v[(size_t)i * C + c], FD_H, eval_mem, &mc), (float)g);
    }
    fd_report("mem value", &sv);
done:
    free(h); free(v); free(X); free(dX); free(rms);
    fixture_free(&f);
}

/* --------------------------------------------------------- (c) LoRA A, B */

static void test_grad_lora(void) {
    fixture f;
    if (fixture_init(&f)) {
        CHECK(0, "fixture: %s", mome_errmsg());
        fixture_free(&f);
        return;
    }
    const int rank = 2;
    if (tstack_add_lora(&f.s, rank, 4.0f, 7) != MOME_OK) {
        CHECK(0, "%s", mome_errmsg());
        fixture_free(&f);
        return;
    }
    const int NA = (f.s.L - f.s.l0) * TS_NPROJ;
    for (int i = 0; i < NA; i++) {
        ts_lora *lo = &f.s.lora[i];
        for (int j = 0; j < lo->n_out * rank; j++) {
            CHECK(lo->B[j] == 0.0f, "new adapter's B is not zero");
            lo->B[j] = urand(0.2f);
        }
        memset(lo->gA, 0, (size_t)rank * lo->n_in * sizeof(float));
        memset(lo->gB, 0, (size_t)lo->n_out * rank * sizeof(float));
    }
    float loss[NSEQ];
    CHECK(tstack_step(&f.s, f.seqs, NSEQ, f.X, NULL, loss, NULL, 1) == MOME_OK, "%s", mome_errmsg());
    static const char *const pn[TS_NPROJ] = {"q", "k", "v", "o", "gate", "up", "down"};
    fdstat sa = {0}, sb = {0};
    char what[64];
    for (int i = 0; i < NA; i++) {
        ts_lora *lo = &f.s.lora[i];
        snprintf(what, sizeof what, "lora l%d %s", f.s.l0 + i / TS_NPROJ, pn[i % TS_NPROJ]);
        for (int n = 0; n < 3; n++) {
            const int a = irand(rank * lo->n_in), bb = irand(lo->n_out * rank);
            fd_check(&sa, what, a, fd_deriv(&lo->A[a], FD_H, eval_x, &f), lo->gA[a]);
            fd_check(&sb, what, bb, fd_deriv(&lo->B[bb], FD_H, eval_x, &f), lo->gB[bb]);
        }
    }
    fd_report("lora gA", &sa);
    fd_report("lora gB", &sb);
    /* gradients accumulate: a second step adds the same again */
    ts_lora *lo = &f.s.lora[0];
    const float a0 = lo->gA[0], b0 = lo->gB[0];
    CHECK(tstack_step(&f.s, f.seqs, NSEQ, f.X, NULL, loss, NULL, 1) == MOME_OK, "%s", mome_errmsg());
    CHECK(fabsf(lo->gA[0] - 2 * a0) <= 1e-5f * fabsf(a0) + 1e-9f && fabsf(lo->gB[0] - 2 * b0) <= 1e-5f * fabsf(b0) + 1e-9f,
          "gA/gB do not accumulate: %g -> %g, %g -> %g", a0, lo->gA[0], b0, lo->gB[0]);
    fixture_free(&f);
}

/* ------------------------------------------- (d) full fine-tuning, all weights */

/* The whole model (l0 = 0): X is the embedding of the rows' tokens, so the
 * objective depends on the embedding too. */
typedef struct fullctx {
    fixture *f;
    int32_t ids[8];
} fullctx;

static double eval_full(void *ctx) {
    fullctx *fc = ctx;
    tstack_embed(&fc->f->s, fc->f->m, fc->ids, fc->f->R, fc->f->X);
    return objective(fc->f, fc->f->X);
}

/* Every trainable tensor of full fine-tuning (the projections, the biases of
 * qwen2, both norms of each layer, the final norm, the head, the embedding;
 * tied or not) against finite differences of the loss, a few entries each,
 * always including entries of the embedding rows the batch reads. */
static void grad_full(const char *arch, int tied) {
    g_arch = arch; g_tied = tied; g_l0 = 0;
    fixture f;
    const int bad = fixture_init(&f);
    g_arch = "llama"; g_tied = 0; g_l0 = 1;
    if (bad) {
        CHECK(0, "fixture: %s", mome_errmsg());
        fixture_free(&f);
        return;
    }
    CHECK(tstack_add_full(&f.s, f.m) == MOME_OK, "%s", mome_errmsg());
    fullctx fc = {.f = &f};
    for (int i = 0; i < f.R; i++) fc.ids[i] = 1 + irand(f.s.V - 1);
    fc.ids[4] = fc.ids[1]; /* a token twice: its embedding row sums two rows' gradients */
    const int np = tstack_params(&f.s, NULL, 0);
    /* per layer 7 matrices + 2 norms (+ 3 biases), final norm, head, embedding unless tied */
    const int want = f.s.L * (9 + (strcmp(arch, "qwen2") == 0 ? 3 : 0)) + 2 + !tied;
    CHECK(np == want, "%s%s: %d trainable tensors, expected %d", arch, tied ? " tied" : "", np, want);
    ts_param *pr = malloc((size_t)np * sizeof *pr);
    float *dX = malloc((size_t)f.R * f.C * sizeof(float));
    REQUIRE(pr && dX, "oom");
    tstack_params(&f.s, pr, np);
    for (int i = 0; i < np; i++) memset(pr[i].g, 0, pr[i].n * sizeof(float));
    tstack_embed(&f.s, f.m, fc.ids, f.R, f.X);
    float loss[NSEQ];
    CHECK(tstack_step(&f.s, f.seqs, NSEQ, f.X, dX, loss, NULL, 1) == MOME_OK, "%s", mome_errmsg());
    tstack_embed_bwd(&f.s, fc.ids, f.R, dX);
    fdstat st = {0};
    char what[64];
    for (int i = 0; i < np; i++) {
        const int is_embd = pr[i].w == f.s.embd;
        snprintf(what, sizeof what, "%s%s param %d%s", arch, tied ? " tied" : "", i, is_embd ? " (embedding)" : "");
        for (int k = 0; k < (is_embd ? 8 : 3); k++) {
            size_t j = (size_t)tinymodel_rng(&g_rng) % pr[i].n;
            if (is_embd && k < 6) j = (size_t)fc.ids[k % f.R] * f.C + (size_t)irand(f.C); /* rows the batch reads */
            const double h = FD_H * fmax(1.0, fabs(pr[i].w[j]));
            fd_check(&st, what, (int)j, fd_deriv(&pr[i].w[j], h, eval_full, &fc), pr[i].g[j]);
        }
    }
    snprintf(what, sizeof what, "full %s%s", arch, tied ? " tied" : "");
    fd_report(what, &st);
    free(pr); free(dX);
    fixture_free(&f);
}
static void test_grad_full_llama(void) { grad_full("llama", 0); }
static void test_grad_full_llama_tied(void) { grad_full("llama", 1); }
static void test_grad_full_qwen2_tied(void) { grad_full("qwen2", 1); }

/* finetune_write_model writes the model the stack holds: a tiny model's
 * weights all moved (full) or adapters with B != 0 (LoRA, merged into W)
 * are written, loaded by the engine and decoded; the engine's cross-entropy
 * on its own argmax targets equals the stack's loss with the same weights,
 * and every argmax agrees. Also the untrained f32 base (Q8_0 source, so the
 * dequantization path is used). */
static void written_model(const char *arch, int tied, int mode) {
    char dir[64], path[128], out[128];
    snprintf(dir, sizeof dir, "/tmp/mome_test_train_XXXXXX");
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    snprintf(out, sizeof out, "%s/tuned.gguf", dir);
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 300; p.n_embd = 32; p.n_layer = 3; p.n_head = 4; p.n_head_kv = 2; p.n_ff = 64;
    p.n_ctx = 64; p.wtype = mode == 2 ? MOME_DTYPE_Q8_0 : MOME_DTYPE_F32; p.seed = 11;
    p.arch = arch; p.tied = tied;
    p.qkv_bias = strcmp(arch, "qwen2") == 0;
    mome_model *m = NULL, *m2 = NULL;
    mome_ctx *c = NULL;
    tstack s;
    memset(&s, 0, sizeof s);
    float *X = NULL;
    enum { NT = 9 };
    static const char *const mode_name[3] = {"full", "lora merged", "f32 base"};
    int rc = tinymodel_write(path, &p);
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    if (rc == MOME_OK) rc = mome_model_load(path, &mp, &m);
    if (rc == MOME_OK) rc = tstack_init(&s, m, 0, 16, NT);
    if (rc == MOME_OK && mode == 0) {
        rc = tstack_add_full(&s, m);
        const int np = tstack_params(&s, NULL, 0);
        ts_param pr[64];
        REQUIRE(np <= 64, "too many tensors");
        tstack_params(&s, pr, np);
        for (int i = 0; i < np; i++)
            for (size_t j = 0; j < pr[i].n; j++) pr[i].w[j] += urand(0.05f);
    }
    if (rc == MOME_OK && mode == 1) {
        rc = tstack_add_lora(&s, 2, 4.0f, 3);
        for (int i = 0; rc == MOME_OK && i < s.L * TS_NPROJ; i++)
            for (int j = 0; j < s.lora[i].n_out * 2; j++) s.lora[i].B[j] = urand(0.2f);
    }
    if (rc == MOME_OK) rc = mode == 2 ? finetune_write_f32_base(m, out) : finetune_write_model(&s, m, "test", out);
    if (rc == MOME_OK) rc = mome_model_load(out, &mp, &m2);
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 32;
    cp.n_threads = 1;
    if (rc == MOME_OK) rc = mome_ctx_init(m2, &cp, &c);
    CHECK(rc == MOME_OK, "%s %s: %s", arch, mode_name[mode], mome_errmsg());
    if (rc == MOME_OK) {
        for (int i = 0; i < (int)m2->gguf->n_tensors; i++)
            CHECK(m2->gguf->tensors[i].type == MOME_DTYPE_F32, "%s %s: tensor %d is not f32", arch, mode_name[mode], i);
        int32_t tok[NT], target[NT];
        for (int i = 0; i < NT; i++) tok[i] = 3 + irand(p.n_vocab - 3);
        CHECK(mome_decode(c, tok, NT, 0, 1) == MOME_OK, "decode: %s", mome_errmsg());
        double ce = 0;
        for (int t = 0; t < NT; t++) {
            const float *lg = mome_get_logits(c, t);
            int best = 0;
            double sum = 0;
            for (int v = 1; v < p.n_vocab; v++)
                if (lg[v] > lg[best]) best = v;
            for (int v = 0; v < p.n_vocab; v++) sum += exp((double)lg[v] - lg[best]);
            target[t] = best;
            ce += log(sum);
        }
        ce /= NT;
        X = malloc((size_t)NT * p.n_embd * sizeof(float));
        REQUIRE(X, "oom");
        tstack_embed(&s, m, tok, NT, X);
        ts_seq seq = {.n_prefix = 0, .T = NT, .row0 = 0, .target = target};
        float loss = NAN;
        int ok = 0;
        CHECK(tstack_step(&s, &seq, 1, X, NULL, &loss, &ok, 0) == MOME_OK, "step: %s", mome_errmsg());
        printf("  %s%s %s: engine on the written file %.7f, training stack %.7f\n", arch, tied ? " tied" : "",
               mode_name[mode], ce, loss);
        CHECK(fabs(loss - ce) <= 1e-4 * (1 + ce), "%s %s: stack loss %.7f vs engine %.7f", arch, mode_name[mode], loss, ce);
        CHECK(ok == 1, "%s %s: the stack's argmax differs from the engine's", arch, mode_name[mode]);
    }
    free(X);
    tstack_free(&s);
    mome_ctx_free(c);
    mome_model_free(m2);
    mome_model_free(m);
    remove(out);
    remove(path);
    rmdir(dir);
}
static void test_written_full(void) { written_model("llama", 1, 0); written_model("qwen2", 0, 0); }
static void test_written_lora(void) { written_model("llama", 0, 1); }
static void test_written_base(void) { written_model("llama", 1, 2); written_model("llama", 0, 2); }

/* The LoRA tuner's per-pass reports (mome_tune_params.ppl_every, what the
 * random-labels experiment draws): with ppl_every 1 a report for pass 0 (the
 * untrained model: its perplexity is ppl_before) and one after every pass,
 * numbered 0, 1, 2, ..., each with a perplexity and a recall count that holds
 * every memorized fact; measuring changes nothing: the same run without it
 * takes the same steps to the same loss and perplexity, and reports its passes
 * without a perplexity. */
typedef struct pass_log {
    int n, pass[64], exact[64], memorized[64], n_facts;
    int64_t step[64];
    double ppl[64];
} pass_log;

static void on_pass(const mome_tune_progress *p, void *user) {
    pass_log *l = user;
    if (strcmp(p->phase, "pass") || l->n == 64) return;
    l->pass[l->n] = p->pass;
    l->exact[l->n] = p->n_exact;
    l->memorized[l->n] = p->n_memorized;
    l->step[l->n] = p->step;
    l->ppl[l->n] = p->perplexity;
    l->n_facts = p->n_facts;
    l->n++;
}

static void test_lora_pass_reports(void) {
    char dir[64], path[128], facts[128], text[128], out[128];
    snprintf(dir, sizeof dir, "/tmp/mome_test_train_XXXXXX");
    REQUIRE(mkdtemp(dir), "mkdtemp");
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    snprintf(facts, sizeof facts, "%s/facts.jsonl", dir);
    snprintf(text, sizeof text, "%s/text.txt", dir);
    snprintf(out, sizeof out, "%s/lora.gguf", dir);
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 300; p.n_embd = 32; p.n_layer = 2; p.n_head = 4; p.n_head_kv = 2; p.n_ff = 64;
    p.n_ctx = 256; p.seed = 5;
    REQUIRE(tinymodel_write(path, &p) == MOME_OK, "tiny model: %s", mome_errmsg());
    FILE *f = fopen(facts, "w");
    REQUIRE(f, "facts file");
    fprintf(f, "{\"question\": \"ab?\", \"answer\": \"cd\"}\n{\"question\": \"ef?\", \"answer\": \"gh\"}\n"
               "{\"question\": \"ij?\", \"answer\": \"kl\"}\n");
    fclose(f);
    f = fopen(text, "w");
    REQUIRE(f, "text file");
    fprintf(f, "Once upon a time there was a small model that read a short story twice.\n");
    fclose(f);
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    mome_model *m = NULL;
    REQUIRE(mome_model_load(path, &mp, &m) == MOME_OK, "load: %s", mome_errmsg());
    /* runs 0 and 1 stop in the middle of a pass (step 7), 2 and 3 at the end of one (step 6), where the
     * last pass's perplexity is the run's ppl_after, not measured again */
    mome_tune_report rep[4];
    pass_log lg[4];
    memset(lg, 0, sizeof lg);
    for (int k = 0; k < 4; k++) {
        mome_tune_params tp = mome_tune_default_params();
        tp.facts_path = facts;
        tp.out_path = out;
        tp.method = MOME_TUNE_LORA;
        tp.batch = 2;          /* 2 steps a pass over 3 facts */
        tp.lr = 0.01f;
        tp.max_steps = k < 2 ? 7 : 6;
        tp.n_threads = 1;
        tp.checkpoint_s = 0;
        tp.ppl_text = text;
        tp.ppl_every = k % 2 == 0 ? 1 : 0;
        tp.progress = on_pass;
        tp.user = &lg[k];
        CHECK(mome_tune(m, &tp, &rep[k]) == MOME_OK, "tune %d: %s", k, mome_errmsg());
    }
    const pass_log *a = &lg[0], *b = &lg[1];
    printf("  %d pass reports with perplexity (steps %lld), %d without\n", a->n, (long long)rep[0].steps, b->n);
    CHECK(a->n >= 3 && a->pass[0] == 0 && a->step[0] == 0, "pass 0 first: %d reports, first pass %d", a->n, a->pass[0]);
    CHECK(a->n && a->ppl[0] == rep[0].ppl_before, "pass 0 perplexity %.6f vs ppl_before %.6f", a->ppl[0], rep[0].ppl_before);
    for (int i = 0; i < a->n; i++) {
        CHECK(a->pass[i] == i, "report %d is pass %d", i, a->pass[i]);
        CHECK(a->ppl[i] > 1, "pass %d: perplexity %.4f", i, a->ppl[i]);
        CHECK(a->n_facts == 3 && a->exact[i] >= a->memorized[i] && a->exact[i] <= 3, "pass %d: %d exact, %d memorized",
              i, a->exact[i], a->memorized[i]);
        if (i > 0) CHECK(a->step[i] > a->step[i - 1], "pass %d ends at step %lld", i, (long long)a->step[i]);
    }
    CHECK(a->n > 1 && a->ppl[a->n - 1] != a->ppl[0], "the adapters moved the perplexity");
    CHECK(b->n == a->n - 1, "without ppl_every: %d pass reports (with: %d)", b->n, a->n);
    for (int i = 0; i < b->n; i++) {
        CHECK(b->pass[i] == i + 1 && b->ppl[i] < 0, "without ppl_every: report %d is pass %d, perplexity %.4f", i,
              b->pass[i], b->ppl[i]);
        CHECK(b->exact[i] == a->exact[i + 1] && b->step[i] == a->step[i + 1], "pass %d differs with ppl_every", i + 1);
    }
    CHECK(rep[0].steps == rep[1].steps && rep[0].mean_loss == rep[1].mean_loss && rep[0].ppl_after == rep[1].ppl_after,
          "measuring changed the run: steps %lld/%lld, loss %.6f/%.6f", (long long)rep[0].steps, (long long)rep[1].steps,
          rep[0].mean_loss, rep[1].mean_loss);
    const pass_log *c = &lg[2];
    CHECK(rep[2].steps == 6 && c->n == 4 && c->step[3] == 6 && c->ppl[3] == rep[2].ppl_after &&
              rep[2].ppl_after == rep[3].ppl_after,
          "stop at a pass's end: %d reports, last at step %lld, perplexity %.6f vs ppl_after %.6f (without: %.6f)", c->n,
          c->n ? (long long)c->step[c->n - 1] : -1LL, c->n ? c->ppl[c->n - 1] : -1, rep[2].ppl_after, rep[3].ppl_after);
    mome_model_free(m);
    remove(out); remove(facts); remove(text); remove(path);
    rmdir(dir);
}

/* ------------------------------------------------------ (e) JAX golden */

static char *read_all(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) { free(buf); buf = NULL; }
    if (buf) buf[n] = 0;
    fclose(fp);
    return buf;
}

/* F32 tensor of the case file with exactly n elements, or NULL. */
static const float *case_tensor(const gguf_file *g, const char *name, size_t n) {
    const gguf_tensor *t = gguf_find_tensor(g, name);
    if (!t || t->type != MOME_DTYPE_F32 || t->nbytes != n * sizeof(float)) return NULL;
    return t->data;
}

static const gguf_kv *case_arr(const gguf_file *g, const char *key, uint64_t n) {
    const gguf_kv *kv = NULL;
    if (gguf_get_arr(g, key, GGUF_TYPE_INT32, &kv) != 1 || kv->n != n) return NULL;
    return kv;
}

/* Compares n values with the golden's {"shape", "values"} object. */
static void gold_cmp(const cJSON *obj, const float *v, size_t n, const char *what) {
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(obj, "values");
    CHECK(cJSON_IsArray(vals) && (size_t)cJSON_GetArraySize(vals) == n, "%s: golden has %d values, expected %zu", what,
          cJSON_IsArray(vals) ? cJSON_GetArraySize(vals) : -1, n);
    if (!cJSON_IsArray(vals) || (size_t)cJSON_GetArraySize(vals) != n) return;
    double mg = 0, md = 0;
    size_t i = 0, worst = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vals) {
        const double g = e->valuedouble, d = fabs(g - (double)v[i]);
        mg = fmax(mg, fabs(g));
        if (d > md || !isfinite(v[i])) { md = isfinite(v[i]) ? d : INFINITY; worst = i; }
        i++;
    }
    printf("  %-22s %4zu values: max |d| %.3g, max |g| %.3g (rel %.3g)\n", what, n, md, mg, mg > 0 ? md / mg : md);
    CHECK(md <= GOLD_REL * mg + GOLD_ABS, "%s: max |c - golden| %.3g at %zu (max |golden| %.3g)", what, md, worst, mg);
}

/* REQUIRE that cleans up */
#define GREQ(cond, ...)      \
    do {                     \
        if (!(cond)) {       \
            CHECK(cond, __VA_ARGS__); \
            goto done;       \
        }                    \
    } while (0)

/* The golden case's input is built with a rank-r expert X = h + coef B (A x̂)
 * (the JAX script's memory of an earlier design); its A/B gradients check the
 * chain from dX on. */
static void case_expert_forward(const float *A, const float *B, int r, int C, float coef, const float *xhat, float *x) {
    for (int j = 0; j < r; j++) {
        float u = 0;
        for (int c = 0; c < C; c++) u += A[(size_t)j * C + c] * xhat[c];
        u *= coef;
        for (int c = 0; c < C; c++) x[c] += B[(size_t)c * r + j] * u;
    }
}
static void case_expert_backward(const float *A, const float *B, int r, int C, float coef, const float *xhat,
                                 const float *dx, float *gA, float *gB) {
    for (int j = 0; j < r; j++) {
        float u = 0, v = 0;
        for (int c = 0; c < C; c++) {
            u += A[(size_t)j * C + c] * xhat[c];
            v += B[(size_t)c * r + j] * dx[c];
        }
        u *= coef;
        v *= coef;
        for (int c = 0; c < C; c++) {
            gB[(size_t)c * r + j] += dx[c] * u;
            gA[(size_t)j * C + c] += v * xhat[c];
        }
    }
}

static void test_grad_golden(void) {
    gguf_file *g = NULL;
    mome_model *m = NULL;
    tstack s;
    memset(&s, 0, sizeof s);
    char *js = read_all(GOLDEN_JSON);
    cJSON *root = js ? cJSON_Parse(js) : NULL;
    float *X = NULL, *dX = NULL, *gA = NULL, *gB = NULL;
    ts_seq seqs[8];
    const float *kv_pre[8][2] = {{0}};
    int32_t *target = NULL;
    /* committed files: missing is a failure, not a skip */
    CHECK(js != NULL, "%s: %s", GOLDEN_JSON, strerror(errno));
    CHECK(root != NULL, "%s: not JSON", GOLDEN_JSON);
    CHECK(gguf_open(GOLDEN_GGUF, &g) == MOME_OK, "%s", mome_errmsg());
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    CHECK(mome_model_load(GOLDEN_GGUF, &mp, &m) == MOME_OK, "%s", mome_errmsg());
    if (!root || !g || !m) goto done;

    uint32_t l0 = 0, lrank = 0;
    float lalpha = 0;
    const gguf_kv *kn = NULL, *kt = NULL, *ktg, *kll = NULL, *klp = NULL;
    GREQ(gguf_get_u32(g, "case.l0", &l0) == 1, "case.l0");
    GREQ(gguf_get_arr(g, "case.n_prefix", GGUF_TYPE_INT32, &kn) == 1 &&
             gguf_get_arr(g, "case.T", GGUF_TYPE_INT32, &kt) == 1 && kn->n == kt->n && kn->n >= 1 && kn->n <= 8,
         "case.n_prefix / case.T");
    const int ns = (int)kn->n, C = m->hp.n_embd, KV = m->hp.n_head_kv * m->hp.head_dim;
    int R = 0, maxpos = 0;
    for (int i = 0; i < ns; i++) {
        const int np = (int)gguf_arr_get_num(kn, i), T = (int)gguf_arr_get_num(kt, i);
        GREQ(np >= 0 && T >= 1 && np + T <= 64, "sequence %d: prefix %d, T %d", i, np, T);
        seqs[i] = (ts_seq){.n_prefix = np, .T = T, .row0 = R};
        R += T;
        if (np + T > maxpos) maxpos = np + T;
    }
    GREQ(l0 < (uint32_t)m->hp.n_layer, "l0 %u", l0);
    const int NL = m->hp.n_layer - (int)l0;
    GREQ((ktg = case_arr(g, "case.target", (uint64_t)R)) != NULL, "case.target");
    target = malloc((size_t)R * sizeof(int32_t));
    GREQ(target, "oom");
    for (int i = 0; i < R; i++) target[i] = (int32_t)gguf_arr_get_num(ktg, i);
    char nm[64];
    for (int i = 0; i < ns; i++) {
        seqs[i].target = target + seqs[i].row0;
        if (!seqs[i].n_prefix) continue;
        const size_t n = (size_t)NL * seqs[i].n_prefix * KV;
        snprintf(nm, sizeof nm, "case.kpre.%d", i);
        kv_pre[i][0] = case_tensor(g, nm, n);
        snprintf(nm, sizeof nm, "case.vpre.%d", i);
        kv_pre[i][1] = case_tensor(g, nm, n);
        GREQ(kv_pre[i][0] && kv_pre[i][1], "prefix K/V of sequence %d", i);
        seqs[i].kpre = kv_pre[i][0];
        seqs[i].vpre = kv_pre[i][1];
    }

    /* memory expert: X = h + coef * B (A xhat) */
    const float *h = case_tensor(g, "case.h", (size_t)R * C), *xhat = case_tensor(g, "case.xhat", (size_t)R * C);
    const float *coef = case_tensor(g, "case.mem.coef", (size_t)R);
    const gguf_tensor *tA = gguf_find_tensor(g, "case.mem.A");
    GREQ(h && xhat && coef && tA && tA->n_dims == 2 && tA->ne[0] == C, "memory tensors");
    const int mr = (int)tA->ne[1];
    const float *mA = case_tensor(g, "case.mem.A", (size_t)mr * C), *mB = case_tensor(g, "case.mem.B", (size_t)C * mr);
    GREQ(mA && mB, "memory A/B");

    /* the stack with the case's LoRA adapters (the others keep B = 0) */
    GREQ(tstack_init(&s, m, (int)l0, maxpos, R) == MOME_OK, "%s", mome_errmsg());
    CHECK(gguf_get_u32(g, "case.lora.rank", &lrank) == 1 && gguf_get_f32(g, "case.lora.alpha", &lalpha) == 1,
          "case.lora.rank/alpha");
    GREQ(gguf_get_arr(g, "case.lora.layer", GGUF_TYPE_INT32, &kll) == 1 &&
                gguf_get_arr(g, "case.lora.proj", GGUF_TYPE_STRING, &klp) == 1 && kll->n == klp->n,
            "case.lora.layer/proj");
    GREQ(lrank >= 1 && lrank <= 16 && tstack_add_lora(&s, (int)lrank, lalpha, 1) == MOME_OK, "lora: %s",
            mome_errmsg());
    static const char *const pnames[TS_NPROJ] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};
    const int nlo = (int)kll->n;
    int lidx[16];
    GREQ(nlo <= 16, "too many adapters");
    for (int i = 0; i < nlo; i++) {
        const int layer = (int)gguf_arr_get_num(kll, i);
        int pj = -1;
        for (int j = 0; j < TS_NPROJ; j++)
            if (gguf_str_eq(klp->strs[i], pnames[j])) pj = j;
        GREQ(pj >= 0 && layer >= (int)l0 && layer < m->hp.n_layer, "adapter %d", i);
        ts_lora *lo = &s.lora[(layer - (int)l0) * TS_NPROJ + pj];
        lidx[i] = (layer - (int)l0) * TS_NPROJ + pj;
        snprintf(nm, sizeof nm, "case.lora.%d.A", i);
        const float *a = case_tensor(g, nm, (size_t)lrank * lo->n_in);
        snprintf(nm, sizeof nm, "case.lora.%d.B", i);
        const float *bb = case_tensor(g, nm, (size_t)lo->n_out * lrank);
        GREQ(a && bb, "adapter %d tensors", i);
        memcpy(lo->A, a, (size_t)lrank * lo->n_in * sizeof(float));
        memcpy(lo->B, bb, (size_t)lo->n_out * lrank * sizeof(float));
    }

    X = malloc((size_t)R * C * sizeof(float));
    dX = malloc((size_t)R * C * sizeof(float));
    gA = calloc((size_t)mr * C, sizeof(float));
    gB = calloc((size_t)mr * C, sizeof(float));
    GREQ(X && dX && gA && gB, "oom");
    memcpy(X, h, (size_t)R * C * sizeof(float));
    for (int i = 0; i < R; i++) case_expert_forward(mA, mB, mr, C, coef[i], xhat + (size_t)i * C, X + (size_t)i * C);
    float loss[8];
    GREQ(tstack_step(&s, seqs, ns, X, dX, loss, NULL, 1) == MOME_OK, "%s", mome_errmsg());
    for (int i = 0; i < R; i++)
        case_expert_backward(mA, mB, mr, C, coef[i], xhat + (size_t)i * C, dX + (size_t)i * C, gA, gB);

    /* compare */
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(root, "loss");
    const cJSON *jls = cJSON_GetObjectItemCaseSensitive(root, "loss_per_seq");
    GREQ(cJSON_IsNumber(jl) && cJSON_IsArray(jls) && cJSON_GetArraySize(jls) == ns, "golden loss");
    double Lc = 0;
    for (int i = 0; i < ns; i++) {
        const double lg = cJSON_GetArrayItem(jls, i)->valuedouble;
        CHECK(fabs(loss[i] - lg) <= 1e-5 * fabs(lg) + 1e-6, "loss[%d] %.8g vs golden %.8g", i, loss[i], lg);
        Lc += loss[i];
    }
    printf("  loss %.8f vs golden %.8f: |d| %.3g\n", Lc, jl->valuedouble, fabs(Lc - jl->valuedouble));
    CHECK(fabs(Lc - jl->valuedouble) <= 1e-5 * fabs(jl->valuedouble), "loss %.8g vs golden %.8g", Lc, jl->valuedouble);
    gold_cmp(cJSON_GetObjectItemCaseSensitive(root, "dX"), dX, (size_t)R * C, "dX");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(root, "mem");
    gold_cmp(cJSON_GetObjectItemCaseSensitive(jm, "gA"), gA, (size_t)mr * C, "mem gA");
    gold_cmp(cJSON_GetObjectItemCaseSensitive(jm, "gB"), gB, (size_t)mr * C, "mem gB");
    const cJSON *jlo = cJSON_GetObjectItemCaseSensitive(root, "lora");
    GREQ(cJSON_IsArray(jlo) && cJSON_GetArraySize(jlo) == nlo, "golden lora entries");
    for (int i = 0; i < nlo; i++) {
        const cJSON *e = cJSON_GetArrayItem(jlo, i);
        const ts_lora *lo = &s.lora[lidx[i]];
        const cJSON *jly = cJSON_GetObjectItemCaseSensitive(e, "layer");
        const cJSON *jpr = cJSON_GetObjectItemCaseSensitive(e, "proj");
        CHECK(cJSON_IsNumber(jly) && jly->valueint == (int)gguf_arr_get_num(kll, i) && cJSON_IsString(jpr) &&
                  gguf_str_eq(klp->strs[i], jpr->valuestring),
              "golden lora entry %d names another adapter", i);
        char what[64];
        snprintf(what, sizeof what, "lora %d %s gA", (int)gguf_arr_get_num(kll, i), pnames[lidx[i] % TS_NPROJ]);
        gold_cmp(cJSON_GetObjectItemCaseSensitive(e, "gA"), lo->gA, (size_t)lrank * lo->n_in, what);
        snprintf(what, sizeof what, "lora %d %s gB", (int)gguf_arr_get_num(kll, i), pnames[lidx[i] % TS_NPROJ]);
        gold_cmp(cJSON_GetObjectItemCaseSensitive(e, "gB"), lo->gB, (size_t)lo->n_out * lrank, what);
    }
done:
    free(X); free(dX); free(gA); free(gB); free(target);
    tstack_free(&s);
    if (m) mome_model_free(m);
    if (g) gguf_close(g);
    cJSON_Delete(root);
    free(js);
}

int main(void) {
    RUN(test_grad_x);
    g_arch = "qwen2";
    RUN(test_grad_x_qwen2);
    g_arch = "llama";
    RUN(test_engine_vs_stack_llama);
    RUN(test_engine_vs_stack_qwen2);
    RUN(test_grad_memory);
    RUN(test_grad_lora);
    RUN(test_grad_full_llama);
    RUN(test_grad_full_llama_tied);
    RUN(test_grad_full_qwen2_tied);
    RUN(test_written_full);
    RUN(test_written_lora);
    RUN(test_written_base);
    RUN(test_lora_pass_reports);
    RUN(test_grad_golden);
    return test_summary();
}
