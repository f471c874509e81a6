/* exp_capacity.c - `mome experiment capacity` (issue 11, experiment 3): how
 * many random facts one memory holds, and where recall or locality starts to
 * break.
 *
 * The facts are random keys to random answers: "What is the code of the
 * <w1> <w2>?" with two random pseudo-words (consonant-vowel syllables) ->
 * a random [A-Z0-9] string, seeded. One template for every fact is the hard
 * case for selection (centring removes what the questions share, so only the
 * two words tell them apart), and untrained questions of the same form
 * ("look-alikes") are the neighbours most likely to be taken for a fact.
 *
 * The issue asks for "expert counts N and selections k". Memory version 2
 * has neither as a free setting: every fact owns one expert per answer row
 * (so N is the facts' answer rows, which grow with the facts), and each
 * question selects one fact, the best by key score s_f = w_pool cos(pool) +
 * (1 - w_pool) cos(last) if s_f >= tau. What can vary is how that one fact
 * is selected; the settings here are w_pool (which key decides: both, the
 * pooled question only, the last-token state only) and the threshold tau.
 *
 * Per size n (nested: the first n facts of one seeded list; a fresh memory
 * per size, default tuner settings): tuning time, steps, experts, file size;
 * mome_eval (the measures of `mome eval`) with the memory as tuned: recall,
 * locality on look-alikes and on real questions (NQ-open), perplexity; and a
 * selection sweep: for each setting of w_pool, every trained question and
 * every neighbour is read up to its decision row with tau = -1 and the best
 * fact and its score are recorded. Since the answer depends only on which
 * fact is selected (the values were verified by greedy decoding), a trained
 * question whose own fact is selected at tau is recalled, and a neighbour
 * with no fact selected is answered bit for bit as without the memory; so
 * recall and locality for any (w_pool, tau) follow from these rows, and the
 * default setting's are checked against mome_eval's.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exp_util.h"
#include "experiment.h"
#include "facts.h"
#include "memory.h"
#include "mome.h"
#include "util.h"

/* The fast version: sizes CAP_SIZES, CAP_NEIGHBOURS look-alikes and as many
 * NQ questions as neighbours. */
#define CAP_SIZES "16,32,64"
#define CAP_NEIGHBOURS 30
#define CAP_MAX_SIZES 16
#define CAP_MAX_W 8

static void cap_word(uint64_t *s, char *w) {
    static const char cons[] = "bdfgklmnprstvz", vow[] = "aeiou";
    const int syl = 2 + (int)(exp_rand(s) % 2);
    int k = 0;
    for (int i = 0; i < syl; i++) {
        w[k++] = cons[exp_rand(s) % (sizeof cons - 1)];
        w[k++] = vow[exp_rand(s) % (sizeof vow - 1)];
    }
    w[k] = 0;
}

typedef struct cap_fact {
    char q[64], a[40];
} cap_fact;

/* n distinct random questions (the first n_facts get answers of len chars). */
static cap_fact *cap_generate(int n, int len, uint64_t seed) {
    cap_fact *v = calloc((size_t)n, sizeof *v);
    if (!v) return NULL;
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        for (;;) {
            char w1[8], w2[8];
            cap_word(&s, w1);
            cap_word(&s, w2);
            snprintf(v[i].q, sizeof v[i].q, "What is the code of the %s %s?", w1, w2);
            int dup = 0;
            for (int j = 0; j < i && !dup; j++) dup = !strcmp(v[i].q, v[j].q);
            if (!dup) break;
        }
        static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        for (int k = 0; k < len; k++) v[i].a[k] = al[exp_rand(&s) % (sizeof al - 1)];
        v[i].a[len] = 0;
    }
    return v;
}

static int cap_write_facts(const char *path, const cap_fact *v, int i0, int i1) {
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    for (int i = i0; i < i1; i++) fprintf(f, "{\"question\": \"%s\", \"answer\": \"%s\"}\n", v[i].q, v[i].a);
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

/* The question texts of a facts file (JSON lines, "question" keys), as the
 * fact reader reads them. */
static int cap_questions(const char *path, char ***out, int *n) {
    fact_set *fs;
    if (facts_load(path, FACTS_CONFLICT_FIRST, &fs)) return exp_fail("%s", mome_errmsg());
    char **q = calloc((size_t)fs->n + 1, sizeof *q);
    for (int i = 0; q && i < fs->n; i++) q[i] = strdup(fs->v[i].question);
    *n = fs->n;
    facts_free(fs);
    *out = q;
    return q ? 0 : exp_fail("out of memory");
}

/* Reads each question up to its decision row with the memory's threshold at
 * -1 (the best fact is always reported) and records the best fact and its
 * score. */
static int cap_select(mome_model *m, mome_ctx *c, char *const *qs, int n, int32_t *best, float *score) {
    for (int i = 0; i < n; i++) {
        mome_chat_msg msg = {"user", qs[i]};
        char *text = mome_chat_format(m, &msg, 1, 1);
        if (!text) return exp_fail("chat template: %s", mome_errmsg());
        int32_t *toks = NULL;
        const int P = mome_tokenize_alloc(m, text, 1, 1, &toks);
        free(text);
        if (P < 2) {
            free(toks);
            return exp_fail("tokenize: %s", mome_errmsg());
        }
        const int k = mome_ctx_shared_prefix(c, toks, P);
        const int rc = mome_decode(c, toks + k, P - k, k, 0);
        free(toks);
        if (rc) return exp_fail("decode: %s", mome_errmsg());
        int32_t pos, f;
        float s;
        if (!mome_ctx_memory_decision(c, &pos, &f, &s)) return exp_fail("no decision row in '%s'", qs[i]);
        best[i] = f;
        score[i] = s;
    }
    return 0;
}

typedef struct cap_size {
    int n, memorized, n_experts;
    int64_t steps;
    double tune_s, recall, loc_look, loc_real, ppl;
    long long bytes;
    int n_look, n_real;
} cap_size;

typedef struct cap_sel {
    double recall, loc_look, loc_real;  /* at the memory's tau */
    double own_min, own_p05, look_max, look_p95, real_max;
} cap_sel;

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static double cap_quantile(float *v, int n, double q) {
    if (n < 1) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_float);
    int i = (int)floor(q * (n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static int cap_write_plot(const char *dir, const double *w, int n_w, const int *sizes, int n_sizes) {
    FILE *f = exp_open_plot(dir, "capacity", "capacity.svg", 1260, 560);
    if (!f) return 1;
    fprintf(f,
            "set grid\n"
            "set logscale x\n"
            "set xrange [%g:%g]\n"
            "set xlabel 'random facts in the memory'\n",
            sizes[0] / 1.4, sizes[n_sizes - 1] * 1.4);
    fprintf(f, "set xtics (");
    for (int i = 0; i < n_sizes; i++) fprintf(f, "%s%d", i ? ", " : "", sizes[i]);
    fprintf(f, ")\n"
            "set multiplot layout 1,3 title 'Capacity: random keys -> random answers, one memory per size'\n"
            "set key below box\n"
            "set yrange [0:1.05]\n"
            "set ylabel 'share (mome eval, default selection)'\n"
            "plot 'sizes.csv' using 1:6 with linespoints lw 2 pt 7 title 'recall', \\\n"
            "     '' using 1:7 with linespoints lw 2 pt 5 title 'locality, look-alikes', \\\n"
            "     '' using 1:8 with linespoints lw 2 pt 9 title 'locality, NQ questions'\n"
            "set ylabel 'share (selection at tau, by key weight w)'\n"
            "plot ");
    for (int i = 0; i < n_w; i++)
        fprintf(f, "%s'selection.csv' skip 1 every %d::%d using 1:4 with linespoints lw 2 pt 7 lc %d title 'recall, w=%g', \\\n"
                   "     '' skip 1 every %d::%d using 1:5 with linespoints lw 2 dt 2 pt 5 lc %d title 'look-alike locality, w=%g'",
                i ? ", \\\n     " : "", n_w, i, i + 1, w[i], n_w, i, i + 1, w[i]);
    fprintf(f, "\n"
               "set autoscale y\n"
               "set yrange [0:*]\n"
               "set ylabel 'tuning: seconds, steps'\n"
               "set y2label 'KiB'\n"
               "set y2tics\n"
               "set y2range [0:*]\n"
               "plot 'sizes.csv' using 1:4 with linespoints lw 2 pt 7 title 'tuning time (s)', \\\n"
               "     '' using 1:3 with linespoints lw 2 pt 9 title 'tuning steps', \\\n"
               "     '' using 1:($11/1024) axes x1y2 with linespoints lw 2 pt 5 title 'memory file (KiB, right)'\n"
               "unset multiplot\n");
    return fclose(f) ? exp_fail("%s/plot.gp: write error", dir) : 0;
}

/* One run of the experiment: its settings, what every size reads, and the
 * results per size that the tables and the summary are written from. */
enum { N_TAU = 41 }; /* thresholds 0, 0.025, .., 1 of the tau sweep */
typedef struct cap_exp {
    exp_common o;
    const char *real_src, *sizes_s, *w_s;
    int n_look, n_real, ans_len, full, ppl_all, max_new, replot;
    int sizes[CAP_MAX_SIZES], n_sizes, n_w;
    double w[CAP_MAX_W];
    char def_real[4096], work[3100], look_path[3200], real_path[3200];
    cap_fact *facts;                     /* the largest size's facts, then the look-alikes */
    char **fact_q, **look_q, **real_q;   /* the questions each size reads */
    int nl, nr;
    mome_model *m;
    FILE *csv;                           /* results.csv, every question's selection */
    double ppl_base;                     /* held-out perplexity without a memory */
    float tau;                           /* the memory's threshold, as tuned */
    int n_done;                          /* sizes measured */
    cap_size sz[CAP_MAX_SIZES];
    cap_sel sel[CAP_MAX_SIZES][CAP_MAX_W];
    double tau_rec[CAP_MAX_SIZES][N_TAU], tau_look[CAP_MAX_SIZES][N_TAU]; /* at the first w */
} cap_exp;

/* The options and their checks: -1 to go on, else the exit status. */
static int cap_parse(cap_exp *x, int argc, char **argv) {
    exp_common_init(&x->o, "capacity", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED | EXP_OPT_TEXT);
    snprintf(x->def_real, sizeof x->def_real, "%s/data/facts/NQ-open.dev.jsonl", exp_shared_dir());
    x->real_src = x->def_real, x->sizes_s = CAP_SIZES, x->w_s = "0.7,1,0";
    x->n_look = CAP_NEIGHBOURS, x->n_real = CAP_NEIGHBOURS, x->ans_len = 6, x->max_new = 24;
    const arg_opt opts[] = {
        {0, "--sizes", "LIST", ARG_STR(&x->sizes_s), .help = "increasing fact counts; the default runs the fast version"},
        {0, "--full", NULL, ARG_FLAG(&x->full),
         .help = "sizes 100,300,1000,3000 and perplexity at every size: the full version, budget 3 hours on 2 cores "
                 "(the summary gives its wall time)"},
        {0, "--w-pool", "LIST", ARG_STR(&x->w_s), .help = "pooled-key weights of the selection sweep"},
        {0, "--answer-chars", "N", ARG_INT(&x->ans_len, 0, 0), .help = "random answer length"},
        {0, "--look-alikes", "N", ARG_INT(&x->n_look, 0, 0),
         .help = "untrained questions of the same form asked as neighbours"},
        {0, "--real", "FILE", ARG_STR(&x->real_src), .help = "real neighbour questions"},
        {0, "--n-real", "N", ARG_INT(&x->n_real, 0, 0), .help = "its first N questions"},
        {0, "--ppl-all", NULL, ARG_FLAG(&x->ppl_all), .help = "perplexity at every size",
         .def = "without a memory and the largest"},
        {0, "--replot", NULL, ARG_FLAG(&x->replot),
         .help = "only rewrite plot.gp and redraw from the CSVs already in -o DIR (with the run's --sizes and "
                 "--w-pool)"},
    };
    const int prc = exp_parse_args(&x->o,
                                   "How many random facts (\"What is the code of the <word> <word>?\" -> a random [A-Z0-9]\n"
                                   "string, seeded) one memory holds. Per size: a fresh memory tuned with the default settings\n"
                                   "(tuning time, steps, experts, file size), mome eval's recall, locality on untrained look-alike\n"
                                   "questions and on real questions, perplexity; and which fact each question selects, with its\n"
                                   "score, for each --w-pool setting (memory version 2 selects one fact per question; its\n"
                                   "expert count is the facts' answer rows, so the selection rule is what varies).\n"
                                   "Writes results.csv (every question's selection), sizes.csv, selection.csv, tau.csv, plot.gp,\n"
                                   "capacity.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    if (x->full) {
        x->sizes_s = "100,300,1000,3000";
        x->ppl_all = 1;
    }
    double sz_d[CAP_MAX_SIZES];
    x->n_sizes = exp_parse_list(x->sizes_s, sz_d, CAP_MAX_SIZES);
    x->n_w = exp_parse_list(x->w_s, x->w, CAP_MAX_W);
    for (int i = 0; i < x->n_sizes; i++) {
        x->sizes[i] = (int)sz_d[i];
        if (sz_d[i] != x->sizes[i] || x->sizes[i] < 1 || x->sizes[i] > 100000 || (i && x->sizes[i] <= x->sizes[i - 1])) {
            exp_fail("capacity: --sizes expects increasing positive integers up to 100000, got '%s'", x->sizes_s);
            return 2;
        }
    }
    if (x->n_sizes < 1) {
        exp_fail("capacity: --sizes expects increasing positive integers, got '%s'", x->sizes_s);
        return 2;
    }
    if (x->n_w < 1) {
        exp_fail("capacity: --w-pool expects up to %d numbers in [0, 1], got '%s'", CAP_MAX_W, x->w_s);
        return 2;
    }
    for (int i = 0; i < x->n_w; i++)
        if (!(x->w[i] >= 0 && x->w[i] <= 1)) {
            exp_fail("capacity: --w-pool values must lie in [0, 1], got '%s'", x->w_s);
            return 2;
        }
    if (x->n_look < 1 || x->n_real < 1 || x->ans_len < 1 || x->ans_len > 32) {
        exp_fail("capacity: --look-alikes and --n-real must be positive, --answer-chars 1..32");
        return 2;
    }
    return -1;
}

/* What every size reads: the random facts and look-alikes, the real
 * questions, the model, results.csv, and the perplexity without a memory. */
static int cap_prepare(cap_exp *x) {
    if (access(x->real_src, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", x->real_src, strerror(errno));
    snprintf(x->work, sizeof x->work, "%s/work", x->o.dir);
    if (exp_mkdir_p(x->work)) return exp_fail("%s: %s", x->work, strerror(errno));
    const int n_max = x->sizes[x->n_sizes - 1];
    x->facts = cap_generate(n_max + x->n_look, x->ans_len, (uint64_t)x->o.seed ^ 0xca9ac17eULL);
    if (!x->facts) return exp_fail("out of memory");
    snprintf(x->look_path, sizeof x->look_path, "%s/look_alikes.jsonl", x->o.dir);
    snprintf(x->real_path, sizeof x->real_path, "%s/real_questions.jsonl", x->o.dir);
    int got, rc = cap_write_facts(x->look_path, x->facts, n_max, n_max + x->n_look);
    if (!rc) rc = exp_copy_first_lines(x->real_src, x->real_path, x->n_real, &got);
    if (!rc) rc = cap_questions(x->look_path, &x->look_q, &x->nl);
    if (!rc) rc = cap_questions(x->real_path, &x->real_q, &x->nr);
    if (!rc && !(x->fact_q = calloc((size_t)n_max, sizeof *x->fact_q))) rc = exp_fail("out of memory");
    for (int i = 0; !rc && i < n_max; i++) x->fact_q[i] = x->facts[i].q;
    if (!rc) rc = exp_load_model(&x->o, &x->m);
    char path[3200];
    snprintf(path, sizeof path, "%s/results.csv", x->o.dir);
    if (!rc && !(x->csv = fopen(path, "w"))) rc = exp_fail("%s: %s", path, strerror(errno));
    if (rc) return rc;
    fprintf(x->csv, "n_facts,w_pool,kind,question,best_fact,score,own\n");
    return exp_base_perplexity(&x->o, x->m, &x->ppl_base);
}

/* Size si: a fresh memory for its first n facts (tuning time, steps,
 * experts, file size) into *mem. */
static int cap_tune(cap_exp *x, int si, mome_memory **mem) {
    cap_size *z = &x->sz[si];
    const int n = z->n = x->sizes[si];
    char fpath[3300], mpath[3300], ck[3400];
    snprintf(fpath, sizeof fpath, "%s/facts_%d.jsonl", x->work, n);
    snprintf(mpath, sizeof mpath, "%s/memory_%d.mome", x->work, n);
    snprintf(ck, sizeof ck, "%s.ckpt", mpath);
    unlink(ck);
    int rc = cap_write_facts(fpath, x->facts, 0, n);
    if (rc) return rc;
    mome_tune_params tp = exp_tune_params();
    tp.facts_path = fpath;
    tp.out_path = mpath;
    tp.n_threads = x->o.threads;
    tp.seed = (uint64_t)x->o.seed;
    tp.checkpoint_s = 0;
    fprintf(stderr, "experiment: capacity: tuning %d random facts\n", n);
    mome_tune_report rep;
    if (mome_tune(x->m, &tp, &rep)) return exp_fail("tune: %s", mome_errmsg());
    z->memorized = rep.n_memorized;
    z->steps = rep.steps;
    z->tune_s = rep.seconds;
    z->n_experts = (int)rep.n_trained_experts;
    struct stat sb;
    z->bytes = stat(mpath, &sb) ? -1 : (long long)sb.st_size;
    if (mome_memory_load(mpath, x->m, mem)) return exp_fail("%s", mome_errmsg());
    x->tau = (*mem)->tau;
    fprintf(stderr, "experiment: capacity: %d facts: %d memorized in %lld steps, %.1f s; evaluating\n", n,
            rep.n_memorized, (long long)rep.steps, rep.seconds);
    return 0;
}

/* mome eval's measures with the memory as tuned: recall and look-alike
 * locality, then real-question locality and (where asked) perplexity. */
static int cap_measure(cap_exp *x, int si, mome_memory *mem) {
    cap_size *z = &x->sz[si];
    char fpath[3300];
    snprintf(fpath, sizeof fpath, "%s/facts_%d.jsonl", x->work, z->n);
    mome_eval_params ep = mome_eval_default_params();
    ep.facts_path = fpath;
    ep.neighbors_path = x->look_path;
    ep.max_new_tokens = x->max_new;
    ep.n_threads = x->o.threads;
    ep.no_context = 1;
    ep.no_variants = 1;
    mome_eval_result er;
    if (mome_eval(x->m, mem, &ep, &er)) return exp_fail("eval: %s", mome_errmsg());
    z->recall = er.recall;
    z->loc_look = er.locality;
    z->n_look = er.n_neighbors;
    const int do_ppl = x->ppl_all || si == x->n_sizes - 1;
    ep = mome_eval_default_params();
    ep.neighbors_path = x->real_path;
    ep.text_path = do_ppl ? x->o.text : NULL;
    ep.text_max_bytes = x->o.text_bytes;
    ep.max_new_tokens = x->max_new;
    ep.n_threads = x->o.threads;
    const int rc = mome_eval(x->m, mem, &ep, &er) ? exp_fail("eval: %s", mome_errmsg()) : 0;
    z->loc_real = er.locality;
    z->n_real = er.n_neighbors;
    z->ppl = do_ppl ? er.perplexity : -1;
    return rc;
}

/* The figures of one w_pool setting from every question's best fact and
 * score (n trained, then nl look-alikes, then nr real): results.csv rows,
 * sel, and at the first setting the tau sweep. */
static void cap_tally(cap_exp *x, int si, int wi, const int32_t *best, const float *score, float *tmp) {
    const int n = x->sz[si].n, nl = x->nl, nr = x->nr;
    const float tau = x->tau;
    cap_sel *s = &x->sel[si][wi];
    int ok = 0, look_ok = 0, real_ok = 0;
    for (int i = 0; i < n + nl + nr; i++) {
        const char *kind = i < n ? "trained" : i < n + nl ? "look-alike" : "real";
        const int own = i < n && best[i] == i;
        fprintf(x->csv, "%d,%g,%s,", n, x->w[wi], kind);
        exp_csv_str(x->csv, i < n ? x->fact_q[i] : i < n + nl ? x->look_q[i - n] : x->real_q[i - n - nl]);
        fprintf(x->csv, ",%d,%.6f,%d\n", best[i], score[i], own);
        if (i < n) ok += own && score[i] >= tau;
        else if (i < n + nl) look_ok += score[i] < tau;
        else real_ok += score[i] < tau;
    }
    s->recall = (double)ok / n;
    s->loc_look = (double)look_ok / nl;
    s->loc_real = (double)real_ok / nr;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (best[i] == i) tmp[k++] = score[i];
    s->own_min = k ? cap_quantile(tmp, k, 0) : NAN;
    s->own_p05 = k ? cap_quantile(tmp, k, 0.05) : NAN;
    memcpy(tmp, score + n, (size_t)nl * sizeof *tmp);
    s->look_p95 = cap_quantile(tmp, nl, 0.95);
    s->look_max = cap_quantile(tmp, nl, 1);
    memcpy(tmp, score + n + nl, (size_t)nr * sizeof *tmp);
    s->real_max = cap_quantile(tmp, nr, 1);
    if (wi != 0) return;
    for (int ti = 0; ti < N_TAU; ti++) {
        const double t = ti / (double)(N_TAU - 1);
        int a = 0, b = 0;
        for (int i = 0; i < n; i++) a += best[i] == i && score[i] >= t;
        for (int i = n; i < n + nl; i++) b += score[i] < t;
        x->tau_rec[si][ti] = (double)a / n;
        x->tau_look[si][ti] = (double)b / nl;
    }
}

/* The selection sweep of size si: for each w_pool, which fact every
 * question selects at tau -1, and its score (the memory's routing is put
 * back after). */
static int cap_sweep(cap_exp *x, int si, mome_memory *mem) {
    const int n = x->sz[si].n, nl = x->nl, nr = x->nr, all = n + nl + nr;
    const float w_mem = mem->w_pool;
    int32_t *best = malloc((size_t)all * sizeof *best);
    float *score = malloc((size_t)all * sizeof *score), *tmp = malloc((size_t)all * sizeof *tmp);
    mome_ctx *c = NULL;
    int rc = best && score && tmp ? 0 : exp_fail("out of memory");
    if (!rc) {
        mome_ctx_params cp = mome_ctx_default_params();
        cp.n_ctx = 256;
        cp.n_batch = 256;
        cp.n_threads = x->o.threads;
        if (mome_ctx_init(x->m, &cp, &c) || mome_ctx_set_memory(c, mem)) rc = exp_fail("%s", mome_errmsg());
    }
    for (int wi = 0; wi < x->n_w && !rc; wi++) {
        fprintf(stderr, "experiment: capacity: %d facts: selection with w_pool %g\n", n, x->w[wi]);
        mome_memory_set_routing(mem, -1.0f, (float)x->w[wi]);
        if (!(rc = cap_select(x->m, c, x->fact_q, n, best, score)) &&
            !(rc = cap_select(x->m, c, x->look_q, nl, best + n, score + n)) &&
            !(rc = cap_select(x->m, c, x->real_q, nr, best + n + nl, score + n + nl)))
            cap_tally(x, si, wi, best, score, tmp);
    }
    mome_memory_set_routing(mem, x->tau, w_mem);
    mome_ctx_free(c);
    free(best);
    free(score);
    free(tmp);
    return rc;
}

/* sizes.csv, selection.csv and tau.csv from the sizes measured. */
static int cap_write_tables(const cap_exp *x) {
    const char *dir = x->o.dir;
    char path[3200];
    snprintf(path, sizeof path, "%s/sizes.csv", dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "n_facts,memorized,steps,tune_s,experts,recall,locality_look_alikes,locality_real,n_look_alikes,"
               "n_real,file_bytes,perplexity\n");
    for (int i = 0; i < x->n_done; i++) {
        const cap_size *z = &x->sz[i];
        fprintf(f, "%d,%d,%lld,%.2f,%d,%.6f,%.6f,%.6f,%d,%d,%lld,", z->n, z->memorized, (long long)z->steps, z->tune_s,
                z->n_experts, z->recall, z->loc_look, z->loc_real, z->n_look, z->n_real, z->bytes);
        if (z->ppl > 0) fprintf(f, "%.6f", z->ppl);
        fputc('\n', f);
    }
    if (fclose(f)) return exp_fail("%s: write error", path);
    snprintf(path, sizeof path, "%s/selection.csv", dir);
    if (!(f = fopen(path, "w"))) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "n_facts,w_pool,tau,recall,locality_look_alikes,locality_real,own_score_min,own_score_p05,"
               "look_alike_score_p95,look_alike_score_max,real_score_max\n");
    for (int i = 0; i < x->n_done; i++)
        for (int j = 0; j < x->n_w; j++) {
            const cap_sel *s = &x->sel[i][j];
            fprintf(f, "%d,%g,%.4f,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f,%.4f,%.4f\n", x->sz[i].n, x->w[j], x->tau, s->recall,
                    s->loc_look, s->loc_real, s->own_min, s->own_p05, s->look_p95, s->look_max, s->real_max);
        }
    if (fclose(f)) return exp_fail("%s: write error", path);
    snprintf(path, sizeof path, "%s/tau.csv", dir);
    if (!(f = fopen(path, "w"))) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "# selection at w_pool %g as the threshold tau varies\nn_facts,tau,recall,locality_look_alikes\n", x->w[0]);
    for (int i = 0; i < x->n_done; i++)
        for (int t = 0; t < N_TAU; t++)
            fprintf(f, "%d,%.3f,%.6f,%.6f\n", x->sz[i].n, t / (double)(N_TAU - 1), x->tau_rec[i][t], x->tau_look[i][t]);
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

/* The summary's "Reading" section: what the data say, computed from them. */
static void cap_write_reading(FILE *f, const cap_exp *x) {
    const int n_done = x->n_done;
    const cap_size *sz = x->sz;
    const double *w = x->w;
    fprintf(f, "\n## Reading (computed from the data)\n\n");
    if (n_done < 1) return;
    const cap_size *a = &sz[0], *b = &sz[n_done - 1];
    int all_mem = 1, first_recall_break = -1, first_look_break = -1, first_real_break = -1;
    for (int i = 0; i < n_done; i++) {
        all_mem &= sz[i].memorized == sz[i].n;
        if (first_recall_break < 0 && sz[i].recall < 1) first_recall_break = i;
        if (first_look_break < 0 && sz[i].loc_look < 0.99) first_look_break = i;
        if (first_real_break < 0 && sz[i].loc_real < 0.99) first_real_break = i;
    }
    fprintf(f, "- Tuning: %s; %.1f s for %d facts and %.1f s for %d (%.2f s per fact at the largest size); the "
               "file grows by %.0f bytes per fact (%lld bytes at %d facts).\n",
            all_mem ? "every size was fully memorized (verified by greedy decoding)"
                    : "at least one size was not fully memorized (see the table)",
            a->tune_s, a->n, b->tune_s, b->n, b->tune_s / b->n,
            n_done > 1 ? (double)(b->bytes - a->bytes) / (b->n - a->n) : (double)a->bytes / a->n, b->bytes, b->n);
    if (first_recall_break < 0)
        fprintf(f, "- Recall (mome eval, default selection) stayed 1.000 up to %d facts: no break within the sizes "
                   "run.\n", b->n);
    else
        fprintf(f, "- Recall first fell below 1 at %d facts (%.3f).\n", sz[first_recall_break].n,
                sz[first_recall_break].recall);
    fprintf(f, "- Locality on untrained look-alike questions (mome eval, default selection):");
    for (int i = 0; i < n_done; i++) fprintf(f, "%s %.3f at %d", i ? "," : "", sz[i].loc_look, sz[i].n);
    if (first_look_break < 0) fprintf(f, " facts: never below 0.99.\n");
    else
        fprintf(f, " facts: below 0.99 from %d facts on, and %s with more facts.\n", sz[first_look_break].n,
                b->loc_look < a->loc_look - 0.02   ? "lower"
                : b->loc_look > a->loc_look + 0.02 ? "higher"
                                                   : "about the same");
    fprintf(f, "- Locality on real (NQ) questions: %.3f at %d facts, %.3f at %d%s.\n", a->loc_real, a->n, b->loc_real,
            b->n, first_real_break < 0 ? " (never below 0.99)" : "");
    /* how the selection rule moves it */
    for (int j = 0; j < x->n_w; j++) {
        const cap_sel *s0 = &x->sel[0][j], *s1 = &x->sel[n_done - 1][j];
        fprintf(f, "- Selection with w_pool %g: recall %.3f -> %.3f and look-alike locality %.3f -> %.3f from %d to "
                   "%d facts; at %d facts the lowest own-fact score is %.3f and the highest look-alike score %.3f "
                   "(%s).\n",
                w[j], s0->recall, s1->recall, s0->loc_look, s1->loc_look, a->n, b->n, b->n, s1->own_min, s1->look_max,
                s1->own_min > s1->look_max ? "separable by some threshold" : "no threshold separates all of them");
    }
    /* the best threshold at the largest size (first w) */
    int bt = 0;
    double bs = -1;
    for (int t = 0; t < N_TAU; t++) {
        const double v = x->tau_rec[n_done - 1][t] + x->tau_look[n_done - 1][t];
        if (v > bs) {
            bs = v;
            bt = t;
        }
    }
    fprintf(f, "- Threshold at w_pool %g, %d facts: tau = %.3f maximises recall + look-alike locality (%.3f + %.3f); "
               "the memory's tau %.2f gives %.3f + %.3f (tau.csv has the curve per size).\n",
            w[0], b->n, bt / (double)(N_TAU - 1), x->tau_rec[n_done - 1][bt], x->tau_look[n_done - 1][bt], x->tau,
            x->sel[n_done - 1][0].recall, x->sel[n_done - 1][0].loc_look);
    int same = 1;
    for (int i = 0; i < n_done; i++)
        if (sz[i].ppl > 0) same &= sz[i].ppl == x->ppl_base;
    fprintf(f, "- Held-out perplexity %s (%.4f without a memory).\n",
            same ? "identical to the model without a memory wherever measured" : "changed (see the table)", x->ppl_base);
    int agree = 1;
    for (int i = 0; i < n_done; i++) {
        int wi = -1;
        for (int j = 0; j < x->n_w; j++)
            if (fabs(w[j] - MEM_DEFAULT_W_POOL) < 1e-6) wi = j;
        if (wi >= 0 && fabs(x->sel[i][wi].recall - sz[i].recall) > 1e-9) agree = 0;
    }
    fprintf(f, "- Check: the selection rows' recall at the default setting %s mome eval's recall at every size.\n",
            agree ? "equals" : "differs from (a selected own fact whose values did not give the answer)");
}

/* summary.md: the run, the setup, the plot, the two tables, the reading. */
static int cap_write_summary(const cap_exp *x, int drew, int argc, char **argv, const exp_run *run) {
    const char *dir = x->o.dir;
    FILE *f = exp_open_summary(dir, "capacity (random facts)", argc, argv, run);
    if (!f) return 1;
    fprintf(f, "- model: %s; facts: \"What is the code of the <w1> <w2>?\" (two random pseudo-words) -> %d random "
               "[A-Z0-9] characters, seed %lld; sizes %s, nested (each the first n of one list), a fresh memory per "
               "size with the tuner's defaults, %d thread(s)\n",
            x->o.model, x->ans_len, (long long)x->o.seed, x->sizes_s, x->o.threads);
    fprintf(f, "- neighbours: %d untrained questions of the same form (look-alikes) and the first %d questions of %s; "
               "locality = answered byte for byte as without the memory (mome_eval); held-out perplexity: the first "
               "%lld bytes of %s, without a memory and %s\n",
            x->nl, x->nr, x->real_src, (long long)x->o.text_bytes, x->o.text,
            x->ppl_all ? "at every size" : "with the largest memory");
    fprintf(f, "- how the issue's N and k map onto memory version 2: there is no expert pool to size and no top-k; "
               "every fact owns one expert per answer row (the experts column: N grows with the facts) and each "
               "question selects one fact (k = 1), the best by s = w_pool cos(pooled key) + (1 - w_pool) cos(last "
               "key) when s >= tau (%.2f). The settings varied are therefore the selection rule: w_pool in {%s} "
               "(selection.csv) and tau (tau.csv, at w_pool %g). A selection row reads the question up to its "
               "decision row with tau at -1 and records the best fact and its score; the answer depends only on the "
               "fact selected, so own fact at s >= tau = recalled, no fact = bit-identical answer\n",
            x->tau, x->w_s, x->w[0]);
    fprintf(f, "- data: `results.csv` (every question's best fact and score per size and w_pool), `sizes.csv`, "
               "`selection.csv`, `tau.csv`\n\n");
    exp_summary_plot(f, drew, "recall and locality against the number of facts, tuning time and file size", "capacity.svg");
    fprintf(f, "| facts | memorized | steps | tune s | experts | recall | locality look-alikes | locality NQ | "
               "file bytes | perplexity |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < x->n_done; i++) {
        const cap_size *z = &x->sz[i];
        char ppl[32] = "";
        if (z->ppl > 0) snprintf(ppl, sizeof ppl, "%.4f", z->ppl);
        fprintf(f, "| %d | %d | %lld | %.1f | %d | %.3f | %.3f | %.3f | %lld | %s |\n", z->n, z->memorized,
                (long long)z->steps, z->tune_s, z->n_experts, z->recall, z->loc_look, z->loc_real, z->bytes, ppl);
    }
    fprintf(f, "\nWithout a memory: perplexity %.4f.\n\nSelection at tau = %.2f by w_pool:\n\n"
               "| facts | w_pool | recall | locality look-alikes | locality NQ | own score min | own p05 | "
               "look-alike p95 | look-alike max | NQ max |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
            x->ppl_base, x->tau);
    for (int i = 0; i < x->n_done; i++)
        for (int j = 0; j < x->n_w; j++) {
            const cap_sel *s = &x->sel[i][j];
            fprintf(f, "| %d | %g | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", x->sz[i].n, x->w[j],
                    s->recall, s->loc_look, s->loc_real, s->own_min, s->own_p05, s->look_p95, s->look_max, s->real_max);
        }
    cap_write_reading(f, x);
    return fclose(f) ? exp_fail("%s/summary.md: write error", dir) : 0;
}

static void cap_free(cap_exp *x) {
    if (x->m) mome_model_free(x->m);
    if (x->csv) fclose(x->csv);
    for (int i = 0; x->look_q && i < x->nl; i++) free(x->look_q[i]);
    for (int i = 0; x->real_q && i < x->nr; i++) free(x->real_q[i]);
    free(x->look_q);
    free(x->real_q);
    free(x->fact_q);
    free(x->facts);
}

int exp_capacity(int argc, char **argv) {
    cap_exp x;
    memset(&x, 0, sizeof x);
    x.ppl_base = -1;
    x.tau = MEM_DEFAULT_TAU;
    int rc = cap_parse(&x, argc, argv);
    if (rc >= 0) return rc;
    if (x.replot) {
        if (strchr(x.o.dir, '\'') || cap_write_plot(x.o.dir, x.w, x.n_w, x.sizes, x.n_sizes)) return 1;
        return exp_run_gnuplot(x.o.dir) ? 0 : 1;
    }
    if ((rc = exp_common_check(&x.o))) return rc;
    exp_run run;
    exp_run_start(&run);
    rc = cap_prepare(&x);
    for (int si = 0; si < x.n_sizes && !rc; si++) {
        mome_memory *mem = NULL;
        rc = cap_tune(&x, si, &mem);
        if (!rc) rc = cap_measure(&x, si, mem);
        if (!rc) rc = cap_sweep(&x, si, mem);
        mome_memory_free(mem);
        if (rc) break;
        x.n_done++;
        fprintf(stderr, "experiment: capacity: %d facts: recall %.3f, locality %.3f (look-alikes) %.3f (real), "
                        "%lld bytes\n",
                x.sz[si].n, x.sz[si].recall, x.sz[si].loc_look, x.sz[si].loc_real, x.sz[si].bytes);
    }
    if (x.csv && fclose(x.csv) && !rc) rc = exp_fail("%s/results.csv: write error", x.o.dir);
    x.csv = NULL;
    if (!rc) rc = cap_write_tables(&x);
    if (!rc) rc = cap_write_plot(x.o.dir, x.w, x.n_w, x.sizes, x.n_done);
    const int drew = rc ? 0 : exp_run_gnuplot(x.o.dir);
    if (!rc) rc = cap_write_summary(&x, drew, argc, argv, &run);
    cap_free(&x);
    if (!rc) fprintf(stderr, "experiment: capacity: wrote %s in %.1f s\n", x.o.dir, mome_time_s() - run.t0);
    return rc ? 1 : 0;
}
