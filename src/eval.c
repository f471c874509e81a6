/* eval.c - what a user checks before trusting a memory: exact recall (in the
 * trained wording, in other surroundings, in surface variants, in
 * paraphrases), containment, hallucination rate, locality (neighbour
 * questions answered as without the memory), and perplexity of held-out text.
 *
 * Each question is wrapped in the chat template and answered greedily until
 * an end-of-generation token or max_new_tokens (24 by default): ans_greedy()
 * in answer.c, the same decode the tuner verifies with. Scoring uses facts.c:
 * exact = the output equals an expected answer after trimming whitespace and
 * one final period; contains = an expected answer appears in the output
 * (fairer to a chatty base model); an abstention ("I don't know", "I'm not
 * sure", ... see facts_is_abstention) is not a hallucination; every other
 * wrong answer is.
 *
 * The measures, per fact of the file (the first max_facts):
 *   recall             the trained question with the fact's own system prompt
 *                      (if any); also contains_recall and hallucination_rate.
 *   context_recall     the trained question in surroundings the fact never
 *                      had, each context once per fact:
 *                        - behind each built-in system prompt (replacing the
 *                          fact's own), eval_builtin_systems below:
 *                            "You are a helpful assistant."
 *                            "You are the support assistant of ACME Corp. Answer
 *                             the user's questions briefly and accurately."
 *                            "You are a knowledgeable assistant. Keep your
 *                             answers short."
 *                        - behind each system prompt of params.systems
 *                          (`mome eval --system TEXT`, repeatable);
 *                        - after one earlier, unrelated exchange (behind the
 *                          fact's own system prompt, if any): user "Hi! Can
 *                          you help me with a few questions?", assistant "Of
 *                          course! What would you like to know?".
 *                      = exact answers / (facts x contexts).
 *   variant_recall     the trained question in lower case, with every space
 *                      doubled and a trailing space, and without its final
 *                      '?', '.' or '!' (eval_variants; a variant identical to
 *                      the question is not asked) = exact / variants asked.
 *   paraphrase_recall  exact recall over the facts' paraphrases (never trained
 *                      on), with the fact's system prompt.
 *   locality           only with a memory: the share of neighbour questions
 *                      whose greedy answer with the memory is byte-identical
 *                      to the answer without it. Neighbours are the facts'
 *                      own ("neighbors", zsRE "loc", CounterFact
 *                      "locality_prompt"; asked with the fact's system
 *                      prompt) and every question of params.neighbors_path
 *                      (any fact file; answers ignored; with its own system
 *                      prompts). The two answers come from two contexts, one
 *                      with the memory attached and one without, so each
 *                      keeps its own prompt-prefix cache.
 *   swap_rate          over every question scored against a fact (recall,
 *                      paraphrases, variants, contexts): the share answered
 *                      exactly with another fact's answer and not with its
 *                      own (two facts about one subject swapped, or a
 *                      rewording sent to the wrong fact); the fact whose
 *                      answer it was is "other_fact" in the outputs.
 * Measures not taken (no_context, no_variants, no paraphrases, no memory or
 * no neighbours) are -1.
 *
 * outputs_path: one JSON object per line, per question asked, in the order
 * asked (per fact: recall, paraphrases, variants, contexts, neighbours; then
 * the neighbour file's questions):
 *   {"fact": I (0-based index among the facts evaluated; null for a question
 *    of the neighbour file), "line": L (line of the fact or neighbour record),
 *    "kind": "recall"|"paraphrase"|"variant"|"context"|"neighbor",
 *    "variant": "lower"|"spaces"|"no_punct" (variants only),
 *    "context": "system"|"exchange" (contexts only),
 *    "question": ..., "system": ... or null, "answer": the output (with the
 *    memory, if any), "base": the output without the memory (neighbours only;
 *    null for the other kinds, which are not asked twice), "exact": the answer
 *    matches an expected answer (neighbours: answer == base, byte for byte),
 *    "route": the memory's decision on the question asked with it (absent
 *    without a memory or a decision row): {"best": the fact of the highest
 *    key score, "score": that score, "second": the next best fact's score,
 *    "rival": the score of its rival (the best fact among the 8 best with
 *    another answer whose subject check does not fail, memory.h), "margin":
 *    the lead over the rival it needs (0: none), "gate": its relation gate,
 *    "cover": its
 *    wording-check cover (gate, cover null: the memory has no gate / no
 *    check), "subject": whether the question names that fact's subject
 *    (null: the fact keeps none), "fact": the fact
 *    whose answer the memory gave, null when it stayed silent} (facts as
 *    0-based indices into the memory)}.
 *    Strings are written as valid UTF-8: an answer cut inside a character
 *    (max_new_tokens, or a token holding part of one) shows U+FFFD there.
 *
 * Batching (params.n_parallel, default EVAL_PARALLEL): eval runs its
 * measures twice. The first pass only collects the conversations it asks
 * (with or without the memory); ans_greedy_batch answers them n_parallel at
 * a time, their tokens decoded together in one forward pass; the second pass
 * runs the same measures on those answers, in the same order. Batched rows
 * give the bits of one-token decoding, so the figures equal those of asking
 * one question at a time (n_parallel = 1, tested).
 *
 * Perplexity: the text is tokenized once (BOS as the model asks) and cut into
 * non-overlapping windows of ppl_ctx tokens; every token of a window after
 * its first is scored; ppl = exp(mean NLL).
 */
#include "eval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "answer.h"
#include "facts.h"
#include "model.h"
#include "util.h"

const char *const eval_builtin_systems[] = {
    "You are a helpful assistant.",
    "You are the support assistant of ACME Corp. Answer the user's questions briefly and accurately.",
    "You are a knowledgeable assistant. Keep your answers short.",
};
const int eval_n_builtin_systems = (int)(sizeof eval_builtin_systems / sizeof *eval_builtin_systems);
const char eval_exchange_user[] = "Hi! Can you help me with a few questions?";
const char eval_exchange_assistant[] = "Of course! What would you like to know?";

mome_eval_params mome_eval_default_params(void) {
    mome_eval_params p;
    memset(&p, 0, sizeof p);
    p.ppl_ctx = 512;
    p.max_new_tokens = 24;
    p.n_parallel = EVAL_PARALLEL;
    return p;
}

int eval_variants(const char *q, char *out[EVAL_N_VARIANTS], const char *kinds[EVAL_N_VARIANTS]) {
    int n = 0;
    for (int k = 0; k < EVAL_N_VARIANTS; k++) out[k] = NULL, kinds[k] = NULL;
    if (!q) return 0;
    size_t len = strlen(q), spaces = 0;
    for (size_t i = 0; i < len; i++) spaces += q[i] == ' ';
    for (int k = 0; k < EVAL_N_VARIANTS; k++) {
        size_t cap = k == 1 ? len + spaces + 2 : len + 1;
        char *v = malloc(cap);
        if (!v) {
            for (int j = 0; j < n; j++) free(out[j]), out[j] = NULL, kinds[j] = NULL;
            return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
        }
        size_t o = 0;
        if (k == 0) {
            for (size_t i = 0; i < len; i++) v[o++] = (q[i] >= 'A' && q[i] <= 'Z') ? (char)(q[i] + 32) : q[i];
        } else if (k == 1) {
            for (size_t i = 0; i < len; i++) {
                v[o++] = q[i];
                if (q[i] == ' ') v[o++] = ' ';
            }
            v[o++] = ' ';
        } else {
            memcpy(v, q, len);
            o = len;
            if (o && (v[o - 1] == '?' || v[o - 1] == '.' || v[o - 1] == '!')) o--;
        }
        v[o] = 0;
        if (o == 0 || strcmp(v, q) == 0) {
            free(v);
            continue;
        }
        static const char *const names[EVAL_N_VARIANTS] = {"lower", "spaces", "no_punct"};
        out[n] = v;
        kinds[n] = names[k];
        n++;
    }
    return n;
}

/* ------------------------------------------------------------ asking */

enum eval_mode {
    EVAL_DIRECT = 0, /* ask each question when the measure needs it */
    EVAL_COLLECT,    /* only record the conversations asked */
    EVAL_REPLAY,     /* take the answers of the recorded conversations, in order */
};

/* A recorded conversation (its strings copied) and its answer. */
typedef struct eval_job {
    char *text[4];
    mome_chat_msg msgs[4];
    int n, base;
    char *answer;
    ans_route route;
} eval_job;

typedef struct evalr {
    enum eval_mode mode;
    eval_job *jobs;
    int n_jobs, cap_jobs, next_job;
    mome_model *m;
    mome_ctx *c;               /* with the memory (if any) */
    mome_ctx *c0;              /* without it (for neighbours; made when first needed) */
    mome_memory *mem;
    const mome_ctx_params *cp;
    const mome_eval_params *p;
    mome_eval_result *r;
    FILE *out;                 /* outputs_path, or NULL */
    struct eval_answer *answers; /* every fact's normalized answers, sorted (swap_rate) */
    int n_answers;
} evalr;

/* One expected answer of one fact, normalized (facts_normalize_answer). */
typedef struct eval_answer {
    char *text;
    int fact;
} eval_answer;

static int answer_cmp(const void *a, const void *b) {
    return strcmp(((const eval_answer *)a)->text, ((const eval_answer *)b)->text);
}

/* The answers of the facts, sorted, for other_fact(). */
static int index_answers(evalr *e, const fact_set *fs) {
    int n = 0;
    for (int i = 0; fs && i < fs->n; i++) n += fs->v[i].n_answers;
    if (n == 0) return MOME_OK;
    if (!(e->answers = mome_calloc((size_t)n, sizeof *e->answers))) return MOME_ERR_NOMEM;
    for (int i = 0; i < fs->n; i++)
        for (int j = 0; j < fs->v[i].n_answers; j++) {
            char *t = facts_normalize_answer(fs->v[i].answers[j]);
            if (!t) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
            if (!t[0]) { free(t); continue; }
            e->answers[e->n_answers++] = (eval_answer){t, i};
        }
    qsort(e->answers, (size_t)e->n_answers, sizeof *e->answers, answer_cmp);
    return MOME_OK;
}

/* The fact (index into the fact file) whose expected answer the output is,
 * other than fact f's own; -1 when none. Called for outputs that are not an
 * answer of f, so any fact found is another. */
static int other_fact(const evalr *e, int f, const char *output) {
    if (!e->n_answers || !output) return -1;
    char *t = facts_normalize_answer(output);
    if (!t) return -1;
    const eval_answer key = {t, 0};
    const eval_answer *hit = bsearch(&key, e->answers, (size_t)e->n_answers, sizeof *e->answers, answer_cmp);
    int o = -1;
    if (hit) {
        while (hit > e->answers && strcmp(hit[-1].text, t) == 0) hit--;
        for (; hit < e->answers + e->n_answers && strcmp(hit->text, t) == 0 && o < 0; hit++)
            if (hit->fact != f) o = hit->fact;
    }
    free(t);
    return o;
}

/* Counts a scored answer into swap_rate: the other fact whose answer it is
 * (-1: none, or exact, or the collect pass whose answers are empty). */
static int count_swap(evalr *e, int f, const char *output, int exact) {
    const int other = exact || e->mode == EVAL_COLLECT ? -1 : other_fact(e, f, output);
    e->r->n_scored++;
    e->r->n_swapped += other >= 0;
    return other;
}

/* One question: the optional system prompt, the optional earlier exchange,
 * then the question; base = 1 asks the context without the memory. route
 * (may be NULL) receives the memory's decision on it. */
static int ask(evalr *e, int base, const char *system, int exchange, const char *question, char **text,
               ans_route *route) {
    if (route) memset(route, 0, sizeof *route), route->best = route->fact = -1;
    mome_chat_msg msgs[4];
    int n = 0;
    if (system) msgs[n++] = (mome_chat_msg){"system", system};
    if (exchange) {
        msgs[n++] = (mome_chat_msg){"user", eval_exchange_user};
        msgs[n++] = (mome_chat_msg){"assistant", eval_exchange_assistant};
    }
    msgs[n++] = (mome_chat_msg){"user", question};
    if (e->mode == EVAL_COLLECT) {
        if (e->n_jobs == e->cap_jobs) {
            int nc = e->cap_jobs ? 2 * e->cap_jobs : 256;
            eval_job *nj = realloc(e->jobs, (size_t)nc * sizeof *nj);
            if (!nj) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
            e->jobs = nj;
            e->cap_jobs = nc;
        }
        eval_job *j = &e->jobs[e->n_jobs];
        memset(j, 0, sizeof *j);
        for (int i = 0; i < n; i++) {
            if (!(j->text[i] = strdup(msgs[i].content))) {
                for (int k = 0; k < i; k++) free(j->text[k]);
                return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
            }
            j->msgs[i] = (mome_chat_msg){msgs[i].role, j->text[i]};
        }
        j->n = n;
        j->base = base;
        e->n_jobs++;
        return (*text = strdup("")) ? MOME_OK : mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    }
    if (e->mode == EVAL_REPLAY) {
        if (e->next_job >= e->n_jobs || e->jobs[e->next_job].base != base)
            return mome_seterr_code(MOME_ERR, "eval: the measures asked other questions the second time");
        *text = e->jobs[e->next_job].answer;
        if (route) *route = e->jobs[e->next_job].route;
        e->jobs[e->next_job++].answer = NULL;
        return MOME_OK;
    }
    if (base && !e->c0) {
        int rc = mome_ctx_init(e->m, e->cp, &e->c0);
        if (rc) return rc;
    }
    return ans_greedy(e->m, base ? e->c0 : e->c, msgs, n, e->p->max_new_tokens, text, NULL, NULL, route);
}

/* A copy of s that is valid UTF-8: an answer cut at max_new tokens (or a
 * token that is part of a character) may end inside a character; each
 * invalid byte becomes U+FFFD. */
static char *utf8_valid(const char *s) {
    size_t n = strlen(s);
    char *d = malloc(3 * n + 1);
    if (!d) return NULL;
    size_t o = 0, i = 0;
    const unsigned char *u = (const unsigned char *)s;
    while (i < n) {
        unsigned char c = u[i];
        size_t need = 0;
        uint32_t cp = 0, min = 0;
        if (c < 0x80) { d[o++] = (char)c; i++; continue; }
        if (c >= 0xC2 && c <= 0xDF) need = 1, cp = c & 0x1F, min = 0x80;
        else if (c >= 0xE0 && c <= 0xEF) need = 2, cp = c & 0x0F, min = 0x800;
        else if (c >= 0xF0 && c <= 0xF4) need = 3, cp = c & 0x07, min = 0x10000;
        int ok = need > 0 && n - i > need;
        for (size_t k = 1; ok && k <= need; k++) {
            if ((u[i + k] & 0xC0) != 0x80) ok = 0;
            else cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if (ok && (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = 0;
        if (ok) {
            memcpy(d + o, s + i, need + 1);
            o += need + 1;
            i += need + 1;
        } else {
            memcpy(d + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        }
    }
    d[o] = 0;
    return d;
}

static cJSON *add_text(cJSON *o, const char *key, const char *s) {
    if (!s) return cJSON_AddNullToObject(o, key);
    char *v = utf8_valid(s);
    if (!v) return NULL;
    cJSON *r = cJSON_AddStringToObject(o, key, v);
    free(v);
    return r;
}

static cJSON *add_num(cJSON *o, const char *key, double v) {
    return isfinite(v) ? cJSON_AddNumberToObject(o, key, v) : cJSON_AddNullToObject(o, key);
}

/* The memory's decision on a question, for the outputs file. */
static int add_route(cJSON *o, const ans_route *r) {
    cJSON *ro = cJSON_AddObjectToObject(o, "route");
    if (!ro) return 0;
    int ok = 1;
    ok &= (r->best >= 0 ? cJSON_AddNumberToObject(ro, "best", r->best) : cJSON_AddNullToObject(ro, "best")) != NULL;
    ok &= add_num(ro, "score", r->score) != NULL;
    ok &= add_num(ro, "second", r->second) != NULL;
    ok &= add_num(ro, "rival", r->rival) != NULL;
    ok &= add_num(ro, "margin", r->margin) != NULL;
    ok &= add_num(ro, "gate", r->gate) != NULL;
    ok &= add_num(ro, "cover", r->cover) != NULL;
    ok &= add_num(ro, "verify", r->verify) != NULL;
    ok &= (r->subject >= 0 ? cJSON_AddBoolToObject(ro, "subject", r->subject) : cJSON_AddNullToObject(ro, "subject")) != NULL;
    ok &= (r->fact >= 0 ? cJSON_AddNumberToObject(ro, "fact", r->fact) : cJSON_AddNullToObject(ro, "fact")) != NULL;
    return ok;
}

/* One line of the outputs file (the fields of the format above). */
typedef struct out_line {
    int fact;                     /* < 0: null */
    int line;
    const char *kind;
    const char *detail_key;       /* "variant" / "context", or NULL */
    const char *detail;
    const char *question, *system;
    const char *answer, *base;    /* base: NULL but for neighbours */
    int exact;
    int other;                    /* the other fact answered, < 0: none */
    const ans_route *route;       /* the decision with the memory (NULL or undecided: not written) */
} out_line;

static int record(evalr *e, const out_line *l) {
    if (!e->out || e->mode == EVAL_COLLECT) return MOME_OK;
    cJSON *o = cJSON_CreateObject();
    if (!o) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    int ok = 1;
    ok &= (l->fact >= 0 ? cJSON_AddNumberToObject(o, "fact", l->fact) : cJSON_AddNullToObject(o, "fact")) != NULL;
    ok &= cJSON_AddNumberToObject(o, "line", l->line) != NULL;
    ok &= cJSON_AddStringToObject(o, "kind", l->kind) != NULL;
    if (l->detail_key) ok &= cJSON_AddStringToObject(o, l->detail_key, l->detail) != NULL;
    ok &= add_text(o, "question", l->question) != NULL;
    ok &= add_text(o, "system", l->system) != NULL;
    ok &= add_text(o, "answer", l->answer) != NULL;
    ok &= add_text(o, "base", l->base) != NULL;
    ok &= cJSON_AddBoolToObject(o, "exact", l->exact) != NULL;
    if (l->other >= 0) ok &= cJSON_AddNumberToObject(o, "other_fact", l->other) != NULL;
    if (l->route && l->route->decided) ok &= add_route(o, l->route);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!s) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    int w = fputs(s, e->out) >= 0 && fputc('\n', e->out) != EOF;
    free(s);
    if (!w) return mome_seterr_code(MOME_ERR_IO, "%s: write error: %s", e->p->outputs_path, strerror(errno));
    return MOME_OK;
}

/* Ask a question with the fact's scoring; counts into *n / *n_exact. */
static int ask_scored(evalr *e, const fact *f, int idx, const char *kind, const char *dkey, const char *dval,
                      const char *system, int exchange, const char *question, int32_t *n, int32_t *n_exact) {
    char *out;
    ans_route rt;
    int rc = ask(e, 0, system, exchange, question, &out, &rt);
    if (rc) return rc;
    int ex = facts_answer_matches(f, out);
    const int other = count_swap(e, idx, out, ex);
    (*n)++;
    *n_exact += ex;
    rc = record(e, &(out_line){.fact = idx, .line = f->line, .kind = kind, .detail_key = dkey, .detail = dval,
                               .question = question, .system = system, .answer = out, .exact = ex, .other = other,
                               .route = &rt});
    free(out);
    return rc;
}

/* A neighbour question: asked with and without the memory. */
static int ask_neighbor(evalr *e, int idx, int line, const char *system, const char *question) {
    char *with, *without;
    ans_route rt;
    int rc = ask(e, 0, system, 0, question, &with, &rt);
    if (rc) return rc;
    if ((rc = ask(e, 1, system, 0, question, &without, NULL))) {
        free(with);
        return rc;
    }
    int same = strcmp(with, without) == 0;
    e->r->n_neighbors++;
    e->r->n_neighbors_same += same;
    rc = record(e, &(out_line){.fact = idx, .line = line, .kind = "neighbor", .question = question, .system = system,
                               .answer = with, .base = without, .exact = same, .other = -1, .route = &rt});
    free(with);
    free(without);
    return rc;
}

static int eval_fact(evalr *e, const fact *f, int i, int n) {
    const mome_eval_params *p = e->p;
    mome_eval_result *r = e->r;
    char *out;
    ans_route rt;
    int rc = ask(e, 0, f->system, 0, f->question, &out, &rt);
    if (rc) return rc;
    int ex = facts_answer_matches(f, out), co = facts_answer_contained(f, out);
    int ab = !co && facts_is_abstention(out);
    const int other = count_swap(e, i, out, ex);
    r->n_facts++;
    r->n_exact += ex;
    r->n_contains += co;
    r->n_abstain += ab;
    r->n_hallucinated += !co && !ab;
    if (p->on_fact && e->mode != EVAL_COLLECT) p->on_fact(i, n, f->question, out, ex, co, ab, p->user);
    rc = record(e, &(out_line){.fact = i, .line = f->line, .kind = "recall", .question = f->question, .system = f->system,
                               .answer = out, .exact = ex, .other = other, .route = &rt});
    free(out);
    if (rc) return rc;
    for (int j = 0; j < f->n_paraphrases; j++)
        if ((rc = ask_scored(e, f, i, "paraphrase", NULL, NULL, f->system, 0, f->paraphrases[j], &r->n_paraphrases,
                             &r->n_paraphrase_exact)))
            return rc;
    if (!p->no_variants) {
        char *v[EVAL_N_VARIANTS];
        const char *kinds[EVAL_N_VARIANTS];
        int nv = eval_variants(f->question, v, kinds);
        if (nv < 0) return nv;
        for (int j = 0; j < nv && !rc; j++)
            rc = ask_scored(e, f, i, "variant", "variant", kinds[j], f->system, 0, v[j], &r->n_variants,
                            &r->n_variant_exact);
        for (int j = 0; j < nv; j++) free(v[j]);
        if (rc) return rc;
    }
    if (!p->no_context) {
        for (int j = 0; j < eval_n_builtin_systems + p->n_systems; j++) {
            const char *s = j < eval_n_builtin_systems ? eval_builtin_systems[j] : p->systems[j - eval_n_builtin_systems];
            if ((rc = ask_scored(e, f, i, "context", "context", "system", s, 0, f->question, &r->n_context,
                                 &r->n_context_exact)))
                return rc;
        }
        if ((rc = ask_scored(e, f, i, "context", "context", "exchange", f->system, 1, f->question, &r->n_context,
                             &r->n_context_exact)))
            return rc;
    }
    if (e->mem)
        for (int j = 0; j < f->n_neighbors; j++)
            if ((rc = ask_neighbor(e, i, f->line, f->system, f->neighbors[j]))) return rc;
    return MOME_OK;
}

/* Every measure over the first n facts and the neighbour file. */
static int eval_pass(evalr *e, const fact_set *fs, int n, const fact_set *nb) {
    int rc = MOME_OK;
    for (int i = 0; i < n && !rc; i++) rc = eval_fact(e, &fs->v[i], i, n);
    for (int i = 0; nb && i < nb->n && !rc; i++) rc = ask_neighbor(e, -1, nb->v[i].line, nb->v[i].system, nb->v[i].question);
    return rc;
}

/* The recorded conversations answered par at a time: those with the memory
 * on par contexts with it, those without on par contexts without it. */
static int answer_jobs(evalr *e, int par) {
    int rc = MOME_OK;
    for (int base = 0; base <= 1 && !rc; base++) {
        int nq = 0;
        for (int i = 0; i < e->n_jobs; i++) nq += e->jobs[i].base == base;
        if (nq == 0) continue;
        const int nc = nq < par ? nq : par;
        ans_question *qs = mome_malloc((size_t)nq * sizeof *qs);
        char **texts = mome_calloc((size_t)nq, sizeof *texts);
        ans_route *routes = mome_calloc((size_t)nq, sizeof *routes);
        mome_ctx **cs = mome_calloc((size_t)nc, sizeof *cs);
        if (!qs || !texts || !routes || !cs) rc = MOME_ERR_NOMEM;
        for (int k = 0; k < nc && !rc; k++) {
            if ((rc = mome_ctx_init(e->m, e->cp, &cs[k]))) break;
            if (!base && e->mem) rc = mome_ctx_set_memory(cs[k], e->mem);
        }
        if (!rc) {
            int q = 0;
            for (int i = 0; i < e->n_jobs; i++)
                if (e->jobs[i].base == base) qs[q++] = (ans_question){e->jobs[i].msgs, e->jobs[i].n};
            rc = ans_greedy_batch(e->m, cs, nc, qs, nq, e->p->max_new_tokens, texts, NULL, NULL, routes, e->p->on_progress,
                                  e->p->user);
        }
        if (!rc) {
            int q = 0;
            for (int i = 0; i < e->n_jobs; i++)
                if (e->jobs[i].base == base) e->jobs[i].route = routes[q], e->jobs[i].answer = texts[q++];
        }
        for (int k = 0; cs && k < nc; k++) mome_ctx_free(cs[k]);
        free(qs); free(texts); free(routes); free(cs);
    }
    return rc;
}

static int eval_facts(evalr *e) {
    const mome_eval_params *p = e->p;
    mome_eval_result *r = e->r;
    fact_set *fs = NULL, *nb = NULL;
    int rc = MOME_OK;
    if (p->facts_path && (rc = facts_load(p->facts_path, (enum facts_conflict)p->on_conflict, &fs))) return rc;
    /* the neighbour file's answers are ignored: conflicts there do not matter */
    if (p->neighbors_path && e->mem && (rc = facts_load(p->neighbors_path, FACTS_CONFLICT_FIRST, &nb))) goto out;
    if ((rc = index_answers(e, fs))) goto out;
    int n = fs ? fs->n : 0;
    if (p->max_facts > 0 && p->max_facts < n) n = (int)p->max_facts;
    const int par = p->n_parallel > 0 ? p->n_parallel : EVAL_PARALLEL;
    if (par > 1) {
        /* collect the questions with a scratch result, answer them in
         * batches, then measure on the answers */
        mome_eval_result scratch = *r;
        e->r = &scratch;
        e->mode = EVAL_COLLECT;
        rc = eval_pass(e, fs, n, nb);
        e->r = r;
        if (!rc) rc = answer_jobs(e, par);
        e->mode = EVAL_REPLAY;
    }
    if (!rc) rc = eval_pass(e, fs, n, nb);
    if (rc) goto out;
    if (fs) {
        r->recall = r->n_facts ? (double)r->n_exact / r->n_facts : 0;
        r->contains_recall = r->n_facts ? (double)r->n_contains / r->n_facts : 0;
        r->hallucination_rate = r->n_facts ? (double)r->n_hallucinated / r->n_facts : 0;
        r->paraphrase_recall = r->n_paraphrases ? (double)r->n_paraphrase_exact / r->n_paraphrases : -1;
        r->context_recall = r->n_context ? (double)r->n_context_exact / r->n_context : -1;
        r->variant_recall = r->n_variants ? (double)r->n_variant_exact / r->n_variants : -1;
        r->swap_rate = r->n_scored ? (double)r->n_swapped / r->n_scored : -1;
    }
    r->locality = r->n_neighbors ? (double)r->n_neighbors_same / r->n_neighbors : -1;
out:
    facts_free(fs);
    facts_free(nb);
    return rc;
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
    if (!r) return mome_seterr_code(MOME_ERR_ARG, "mome_eval: result is NULL");
    memset(r, 0, sizeof *r);
    r->recall = r->contains_recall = r->hallucination_rate = r->paraphrase_recall = r->perplexity = -1;
    r->context_recall = r->variant_recall = r->locality = r->swap_rate = -1;
    if (!m || !p) return mome_seterr_code(MOME_ERR_ARG, "mome_eval: model or params is NULL");
    if (p->n_systems < 0 || (p->n_systems > 0 && !p->systems))
        return mome_seterr_code(MOME_ERR_ARG, "mome_eval: bad system prompt list");
    for (int i = 0; i < p->n_systems; i++)
        if (!p->systems[i]) return mome_seterr_code(MOME_ERR_ARG, "mome_eval: system prompt %d is NULL", i);
    if (p->max_new_tokens < 1) return mome_seterr_code(MOME_ERR_ARG, "mome_eval: max_new_tokens must be >= 1");
    double t0 = mome_time_s();
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 1024;
    if (p->ppl_ctx > 0 && p->ppl_ctx > cp.n_ctx) cp.n_ctx = p->ppl_ctx;
    cp.n_batch = 512;
    cp.n_threads = p->n_threads;
    evalr e = {0};
    e.m = m;
    e.mem = mem;
    e.cp = &cp;
    e.p = p;
    e.r = r;
    int rc = mome_ctx_init(m, &cp, &e.c);
    if (rc) return rc;
    if (mem && (rc = mome_ctx_set_memory(e.c, mem))) goto out;
    if (p->outputs_path && (p->facts_path || (p->neighbors_path && mem))) {
        e.out = fopen(p->outputs_path, "w");
        if (!e.out) {
            rc = mome_seterr_code(MOME_ERR_IO, "%s: cannot write the outputs file: %s", p->outputs_path,
                                  strerror(errno));
            goto out;
        }
    }
    if ((p->facts_path || (p->neighbors_path && mem)) && (rc = eval_facts(&e))) goto out;
    if (p->text_path && (rc = eval_ppl(m, e.c, p, r))) goto out;
out:
    if (e.out) {
        int bad = ferror(e.out);
        if (fclose(e.out) != 0 || bad)
            if (rc == MOME_OK)
                rc = mome_seterr_code(MOME_ERR_IO, "%s: write error: %s", p->outputs_path, strerror(errno));
    }
    mome_ctx_free(e.c);
    if (e.c0) mome_ctx_free(e.c0);
    for (int i = 0; i < e.n_jobs; i++) {
        for (int k = 0; k < e.jobs[i].n; k++) free(e.jobs[i].text[k]);
        free(e.jobs[i].answer);
    }
    free(e.jobs);
    for (int i = 0; i < e.n_answers; i++) free(e.answers[i].text);
    free(e.answers);
    if (rc == MOME_OK) r->seconds = mome_time_s() - t0;
    return rc;
}
