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

int exp_capacity(int argc, char **argv) {
    exp_common o;
    exp_common_init(&o, "capacity", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED | EXP_OPT_TEXT);
    char def_real[4096];
    snprintf(def_real, sizeof def_real, "%s/data/facts/NQ-open.dev.jsonl", exp_shared_dir());
    const char *real_src = def_real, *sizes_s = CAP_SIZES, *w_s = "0.7,1,0";
    int n_look = CAP_NEIGHBOURS, n_real = CAP_NEIGHBOURS, ans_len = 6, full = 0, ppl_all = 0, max_new = 24, replot = 0;
    const arg_opt opts[] = {
        {0, "--sizes", "LIST", ARG_STR(&sizes_s), .help = "increasing fact counts; the default runs the fast version"},
        {0, "--full", NULL, ARG_FLAG(&full),
         .help = "sizes 100,300,1000,3000 and perplexity at every size: the full version, budget 3 hours on 2 cores "
                 "(the summary gives its wall time)"},
        {0, "--w-pool", "LIST", ARG_STR(&w_s), .help = "pooled-key weights of the selection sweep"},
        {0, "--answer-chars", "N", ARG_INT(&ans_len, 0, 0), .help = "random answer length"},
        {0, "--look-alikes", "N", ARG_INT(&n_look, 0, 0),
         .help = "untrained questions of the same form asked as neighbours"},
        {0, "--real", "FILE", ARG_STR(&real_src), .help = "real neighbour questions"},
        {0, "--n-real", "N", ARG_INT(&n_real, 0, 0), .help = "its first N questions"},
        {0, "--ppl-all", NULL, ARG_FLAG(&ppl_all), .help = "perplexity at every size",
         .def = "without a memory and the largest"},
        {0, "--replot", NULL, ARG_FLAG(&replot),
         .help = "only rewrite plot.gp and redraw from the CSVs already in -o DIR (with the run's --sizes and "
                 "--w-pool)"},
    };
    const int prc = exp_parse_args(&o,
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
    if (full) {
        sizes_s = "100,300,1000,3000";
        ppl_all = 1;
    }
    double sz_d[CAP_MAX_SIZES], w[CAP_MAX_W];
    const int n_sizes = exp_parse_list(sizes_s, sz_d, CAP_MAX_SIZES), n_w = exp_parse_list(w_s, w, CAP_MAX_W);
    int sizes[CAP_MAX_SIZES];
    for (int i = 0; i < n_sizes; i++) {
        sizes[i] = (int)sz_d[i];
        if (sz_d[i] != sizes[i] || sizes[i] < 1 || sizes[i] > 100000 || (i && sizes[i] <= sizes[i - 1])) {
            exp_fail("capacity: --sizes expects increasing positive integers up to 100000, got '%s'", sizes_s);
            return 2;
        }
    }
    if (n_sizes < 1) { exp_fail("capacity: --sizes expects increasing positive integers, got '%s'", sizes_s); return 2; }
    if (n_w < 1) { exp_fail("capacity: --w-pool expects up to %d numbers in [0, 1], got '%s'", CAP_MAX_W, w_s); return 2; }
    for (int i = 0; i < n_w; i++)
        if (!(w[i] >= 0 && w[i] <= 1)) { exp_fail("capacity: --w-pool values must lie in [0, 1], got '%s'", w_s); return 2; }
    if (n_look < 1 || n_real < 1 || ans_len < 1 || ans_len > 32) {
        exp_fail("capacity: --look-alikes and --n-real must be positive, --answer-chars 1..32");
        return 2;
    }
    if (replot) {
        if (strchr(o.dir, '\'') || cap_write_plot(o.dir, w, n_w, sizes, n_sizes)) return 1;
        return exp_run_gnuplot(o.dir) ? 0 : 1;
    }
    int rc = exp_common_check(&o);
    if (rc) return rc;
    const char *model_path = o.model, *dir = o.dir, *text = o.text;
    const int threads = o.threads;
    const long long seed = o.seed, text_bytes = o.text_bytes;
    if (access(real_src, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", real_src, strerror(errno));
    exp_run run;
    exp_run_start(&run);

    char work[3100], path[3200], look_path[3200], real_path[3200];
    snprintf(work, sizeof work, "%s/work", dir);
    if (exp_mkdir_p(work)) return exp_fail("%s: %s", work, strerror(errno));
    const int n_max = sizes[n_sizes - 1];
    cap_fact *facts = cap_generate(n_max + n_look, ans_len, (uint64_t)seed ^ 0xca9ac17eULL);
    if (!facts) return exp_fail("out of memory");
    snprintf(look_path, sizeof look_path, "%s/look_alikes.jsonl", dir);
    snprintf(real_path, sizeof real_path, "%s/real_questions.jsonl", dir);
    int got;
    rc = cap_write_facts(look_path, facts, n_max, n_max + n_look);
    if (!rc) rc = exp_copy_first_lines(real_src, real_path, n_real, &got);
    char **look_q = NULL, **real_q = NULL, **fact_q = NULL;
    int nl = 0, nr = 0;
    if (!rc) rc = cap_questions(look_path, &look_q, &nl);
    if (!rc) rc = cap_questions(real_path, &real_q, &nr);
    if (!rc && !(fact_q = calloc((size_t)n_max, sizeof *fact_q))) rc = exp_fail("out of memory");
    for (int i = 0; !rc && i < n_max; i++) fact_q[i] = facts[i].q;
    mome_model *m = NULL;
    if (!rc) rc = exp_load_model(&o, &m);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FILE *csv = rc ? NULL : fopen(path, "w");
    if (!rc && !csv) rc = exp_fail("%s: %s", path, strerror(errno));
    if (csv) fprintf(csv, "n_facts,w_pool,kind,question,best_fact,score,own\n");
    cap_size sz[CAP_MAX_SIZES];
    cap_sel sel[CAP_MAX_SIZES][CAP_MAX_W];
    memset(sz, 0, sizeof sz);
    float tau = MEM_DEFAULT_TAU;
    /* tau sweep at the first w setting: recall and look-alike locality per size */
    enum { N_TAU = 41 };
    double tau_rec[CAP_MAX_SIZES][N_TAU], tau_look[CAP_MAX_SIZES][N_TAU];
    double ppl_base = -1;
    if (!rc) {
        mome_eval_params ep = mome_eval_default_params();
        ep.text_path = text;
        ep.text_max_bytes = text_bytes;
        ep.n_threads = threads;
        mome_eval_result er;
        fprintf(stderr, "experiment: capacity: held-out perplexity without a memory\n");
        if (mome_eval(m, NULL, &ep, &er)) rc = exp_fail("eval: %s", mome_errmsg());
        else ppl_base = er.perplexity;
    }
    int n_done = 0;
    for (int si = 0; si < n_sizes && !rc; si++) {
        const int n = sizes[si];
        cap_size *z = &sz[si];
        z->n = n;
        char fpath[3300], mpath[3300], ck[3400];
        snprintf(fpath, sizeof fpath, "%s/facts_%d.jsonl", work, n);
        snprintf(mpath, sizeof mpath, "%s/memory_%d.mome", work, n);
        snprintf(ck, sizeof ck, "%s.ckpt", mpath);
        unlink(ck);
        if ((rc = cap_write_facts(fpath, facts, 0, n))) break;
        mome_tune_params tp = mome_tune_default_params();
        tp.facts_path = fpath;
        tp.out_path = mpath;
        tp.n_threads = threads;
        tp.seed = (uint64_t)seed;
        tp.checkpoint_s = 0;
        fprintf(stderr, "experiment: capacity: tuning %d random facts\n", n);
        mome_tune_report rep;
        if (mome_tune(m, &tp, &rep)) { rc = exp_fail("tune: %s", mome_errmsg()); break; }
        z->memorized = rep.n_memorized;
        z->steps = rep.steps;
        z->tune_s = rep.seconds;
        z->n_experts = (int)rep.n_trained_experts;
        struct stat sb;
        z->bytes = stat(mpath, &sb) ? -1 : (long long)sb.st_size;
        mome_memory *mem;
        if (mome_memory_load(mpath, m, &mem)) { rc = exp_fail("%s", mome_errmsg()); break; }
        tau = mem->tau;
        const float w_mem = mem->w_pool;
        fprintf(stderr, "experiment: capacity: %d facts: %d memorized in %lld steps, %.1f s; evaluating\n", n,
                rep.n_memorized, (long long)rep.steps, rep.seconds);
        /* mome eval's measures with the memory as tuned */
        mome_eval_params ep = mome_eval_default_params();
        ep.facts_path = fpath;
        ep.neighbors_path = look_path;
        ep.max_new_tokens = max_new;
        ep.n_threads = threads;
        ep.no_context = 1;
        ep.no_variants = 1;
        mome_eval_result er;
        if (mome_eval(m, mem, &ep, &er)) rc = exp_fail("eval: %s", mome_errmsg());
        else {
            z->recall = er.recall;
            z->loc_look = er.locality;
            z->n_look = er.n_neighbors;
            const int do_ppl = ppl_all || si == n_sizes - 1;
            ep = mome_eval_default_params();
            ep.neighbors_path = real_path;
            ep.text_path = do_ppl ? text : NULL;
            ep.text_max_bytes = text_bytes;
            ep.max_new_tokens = max_new;
            ep.n_threads = threads;
            if (mome_eval(m, mem, &ep, &er)) rc = exp_fail("eval: %s", mome_errmsg());
            z->loc_real = er.locality;
            z->n_real = er.n_neighbors;
            z->ppl = do_ppl ? er.perplexity : -1;
        }
        /* the selection sweep */
        int32_t *best = malloc((size_t)(n + nl + nr) * sizeof *best);
        float *score = malloc((size_t)(n + nl + nr) * sizeof *score), *tmp = malloc((size_t)(n + nl + nr) * sizeof *tmp);
        mome_ctx *c = NULL;
        if (!rc && (!best || !score || !tmp)) rc = exp_fail("out of memory");
        if (!rc) {
            mome_ctx_params cp = mome_ctx_default_params();
            cp.n_ctx = 256;
            cp.n_batch = 256;
            cp.n_threads = threads;
            if (mome_ctx_init(m, &cp, &c) || mome_ctx_set_memory(c, mem)) rc = exp_fail("%s", mome_errmsg());
        }
        for (int wi = 0; wi < n_w && !rc; wi++) {
            fprintf(stderr, "experiment: capacity: %d facts: selection with w_pool %g\n", n, w[wi]);
            mome_memory_set_routing(mem, -1.0f, (float)w[wi]);
            if ((rc = cap_select(m, c, fact_q, n, best, score)) || (rc = cap_select(m, c, look_q, nl, best + n, score + n)) ||
                (rc = cap_select(m, c, real_q, nr, best + n + nl, score + n + nl)))
                break;
            cap_sel *s = &sel[si][wi];
            int ok = 0, look_ok = 0, real_ok = 0;
            for (int i = 0; i < n + nl + nr; i++) {
                const char *kind = i < n ? "trained" : i < n + nl ? "look-alike" : "real";
                const int own = i < n && best[i] == i;
                fprintf(csv, "%d,%g,%s,", n, w[wi], kind);
                exp_csv_str(csv, i < n ? fact_q[i] : i < n + nl ? look_q[i - n] : real_q[i - n - nl]);
                fprintf(csv, ",%d,%.6f,%d\n", best[i], score[i], own);
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
            if (wi == 0)
                for (int ti = 0; ti < N_TAU; ti++) {
                    const double t = ti / (double)(N_TAU - 1);
                    int a = 0, b = 0;
                    for (int i = 0; i < n; i++) a += best[i] == i && score[i] >= t;
                    for (int i = n; i < n + nl; i++) b += score[i] < t;
                    tau_rec[si][ti] = (double)a / n;
                    tau_look[si][ti] = (double)b / nl;
                }
        }
        mome_memory_set_routing(mem, tau, w_mem);
        mome_ctx_free(c);
        free(best);
        free(score);
        free(tmp);
        mome_memory_free(mem);
        if (rc) break;
        n_done++;
        fprintf(stderr, "experiment: capacity: %d facts: recall %.3f, locality %.3f (look-alikes) %.3f (real), "
                        "%lld bytes\n",
                n, z->recall, z->loc_look, z->loc_real, z->bytes);
    }
    if (m) mome_model_free(m);
    if (csv && fclose(csv) && !rc) rc = exp_fail("%s/results.csv: write error", dir);
    /* aggregates */
    FILE *f = NULL;
    if (!rc) {
        snprintf(path, sizeof path, "%s/sizes.csv", dir);
        if (!(f = fopen(path, "w"))) rc = exp_fail("%s: %s", path, strerror(errno));
    }
    if (f) {
        fprintf(f, "n_facts,memorized,steps,tune_s,experts,recall,locality_look_alikes,locality_real,n_look_alikes,"
                   "n_real,file_bytes,perplexity\n");
        for (int i = 0; i < n_done; i++) {
            fprintf(f, "%d,%d,%lld,%.2f,%d,%.6f,%.6f,%.6f,%d,%d,%lld,", sz[i].n, sz[i].memorized, (long long)sz[i].steps,
                    sz[i].tune_s, sz[i].n_experts, sz[i].recall, sz[i].loc_look, sz[i].loc_real, sz[i].n_look,
                    sz[i].n_real, sz[i].bytes);
            if (sz[i].ppl > 0) fprintf(f, "%.6f", sz[i].ppl);
            fputc('\n', f);
        }
        if (fclose(f)) rc = exp_fail("%s: write error", path);
        f = NULL;
        snprintf(path, sizeof path, "%s/selection.csv", dir);
        if (!rc && !(f = fopen(path, "w"))) rc = exp_fail("%s: %s", path, strerror(errno));
    }
    if (f) {
        fprintf(f, "n_facts,w_pool,tau,recall,locality_look_alikes,locality_real,own_score_min,own_score_p05,"
                   "look_alike_score_p95,look_alike_score_max,real_score_max\n");
        for (int i = 0; i < n_done; i++)
            for (int j = 0; j < n_w; j++) {
                const cap_sel *s = &sel[i][j];
                fprintf(f, "%d,%g,%.4f,%.6f,%.6f,%.6f,%.4f,%.4f,%.4f,%.4f,%.4f\n", sz[i].n, w[j], tau, s->recall,
                        s->loc_look, s->loc_real, s->own_min, s->own_p05, s->look_p95, s->look_max, s->real_max);
            }
        if (fclose(f)) rc = exp_fail("%s: write error", path);
        f = NULL;
        snprintf(path, sizeof path, "%s/tau.csv", dir);
        if (!rc && !(f = fopen(path, "w"))) rc = exp_fail("%s: %s", path, strerror(errno));
    }
    if (f) {
        fprintf(f, "# selection at w_pool %g as the threshold tau varies\nn_facts,tau,recall,locality_look_alikes\n", w[0]);
        for (int i = 0; i < n_done; i++)
            for (int t = 0; t < N_TAU; t++)
                fprintf(f, "%d,%.3f,%.6f,%.6f\n", sz[i].n, t / (double)(N_TAU - 1), tau_rec[i][t], tau_look[i][t]);
        if (fclose(f)) rc = exp_fail("%s: write error", path);
        f = NULL;
    }
    if (!rc) rc = cap_write_plot(dir, w, n_w, sizes, n_done);
    const int drew = rc ? 0 : exp_run_gnuplot(dir);
    if (!rc && !(f = exp_open_summary(dir, "capacity (random facts)", argc, argv, &run))) rc = 1;
    if (f) {
        fprintf(f, "- model: %s; facts: \"What is the code of the <w1> <w2>?\" (two random pseudo-words) -> %d random "
                   "[A-Z0-9] characters, seed %lld; sizes %s, nested (each the first n of one list), a fresh memory per "
                   "size with the tuner's defaults, %d thread(s)\n",
                model_path, ans_len, seed, sizes_s, threads);
        fprintf(f, "- neighbours: %d untrained questions of the same form (look-alikes) and the first %d questions of %s; "
                   "locality = answered byte for byte as without the memory (mome_eval); held-out perplexity: the first "
                   "%lld bytes of %s, without a memory and %s\n",
                nl, nr, real_src, text_bytes, text, ppl_all ? "at every size" : "with the largest memory");
        fprintf(f, "- how the issue's N and k map onto memory version 2: there is no expert pool to size and no top-k; "
                   "every fact owns one expert per answer row (the experts column: N grows with the facts) and each "
                   "question selects one fact (k = 1), the best by s = w_pool cos(pooled key) + (1 - w_pool) cos(last "
                   "key) when s >= tau (%.2f). The settings varied are therefore the selection rule: w_pool in {%s} "
                   "(selection.csv) and tau (tau.csv, at w_pool %g). A selection row reads the question up to its "
                   "decision row with tau at -1 and records the best fact and its score; the answer depends only on the "
                   "fact selected, so own fact at s >= tau = recalled, no fact = bit-identical answer\n",
                tau, w_s, w[0]);
        fprintf(f, "- data: `results.csv` (every question's best fact and score per size and w_pool), `sizes.csv`, "
                   "`selection.csv`, `tau.csv`\n\n");
        if (drew) fprintf(f, "![recall and locality against the number of facts, tuning time and file size](capacity.svg)\n\n");
        else fprintf(f, "(no plot: gnuplot was not available; `gnuplot plot.gp` draws it)\n\n");
        fprintf(f, "| facts | memorized | steps | tune s | experts | recall | locality look-alikes | locality NQ | "
                   "file bytes | perplexity |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < n_done; i++) {
            char ppl[32] = "";
            if (sz[i].ppl > 0) snprintf(ppl, sizeof ppl, "%.4f", sz[i].ppl);
            fprintf(f, "| %d | %d | %lld | %.1f | %d | %.3f | %.3f | %.3f | %lld | %s |\n", sz[i].n, sz[i].memorized,
                    (long long)sz[i].steps, sz[i].tune_s, sz[i].n_experts, sz[i].recall, sz[i].loc_look, sz[i].loc_real,
                    sz[i].bytes, ppl);
        }
        fprintf(f, "\nWithout a memory: perplexity %.4f.\n\nSelection at tau = %.2f by w_pool:\n\n"
                   "| facts | w_pool | recall | locality look-alikes | locality NQ | own score min | own p05 | "
                   "look-alike p95 | look-alike max | NQ max |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                ppl_base, tau);
        for (int i = 0; i < n_done; i++)
            for (int j = 0; j < n_w; j++) {
                const cap_sel *s = &sel[i][j];
                fprintf(f, "| %d | %g | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", sz[i].n, w[j], s->recall,
                        s->loc_look, s->loc_real, s->own_min, s->own_p05, s->look_p95, s->look_max, s->real_max);
            }
        fprintf(f, "\n## Reading (computed from the data)\n\n");
        if (n_done > 0) {
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
                fprintf(f, " facts: below 0.99 from %d facts on, and %s with more facts.\n",
                        sz[first_look_break].n,
                        b->loc_look < a->loc_look - 0.02   ? "lower"
                        : b->loc_look > a->loc_look + 0.02 ? "higher"
                                                           : "about the same");
            fprintf(f, "- Locality on real (NQ) questions: %.3f at %d facts, %.3f at %d%s.\n", a->loc_real, a->n,
                    b->loc_real, b->n, first_real_break < 0 ? " (never below 0.99)" : "");
            /* how the selection rule moves it */
            for (int j = 0; j < n_w; j++) {
                const cap_sel *s0 = &sel[0][j], *s1 = &sel[n_done - 1][j];
                fprintf(f, "- Selection with w_pool %g: recall %.3f -> %.3f and look-alike locality %.3f -> %.3f from %d to "
                           "%d facts; at %d facts the lowest own-fact score is %.3f and the highest look-alike score %.3f "
                           "(%s).\n",
                        w[j], s0->recall, s1->recall, s0->loc_look, s1->loc_look, a->n, b->n, b->n, s1->own_min,
                        s1->look_max,
                        s1->own_min > s1->look_max ? "separable by some threshold"
                                                   : "no threshold separates all of them");
            }
            /* the best threshold at the largest size (first w) */
            int bt = 0;
            double bs = -1;
            for (int t = 0; t < N_TAU; t++) {
                const double v = tau_rec[n_done - 1][t] + tau_look[n_done - 1][t];
                if (v > bs) { bs = v; bt = t; }
            }
            fprintf(f, "- Threshold at w_pool %g, %d facts: tau = %.3f maximises recall + look-alike locality (%.3f + %.3f); "
                       "the memory's tau %.2f gives %.3f + %.3f (tau.csv has the curve per size).\n",
                    w[0], b->n, bt / (double)(N_TAU - 1), tau_rec[n_done - 1][bt], tau_look[n_done - 1][bt], tau,
                    sel[n_done - 1][0].recall, sel[n_done - 1][0].loc_look);
            int same = 1;
            for (int i = 0; i < n_done; i++)
                if (sz[i].ppl > 0) same &= sz[i].ppl == ppl_base;
            fprintf(f, "- Held-out perplexity %s (%.4f without a memory).\n",
                    same ? "identical to the model without a memory wherever measured" : "changed (see the table)", ppl_base);
            int agree = 1;
            for (int i = 0; i < n_done; i++) {
                int wi = -1;
                for (int j = 0; j < n_w; j++)
                    if (fabs(w[j] - MEM_DEFAULT_W_POOL) < 1e-6) wi = j;
                if (wi >= 0 && fabs(sel[i][wi].recall - sz[i].recall) > 1e-9) agree = 0;
            }
            fprintf(f, "- Check: the selection rows' recall at the default setting %s mome eval's recall at every size.\n",
                    agree ? "equals" : "differs from (a selected own fact whose values did not give the answer)");
        }
        if (fclose(f)) rc = exp_fail("%s/summary.md: write error", dir);
    }
    if (look_q)
        for (int i = 0; i < nl; i++) free(look_q[i]);
    if (real_q)
        for (int i = 0; i < nr; i++) free(real_q[i]);
    free(look_q);
    free(real_q);
    free(fact_q);
    free(facts);
    if (!rc) fprintf(stderr, "experiment: capacity: wrote %s in %.1f s\n", dir, mome_time_s() - run.t0);
    return rc ? 1 : 0;
}
