/* arg.c - parsing argv with the option rows of arg.h, and their --help lines. */
#include "arg.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { HELP_COL = 24, HELP_WIDTH = 100 }; /* where the help text starts; the width it is wrapped to */

static int takes(const arg_opt *o, unsigned cmd) { return !o->cmds || (o->cmds & cmd); }

/* Whether a is one of the spellings in names ("-t, --threads"). */
static int spelled(const char *names, const char *a) {
    const size_t len = strlen(a);
    for (const char *s = names;;) {
        const size_t k = strcspn(s, ",");
        if (k == len && !strncmp(s, a, k)) return 1;
        if (!s[k]) return 0;
        s += k + 1;
        while (*s == ' ') s++;
    }
}

/* The k-th value of "a|b|c" and its length; NULL past the last. */
static const char *choice_at(const char *choices, int k, int *len) {
    for (const char *s = choices;; s++) {
        *len = (int)strcspn(s, "|");
        if (k-- == 0) return s;
        s += *len;
        if (!*s) return NULL;
    }
}

/* The index of v in "a|b|c", or -1. */
static int choice_index(const char *choices, const char *v) {
    const char *s;
    int len;
    for (int k = 0; (s = choice_at(choices, k, &len)); k++)
        if (len == (int)strlen(v) && !strncmp(s, v, (size_t)len)) return k;
    return -1;
}

static int is_integer(enum arg_type t) { return t == ARG_T_INT || t == ARG_T_I64 || t == ARG_T_U64 || t == ARG_T_SIZE; }

/* The range of an integer row: its own, or (lo == hi) the type's. */
static void int_range(const arg_opt *o, long long *lo, long long *hi) {
    *lo = o->lo;
    *hi = o->hi;
    if (*lo != *hi) return;
    if (o->type == ARG_T_INT) *lo = INT_MIN, *hi = INT_MAX;
    else if (o->type == ARG_T_I64) *lo = LLONG_MIN, *hi = LLONG_MAX;
    else *lo = 0, *hi = (unsigned long long)SIZE_MAX < (unsigned long long)LLONG_MAX ? (long long)SIZE_MAX : LLONG_MAX;
}

/* Stores v in o's variable: 0, or ARG_ERR_VALUE or ARG_ERR_NOMEM. */
static int store(const arg_opt *o, const char *v) {
    char *end;
    errno = 0;
    if (o->type == ARG_T_STR) {
        *(const char **)o->dst = v;
    } else if (o->type == ARG_T_LIST) {
        arg_list *l = o->dst;
        const char **nv = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
        if (!nv) return ARG_ERR_NOMEM;
        l->v = nv;
        l->v[l->n++] = v;
    } else if (o->type == ARG_T_CHOICE) {
        const int k = choice_index(o->choices, v);
        if (k < 0) return ARG_ERR_VALUE;
        *(int *)o->dst = k;
    } else if (is_integer(o->type)) {
        long long lo, hi;
        int_range(o, &lo, &hi);
        const long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < lo || x > hi) return ARG_ERR_VALUE;
        if (o->type == ARG_T_INT) *(int *)o->dst = (int)x;
        else if (o->type == ARG_T_I64) *(int64_t *)o->dst = x;
        else if (o->type == ARG_T_U64) *(uint64_t *)o->dst = (uint64_t)x;
        else *(size_t *)o->dst = (size_t)x;
    } else {
        const double x = strtod(v, &end);
        if (errno || end == v || *end || (o->min != o->max && !(x >= o->min && x <= o->max))) return ARG_ERR_VALUE;
        if (o->type == ARG_T_FLOAT) *(float *)o->dst = (float)x;
        else *(double *)o->dst = x;
    }
    return 0;
}

enum arg_result arg_parse(const arg_opt *opts, int n_opts, unsigned cmd, int argc, char **argv,
                          const char **positional, arg_error *err) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return ARG_HELP;
        *err = (arg_error){ARG_ERR_UNKNOWN, a, NULL, NULL};
        if (a[0] != '-' && positional) {
            *positional = a;
            continue;
        }
        const arg_opt *o = opts;
        while (o < opts + n_opts && !(takes(o, cmd) && spelled(o->names, a))) o++;
        if (o == opts + n_opts) return ARG_ERROR;
        err->opt = o;
        if (o->type == ARG_T_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc) {
            err->kind = ARG_ERR_MISSING;
            return ARG_ERROR;
        }
        err->value = argv[++i];
        const int bad = store(o, err->value);
        if (bad) {
            err->kind = bad;
            return ARG_ERROR;
        }
    }
    return ARG_DONE;
}

void arg_error_text(const arg_error *e, char *buf, size_t n) {
    const arg_opt *o = e->opt;
    if (e->kind == ARG_ERR_UNKNOWN) snprintf(buf, n, "unknown option '%s'", e->arg);
    else if (e->kind == ARG_ERR_MISSING) snprintf(buf, n, "option %s needs a value", e->arg);
    else if (e->kind == ARG_ERR_NOMEM) snprintf(buf, n, "out of memory");
    else if (o->type == ARG_T_CHOICE) {
        /* "a|b|c" as "a, b or c" */
        char list[256] = "";
        const char *s;
        int len, next;
        for (int k = 0, at = 0; (s = choice_at(o->choices, k, &len)) && at < (int)sizeof list; k++) {
            const char *sep = k == 0 ? "" : choice_at(o->choices, k + 1, &next) ? ", " : " or ";
            at += snprintf(list + at, sizeof list - (size_t)at, "%s%.*s", sep, len, s);
        }
        snprintf(buf, n, "%s expects %s, got '%s'", e->arg, list, e->value);
    } else if (is_integer(o->type)) {
        if (o->lo == o->hi) snprintf(buf, n, "%s expects an integer, got '%s'", e->arg, e->value);
        else snprintf(buf, n, "%s expects an integer in [%lld, %lld], got '%s'", e->arg, o->lo, o->hi, e->value);
    } else {
        if (o->min == o->max) snprintf(buf, n, "%s expects a number, got '%s'", e->arg, e->value);
        else snprintf(buf, n, "%s expects a number in [%g, %g], got '%s'", e->arg, o->min, o->max, e->value);
    }
}

/* "(default X)" from the row's variable, or "(default: words)"; "" if none. */
static void default_text(const arg_opt *o, char *buf, size_t n) {
    buf[0] = 0;
    if (o->def) {
        if (*o->def) snprintf(buf, n, "(default: %s)", o->def);
        return;
    }
    switch (o->type) {
    case ARG_T_FLAG:
    case ARG_T_LIST: break;
    case ARG_T_STR: {
        const char *s = *(const char *const *)o->dst;
        if (s) snprintf(buf, n, "(default %s)", s);
        break;
    }
    case ARG_T_CHOICE: {
        int len;
        const char *s = choice_at(o->choices, *(const int *)o->dst, &len);
        if (s) snprintf(buf, n, "(default %.*s)", len, s);
        break;
    }
    case ARG_T_INT: snprintf(buf, n, "(default %d)", *(const int *)o->dst); break;
    case ARG_T_I64: snprintf(buf, n, "(default %lld)", (long long)*(const int64_t *)o->dst); break;
    case ARG_T_U64: snprintf(buf, n, "(default %llu)", (unsigned long long)*(const uint64_t *)o->dst); break;
    case ARG_T_SIZE: snprintf(buf, n, "(default %zu)", *(const size_t *)o->dst); break;
    case ARG_T_FLOAT:
    case ARG_T_DOUBLE: {
        const double x = o->type == ARG_T_FLOAT ? *(const float *)o->dst : *(const double *)o->dst;
        if (!isnan(x)) snprintf(buf, n, "(default %g)", x);
        break;
    }
    }
}

static int new_line(FILE *f) {
    fprintf(f, "\n%*s", HELP_COL, "");
    return HELP_COL;
}

/* Writes t from column HELP_COL (where the caller is), word-wrapped to
 * HELP_WIDTH; "\n" breaks a line. */
static void wrap(FILE *f, const char *t) {
    int col = HELP_COL; /* HELP_COL: nothing written on this line yet */
    while (*t) {
        if (*t == ' ' || *t == '\n') {
            if (*t++ == '\n') col = new_line(f);
            continue;
        }
        const int k = (int)strcspn(t, " \n");
        if (col > HELP_COL && col + 1 + k > HELP_WIDTH) col = new_line(f);
        if (col > HELP_COL) {
            fputc(' ', f);
            col++;
        }
        fwrite(t, 1, (size_t)k, f);
        col += k;
        t += k;
    }
    fputc('\n', f);
}

void arg_help(FILE *f, const arg_opt *opts, int n_opts, unsigned cmd) {
    for (const arg_opt *o = opts; o < opts + n_opts; o++) {
        if (!takes(o, cmd)) continue;
        char head[256], def[512], text[4096];
        const char *value = o->value ? o->value : o->type == ARG_T_CHOICE ? o->choices : NULL;
        snprintf(head, sizeof head, "%s%s%s", o->names, value ? " " : "", value ? value : "");
        default_text(o, def, sizeof def);
        snprintf(text, sizeof text, "%s%s%s", o->help ? o->help : "", o->help && *def ? " " : "", def);
        if (!*text) fprintf(f, "  %s\n", head);
        else {
            if ((int)strlen(head) > HELP_COL - 3) fprintf(f, "  %s\n%*s", head, HELP_COL, "");
            else fprintf(f, "  %-*s ", HELP_COL - 3, head);
            wrap(f, text);
        }
    }
}
