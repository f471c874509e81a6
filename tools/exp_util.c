/* exp_util.c - see exp_util.h. */
#include "exp_util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"

int exp_fail(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "mome: error: experiment: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return 1;
}

const char *exp_shared_dir(void) {
    const char *e = getenv("MOME_SHARED");
    return (e && *e) ? e : "../shared";
}

int exp_mkdir_p(const char *path) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return -1;
        *p = '/';
    }
    return (mkdir(buf, 0777) && errno != EEXIST) ? -1 : 0;
}

/* The first n non-blank lines of a JSON-lines file, copied as they are. */
int exp_copy_first_lines(const char *src, const char *dst, int n, int *got) {
    FILE *in = fopen(src, "rb");
    if (!in) return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", src, strerror(errno));
    FILE *out = fopen(dst, "wb");
    if (!out) {
        fclose(in);
        return exp_fail("%s: %s", dst, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    *got = 0;
    while (*got < n && (k = getline(&line, &cap, in)) > 0) {
        int blank = 1;
        for (ssize_t i = 0; i < k; i++)
            if (line[i] != ' ' && line[i] != '\t' && line[i] != '\n' && line[i] != '\r') blank = 0;
        if (blank) continue;
        fwrite(line, 1, (size_t)k, out);
        if (line[k - 1] != '\n') fputc('\n', out);
        (*got)++;
    }
    free(line);
    fclose(in);
    return fclose(out) ? exp_fail("%s: write error", dst) : 0;
}

int exp_parse_list(const char *s, double *out, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        const double v = strtod(s, &end);
        if (end == s || n == cap) return -1;
        out[n++] = v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

uint64_t exp_rand(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Levenshtein distance in bytes (answers are short). */
int exp_edit_distance(const char *a, const char *b) {
    const size_t na = strlen(a), nb = strlen(b);
    int *row = malloc((nb + 1) * sizeof *row);
    if (!row) return 1 << 20;
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            const int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    const int d = row[nb];
    free(row);
    return d;
}

void exp_csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s == '\n' ? ' ' : *s, f);
    }
    fputc('"', f);
}

void exp_machine_line(char *buf, size_t n) {
    struct utsname u;
    char cpu[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                const char *c = strchr(line, ':');
                if (c) snprintf(cpu, sizeof cpu, "%s", c + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    double load = -1;
    f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) load = -1;
        fclose(f);
    }
    if (uname(&u)) snprintf(u.sysname, sizeof u.sysname, "?");
    snprintf(buf, n, "%s, %ld cores online, %s %s %s, load average %.2f at the start", cpu,
             sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine, load);
}

void exp_utc_now(char *buf, size_t n) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%d %H:%M UTC", &tm);
}

/* DIR/NAME opened for writing; NULL after a message. */
static FILE *open_in(const char *dir, const char *name) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) exp_fail("%s: %s", path, strerror(errno));
    return f;
}

FILE *exp_open_plot(const char *dir, const char *experiment, const char *svg, int width, int height) {
    FILE *f = open_in(dir, "plot.gp");
    if (!f) return NULL;
    fprintf(f,
            "# written by `mome experiment %s`; run in this folder: gnuplot plot.gp\n"
            "set terminal svg size %d,%d font 'sans,12' background rgb 'white'\n"
            "set output '%s'\n"
            "set datafile separator ','\n",
            experiment, width, height, svg);
    return f;
}

int exp_run_gnuplot(const char *dir) {
    if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf(stderr, "experiment: gnuplot is not installed (tools/setup.sh deps installs it); "
                        "the CSVs and %s/plot.gp are written, the plots are not\n", dir);
        return 0;
    }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot plot.gp", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "experiment: gnuplot failed on %s/plot.gp\n", dir);
        return 0;
    }
    return 1;
}

void exp_run_start(exp_run *r) {
    exp_utc_now(r->start, sizeof r->start);
    exp_machine_line(r->machine, sizeof r->machine);
    r->t0 = mome_time_s();
    r->cpu0 = exp_cpu_s();
}

double exp_cpu_s(void) {
    struct rusage u;
    if (getrusage(RUSAGE_SELF, &u)) return 0;
    return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec * 1e-6 + (double)u.ru_stime.tv_sec + u.ru_stime.tv_usec * 1e-6;
}

void exp_summary_plot(FILE *f, int drew, const char *alt, const char *svg) {
    if (drew) fprintf(f, "![%s](%s)\n\n", alt, svg);
    else fprintf(f, "(no plot: gnuplot was not available; `gnuplot plot.gp` draws it)\n\n");
}

int exp_base_perplexity(const exp_common *c, mome_model *m, double *ppl) {
    mome_eval_params ep = mome_eval_default_params();
    ep.text_path = c->text;
    ep.text_max_bytes = c->text_bytes;
    ep.n_threads = c->threads;
    mome_eval_result er;
    fprintf(stderr, "experiment: %s: held-out perplexity without a memory\n", c->name);
    if (mome_eval(m, NULL, &ep, &er)) return exp_fail("eval: %s", mome_errmsg());
    *ppl = er.perplexity;
    return 0;
}

FILE *exp_open_summary(const char *dir, const char *title, int argc, char **argv, const exp_run *r) {
    FILE *f = open_in(dir, "summary.md");
    if (!f) return NULL;
    fprintf(f, "# Experiment: %s\n\n- command: `mome experiment", title);
    for (int i = 0; i < argc; i++) fprintf(f, " %s", argv[i]);
    fprintf(f, "`\n- started: %s; wall time %.1f s, CPU time %.1f s (user + system, all threads)\n- machine: %s\n",
            r->start, mome_time_s() - r->t0, exp_cpu_s() - r->cpu0, r->machine);
    return f;
}

void exp_common_init(exp_common *c, const char *name, unsigned takes) {
    memset(c, 0, sizeof *c);
    c->takes = takes;
    c->name = name;
    snprintf(c->def_dir, sizeof c->def_dir, "build/experiments/%s", name);
    snprintf(c->def_text, sizeof c->def_text, "%s/data/text/tinystories_val_head.txt", exp_shared_dir());
    c->model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    c->dir = c->def_dir;
    c->text = c->def_text;
    c->threads = 1;
    c->seed = 1234;
    c->text_bytes = 16384;
}

int exp_common_check(const exp_common *c) {
    if (c->threads < 1 || c->seed < 0 || c->text_bytes < 1) {
        exp_fail("%s: --threads and --text-bytes must be positive, --seed non-negative", c->name);
        return 2;
    }
    if (strchr(c->dir, '\'') || strchr(c->dir, '"') || strlen(c->dir) > 3000) {
        exp_fail("%s: unusable output folder '%s'", c->name, c->dir);
        return 2;
    }
    if ((c->takes & EXP_OPT_TEXT) && access(c->text, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", c->text, strerror(errno));
    return 0;
}

mome_tune_params exp_tune_params(void) {
    mome_tune_params tp = mome_tune_default_params();
    tp.infer_subjects = 0;
    tp.verify_key = MOME_VERIFY_NONE;
    return tp;
}

int exp_load_model(const exp_common *c, mome_model **m) {
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = c->threads;
    if (mome_model_load(c->model, &mp, m)) return exp_fail("%s (`make model` fetches the default model)", mome_errmsg());
    return 0;
}

int exp_bad_option(const exp_common *c, const char *arg) {
    exp_fail("%s: unknown option or missing value '%s' (see mome experiment %s --help)", c->name, arg, c->name);
    return 2;
}

int exp_parse_args(exp_common *c, const char *about, const arg_opt *opts, int n_opts, int argc, char **argv) {
    /* the experiment's rows, then the common ones (those c takes: cmds & c->takes) */
    const arg_opt common[] = {
        {EXP_OPT_MODEL, "-m, --model", "PATH", ARG_STR(&c->model), .help = "base model"},
        {EXP_OPT_OUT, "-o, --out", "DIR", ARG_STR(&c->dir), .help = "output folder"},
        {EXP_OPT_TEXT, "--text", "FILE", ARG_STR(&c->text),
         .help = "held-out text; the shared data folder is $MOME_SHARED/data, ../shared/data unless set"},
        {EXP_OPT_TEXT, "--text-bytes", "N", ARG_I64(&c->text_bytes, 0, 0), .help = "its first N bytes"},
        {EXP_OPT_THREADS, "-t, --threads", "N", ARG_INT(&c->threads, 0, 0), .help = "threads"},
        {EXP_OPT_SEED, "-s, --seed", "S", ARG_I64(&c->seed, 0, 0), .help = "seed"},
    };
    const int n_all = n_opts + EXP_COUNT(common);
    arg_opt *all = malloc((size_t)n_all * sizeof *all);
    if (!all) return exp_fail("out of memory");
    memcpy(all, opts, (size_t)n_opts * sizeof *all);
    memcpy(all + n_opts, common, sizeof common);
    arg_error e;
    const enum arg_result r = arg_parse(all, n_all, c->takes, argc, argv, NULL, &e);
    int rc = -1;
    if (r == ARG_HELP) {
        printf("usage: mome experiment %s [options]\n\n%s\n", c->name, about);
        arg_help(stdout, all, n_all, c->takes);
        rc = 0;
    } else if (r == ARG_ERROR) {
        if (e.kind == ARG_ERR_VALUE) exp_fail("%s: %s expects a number, got '%s'", c->name, e.arg, e.value);
        else if (e.kind == ARG_ERR_NOMEM) exp_fail("out of memory");
        else exp_bad_option(c, e.arg);
        rc = 2;
    }
    free(all);
    return rc;
}

int exp_write_json_range(const struct cJSON *arr, int i0, int i1, const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return exp_fail("%s: %s", path, strerror(errno));
    for (int i = i0; i < i1; i++) {
        char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(arr, i));
        if (!s) {
            fclose(f);
            return exp_fail("%s: out of memory", path);
        }
        fprintf(f, "%s\n", s);
        cJSON_free(s);
    }
    return fclose(f) ? exp_fail("%s: write error", path) : 0;
}

int exp_decode_tps(mome_model *m, mome_memory *mem, const char *question, int threads, int n_gen, int reps,
                   double *tps_mem, double *tps_base) {
    mome_chat_msg msg = {"user", question};
    char *text = mome_chat_format(m, &msg, 1, 1);
    if (!text) return exp_fail("chat template: %s", mome_errmsg());
    int32_t *toks = NULL;
    const int P = mome_tokenize_alloc(m, text, 1, 1, &toks);
    free(text);
    if (P < 1) return exp_fail("tokenize: %s", mome_errmsg());
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = P + n_gen + 8;
    cp.n_batch = 16;
    cp.n_threads = threads;
    mome_ctx *c[2] = {NULL, NULL};
    int rc = mome_ctx_init(m, &cp, &c[0]);
    if (!rc) rc = mome_ctx_init(m, &cp, &c[1]);
    if (!rc) rc = mome_ctx_set_memory(c[0], mem);
    double t[2][32];
    const int V = mome_model_n_vocab(m);
    if (reps > 31) reps = 31;
    if (reps < 1) reps = 1;
    for (int r = -1; r < reps && !rc; r++)
        for (int k = 0; k < 2 && !rc; k++) {
            const double t0 = mome_time_s();
            for (int i = 0; i < P && !rc; i++) rc = mome_decode(c[k], &toks[i], 1, i, 0);
            for (int g = 0; g < n_gen && !rc; g++) {
                const int32_t tok = ans_argmax(mome_get_logits(c[k], -1), V);
                rc = mome_decode(c[k], &tok, 1, P + g, 0);
            }
            if (r >= 0) t[k][r] = (P + n_gen) / (mome_time_s() - t0);
        }
    mome_ctx_free(c[0]);
    mome_ctx_free(c[1]);
    free(toks);
    if (rc) return exp_fail("decode: %s", mome_errmsg());
    for (int k = 0; k < 2; k++)
        for (int i = 1; i < reps; i++) /* insertion sort: a handful of values */
            for (int j = i; j > 0 && t[k][j] < t[k][j - 1]; j--) {
                const double x = t[k][j];
                t[k][j] = t[k][j - 1];
                t[k][j - 1] = x;
            }
    *tps_mem = t[0][reps / 2];
    *tps_base = t[1][reps / 2];
    return 0;
}
