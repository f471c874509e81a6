/* exp_util.h - what every `mome experiment` shares: one-line errors, the
 * output folder, the shared data folder, CSV quoting, the machine and time
 * lines of a summary, and running gnuplot on a folder's plot.gp.
 *
 * Each experiment lives in its own file (tools/experiment.c holds threshold,
 * random-labels and the table of experiments; tools/exp_NAME.c the others)
 * and is registered in that table. */
#ifndef MOME_EXP_UTIL_H
#define MOME_EXP_UTIL_H

#include <stdio.h>

#include "util.h"

/* Prints "mome: error: experiment: ..." and returns 1. */
int exp_fail(const char *fmt, ...) MOME_PRINTF(1, 2);
/* $MOME_SHARED or "../shared". */
const char *exp_shared_dir(void);
/* mkdir -p; 0 or -1. */
int exp_mkdir_p(const char *path);
/* The first n non-blank lines of a JSON-lines file into dst; *got = lines. */
int exp_copy_first_lines(const char *src, const char *dst, int n, int *got);
/* Levenshtein distance in bytes. */
int exp_edit_distance(const char *a, const char *b);
/* One CSV field, quoted, newlines as spaces. */
void exp_csv_str(FILE *f, const char *s);
/* "CPU, N cores online, kernel, load average at the start". */
void exp_machine_line(char *buf, size_t n);
/* "YYYY-MM-DD HH:MM UTC". */
void exp_utc_now(char *buf, size_t n);
/* Creates DIR/plot.gp with the common head (who wrote it, an SVG terminal of
 * width x height writing svg, comma-separated data) for the caller to add its
 * plots and close; NULL after reporting the error. */
FILE *exp_open_plot(const char *dir, const char *experiment, const char *svg, int width, int height);
/* Runs gnuplot on DIR/plot.gp; 1 if it drew (absence is reported, not an error). */
int exp_run_gnuplot(const char *dir);

/* The options an experiment shares with the others: -m/--model, -o/--out,
 * -t/--threads, -s/--seed, --text, --text-bytes (held-out text). */
typedef struct exp_common {
    const char *model;      /* the default model unless -m */
    const char *dir;        /* build/experiments/NAME unless -o */
    const char *text;       /* $MOME_SHARED/data/text/tinystories_val_head.txt unless --text */
    int threads;            /* 1 */
    long long seed;         /* 1234 */
    long long text_bytes;   /* 16384: the first 16 KiB */
    char def_dir[256], def_text[4096];
} exp_common;
void exp_common_init(exp_common *c, const char *name);
/* If argv[*i] is a common option with its value: stores it, advances *i
 * past the value and returns 1; else 0. */
int exp_common_opt(exp_common *c, int argc, char **argv, int *i);
/* Their lines of --help. */
void exp_common_help(const exp_common *c);
/* Checks the common values (2 and a message if one is unusable) and that
 * the held-out text is readable (1, naming the shared data folder); 0 if
 * all is well. */
int exp_common_check(const exp_common *c, const char *name);

#endif
