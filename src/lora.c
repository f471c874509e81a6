/* lora.c - the baseline users would pick instead: ordinary LoRA.
 *
 * Rank-r adapters (A random, B = 0, scale alpha/r) on the seven projections
 * of every layer (q, k, v, o, gate, up, down), the same frozen base, the
 * same facts, chat template, loss (answer tokens + end of turn) and stop
 * rule as memory tuning. Because the adapters change every layer, nothing
 * can be cached: each step runs the whole prompt+answer of every fact in the
 * batch through all layers (train_stack.c with l0 = 0) and updates every
 * adapter with Adam.
 *
 * mome's inference engine does not run LoRA adapters, so this module also
 * measures the adapted model itself, in the same f32 stack: a fact is
 * memorized when the teacher-forced argmax at every answer position is the
 * answer (which is what greedy decoding produces) and its loss is below the
 * target; perplexity of a held-out text, before and after, is computed in
 * windows of 512 tokens. The adapters are written to a GGUF file.
 */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "adam.h"
#include "facts.h"
#include "gguf_write.h"
#include "model.h"
#include "train_stack.h"
#include "util.h"

int mome_tune_lora(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs);

typedef struct lfact {
    int32_t *ids;      /* (n) prompt + answer tokens */
    int32_t *target;   /* (n) next-token targets, -1 on the prompt */
    int n;
    float loss;
    int state;
} lfact;

static void embed(const mome_model *m, const int32_t *ids, int n, float *X) {
    const qmat *e = &m->tok_embd;
    for (int i = 0; i < n; i++)
        quant_dequantize_row(e->type, (const char *)e->data + (size_t)ids[i] * e->row_bytes, X + (size_t)i * e->n_in,
                             e->n_in);
}

/* Perplexity of the text in the f32 stack (with or without adapters). */
static double stack_ppl(const mome_model *m, tstack *st, const char *path, int64_t max_bytes, float *X) {
    char *buf;
    size_t n;
    if (mome_read_text(path, max_bytes, &buf, &n)) return -1;
    int32_t *ids = malloc((n + 8) * sizeof(int32_t));
    int nt = ids ? mome_tokenize(m, buf, n, ids, (int)n + 8, 1, 0) : -1;
    free(buf);
    if (nt < 2) { free(ids); return -1; }
    const int W = st->max_pos < 512 ? st->max_pos : 512;
    int32_t *tg = malloc((size_t)W * sizeof(int32_t));
    double nll = 0;
    int64_t cnt = 0;
    for (int s = 0; s + 1 < nt; s += W) {
        int len = nt - s < W ? nt - s : W;
        if (len < 2) break;
        for (int i = 0; i < len; i++) tg[i] = i + 1 < len ? ids[s + i + 1] : -1;
        embed(m, ids + s, len, X);
        ts_seq q = {0, NULL, NULL, len, 0, tg};
        float loss;
        int ok;
        if (tstack_step(st, &q, 1, X, NULL, &loss, &ok, 0)) { nll = NAN; break; }
        nll += (double)loss * (len - 1);
        cnt += len - 1;
    }
    free(tg);
    free(ids);
    return cnt ? exp(nll / cnt) : -1;
}

static int save_lora(const tstack *st, const mome_model *m, const mome_tune_params *p, const char *path) {
    gguf_writer *w;
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    static const char *pn[TS_NPROJ] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"};
    char name[96];
    const char *sha = mome_model_sha256((mome_model *)m);
#define CK(x) do { if ((rc = (x)) != 0) goto done; } while (0)
    CK(gguf_writer_add_str(w, "general.architecture", "mome-lora"));
    CK(gguf_writer_add_str(w, "mome.base.sha256", sha ? sha : ""));
    CK(gguf_writer_add_i32(w, "lora.rank", st->lora_rank));
    CK(gguf_writer_add_f32(w, "lora.alpha", p->lora_alpha));
    for (int l = 0; l < st->L - st->l0; l++)
        for (int j = 0; j < TS_NPROJ; j++) {
            const ts_lora *lo = &st->lora[l * TS_NPROJ + j];
            int64_t na[2] = {lo->n_in, st->lora_rank}, nb[2] = {st->lora_rank, lo->n_out};
            snprintf(name, sizeof name, "blk.%d.%s.lora_a", l + st->l0, pn[j]);
            CK(gguf_writer_add_tensor(w, name, 2, na, MOME_DTYPE_F32, lo->A, (size_t)lo->n_in * st->lora_rank * 4,
                                      GGUF_WRITER_REF));
            snprintf(name, sizeof name, "blk.%d.%s.lora_b", l + st->l0, pn[j]);
            CK(gguf_writer_add_tensor(w, name, 2, nb, MOME_DTYPE_F32, lo->B, (size_t)lo->n_out * st->lora_rank * 4,
                                      GGUF_WRITER_REF));
        }
    rc = gguf_writer_write_file(w, path);
done:
#undef CK
    gguf_writer_free(w);
    return rc;
}

int mome_tune_lora(mome_model *m, const mome_tune_params *p, mome_tune_report *rep, fact_set *fs) {
    const double t0 = mome_time_s();
    const int n = fs->n, C = m->hp.n_embd;
    const int32_t eot = mome_token_eot(m);
    const float lr = p->lr > 0 ? p->lr : 1e-3f;
    const int B = p->batch > 0 ? (p->batch < 8 ? p->batch : 8) : 8;
    rep->ppl_before = rep->ppl_after = -1;
    lfact *f = mome_calloc((size_t)n, sizeof(lfact));
    if (!f) return MOME_ERR_NOMEM;
    int rc = 0, max_len = 8;
    for (int i = 0; i < n && !rc; i++) {
        mome_chat_msg msgs[2];
        int nm = 0;
        if (fs->v[i].system) msgs[nm++] = (mome_chat_msg){"system", fs->v[i].system};
        msgs[nm++] = (mome_chat_msg){"user", fs->v[i].question};
        char *prompt = mome_chat_format(m, msgs, nm, 1);
        int32_t *pi = NULL, *ai = NULL;
        int np = prompt ? mome_tokenize_alloc(m, prompt, 1, 1, &pi) : MOME_ERR_NOMEM;
        free(prompt);
        int na = np > 0 ? mome_tokenize_alloc(m, fs->v[i].answers[0], 0, 0, &ai) : np;
        if (np <= 0 || na <= 0) {
            rc = np <= 0 ? (np ? np : MOME_ERR) : (na ? na : MOME_ERR);
            if (rc == MOME_ERR) mome_seterr_code(MOME_ERR_ARG, "%s:%d: empty after tokenization", fs->path, fs->v[i].line);
            free(pi); free(ai);
            break;
        }
        f[i].n = np + na;
        f[i].ids = mome_malloc((size_t)f[i].n * sizeof(int32_t));
        f[i].target = mome_malloc((size_t)f[i].n * sizeof(int32_t));
        if (!f[i].ids || !f[i].target) { rc = MOME_ERR_NOMEM; free(pi); free(ai); break; }
        memcpy(f[i].ids, pi, (size_t)np * sizeof(int32_t));
        memcpy(f[i].ids + np, ai, (size_t)na * sizeof(int32_t));
        for (int j = 0; j < f[i].n; j++) f[i].target[j] = j >= np - 1 ? (j + 1 < f[i].n ? f[i].ids[j + 1] : eot) : -1;
        if (f[i].n > max_len) max_len = f[i].n;
        free(pi); free(ai);
    }
    tstack st;
    memset(&st, 0, sizeof st);
    float *X = NULL;
    float **mstate = NULL;
    const int NP = m->hp.n_layer * TS_NPROJ;
    if (rc) goto out;
    {
        const int ppl_pos = p->ppl_text ? 512 : 0;
        const int max_pos = max_len > ppl_pos ? max_len : ppl_pos;
        const int max_rows = B * max_len > ppl_pos ? B * max_len : ppl_pos;
        if ((rc = tstack_init(&st, m, 0, max_pos + 8, max_rows))) goto out;
        X = mome_malloc((size_t)max_rows * C * sizeof(float));
        if (!X) { rc = MOME_ERR_NOMEM; goto out; }
        if (p->ppl_text) rep->ppl_before = stack_ppl(m, &st, p->ppl_text, p->ppl_text_bytes, X);
        if ((rc = tstack_add_lora(&st, p->lora_rank, p->lora_alpha, p->seed))) goto out;
        /* Adam state: m and v for A and B of every adapter */
        mstate = mome_calloc((size_t)NP * 4, sizeof(float *));
        if (!mstate) { rc = MOME_ERR_NOMEM; goto out; }
        for (int i = 0; i < NP; i++) {
            const ts_lora *lo = &st.lora[i];
            const size_t na = (size_t)lo->n_in * st.lora_rank, nb = (size_t)lo->n_out * st.lora_rank;
            mstate[4 * i] = mome_calloc(na, 4); mstate[4 * i + 1] = mome_calloc(na, 4);
            mstate[4 * i + 2] = mome_calloc(nb, 4); mstate[4 * i + 3] = mome_calloc(nb, 4);
            if (!mstate[4 * i] || !mstate[4 * i + 1] || !mstate[4 * i + 2] || !mstate[4 * i + 3]) { rc = MOME_ERR_NOMEM; goto out; }
        }
    }
    {
        int *idx = mome_malloc((size_t)(n ? n : 1) * sizeof(int));
        ts_seq *seqs = mome_malloc((size_t)B * sizeof(ts_seq));
        float *loss = mome_malloc((size_t)B * sizeof(float));
        int *ok = mome_malloc((size_t)B * sizeof(int));
        if (!idx || !seqs || !loss || !ok) rc = MOME_ERR_NOMEM;
        int64_t step = 0;
        int cursor = 0;
        double last_prog = 0;
        while (!rc) {
            int np = 0;
            for (int i = 0; i < n; i++)
                if (!f[i].state) idx[np++] = i;
            if (np == 0) break;
            if (cursor >= np) cursor = 0;
            int nb = np - cursor < B ? np - cursor : B, R = 0;
            for (int k = 0; k < nb; k++) {
                lfact *q = &f[idx[cursor + k]];
                seqs[k] = (ts_seq){0, NULL, NULL, q->n, R, q->target};
                embed(m, q->ids, q->n, X + (size_t)R * C);
                R += q->n;
            }
            for (int i = 0; i < NP; i++) {
                ts_lora *lo = &st.lora[i];
                memset(lo->gA, 0, (size_t)lo->n_in * st.lora_rank * 4);
                memset(lo->gB, 0, (size_t)lo->n_out * st.lora_rank * 4);
            }
            if ((rc = tstack_step(&st, seqs, nb, X, NULL, loss, ok, 1))) break;
            step++;
            const adam_cfg ac = adam_default(lr);
            for (int i = 0; i < NP; i++) {
                ts_lora *lo = &st.lora[i];
                const size_t na = (size_t)lo->n_in * st.lora_rank, nb2 = (size_t)lo->n_out * st.lora_rank;
                adam_update(&ac, (int)step, lo->A, lo->gA, mstate[4 * i], mstate[4 * i + 1], na);
                adam_update(&ac, (int)step, lo->B, lo->gB, mstate[4 * i + 2], mstate[4 * i + 3], nb2);
            }
            for (int k = 0; k < nb; k++) {
                lfact *q = &f[idx[cursor + k]];
                q->loss = loss[k];
                if (ok[k] && loss[k] < p->target_loss) q->state = 1;
            }
            cursor += nb;
            /* a pass over the pool is done: memorized facts may have been
             * disturbed by later steps (dense adapters), so re-check them all */
            if (cursor >= np) {
                for (int s0 = 0; s0 < n && !rc; s0 += B) {
                    int cnt = 0, R2 = 0;
                    for (int i = s0; i < n && cnt < B; i++, cnt++) {
                        seqs[cnt] = (ts_seq){0, NULL, NULL, f[i].n, R2, f[i].target};
                        embed(m, f[i].ids, f[i].n, X + (size_t)R2 * C);
                        R2 += f[i].n;
                    }
                    if ((rc = tstack_step(&st, seqs, cnt, X, NULL, loss, ok, 0))) break;
                    for (int k = 0; k < cnt; k++) {
                        f[s0 + k].loss = loss[k];
                        f[s0 + k].state = ok[k] && loss[k] < p->target_loss;
                    }
                }
            }
            const double now = mome_time_s();
            if (p->progress && now - last_prog > 0.25) {
                last_prog = now;
                mome_tune_progress pr = {0};
                pr.step = step;
                pr.n_facts = n;
                double ls = 0;
                for (int i = 0; i < n; i++) { pr.n_memorized += f[i].state; ls += f[i].loss; }
                pr.mean_loss = (float)(ls / n);
                pr.elapsed_s = now - t0;
                pr.facts_per_s = pr.n_memorized / pr.elapsed_s;
                pr.eta_s = pr.facts_per_s > 0 ? (n - pr.n_memorized) / pr.facts_per_s : -1;
                pr.phase = "train";
                p->progress(&pr, p->user);
            }
            if (p->max_steps > 0 && step >= p->max_steps) break;
            if (p->max_minutes > 0 && now - t0 > 60 * p->max_minutes) break;
        }
        rep->steps = step;
        free(idx); free(seqs); free(loss); free(ok);
    }
    if (rc) goto out;
    if (p->ppl_text) rep->ppl_after = stack_ppl(m, &st, p->ppl_text, p->ppl_text_bytes, X);
    if ((rc = save_lora(&st, m, p, p->out_path))) goto out;
    rep->n_facts = n;
    for (int i = 0; i < n; i++) {
        rep->n_memorized += f[i].state;
        rep->mean_loss += f[i].loss;
    }
    rep->mean_loss /= n ? n : 1;
    rep->seconds = mome_time_s() - t0;
    if (p->progress) {
        mome_tune_progress pr = {0};
        pr.step = rep->steps;
        pr.n_facts = n;
        pr.n_memorized = rep->n_memorized;
        pr.mean_loss = (float)rep->mean_loss;
        pr.elapsed_s = rep->seconds;
        pr.phase = "done";
        p->progress(&pr, p->user);
    }
out:
    if (mstate)
        for (int i = 0; i < NP * 4; i++) free(mstate[i]);
    free(mstate);
    free(X);
    tstack_free(&st);
    for (int i = 0; i < n; i++) { free(f[i].ids); free(f[i].target); }
    free(f);
    return rc;
}
