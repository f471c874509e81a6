/* exp_editing.c - `mome experiment editing` (issue 11, experiment 6): facts
 * added to one memory a batch at a time, as a user adding knowledge over
 * time would, measured in the knowledge-editing field's terms after each
 * batch.
 *
 * Batch b (zsRE records: the question `src`, the new answer `alt`, the
 * paraphrase `rephrase`, the unrelated neighbour `loc`) is tuned into the
 * memory of batch b-1 (mome_tune with init_memory, as `mome tune --memory
 * OLD.mome --facts BATCH -o NEW.mome`). Then, with the new memory, mome_eval
 * (the measures of `mome eval`, not re-implemented here) on every fact so
 * far: recall, paraphrase recall, locality on the `loc` questions (answers
 * byte-identical with and without the memory) and, on the batches asked for,
 * held-out perplexity; plus the recall of each earlier batch's facts (does
 * adding forget?), decode tokens/s with and without the memory and the file
 * size.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exp_util.h"
#include "experiment.h"
#include "mome.h"
#include "util.h"

/* The fast version: ED_BATCHES batches of ED_BATCH_SIZE facts; decode speed
 * over ED_TPS_GEN greedy tokens, median of ED_TPS_REPS. */
#define ED_BATCHES 4
#define ED_BATCH_SIZE 12
#define ED_TPS_GEN 32
#define ED_TPS_REPS 5

/* Per-fact outcomes of one evaluation, by the batch each fact came in. */
typedef struct ed_state {
    FILE *csv;
    int after;       /* batches in the memory */
    int batch_size;
    int *exact_by_batch;
} ed_state;

static void ed_on_fact(int index, int n, const char *question, const char *output, int exact, int contains,
                       int abstained, void *user) {
    ed_state *s = user;
    const int origin = index / s->batch_size;
    s->exact_by_batch[origin] += exact != 0;
    fprintf(s->csv, "%d,%d,%d,%d,", s->after, index, origin + 1, exact != 0);
    exp_csv_str(s->csv, question);
    fputc(',', s->csv);
    exp_csv_str(s->csv, output);
    fputc('\n', s->csv);
}

typedef struct ed_row {
    int batch, n_facts, new_memorized, new_facts;
    int64_t steps;
    double tune_s, recall, recall_first, recall_new, para, locality, ppl, tps, tps_base, eval_s;
    int n_para, n_loc;
    long long bytes;
} ed_row;

static int ed_write_plot(const char *dir) {
    FILE *f = exp_open_plot(dir, "editing", "editing.svg", 1200, 420);
    if (!f) return 1;
    fprintf(f,
            "set grid\n"
            "set xlabel 'facts in the memory'\n"
            "set multiplot layout 1,3 title 'zsRE facts added to one memory a batch at a time'\n"
            "set key bottom left box opaque\n"
            "set yrange [0:1.05]\n"
            "set ylabel 'share'\n"
            "plot 'batches.csv' using 2:6 with linespoints lw 2 pt 7 title 'recall, all so far', \\\n"
            "     '' using 2:7 with linespoints lw 2 pt 6 title 'recall, first batch', \\\n"
            "     '' using 2:9 with linespoints lw 2 pt 5 title 'paraphrase recall', \\\n"
            "     '' using 2:11 with linespoints lw 2 pt 9 title 'locality (loc)'\n"
            "set autoscale y\n"
            "set yrange [0:*]\n"
            "set ylabel 'decode tokens/s (1 token per call)'\n"
            "plot 'batches.csv' using 2:14 with linespoints lw 2 pt 7 title 'with the memory', \\\n"
            "     '' using 2:15 with linespoints lw 2 pt 5 title 'without'\n"
            "set ylabel 'KiB, seconds'\n"
            "set key top left box opaque\n"
            "plot 'batches.csv' using 2:($16/1024) with linespoints lw 2 pt 7 title 'memory file (KiB)', \\\n"
            "     '' using 2:5 with linespoints lw 2 pt 5 title 'tuning the batch (s)'\n"
            "unset multiplot\n");
    return fclose(f) ? exp_fail("%s/plot.gp: write error", dir) : 0;
}

/* One run of the experiment: its settings, the model and the outcome files,
 * and the rows measured after each batch. */
typedef struct ed_exp {
    exp_common o;
    const char *facts_src;
    int n_batches, batch_size, max_new, ppl_every, full, total;
    char def_facts[4096], work[3100];
    mome_model *m;
    ed_state st;          /* results.csv and the per-batch tallies of one evaluation */
    ed_row *rows;         /* (n_batches) */
    double *by_origin;    /* (n_batches x n_batches) recall of batch o's facts after batch a: (a, o), a >= o */
    double ppl_base;      /* held-out perplexity without a memory */
    int n_rows;           /* batches measured */
} ed_exp;

/* The options and their checks: -1 to go on, else the exit status. */
static int ed_parse(ed_exp *x, int argc, char **argv) {
    exp_common_init(&x->o, "editing", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED | EXP_OPT_TEXT);
    snprintf(x->def_facts, sizeof x->def_facts, "%s/data/facts/editing/zsre_mend_train-1k.json", exp_shared_dir());
    x->facts_src = x->def_facts;
    x->n_batches = ED_BATCHES, x->batch_size = ED_BATCH_SIZE, x->max_new = 24;
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&x->facts_src), .help = "zsRE records, a JSON array"},
        {0, "--batches", "N", ARG_INT(&x->n_batches, 0, 0), .help = "batches; the default runs the fast version"},
        {0, "--batch-size", "N", ARG_INT(&x->batch_size, 0, 0), .help = "facts per batch"},
        {0, "--full", NULL, ARG_FLAG(&x->full), .help = "the issue's version: 10 batches of 100, perplexity after every batch"},
        {0, "--ppl-every", "N", ARG_INT(&x->ppl_every, 0, 0),
         .help = "held-out perplexity after every Nth batch and the last (--full: 1); always once without a memory",
         .def = "the last only"},
        {0, "--max-new", "N", ARG_INT(&x->max_new, 0, 0), .help = "answer length limit"},
    };
    const int prc = exp_parse_args(&x->o,
                                   "Knowledge editing over time: zsRE facts (question `src`, answer `alt`) tuned into one\n"
                                   "memory a batch at a time (each batch added to the previous memory, as `mome tune --memory\n"
                                   "OLD.mome`); after each batch, mome eval's measures on every fact so far: recall, paraphrase\n"
                                   "recall (`rephrase`), locality (`loc` answered as without the memory), held-out perplexity;\n"
                                   "the recall of each earlier batch, decode tokens/s with and without the memory, file size.\n"
                                   "Writes results.csv (every fact after every batch), batches.csv, by_batch.csv, plot.gp,\n"
                                   "editing.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    if (x->full) {
        x->n_batches = 10;
        x->batch_size = 100;
        if (!x->ppl_every) x->ppl_every = 1;
    }
    if (x->n_batches < 1 || x->batch_size < 1 || x->max_new < 1 || x->ppl_every < 0) {
        exp_fail("editing: --batches, --batch-size, --max-new must be positive, --ppl-every non-negative");
        return 2;
    }
    if (x->n_batches > 1000) {
        exp_fail("editing: at most 1000 batches");
        return 2;
    }
    x->total = x->n_batches * x->batch_size;
    return -1;
}

/* The records: each batch (work/batch_NN.jsonl) and every fact up to it
 * (work/sofar_NN.jsonl) as JSON lines. */
static int ed_write_batches(ed_exp *x) {
    char *js = NULL;
    size_t jlen;
    if (mome_read_text(x->facts_src, 0, &js, &jlen)) return exp_fail("%s", mome_errmsg());
    cJSON *arr = cJSON_Parse(js);
    free(js);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return exp_fail("%s: not a JSON array of zsRE records", x->facts_src);
    }
    const int have = cJSON_GetArraySize(arr);
    if (have < x->total) {
        cJSON_Delete(arr);
        return exp_fail("%s holds %d records; %d batches of %d need %d", x->facts_src, have, x->n_batches, x->batch_size,
                        x->total);
    }
    char path[3200];
    snprintf(x->work, sizeof x->work, "%s/work", x->o.dir);
    int rc = exp_mkdir_p(x->work) ? exp_fail("%s: %s", x->work, strerror(errno)) : 0;
    for (int b = 0; b < x->n_batches && !rc; b++) {
        snprintf(path, sizeof path, "%s/batch_%02d.jsonl", x->work, b + 1);
        rc = exp_write_json_range(arr, b * x->batch_size, (b + 1) * x->batch_size, path);
        snprintf(path, sizeof path, "%s/sofar_%02d.jsonl", x->work, b + 1);
        if (!rc) rc = exp_write_json_range(arr, 0, (b + 1) * x->batch_size, path);
    }
    cJSON_Delete(arr);
    return rc ? 1 : 0;
}

/* What every batch needs: the model, results.csv, the tallies, and the
 * perplexity without a memory. */
static int ed_prepare(ed_exp *x) {
    if (exp_load_model(&x->o, &x->m)) return 1;
    char path[3200];
    snprintf(path, sizeof path, "%s/results.csv", x->o.dir);
    x->st = (ed_state){fopen(path, "w"), 0, x->batch_size, malloc((size_t)x->n_batches * sizeof(int))};
    x->rows = calloc((size_t)x->n_batches, sizeof *x->rows);
    x->by_origin = calloc((size_t)x->n_batches * (size_t)x->n_batches, sizeof *x->by_origin);
    if (!x->st.csv || !x->st.exact_by_batch || !x->rows || !x->by_origin) return exp_fail("%s: cannot write", path);
    fprintf(x->st.csv, "after_batch,fact,from_batch,exact,question,output\n");
    return exp_base_perplexity(&x->o, x->m, &x->ppl_base);
}

/* Batch b tuned into the previous batch's memory (a new one for the
 * first), loaded into *mem. */
static int ed_tune(ed_exp *x, int b, ed_row *r, mome_memory **mem) {
    char batch_path[3300], prev[3300], mem_path[3300], ck[3400];
    snprintf(batch_path, sizeof batch_path, "%s/batch_%02d.jsonl", x->work, b + 1);
    snprintf(prev, sizeof prev, "%s/memory_%02d.mome", x->work, b);
    snprintf(mem_path, sizeof mem_path, "%s/memory_%02d.mome", x->work, b + 1);
    snprintf(ck, sizeof ck, "%s.ckpt", mem_path);
    unlink(ck);
    mome_tune_params tp = exp_tune_params();
    tp.facts_path = batch_path;
    tp.out_path = mem_path;
    tp.init_memory = b ? prev : NULL;
    tp.on_conflict = 1;
    tp.n_threads = x->o.threads;
    tp.seed = (uint64_t)x->o.seed;
    tp.checkpoint_s = 0;
    fprintf(stderr, "experiment: editing: batch %d/%d: tuning %d facts into %s\n", b + 1, x->n_batches, x->batch_size,
            b ? "the memory so far" : "a new memory");
    mome_tune_report rep;
    if (mome_tune(x->m, &tp, &rep)) return exp_fail("tune: %s", mome_errmsg());
    r->new_facts = rep.n_facts;
    r->new_memorized = rep.n_memorized;
    r->steps = rep.steps;
    r->tune_s = rep.seconds;
    struct stat sb;
    r->bytes = stat(mem_path, &sb) ? -1 : (long long)sb.st_size;
    return mome_memory_load(mem_path, x->m, mem) ? exp_fail("%s", mome_errmsg()) : 0;
}

/* After batch b: mome eval's measures on every fact so far (each answer
 * into results.csv, by the batch it came in), and decode speed. */
static int ed_measure(ed_exp *x, int b, ed_row *r, mome_memory *mem) {
    char sofar[3300];
    snprintf(sofar, sizeof sofar, "%s/sofar_%02d.jsonl", x->work, b + 1);
    const int do_ppl = b == x->n_batches - 1 || (x->ppl_every > 0 && (b + 1) % x->ppl_every == 0);
    mome_eval_params ep = mome_eval_default_params();
    ep.facts_path = sofar;
    ep.text_path = do_ppl ? x->o.text : NULL;
    ep.text_max_bytes = x->o.text_bytes;
    ep.max_new_tokens = x->max_new;
    ep.on_conflict = 1;
    ep.n_threads = x->o.threads;
    ep.no_context = 1;
    ep.no_variants = 1;
    ep.on_fact = ed_on_fact;
    ep.user = &x->st;
    x->st.after = b + 1;
    memset(x->st.exact_by_batch, 0, (size_t)x->n_batches * sizeof(int));
    fprintf(stderr, "experiment: editing: batch %d/%d: %d/%d new facts memorized in %lld steps (%.1f s); "
                    "evaluating all %d facts%s\n",
            b + 1, x->n_batches, r->new_memorized, r->new_facts, (long long)r->steps, r->tune_s, r->n_facts,
            do_ppl ? " and perplexity" : "");
    mome_eval_result er;
    if (mome_eval(x->m, mem, &ep, &er)) return exp_fail("eval: %s", mome_errmsg());
    if (er.n_facts != r->n_facts) return exp_fail("eval read %d facts of %s, expected %d", er.n_facts, sofar, r->n_facts);
    r->recall = er.recall;
    r->para = er.paraphrase_recall;
    r->n_para = er.n_paraphrases;
    r->locality = er.locality;
    r->n_loc = er.n_neighbors;
    r->ppl = do_ppl ? er.perplexity : -1;
    r->eval_s = er.seconds;
    double *by = x->by_origin + (size_t)b * x->n_batches;
    for (int o = 0; o <= b; o++) by[o] = (double)x->st.exact_by_batch[o] / x->batch_size;
    r->recall_first = by[0];
    r->recall_new = by[b];
    /* decode speed, with and without, interleaved so both see the same load */
    const char *q = "What is the product made by UniFirst?";
    return exp_decode_tps(x->m, mem, q, x->o.threads, ED_TPS_GEN, ED_TPS_REPS, &r->tps, &r->tps_base) ? 1 : 0;
}

/* batches.csv and by_batch.csv from the batches measured. */
static int ed_write_tables(const ed_exp *x) {
    char path[3200];
    snprintf(path, sizeof path, "%s/batches.csv", x->o.dir);
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "batch,n_facts,new_memorized,tune_steps,tune_s,recall,recall_first_batch,recall_new_batch,"
               "paraphrase_recall,n_paraphrases,locality,n_neighbors,perplexity,decode_tps,decode_tps_base,"
               "file_bytes,eval_s\n");
    for (int i = 0; i < x->n_rows; i++) {
        const ed_row *r = &x->rows[i];
        fprintf(f, "%d,%d,%d,%lld,%.2f,%.6f,%.6f,%.6f,%.6f,%d,%.6f,%d,", r->batch, r->n_facts, r->new_memorized,
                (long long)r->steps, r->tune_s, r->recall, r->recall_first, r->recall_new, r->para, r->n_para,
                r->locality, r->n_loc);
        if (r->ppl > 0) fprintf(f, "%.6f", r->ppl);
        fprintf(f, ",%.2f,%.2f,%lld,%.2f\n", r->tps, r->tps_base, r->bytes, r->eval_s);
    }
    if (fclose(f)) return exp_fail("%s: write error", path);
    snprintf(path, sizeof path, "%s/by_batch.csv", x->o.dir);
    if (!(f = fopen(path, "w"))) return exp_fail("%s: %s", path, strerror(errno));
    fprintf(f, "# recall of the facts of from_batch after after_batch batches\nafter_batch,from_batch,recall\n");
    for (int a = 0; a < x->n_rows; a++)
        for (int o = 0; o <= a; o++) fprintf(f, "%d,%d,%.6f\n", a + 1, o + 1, x->by_origin[a * x->n_batches + o]);
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

/* The summary's "Reading" section: what the data say, computed from them. */
static void ed_write_reading(FILE *f, const ed_exp *x) {
    const ed_row *first = &x->rows[0], *last = &x->rows[x->n_rows - 1];
    fprintf(f, "\nWithout a memory: held-out perplexity %.4f.\n\n## Reading (computed from the data)\n\n", x->ppl_base);
    /* recall over the batches and forgetting */
    double min_recall = 2, worst_drop = 0;
    int min_at = 0, drop_o = 0, drop_a = 0, all_new = 1;
    for (int a = 0; a < x->n_rows; a++) {
        if (x->rows[a].recall < min_recall) { min_recall = x->rows[a].recall; min_at = a; }
        all_new &= x->rows[a].new_memorized == x->rows[a].new_facts;
        for (int o = 0; o < a; o++) {
            const double d = x->by_origin[o * x->n_batches + o] - x->by_origin[a * x->n_batches + o];
            if (d > worst_drop) { worst_drop = d; drop_o = o; drop_a = a; }
        }
    }
    if (min_recall >= 1 && all_new)
        fprintf(f, "- **No limit met up to %d facts**: every batch was memorized by the tuner and every fact so far "
                   "was recalled exactly after every batch (recall 1.000 at %d batches); adding a batch never cost "
                   "an earlier one a fact.\n",
                last->n_facts, x->n_rows);
    else {
        fprintf(f, "- Recall of all facts so far: lowest %.3f, after batch %d (%d facts); %s.\n", min_recall, min_at + 1,
                x->rows[min_at].n_facts,
                all_new ? "every batch was memorized by the tuner when it was added"
                        : "at least one batch was not fully memorized by the tuner (the table's new-memorized column)");
        if (worst_drop > 0)
            fprintf(f, "- Forgetting: the largest drop of an earlier batch's recall is %.3f (batch %d's facts, from "
                       "%.3f when added to %.3f after batch %d): later facts took over some of its questions.\n",
                    worst_drop, drop_o + 1, x->by_origin[drop_o * x->n_batches + drop_o],
                    x->by_origin[drop_a * x->n_batches + drop_o], drop_a + 1);
        else fprintf(f, "- No earlier batch lost a fact when later ones were added.\n");
    }
    fprintf(f, "- Paraphrase recall %.3f after batch 1 and %.3f after batch %d; locality on `loc` %.3f and %.3f (%d "
               "neighbour questions at the end).\n",
            first->para, last->para, last->batch, first->locality, last->locality, last->n_loc);
    int same = 1, n_ppl = 0;
    for (int i = 0; i < x->n_rows; i++)
        if (x->rows[i].ppl > 0) {
            n_ppl++;
            same &= x->rows[i].ppl == x->ppl_base;
        }
    if (same)
        fprintf(f, "- Held-out perplexity: identical to the model without a memory (%.4f) wherever measured (%d "
                   "memor%s): plain text has no user turn, so the memory selects nothing there.\n",
                x->ppl_base, n_ppl, n_ppl == 1 ? "y" : "ies");
    else
        fprintf(f, "- Held-out perplexity changed: %.4f without a memory, %.4f after the last batch.\n", x->ppl_base,
                last->ppl);
    double rmin = 1e9, rmax = 0;
    for (int i = 0; i < x->n_rows; i++) {
        const double q = x->rows[i].tps / x->rows[i].tps_base;
        if (q < rmin) rmin = q;
        if (q > rmax) rmax = q;
    }
    fprintf(f, "- Decode speed with the memory / without, measured in turn after each batch: %.2f-%.2f (%.1f vs %.1f "
               "tokens/s after the last batch; the decision row scores every fact, the other tokens copy one state).\n",
            rmin, rmax, last->tps, last->tps_base);
    if (x->n_rows > 1)
        fprintf(f, "- File size: %.0f bytes per added fact from batch 1 to batch %d (%lld bytes "
                   "with %d facts); tuning a batch of %d took %.1f s at batch 1 and %.1f s at batch %d.\n",
                (double)(last->bytes - first->bytes) / (last->n_facts - first->n_facts), last->batch, last->bytes,
                last->n_facts, x->batch_size, first->tune_s, last->tune_s, last->batch);
    fprintf(f, "- Structure: memory version 2 has no bank count or expert pool to fill (one expert per answer row, "
               "owned by its fact); a new batch only adds facts, trained with the earlier ones frozen. The key centres "
               "stay those of the first batch (a loaded memory keeps its centres), so what can limit additions is "
               "selection: a new fact whose keys outscore an old fact's on the old question.\n");
}

/* summary.md: the run, the setup, the plot, the table, the reading. */
static int ed_write_summary(const ed_exp *x, int drew, int argc, char **argv, const exp_run *run) {
    FILE *f = exp_open_summary(x->o.dir, "editing (knowledge added a batch at a time)", argc, argv, run);
    if (!f) return 1;
    fprintf(f, "- model: %s; facts: the first %d zsRE records of %s in %d batches of %d (question `src`, answer "
               "`alt`); each batch tuned into the previous batch's memory (`mome tune --memory OLD.mome`), tuner "
               "seed %lld, %d thread(s)\n",
            x->o.model, x->total, x->facts_src, x->n_batches, x->batch_size, (long long)x->o.seed, x->o.threads);
    fprintf(f, "- after each batch, `mome eval`'s measures (mome_eval) on every fact so far: recall (greedy answer "
               "== `alt`), paraphrase recall (`rephrase`), locality (`loc` answered byte for byte as without the "
               "memory); held-out perplexity of the first %lld bytes of %s without a memory and after %s; decode "
               "tokens/s: one token per call, a zsRE question's chat prompt then %d greedy tokens, median of %d, with "
               "and without the memory in turn\n",
            (long long)x->o.text_bytes, x->o.text, x->ppl_every ? "the batches that show it in the table" : "the last batch", ED_TPS_GEN,
            ED_TPS_REPS);
    fprintf(f, "- data: `results.csv` (every fact's answer after every batch), `batches.csv`, `by_batch.csv` "
               "(recall of each batch's facts after each later batch)\n\n");
    exp_summary_plot(f, drew, "recall, paraphrases, locality, decode speed and file size per batch", "editing.svg");
    fprintf(f, "| batch | facts | new memorized | tune steps | tune s | recall | first batch | newest batch | "
               "paraphrases | locality | perplexity | tok/s with | without | file bytes |\n"
               "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < x->n_rows; i++) {
        const ed_row *r = &x->rows[i];
        char ppl[32] = "";
        if (r->ppl > 0) snprintf(ppl, sizeof ppl, "%.4f", r->ppl);
        fprintf(f, "| %d | %d | %d/%d | %lld | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %.1f | %.1f | %lld |\n",
                r->batch, r->n_facts, r->new_memorized, r->new_facts, (long long)r->steps, r->tune_s, r->recall,
                r->recall_first, r->recall_new, r->para, r->locality, ppl, r->tps, r->tps_base, r->bytes);
    }
    ed_write_reading(f, x);
    return fclose(f) ? exp_fail("%s/summary.md: write error", x->o.dir) : 0;
}

static void ed_free(ed_exp *x) {
    if (x->m) mome_model_free(x->m);
    if (x->st.csv) fclose(x->st.csv);
    free(x->st.exact_by_batch);
    free(x->rows);
    free(x->by_origin);
}

int exp_editing(int argc, char **argv) {
    ed_exp x;
    memset(&x, 0, sizeof x);
    x.ppl_base = -1;
    int rc = ed_parse(&x, argc, argv);
    if (rc >= 0) return rc;
    if ((rc = exp_common_check(&x.o))) return rc;
    if (access(x.facts_src, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", x.facts_src, strerror(errno));
    exp_run run;
    exp_run_start(&run);
    rc = ed_write_batches(&x);
    if (!rc) rc = ed_prepare(&x);
    for (int b = 0; b < x.n_batches && !rc; b++) {
        ed_row *r = &x.rows[x.n_rows];
        r->batch = b + 1;
        r->n_facts = (b + 1) * x.batch_size;
        mome_memory *mem = NULL;
        rc = ed_tune(&x, b, r, &mem);
        if (!rc) rc = ed_measure(&x, b, r, mem);
        mome_memory_free(mem);
        if (rc) break;
        x.n_rows++;
        fprintf(stderr, "experiment: editing: after batch %d: recall %.3f (first batch %.3f, newest %.3f), paraphrases "
                        "%.3f, locality %.3f, perplexity %.4f, decode %.1f tok/s (without the memory %.1f), %lld bytes\n",
                b + 1, r->recall, r->recall_first, r->recall_new, r->para, r->locality, r->ppl, r->tps, r->tps_base, r->bytes);
    }
    if (x.m) mome_model_free(x.m);
    x.m = NULL;
    if (x.st.csv && fclose(x.st.csv) && !rc) rc = exp_fail("%s/results.csv: write error", x.o.dir);
    x.st.csv = NULL;
    if (!rc) rc = ed_write_tables(&x);
    if (!rc) rc = ed_write_plot(x.o.dir);
    const int drew = rc ? 0 : exp_run_gnuplot(x.o.dir);
    if (!rc) rc = ed_write_summary(&x, drew, argc, argv, &run);
    ed_free(&x);
    if (!rc) fprintf(stderr, "experiment: editing: wrote %s in %.1f s\n", x.o.dir, mome_time_s() - run.t0);
    return rc ? 1 : 0;
}
