/* exp_util.h - what every `mome experiment` shares: one-line errors, the
 * output folder, the shared data folder, CSV quoting, the machine and time
 * lines of a summary, and running gnuplot on a folder's plot.gp.
 *
 * Each experiment lives in its own file (tools/experiment.c holds threshold,
 * random-labels and the table of experiments; tools/exp_NAME.c the others)
 * and is registered in that table. */
#ifndef MOME_EXP_UTIL_H
#define MOME_EXP_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "arg.h"
#include "util.h"

/* Prints "mome: error: experiment: ..." and returns 1. */
int exp_fail(const char *fmt, ...) MOME_PRINTF(1, 2);
/* $MOME_SHARED or "../shared". */
const char *exp_shared_dir(void);
/* mkdir -p; 0 or -1. */
int exp_mkdir_p(const char *path);
/* The first n non-blank lines of a JSON-lines file into dst; *got = lines. */
int exp_copy_first_lines(const char *src, const char *dst, int n, int *got);
/* A comma-separated list of numbers ("1,2.5,10") into out (at most cap);
 * the count, or -1 if it is not such a list or longer. */
int exp_parse_list(const char *s, double *out, int cap);
/* The next number of a seeded splitmix64 sequence (the experiments' random
 * facts and answers). */
uint64_t exp_rand(uint64_t *state);
/* Levenshtein distance in bytes. */
int exp_edit_distance(const char *a, const char *b);
/* One CSV field, quoted, newlines as spaces. */
void exp_csv_str(FILE *f, const char *s);
/* Creates DIR/plot.gp with the common head (who wrote it, an SVG terminal of
 * width x height writing svg, comma-separated data) for the caller to add its
 * plots and close; NULL after reporting the error. */
FILE *exp_open_plot(const char *dir, const char *experiment, const char *svg, int width, int height);
/* Runs gnuplot on DIR/plot.gp; 1 if it drew (absence is reported, not an error). */
int exp_run_gnuplot(const char *dir);

/* "CPU, N cores online, kernel, load average at the start". */
void exp_machine_line(char *buf, size_t n);
/* "YYYY-MM-DD HH:MM UTC". */
void exp_utc_now(char *buf, size_t n);
/* What a summary's head says about the run: started at, on what machine,
 * wall and CPU time (user + system of every thread of the process, which the
 * machine's other load does not change) since exp_run_start. */
typedef struct exp_run {
    char start[64], machine[512];
    double t0, cpu0;
} exp_run;
void exp_run_start(exp_run *r);
/* User + system CPU seconds of this process so far. */
double exp_cpu_s(void);
/* The summary's plot line: the image (alt text and svg file) when gnuplot
 * drew it, else how to draw it. */
void exp_summary_plot(FILE *f, int drew, const char *alt, const char *svg);
/* Creates DIR/summary.md with its head: "# Experiment: title", the command
 * (`mome experiment` and argv), the start, wall and CPU time, the machine;
 * the caller adds its lines and closes it. NULL after reporting the error. */
FILE *exp_open_summary(const char *dir, const char *title, int argc, char **argv, const exp_run *r);

/* The options experiments share (-m, -o, -t, -s, --text, --text-bytes: rows
 * of tools/arg.h in exp_util.c); each experiment names those it takes (a set
 * of EXP_OPT_*), and only those are parsed and listed in its --help. */
enum exp_opt {
    EXP_OPT_MODEL = 1 << 0,   /* -m, --model PATH */
    EXP_OPT_OUT = 1 << 1,     /* -o, --out DIR */
    EXP_OPT_THREADS = 1 << 2, /* -t, --threads N */
    EXP_OPT_SEED = 1 << 3,    /* -s, --seed S */
    EXP_OPT_TEXT = 1 << 4,    /* --text FILE, --text-bytes N: the held-out text */
};
typedef struct exp_common {
    unsigned takes;         /* EXP_OPT_* */
    const char *name;       /* the experiment's name, for messages */
    const char *model;      /* the default model unless -m */
    const char *dir;        /* build/experiments/NAME unless -o */
    const char *text;       /* $MOME_SHARED/data/text/tinystories_val_head.txt unless --text */
    int threads;            /* 1 */
    int64_t seed;           /* 1234 */
    int64_t text_bytes;     /* 16384: the first 16 KiB */
    char def_dir[256], def_text[4096];
} exp_common;
void exp_common_init(exp_common *c, const char *name, unsigned takes);
/* Checks the common values (2 and a message if one is unusable) and, if the
 * experiment takes one, that the held-out text is readable (1, naming the
 * shared data folder); 0 if all is well. */
int exp_common_check(const exp_common *c);
/* Loads the model c names (-m) with c's threads into *m; 1 after a message
 * naming `make model` when it fails, else 0. */
int exp_load_model(const exp_common *c, mome_model **m);
/* mome_tune_default_params() as the experiments tune: the facts as the file
 * gives them, no subjects inferred from its templates and no relation check
 * (`mome tune` does both by default since 2026-12-05; the paper's experiments
 * route by the key score alone, and docs/EXPERIMENTS.md's figures were made
 * that way). */
mome_tune_params exp_tune_params(void);
/* Held-out perplexity of the model without a memory on the text c names
 * (--text, --text-bytes), with a progress line; 1 after a message. */
int exp_base_perplexity(const exp_common *c, mome_model *m, double *ppl);
/* The message and exit status 2 of an option the experiment does not know
 * (or one missing its value). */
int exp_bad_option(const exp_common *c, const char *arg);

/* Parses argv[1..] (argv[0] is the experiment's name) with the experiment's
 * own option rows (tools/arg.h; cmds 0) and the common options c takes.
 * -h/--help prints the usage line, about, the options and the common ones,
 * each with its default as the variables hold it, and returns 0; an unknown
 * option, a missing value or a number that does not parse returns 2 after a
 * message; -1 when everything was parsed. The experiments declare their
 * numbers without a range (0, 0) and check them themselves. */
int exp_parse_args(exp_common *c, const char *about, const arg_opt *opts, int n_opts, int argc, char **argv);
#define EXP_COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Records [i0, i1) of a cJSON array as JSON lines (one record per line). */
struct cJSON;
int exp_write_json_range(const struct cJSON *arr, int i0, int i1, const char *path);
/* Decode tokens/s as `mome bench` measures generation (one token per
 * mome_decode call, from an empty cache), on a chat question so that the
 * memory's work is in the measured tokens: the question's prompt token by
 * token (its decision row scores every fact), then n_gen greedy tokens, not
 * stopped at the end of turn. With the memory and without it in turn (two
 * contexts), so both see the same load; the medians of reps (at most 31)
 * after one warm-up each. */
int exp_decode_tps(mome_model *m, mome_memory *mem, const char *question, int threads, int n_gen, int reps,
                   double *tps_mem, double *tps_base);

#endif
