/* experiment.c - `mome experiment NAME [options]`: one command per experiment
 * of issue 11, writing into an output folder:
 *
 *   results.csv   one row per measurement (the raw data)
 *   *.csv         the aggregates the plots draw (computed here, in C)
 *   plot.gp       the gnuplot script; run it again to redraw
 *   *.svg         the plots (gnuplot from Debian; if it is absent the CSVs and
 *                 the script are still written and the summary says so)
 *   summary.md    the command, the machine, the wall time, the figures and a
 *                 reading computed from the data
 *
 * Why in the CLI rather than a shell driver: the measurements need the
 * library's per-token view (probe.h) at every snapshot, and tuning, probing
 * and greedy answers then share one loaded model instead of reloading it per
 * step; seeds and thread counts are the tuner's own parameters. The binary
 * never needs Python; gnuplot is run as a separate program on the CSVs.
 *
 * Experiments here (the others in tools/exp_NAME.c):
 *   threshold      train facts with the memory tuner, stopping at a list of
 *                  step counts (mome_tune's max_steps, as `mome tune
 *                  --max-steps N`, each run resumed from the previous count's
 *                  checkpoint, which continues the uninterrupted run exactly);
 *                  at every snapshot, for every fact: the teacher-forced mean
 *                  and max answer-token loss under the engine with the
 *                  snapshot's memory, the real greedy answer (16 decoded
 *                  together, ans_greedy_batch), exact or not, and whether a
 *                  wrong answer is a near miss (the first wrong token was the
 *                  correct one's runner-up, or edit distance <= 2).
 *   random-labels  true vs random answers, MoME and LoRA: per epoch the
 *                  training loss, exact recall and held-out perplexity (MoME
 *                  by snapshots and the engine, LoRA by its tuner's per-pass
 *                  reports in the f32 stack, mome_tune_params.ppl_every).
 *
 * Budget: `make experiments` runs every fast version in about 30 minutes on
 * the 2-core machine; each fast version's CPU time is in docs/EXPERIMENTS.md
 * and in its own summary (exp_open_summary).
 */
#include "experiment.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "exp_util.h"
#include "facts.h"
#include "mome.h"
#include "probe.h"
#include "util.h"

#define LN2 0.69314718055994530942

/* ------------------------------------------------------------ threshold */

typedef struct th_row {
    int64_t step;
    int fact;
    double mean_loss, max_loss;
    int first_wrong_rank, greedy_exact, near_miss, edit;
} th_row;

/* Log-spaced loss bins: 4 per decade from 1e-3; below 1e-3 in the first. */
#define TH_BINS 22
static int th_bin(double x) {
    int b = x <= 1e-3 ? 0 : (int)floor((log10(x) + 3) * 4);
    if (b < 0) b = 0;
    if (b >= TH_BINS) b = TH_BINS - 1;
    return b;
}

static int th_write_bins(const char *path, const th_row *r, int n, int use_max) {
    int cnt[TH_BINS] = {0}, ex[TH_BINS] = {0}, nm[TH_BINS] = {0};
    for (int i = 0; i < n; i++) {
        const int b = th_bin(use_max ? r[i].max_loss : r[i].mean_loss);
        cnt[b]++;
        ex[b] += r[i].greedy_exact;
        nm[b] += r[i].near_miss;
    }
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "# loss bins (nats), 4 per decade; the first bin also holds every loss below 1e-3\n");
    fprintf(f, "lo,hi,center,n,p_exact,p_near_miss,p_wrong_other\n");
    for (int b = 0; b < TH_BINS; b++) {
        if (!cnt[b]) continue;
        const double lo = pow(10, -3 + b / 4.0), hi = pow(10, -3 + (b + 1) / 4.0);
        fprintf(f, "%.6g,%.6g,%.6g,%d,%.6f,%.6f,%.6f\n", lo, hi, sqrt(lo * hi), cnt[b], (double)ex[b] / cnt[b],
                (double)nm[b] / cnt[b], (double)(cnt[b] - ex[b] - nm[b]) / cnt[b]);
    }
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

static int th_write_plot(const char *dir) {
    FILE *f = exp_open_plot(dir, "threshold", "threshold.svg", 1000, 420);
    if (!f) return 1;
    fprintf(f,
            "set key bottom left box opaque\n"
            "set logscale x\n"
            "set xrange [0.0008:40]\n"
            "set yrange [0:1.05]\n"
            "set ylabel 'share of (snapshot, fact) answers'\n"
            "set grid\n"
            "set multiplot layout 1,2 title 'Greedy answer vs teacher-forced answer loss (memory snapshots during tuning)'\n"
            "set arrow 1 from 0.693147,graph 0 to 0.693147,graph 1 nohead dt 2 lc rgb 'black'\n"
            "set label 1 'ln 2' at 0.75,graph 0.96\n"
            "set xlabel 'max per-token answer loss (nats)'\n"
            "plot 'bins_max.csv' skip 2 using 3:5 with linespoints lw 2 pt 7 title 'P(exact)', \\\n"
            "     '' skip 2 using 3:6 with linespoints lw 2 pt 5 title 'P(near miss)'\n"
            "set xlabel 'mean per-token answer loss (nats)'\n"
            "plot 'bins_mean.csv' skip 2 using 3:5 with linespoints lw 2 pt 7 title 'P(exact)', \\\n"
            "     '' skip 2 using 3:6 with linespoints lw 2 pt 5 title 'P(near miss)'\n"
            "unset multiplot\n");
    return fclose(f) ? exp_fail("%s/plot.gp: write error", dir) : 0;
}

/* Increasing positive step counts; their number, or -1. */
static int parse_steps(const char *s, int64_t *out, int cap) {
    double v[256];
    const int n = exp_parse_list(s, v, cap < 256 ? cap : 256);
    for (int i = 0; i < n; i++) {
        out[i] = (int64_t)v[i];
        if (v[i] != (double)out[i] || out[i] < 1 || (i && out[i] <= out[i - 1])) return -1;
    }
    return n;
}

/* The fast version: 32 facts (the tuner's batch, so a step is one pass over
 * the facts still training) and 10 snapshots over the steps where the
 * answers turn exact. */
#define TH_FACTS 32
#define TH_STEPS "1,2,3,4,5,6,7,8,10,12"
#define TH_PARALLEL 16 /* greedy answers decoded together (ans_greedy_batch) */

/* One snapshot (mem, or none): every fact's teacher-forced answer losses
 * (probe_answer, one at a time on one context) and its greedy answer
 * (TH_PARALLEL at a time, each byte-identical to a one-at-a-time answer). */
static int th_snapshot(mome_model *m, mome_memory *mem, const fact_set *fs, const ans_question *qs, int threads,
                       int max_new, probe_result *pr, char **out) {
    const int nc = fs->n < TH_PARALLEL ? fs->n : TH_PARALLEL;
    mome_ctx *cs[TH_PARALLEL] = {0};
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_batch = 512;
    cp.n_threads = threads;
    int rc = 0;
    for (int k = 0; k < nc && !rc; k++)
        if (mome_ctx_init(m, &cp, &cs[k]) || (mem && mome_ctx_set_memory(cs[k], mem))) rc = exp_fail("%s", mome_errmsg());
    for (int i = 0; i < fs->n && !rc; i++)
        if (probe_answer(m, cs[0], qs[i].msgs, qs[i].n_msgs, fs->v[i].answers[0], NULL, 0, &pr[i]))
            rc = exp_fail("fact at %s:%d: %s", fs->path, fs->v[i].line, mome_errmsg());
    if (!rc && ans_greedy_batch(m, cs, nc, qs, fs->n, max_new, out, NULL, NULL, NULL, NULL, NULL))
        rc = exp_fail("greedy answers: %s", mome_errmsg());
    for (int k = 0; k < nc; k++) mome_ctx_free(cs[k]);
    return rc;
}

/* One run of the experiment: its settings, the facts and model every
 * snapshot reads, and every snapshot's rows. */
typedef struct th_exp {
    exp_common o;
    const char *facts_src, *steps_s;
    int n_facts, max_new, n_steps;
    double lr;
    int64_t steps[256];
    char def_facts[4096], work[3100], facts_path[3200], mem_path[3200], ckpt[3300];
    fact_set *fs;
    mome_model *m;
    FILE *csv;                       /* results.csv */
    mome_chat_msg *msgs;             /* (2 n) */
    ans_question *qs;                /* (n) each fact's question, as the tuner asks it */
    probe_result *pr;                /* (n) one snapshot's teacher-forced losses */
    char **outs;                     /* (n) one snapshot's greedy answers */
    th_row *rows;                    /* ((n_steps + 1) n) */
    int n_rows, n_snaps;
    int64_t steps_done[257];         /* each snapshot's tuner step */
    int exact_at[257];               /* and its exact greedy answers */
} th_exp;

/* The options and their checks: -1 to go on, else the exit status. */
static int th_parse(th_exp *x, int argc, char **argv) {
    exp_common_init(&x->o, "threshold", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED);
    snprintf(x->def_facts, sizeof x->def_facts, "%s/data/facts/languages.jsonl", exp_shared_dir());
    x->facts_src = x->def_facts, x->steps_s = TH_STEPS;
    x->n_facts = TH_FACTS, x->max_new = 24;
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&x->facts_src), .help = "JSON-lines facts"},
        {0, "--n-facts", "N", ARG_INT(&x->n_facts, 0, 0), .help = "the first N facts; the default runs the fast version"},
        {0, "--steps", "LIST", ARG_STR(&x->steps_s), .help = "increasing step counts to snapshot at"},
        {0, "--lr", "X", ARG_DOUBLE(&x->lr, 0, 0), .help = "tuner learning rate", .def = "the tuner's"},
        {0, "--max-new", "N", ARG_INT(&x->max_new, 0, 0), .help = "greedy answer length limit"},
    };
    const int prc = exp_parse_args(&x->o,
                                   "Is a fact stated exactly once its answer loss is low? Trains facts with the memory\n"
                                   "tuner and stops at each step count of --steps (one run, resumed from count to count); at\n"
                                   "each snapshot and for each fact records the teacher-forced mean and max answer-token\n"
                                   "loss under the engine, the greedy answer, exact or not, and near misses (first wrong\n"
                                   "token was the runner-up, or edit distance <= 2). Step 0 is the model without a memory.\n"
                                   "Writes results.csv, bins_max.csv, bins_mean.csv, plot.gp, threshold.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    x->n_steps = parse_steps(x->steps_s, x->steps, 256);
    if (x->n_steps < 1) {
        exp_fail("threshold: --steps expects increasing positive integers, got '%s'", x->steps_s);
        return 2;
    }
    if (x->n_facts < 1 || x->max_new < 1 || x->lr < 0) {
        exp_fail("threshold: --n-facts, --max-new must be positive, --lr non-negative");
        return 2;
    }
    return -1;
}

/* The facts, the model, results.csv and the buffers every snapshot uses. */
static int th_prepare(th_exp *x) {
    snprintf(x->work, sizeof x->work, "%s/work", x->o.dir);
    if (exp_mkdir_p(x->work)) return exp_fail("%s: %s", x->work, strerror(errno));
    snprintf(x->facts_path, sizeof x->facts_path, "%s/facts.jsonl", x->o.dir);
    snprintf(x->mem_path, sizeof x->mem_path, "%s/snapshot.mome", x->work);
    snprintf(x->ckpt, sizeof x->ckpt, "%s.ckpt", x->mem_path);
    unlink(x->mem_path);
    unlink(x->ckpt);
    int got;
    if (exp_copy_first_lines(x->facts_src, x->facts_path, x->n_facts, &got)) return 1;
    if (facts_load(x->facts_path, FACTS_CONFLICT_ERROR, &x->fs)) return exp_fail("%s", mome_errmsg());
    if (exp_load_model(&x->o, &x->m)) return 1;
    const int n = x->fs->n;
    char path[3200];
    snprintf(path, sizeof path, "%s/results.csv", x->o.dir);
    x->csv = fopen(path, "w");
    x->rows = malloc((size_t)(x->n_steps + 1) * (size_t)n * sizeof *x->rows);
    x->msgs = malloc((size_t)n * 2 * sizeof *x->msgs);
    x->qs = malloc((size_t)n * sizeof *x->qs);
    x->pr = malloc((size_t)n * sizeof *x->pr);
    x->outs = calloc((size_t)n, sizeof *x->outs);
    if (!x->csv || !x->rows || !x->msgs || !x->qs || !x->pr || !x->outs)
        return exp_fail("%s: cannot write (or out of memory)", path);
    for (int i = 0; i < n; i++) {
        mome_chat_msg *mm = x->msgs + 2 * i;
        x->qs[i] = (ans_question){mm, fact_messages(&x->fs->v[i], mm)};
    }
    fprintf(x->csv, "step,fact,line,n_tokens,mean_loss,max_loss,first_wrong,first_wrong_rank,greedy_exact,"
                    "edit_distance,near_miss,answer,output\n");
    return 0;
}

/* Tuning resumed to the step count of snapshot snap (>= 1), loaded into
 * *mem; *step the step it reached, *all_done whether every fact was
 * verified. */
static int th_tune_to(th_exp *x, int snap, mome_memory **mem, int64_t *step, int *all_done) {
    mome_tune_params tp = exp_tune_params();
    tp.facts_path = x->facts_path;
    tp.out_path = x->mem_path;
    /* the run to the previous count resumed to this one: a checkpoint holds
     * Adam's moments, the batch order and every fact's state, so the resumed
     * run is the uninterrupted one stopped here, bit for bit
     * (tests/cli/test_tune.sh) */
    if (snap == 1) unlink(x->ckpt);
    tp.max_steps = x->steps[snap - 1];
    tp.resume = snap > 1;
    tp.n_threads = x->o.threads;
    tp.seed = (uint64_t)x->o.seed;
    tp.checkpoint_s = 0;
    if (x->lr > 0) tp.lr = (float)x->lr;
    mome_tune_report rep;
    if (mome_tune(x->m, &tp, &rep)) return exp_fail("tune: %s", mome_errmsg());
    *step = rep.steps;
    *all_done = rep.n_memorized == rep.n_facts;
    if (mome_memory_load(x->mem_path, x->m, mem)) return exp_fail("%s", mome_errmsg());
    fprintf(stderr, "experiment: threshold: step %lld, %d/%d verified by the tuner, mean loss %.4f\n", (long long)*step,
            rep.n_memorized, rep.n_facts, rep.mean_loss);
    return 0;
}

/* One snapshot's rows: per fact its losses, greedy answer, exact or not,
 * edit distance and near miss, into results.csv and rows; the exact count. */
static int th_record(th_exp *x, int64_t step) {
    int n_exact = 0;
    for (int i = 0; i < x->fs->n; i++) {
        const fact *fa = &x->fs->v[i];
        const probe_result *pr = &x->pr[i];
        const int exact = facts_answer_matches(fa, x->outs[i]);
        int ed = 1 << 20;
        char *no = facts_normalize_answer(x->outs[i]);
        for (int k = 0; k < fa->n_answers && no; k++) {
            char *na = facts_normalize_answer(fa->answers[k]);
            if (na) {
                const int d = exp_edit_distance(no, na);
                if (d < ed) ed = d;
            }
            free(na);
        }
        free(no);
        const int near = !exact && (pr->first_wrong_rank == 2 || ed <= 2);
        n_exact += exact;
        fprintf(x->csv, "%lld,%d,%d,%d,%.6g,%.6g,%d,%d,%d,%d,%d,", (long long)step, i, fa->line, pr->n_tokens,
                pr->mean_loss, pr->max_loss, pr->first_wrong, pr->first_wrong_rank, exact, ed, near);
        exp_csv_str(x->csv, fa->answers[0]);
        fputc(',', x->csv);
        exp_csv_str(x->csv, x->outs[i]);
        fputc('\n', x->csv);
        x->rows[x->n_rows++] = (th_row){step, i, pr->mean_loss, pr->max_loss, pr->first_wrong_rank, exact, near, ed};
    }
    return n_exact;
}

/* Snapshot snap: 0 is the model without a memory, then the tuner's run to
 * each step count; stops early (*all_done) once the tuner verified every
 * fact. */
static int th_snapshot_at(th_exp *x, int snap, int *all_done) {
    mome_memory *mem = NULL;
    int64_t step = 0;
    *all_done = 0;
    int rc = snap > 0 ? th_tune_to(x, snap, &mem, &step, all_done) : 0;
    if (!rc) rc = th_snapshot(x->m, mem, x->fs, x->qs, x->o.threads, x->max_new, x->pr, x->outs);
    mome_memory_free(mem);
    const int n_exact = rc ? 0 : th_record(x, step);
    for (int i = 0; i < x->fs->n; i++) {
        free(x->outs[i]);
        x->outs[i] = NULL;
    }
    if (rc) return rc;
    x->steps_done[snap] = step;
    x->exact_at[snap] = n_exact;
    fprintf(stderr, "experiment: threshold: snapshot %d (step %lld): %d/%d greedy answers exact\n", snap, (long long)step,
            n_exact, x->fs->n);
    return 0;
}

/* summary.md: the run, the plot, the figures and the reading: is the bound
 * sufficient (below ln 2 everywhere -> exact)? how far above it do exact
 * answers reach, how low do wrong ones go? */
static int th_write_summary(const th_exp *x, int drew, int argc, char **argv, const exp_run *run) {
    int below = 0, below_exact = 0, above = 0, above_exact = 0, wrong = 0, near = 0, near_rank = 0;
    int mean_below = 0, mean_below_exact = 0;
    double min_wrong_max = INFINITY, max_exact_max = 0, min_wrong_mean = INFINITY;
    for (int i = 0; i < x->n_rows; i++) {
        const th_row *r = &x->rows[i];
        if (r->max_loss < LN2) below++, below_exact += r->greedy_exact;
        else above++, above_exact += r->greedy_exact;
        if (r->mean_loss < LN2) mean_below++, mean_below_exact += r->greedy_exact;
        if (!r->greedy_exact) {
            wrong++;
            near += r->near_miss;
            near_rank += r->first_wrong_rank == 2;
            if (r->max_loss < min_wrong_max) min_wrong_max = r->max_loss;
            if (r->mean_loss < min_wrong_mean) min_wrong_mean = r->mean_loss;
        } else if (r->max_loss > max_exact_max) max_exact_max = r->max_loss;
    }
    FILE *f = exp_open_summary(x->o.dir, "threshold (paper Fig. 3)", argc, argv, run);
    if (!f) return 1;
    fprintf(f, "- model: %s; facts: the first %d of %s; tuner seed %lld, %d thread(s), lr %s; greedy answers "
               "decoded %d at a time (ans_greedy_batch: each byte-identical to one decoded alone)\n",
            x->o.model, x->fs->n, x->facts_src, (long long)x->o.seed, x->o.threads, x->lr > 0 ? "as given" : "default",
            TH_PARALLEL);
    fprintf(f, "- snapshots (tuner steps; 0 = no memory):");
    for (int s = 0; s < x->n_snaps; s++) fprintf(f, " %lld (%d exact)", (long long)x->steps_done[s], x->exact_at[s]);
    fprintf(f, "\n- data: `results.csv` (one row per snapshot and fact), `bins_max.csv`, `bins_mean.csv`\n\n");
    exp_summary_plot(f, drew, "P(exact) and P(near miss) against answer loss", "threshold.svg");
    fprintf(f, "## Figures\n\n| | answers | greedy exact |\n|---|---:|---:|\n");
    fprintf(f, "| every answer token's loss < ln 2 (the sufficient bound) | %d | %d (%.1f%%) |\n", below, below_exact,
            below ? 100.0 * below_exact / below : 0);
    fprintf(f, "| some token's loss >= ln 2 | %d | %d (%.1f%%) |\n", above, above_exact,
            above ? 100.0 * above_exact / above : 0);
    fprintf(f, "| mean answer loss < ln 2 | %d | %d (%.1f%%) |\n\n", mean_below, mean_below_exact,
            mean_below ? 100.0 * mean_below_exact / mean_below : 0);
    fprintf(f, "Wrong answers: %d, of which near misses %d (%d with the correct token as runner-up at the "
               "first wrong token; the rest within edit distance 2).\n\n", wrong, near, near_rank);
    fprintf(f, "## Reading (computed from the data)\n\n");
    if (below == below_exact)
        fprintf(f, "- The bound held as a sufficient condition: all %d answers whose every token had loss "
                   "< ln 2 were stated exactly by greedy decoding.\n", below);
    else
        fprintf(f, "- **The bound did not hold** for %d of %d answers with every token below ln 2: the greedy "
                   "answer differed (teacher-forced prefill and token-by-token decoding differ in their last bits, "
                   "or the answer matched but normalisation did not); see results.csv.\n",
                below - below_exact, below);
    if (wrong)
        fprintf(f, "- The lowest max-token loss of a wrong answer was %.3f nats (mean-token loss %.3f): below "
                   "that every answer was exact.\n", min_wrong_max, min_wrong_mean);
    if (above_exact)
        fprintf(f, "- The bound is not necessary: %d answers with some token's loss >= ln 2 (up to %.3f nats) "
                   "were exact anyway (the correct token was still the argmax).\n", above_exact, max_exact_max);
    if (wrong)
        fprintf(f, "- Near misses were %.0f%% of wrong answers: %s.\n", 100.0 * near / wrong,
                near * 2 > wrong ? "most errors were close to the fact, not unrelated text"
                                 : "most errors were not close to the fact");
    return fclose(f) ? exp_fail("%s/summary.md: write error", x->o.dir) : 0;
}

static void th_free(th_exp *x) {
    if (x->m) mome_model_free(x->m);
    if (x->csv) fclose(x->csv);
    free(x->msgs);
    free(x->qs);
    free(x->pr);
    free(x->outs);
    free(x->rows);
    facts_free(x->fs);
}

static int exp_threshold(int argc, char **argv) {
    th_exp x;
    memset(&x, 0, sizeof x);
    int rc = th_parse(&x, argc, argv);
    if (rc >= 0) return rc;
    if ((rc = exp_common_check(&x.o))) return rc;
    exp_run run;
    exp_run_start(&run);
    rc = th_prepare(&x);
    int all_done = 0;
    for (int snap = 0; snap <= x.n_steps && !rc && !all_done; snap++) {
        rc = th_snapshot_at(&x, snap, &all_done);
        if (!rc) x.n_snaps = snap + 1;
    }
    if (x.m) mome_model_free(x.m);
    x.m = NULL;
    if (x.csv && fclose(x.csv) && !rc) rc = exp_fail("%s/results.csv: write error", x.o.dir);
    x.csv = NULL;
    char path[3200];
    snprintf(path, sizeof path, "%s/bins_max.csv", x.o.dir);
    if (!rc) rc = th_write_bins(path, x.rows, x.n_rows, 1);
    snprintf(path, sizeof path, "%s/bins_mean.csv", x.o.dir);
    if (!rc) rc = th_write_bins(path, x.rows, x.n_rows, 0);
    if (!rc) rc = th_write_plot(x.o.dir);
    const int drew = rc ? 0 : exp_run_gnuplot(x.o.dir);
    if (!rc) rc = th_write_summary(&x, drew, argc, argv, &run);
    const int64_t last_step = x.n_snaps ? x.steps_done[x.n_snaps - 1] : 0;
    th_free(&x);
    if (!rc) fprintf(stderr, "experiment: threshold: wrote %s/{results.csv,bins_max.csv,bins_mean.csv,plot.gp%s,summary.md} "
                             "in %.1f s (last step %lld)\n", x.o.dir, drew ? ",threshold.svg" : "", mome_time_s() - run.t0,
                     (long long)last_step);
    return rc ? 1 : 0;
}

/* --------------------------------------------------------- random-labels */

/* The fast version: RL_FACTS questions (LoRA's batch, so that a LoRA step is
 * an epoch too), MoME measured at the epochs RL_MOME_EPOCHS (LoRA's loss and
 * recall come with every epoch), the perplexity of both every RL_PPL_EVERY
 * epochs (the spacing), LoRA stopped after RL_LORA_STEPS steps (a
 * count, so that a loaded machine gives the same run); time caps only as a
 * safety. --full: the 100 questions, MoME every 2 epochs, LoRA to
 * convergence or 60 minutes per run. Measured: docs/EXPERIMENTS.md. */
#define RL_FACTS 8
#define RL_MOME_EPOCHS "2,4,6,8,12,16,24,32,48,64,96,128"
#define RL_PPL_EVERY 10
#define RL_LORA_STEPS 30
#define RL_MINUTES 30
#define RL_MAX_NEW 48 /* a random answer is about 20 tokens */

/* One measured epoch of one run (perplexity < 0: not measured then). */
typedef struct rl_point {
    int epoch;
    int64_t step;
    double elapsed_s, mean_loss, ppl;
    int exact, memorized, n;
} rl_point;

typedef struct rl_curve {
    rl_point *v;
    int n, cap, failed;
} rl_curve;

static void rl_add(rl_curve *c, rl_point p) {
    if (c->n == c->cap) {
        const int cap = c->cap ? 2 * c->cap : 64;
        rl_point *v = realloc(c->v, (size_t)cap * sizeof *v);
        if (!v) { c->failed = 1; return; }
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = p;
}

/* LoRA's "pass" reports: one point per epoch. */
static void rl_lora_progress(const mome_tune_progress *p, void *user) {
    if (strcmp(p->phase, "pass")) return;
    rl_add(user, (rl_point){p->pass, p->step, p->elapsed_s, p->mean_loss, p->perplexity, p->n_exact, p->n_memorized,
                            p->n_facts});
    fprintf(stderr, "experiment: random-labels: lora epoch %d (step %lld): %d/%d exact, loss %.4f%s\n", p->pass,
            (long long)p->step, p->n_exact, p->n_facts, p->mean_loss, p->perplexity > 0 ? ", perplexity measured" : "");
}

/* The same questions with random 32-character [A-Z0-9] answers. */
static int rl_write_random(const fact_set *fs, const char *path, uint64_t seed) {
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    static const char sym[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint64_t st = seed;
    for (int i = 0; i < fs->n; i++) {
        char ans[33];
        for (int k = 0; k < 32; k++) ans[k] = sym[exp_rand(&st) % 36];
        ans[32] = 0;
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddStringToObject(o, "question", fs->v[i].question) || !cJSON_AddStringToObject(o, "answer", ans)) {
            cJSON_Delete(o);
            fclose(f);
            return exp_fail("out of memory");
        }
        char *txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!txt) { fclose(f); return exp_fail("out of memory"); }
        fprintf(f, "%s\n", txt);
        free(txt);
    }
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

/* Under the engine, with mem or none: exact recall of the facts (greedy
 * answers, batched; facts NULL: none) and, if ppl, the text's perplexity
 * (else -1). */
static int rl_engine(mome_model *m, mome_memory *mem, const char *facts, const exp_common *o, int ppl, double *recall,
                     double *perplexity) {
    mome_eval_params ep = mome_eval_default_params();
    ep.facts_path = facts;
    ep.text_path = ppl ? o->text : NULL;
    ep.text_max_bytes = o->text_bytes;
    ep.max_new_tokens = RL_MAX_NEW;
    ep.on_conflict = 1;
    ep.no_context = ep.no_variants = 1;
    ep.n_threads = o->threads;
    mome_eval_result r;
    if (mome_eval(m, mem, &ep, &r)) return exp_fail("eval: %s", mome_errmsg());
    *recall = r.recall;
    *perplexity = ppl ? r.perplexity : -1;
    return 0;
}

/* MoME on one answer set, measured at the given epochs: the tuner with a
 * batch of every fact, so that one step is one epoch (facts do not share
 * experts, so each fact's training is that of the default batching, pass by
 * pass), stopped at each of those step counts and resumed from its
 * checkpoint (the uninterrupted run, bit for bit); at each stop the engine
 * with the memory measures recall, and perplexity at the epochs that are
 * multiples of ppl_every and at the last. Epoch 0 is the model without a
 * memory (its perplexity ppl0, measured once for both sets; its loss is not
 * measured: blank). */
static int rl_mome(mome_model *m, const char *facts, const char *work, const char *labels, const exp_common *o,
                   const int64_t *epochs, int n_epochs, int ppl_every, double ppl0, double minutes, rl_curve *cv) {
    char out[3300], ck[3400];
    snprintf(out, sizeof out, "%s/mome_%s.mome", work, labels);
    snprintf(ck, sizeof ck, "%s.ckpt", out);
    unlink(ck);
    double recall, ppl;
    if (rl_engine(m, NULL, facts, o, 0, &recall, &ppl)) return 1;
    int n = 0;
    {
        fact_set *fs;
        if (facts_load(facts, FACTS_CONFLICT_FIRST, &fs)) return exp_fail("%s", mome_errmsg());
        n = fs->n;
        facts_free(fs);
    }
    rl_add(cv, (rl_point){0, 0, 0, -1, ppl0, (int)lround(recall * n), 0, n});
    for (int k = 0, last = 0; !last && k < n_epochs; k++) {
        mome_tune_params tp = exp_tune_params();
        tp.facts_path = facts;
        tp.out_path = out;
        tp.on_conflict = 1;
        tp.n_threads = o->threads;
        tp.seed = (uint64_t)o->seed;
        tp.batch = n;
        tp.max_steps = epochs[k];
        tp.resume = k > 0;
        tp.checkpoint_s = 0;
        mome_tune_report rep;
        if (mome_tune(m, &tp, &rep)) return exp_fail("tune: %s", mome_errmsg());
        /* done, nothing left to train, or out of time */
        last = rep.n_memorized == n || rep.steps < tp.max_steps || rep.seconds >= minutes * 60 || k == n_epochs - 1;
        mome_memory *mem;
        if (mome_memory_load(out, m, &mem)) return exp_fail("%s", mome_errmsg());
        const int rc = rl_engine(m, mem, facts, o, last || rep.steps % ppl_every == 0, &recall, &ppl);
        mome_memory_free(mem);
        if (rc) return 1;
        rl_add(cv, (rl_point){(int)rep.steps, rep.steps, rep.seconds, rep.mean_loss, ppl, (int)lround(recall * n),
                              rep.n_memorized, n});
        fprintf(stderr, "experiment: random-labels: mome %s epoch %lld: %d/%d verified, engine recall %.3f, loss %.4f, "
                        "perplexity %.4f\n", labels, (long long)rep.steps, rep.n_memorized, n, recall, rep.mean_loss, ppl);
    }
    unlink(ck);
    return cv->failed ? exp_fail("out of memory") : 0;
}

/* LoRA on one answer set: one run, a point per epoch (the tuner's re-check of
 * every fact in the f32 stack) with the perplexity every `every` epochs. */
static int rl_lora(mome_model *m, const char *facts, const char *work, const char *labels, const exp_common *o, int every,
                   int max_steps, double minutes, rl_curve *cv, mome_tune_report *rep) {
    char out[3300];
    snprintf(out, sizeof out, "%s/lora_%s.gguf", work, labels);
    mome_tune_params tp = exp_tune_params();
    tp.facts_path = facts;
    tp.out_path = out;
    tp.method = MOME_TUNE_LORA;
    tp.on_conflict = 1;
    tp.n_threads = o->threads;
    tp.seed = (uint64_t)o->seed;
    tp.max_minutes = minutes;
    tp.max_steps = max_steps;
    tp.checkpoint_s = 0;
    tp.ppl_text = o->text;
    tp.ppl_text_bytes = o->text_bytes;
    tp.ppl_every = every;
    tp.progress = rl_lora_progress;
    tp.user = cv;
    if (mome_tune(m, &tp, rep)) return exp_fail("tune: %s", mome_errmsg());
    /* the last epoch is the final state when the run converged: its perplexity is the run's "after" */
    rl_point *last = cv->n ? &cv->v[cv->n - 1] : NULL;
    if (last && last->step == rep->steps && last->ppl < 0) last->ppl = rep->ppl_after;
    return cv->failed ? exp_fail("out of memory") : 0;
}

static int rl_write_plot(const char *dir) {
    FILE *f = exp_open_plot(dir, "random-labels", "random_labels.svg", 1260, 760);
    if (!f) return 1;
    static const char *const meth[2] = {"mome", "lora"};
    static const char *const title[2] = {"MoME (frozen model + memory; engine)", "LoRA (rank 8, all blocks; f32 stack)"};
    fprintf(f, "set grid\n"
               "set xrange [0:*]\n"
               "set xlabel 'epoch (pass over the facts still training)'\n"
               "set key box opaque\n"
               "set multiplot layout 2,3 title 'True vs random 32-character answers (NQ-open questions)'\n");
    for (int mi = 0; mi < 2; mi++) {
        fprintf(f, "set logscale y\nset autoscale y\nset key top right\nset ylabel 'mean answer loss (nats)'\n"
                   "set title \"%s\"\n"
                   "plot 'curve_%s_true.csv' skip 1 using 1:($4 > 0 ? $4 : 1/0) with linespoints lw 2 pt 7 ps 0.5 title 'true', \\\n"
                   "     'curve_%s_random.csv' skip 1 using 1:($4 > 0 ? $4 : 1/0) with linespoints lw 2 pt 5 ps 0.5 title 'random'\n",
                title[mi], meth[mi], meth[mi]);
        fprintf(f, "unset logscale y\nset yrange [0:1.05]\nset key bottom right\nset ylabel 'exact recall'\nset title '%s'\n"
                   "plot 'curve_%s_true.csv' skip 1 using 1:($5/$7) with linespoints lw 2 pt 7 ps 0.5 title 'true', \\\n"
                   "     'curve_%s_random.csv' skip 1 using 1:($5/$7) with linespoints lw 2 pt 5 ps 0.5 title 'random'\n",
                mi ? "LoRA: every answer token the argmax" : "MoME: greedy answers, engine", meth[mi], meth[mi]);
        fprintf(f, "set autoscale y\nset key top left\nset ylabel 'held-out perplexity'\nset title '%s'\n"
                   "plot 'ppl_%s_true.csv' skip 1 using 1:2 with linespoints lw 2 pt 7 title 'true', \\\n"
                   "     'ppl_%s_random.csv' skip 1 using 1:2 with linespoints lw 2 pt 5 title 'random'\n",
                mi ? "LoRA: perplexity, f32 stack" : "MoME: perplexity, engine", meth[mi], meth[mi]);
    }
    fprintf(f, "unset multiplot\n");
    return fclose(f) ? exp_fail("%s/plot.gp: write error", dir) : 0;
}

/* curve_METHOD_LABELS.csv (every measured epoch), ppl_METHOD_LABELS.csv (the
 * epochs with a perplexity), and the rows into results.csv. */
static int rl_write_curve(const char *dir, const char *method, const char *labels, const rl_curve *cv, FILE *all) {
    char path[3300], ppath[3300];
    snprintf(path, sizeof path, "%s/curve_%s_%s.csv", dir, method, labels);
    snprintf(ppath, sizeof ppath, "%s/ppl_%s_%s.csv", dir, method, labels);
    FILE *f = fopen(path, "w"), *p = fopen(ppath, "w");
    if (!f || !p) {
        if (f) fclose(f);
        if (p) fclose(p);
        return exp_fail("%s: %s", f ? ppath : path, strerror(errno));
    }
    fprintf(f, "epoch,step,elapsed_s,mean_loss,exact,memorized,n_facts,perplexity\n");
    fprintf(p, "epoch,perplexity\n");
    for (int i = 0; i < cv->n; i++) {
        const rl_point *q = &cv->v[i];
        char loss[32] = "", ppl[32] = "";
        if (q->mean_loss >= 0) snprintf(loss, sizeof loss, "%.6f", q->mean_loss);
        if (q->ppl > 0) snprintf(ppl, sizeof ppl, "%.6f", q->ppl);
        fprintf(f, "%d,%lld,%.2f,%s,%d,%d,%d,%s\n", q->epoch, (long long)q->step, q->elapsed_s, loss, q->exact,
                q->memorized, q->n, ppl);
        fprintf(all, "%s,%s,%d,%lld,%.2f,%s,%d,%d,%d,%s\n", method, labels, q->epoch, (long long)q->step, q->elapsed_s,
                loss, q->exact, q->memorized, q->n, ppl);
        if (q->ppl > 0) fprintf(p, "%d,%.6f\n", q->epoch, q->ppl);
    }
    const int bad = fclose(p) | fclose(f);
    return bad ? exp_fail("%s: write error", path) : 0;
}

/* What a run's curve says: the first epoch of full exact recall and of every
 * fact memorized (-1: never), the last loss and the perplexity range. */
typedef struct rl_final {
    int first_exact, first_memorized, last_epoch, exact, memorized, n, n_ppl;
    int64_t steps;
    double seconds, loss, ppl0, ppl_last, ppl_max;
} rl_final;

static rl_final rl_summarize(const rl_curve *cv) {
    rl_final r = {-1, -1, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1};
    for (int i = 0; i < cv->n; i++) {
        const rl_point *q = &cv->v[i];
        if (r.first_exact < 0 && q->exact == q->n) r.first_exact = q->epoch;
        if (r.first_memorized < 0 && q->memorized == q->n) r.first_memorized = q->epoch;
        r.last_epoch = q->epoch;
        r.exact = q->exact;
        r.memorized = q->memorized;
        r.n = q->n;
        r.steps = q->step;
        r.seconds = q->elapsed_s;
        if (q->mean_loss >= 0) r.loss = q->mean_loss;
        if (q->ppl > 0) {
            if (r.ppl0 < 0) r.ppl0 = q->ppl;
            r.ppl_last = q->ppl;
            if (q->ppl > r.ppl_max) r.ppl_max = q->ppl;
            r.n_ppl++;
        }
    }
    return r;
}

/* One run of the experiment: its settings, the two answer sets, and what
 * each method made of each. */
static const char *const rl_methods[2] = {"mome", "lora"}, *const rl_labels[2] = {"true", "random"};
typedef struct rl_exp {
    exp_common o;
    const char *facts_src, *epochs_s;
    int n_facts, ppl_every, replot, full, lora_steps, n_epochs;
    double mome_minutes, lora_minutes;
    int64_t epochs[256];
    char def_facts[4096], full_epochs[512], work[3100], sets[2][3200];
    int n;                     /* questions after duplicates */
    mome_model *m;
    FILE *all;                 /* results.csv */
    double ppl0;               /* held-out perplexity without a memory */
    rl_final fin[2][2];        /* [method][labels] */
    mome_tune_report lrep[2];  /* LoRA's reports, per labels */
} rl_exp;

/* The options and their checks: -1 to go on, else the exit status. */
static int rl_parse(rl_exp *x, int argc, char **argv) {
    exp_common_init(&x->o, "random-labels", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED | EXP_OPT_TEXT);
    snprintf(x->def_facts, sizeof x->def_facts, "%s/data/facts/NQ-open.dev.jsonl", exp_shared_dir());
    x->facts_src = x->def_facts, x->epochs_s = RL_MOME_EPOCHS;
    x->n_facts = RL_FACTS, x->ppl_every = RL_PPL_EVERY, x->lora_steps = RL_LORA_STEPS;
    x->mome_minutes = RL_MINUTES, x->lora_minutes = RL_MINUTES;
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&x->facts_src), .help = "questions"},
        {0, "--n-facts", "N", ARG_INT(&x->n_facts, 0, 0), .help = "the first N questions; the default runs the fast version"},
        {0, "--mome-epochs", "LIST", ARG_STR(&x->epochs_s),
         .help = "MoME: loss and recall at these epochs, increasing; LoRA's come with every epoch"},
        {0, "--ppl-every", "P", ARG_INT(&x->ppl_every, 0, 0),
         .help = "perplexity every P epochs; MoME: at its snapshots whose epoch P divides, and the last"},
        {0, "--lora-steps", "N", ARG_INT(&x->lora_steps, 0, 0), .help = "LoRA stops after N steps of 8 questions; 0: no limit"},
        {0, "--mome-minutes", "M", ARG_DOUBLE(&x->mome_minutes, 0, 0), .help = "time limit of each MoME run"},
        {0, "--lora-minutes", "M", ARG_DOUBLE(&x->lora_minutes, 0, 0), .help = "time limit of each LoRA run"},
        {0, "--full", NULL, ARG_FLAG(&x->full),
         .help = "the issue's version: 100 questions, MoME every 2 epochs, perplexity every 10, LoRA without a step "
                 "limit, up to 60 minutes per run"},
        {0, "--replot", NULL, ARG_FLAG(&x->replot), .help = "only rewrite plot.gp and redraw from the CSVs already in -o DIR"},
    };
    const int prc = exp_parse_args(&x->o,
                                   "The randomization test (paper Fig. 1 and 5): the same questions trained with their true\n"
                                   "answers and with random 32-character [A-Z0-9] answers, by the memory tuner and by the LoRA\n"
                                   "baseline; training loss, exact recall and held-out perplexity per epoch (pass over the facts\n"
                                   "still training). Writes results.csv, curve_*.csv, ppl_*.csv, finals.csv, plot.gp,\n"
                                   "random_labels.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    if (x->full) {
        x->n_facts = 100;
        x->ppl_every = 10;
        for (int e = 2; e <= 128; e += 2)
            snprintf(x->full_epochs + strlen(x->full_epochs), sizeof x->full_epochs - strlen(x->full_epochs), "%s%d",
                     e > 2 ? "," : "", e);
        x->epochs_s = x->full_epochs;
        x->lora_minutes = 60;
        x->lora_steps = 0;
    }
    x->n_epochs = parse_steps(x->epochs_s, x->epochs, 256);
    if (x->n_epochs < 1) {
        exp_fail("random-labels: --mome-epochs expects increasing positive integers, got '%s'", x->epochs_s);
        return 2;
    }
    if (x->n_facts < 1 || x->ppl_every < 1 || x->lora_steps < 0 || !(x->mome_minutes > 0) || !(x->lora_minutes > 0)) {
        exp_fail("random-labels: --n-facts, --ppl-every and the time limits must be positive, --lora-steps non-negative");
        return 2;
    }
    return -1;
}

/* The two answer sets (true.jsonl, random.jsonl), the model, results.csv,
 * and the perplexity without a memory (MoME's at epoch 0, the same for both
 * sets). */
static int rl_prepare(rl_exp *x) {
    snprintf(x->work, sizeof x->work, "%s/work", x->o.dir);
    if (exp_mkdir_p(x->work)) return exp_fail("%s: %s", x->work, strerror(errno));
    snprintf(x->sets[0], sizeof x->sets[0], "%s/true.jsonl", x->o.dir);
    snprintf(x->sets[1], sizeof x->sets[1], "%s/random.jsonl", x->o.dir);
    int got;
    if (exp_copy_first_lines(x->facts_src, x->sets[0], x->n_facts, &got)) return 1;
    fact_set *fs;
    if (facts_load(x->sets[0], FACTS_CONFLICT_FIRST, &fs)) return exp_fail("%s", mome_errmsg());
    const int rc = rl_write_random(fs, x->sets[1], (uint64_t)x->o.seed ^ 0x5eed);
    x->n = fs->n;
    facts_free(fs);
    if (rc) return 1;
    if (exp_load_model(&x->o, &x->m)) return 1;
    char path[3200];
    snprintf(path, sizeof path, "%s/results.csv", x->o.dir);
    if (!(x->all = fopen(path, "w"))) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(x->all, "method,labels,epoch,step,elapsed_s,mean_loss,exact,memorized,n_facts,perplexity\n");
    double recall0;
    return rl_engine(x->m, NULL, NULL, &x->o, 1, &recall0, &x->ppl0);
}

/* Method mi on answer set li: its curve into curve_*.csv, ppl_*.csv and
 * results.csv, and what it says into fin. */
static int rl_train(rl_exp *x, int mi, int li) {
    rl_curve cv = {0};
    fprintf(stderr, "experiment: random-labels: %s on %s answers (at most %.1f min)\n", rl_methods[mi], rl_labels[li],
            mi ? x->lora_minutes : x->mome_minutes);
    int rc = mi ? rl_lora(x->m, x->sets[li], x->work, rl_labels[li], &x->o, x->ppl_every, x->lora_steps, x->lora_minutes,
                          &cv, &x->lrep[li])
                : rl_mome(x->m, x->sets[li], x->work, rl_labels[li], &x->o, x->epochs, x->n_epochs, x->ppl_every, x->ppl0,
                          x->mome_minutes, &cv);
    if (!rc) rc = rl_write_curve(x->o.dir, rl_methods[mi], rl_labels[li], &cv, x->all);
    if (!rc) x->fin[mi][li] = rl_summarize(&cv);
    free(cv.v);
    return rc;
}

/* finals.csv: one row per method and answer set. */
static int rl_write_finals(const rl_exp *x) {
    char path[3200];
    snprintf(path, sizeof path, "%s/finals.csv", x->o.dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "method,labels,epochs,steps,seconds,exact,memorized,n_facts,first_epoch_all_exact,"
               "first_epoch_all_memorized,mean_loss,ppl_before,ppl_last,ppl_max\n");
    for (int mi = 0; mi < 2; mi++)
        for (int li = 0; li < 2; li++) {
            const rl_final *r = &x->fin[mi][li];
            fprintf(f, "%s,%s,%d,%lld,%.1f,%d,%d,%d,%d,%d,%.6f,%.6f,%.6f,%.6f\n", rl_methods[mi], rl_labels[li],
                    r->last_epoch, (long long)r->steps, r->seconds, r->exact, r->memorized, r->n, r->first_exact,
                    r->first_memorized, r->loss, r->ppl0, r->ppl_last, r->ppl_max);
        }
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

/* The summary's "Reading" section: what the data say, computed from them. */
static void rl_write_reading(FILE *f, const rl_exp *x) {
    const char *const *labels = rl_labels;
    fprintf(f, "\n## Reading (computed from the data)\n\n");
    for (int mi = 0; mi < 2; mi++) {
        const rl_final *t = &x->fin[mi][0], *r = &x->fin[mi][1];
        fprintf(f, "- %s: ", mi ? "LoRA" : "MoME");
        for (int li = 0; li < 2; li++) {
            const rl_final *fx = &x->fin[mi][li];
            if (fx->first_exact >= 0)
                fprintf(f, "%s answers all exact from epoch %d", labels[li], fx->first_exact);
            else
                fprintf(f, "%s answers **%d/%d exact when the run stopped** at epoch %d (%s)", labels[li], fx->exact,
                        fx->n, fx->last_epoch,
                        !mi ? "its last listed epoch or time limit"
                        : x->lora_steps && x->lrep[li].steps >= x->lora_steps ? "its step limit" : "its time limit");
            if (fx->first_memorized >= 0) fprintf(f, ", every fact memorized by the tuner's rule at epoch %d", fx->first_memorized);
            fprintf(f, "; ");
        }
        if (t->first_memorized > 0 && r->first_memorized > 0)
            fprintf(f, "random answers took %.1fx the epochs of true ones; ", (double)r->first_memorized / t->first_memorized);
        fprintf(f, "final training loss %.4f (true) and %.4f (random); ", t->loss, r->loss);
        if (t->ppl_max == t->ppl0 && r->ppl_max == r->ppl0 && t->ppl_last == t->ppl0 && r->ppl_last == r->ppl0)
            fprintf(f, "held-out perplexity unchanged at every measured epoch (%.4f, bit-identical%s).\n", t->ppl0,
                    mi ? "" : ": plain text has no user turn, so the memory selects nothing");
        else
            fprintf(f, "held-out perplexity at its highest %+.2f%% (true) and %+.2f%% (random) from epoch 0, %+.2f%% and "
                       "%+.2f%% at the last measured epoch.\n",
                    100 * (t->ppl_max / t->ppl0 - 1), 100 * (r->ppl_max / r->ppl0 - 1),
                    100 * (t->ppl_last / t->ppl0 - 1), 100 * (r->ppl_last / r->ppl0 - 1));
    }
}

/* summary.md: the run, what differs from the version, the plot,
 * the table, the reading. */
static int rl_write_summary(const rl_exp *x, int drew, int argc, char **argv, const exp_run *run) {
    const char *const *methods = rl_methods, *const *labels = rl_labels;
    FILE *f = exp_open_summary(x->o.dir, "random-labels (paper Fig. 1 and 5)", argc, argv, run);
    if (!f) return 1;
    fprintf(f, "- model: %s; questions: the first %d of %s (%d after duplicates); random answers: 32 characters "
               "of [A-Z0-9], seed %lld; %d thread(s)\n",
            x->o.model, x->n_facts, x->facts_src, x->n, (long long)x->o.seed, x->o.threads);
    if (x->full) fprintf(f, "- the full version (`--full`): the issue's 100 questions, perplexity every 10 epochs\n");
    else
        fprintf(f, "- **what this run does differently from the issue**: %d questions, not 100; MoME's loss and recall "
                   "at epochs %s (LoRA's every epoch), perplexity every %d epochs; LoRA stopped after %d steps "
                   "(%s) if it has not converged (the issue: to convergence). `--full` runs the issue's version "
                   "(100 questions, MoME every 2 epochs, perplexity every 10, LoRA to convergence or 60 minutes "
                   "per run)\n",
                x->n, x->epochs_s, x->ppl_every, x->lora_steps, x->n <= 8 ? "a step is an epoch with at most 8 questions" : "8 questions a step");
    fprintf(f, "- epoch: a pass over the facts still training (both tuners train only facts not yet memorized). "
               "MoME: the memory tuner with a batch of all %d facts, so a step is an epoch, stopped at each measured "
               "epoch and resumed from its checkpoint (at most %.1f min per run; its seconds include one preparation "
               "per resume); LoRA: rank 8, alpha 16, all blocks, 8 facts a step, one run of at most %d steps and "
               "%.1f min\n",
            x->n, x->mome_minutes, x->lora_steps, x->lora_minutes);
    fprintf(f, "- measured: training loss (the tuners' mean answer loss over all facts; MoME's at epoch 0 not "
               "measured); exact recall (MoME: greedy answers of the engine with the memory, `mome eval`'s recall; "
               "LoRA: every answer token and the end of turn the teacher-forced argmax in the f32 stack, what "
               "greedy decoding states, at every epoch); held-out perplexity of the first %lld bytes of %s every "
               "%d epochs (MoME: engine, at the snapshots whose epoch %d divides and the last; LoRA: f32 stack, the "
               "engine does not run adapters, so compare each method's curve with its own start)\n",
            (long long)x->o.text_bytes, x->o.text, x->ppl_every, x->ppl_every);
    fprintf(f, "- data: `results.csv` (every measured epoch), `curve_*.csv`, `ppl_*.csv`, `finals.csv`\n\n");
    exp_summary_plot(f, drew, "loss, exact recall and perplexity per epoch, true vs random answers", "random_labels.svg");
    fprintf(f, "| method | answers | epochs | steps | seconds | exact | memorized | first epoch all exact | "
               "final loss | perplexity first -> last (max) |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int mi = 0; mi < 2; mi++)
        for (int li = 0; li < 2; li++) {
            const rl_final *r = &x->fin[mi][li];
            char fe[16] = "never";
            if (r->first_exact >= 0) snprintf(fe, sizeof fe, "%d", r->first_exact);
            fprintf(f, "| %s | %s | %d | %lld | %.1f | %d/%d | %d/%d | %s | %.4f | %.4f -> %.4f (%.4f, %+.2f%%) |\n",
                    methods[mi], labels[li], r->last_epoch, (long long)r->steps, r->seconds, r->exact, r->n,
                    r->memorized, r->n, fe, r->loss, r->ppl0, r->ppl_last, r->ppl_max,
                    100 * (r->ppl_max / r->ppl0 - 1));
        }
    rl_write_reading(f, x);
    return fclose(f) ? exp_fail("%s/summary.md: write error", x->o.dir) : 0;
}

static int exp_random_labels(int argc, char **argv) {
    rl_exp x;
    memset(&x, 0, sizeof x);
    x.ppl0 = -1;
    int rc = rl_parse(&x, argc, argv);
    if (rc >= 0) return rc;
    if ((rc = exp_common_check(&x.o))) return rc;
    if (x.replot) {
        if (rl_write_plot(x.o.dir)) return 1;
        return exp_run_gnuplot(x.o.dir) ? 0 : 1;
    }
    exp_run run;
    exp_run_start(&run);
    rc = rl_prepare(&x);
    for (int mi = 0; mi < 2 && !rc; mi++)
        for (int li = 0; li < 2 && !rc; li++) rc = rl_train(&x, mi, li);
    if (x.m) mome_model_free(x.m);
    if (x.all && fclose(x.all) && !rc) rc = exp_fail("%s/results.csv: write error", x.o.dir);
    if (!rc) rc = rl_write_finals(&x);
    if (!rc) rc = rl_write_plot(x.o.dir);
    const int drew = rc ? 0 : exp_run_gnuplot(x.o.dir);
    if (!rc) rc = rl_write_summary(&x, drew, argc, argv, &run);
    if (!rc) fprintf(stderr, "experiment: random-labels: wrote %s in %.1f s\n", x.o.dir, mome_time_s() - run.t0);
    return rc ? 1 : 0;
}

/* ------------------------------------------------------------------ main */

/* One row per experiment: its name, its entry point (argv[0] is the name)
 * and its line in `mome experiment --help`. An experiment in its own file
 * (tools/exp_NAME.c) declares its entry point in experiment.h. */
static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} EXPERIMENTS[] = {
    {"threshold", exp_threshold,
     "P(exact answer) and P(near miss) against the answer's per-token loss over tuning snapshots (paper Fig. 3)"},
    {"random-labels", exp_random_labels,
     "true vs random 32-character answers, MoME and LoRA: training loss, exact recall and held-out perplexity "
     "per epoch (paper Fig. 1 and 5)"},
    {"frozen-vs-unfrozen", exp_frozen,
     "facts taught to MoME (frozen model) vs LoRA vs full fine-tuning in f32: steps and time to 100% recall, "
     "held-out perplexity and capitals contains-recall change"},
    {"editing", exp_editing,
     "zsRE facts added to one memory a batch at a time: recall so far, paraphrases, locality, perplexity, "
     "decode speed, file size"},
    {"capacity", exp_capacity,
     "random facts at growing sizes: recall, locality (look-alike and real questions), perplexity, tuning time, "
     "file size, selection by key weight and threshold"},
    {"topk", exp_topk,
     "facts mixed per question (--top-k 1..64), own or all values trained: recall, steps, tuning time, paraphrases, "
     "locality, decode speed, file size"},
};
#define N_EXPERIMENTS ((int)(sizeof EXPERIMENTS / sizeof EXPERIMENTS[0]))

int experiment_main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        FILE *o = argc < 2 ? stderr : stdout;
        fprintf(o, "usage: mome experiment NAME [options]   (mome experiment NAME --help)\n\n"
                   "Runs one of the paper's experiments and writes results.csv, plots (gnuplot SVG) and\n"
                   "summary.md into an output folder (-o DIR, default build/experiments/NAME).\n\n"
                   "experiments:\n");
        for (int i = 0; i < N_EXPERIMENTS; i++) fprintf(o, "  %-14s %s\n", EXPERIMENTS[i].name, EXPERIMENTS[i].help);
        return argc < 2 ? 2 : 0;
    }
    for (int i = 0; i < N_EXPERIMENTS; i++)
        if (!strcmp(argv[1], EXPERIMENTS[i].name)) return EXPERIMENTS[i].run(argc - 1, argv + 1);
    char names[512] = "";
    for (int i = 0; i < N_EXPERIMENTS; i++) {
        strncat(names, " ", sizeof names - strlen(names) - 1);
        strncat(names, EXPERIMENTS[i].name, sizeof names - strlen(names) - 1);
    }
    exp_fail("unknown experiment '%s' (experiments:%s; see mome experiment --help)", argv[1], names);
    return 2;
}
