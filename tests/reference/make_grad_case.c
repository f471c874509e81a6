/* make_grad_case.c - writes tests/golden/grad_case.gguf, the inputs of the
 * gradient golden: everything tests/reference/make_grad_golden.py (JAX) needs
 * to recompute the training loss and its gradients without mome.
 *
 * The file is a complete tiny random llama model (tests/tinymodel.h, F32, so
 * mome_model_load opens it as a model) plus "case.*" keys and tensors:
 *
 *   case.l0                      u32   first trained layer
 *   case.n_prefix, case.T        i32[] per sequence: cached positions, rows
 *   case.target                  i32[] (R) next-token targets, -1 = no loss
 *   case.kpre.S, case.vpre.S     (L-l0, n_prefix, Hkv*D) prefix K (roped) / V of sequence S (n_prefix > 0 only)
 *   case.h, case.xhat            (R, C) residual stream before the memory, x̂ = h / rms(h)
 *   case.mem.coef                (R) coefficient of the expert on each row
 *   case.mem.A, case.mem.B       (r, C), (C, r)
 *       X = h + coef * B (A x̂) is the input of layer l0
 *   case.lora.rank, .alpha       adapters y += (alpha / rank) * B (A x)
 *   case.lora.layer, .proj       i32[], str[] (absolute layer, "attn_q" | "attn_k" | "attn_v" |
 *                                "attn_output" | "ffn_gate" | "ffn_up" | "ffn_down")
 *   case.lora.I.A, case.lora.I.B (r, n_in), (n_out, r)
 *   case.engine.tokens           i32[] tokens decoded from position 0 by mome's engine
 *   case.engine.logits           (n, V) its logits (to check the reference's model definition)
 *
 * Shapes above are numpy order (GGUF ne reversed). All values come from a
 * fixed-seed generator: the output is byte-identical on every run.
 *
 * Build and run from the repository root (after `make`):
 *   gcc -std=c11 -D_GNU_SOURCE -Iinclude -Isrc tests/reference/make_grad_case.c build/libmome.a \
 *       -lpcre2-8 -lcjson -lopenblas -lm -fopenmp -o build/make_grad_case
 *   build/make_grad_case tests/golden/grad_case.gguf
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tinymodel.h"
#include "gguf_write.h"
#include "memory.h"
#include "mome.h"

#define NSEQ 2
static const int NPRE[NSEQ] = {3, 0};
static const int TT[NSEQ] = {3, 2};
static const int32_t TARGET[] = {17, 123, -1, 260, 5};
#define L0 1
#define MEM_RANK 2
#define LORA_RANK 2
#define LORA_ALPHA 4.0f
#define NLORA 3
static const int LORA_LAYER[NLORA] = {1, 2, 2};
static const char *const LORA_PROJ[NLORA] = {"attn_q", "attn_v", "ffn_down"};
static const int32_t ENGINE_TOKENS[] = {1, 40, 7, 299, 123, 260, 3, 77, 200, 5};

static uint64_t g_rng = 0x6A7AD5EEDull;
static float unif(float a) { return a * tinymodel_unif(&g_rng); }

static int fail(const char *what) {
    fprintf(stderr, "make_grad_case: %s: %s\n", what, mome_errmsg());
    return 1;
}

static int add_t(gguf_writer *w, const char *name, int nd, int64_t n0, int64_t n1, int64_t n2, const float *v) {
    int64_t ne[3] = {n0, n1, n2};
    size_t n = (size_t)n0 * (nd > 1 ? n1 : 1) * (nd > 2 ? n2 : 1);
    return gguf_writer_add_tensor(w, name, (uint32_t)nd, ne, MOME_DTYPE_F32, v, n * sizeof(float), GGUF_WRITER_COPY);
}

int main(int argc, char **argv) {
    const char *out = argc > 1 ? argv[1] : "tests/golden/grad_case.gguf";
    tinymodel_params p = tinymodel_default_params();
    p.n_vocab = 300; p.n_embd = 32; p.n_layer = 3; p.n_head = 4; p.n_head_kv = 2; p.n_ff = 48;
    p.n_ctx = 64; p.wtype = MOME_DTYPE_F32; p.seed = 20240607; p.name = "grad_case";
    const int C = p.n_embd, V = p.n_vocab, L = p.n_layer, D = C / p.n_head, KV = p.n_head_kv * D, F = p.n_ff;
    gguf_writer *w;
    if (tinymodel_build(&p, &w)) return fail("build model");

    /* engine logits: write the model alone, decode with mome */
    char tmp[] = "/tmp/make_grad_case_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) return fail("mkstemp");
    close(fd);
    if (gguf_writer_write_file(w, tmp)) return fail("write model");
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    mome_model *m;
    if (mome_model_load(tmp, &mp, &m)) return fail("load model");
    remove(tmp);
    mome_ctx *ctx;
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 64;
    if (mome_ctx_init(m, &cp, &ctx)) return fail("ctx");
    const int NE = (int)(sizeof ENGINE_TOKENS / sizeof ENGINE_TOKENS[0]);
    if (mome_decode(ctx, ENGINE_TOKENS, NE, 0, 1)) return fail("decode");
    float *elog = malloc((size_t)NE * V * sizeof(float));
    for (int i = 0; i < NE; i++) memcpy(elog + (size_t)i * V, mome_get_logits(ctx, i), (size_t)V * sizeof(float));
    mome_ctx_free(ctx);
    mome_model_free(m);

    int rc = 0;
#define TRY(x) do { if ((rc = (x)) != MOME_OK) return fail(#x); } while (0)
    int R = 0;
    for (int s = 0; s < NSEQ; s++) R += TT[s];
    TRY(gguf_writer_add_u32(w, "case.l0", L0));
    TRY(gguf_writer_add_arr(w, "case.n_prefix", GGUF_TYPE_INT32, NPRE, NSEQ));
    TRY(gguf_writer_add_arr(w, "case.T", GGUF_TYPE_INT32, TT, NSEQ));
    TRY(gguf_writer_add_arr(w, "case.target", GGUF_TYPE_INT32, TARGET, (size_t)R));
    char nm[64];
    for (int s = 0; s < NSEQ; s++) {
        if (!NPRE[s]) continue;
        const size_t n = (size_t)(L - L0) * NPRE[s] * KV;
        float *k = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) k[i] = unif(1.5f);
        for (size_t i = 0; i < n; i++) v[i] = unif(1.0f);
        snprintf(nm, sizeof nm, "case.kpre.%d", s);
        TRY(add_t(w, nm, 3, KV, NPRE[s], L - L0, k));
        snprintf(nm, sizeof nm, "case.vpre.%d", s);
        TRY(add_t(w, nm, 3, KV, NPRE[s], L - L0, v));
        free(k); free(v);
    }
    /* memory expert */
    float *h = malloc((size_t)R * C * sizeof(float)), *xh = malloc((size_t)R * C * sizeof(float));
    float coef[16], A[MEM_RANK * 64], B[64 * MEM_RANK];
    for (int i = 0; i < R * C; i++) h[i] = unif(1.0f);
    for (int i = 0; i < R; i++) {
        const float rms = mem_rms_normalize(h + (size_t)i * C, xh + (size_t)i * C, C);
        coef[i] = (0.3f + 0.35f * (1.0f + unif(1.0f))) * rms;   /* w * g in [0.3, 1] */
    }
    for (int i = 0; i < MEM_RANK * C; i++) A[i] = unif(1.7320508f / sqrtf((float)C));
    for (int i = 0; i < C * MEM_RANK; i++) B[i] = unif(0.5f);
    TRY(add_t(w, "case.h", 2, C, R, 0, h));
    TRY(add_t(w, "case.xhat", 2, C, R, 0, xh));
    TRY(add_t(w, "case.mem.coef", 1, R, 0, 0, coef));
    TRY(add_t(w, "case.mem.A", 2, C, MEM_RANK, 0, A));
    TRY(add_t(w, "case.mem.B", 2, MEM_RANK, C, 0, B));
    free(h); free(xh);
    /* LoRA adapters */
    TRY(gguf_writer_add_u32(w, "case.lora.rank", LORA_RANK));
    TRY(gguf_writer_add_f32(w, "case.lora.alpha", LORA_ALPHA));
    TRY(gguf_writer_add_arr(w, "case.lora.layer", GGUF_TYPE_INT32, LORA_LAYER, NLORA));
    TRY(gguf_writer_add_arr_str(w, "case.lora.proj", LORA_PROJ, NULL, NLORA));
    for (int i = 0; i < NLORA; i++) {
        const char *pr = LORA_PROJ[i];
        const int n_in = !strcmp(pr, "ffn_down") ? F : !strcmp(pr, "attn_output") ? p.n_head * D : C;
        const int n_out = !strcmp(pr, "attn_q") ? p.n_head * D
                          : (!strcmp(pr, "attn_k") || !strcmp(pr, "attn_v")) ? KV
                          : (!strcmp(pr, "ffn_gate") || !strcmp(pr, "ffn_up")) ? F : C;
        float *la = malloc((size_t)LORA_RANK * n_in * sizeof(float)), *lb = malloc((size_t)n_out * LORA_RANK * sizeof(float));
        for (int j = 0; j < LORA_RANK * n_in; j++) la[j] = unif(1.7320508f / sqrtf((float)n_in));
        for (int j = 0; j < n_out * LORA_RANK; j++) lb[j] = unif(0.2f);
        snprintf(nm, sizeof nm, "case.lora.%d.A", i);
        TRY(add_t(w, nm, 2, n_in, LORA_RANK, 0, la));
        snprintf(nm, sizeof nm, "case.lora.%d.B", i);
        TRY(add_t(w, nm, 2, LORA_RANK, n_out, 0, lb));
        free(la); free(lb);
    }
    TRY(gguf_writer_add_arr(w, "case.engine.tokens", GGUF_TYPE_INT32, ENGINE_TOKENS, (size_t)NE));
    TRY(add_t(w, "case.engine.logits", 2, V, NE, 0, elog));
    free(elog);
    TRY(gguf_writer_write_file(w, out));
    gguf_writer_free(w);
#undef TRY
    printf("wrote %s (R = %d rows, %d sequences, l0 = %d)\n", out, R, NSEQ, L0);
    return 0;
}
