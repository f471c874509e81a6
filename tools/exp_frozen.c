/* exp_frozen.c - `mome experiment frozen-vs-unfrozen` (issue 11, experiment 5):
 * the same facts taught three ways, with the backbone frozen or not:
 *
 *   mome   memory experts on the frozen (Q4_1) model          (mome tune)
 *   lora   rank-8 adapters on every projection, base frozen   (--method lora)
 *   full   every weight of the model trained in f32           (--method full)
 *
 * Per method: optimizer steps and wall time until every fact was memorized
 * by the tuner's own rule (or where its time cap stopped it), and, measured
 * by the engine (mome_eval, the code `mome eval` runs), exact recall of the
 * facts, held-out perplexity and contains-recall on capitals.jsonl before and
 * after. LoRA's adapters are merged into an f32 model file and full
 * fine-tuning writes one, so all three are measured by the same engine code;
 * their "before" is the untrained model as the same f32 file, MoME's the
 * Q4_1 model it runs on (both are measured and reported). The curves
 * (memorized share vs step and vs time) come from the tuners' progress.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exp_util.h"
#include "experiment.h"
#include "finetune.h"
#include "mome.h"

/* The fast version: FZ_FACTS facts, the first FZ_CAPITALS capitals, LoRA and
 * full fine-tuning stopped after FZ_STEPS steps (a count, so that the run is
 * the same on a loaded machine; FZ_MINUTES is only a safety), MoME run to
 * the end. */
#define FZ_FACTS 10
#define FZ_CAPITALS 20
#define FZ_STEPS 40
#define FZ_MINUTES 60

typedef struct fz_curve {
    FILE *f;
    const char *method;
} fz_curve;

static void fz_progress(const mome_tune_progress *p, void *user) {
    fz_curve *c = user;
    if (!strcmp(p->phase, "prepare")) return; /* its counts are facts prepared, not memorized */
    fprintf(c->f, "%s,%lld,%.3f,%.6f,%d,%d,%s\n", c->method, (long long)p->step, p->elapsed_s, p->mean_loss,
            p->n_memorized, p->n_facts, p->phase);
    fflush(c->f);
}

/* What the engine measures on one model (+ memory). */
typedef struct fz_eval {
    double recall, ppl, cap_contains, cap_exact, seconds;
    double cap_short;      /* share of capital answers of at most 4 characters (a code, not a name) */
} fz_eval;

typedef struct fz_opts {
    const char *facts, *capitals, *text;
    const char *work;      /* where the answers to the capitals go (capitals_TAG.jsonl) */
    long long text_bytes;
    int threads, max_new;
    int n_capitals;        /* the first of the capitals asked (0: all) */
} fz_opts;

/* The share of answers in an eval --outputs file of at most 4 characters
 * (whitespace trimmed); -1 if unreadable. */
static double fz_short_share(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *line = NULL;
    size_t cap = 0;
    int n = 0, k = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "answer");
        if (cJSON_IsString(a)) {
            const char *t = a->valuestring;
            size_t len = strlen(t);
            while (len && (t[len - 1] == ' ' || t[len - 1] == '\n')) len--;
            while (len && (*t == ' ' || *t == '\n')) { t++; len--; }
            n++;
            k += len <= 4;
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return n ? (double)k / n : -1;
}

static int fz_measure(mome_model *m, mome_memory *mem, const fz_opts *o, const char *what, const char *tag,
                      fz_eval *e) {
    const double t0 = mome_time_s();
    mome_eval_params ep = mome_eval_default_params();
    ep.facts_path = o->facts;
    ep.text_path = o->text;
    ep.text_max_bytes = o->text_bytes;
    ep.n_threads = o->threads;
    ep.no_context = ep.no_variants = 1;
    ep.max_new_tokens = o->max_new;
    ep.on_conflict = 1;
    mome_eval_result r;
    if (mome_eval(m, mem, &ep, &r)) return exp_fail("%s: eval: %s", what, mome_errmsg());
    e->recall = r.recall;
    e->ppl = r.perplexity;
    char answers[3400];
    snprintf(answers, sizeof answers, "%s/capitals_%s.jsonl", o->work, tag);
    ep.facts_path = o->capitals;
    ep.max_facts = o->n_capitals;
    ep.text_path = NULL;
    ep.outputs_path = answers;
    if (mome_eval(m, mem, &ep, &r)) return exp_fail("%s: eval of %s: %s", what, o->capitals, mome_errmsg());
    e->cap_contains = r.contains_recall;
    e->cap_exact = r.recall;
    e->cap_short = fz_short_share(answers);
    e->seconds = mome_time_s() - t0;
    fprintf(stderr, "experiment: frozen-vs-unfrozen: %s: recall %.3f, perplexity %.4f, capitals contains %.3f (%.0f s)\n",
            what, e->recall, e->ppl, e->cap_contains, e->seconds);
    return 0;
}

/* Loads a model file the experiment wrote, measures it, frees it. */
static int fz_measure_file(const char *path, const fz_opts *o, const char *what, const char *tag, fz_eval *e) {
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = o->threads;
    mome_model *m;
    if (mome_model_load(path, &mp, &m)) return exp_fail("%s: %s", what, mome_errmsg());
    const int rc = fz_measure(m, NULL, o, what, tag, e);
    mome_model_free(m);
    return rc;
}

static int fz_write_plot(const char *dir) {
    FILE *f = exp_open_plot(dir, "frozen-vs-unfrozen", "frozen_vs_unfrozen.svg", 1000, 420);
    if (!f) return 1;
    fprintf(f,
            "set key bottom right box opaque\n"
            "set grid\n"
            "set yrange [0:1.05]\n"
            "set ylabel 'share memorized (tuner count)'\n"
            "set multiplot layout 1,2 title 'Facts memorized: frozen model + memory vs LoRA vs full fine-tuning'\n"
            "set xlabel 'optimizer step'\n"
            "plot 'curve_mome.csv' skip 1 using 2:(strcol(7) eq 'verify' ? NaN : $5/$6) with lines lw 2 title 'MoME (frozen)', \\\n"
            "     'curve_lora.csv' skip 1 using 2:($5/$6) with lines lw 2 title 'LoRA (base frozen)', \\\n"
            "     'curve_full.csv' skip 1 using 2:($5/$6) with lines lw 2 title 'full fine-tuning'\n"
            "set xlabel 'wall time (s)'\n"
            "plot 'curve_mome.csv' skip 1 using 3:(strcol(7) eq 'verify' ? NaN : $5/$6) with lines lw 2 title 'MoME (frozen)', \\\n"
            "     'curve_lora.csv' skip 1 using 3:($5/$6) with lines lw 2 title 'LoRA (base frozen)', \\\n"
            "     'curve_full.csv' skip 1 using 3:($5/$6) with lines lw 2 title 'full fine-tuning'\n"
            "unset multiplot\n");
    return fclose(f) ? exp_fail("%s/plot.gp: write error", dir) : 0;
}

typedef struct fz_run {
    const char *method;
    double minutes, lr;
    int64_t steps;
    double seconds;
    int memorized, n;
    fz_eval before, after;
    long long out_bytes;
} fz_run;

static long long file_size(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    const long long n = ftell(f);
    fclose(f);
    return n;
}

static double pct(double after, double before) { return 100 * (after / before - 1); }

/* One run of the experiment: its settings, the facts and model the three
 * methods share, and their runs. */
static const char *const fz_methods[3] = {"mome", "lora", "full"};
typedef struct fz_exp {
    exp_common c;
    fz_opts o;                 /* what each measurement reads */
    const char *facts_src;
    int n_facts, keep, full, max_steps, got;
    double minutes[3], lr[3];  /* per method (fz_methods); lr 0: the tuner's */
    char def_facts[4096], def_cap[4096], work[3100], facts[3200];
    mome_model *m;
    fz_eval base_q, base_f;    /* the two "before"s: the model as MoME runs it, and as the f32 file LoRA and full start from */
    fz_run run[3];
    int n_run;
} fz_exp;

/* The options and their checks: -1 to go on, else the exit status. */
static int fz_parse(fz_exp *x, int argc, char **argv) {
    exp_common_init(&x->c, "frozen-vs-unfrozen", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED | EXP_OPT_TEXT);
    snprintf(x->def_facts, sizeof x->def_facts, "%s/data/facts/languages.jsonl", exp_shared_dir());
    snprintf(x->def_cap, sizeof x->def_cap, "%s/data/facts/capitals.jsonl", exp_shared_dir());
    x->facts_src = x->def_facts;
    x->n_facts = FZ_FACTS, x->max_steps = FZ_STEPS;
    for (int i = 0; i < 3; i++) x->minutes[i] = FZ_MINUTES;
    x->o = (fz_opts){NULL, x->def_cap, NULL, NULL, 0, 1, 16, FZ_CAPITALS};
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&x->facts_src),
         .help = "facts; the default's are ISO 639-3 codes, which the base model does not know"},
        {0, "--n-facts", "N", ARG_INT(&x->n_facts, 0, 0), .help = "the first N facts; the default runs the fast version"},
        {0, "--capitals", "FILE", ARG_STR(&x->o.capitals), .help = "other questions"},
        {0, "--n-capitals", "N", ARG_INT(&x->o.n_capitals, 0, 0), .help = "ask its first N questions; 0: all"},
        {0, "--max-new", "N", ARG_INT(&x->o.max_new, 0, 0), .help = "answer length limit of the measurements in tokens"},
        {0, "--mome-minutes", "M", ARG_DOUBLE(&x->minutes[0], 0, 0), .help = "time cap of MoME"},
        {0, "--lora-minutes", "M", ARG_DOUBLE(&x->minutes[1], 0, 0), .help = "time cap of LoRA"},
        {0, "--full-minutes", "M", ARG_DOUBLE(&x->minutes[2], 0, 0), .help = "time cap of full fine-tuning"},
        {0, "--max-steps", "N", ARG_INT(&x->max_steps, 0, 0),
         .help = "LoRA and full fine-tuning stop after N steps; the default runs the fast version, 0: no limit"},
        {0, "--full", NULL, ARG_FLAG(&x->full),
         .help = "the full version: 100 facts, every capital, no step limit (60 minutes each)"},
        {0, "--lora-lr", "X", ARG_DOUBLE(&x->lr[1], 0, 0), .help = "LoRA's Adam learning rate", .def = "the tuner's, 0.001"},
        {0, "--full-lr", "X", ARG_DOUBLE(&x->lr[2], 0, 0), .help = "full fine-tuning's learning rate",
         .def = "the tuner's, 0.0001"},
        {0, "--keep-models", NULL, ARG_FLAG(&x->keep), .help = "keep the f32 model files (about 540 MB each for SmolLM2-135M)"},
    };
    const int prc = exp_parse_args(&x->c,
                                   "The same facts taught with the backbone frozen (MoME: memory experts), frozen under adapters\n"
                                   "(LoRA, rank 8, every projection) and unfrozen (full fine-tuning of every weight in f32).\n"
                                   "Per method: steps and wall time until every fact is memorized (the tuner's rule) or the cap;\n"
                                   "measured by the engine before and after: exact recall of the facts, held-out perplexity,\n"
                                   "contains-recall on capitals.jsonl. LoRA (merged) and full are written as f32 GGUF models and\n"
                                   "measured like any model; their 'before' is the untrained f32 file. Writes results.csv,\n"
                                   "curve_{mome,lora,full}.csv, plot.gp, frozen_vs_unfrozen.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    if (x->full) {
        x->n_facts = 100;
        x->o.n_capitals = 0;
        x->max_steps = 0;
    }
    if (x->n_facts < 1 || x->o.max_new < 1 || x->o.n_capitals < 0 || x->max_steps < 0 || !(x->minutes[0] > 0) ||
        !(x->minutes[1] > 0) || !(x->minutes[2] > 0) || x->lr[1] < 0 || x->lr[2] < 0) {
        exp_fail("frozen-vs-unfrozen: --n-facts, --max-new and the time limits must be positive, --n-capitals, "
                 "--max-steps and the learning rates non-negative");
        return 2;
    }
    return -1;
}

/* The facts, the model, and the two base measurements. */
static int fz_prepare(fz_exp *x) {
    snprintf(x->work, sizeof x->work, "%s/work", x->c.dir);
    if (exp_mkdir_p(x->work)) return exp_fail("%s: %s", x->work, strerror(errno));
    snprintf(x->facts, sizeof x->facts, "%s/facts.jsonl", x->c.dir);
    if (exp_copy_first_lines(x->facts_src, x->facts, x->n_facts, &x->got)) return 1;
    x->o.facts = x->facts;
    x->o.work = x->work;
    if (exp_load_model(&x->c, &x->m)) return 1;
    char base_f32[3300];
    int rc = fz_measure(x->m, NULL, &x->o, "base model", "base_q4_1", &x->base_q);
    snprintf(base_f32, sizeof base_f32, "%s/base_f32.gguf", x->work);
    if (!rc && finetune_write_f32_base(x->m, base_f32)) rc = exp_fail("%s: %s", base_f32, mome_errmsg());
    if (!rc) rc = fz_measure_file(base_f32, &x->o, "base model as f32", "base_f32", &x->base_f);
    if (!x->keep) unlink(base_f32);
    return rc;
}

/* Method mi (fz_methods) teaches the facts, its progress into
 * curve_METHOD.csv; then the engine measures what it made. */
static int fz_teach(fz_exp *x, int mi) {
    const char *method = fz_methods[mi];
    char out[3300], merged[3300], cpath[3300], ck[3400];
    snprintf(out, sizeof out, "%s/%s.%s", x->work, method, mi ? "gguf" : "mome");
    snprintf(merged, sizeof merged, "%s/lora_merged.gguf", x->work);
    snprintf(cpath, sizeof cpath, "%s/curve_%s.csv", x->c.dir, method);
    snprintf(ck, sizeof ck, "%s.ckpt", out);
    unlink(ck);
    FILE *cf = fopen(cpath, "w");
    if (!cf) return exp_fail("%s: %s", cpath, strerror(errno));
    fprintf(cf, "method,step,elapsed_s,mean_loss,memorized,n_facts,phase\n");
    fz_curve cv = {cf, method};
    mome_tune_params tp = exp_tune_params();
    tp.facts_path = x->facts;
    tp.out_path = out;
    tp.method = mi == 0 ? MOME_TUNE_MOME : mi == 1 ? MOME_TUNE_LORA : MOME_TUNE_FULL;
    tp.model_out = mi == 1 ? merged : NULL;
    tp.on_conflict = 1;
    tp.n_threads = x->o.threads;
    tp.seed = (uint64_t)x->c.seed;
    tp.lr = (float)x->lr[mi];
    tp.max_minutes = x->minutes[mi];
    tp.max_steps = mi ? x->max_steps : 0;
    tp.checkpoint_s = 0;
    tp.progress = fz_progress;
    tp.user = &cv;
    fprintf(stderr, "experiment: frozen-vs-unfrozen: %s on %d facts (at most %.1f min)\n", method, x->got, x->minutes[mi]);
    mome_tune_report rep;
    int rc = mome_tune(x->m, &tp, &rep);
    fclose(cf);
    if (rc) return exp_fail("%s: tune: %s", method, mome_errmsg());
    fz_run *r = &x->run[x->n_run++];
    *r = (fz_run){method, x->minutes[mi], tp.lr > 0 ? tp.lr : mi == 0 ? 0.05 : mi == 1 ? 1e-3 : FINETUNE_FULL_LR,
                  rep.steps, rep.seconds, rep.n_memorized, rep.n_facts, mi ? x->base_f : x->base_q, x->base_q,
                  file_size(mi == 1 ? merged : out)};
    fprintf(stderr, "experiment: frozen-vs-unfrozen: %s: %d/%d memorized in %lld steps, %.1f s\n", method,
            rep.n_memorized, rep.n_facts, (long long)rep.steps, rep.seconds);
    if (mi == 0) {
        mome_memory *mem;
        if (mome_memory_load(out, x->m, &mem)) return exp_fail("%s", mome_errmsg());
        rc = fz_measure(x->m, mem, &x->o, "MoME", "mome", &r->after);
        mome_memory_free(mem);
        return rc;
    }
    rc = fz_measure_file(mi == 1 ? merged : out, &x->o, mi == 1 ? "LoRA (merged)" : "full fine-tuning", method, &r->after);
    if (!x->keep) {
        unlink(out);
        unlink(merged);
    }
    return rc;
}

/* results.csv: one row per method. */
static int fz_write_results(const fz_exp *x) {
    char path[3200];
    snprintf(path, sizeof path, "%s/results.csv", x->c.dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "method,time_cap_min,lr,steps,seconds,memorized,n_facts,all_memorized,recall_before,recall_after,"
               "ppl_before,ppl_after,capitals_contains_before,capitals_contains_after,capitals_exact_before,"
               "capitals_exact_after,capitals_short_before,capitals_short_after,output_bytes\n");
    for (int i = 0; i < x->n_run; i++) {
        const fz_run *r = &x->run[i];
        fprintf(f, "%s,%.2f,%g,%lld,%.1f,%d,%d,%d,%.4f,%.4f,%.6f,%.6f,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%lld\n", r->method,
                r->minutes, r->lr, (long long)r->steps, r->seconds, r->memorized, r->n, r->memorized == r->n,
                r->before.recall, r->after.recall, r->before.ppl, r->after.ppl, r->before.cap_contains,
                r->after.cap_contains, r->before.cap_exact, r->after.cap_exact, r->before.cap_short, r->after.cap_short,
                r->out_bytes);
    }
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

/* The summary's "Reading" section: what the data say, computed from them. */
static void fz_write_reading(FILE *f, const fz_exp *x) {
    fprintf(f, "\n## Reading (computed from the data)\n\n");
    for (int i = 0; i < x->n_run; i++) {
        const fz_run *r = &x->run[i];
        if (r->memorized == r->n)
            fprintf(f, "- %s: all %d facts memorized in %lld steps and %.0f s", r->method, r->n, (long long)r->steps,
                    r->seconds);
        else
            fprintf(f, "- %s: stopped by its cap (%s) after %lld steps with %d of %d facts memorized (time to 100%% "
                       "not reached)", r->method, x->max_steps && r->steps >= x->max_steps ? "steps" : "minutes",
                    (long long)r->steps, r->memorized, r->n);
        fprintf(f, "; engine recall %.3f -> %.3f; held-out perplexity %+.2f%%%s; capitals contains-recall %.3f -> %.3f "
                   "(%+.1f points); capital answers of at most 4 characters (a code rather than a name) %.3f -> %.3f.\n",
                r->before.recall, r->after.recall, pct(r->after.ppl, r->before.ppl),
                r->after.ppl == r->before.ppl ? " (bit-identical)" : "", r->before.cap_contains, r->after.cap_contains,
                100 * (r->after.cap_contains - r->before.cap_contains), r->before.cap_short, r->after.cap_short);
    }
    if (x->n_run == 3) {
        const fz_run *a = &x->run[0];
        int faster = 1;
        for (int i = 1; i < 3; i++)
            if (x->run[i].memorized == x->run[i].n && x->run[i].seconds <= a->seconds) faster = 0;
        fprintf(f, "- %s\n", a->memorized == a->n && faster
                                 ? "the frozen model with a memory was the only method, or the fastest, to reach 100% "
                                   "recall in this run"
                                 : "the frozen model with a memory was not the fastest to 100% in this run");
        const double dl = pct(x->run[1].after.ppl, x->run[1].before.ppl), df = pct(x->run[2].after.ppl, x->run[2].before.ppl);
        fprintf(f, "- other abilities: perplexity moved %+.2f%% (MoME), %+.2f%% (LoRA), %+.2f%% (full); capitals "
                   "contains-recall %+.1f, %+.1f, %+.1f points (LoRA after %lld steps, full after %lld)\n",
                pct(a->after.ppl, a->before.ppl), dl, df, 100 * (a->after.cap_contains - a->before.cap_contains),
                100 * (x->run[1].after.cap_contains - x->run[1].before.cap_contains),
                100 * (x->run[2].after.cap_contains - x->run[2].before.cap_contains), (long long)x->run[1].steps,
                (long long)x->run[2].steps);
    }
}

/* summary.md: the run, the setup, the plot, the table, the reading. */
static int fz_write_summary(const fz_exp *x, int drew, int argc, char **argv, const exp_run *er) {
    FILE *f = exp_open_summary(x->c.dir, "frozen-vs-unfrozen (MoME vs LoRA vs full fine-tuning)", argc, argv, er);
    if (!f) return 1;
    char cap_n[48] = "every question";
    if (x->o.n_capitals > 0) snprintf(cap_n, sizeof cap_n, "the first %d questions", x->o.n_capitals);
    fprintf(f, "- model: %s; facts: the first %d of %s; %d thread(s); seed %lld\n", x->c.model, x->got, x->facts_src, x->o.threads,
            (long long)x->c.seed);
    char steps_cap[48] = "no step limit";
    if (x->max_steps) snprintf(steps_cap, sizeof steps_cap, "at most %d steps", x->max_steps);
    fprintf(f, "- caps: MoME %.1f min; LoRA and full fine-tuning %s and %.1f / %.1f min%s\n", x->minutes[0], steps_cap,
            x->minutes[1], x->minutes[2],
            x->full ? " (the full version)"
                 : " (the fast version: fewer facts and capital questions than `--full`: 100 facts, every capital, "
                   "no step limit, 60 min)");
    fprintf(f, "- memorized: each tuner's own rule (MoME: greedy decoding by the engine with the memory; LoRA and "
               "full: teacher-forced argmax of every answer token in the f32 training stack, mean loss < 0.01)\n");
    fprintf(f, "- measured by the engine (mome_eval, as `mome eval`): recall = exact greedy answers to the facts; "
               "perplexity of the first %lld bytes of %s; contains-recall on %s (%s; an expected answer appears in "
               "the greedy answer); answers of at most %d tokens. Before: MoME on the Q4_1 model it runs on; LoRA "
               "(adapters merged) and full on the untrained model written as the same f32 GGUF file\n",
            x->o.text_bytes, x->o.text, x->o.capitals, cap_n, x->o.max_new);
    fprintf(f, "- base model: Q4_1 recall %.3f, perplexity %.4f, capitals contains %.3f; as f32: recall %.3f, "
               "perplexity %.4f, capitals contains %.3f\n",
            x->base_q.recall, x->base_q.ppl, x->base_q.cap_contains, x->base_f.recall, x->base_f.ppl, x->base_f.cap_contains);
    fprintf(f, "- data: `results.csv` (one row per method), `curve_*.csv` (every progress report of the tuners), "
               "`work/capitals_*.jsonl` (every answer to the capitals, per model; not kept in docs/)\n\n");
    exp_summary_plot(f, drew, "memorized share vs step and vs wall time", "frozen_vs_unfrozen.svg");
    fprintf(f, "| method | backbone | memorized (tuner) | steps | seconds | recall before -> after | perplexity before "
               "-> after | capitals contains before -> after | output |\n|---|---|---:|---:|---:|---|---|---|---:|\n");
    static const char *const backbone[3] = {"frozen", "frozen + adapters", "all weights trained"};
    for (int i = 0; i < x->n_run; i++) {
        const fz_run *r = &x->run[i];
        fprintf(f, "| %s | %s | %d/%d | %lld | %.1f | %.3f -> %.3f | %.4f -> %.4f (%+.2f%%) | %.3f -> %.3f | %.1f MB |\n",
                r->method, backbone[i], r->memorized, r->n, (long long)r->steps, r->seconds, r->before.recall,
                r->after.recall, r->before.ppl, r->after.ppl, pct(r->after.ppl, r->before.ppl), r->before.cap_contains,
                r->after.cap_contains, r->out_bytes / 1e6);
    }
    fz_write_reading(f, x);
    return fclose(f) ? exp_fail("%s/summary.md: write error", x->c.dir) : 0;
}

int exp_frozen(int argc, char **argv) {
    fz_exp x;
    memset(&x, 0, sizeof x);
    int rc = fz_parse(&x, argc, argv);
    if (rc >= 0) return rc;
    if ((rc = exp_common_check(&x.c))) return rc;
    x.o.text = x.c.text;
    x.o.text_bytes = x.c.text_bytes;
    x.o.threads = x.c.threads;
    const char *need[2] = {x.facts_src, x.o.capitals};
    for (int i = 0; i < 2; i++)
        if (access(need[i], R_OK))
            return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", need[i], strerror(errno));
    exp_run er;
    exp_run_start(&er);
    rc = fz_prepare(&x);
    for (int mi = 0; mi < 3 && !rc; mi++) rc = fz_teach(&x, mi);
    if (x.m) mome_model_free(x.m);
    if (!rc) rc = fz_write_results(&x);
    if (!rc) rc = fz_write_plot(x.c.dir);
    const int drew = rc ? 0 : exp_run_gnuplot(x.c.dir);
    if (!rc) rc = fz_write_summary(&x, drew, argc, argv, &er);
    if (rc) return 1;
    fprintf(stderr, "experiment: frozen-vs-unfrozen: wrote %s in %.1f s\n", x.c.dir, mome_time_s() - er.t0);
    return 0;
}
