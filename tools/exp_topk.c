/* exp_topk.c - `mome experiment topk` (issue 11, experiment 4): how many
 * facts a question mixes (mome tune --top-k K) and what it changes.
 *
 * The mixture (memory.h): at the decision row the K best facts by key score;
 * the memory speaks when the best is selected (as with K = 1), the others
 * join when their score reaches the partner threshold (--mix-tau), weighted
 * softmax(s / T); on each answer row a fact stays while the answer fed is
 * its own. The tuner trains each fact's rows through the mixture its own
 * keys select, in one of two ways (the "experts trained per row
 * capped accordingly"): own (a fact's loss trains its own values only, its
 * partners held) or all (every fact of the mixture, dv_i = a_i rms(h) dX);
 * in both, verified facts whose partners changed are verified again.
 *
 * Per (K, mode), a fresh memory tuned on the same zsRE facts (question `src`,
 * answer `alt`) with the tuner's defaults, capped at --max-minutes: facts
 * memorized (verified by greedy decoding), steps, tuning wall and CPU time,
 * mixture sizes (the tuner's, under each fact's own keys; the engine's, for
 * the trained questions and for the paraphrases), verified facts undone by a
 * partner; then mome_eval (the measures of `mome eval`): recall, paraphrase
 * recall (`rephrase`), locality (`loc` answered byte for byte as without the
 * memory); decode tokens/s with the memory and without in turn, through the
 * library as `mome bench` measures generation (one token per call), on a
 * trained question so that its mixture is on the answer rows; file size.
 * K = 1 is one run: both modes are the same there (one fact, its own values).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exp_util.h"
#include "experiment.h"
#include "facts.h"
#include "mome.h"
#include "util.h"

#define TK_MAX_K 16
#define TK_KS "1,2,4,8,16,32,64"
#define TK_FACTS 24
#define TK_STEPS 60

typedef struct tk_run {
    int k, all;
    int n, memorized;
    int64_t steps, undone;
    double tune_s, tune_cpu_s, mix_tuner, mix_trained, mix_para, w_trained, w_para, sel_para;
    double recall, para, locality;
    int n_para, n_loc;
    double tps, tps_base;
    long long bytes;
} tk_run;

/* The mixtures the engine selects for the facts' questions and for their
 * paraphrases: each read up to its decision row. Where the memory spoke:
 * the mean number of facts mixed (*mix_q, *mix_p) and the mean weight of
 * the question's own fact (0 when it is not in the mixture: *w_q, *w_p);
 * *sel_p: the share of paraphrases where it spoke. */
static int tk_engine_mix(mome_model *m, mome_memory *mem, const fact_set *fs, int threads, double *mix_q, double *mix_p,
                         double *w_q, double *w_p, double *sel_p) {
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 512;
    cp.n_batch = 512;
    cp.n_threads = threads;
    mome_ctx *c;
    if (mome_ctx_init(m, &cp, &c) || mome_ctx_set_memory(c, mem)) return exp_fail("%s", mome_errmsg());
    double sum[2] = {0, 0}, wsum[2] = {0, 0};
    int32_t facts[64];
    float weights[64];
    int spoke[2] = {0, 0}, asked[2] = {0, 0}, rc = 0;
    for (int i = 0; i < fs->n && !rc; i++)
        for (int p = -1; p < fs->v[i].n_paraphrases && !rc; p++) {
            const int kind = p >= 0;
            mome_chat_msg msg = {"user", p < 0 ? fs->v[i].question : fs->v[i].paraphrases[p]};
            char *text = mome_chat_format(m, &msg, 1, 1);
            int32_t *toks = NULL;
            const int P = text ? mome_tokenize_alloc(m, text, 1, 1, &toks) : -1;
            free(text);
            if (P < 2 || P > cp.n_ctx) rc = exp_fail("fact %d: tokenize: %s", i, P < 0 ? mome_errmsg() : "too long");
            else {
                const int keep = mome_ctx_shared_prefix(c, toks, P);
                if (mome_decode(c, toks + keep, P - keep, keep, 0)) rc = exp_fail("decode: %s", mome_errmsg());
            }
            free(toks);
            if (rc) break;
            const int n = mome_ctx_memory_mixture(c, facts, weights, 64);
            asked[kind]++;
            if (n > 0) {
                spoke[kind]++;
                sum[kind] += n;
                for (int j = 0; j < n && j < 64; j++)
                    if (facts[j] == i) wsum[kind] += weights[j]; /* a fresh memory: fact i of the file is fact i */
            }
        }
    mome_ctx_free(c);
    *mix_q = spoke[0] ? sum[0] / spoke[0] : 0;
    *mix_p = spoke[1] ? sum[1] / spoke[1] : 0;
    *w_q = spoke[0] ? wsum[0] / spoke[0] : 0;
    *w_p = spoke[1] ? wsum[1] / spoke[1] : 0;
    *sel_p = asked[1] ? (double)spoke[1] / asked[1] : 0;
    return rc;
}

typedef struct tk_answers {
    FILE *csv;
    const tk_run *r;
} tk_answers;

static void tk_on_fact(int index, int n, const char *question, const char *output, int exact, int contains, int abstained,
                       void *user) {
    (void)n;
    (void)contains;
    (void)abstained;
    tk_answers *a = user;
    fprintf(a->csv, "%s,%d,%d,%d,", a->r->all ? "all" : "own", a->r->k, index, exact != 0);
    exp_csv_str(a->csv, question);
    fputc(',', a->csv);
    exp_csv_str(a->csv, output);
    fputc('\n', a->csv);
}

static int tk_write_plot(const char *dir, const int *ks, int n_k) {
    FILE *f = exp_open_plot(dir, "topk", "topk.svg", 1260, 460);
    if (!f) return 1;
    fprintf(f,
            "set grid\n"
            "set logscale x 2\n"
            "set xrange [%g:%g]\n"
            "set xlabel 'facts mixed per question (--top-k)'\n"
            "set xtics (",
            ks[0] / 1.4, ks[n_k - 1] * 1.4);
    for (int i = 0; i < n_k; i++) fprintf(f, "%s%d", i ? ", " : "", ks[i]);
    /* runs_own.csv and runs_all.csv: the columns of runs.csv (RUNS_HEADER) */
    fprintf(f, ")\n"
               "set multiplot layout 1,3 title 'top-k mixtures of facts (zsRE; own: a fact trains its own values, all: its "
               "whole mixture)'\n"
               "set key bottom left box opaque\n"
               "set yrange [0:1.05]\n"
               "set ylabel 'share'\n"
               "plot 'runs_own.csv' using 2:15 with linespoints lw 2 pt 7 lc 1 title 'recall, own', \\\n"
               "     'runs_all.csv' using 2:15 with linespoints lw 2 dt 2 pt 6 lc 1 title 'recall, all', \\\n"
               "     'runs_own.csv' using 2:16 with linespoints lw 2 pt 5 lc 2 title 'paraphrases, own', \\\n"
               "     'runs_all.csv' using 2:16 with linespoints lw 2 dt 2 pt 4 lc 2 title 'paraphrases, all', \\\n"
               "     'runs_own.csv' using 2:18 with linespoints lw 2 pt 9 lc 3 title 'locality, own', \\\n"
               "     'runs_all.csv' using 2:18 with linespoints lw 2 dt 2 pt 8 lc 3 title 'locality, all', \\\n"
               "     'runs_own.csv' using 2:12 with linespoints lw 1 pt 1 lc 4 title 'own fact weight, trained question', \\\n"
               "     'runs_own.csv' using 2:13 with linespoints lw 1 dt 3 pt 2 lc 4 title 'own fact weight, paraphrase'\n"
               "set autoscale y\n"
               "set yrange [0:*]\n"
               "set key bottom right box opaque\n"
               "set ylabel 'tuning steps (to every fact verified)'\n"
               "set y2label 'tuning CPU seconds'\n"
               "set y2tics\n"
               "set y2range [0:*]\n"
               "plot 'runs_own.csv' using 2:5 with linespoints lw 2 pt 7 lc 1 title 'steps, own', \\\n"
               "     'runs_all.csv' using 2:5 with linespoints lw 2 dt 2 pt 6 lc 1 title 'steps, all', \\\n"
               "     'runs_own.csv' using 2:7 axes x1y2 with linespoints lw 2 pt 9 lc 3 title 'tuning CPU s, own (right)', \\\n"
               "     'runs_all.csv' using 2:7 axes x1y2 with linespoints lw 2 dt 2 pt 8 lc 3 title 'tuning CPU s, all (right)'\n"
               "set ylabel 'decode tokens/s (1 token per call)'\n"
               "set y2label 'memory file (KiB)'\n"
               "set key bottom left box opaque\n"
               "plot 'runs_own.csv' using 2:20 with linespoints lw 2 pt 7 lc 1 title 'with the memory, own', \\\n"
               "     'runs_all.csv' using 2:20 with linespoints lw 2 dt 2 pt 6 lc 1 title 'with the memory, all', \\\n"
               "     'runs_own.csv' using 2:21 with linespoints lw 2 pt 5 lc 2 title 'without (measured in turn)', \\\n"
               "     'runs_own.csv' using 2:($22/1024) axes x1y2 with linespoints lw 2 pt 9 lc 3 title 'file KiB (right)'\n"
               "unset multiplot\n");
    return fclose(f) ? exp_fail("%s/plot.gp: write error", dir) : 0;
}

static void tk_write_row(FILE *f, const tk_run *r) {
    fprintf(f, "%s,%d,%d,%d,%lld,%.2f,%.2f,%lld,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.6f,%.6f,%d,%.6f,%d,%.2f,%.2f,%lld\n",
            r->all ? "all" : "own", r->k, r->n, r->memorized, (long long)r->steps, r->tune_s, r->tune_cpu_s,
            (long long)r->undone, r->mix_tuner, r->mix_trained, r->mix_para, r->w_trained, r->w_para, r->sel_para, r->recall,
            r->para, r->n_para, r->locality, r->n_loc, r->tps, r->tps_base, r->bytes);
}

#define RUNS_HEADER                                                                                                      \
    "mode,k,n_facts,memorized,steps,tune_s,tune_cpu_s,undone,mix_tuner,mix_engine_trained,mix_engine_paraphrase,"         \
    "own_weight_trained,own_weight_paraphrase,paraphrase_selected,recall,paraphrase_recall,n_paraphrases,locality,"    \
    "n_neighbors,decode_tps,decode_tps_base,file_bytes\n"

/* One run of the experiment: its settings, the facts and model every run
 * reads, and the runs measured. */
typedef struct tk_exp {
    exp_common o;
    const char *facts_src, *ks_s, *modes_s;
    int n_facts, max_new, full, replot, augment, max_steps, subject_check;
    double temp, mix_tau, max_minutes;
    int ks[TK_MAX_K], n_k, do_own, do_all;
    char def_facts[4096], work[3100], facts_path[3200];
    fact_set *fs;                 /* the first n_facts records, as the tuner reads them */
    mome_model *m;
    tk_answers ans;               /* answers.csv */
    long long n_pairs, n_shared;  /* pairs of facts, and those whose answers share the first token */
    tk_run runs[2 * TK_MAX_K];
    int n_runs;
} tk_exp;

/* The options and their checks: -1 to go on, else the exit status. */
static int tk_parse(tk_exp *x, int argc, char **argv) {
    exp_common_init(&x->o, "topk", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED);
    snprintf(x->def_facts, sizeof x->def_facts, "%s/data/facts/editing/zsre_mend_train-1k.json", exp_shared_dir());
    x->facts_src = x->def_facts, x->ks_s = TK_KS, x->modes_s = "own,all";
    x->n_facts = TK_FACTS, x->max_new = 24, x->max_steps = TK_STEPS;
    x->temp = 0.25, x->mix_tau = -1.0;
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&x->facts_src), .help = "zsRE records, a JSON array"},
        {0, "--n-facts", "N", ARG_INT(&x->n_facts, 0, 0), .help = "its first N records; the default runs the fast version"},
        {0, "--top-k", "LIST", ARG_STR(&x->ks_s), .help = "increasing K values, 1..64"},
        {0, "--modes", "LIST", ARG_STR(&x->modes_s), .help = "own, all or own,all"},
        {0, "--temp", "T", ARG_DOUBLE(&x->temp, 0, 0),
         .help = "the mixture's softmax temperature; at the default a trained question's own fact weighs about 0.6 "
                 "among 24 zsRE facts, at 0.1 the others weigh next to nothing"},
        {0, "--mix-tau", "X", ARG_DOUBLE(&x->mix_tau, 0, 0),
         .help = "score the facts but the best need to join; -1: the K best always join, as a top-k router; 0.55 = "
                 "the route threshold"},
        {0, "--augment", "N", ARG_INT(&x->augment, 0, 0),
         .help = "the tuner's extra contexts per fact; --full: the tuner's 2"},
        {0, "--max-steps", "N", ARG_INT(&x->max_steps, 0, 0),
         .help = "cap per tuning run in optimizer steps; the run is reported as it stands: memorized = verified "
                 "when it stopped"},
        {0, "--max-minutes", "M", ARG_DOUBLE(&x->max_minutes, 0, 0),
         .help = "also a wall-clock cap per run, which depends on the load; 0: none"},
        {0, "--subject-check", "0|1", ARG_INT(&x->subject_check, 0, 0),
         .help = "mome tune's subject check, off by default here: a zsRE question names only its own subject, so "
                 "with it every K > 1 mixes one fact and K is not measured; 1 = the tuner's default, to see that"},
        {0, "--full", NULL, ARG_FLAG(&x->full), .help = "100 facts, augment 2, at most 200 steps per run"},
        {0, "--max-new", "N", ARG_INT(&x->max_new, 0, 0), .help = "answer length limit"},
        {0, "--replot", NULL, ARG_FLAG(&x->replot),
         .help = "only rewrite plot.gp and redraw from runs_*.csv in -o DIR (with --top-k)"},
    };
    const int prc = exp_parse_args(&x->o,
                                   "Facts mixed per question (mome tune --top-k K): per K and training mode, a fresh memory tuned\n"
                                   "on the same zsRE facts (question `src`, answer `alt`): facts memorized, steps, tuning wall and\n"
                                   "CPU time, mixture sizes and the own fact's weight (tuner and engine), verified facts undone by\n"
                                   "a partner, mome eval's recall, paraphrase recall (`rephrase`) and locality (`loc`), decode\n"
                                   "tokens/s with and without the memory, file size. Modes: own (a fact's loss trains its own\n"
                                   "values, its partners held), all (every fact of its mixture). K = 1 runs once (the modes are\n"
                                   "the same there). Writes runs.csv, runs_own.csv, runs_all.csv, answers.csv (every answer of\n"
                                   "every run), plot.gp, topk.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    if (x->full) {
        x->n_facts = 100;
        x->augment = 2;
        x->max_steps = 200;
    }
    double kd[TK_MAX_K];
    x->n_k = exp_parse_list(x->ks_s, kd, TK_MAX_K);
    int ok_k = x->n_k > 0;
    for (int i = 0; i < x->n_k && ok_k; i++) {
        x->ks[i] = (int)kd[i];
        ok_k = kd[i] == x->ks[i] && x->ks[i] >= 1 && x->ks[i] <= 64 && (i == 0 || x->ks[i] > x->ks[i - 1]);
    }
    if (!ok_k) {
        exp_fail("topk: --top-k expects increasing integers in 1..64, got '%s'", x->ks_s);
        return 2;
    }
    x->do_own = !!strstr(x->modes_s, "own"), x->do_all = !!strstr(x->modes_s, "all");
    if ((!x->do_own && !x->do_all) || strspn(x->modes_s, "ownal,") != strlen(x->modes_s)) {
        exp_fail("topk: --modes expects own, all or own,all, got '%s'", x->modes_s);
        return 2;
    }
    if (x->n_facts < 1 || x->n_facts > 100000 || x->max_new < 1 || !(x->temp > 0 && x->temp <= 100) ||
        !(x->mix_tau >= -1 && x->mix_tau <= 1) || !(x->max_minutes >= 0) || x->max_steps < 1 || x->augment < 0 ||
        x->augment > 6 || x->subject_check < 0 || x->subject_check > 1) {
        exp_fail("topk: --n-facts, --max-new and --max-steps must be positive, --temp in (0, 100], --mix-tau in [-1, 1], "
                 "--max-minutes non-negative, --augment 0..6, --subject-check 0 or 1");
        return 2;
    }
    return -1;
}

/* The first n_facts records as JSON lines into work/facts.jsonl. */
static int tk_write_facts(tk_exp *x) {
    char *js = NULL;
    size_t jlen;
    if (mome_read_text(x->facts_src, 0, &js, &jlen)) return exp_fail("%s", mome_errmsg());
    cJSON *arr = cJSON_Parse(js);
    free(js);
    const int have = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
    if (have < x->n_facts) {
        cJSON_Delete(arr);
        return have < 0 ? exp_fail("%s: not a JSON array of zsRE records", x->facts_src)
                        : exp_fail("%s holds %d records; --n-facts %d", x->facts_src, have, x->n_facts);
    }
    snprintf(x->facts_path, sizeof x->facts_path, "%s/facts.jsonl", x->work);
    const int rc = exp_write_json_range(arr, 0, x->n_facts, x->facts_path);
    cJSON_Delete(arr);
    return rc ? 1 : 0;
}

/* Pairs of facts whose answers share their first token: only there can a
 * partner stay in the mixture past the first answer row. */
static void tk_count_shared(tk_exp *x) {
    const fact_set *fs = x->fs;
    int32_t *first = malloc((size_t)fs->n * sizeof *first);
    for (int i = 0; first && i < fs->n; i++) {
        int32_t *ids = NULL;
        const int na = mome_tokenize_alloc(x->m, fs->v[i].answers[0], 0, 0, &ids);
        first[i] = na > 0 ? ids[0] : -1 - i;
        free(ids);
    }
    for (int i = 0; first && i < fs->n; i++)
        for (int j = i + 1; j < fs->n; j++) {
            x->n_pairs++;
            x->n_shared += first[i] == first[j];
        }
    free(first);
}

/* What every run reads: the facts, the model, answers.csv. */
static int tk_prepare(tk_exp *x) {
    snprintf(x->work, sizeof x->work, "%s/work", x->o.dir);
    if (exp_mkdir_p(x->work)) return exp_fail("%s: %s", x->work, strerror(errno));
    int rc = tk_write_facts(x);
    if (rc) return rc;
    if (facts_load(x->facts_path, FACTS_CONFLICT_FIRST, &x->fs)) return exp_fail("%s", mome_errmsg());
    if (exp_load_model(&x->o, &x->m)) return 1;
    char path[3200];
    snprintf(path, sizeof path, "%s/answers.csv", x->o.dir);
    if (!(x->ans.csv = fopen(path, "w"))) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(x->ans.csv, "mode,k,fact,exact,question,output\n");
    tk_count_shared(x);
    return 0;
}

/* Run r (its k and mode set): a fresh memory tuned with them into *mem. */
static int tk_tune(tk_exp *x, tk_run *r, mome_memory **mem) {
    char mpath[3300], ck[3400];
    snprintf(mpath, sizeof mpath, "%s/memory_%s_%d.mome", x->work, r->all ? "all" : "own", r->k);
    snprintf(ck, sizeof ck, "%s.ckpt", mpath);
    unlink(ck);
    mome_tune_params tp = exp_tune_params();
    tp.facts_path = x->facts_path;
    tp.out_path = mpath;
    tp.on_conflict = 1;
    tp.n_threads = x->o.threads;
    tp.seed = (uint64_t)x->o.seed;
    tp.checkpoint_s = 0;
    tp.max_minutes = x->max_minutes;
    tp.max_steps = x->max_steps;
    tp.augment = x->augment;
    tp.top_k = r->k;
    tp.top_k_temp = (float)x->temp;
    tp.top_k_tau = (float)x->mix_tau;
    tp.top_k_train_all = r->all;
    tp.subject_check = x->subject_check;
    fprintf(stderr, "experiment: topk: k %d, mode %s: tuning %d facts\n", r->k, r->all ? "all" : "own", x->fs->n);
    mome_tune_report rep;
    const double c0 = exp_cpu_s();
    if (mome_tune(x->m, &tp, &rep)) return exp_fail("tune: %s", mome_errmsg());
    r->tune_cpu_s = exp_cpu_s() - c0;
    r->n = rep.n_facts;
    r->memorized = rep.n_memorized;
    r->steps = rep.steps;
    r->tune_s = rep.seconds;
    r->undone = rep.n_undone;
    r->mix_tuner = rep.mean_mix;
    unlink(ck);
    struct stat sb;
    r->bytes = stat(mpath, &sb) ? -1 : (long long)sb.st_size;
    if (mome_memory_load(mpath, x->m, mem)) return exp_fail("%s", mome_errmsg());
    if (mome_memory_top_k(*mem) != r->k)
        return exp_fail("%s mixes %d facts, tuned with --top-k %d", mpath, mome_memory_top_k(*mem), r->k);
    return 0;
}

/* Run r's measures: the engine's mixtures, mome_eval (every answer into
 * answers.csv), decode speed with and without the memory. */
static int tk_measure(tk_exp *x, tk_run *r, mome_memory *mem) {
    int rc = tk_engine_mix(x->m, mem, x->fs, x->o.threads, &r->mix_trained, &r->mix_para, &r->w_trained, &r->w_para,
                           &r->sel_para);
    mome_eval_params ep = mome_eval_default_params();
    ep.facts_path = x->facts_path;
    ep.max_new_tokens = x->max_new;
    ep.on_conflict = 1;
    ep.n_threads = x->o.threads;
    ep.no_context = 1;
    ep.no_variants = 1;
    ep.on_fact = tk_on_fact;
    ep.user = &x->ans;
    x->ans.r = r;
    mome_eval_result er;
    if (!rc && mome_eval(x->m, mem, &ep, &er)) rc = exp_fail("eval: %s", mome_errmsg());
    if (rc) return rc;
    r->recall = er.recall;
    r->para = er.paraphrase_recall;
    r->n_para = er.n_paraphrases;
    r->locality = er.locality;
    r->n_loc = er.n_neighbors;
    return exp_decode_tps(x->m, mem, x->fs->v[0].question, x->o.threads, 16, 3, &r->tps, &r->tps_base);
}

/* runs.csv, and one file per mode for the plot (K = 1 in both: one run,
 * the modes are the same there). */
static int tk_write_runs(const tk_exp *x) {
    char path[3200];
    snprintf(path, sizeof path, "%s/runs.csv", x->o.dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, RUNS_HEADER);
    for (int i = 0; i < x->n_runs; i++) tk_write_row(f, &x->runs[i]);
    if (fclose(f)) return exp_fail("%s: write error", path);
    for (int all = 0; all < 2; all++) {
        snprintf(path, sizeof path, "%s/runs_%s.csv", x->o.dir, all ? "all" : "own");
        if (!(f = fopen(path, "w"))) return exp_fail("%s: %s", path, strerror(errno));
        fprintf(f, RUNS_HEADER);
        for (int i = 0; i < x->n_runs; i++)
            if (x->runs[i].all == all || x->runs[i].k == 1) {
                tk_run c = x->runs[i];
                c.all = all;
                tk_write_row(f, &c);
            }
        if (fclose(f)) return exp_fail("%s: write error", path);
    }
    return 0;
}

/* The summary's "Reading" section: what the data say, computed from them. */
static void tk_write_reading(FILE *f, const tk_exp *x) {
    fprintf(f, "\n## Reading (computed from the data)\n\n");
    const tk_run *base = NULL;
    for (int i = 0; i < x->n_runs && !base; i++)
        if (x->runs[i].k == 1) base = &x->runs[i];
    /* how much the partners weigh: the largest K of the first mode run */
    const tk_run *top = NULL;
    for (int i = 0; i < x->n_runs; i++)
        if (!top || x->runs[i].k > top->k) top = &x->runs[i];
    if (top && top->k > 1)
        fprintf(f, "- **How much mixing**: with K = %d (%.1f facts mixed per trained question, T = %g) a trained "
                   "question's own fact carries %.2f of the weight and a paraphrase's own fact %.2f (where the "
                   "memory answered it), so the partners add %.0f%% and %.0f%% of the value on the answer rows they "
                   "share; a partner leaves at the first answer token that is not its own, and %lld of the %lld "
                   "pairs of facts here share their first answer token, so the partners weigh on the first answer "
                   "row%s.\n",
                top->k, top->mix_trained, x->temp, top->w_trained, top->w_para, 100 * (1 - top->w_trained),
                100 * (1 - top->w_para), x->n_shared, x->n_pairs,
                x->n_shared * 20 < x->n_pairs ? " and almost nowhere else" : " and, for those pairs, later rows");
    for (int all = 0; all < 2; all++) {
        const tk_run *lo = NULL, *plo = NULL, *phi = NULL, *slow = NULL, *hi = NULL;
        int n_mode = 0, n_full = 0;
        int64_t undone = 0;
        for (int i = 0; i < x->n_runs; i++) {
            const tk_run *r = &x->runs[i];
            if (r->k == 1 || r->all != all) continue;
            n_mode++;
            n_full += r->memorized == r->n;
            if (!lo || r->recall < lo->recall) lo = r;
            if (!plo || r->para < plo->para) plo = r;
            if (!phi || r->para > phi->para) phi = r;
            if (!slow || r->steps > slow->steps) slow = r;
            if (!hi || r->k > hi->k) hi = r;
            undone += r->undone;
        }
        if (!n_mode) continue;
        fprintf(f, "- **Mode %s** (%s): %d of %d runs with K > 1 memorized every fact within %d steps%s; recall "
                   "lowest %.3f (K = %d); steps at most %lld (K = %d)",
                all ? "all" : "own", all ? "every fact of a mixture trained" : "own values trained, partners held",
                n_full, n_mode, x->max_steps, base && base->memorized == base->n ? " (K = 1: all of them)" : "",
                lo->recall, lo->k, (long long)slow->steps, slow->k);
        if (base) fprintf(f, " against %lld at K = 1", (long long)base->steps);
        fprintf(f, "; %lld verified fact(s) undone by a partner's change over these runs.", (long long)undone);
        if (base)
            fprintf(f, " Paraphrase recall %.3f at K = 1, %.3f-%.3f with K > 1 (lowest at K = %d, highest at K = "
                       "%d); tuning CPU %.1f s at K = 1, %.1f s at K = %d.\n",
                    base->para, plo->para, phi->para, plo->k, phi->k, base->tune_cpu_s, hi->tune_cpu_s, hi->k);
        else fprintf(f, "\n");
    }
    if (base) {
        double loc_min = 1, loc_max = 0, tmin = 1e9, tmax = 0;
        long long bmin = -1, bmax = -1;
        for (int i = 0; i < x->n_runs; i++) {
            const tk_run *r = &x->runs[i];
            if (r->locality < loc_min) loc_min = r->locality;
            if (r->locality > loc_max) loc_max = r->locality;
            const double q = r->tps_base > 0 ? r->tps / r->tps_base : 0;
            if (q < tmin) tmin = q;
            if (q > tmax) tmax = q;
            if (bmin < 0 || r->bytes < bmin) bmin = r->bytes;
            if (r->bytes > bmax) bmax = r->bytes;
        }
        fprintf(f, "- Locality on `loc`: %.3f at K = 1, %.3f-%.3f over all runs. K never changes which questions "
                   "the memory answers (its best fact must be selected, as with K = 1); on a neighbour it does "
                   "answer, K changes only what it says.\n",
                base->locality, loc_min, loc_max);
        fprintf(f, "- Decode speed with the memory / without, measured in turn on a trained question: %.2f-%.2f over "
                   "the runs (1 thread, a shared machine: single runs are noisy). A mixture adds K value rows (K x %s "
                   "multiply-adds) on an answer row at one block, small next to a forward pass.\n",
                tmin, tmax, "C");
        fprintf(f, "- File size %lld-%lld bytes: the values stay per fact, so K does not change the size (a mixture "
                   "memory adds K, T and its threshold to the header: version 3).\n",
                bmin, bmax);
    }
}

/* summary.md: the run, the setup, the plot, the table, the reading. */
static int tk_write_summary(const tk_exp *x, int drew, int argc, char **argv, const exp_run *run) {
    FILE *f = exp_open_summary(x->o.dir, "topk (facts mixed per question)", argc, argv, run);
    if (!f) return 1;
    fprintf(f, "- model: %s; facts: the first %d zsRE records of %s (question `src`, answer `alt`, paraphrase "
               "`rephrase`, neighbour `loc`), %d after duplicates; per K and mode a fresh memory with the tuner's "
               "defaults but --augment %d (learning rate, batch 32, target loss 0.01), seed %lld, %d thread(s), at "
               "most %d steps per tuning run%s\n",
            x->o.model, x->n_facts, x->facts_src, x->fs->n, x->augment, (long long)x->o.seed, x->o.threads, x->max_steps,
            x->max_minutes > 0 ? " and the --max-minutes cap" : "");
    fprintf(f, "- the mixture: the K best facts by key score; the memory speaks when the best reaches the route "
               "threshold (as with K = 1); the others join when their score reaches %g%s; weights softmax(s / %g); "
               "a fact stays while the answer fed is its own. Modes: own = a fact's loss trains its own values "
               "(partners held), all = every fact of its mixture (dv_i = a_i rms(h) dX); either way verified facts "
               "whose partners changed are verified again. K = 1 is one run, listed under both modes. The subject "
               "check is %s\n",
            x->mix_tau, x->mix_tau <= -1 ? " (-1: always, as a top-k router)" : "", x->temp,
            x->subject_check ? "on (--subject-check 1: a partner joins only where the question names its subject, "
                            "which a zsRE question does only for its own fact)"
                          : "off (--subject-check 0, the default here: with it a zsRE question mixes only its own "
                            "fact, whatever K)");
    fprintf(f, "- measures: memorized = verified by greedy decoding at the end of tuning; recall, paraphrase "
               "recall, locality from mome_eval (no context or variant questions); facts mixed: the tuner's mean "
               "mixture under each fact's own keys, and the engine's for the trained questions and the paraphrases "
               "where the memory spoke; undone = verified facts a partner's change undid (they trained on); decode "
               "tokens/s: the first fact's question token by token then 16 greedy tokens, median of 3, with and "
               "without the memory in turn; tuning CPU s = process user + system time of the run\n");
    fprintf(f, "- data: `runs.csv`, `answers.csv` (every answer of every run)\n\n");
    exp_summary_plot(f, drew, "recall, paraphrases, locality, steps, decode speed and file size against K", "topk.svg");
    fprintf(f, "| mode | K | memorized | steps | tune s | CPU s | mixed (tuner) | mixed (engine, trained / paraphrase) "
               "| undone | recall | paraphrases | locality | tok/s with | without | file bytes |\n"
               "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < x->n_runs; i++) {
        const tk_run *r = &x->runs[i];
        fprintf(f, "| %s | %d | %d/%d | %lld | %.1f | %.1f | %.2f | %.2f / %.2f | %lld | %.3f | %.3f | %.3f | %.1f | %.1f "
                   "| %lld |\n",
                r->k == 1 ? "both" : r->all ? "all" : "own", r->k, r->memorized, r->n, (long long)r->steps, r->tune_s,
                r->tune_cpu_s, r->mix_tuner, r->mix_trained, r->mix_para, (long long)r->undone, r->recall, r->para,
                r->locality, r->tps, r->tps_base, r->bytes);
    }
    tk_write_reading(f, x);
    return fclose(f) ? exp_fail("%s/summary.md: write error", x->o.dir) : 0;
}

static void tk_free(tk_exp *x) {
    if (x->m) mome_model_free(x->m);
    if (x->ans.csv) fclose(x->ans.csv);
    facts_free(x->fs);
}

int exp_topk(int argc, char **argv) {
    tk_exp x;
    memset(&x, 0, sizeof x);
    int rc = tk_parse(&x, argc, argv);
    if (rc >= 0) return rc;
    if (x.replot) {
        if (strchr(x.o.dir, '\'') || tk_write_plot(x.o.dir, x.ks, x.n_k)) return 1;
        return exp_run_gnuplot(x.o.dir) ? 0 : 1;
    }
    if ((rc = exp_common_check(&x.o))) return rc;
    if (access(x.facts_src, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", x.facts_src, strerror(errno));
    exp_run run;
    exp_run_start(&run);
    rc = tk_prepare(&x);
    for (int ki = 0; ki < x.n_k && !rc; ki++)
        for (int all = 0; all < 2 && !rc; all++) {
            const int k = x.ks[ki];
            if (k == 1 ? all : all ? !x.do_all : !x.do_own) continue; /* K = 1: one run, both modes */
            tk_run *r = &x.runs[x.n_runs];
            memset(r, 0, sizeof *r);
            r->k = k;
            r->all = all;
            mome_memory *mem = NULL;
            rc = tk_tune(&x, r, &mem);
            if (!rc) rc = tk_measure(&x, r, mem);
            mome_memory_free(mem);
            if (rc) break;
            x.n_runs++;
            fprintf(stderr, "experiment: topk: k %d, mode %s: %d/%d memorized in %lld steps (%.1f s, %.1f CPU s), %.2f facts "
                            "mixed (tuner), %lld undone; recall %.3f, paraphrases %.3f, locality %.3f, %.1f tok/s "
                            "(without %.1f), %lld bytes\n",
                    k, all ? "all" : "own", r->memorized, r->n, (long long)r->steps, r->tune_s, r->tune_cpu_s, r->mix_tuner,
                    (long long)r->undone, r->recall, r->para, r->locality, r->tps, r->tps_base, r->bytes);
        }
    if (x.m) mome_model_free(x.m);
    x.m = NULL;
    if (x.ans.csv && fclose(x.ans.csv) && !rc) rc = exp_fail("%s/answers.csv: write error", x.o.dir);
    x.ans.csv = NULL;
    if (!rc) rc = tk_write_runs(&x);
    if (!rc) rc = tk_write_plot(x.o.dir, x.ks, x.n_k);
    const int drew = rc ? 0 : exp_run_gnuplot(x.o.dir);
    if (!rc) rc = tk_write_summary(&x, drew, argc, argv, &run);
    tk_free(&x);
    if (!rc) fprintf(stderr, "experiment: topk: wrote %s\n", x.o.dir);
    return rc ? 1 : 0;
}
