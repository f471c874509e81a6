/* arg.h - command-line options, each declared once, and --help made from the
 * declarations (in the manner of llama.cpp's common/arg.h).
 *
 * An option is one row of a table (arg_opt): the commands that take it (a bit
 * mask, so an option several commands share is one row), its spellings, the
 * value's name, the type and the variable its value goes to, the accepted
 * range, and the help text. arg_parse reads argv with the rows and arg_help
 * writes the --help lines from the same rows, so an option is parsed if and
 * only if it is listed, with the range it is listed with.
 *
 * Defaults are not written in the help texts: arg_help appends "(default X)"
 * with X the variable's value when it runs. A command sets its defaults in the
 * variables (from the library's *_default_params() where there are some), then
 * parses, so what --help shows is what the command would use. Where the value
 * would not say it (0 meaning "all cores", a default that depends on the
 * model) the row carries the default in words (.def).
 *
 * Used by tools/mome.c (one table for every command) and by the experiments
 * (tools/exp_util.c). Nothing here prints an error or exits: arg_parse says
 * what went wrong and the caller reports it in its own words.
 */
#ifndef MOME_ARG_H
#define MOME_ARG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum arg_type {
    ARG_T_FLAG,   /* int, set to 1; takes no value */
    ARG_T_STR,    /* const char * */
    ARG_T_LIST,   /* arg_list: repeatable, every value appended */
    ARG_T_CHOICE, /* int: the index of the value in .choices */
    ARG_T_INT,    /* int */
    ARG_T_I64,    /* int64_t */
    ARG_T_U64,    /* uint64_t */
    ARG_T_SIZE,   /* size_t */
    ARG_T_FLOAT,  /* float */
    ARG_T_DOUBLE, /* double */
};

/* The values of a repeatable option, in order (v is malloc'd; free it). */
typedef struct arg_list {
    const char **v;
    int n;
} arg_list;

typedef struct arg_opt {
    unsigned cmds;       /* the commands that take it (bits of the caller's; 0: all) */
    const char *names;   /* its spellings as --help lists them, ", " between: "-t, --threads" */
    const char *value;   /* the value's name in --help: "N", "FILE" (NULL: a flag, or a choice's list) */
    enum arg_type type;  /* the rest of the row: ARG_FLAG(...), ARG_INT(...), ... below */
    void *dst;
    long long lo, hi;    /* integer types: the accepted range (lo == hi, say 0, 0: any value
                            of the type, for a caller that checks it itself) */
    double min, max;     /* ARG_T_FLOAT, ARG_T_DOUBLE: the accepted range (min == max: any) */
    const char *choices; /* ARG_T_CHOICE: the values, "|" between: "mome|lora|full" */
    const char *help;    /* what it does, without the default; wrapped; "\n" breaks a line */
    const char *def;     /* the default in words, where the variable's value would not say
                            it ("": show none); NULL: the value (none for a flag or a list,
                            a NULL string or a NAN) */
} arg_opt;

/* The type, variable and range of a row; the variable's type is checked. */
#define ARG_DST_(T, p) ((void *)_Generic((p), T *: (p)))
#define ARG_FLAG(p) .type = ARG_T_FLAG, .dst = ARG_DST_(int, p)
#define ARG_STR(p) .type = ARG_T_STR, .dst = ARG_DST_(const char *, p)
#define ARG_LIST(p) .type = ARG_T_LIST, .dst = ARG_DST_(arg_list, p)
#define ARG_CHOICE(p, list) .type = ARG_T_CHOICE, .dst = ARG_DST_(int, p), .choices = (list)
#define ARG_INT(p, l, h) .type = ARG_T_INT, .dst = ARG_DST_(int, p), .lo = (l), .hi = (h)
#define ARG_I64(p, l, h) .type = ARG_T_I64, .dst = ARG_DST_(int64_t, p), .lo = (l), .hi = (h)
#define ARG_U64(p, l, h) .type = ARG_T_U64, .dst = ARG_DST_(uint64_t, p), .lo = (l), .hi = (h)
#define ARG_SIZE(p, l, h) .type = ARG_T_SIZE, .dst = ARG_DST_(size_t, p), .lo = (l), .hi = (h)
#define ARG_FLOAT(p, l, h) .type = ARG_T_FLOAT, .dst = ARG_DST_(float, p), .min = (l), .max = (h)
#define ARG_DOUBLE(p, l, h) .type = ARG_T_DOUBLE, .dst = ARG_DST_(double, p), .min = (l), .max = (h)

enum arg_result { ARG_DONE, ARG_HELP, ARG_ERROR };
enum arg_error_kind { ARG_ERR_UNKNOWN, ARG_ERR_MISSING, ARG_ERR_VALUE, ARG_ERR_NOMEM };
typedef struct arg_error {
    enum arg_error_kind kind;
    const char *arg;     /* the option as given (UNKNOWN: the argument) */
    const char *value;   /* ARG_ERR_VALUE: the value given */
    const arg_opt *opt;  /* MISSING, VALUE: its row */
} arg_error;

/* Reads argv[1..] with the rows that command bits `cmd` take and stores each
 * value in its row's variable, in order (a later value wins, a list grows).
 * An argument that is no option goes to *positional if positional is given
 * (the last one wins), else it is an unknown option. ARG_HELP as soon as -h
 * or --help comes; ARG_ERROR with *err at the first problem; else ARG_DONE. */
enum arg_result arg_parse(const arg_opt *opts, int n_opts, unsigned cmd, int argc, char **argv,
                          const char **positional, arg_error *err);
/* The error in words: "unknown option '--x'", "option -n needs a value",
 * "-n expects an integer in [-1, 16777216], got 'x'",
 * "--method expects mome, lora or full, got 'x'". */
void arg_error_text(const arg_error *err, char *buf, size_t n);
/* The --help lines of the rows cmd takes, in table order: the spellings and
 * the value's name, then the help text and its default, wrapped to 100
 * columns. */
void arg_help(FILE *f, const arg_opt *opts, int n_opts, unsigned cmd);

#endif
