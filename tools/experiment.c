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
 * Experiments:
 *   threshold   train facts with the memory tuner, stopping at a list of
 *               step counts (mome_tune's max_steps, as `mome tune --max-steps
 *               N`, each run resumed from the previous count's checkpoint,
 *               which continues the uninterrupted run exactly); at every
 *               snapshot, for every fact: the teacher-forced mean and max answer-token loss under the
 *               engine with the snapshot's memory, the real greedy answer,
 *               exact or not, and whether a wrong answer is a near miss (the
 *               first wrong token was the correct one's runner-up, or edit
 *               distance <= 2 to an expected answer).
 */
#include "experiment.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
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
    char path[4200];
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f,
            "# written by `mome experiment threshold`; run in this folder: gnuplot plot.gp\n"
            "set terminal svg size 1000,420 font 'sans,12' background rgb 'white'\n"
            "set output 'threshold.svg'\n"
            "set datafile separator ','\n"
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
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

static int parse_steps(const char *s, int64_t *out, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v < 1 || n == cap || (n && v <= out[n - 1])) return -1;
        out[n++] = v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

static int exp_threshold(int argc, char **argv) {
    const char *model_path = NULL, *dir = "build/experiments/threshold", *facts_src = NULL;
    const char *steps_s = "1,2,3,4,5,6,7,8,9,10,12,14,17,20,25";
    int n_facts = 50, threads = 1, max_new = 24;
    long long seed = 1234;
    double lr = 0;
    char def_facts[4096];
    snprintf(def_facts, sizeof def_facts, "%s/data/facts/languages.jsonl", exp_shared_dir());
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mome experiment threshold [options]\n\n"
                   "Is a fact stated exactly once its answer loss is low? Trains facts with the memory\n"
                   "tuner and stops at each step count of --steps (one run, resumed from count to count); at each\n"
                   "snapshot and for each fact records the teacher-forced mean and max answer-token loss\n"
                   "under the engine, the greedy answer, exact or not, and near misses (first wrong token\n"
                   "was the runner-up, or edit distance <= 2). Step 0 is the model without a memory.\n"
                   "Writes results.csv, bins_max.csv, bins_mean.csv, plot.gp, threshold.svg, summary.md.\n\n"
                   "  -m, --model PATH   base model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
                   "  -o, --out DIR      output folder (default build/experiments/threshold)\n"
                   "  --facts FILE       JSON-lines facts (default $MOME_SHARED/data/facts/languages.jsonl,\n"
                   "                     MOME_SHARED defaults to ../shared)\n"
                   "  --n-facts N        the first N facts (default 50)\n"
                   "  --steps LIST       increasing step counts to snapshot at (default %s)\n"
                   "  --lr X             tuner learning rate (default: the tuner's)\n"
                   "  --max-new N        greedy answer length limit (default 24)\n"
                   "  -t, --threads N    threads (default 1)\n"
                   "  -s, --seed S       tuner seed (default 1234)\n",
                   steps_s);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has) model_path = argv[++i];
        else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && has) dir = argv[++i];
        else if (!strcmp(a, "--facts") && has) facts_src = argv[++i];
        else if (!strcmp(a, "--n-facts") && has) n_facts = atoi(argv[++i]);
        else if (!strcmp(a, "--steps") && has) steps_s = argv[++i];
        else if (!strcmp(a, "--lr") && has) lr = atof(argv[++i]);
        else if (!strcmp(a, "--max-new") && has) max_new = atoi(argv[++i]);
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has) threads = atoi(argv[++i]);
        else if ((!strcmp(a, "-s") || !strcmp(a, "--seed")) && has) seed = atoll(argv[++i]);
        else { exp_fail("threshold: unknown option or missing value '%s' (see mome experiment threshold --help)", a); return 2; }
    }
    int64_t steps[256];
    const int n_steps = parse_steps(steps_s, steps, 256);
    if (n_steps < 1) { exp_fail("threshold: --steps expects increasing positive integers, got '%s'", steps_s); return 2; }
    if (n_facts < 1 || threads < 1 || max_new < 1 || seed < 0 || lr < 0)
        { exp_fail("threshold: --n-facts, --threads, --max-new must be positive, --seed and --lr non-negative"); return 2; }
    if (strchr(dir, '\'') || strchr(dir, '"') || strlen(dir) > 3000) { exp_fail("threshold: unusable output folder '%s'", dir); return 2; }
    if (!facts_src) facts_src = def_facts;
    if (!model_path) model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const double t0 = mome_time_s();
    char start[64], machine[512];
    exp_utc_now(start, sizeof start);
    exp_machine_line(machine, sizeof machine);

    char work[3100], facts_path[3200], mem_path[3200], ckpt[3300], path[3200];
    snprintf(work, sizeof work, "%s/work", dir);
    if (exp_mkdir_p(work)) return exp_fail("%s: %s", work, strerror(errno));
    snprintf(facts_path, sizeof facts_path, "%s/facts.jsonl", dir);
    snprintf(mem_path, sizeof mem_path, "%s/snapshot.mome", work);
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", mem_path);
    unlink(mem_path);
    unlink(ckpt);
    int got;
    if (exp_copy_first_lines(facts_src, facts_path, n_facts, &got)) return 1;
    fact_set *fs;
    if (facts_load(facts_path, FACTS_CONFLICT_ERROR, &fs)) return exp_fail("%s", mome_errmsg());

    mome_model_params mp = mome_model_default_params();
    mp.n_threads = threads;
    mome_model *m;
    if (mome_model_load(model_path, &mp, &m)) {
        facts_free(fs);
        return exp_fail("%s (`make model` fetches the default model)", mome_errmsg());
    }
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FILE *csv = fopen(path, "w");
    th_row *rows = malloc((size_t)(n_steps + 1) * (size_t)fs->n * sizeof *rows);
    if (!csv || !rows) {
        mome_model_free(m);
        facts_free(fs);
        free(rows);
        if (csv) fclose(csv);
        return exp_fail("%s: cannot write", path);
    }
    fprintf(csv, "step,fact,line,n_tokens,mean_loss,max_loss,first_wrong,first_wrong_rank,greedy_exact,"
                 "edit_distance,near_miss,answer,output\n");
    int n_rows = 0, rc = 0, snap = 0;
    int64_t last_step = 0, steps_done[257];
    int memorized_at[257];
    for (snap = 0; snap <= n_steps && !rc; snap++) {
        mome_memory *mem = NULL;
        int64_t step = 0;
        int all_done = 0;
        if (snap > 0) {
            mome_tune_params tp = mome_tune_default_params();
            tp.facts_path = facts_path;
            tp.out_path = mem_path;
            /* the run to the previous count resumed to this one: a checkpoint
             * holds Adam's moments, the batch order and every fact's state, so
             * the resumed run is the uninterrupted one stopped here, bit for bit
             * (tests/cli/test_tune.sh) */
            if (snap == 1) unlink(ckpt);
            tp.max_steps = steps[snap - 1];
            tp.resume = snap > 1;
            tp.n_threads = threads;
            tp.seed = (uint64_t)seed;
            tp.checkpoint_s = 0;
            if (lr > 0) tp.lr = (float)lr;
            mome_tune_report rep;
            if (mome_tune(m, &tp, &rep)) { rc = exp_fail("tune: %s", mome_errmsg()); break; }
            step = rep.steps;
            all_done = rep.n_memorized == rep.n_facts;
            if (mome_memory_load(mem_path, m, &mem)) { rc = exp_fail("%s", mome_errmsg()); break; }
            fprintf(stderr, "experiment: threshold: step %lld, %d/%d verified by the tuner, mean loss %.4f\n",
                    (long long)step, rep.n_memorized, rep.n_facts, rep.mean_loss);
        }
        mome_ctx_params cp = mome_ctx_default_params();
        cp.n_ctx = 1024;
        cp.n_batch = 512;
        cp.n_threads = threads;
        mome_ctx *c;
        if (mome_ctx_init(m, &cp, &c)) { rc = exp_fail("%s", mome_errmsg()); mome_memory_free(mem); break; }
        if (mem && mome_ctx_set_memory(c, mem)) { rc = exp_fail("%s", mome_errmsg()); }
        int n_exact = 0;
        for (int i = 0; i < fs->n && !rc; i++) {
            const fact *fa = &fs->v[i];
            mome_chat_msg msgs[2];
            int nm = 0;
            if (fa->system) msgs[nm++] = (mome_chat_msg){"system", fa->system};
            msgs[nm++] = (mome_chat_msg){"user", fa->question};
            probe_result pr;
            char *out = NULL;
            if (probe_answer(m, c, msgs, nm, fa->answers[0], NULL, 0, &pr) ||
                ans_greedy(m, c, msgs, nm, max_new, &out, NULL, NULL)) {
                rc = exp_fail("fact at %s:%d: %s", facts_path, fa->line, mome_errmsg());
                break;
            }
            const int exact = facts_answer_matches(fa, out);
            int ed = 1 << 20;
            char *no = facts_normalize_answer(out);
            for (int k = 0; k < fa->n_answers && no; k++) {
                char *na = facts_normalize_answer(fa->answers[k]);
                if (na) {
                    const int d = exp_edit_distance(no, na);
                    if (d < ed) ed = d;
                }
                free(na);
            }
            free(no);
            const int near = !exact && (pr.first_wrong_rank == 2 || ed <= 2);
            n_exact += exact;
            fprintf(csv, "%lld,%d,%d,%d,%.6g,%.6g,%d,%d,%d,%d,%d,", (long long)step, i, fa->line, pr.n_tokens,
                    pr.mean_loss, pr.max_loss, pr.first_wrong, pr.first_wrong_rank, exact, ed, near);
            exp_csv_str(csv, fa->answers[0]);
            fputc(',', csv);
            exp_csv_str(csv, out);
            fputc('\n', csv);
            rows[n_rows++] = (th_row){step, i, pr.mean_loss, pr.max_loss, pr.first_wrong_rank, exact, near, ed};
            free(out);
        }
        mome_ctx_free(c);
        mome_memory_free(mem);
        steps_done[snap] = step;
        memorized_at[snap] = n_exact;
        last_step = step;
        fprintf(stderr, "experiment: threshold: snapshot %d (step %lld): %d/%d greedy answers exact\n", snap,
                (long long)step, n_exact, fs->n);
        if (all_done) { snap++; break; }
    }
    const int n_snaps = snap;
    mome_model_free(m);
    if (fclose(csv) && !rc) rc = exp_fail("%s: write error", path);
    if (!rc) {
        snprintf(path, sizeof path, "%s/bins_max.csv", dir);
        rc = th_write_bins(path, rows, n_rows, 1);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/bins_mean.csv", dir);
        rc = th_write_bins(path, rows, n_rows, 0);
    }
    if (!rc) rc = th_write_plot(dir);
    const int drew = rc ? 0 : exp_run_gnuplot(dir);
    if (!rc) {
        /* the reading: the bound is sufficient (below ln 2 everywhere -> exact)?
         * how far above it do exact answers reach, how low do wrong ones go? */
        int below = 0, below_exact = 0, above = 0, above_exact = 0, wrong = 0, near = 0, near_rank = 0;
        int mean_below = 0, mean_below_exact = 0;
        double min_wrong_max = INFINITY, max_exact_max = 0, min_wrong_mean = INFINITY;
        for (int i = 0; i < n_rows; i++) {
            const th_row *r = &rows[i];
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
        snprintf(path, sizeof path, "%s/summary.md", dir);
        FILE *f = fopen(path, "w");
        if (!f) rc = exp_fail("%s: %s", path, strerror(errno));
        else {
            fprintf(f, "# Experiment: threshold (paper Fig. 3)\n\n");
            fprintf(f, "- command: `mome experiment");
            for (int i = 0; i < argc; i++) fprintf(f, " %s", argv[i]);
            fprintf(f, "`\n");
            fprintf(f, "- started: %s; wall time %.1f s\n", start, mome_time_s() - t0);
            fprintf(f, "- machine: %s\n", machine);
            fprintf(f, "- model: %s; facts: the first %d of %s; tuner seed %lld, %d thread(s), lr %s\n",
                    model_path, fs->n, facts_src, seed, threads, lr > 0 ? "as given" : "default");
            fprintf(f, "- snapshots (tuner steps; 0 = no memory):");
            for (int s = 0; s < n_snaps; s++) fprintf(f, " %lld (%d exact)", (long long)steps_done[s], memorized_at[s]);
            fprintf(f, "\n- data: `results.csv` (one row per snapshot and fact), `bins_max.csv`, `bins_mean.csv`\n\n");
            if (drew) fprintf(f, "![P(exact) and P(near miss) against answer loss](threshold.svg)\n\n");
            else fprintf(f, "(no plot: gnuplot was not available; `gnuplot plot.gp` draws it)\n\n");
            fprintf(f, "## Figures\n\n| | answers | greedy exact |\n|---|---:|---:|\n");
            fprintf(f, "| every answer token's loss < ln 2 (the sufficient bound) | %d | %d (%.1f%%) |\n", below,
                    below_exact, below ? 100.0 * below_exact / below : 0);
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
            fclose(f);
        }
    }
    free(rows);
    facts_free(fs);
    if (!rc) fprintf(stderr, "experiment: threshold: wrote %s/{results.csv,bins_max.csv,bins_mean.csv,plot.gp%s,summary.md} "
                             "in %.1f s (last step %lld)\n", dir, drew ? ",threshold.svg" : "", mome_time_s() - t0,
                     (long long)last_step);
    return rc ? 1 : 0;
}

/* --------------------------------------------------------- random-labels */

typedef struct rl_curve {
    FILE *f;
    const char *method, *labels;
} rl_curve;

static void rl_progress(const mome_tune_progress *p, void *user) {
    rl_curve *c = user;
    if (!strcmp(p->phase, "prepare")) return; /* its counts are facts prepared, not memorized */
    fprintf(c->f, "%s,%s,%lld,%.3f,%.6f,%d,%d,%s\n", c->method, c->labels, (long long)p->step, p->elapsed_s,
            p->mean_loss, p->n_memorized, p->n_facts, p->phase);
    fflush(c->f);
}

static uint64_t rl_rng(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The same questions with random 32-character [A-Z0-9] answers. */
static int rl_write_random(const fact_set *fs, const char *path, uint64_t seed) {
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    static const char sym[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint64_t st = seed;
    for (int i = 0; i < fs->n; i++) {
        char ans[33];
        for (int k = 0; k < 32; k++) ans[k] = sym[rl_rng(&st) % 36];
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

/* Perplexity of the text under the engine (with mem, or none). */
static int rl_ppl(mome_model *m, mome_memory *mem, const char *text, int64_t bytes, int threads, double *ppl) {
    mome_eval_params ep = mome_eval_default_params();
    ep.text_path = text;
    ep.text_max_bytes = bytes;
    ep.n_threads = threads;
    mome_eval_result r;
    if (mome_eval(m, mem, &ep, &r)) return exp_fail("perplexity: %s", mome_errmsg());
    *ppl = r.perplexity;
    return 0;
}

static int rl_write_plot(const char *dir) {
    char path[3200];
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f,
            "# written by `mome experiment random-labels`; run in this folder: gnuplot plot.gp\n"
            "set terminal svg size 1000,760 font 'sans,12' background rgb 'white'\n"
            "set output 'random_labels.svg'\n"
            "set datafile separator ','\n"
            "set key top right box opaque\n"
            "set grid\n"
            "set xlabel 'optimizer step'\n"
            "set multiplot layout 2,2 title 'True vs random 32-character answers (NQ-open questions)'\n"
            "set logscale y\n"
            "set ylabel 'mean answer loss (nats)'\n"
            "set title 'MoME (frozen model + memory)'\n"
            "plot 'curve_mome_true.csv' skip 1 using 3:5 with lines lw 2 title 'true answers', \\\n"
            "     'curve_mome_random.csv' skip 1 using 3:5 with lines lw 2 title 'random answers'\n"
            "set title 'LoRA baseline (rank 8, all blocks)'\n"
            "plot 'curve_lora_true.csv' skip 1 using 3:5 with lines lw 2 title 'true answers', \\\n"
            "     'curve_lora_random.csv' skip 1 using 3:5 with lines lw 2 title 'random answers'\n"
            "unset logscale y\n"
            "set yrange [0:1.05]\n"
            "set ylabel 'share memorized (tuner count; verify passes left out)'\n"
            "set key bottom right\n"
            "set title 'MoME'\n"
            "plot 'curve_mome_true.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'true answers', \\\n"
            "     'curve_mome_random.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'random answers'\n"
            "set title 'LoRA'\n"
            "plot 'curve_lora_true.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'true answers', \\\n"
            "     'curve_lora_random.csv' skip 1 using 3:(strcol(8) eq 'verify' ? NaN : $6/$7) with lines lw 2 title 'random answers'\n"
            "unset multiplot\n");
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

typedef struct rl_final {
    const char *method, *labels;
    int64_t steps;
    double seconds, mean_loss, ppl_before, ppl_after;
    int memorized, n;
} rl_final;

static int exp_random_labels(int argc, char **argv) {
    const char *model_path = NULL, *dir = "build/experiments/random-labels", *facts_src = NULL, *text = NULL;
    int n_facts = 100, threads = 1, replot = 0;
    long long seed = 1234, text_bytes = 16384;
    double mome_minutes = 10, lora_minutes = 3;
    char def_facts[4096], def_text[4096];
    snprintf(def_facts, sizeof def_facts, "%s/data/facts/NQ-open.dev.jsonl", exp_shared_dir());
    snprintf(def_text, sizeof def_text, "%s/data/text/tinystories_val_head.txt", exp_shared_dir());
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const int has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: mome experiment random-labels [options]\n\n"
                   "The randomization test (paper Fig. 1 and 5): the same questions trained with their true\n"
                   "answers and with random 32-character [A-Z0-9] answers, by the memory tuner and by the LoRA\n"
                   "baseline; training loss and memorized share per step (the tuner's progress), held-out\n"
                   "perplexity before and after. Writes results.csv (the curves), finals.csv, curve_*.csv,\n"
                   "plot.gp, random_labels.svg, summary.md.\n\n"
                   "  -m, --model PATH      base model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
                   "  -o, --out DIR         output folder (default build/experiments/random-labels)\n"
                   "  --facts FILE          questions (default $MOME_SHARED/data/facts/NQ-open.dev.jsonl)\n"
                   "  --n-facts N           the first N questions (default 100)\n"
                   "  --text FILE           held-out text (default $MOME_SHARED/data/text/tinystories_val_head.txt)\n"
                   "  --text-bytes N        its first N bytes (default 16384)\n"
                   "  --mome-minutes M      time limit of each MoME run (default 10)\n"
                   "  --lora-minutes M      time limit of each LoRA run (default 3: the fast version; LoRA on\n"
                   "                        100 true answers needed about 4 minutes on 2 idle cores)\n"
                   "  -t, --threads N       threads (default 1)\n"
                   "  -s, --seed S          seed of the tuners and of the random answers (default 1234)\n"
                   "  --replot              only rewrite plot.gp and redraw from the CSVs already in -o DIR\n");
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has) model_path = argv[++i];
        else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && has) dir = argv[++i];
        else if (!strcmp(a, "--facts") && has) facts_src = argv[++i];
        else if (!strcmp(a, "--n-facts") && has) n_facts = atoi(argv[++i]);
        else if (!strcmp(a, "--text") && has) text = argv[++i];
        else if (!strcmp(a, "--text-bytes") && has) text_bytes = atoll(argv[++i]);
        else if (!strcmp(a, "--mome-minutes") && has) mome_minutes = atof(argv[++i]);
        else if (!strcmp(a, "--lora-minutes") && has) lora_minutes = atof(argv[++i]);
        else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has) threads = atoi(argv[++i]);
        else if ((!strcmp(a, "-s") || !strcmp(a, "--seed")) && has) seed = atoll(argv[++i]);
        else if (!strcmp(a, "--replot")) replot = 1;
        else { exp_fail("random-labels: unknown option or missing value '%s' (see mome experiment random-labels --help)", a); return 2; }
    }
    if (n_facts < 1 || threads < 1 || seed < 0 || text_bytes < 1 || !(mome_minutes > 0) || !(lora_minutes > 0)) {
        exp_fail("random-labels: --n-facts, --threads, --text-bytes and the time limits must be positive, --seed non-negative");
        return 2;
    }
    if (strchr(dir, '\'') || strchr(dir, '"') || strlen(dir) > 3000) { exp_fail("random-labels: unusable output folder '%s'", dir); return 2; }
    if (replot) {
        if (rl_write_plot(dir)) return 1;
        return exp_run_gnuplot(dir) ? 0 : 1;
    }
    if (!facts_src) facts_src = def_facts;
    if (!text) text = def_text;
    if (access(text, R_OK)) return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", text, strerror(errno));
    if (!model_path) model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    const double t0 = mome_time_s();
    char start[64], machine[512];
    exp_utc_now(start, sizeof start);
    exp_machine_line(machine, sizeof machine);
    char work[3100], path[3200], sets[2][3200];
    snprintf(work, sizeof work, "%s/work", dir);
    if (exp_mkdir_p(work)) return exp_fail("%s: %s", work, strerror(errno));
    snprintf(sets[0], sizeof sets[0], "%s/true.jsonl", dir);
    snprintf(sets[1], sizeof sets[1], "%s/random.jsonl", dir);
    int got;
    if (exp_copy_first_lines(facts_src, sets[0], n_facts, &got)) return 1;
    fact_set *fs;
    if (facts_load(sets[0], FACTS_CONFLICT_FIRST, &fs)) return exp_fail("%s", mome_errmsg());
    int rc = rl_write_random(fs, sets[1], (uint64_t)seed ^ 0x5eed);
    const int n = fs->n;
    facts_free(fs);
    if (rc) return 1;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = threads;
    mome_model *m;
    if (mome_model_load(model_path, &mp, &m)) return exp_fail("%s (`make model` fetches the default model)", mome_errmsg());
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FILE *all = fopen(path, "w");
    if (!all) { mome_model_free(m); return exp_fail("%s: %s", path, strerror(errno)); }
    fprintf(all, "method,labels,step,elapsed_s,mean_loss,memorized,n_facts,phase\n");
    double ppl_base = -1;
    rc = rl_ppl(m, NULL, text, text_bytes, threads, &ppl_base);
    static const char *const methods[2] = {"mome", "lora"}, *const labels[2] = {"true", "random"};
    rl_final fin[4];
    int n_fin = 0;
    for (int mi = 0; mi < 2 && !rc; mi++)
        for (int li = 0; li < 2 && !rc; li++) {
            char out[3300], cpath[3300];
            snprintf(out, sizeof out, "%s/%s_%s.%s", work, methods[mi], labels[li], mi ? "gguf" : "mome");
            snprintf(cpath, sizeof cpath, "%s/curve_%s_%s.csv", dir, methods[mi], labels[li]);
            char ck[3400];
            snprintf(ck, sizeof ck, "%s.ckpt", out);
            unlink(ck);
            FILE *cf = fopen(cpath, "w");
            if (!cf) { rc = exp_fail("%s: %s", cpath, strerror(errno)); break; }
            fprintf(cf, "method,labels,step,elapsed_s,mean_loss,memorized,n_facts,phase\n");
            rl_curve cv = {cf, methods[mi], labels[li]};
            mome_tune_params tp = mome_tune_default_params();
            tp.facts_path = sets[li];
            tp.out_path = out;
            tp.method = mi ? MOME_TUNE_LORA : MOME_TUNE_MOME;
            tp.on_conflict = 1;
            tp.n_threads = threads;
            tp.seed = (uint64_t)seed;
            tp.max_minutes = mi ? lora_minutes : mome_minutes;
            tp.checkpoint_s = 0;
            tp.progress = rl_progress;
            tp.user = &cv;
            if (mi) {
                tp.ppl_text = text;
                tp.ppl_text_bytes = text_bytes;
            }
            fprintf(stderr, "experiment: random-labels: %s on %s answers (at most %.1f min)\n", methods[mi], labels[li],
                    tp.max_minutes);
            mome_tune_report rep;
            rc = mome_tune(m, &tp, &rep);
            fclose(cf);
            if (rc) { rc = exp_fail("tune: %s", mome_errmsg()); break; }
            rl_final *fi = &fin[n_fin++];
            *fi = (rl_final){methods[mi], labels[li], rep.steps, rep.seconds, rep.mean_loss, rep.ppl_before,
                             rep.ppl_after, rep.n_memorized, rep.n_facts};
            if (!mi) {
                mome_memory *mem;
                if (mome_memory_load(out, m, &mem)) { rc = exp_fail("%s", mome_errmsg()); break; }
                fi->ppl_before = ppl_base;
                rc = rl_ppl(m, mem, text, text_bytes, threads, &fi->ppl_after);
                mome_memory_free(mem);
            }
            /* the curve into results.csv too */
            FILE *in = fopen(cpath, "r");
            char line[512];
            if (in) {
                if (fgets(line, sizeof line, in))
                    while (fgets(line, sizeof line, in)) fputs(line, all);
                fclose(in);
            }
            fprintf(stderr, "experiment: random-labels: %s %s: %d/%d memorized in %lld steps, %.1f s; perplexity %.4f -> %.4f\n",
                    methods[mi], labels[li], rep.n_memorized, rep.n_facts, (long long)rep.steps, rep.seconds,
                    fi->ppl_before, fi->ppl_after);
        }
    mome_model_free(m);
    if (fclose(all) && !rc) rc = exp_fail("%s: write error", path);
    if (!rc) {
        snprintf(path, sizeof path, "%s/finals.csv", dir);
        FILE *f = fopen(path, "w");
        if (!f) rc = exp_fail("%s: %s", path, strerror(errno));
        else {
            fprintf(f, "method,labels,steps,seconds,memorized,n_facts,mean_loss,ppl_before,ppl_after\n");
            for (int i = 0; i < n_fin; i++)
                fprintf(f, "%s,%s,%lld,%.1f,%d,%d,%.6f,%.6f,%.6f\n", fin[i].method, fin[i].labels, (long long)fin[i].steps,
                        fin[i].seconds, fin[i].memorized, fin[i].n, fin[i].mean_loss, fin[i].ppl_before, fin[i].ppl_after);
            if (fclose(f)) rc = exp_fail("%s: write error", path);
        }
    }
    if (!rc) rc = rl_write_plot(dir);
    const int drew = rc ? 0 : exp_run_gnuplot(dir);
    if (!rc) {
        snprintf(path, sizeof path, "%s/summary.md", dir);
        FILE *f = fopen(path, "w");
        if (!f) return exp_fail("%s: %s", path, strerror(errno));
        fprintf(f, "# Experiment: random-labels (paper Fig. 1 and 5)\n\n");
        fprintf(f, "- command: `mome experiment");
        for (int i = 0; i < argc; i++) fprintf(f, " %s", argv[i]);
        fprintf(f, "`\n- started: %s; wall time %.1f s\n- machine: %s\n", start, mome_time_s() - t0, machine);
        fprintf(f, "- model: %s; questions: the first %d of %s (%d after duplicates); random answers: 32 characters "
                   "of [A-Z0-9], seed %lld; %d thread(s); time limits: MoME %.1f min, LoRA %.1f min per run\n",
                model_path, n_facts, facts_src, n, seed, threads, mome_minutes, lora_minutes);
        fprintf(f, "- held-out perplexity: the first %lld bytes of %s; MoME under the engine (plain text has no user "
                   "turn, so the memory selects nothing), LoRA in the f32 training stack (the engine does not run "
                   "adapters), so compare each method's before with its after, not across methods\n",
                text_bytes, text);
        fprintf(f, "- recall: MoME's count is verified by greedy decoding with the engine; LoRA's is the teacher-forced "
                   "argmax in the f32 stack\n- data: `results.csv` (every progress report of the tuners), `finals.csv`\n\n");
        if (drew) fprintf(f, "![loss and memorized share per step, true vs random answers](random_labels.svg)\n\n");
        else fprintf(f, "(no plot: gnuplot was not available; `gnuplot plot.gp` draws it)\n\n");
        fprintf(f, "| method | answers | memorized | steps | seconds | mean answer loss | perplexity before | after |\n"
                   "|---|---|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < n_fin; i++)
            fprintf(f, "| %s | %s | %d/%d | %lld | %.1f | %.4f | %.4f | %.4f (%+.2f%%) |\n", fin[i].method, fin[i].labels,
                    fin[i].memorized, fin[i].n, (long long)fin[i].steps, fin[i].seconds, fin[i].mean_loss,
                    fin[i].ppl_before, fin[i].ppl_after, 100 * (fin[i].ppl_after / fin[i].ppl_before - 1));
        fprintf(f, "\n## Reading (computed from the data)\n\n");
        for (int mi = 0; mi + 1 < n_fin; mi += 2) {
            const rl_final *a = &fin[mi], *b = &fin[mi + 1];
            fprintf(f, "- %s: true answers %d/%d memorized in %lld steps (%.0f s), random answers %d/%d in %lld steps "
                       "(%.0f s)%s; perplexity change %+.2f%% (true) and %+.2f%% (random).\n",
                    a->method, a->memorized, a->n, (long long)a->steps, a->seconds, b->memorized, b->n,
                    (long long)b->steps, b->seconds,
                    (a->memorized == a->n && b->memorized == b->n)
                        ? (b->steps <= 2 * a->steps ? ": both sets reached zero training error, random answers at "
                                                      "most twice the steps of true ones"
                                                    : ": both sets reached zero training error, random answers at "
                                                      "more than twice the steps of true ones")
                        : ": at least one run stopped at its time limit before every answer was memorized",
                    100 * (a->ppl_after / a->ppl_before - 1), 100 * (b->ppl_after / b->ppl_before - 1));
        }
        fclose(f);
    }
    if (!rc) fprintf(stderr, "experiment: random-labels: wrote %s in %.1f s\n", dir, mome_time_s() - t0);
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
     "true vs random 32-character answers, MoME and LoRA: loss, memorized share, held-out perplexity "
     "(paper Fig. 1 and 5)"},
    {"frozen-vs-unfrozen", exp_frozen,
     "100 facts: MoME (frozen model) vs LoRA vs full fine-tuning in f32: steps and time to 100% recall, "
     "held-out perplexity and capitals contains-recall change"},
    {"editing", exp_editing,
     "zsRE facts added to one memory a batch at a time: recall so far, paraphrases, locality, perplexity, "
     "decode speed, file size"},
    {"capacity", exp_capacity,
     "random facts from 50 upward: recall, locality (look-alike and real questions), perplexity, tuning time, "
     "file size, selection by key weight and threshold"},
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
