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

int exp_topk(int argc, char **argv) {
    exp_common o;
    exp_common_init(&o, "topk", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED);
    char def_facts[4096];
    snprintf(def_facts, sizeof def_facts, "%s/data/facts/editing/zsre_mend_train-1k.json", exp_shared_dir());
    const char *facts_src = def_facts, *ks_s = TK_KS, *modes_s = "own,all";
    int n_facts = TK_FACTS, max_new = 24, full = 0, replot = 0, augment = 0, max_steps = TK_STEPS, subject_check = 0;
    double temp = 0.25, mix_tau = -1.0, max_minutes = 0;
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&facts_src), .help = "zsRE records, a JSON array"},
        {0, "--n-facts", "N", ARG_INT(&n_facts, 0, 0), .help = "its first N records; the default runs the fast version"},
        {0, "--top-k", "LIST", ARG_STR(&ks_s), .help = "increasing K values, 1..64"},
        {0, "--modes", "LIST", ARG_STR(&modes_s), .help = "own, all or own,all"},
        {0, "--temp", "T", ARG_DOUBLE(&temp, 0, 0),
         .help = "the mixture's softmax temperature; at the default a trained question's own fact weighs about 0.6 "
                 "among 24 zsRE facts, at 0.1 the others weigh next to nothing"},
        {0, "--mix-tau", "X", ARG_DOUBLE(&mix_tau, 0, 0),
         .help = "score the facts but the best need to join; -1: the K best always join, as a top-k router; 0.55 = "
                 "the route threshold"},
        {0, "--augment", "N", ARG_INT(&augment, 0, 0),
         .help = "the tuner's extra contexts per fact; --full: the tuner's 2"},
        {0, "--max-steps", "N", ARG_INT(&max_steps, 0, 0),
         .help = "cap per tuning run in optimizer steps; the run is reported as it stands: memorized = verified "
                 "when it stopped"},
        {0, "--max-minutes", "M", ARG_DOUBLE(&max_minutes, 0, 0),
         .help = "also a wall-clock cap per run, which depends on the load; 0: none"},
        {0, "--subject-check", "0|1", ARG_INT(&subject_check, 0, 0),
         .help = "mome tune's subject check, off by default here: a zsRE question names only its own subject, so "
                 "with it every K > 1 mixes one fact and K is not measured; 1 = the tuner's default, to see that"},
        {0, "--full", NULL, ARG_FLAG(&full), .help = "100 facts, augment 2, at most 200 steps per run"},
        {0, "--max-new", "N", ARG_INT(&max_new, 0, 0), .help = "answer length limit"},
        {0, "--replot", NULL, ARG_FLAG(&replot),
         .help = "only rewrite plot.gp and redraw from runs_*.csv in -o DIR (with --top-k)"},
    };
    const int prc = exp_parse_args(&o,
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
    if (full) {
        n_facts = 100;
        augment = 2;
        max_steps = 200;
    }
    double kd[TK_MAX_K];
    int ks[TK_MAX_K];
    const int n_k = exp_parse_list(ks_s, kd, TK_MAX_K);
    int ok_k = n_k > 0;
    for (int i = 0; i < n_k && ok_k; i++) {
        ks[i] = (int)kd[i];
        ok_k = kd[i] == ks[i] && ks[i] >= 1 && ks[i] <= 64 && (i == 0 || ks[i] > ks[i - 1]);
    }
    if (!ok_k) { exp_fail("topk: --top-k expects increasing integers in 1..64, got '%s'", ks_s); return 2; }
    const int do_own = !!strstr(modes_s, "own"), do_all = !!strstr(modes_s, "all");
    if ((!do_own && !do_all) || strspn(modes_s, "ownal,") != strlen(modes_s)) {
        exp_fail("topk: --modes expects own, all or own,all, got '%s'", modes_s);
        return 2;
    }
    if (n_facts < 1 || n_facts > 100000 || max_new < 1 || !(temp > 0 && temp <= 100) || !(mix_tau >= -1 && mix_tau <= 1) ||
        !(max_minutes >= 0) || max_steps < 1 || augment < 0 || augment > 6 || subject_check < 0 || subject_check > 1) {
        exp_fail("topk: --n-facts, --max-new and --max-steps must be positive, --temp in (0, 100], --mix-tau in [-1, 1], "
                 "--max-minutes non-negative, --augment 0..6, --subject-check 0 or 1");
        return 2;
    }
    if (replot) {
        if (strchr(o.dir, '\'') || tk_write_plot(o.dir, ks, n_k)) return 1;
        return exp_run_gnuplot(o.dir) ? 0 : 1;
    }
    int rc = exp_common_check(&o);
    if (rc) return rc;
    if (access(facts_src, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", facts_src, strerror(errno));
    const char *dir = o.dir;
    exp_run run;
    exp_run_start(&run);

    char work[3100], path[3200], facts_path[3200];
    snprintf(work, sizeof work, "%s/work", dir);
    if (exp_mkdir_p(work)) return exp_fail("%s: %s", work, strerror(errno));
    /* the first n records as JSON lines */
    {
        char *js = NULL;
        size_t jlen;
        if (mome_read_text(facts_src, 0, &js, &jlen)) return exp_fail("%s", mome_errmsg());
        cJSON *arr = cJSON_Parse(js);
        free(js);
        const int have = cJSON_IsArray(arr) ? cJSON_GetArraySize(arr) : -1;
        if (have < n_facts) {
            cJSON_Delete(arr);
            return have < 0 ? exp_fail("%s: not a JSON array of zsRE records", facts_src)
                            : exp_fail("%s holds %d records; --n-facts %d", facts_src, have, n_facts);
        }
        snprintf(facts_path, sizeof facts_path, "%s/facts.jsonl", work);
        rc = exp_write_json_range(arr, 0, n_facts, facts_path);
        cJSON_Delete(arr);
        if (rc) return 1;
    }
    fact_set *fs = NULL;
    if (facts_load(facts_path, FACTS_CONFLICT_FIRST, &fs)) return exp_fail("%s", mome_errmsg());

    mome_model *m;
    if (exp_load_model(&o, &m)) {
        facts_free(fs);
        return 1;
    }
    snprintf(path, sizeof path, "%s/answers.csv", dir);
    tk_answers ans = {fopen(path, "w"), NULL};
    if (!ans.csv) {
        facts_free(fs);
        mome_model_free(m);
        return exp_fail("%s: %s", path, strerror(errno));
    }
    fprintf(ans.csv, "mode,k,fact,exact,question,output\n");
    /* pairs of facts whose answers share their first token: only there can a
     * partner stay in the mixture past the first answer row */
    long long n_pairs = 0, n_shared = 0;
    {
        int32_t *first = malloc((size_t)fs->n * sizeof *first);
        for (int i = 0; first && i < fs->n; i++) {
            int32_t *ids = NULL;
            const int na = mome_tokenize_alloc(m, fs->v[i].answers[0], 0, 0, &ids);
            first[i] = na > 0 ? ids[0] : -1 - i;
            free(ids);
        }
        for (int i = 0; first && i < fs->n; i++)
            for (int j = i + 1; j < fs->n; j++) {
                n_pairs++;
                n_shared += first[i] == first[j];
            }
        free(first);
    }
    tk_run runs[2 * TK_MAX_K];
    int n_runs = 0;
    for (int ki = 0; ki < n_k && !rc; ki++)
        for (int all = 0; all < 2 && !rc; all++) {
            const int k = ks[ki];
            if (k == 1 ? all : all ? !do_all : !do_own) continue; /* K = 1: one run, both modes */
            tk_run *r = &runs[n_runs];
            memset(r, 0, sizeof *r);
            r->k = k;
            r->all = all;
            char mpath[3300], ck[3400];
            snprintf(mpath, sizeof mpath, "%s/memory_%s_%d.mome", work, all ? "all" : "own", k);
            snprintf(ck, sizeof ck, "%s.ckpt", mpath);
            unlink(ck);
            mome_tune_params tp = mome_tune_default_params();
            tp.facts_path = facts_path;
            tp.out_path = mpath;
            tp.on_conflict = 1;
            tp.n_threads = o.threads;
            tp.seed = (uint64_t)o.seed;
            tp.checkpoint_s = 0;
            tp.max_minutes = max_minutes;
            tp.max_steps = max_steps;
            tp.augment = augment;
            tp.top_k = k;
            tp.top_k_temp = (float)temp;
            tp.top_k_tau = (float)mix_tau;
            tp.top_k_train_all = all;
            tp.subject_check = subject_check;
            fprintf(stderr, "experiment: topk: k %d, mode %s: tuning %d facts\n", k, all ? "all" : "own", fs->n);
            mome_tune_report rep;
            const double c0 = exp_cpu_s();
            if (mome_tune(m, &tp, &rep)) { rc = exp_fail("tune: %s", mome_errmsg()); break; }
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
            mome_memory *mem;
            if (mome_memory_load(mpath, m, &mem)) { rc = exp_fail("%s", mome_errmsg()); break; }
            if (mome_memory_top_k(mem) != k) {
                rc = exp_fail("%s mixes %d facts, tuned with --top-k %d", mpath, mome_memory_top_k(mem), k);
                mome_memory_free(mem);
                break;
            }
            rc = tk_engine_mix(m, mem, fs, o.threads, &r->mix_trained, &r->mix_para, &r->w_trained, &r->w_para, &r->sel_para);
            mome_eval_params ep = mome_eval_default_params();
            ep.facts_path = facts_path;
            ep.max_new_tokens = max_new;
            ep.on_conflict = 1;
            ep.n_threads = o.threads;
            ep.no_context = 1;
            ep.no_variants = 1;
            ep.on_fact = tk_on_fact;
            ep.user = &ans;
            ans.r = r;
            mome_eval_result er;
            if (!rc && mome_eval(m, mem, &ep, &er)) rc = exp_fail("eval: %s", mome_errmsg());
            if (!rc) {
                r->recall = er.recall;
                r->para = er.paraphrase_recall;
                r->n_para = er.n_paraphrases;
                r->locality = er.locality;
                r->n_loc = er.n_neighbors;
                rc = exp_decode_tps(m, mem, fs->v[0].question, o.threads, 16, 3, &r->tps, &r->tps_base);
            }
            mome_memory_free(mem);
            if (rc) break;
            n_runs++;
            fprintf(stderr, "experiment: topk: k %d, mode %s: %d/%d memorized in %lld steps (%.1f s, %.1f CPU s), %.2f facts "
                            "mixed (tuner), %lld undone; recall %.3f, paraphrases %.3f, locality %.3f, %.1f tok/s "
                            "(without %.1f), %lld bytes\n",
                    k, all ? "all" : "own", r->memorized, r->n, (long long)r->steps, r->tune_s, r->tune_cpu_s, r->mix_tuner,
                    (long long)r->undone, r->recall, r->para, r->locality, r->tps, r->tps_base, r->bytes);
        }
    mome_model_free(m);
    if (fclose(ans.csv) && !rc) rc = exp_fail("%s/answers.csv: write error", dir);
    FILE *f = NULL;
    if (!rc) {
        snprintf(path, sizeof path, "%s/runs.csv", dir);
        if (!(f = fopen(path, "w"))) rc = exp_fail("%s: %s", path, strerror(errno));
    }
    if (f) {
        fprintf(f, RUNS_HEADER);
        for (int i = 0; i < n_runs; i++) tk_write_row(f, &runs[i]);
        if (fclose(f)) rc = exp_fail("%s: write error", path);
        f = NULL;
    }
    /* one file per mode for the plot; K = 1 in both (one run: the modes are the same there) */
    for (int all = 0; all < 2 && !rc; all++) {
        snprintf(path, sizeof path, "%s/runs_%s.csv", dir, all ? "all" : "own");
        if (!(f = fopen(path, "w"))) { rc = exp_fail("%s: %s", path, strerror(errno)); break; }
        fprintf(f, RUNS_HEADER);
        for (int i = 0; i < n_runs; i++)
            if (runs[i].all == all || runs[i].k == 1) {
                tk_run c = runs[i];
                c.all = all;
                tk_write_row(f, &c);
            }
        if (fclose(f)) rc = exp_fail("%s: write error", path);
        f = NULL;
    }
    if (!rc) rc = tk_write_plot(dir, ks, n_k);
    const int drew = rc ? 0 : exp_run_gnuplot(dir);
    if (!rc && !(f = exp_open_summary(dir, "topk (facts mixed per question)", argc, argv, &run))) rc = 1;
    if (f) {
        fprintf(f, "- model: %s; facts: the first %d zsRE records of %s (question `src`, answer `alt`, paraphrase "
                   "`rephrase`, neighbour `loc`), %d after duplicates; per K and mode a fresh memory with the tuner's "
                   "defaults but --augment %d (learning rate, batch 32, target loss 0.01), seed %lld, %d thread(s), at "
                   "most %d steps per tuning run%s\n",
                o.model, n_facts, facts_src, fs->n, augment, (long long)o.seed, o.threads, max_steps,
                max_minutes > 0 ? " and the --max-minutes cap" : "");
        fprintf(f, "- the mixture: the K best facts by key score; the memory speaks when the best reaches the route "
                   "threshold (as with K = 1); the others join when their score reaches %g%s; weights softmax(s / %g); "
                   "a fact stays while the answer fed is its own. Modes: own = a fact's loss trains its own values "
                   "(partners held), all = every fact of its mixture (dv_i = a_i rms(h) dX); either way verified facts "
                   "whose partners changed are verified again. K = 1 is one run, listed under both modes. The subject "
                   "check is %s\n",
                mix_tau, mix_tau <= -1 ? " (-1: always, as a top-k router)" : "", temp,
                subject_check ? "on (--subject-check 1: a partner joins only where the question names its subject, "
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
        if (drew) fprintf(f, "![recall, paraphrases, locality, steps, decode speed and file size against K](topk.svg)\n\n");
        else fprintf(f, "(no plot: gnuplot was not available; `gnuplot plot.gp` draws it)\n\n");
        fprintf(f, "| mode | K | memorized | steps | tune s | CPU s | mixed (tuner) | mixed (engine, trained / paraphrase) "
                   "| undone | recall | paraphrases | locality | tok/s with | without | file bytes |\n"
                   "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < n_runs; i++) {
            const tk_run *r = &runs[i];
            fprintf(f, "| %s | %d | %d/%d | %lld | %.1f | %.1f | %.2f | %.2f / %.2f | %lld | %.3f | %.3f | %.3f | %.1f | %.1f "
                       "| %lld |\n",
                    r->k == 1 ? "both" : r->all ? "all" : "own", r->k, r->memorized, r->n, (long long)r->steps, r->tune_s,
                    r->tune_cpu_s, r->mix_tuner, r->mix_trained, r->mix_para, (long long)r->undone, r->recall, r->para,
                    r->locality, r->tps, r->tps_base, r->bytes);
        }
        fprintf(f, "\n## Reading (computed from the data)\n\n");
        const tk_run *base = NULL;
        for (int i = 0; i < n_runs && !base; i++)
            if (runs[i].k == 1) base = &runs[i];
        /* how much the partners weigh: the largest K of the first mode run */
        const tk_run *top = NULL;
        for (int i = 0; i < n_runs; i++)
            if (!top || runs[i].k > top->k) top = &runs[i];
        if (top && top->k > 1)
            fprintf(f, "- **How much mixing**: with K = %d (%.1f facts mixed per trained question, T = %g) a trained "
                       "question's own fact carries %.2f of the weight and a paraphrase's own fact %.2f (where the "
                       "memory answered it), so the partners add %.0f%% and %.0f%% of the value on the answer rows they "
                       "share; a partner leaves at the first answer token that is not its own, and %lld of the %lld "
                       "pairs of facts here share their first answer token, so the partners weigh on the first answer "
                       "row%s.\n",
                    top->k, top->mix_trained, temp, top->w_trained, top->w_para, 100 * (1 - top->w_trained),
                    100 * (1 - top->w_para), n_shared, n_pairs, n_shared * 20 < n_pairs ? " and almost nowhere else" : " and, for those pairs, later rows");
        for (int all = 0; all < 2; all++) {
            const tk_run *lo = NULL, *plo = NULL, *phi = NULL, *slow = NULL, *hi = NULL;
            int n_mode = 0, n_full = 0;
            int64_t undone = 0;
            for (int i = 0; i < n_runs; i++) {
                const tk_run *r = &runs[i];
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
                    n_full, n_mode, max_steps, base && base->memorized == base->n ? " (K = 1: all of them)" : "",
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
            for (int i = 0; i < n_runs; i++) {
                const tk_run *r = &runs[i];
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
        if (fclose(f)) rc = exp_fail("%s/summary.md: write error", dir);
    }
    facts_free(fs);
    if (!rc) fprintf(stderr, "experiment: topk: wrote %s\n", dir);
    return rc ? 1 : 0;
}
