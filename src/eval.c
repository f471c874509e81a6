/* eval.c - what a user checks before trusting a memory: exact recall,
 * containment, hallucination rate, recall on unseen paraphrases, and
 * perplexity of held-out text (locality: it must not move).
 *
 * Each question is wrapped in the chat template and answered greedily until
 * an end-of-generation token (or max_new_tokens): ans_greedy() in answer.c,
 * the same decode the tuner verifies with. Scoring uses facts.c:
 * exact = the output equals an expected answer after trimming whitespace and
 * one final period; contains = an expected answer appears in the output
 * (fairer to a chatty base model); an abstention ("I don't know", "I'm not
 * sure", ... see facts_is_abstention) is not a hallucination; every other
 * wrong answer is. Perplexity: the text is tokenized once (BOS as the model
 * asks) and cut into non-overlapping windows of ppl_ctx tokens; every token
 * of a window after its first is scored; ppl = exp(mean NLL).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "facts.h"
#include "model.h"
#include "util.h"

mome_eval_params mome_eval_default_params(void) {
    mome_eval_params p;
    memset(&p, 0, sizeof p);
    p.ppl_ctx = 512;
    p.max_new_tokens = 64;
    return p;
}

/* Greedy answer to one user message (answer.c); returns malloc'd text or NULL. */
static char *answer(mome_model *m, mome_ctx *c, ans_cache *pc, const char *system, const char *question,
                    int max_new) {
    mome_chat_msg msgs[2];
    int nm = 0;
    if (system) msgs[nm++] = (mome_chat_msg){"system", system};
    msgs[nm++] = (mome_chat_msg){"user", question};
    char *out;
    return ans_greedy(m, c, pc, msgs, nm, max_new, &out, NULL, NULL) == MOME_OK ? out : NULL;
}

static int eval_facts(mome_model *m, mome_ctx *c, const mome_eval_params *p, mome_eval_result *r) {
    fact_set *fs;
    int rc = facts_load(p->facts_path, (enum facts_conflict)p->on_conflict, &fs);
    if (rc) return rc;
    int n = fs->n;
    if (p->max_facts > 0 && p->max_facts < n) n = (int)p->max_facts;
    ans_cache pc = {0};
    for (int i = 0; i < n; i++) {
        const fact *f = &fs->v[i];
        char *out = answer(m, c, &pc, f->system, f->question, p->max_new_tokens);
        if (!out) { facts_free(fs); ans_cache_free(&pc); return MOME_ERR; }
        int ex = facts_answer_matches(f, out), co = facts_answer_contained(f, out);
        int ab = !co && facts_is_abstention(out);
        r->n_facts++;
        r->n_exact += ex;
        r->n_contains += co;
        r->n_abstain += ab;
        r->n_hallucinated += !co && !ab;
        if (p->on_fact) p->on_fact(i, n, f->question, out, ex, co, ab, p->user);
        free(out);
        for (int j = 0; j < f->n_paraphrases; j++) {
            char *po = answer(m, c, &pc, f->system, f->paraphrases[j], p->max_new_tokens);
            if (!po) { facts_free(fs); ans_cache_free(&pc); return MOME_ERR; }
            r->n_paraphrases++;
            r->n_paraphrase_exact += facts_answer_matches(f, po);
            free(po);
        }
    }
    facts_free(fs);
    ans_cache_free(&pc);
    r->recall = r->n_facts ? (double)r->n_exact / r->n_facts : 0;
    r->contains_recall = r->n_facts ? (double)r->n_contains / r->n_facts : 0;
    r->hallucination_rate = r->n_facts ? (double)r->n_hallucinated / r->n_facts : 0;
    r->paraphrase_recall = r->n_paraphrases ? (double)r->n_paraphrase_exact / r->n_paraphrases : -1;
    return 0;
}

static int eval_ppl(mome_model *m, mome_ctx *c, const mome_eval_params *p, mome_eval_result *r) {
    char *buf;
    size_t n;
    int rc = mome_read_text(p->text_path, p->text_max_bytes, &buf, &n);
    if (rc) return rc;
    int tcap = (int)n + 8;
    int32_t *ids = mome_malloc((size_t)tcap * sizeof(int32_t));
    if (!ids) { free(buf); return MOME_ERR_NOMEM; }
    int nt = mome_tokenize(m, buf, n, ids, tcap, 1, 0);
    free(buf);
    if (nt < 0 || nt > tcap) { free(ids); return nt < 0 ? nt : MOME_ERR; }
    const int W = p->ppl_ctx > 1 ? (p->ppl_ctx < c->n_ctx ? p->ppl_ctx : c->n_ctx) : 512;
    const int V = m->hp.n_vocab;
    double nll = 0;
    int64_t cnt = 0;
    for (int s = 0; s + 1 < nt; s += W) {
        int len = nt - s < W ? nt - s : W;
        if (len < 2) break;
        if (mome_decode(c, ids + s, len, 0, 1)) { free(ids); return MOME_ERR; }
        for (int i = 0; i + 1 < len; i++) {
            const float *lg = mome_get_logits(c, i);
            float mx = lg[0];
            for (int v = 1; v < V; v++) if (lg[v] > mx) mx = lg[v];
            double z = 0;
            for (int v = 0; v < V; v++) z += exp((double)(lg[v] - mx));
            nll += mx + log(z) - lg[ids[s + i + 1]];
            cnt++;
        }
    }
    free(ids);
    r->ppl_tokens = cnt;
    r->perplexity = cnt ? exp(nll / cnt) : -1;
    return 0;
}

int mome_eval(mome_model *m, mome_memory *mem, const mome_eval_params *p, mome_eval_result *r) {
    memset(r, 0, sizeof *r);
    r->recall = r->contains_recall = r->hallucination_rate = r->paraphrase_recall = r->perplexity = -1;
    double t0 = mome_time_s();
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 1024;
    if (p->ppl_ctx > 0 && p->ppl_ctx > cp.n_ctx) cp.n_ctx = p->ppl_ctx;
    cp.n_batch = 512;
    cp.n_threads = p->n_threads;
    mome_ctx *c;
    int rc = mome_ctx_init(m, &cp, &c);
    if (rc) return rc;
    if (mem && (rc = mome_ctx_set_memory(c, mem))) { mome_ctx_free(c); return rc; }
    if (p->facts_path && (rc = eval_facts(m, c, p, r))) { mome_ctx_free(c); return rc; }
    if (p->text_path && (rc = eval_ppl(m, c, p, r))) { mome_ctx_free(c); return rc; }
    mome_ctx_free(c);
    r->seconds = mome_time_s() - t0;
    return 0;
}
