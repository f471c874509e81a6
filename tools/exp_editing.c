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

int exp_editing(int argc, char **argv) {
    exp_common o;
    exp_common_init(&o, "editing", EXP_OPT_MODEL | EXP_OPT_OUT | EXP_OPT_THREADS | EXP_OPT_SEED | EXP_OPT_TEXT);
    char def_facts[4096];
    snprintf(def_facts, sizeof def_facts, "%s/data/facts/editing/zsre_mend_train-1k.json", exp_shared_dir());
    const char *facts_src = def_facts;
    int n_batches = ED_BATCHES, batch_size = ED_BATCH_SIZE, max_new = 24, ppl_every = 0, full = 0;
    const arg_opt opts[] = {
        {0, "--facts", "FILE", ARG_STR(&facts_src), .help = "zsRE records, a JSON array"},
        {0, "--batches", "N", ARG_INT(&n_batches, 0, 0), .help = "batches; the default runs the fast version"},
        {0, "--batch-size", "N", ARG_INT(&batch_size, 0, 0), .help = "facts per batch"},
        {0, "--full", NULL, ARG_FLAG(&full), .help = "the issue's version: 10 batches of 100, perplexity after every batch"},
        {0, "--ppl-every", "N", ARG_INT(&ppl_every, 0, 0),
         .help = "held-out perplexity after every Nth batch and the last (--full: 1); always once without a memory",
         .def = "the last only"},
        {0, "--max-new", "N", ARG_INT(&max_new, 0, 0), .help = "answer length limit"},
    };
    const int prc = exp_parse_args(&o,
                                   "Knowledge editing over time: zsRE facts (question `src`, answer `alt`) tuned into one\n"
                                   "memory a batch at a time (each batch added to the previous memory, as `mome tune --memory\n"
                                   "OLD.mome`); after each batch, mome eval's measures on every fact so far: recall, paraphrase\n"
                                   "recall (`rephrase`), locality (`loc` answered as without the memory), held-out perplexity;\n"
                                   "the recall of each earlier batch, decode tokens/s with and without the memory, file size.\n"
                                   "Writes results.csv (every fact after every batch), batches.csv, by_batch.csv, plot.gp,\n"
                                   "editing.svg, summary.md.\n",
                                   opts, EXP_COUNT(opts), argc, argv);
    if (prc >= 0) return prc;
    if (full) {
        n_batches = 10;
        batch_size = 100;
        if (!ppl_every) ppl_every = 1;
    }
    if (n_batches < 1 || batch_size < 1 || max_new < 1 || ppl_every < 0) {
        exp_fail("editing: --batches, --batch-size, --max-new must be positive, --ppl-every non-negative");
        return 2;
    }
    if (n_batches > 1000) { exp_fail("editing: at most 1000 batches"); return 2; }
    int rc = exp_common_check(&o);
    if (rc) return rc;
    const char *model_path = o.model, *dir = o.dir, *text = o.text;
    const int threads = o.threads;
    const long long seed = o.seed, text_bytes = o.text_bytes;
    if (access(facts_src, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", facts_src, strerror(errno));
    exp_run run;
    exp_run_start(&run);

    /* the records */
    char *js = NULL;
    size_t jlen;
    if (mome_read_text(facts_src, 0, &js, &jlen)) return exp_fail("%s", mome_errmsg());
    cJSON *arr = cJSON_Parse(js);
    free(js);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        return exp_fail("%s: not a JSON array of zsRE records", facts_src);
    }
    const int total = n_batches * batch_size;
    if (cJSON_GetArraySize(arr) < total) {
        const int have = cJSON_GetArraySize(arr);
        cJSON_Delete(arr);
        return exp_fail("%s holds %d records; %d batches of %d need %d", facts_src, have, n_batches, batch_size, total);
    }
    char work[3100], path[3200];
    snprintf(work, sizeof work, "%s/work", dir);
    if (exp_mkdir_p(work)) {
        cJSON_Delete(arr);
        return exp_fail("%s: %s", work, strerror(errno));
    }
    for (int b = 0; b < n_batches && !rc; b++) {
        snprintf(path, sizeof path, "%s/batch_%02d.jsonl", work, b + 1);
        rc = exp_write_json_range(arr, b * batch_size, (b + 1) * batch_size, path);
        snprintf(path, sizeof path, "%s/sofar_%02d.jsonl", work, b + 1);
        if (!rc) rc = exp_write_json_range(arr, 0, (b + 1) * batch_size, path);
    }
    cJSON_Delete(arr);
    if (rc) return 1;

    mome_model *m;
    if (exp_load_model(&o, &m)) return 1;
    snprintf(path, sizeof path, "%s/results.csv", dir);
    ed_state st = {fopen(path, "w"), 0, batch_size, malloc((size_t)n_batches * sizeof(int))};
    ed_row *rows = calloc((size_t)n_batches, sizeof *rows);
    /* recall of batch o's facts after batch a: (a, o), a >= o */
    double *by_origin = calloc((size_t)n_batches * (size_t)n_batches, sizeof *by_origin);
    if (!st.csv || !st.exact_by_batch || !rows || !by_origin) {
        if (st.csv) fclose(st.csv);
        free(st.exact_by_batch);
        free(rows);
        free(by_origin);
        mome_model_free(m);
        return exp_fail("%s: cannot write", path);
    }
    fprintf(st.csv, "after_batch,fact,from_batch,exact,question,output\n");

    /* without a memory: perplexity and decode speed */
    double ppl_base = -1;
    {
        mome_eval_params ep = mome_eval_default_params();
        ep.text_path = text;
        ep.text_max_bytes = text_bytes;
        ep.n_threads = threads;
        mome_eval_result er;
        fprintf(stderr, "experiment: editing: held-out perplexity without a memory\n");
        if (mome_eval(m, NULL, &ep, &er)) rc = exp_fail("eval: %s", mome_errmsg());
        else ppl_base = er.perplexity;
    }
    char prev[3300] = "", mem_path[3300], ck[3400];
    int n_rows = 0;
    for (int b = 0; b < n_batches && !rc; b++) {
        ed_row *r = &rows[n_rows];
        r->batch = b + 1;
        r->n_facts = (b + 1) * batch_size;
        char batch_path[3300], sofar[3300];
        snprintf(batch_path, sizeof batch_path, "%s/batch_%02d.jsonl", work, b + 1);
        snprintf(sofar, sizeof sofar, "%s/sofar_%02d.jsonl", work, b + 1);
        snprintf(mem_path, sizeof mem_path, "%s/memory_%02d.mome", work, b + 1);
        snprintf(ck, sizeof ck, "%s.ckpt", mem_path);
        unlink(ck);
        mome_tune_params tp = mome_tune_default_params();
        tp.facts_path = batch_path;
        tp.out_path = mem_path;
        tp.init_memory = b ? prev : NULL;
        tp.on_conflict = 1;
        tp.n_threads = threads;
        tp.seed = (uint64_t)seed;
        tp.checkpoint_s = 0;
        fprintf(stderr, "experiment: editing: batch %d/%d: tuning %d facts into %s\n", b + 1, n_batches, batch_size,
                b ? "the memory so far" : "a new memory");
        mome_tune_report rep;
        if (mome_tune(m, &tp, &rep)) { rc = exp_fail("tune: %s", mome_errmsg()); break; }
        r->new_facts = rep.n_facts;
        r->new_memorized = rep.n_memorized;
        r->steps = rep.steps;
        r->tune_s = rep.seconds;
        snprintf(prev, sizeof prev, "%s", mem_path);
        struct stat sb;
        r->bytes = stat(mem_path, &sb) ? -1 : (long long)sb.st_size;
        mome_memory *mem;
        if (mome_memory_load(mem_path, m, &mem)) { rc = exp_fail("%s", mome_errmsg()); break; }
        const int do_ppl = b == n_batches - 1 || (ppl_every > 0 && (b + 1) % ppl_every == 0);
        mome_eval_params ep = mome_eval_default_params();
        ep.facts_path = sofar;
        ep.text_path = do_ppl ? text : NULL;
        ep.text_max_bytes = text_bytes;
        ep.max_new_tokens = max_new;
        ep.on_conflict = 1;
        ep.n_threads = threads;
        ep.no_context = 1;
        ep.no_variants = 1;
        ep.on_fact = ed_on_fact;
        ep.user = &st;
        st.after = b + 1;
        memset(st.exact_by_batch, 0, (size_t)n_batches * sizeof(int));
        fprintf(stderr, "experiment: editing: batch %d/%d: %d/%d new facts memorized in %lld steps (%.1f s); "
                        "evaluating all %d facts%s\n",
                b + 1, n_batches, rep.n_memorized, rep.n_facts, (long long)rep.steps, rep.seconds, r->n_facts,
                do_ppl ? " and perplexity" : "");
        mome_eval_result er;
        if (mome_eval(m, mem, &ep, &er)) {
            rc = exp_fail("eval: %s", mome_errmsg());
            mome_memory_free(mem);
            break;
        }
        if (er.n_facts != r->n_facts) {
            rc = exp_fail("eval read %d facts of %s, expected %d", er.n_facts, sofar, r->n_facts);
            mome_memory_free(mem);
            break;
        }
        r->recall = er.recall;
        r->para = er.paraphrase_recall;
        r->n_para = er.n_paraphrases;
        r->locality = er.locality;
        r->n_loc = er.n_neighbors;
        r->ppl = do_ppl ? er.perplexity : -1;
        r->eval_s = er.seconds;
        for (int o = 0; o <= b; o++) by_origin[b * n_batches + o] = (double)st.exact_by_batch[o] / batch_size;
        r->recall_first = by_origin[b * n_batches];
        r->recall_new = by_origin[b * n_batches + b];
        /* decode speed, with and without, interleaved so both see the same load */
        const char *q = "What is the product made by UniFirst?";
        if (exp_decode_tps(m, mem, q, threads, ED_TPS_GEN, ED_TPS_REPS, &r->tps, &r->tps_base)) rc = 1;
        mome_memory_free(mem);
        if (rc) break;
        n_rows++;
        fprintf(stderr, "experiment: editing: after batch %d: recall %.3f (first batch %.3f, newest %.3f), paraphrases "
                        "%.3f, locality %.3f, perplexity %.4f, decode %.1f tok/s (without the memory %.1f), %lld bytes\n",
                b + 1, r->recall, r->recall_first, r->recall_new, r->para, r->locality, r->ppl, r->tps, r->tps_base, r->bytes);
    }
    mome_model_free(m);
    if (fclose(st.csv) && !rc) rc = exp_fail("%s/results.csv: write error", dir);
    free(st.exact_by_batch);
    if (!rc) {
        snprintf(path, sizeof path, "%s/batches.csv", dir);
        FILE *f = fopen(path, "w");
        if (!f) rc = exp_fail("%s: %s", path, strerror(errno));
        else {
            fprintf(f, "batch,n_facts,new_memorized,tune_steps,tune_s,recall,recall_first_batch,recall_new_batch,"
                       "paraphrase_recall,n_paraphrases,locality,n_neighbors,perplexity,decode_tps,decode_tps_base,"
                       "file_bytes,eval_s\n");
            for (int i = 0; i < n_rows; i++) {
                const ed_row *r = &rows[i];
                fprintf(f, "%d,%d,%d,%lld,%.2f,%.6f,%.6f,%.6f,%.6f,%d,%.6f,%d,", r->batch, r->n_facts, r->new_memorized,
                        (long long)r->steps, r->tune_s, r->recall, r->recall_first, r->recall_new, r->para, r->n_para,
                        r->locality, r->n_loc);
                if (r->ppl > 0) fprintf(f, "%.6f", r->ppl);
                fprintf(f, ",%.2f,%.2f,%lld,%.2f\n", r->tps, r->tps_base, r->bytes, r->eval_s);
            }
            if (fclose(f)) rc = exp_fail("%s: write error", path);
        }
        snprintf(path, sizeof path, "%s/by_batch.csv", dir);
        f = rc ? NULL : fopen(path, "w");
        if (!rc && !f) rc = exp_fail("%s: %s", path, strerror(errno));
        if (f) {
            fprintf(f, "# recall of the facts of from_batch after after_batch batches\nafter_batch,from_batch,recall\n");
            for (int a = 0; a < n_rows; a++)
                for (int o = 0; o <= a; o++) fprintf(f, "%d,%d,%.6f\n", a + 1, o + 1, by_origin[a * n_batches + o]);
            if (fclose(f)) rc = exp_fail("%s: write error", path);
        }
    }
    if (!rc) rc = ed_write_plot(dir);
    const int drew = rc ? 0 : exp_run_gnuplot(dir);
    FILE *f = NULL;
    if (!rc && !(f = exp_open_summary(dir, "editing (knowledge added a batch at a time)", argc, argv, &run))) rc = 1;
    if (f) {
        const ed_row *first = &rows[0], *last = &rows[n_rows - 1];
        fprintf(f, "- model: %s; facts: the first %d zsRE records of %s in %d batches of %d (question `src`, answer "
                   "`alt`); each batch tuned into the previous batch's memory (`mome tune --memory OLD.mome`), tuner "
                   "seed %lld, %d thread(s)\n",
                model_path, total, facts_src, n_batches, batch_size, seed, threads);
        fprintf(f, "- after each batch, `mome eval`'s measures (mome_eval) on every fact so far: recall (greedy answer "
                   "== `alt`), paraphrase recall (`rephrase`), locality (`loc` answered byte for byte as without the "
                   "memory); held-out perplexity of the first %lld bytes of %s without a memory and after %s; decode "
                   "tokens/s: one token per call, a zsRE question's chat prompt then %d greedy tokens, median of %d, with "
                   "and without the memory in turn\n",
                text_bytes, text, ppl_every ? "the batches that show it in the table" : "the last batch", ED_TPS_GEN,
                ED_TPS_REPS);
        fprintf(f, "- data: `results.csv` (every fact's answer after every batch), `batches.csv`, `by_batch.csv` "
                   "(recall of each batch's facts after each later batch)\n\n");
        if (drew) fprintf(f, "![recall, paraphrases, locality, decode speed and file size per batch](editing.svg)\n\n");
        else fprintf(f, "(no plot: gnuplot was not available; `gnuplot plot.gp` draws it)\n\n");
        fprintf(f, "| batch | facts | new memorized | tune steps | tune s | recall | first batch | newest batch | "
                   "paraphrases | locality | perplexity | tok/s with | without | file bytes |\n"
                   "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < n_rows; i++) {
            const ed_row *r = &rows[i];
            char ppl[32] = "";
            if (r->ppl > 0) snprintf(ppl, sizeof ppl, "%.4f", r->ppl);
            fprintf(f, "| %d | %d | %d/%d | %lld | %.1f | %.3f | %.3f | %.3f | %.3f | %.3f | %s | %.1f | %.1f | %lld |\n",
                    r->batch, r->n_facts, r->new_memorized, r->new_facts, (long long)r->steps, r->tune_s, r->recall,
                    r->recall_first, r->recall_new, r->para, r->locality, ppl, r->tps, r->tps_base, r->bytes);
        }
        fprintf(f, "\nWithout a memory: held-out perplexity %.4f.\n\n## Reading (computed from the data)\n\n", ppl_base);
        /* recall over the batches and forgetting */
        double min_recall = 2, worst_drop = 0;
        int min_at = 0, drop_o = 0, drop_a = 0, all_new = 1;
        for (int a = 0; a < n_rows; a++) {
            if (rows[a].recall < min_recall) { min_recall = rows[a].recall; min_at = a; }
            all_new &= rows[a].new_memorized == rows[a].new_facts;
            for (int o = 0; o < a; o++) {
                const double d = by_origin[o * n_batches + o] - by_origin[a * n_batches + o];
                if (d > worst_drop) { worst_drop = d; drop_o = o; drop_a = a; }
            }
        }
        if (min_recall >= 1 && all_new)
            fprintf(f, "- **No limit met up to %d facts**: every batch was memorized by the tuner and every fact so far "
                       "was recalled exactly after every batch (recall 1.000 at %d batches); adding a batch never cost "
                       "an earlier one a fact.\n",
                    last->n_facts, n_rows);
        else {
            fprintf(f, "- Recall of all facts so far: lowest %.3f, after batch %d (%d facts); %s.\n", min_recall, min_at + 1,
                    rows[min_at].n_facts,
                    all_new ? "every batch was memorized by the tuner when it was added"
                            : "at least one batch was not fully memorized by the tuner (the table's new-memorized column)");
            if (worst_drop > 0)
                fprintf(f, "- Forgetting: the largest drop of an earlier batch's recall is %.3f (batch %d's facts, from "
                           "%.3f when added to %.3f after batch %d): later facts took over some of its questions.\n",
                        worst_drop, drop_o + 1, by_origin[drop_o * n_batches + drop_o],
                        by_origin[drop_a * n_batches + drop_o], drop_a + 1);
            else fprintf(f, "- No earlier batch lost a fact when later ones were added.\n");
        }
        fprintf(f, "- Paraphrase recall %.3f after batch 1 and %.3f after batch %d; locality on `loc` %.3f and %.3f (%d "
                   "neighbour questions at the end).\n",
                first->para, last->para, last->batch, first->locality, last->locality, last->n_loc);
        int same = 1, n_ppl = 0;
        for (int i = 0; i < n_rows; i++)
            if (rows[i].ppl > 0) {
                n_ppl++;
                same &= rows[i].ppl == ppl_base;
            }
        if (same)
            fprintf(f, "- Held-out perplexity: identical to the model without a memory (%.4f) wherever measured (%d "
                       "memor%s): plain text has no user turn, so the memory selects nothing there.\n",
                    ppl_base, n_ppl, n_ppl == 1 ? "y" : "ies");
        else
            fprintf(f, "- Held-out perplexity changed: %.4f without a memory, %.4f after the last batch.\n", ppl_base,
                    last->ppl);
        double rmin = 1e9, rmax = 0;
        for (int i = 0; i < n_rows; i++) {
            const double q = rows[i].tps / rows[i].tps_base;
            if (q < rmin) rmin = q;
            if (q > rmax) rmax = q;
        }
        fprintf(f, "- Decode speed with the memory / without, measured in turn after each batch: %.2f-%.2f (%.1f vs %.1f "
                   "tokens/s after the last batch; the decision row scores every fact, the other tokens copy one state).\n",
                rmin, rmax, last->tps, last->tps_base);
        if (n_rows > 1)
            fprintf(f, "- File size: %.0f bytes per added fact from batch 1 to batch %d (%lld bytes "
                       "with %d facts); tuning a batch of %d took %.1f s at batch 1 and %.1f s at batch %d.\n",
                    (double)(last->bytes - first->bytes) / (last->n_facts - first->n_facts), last->batch, last->bytes,
                    last->n_facts, batch_size, first->tune_s, last->tune_s, last->batch);
        fprintf(f, "- Structure: memory version 2 has no bank count or expert pool to fill (one expert per answer row, "
                   "owned by its fact); a new batch only adds facts, trained with the earlier ones frozen. The key centres "
                   "stay those of the first batch (a loaded memory keeps its centres), so what can limit additions is "
                   "selection: a new fact whose keys outscore an old fact's on the old question.\n");
        if (fclose(f)) rc = exp_fail("%s/summary.md: write error", dir);
    }
    free(rows);
    free(by_origin);
    if (!rc) fprintf(stderr, "experiment: editing: wrote %s in %.1f s\n", dir, mome_time_s() - run.t0);
    return rc ? 1 : 0;
}
