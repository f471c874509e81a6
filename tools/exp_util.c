/* exp_util.c - see exp_util.h. */
#include "exp_util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

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

/* Runs gnuplot on DIR/plot.gp; 1 if it drew. */
FILE *exp_open_plot(const char *dir, const char *experiment, const char *svg, int width, int height) {
    char path[4200];
    snprintf(path, sizeof path, "%s/plot.gp", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        exp_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
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


void exp_common_init(exp_common *c, const char *name) {
    memset(c, 0, sizeof *c);
    snprintf(c->def_dir, sizeof c->def_dir, "build/experiments/%s", name);
    snprintf(c->def_text, sizeof c->def_text, "%s/data/text/tinystories_val_head.txt", exp_shared_dir());
    c->model = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    c->dir = c->def_dir;
    c->text = c->def_text;
    c->threads = 1;
    c->seed = 1234;
    c->text_bytes = 16384;
}

int exp_common_opt(exp_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (*i + 1 >= argc) return 0;
    const char *v = argv[*i + 1];
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) c->model = v;
    else if (!strcmp(a, "-o") || !strcmp(a, "--out")) c->dir = v;
    else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) c->threads = atoi(v);
    else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) c->seed = atoll(v);
    else if (!strcmp(a, "--text")) c->text = v;
    else if (!strcmp(a, "--text-bytes")) c->text_bytes = atoll(v);
    else return 0;
    (*i)++;
    return 1;
}

void exp_common_help(const exp_common *c) {
    printf("  -m, --model PATH   base model (default models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
           "  -o, --out DIR      output folder (default %s)\n"
           "  --text FILE        held-out text (default $MOME_SHARED/data/text/tinystories_val_head.txt;\n"
           "                     MOME_SHARED defaults to ../shared)\n"
           "  --text-bytes N     its first N bytes (default 16384)\n"
           "  -t, --threads N    threads (default 1)\n"
           "  -s, --seed S       seed (default 1234)\n",
           c->def_dir);
}

int exp_common_check(const exp_common *c, const char *name) {
    if (c->threads < 1 || c->seed < 0 || c->text_bytes < 1) {
        exp_fail("%s: --threads and --text-bytes must be positive, --seed non-negative", name);
        return 2;
    }
    if (strchr(c->dir, '\'') || strchr(c->dir, '"') || strlen(c->dir) > 3000) {
        exp_fail("%s: unusable output folder '%s'", name, c->dir);
        return 2;
    }
    if (access(c->text, R_OK))
        return exp_fail("%s: %s (the experiments read ../shared/data or $MOME_SHARED/data)", c->text, strerror(errno));
    return 0;
}
