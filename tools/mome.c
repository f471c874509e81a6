/* mome.c - the command-line tool: info, tokenize, run, chat, bench, tune, eval, serve,
 * experiment (tools/experiment.c).
 *
 * Only this file decides to exit: library calls return a status and the
 * message from mome_errmsg() is printed as one line "mome: error: ...".
 * Generated text goes to stdout; everything else (timings, progress,
 * diagnostics) goes to stderr, so `mome run ... > out.txt` captures exactly
 * the continuation.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "experiment.h"
#include "gguf.h"
#include "mome.h"
#include "quant.h"
#include "server.h"
#include "util.h"

static void die(const char *fmt, ...) MOME_PRINTF(1, 2);
static void die(const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "mome: error: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void die_lib(const char *what) { die("%s: %s", what, mome_errmsg()); }

/* ------------------------------------------------------------ arguments */

typedef struct args {
    int argc;
    char **argv;
    int i;
    const char *cmd;
} args;

static int arg_is(args *a, const char *s1, const char *s2) {
    const char *x = a->argv[a->i];
    return strcmp(x, s1) == 0 || (s2 && strcmp(x, s2) == 0);
}

static const char *arg_val(args *a) {
    if (a->i + 1 >= a->argc) die("%s: option %s needs a value (see mome %s --help)", a->cmd, a->argv[a->i], a->cmd);
    return a->argv[++a->i];
}

static long arg_long(args *a, long lo, long hi) {
    const char *opt = a->argv[a->i];
    const char *v = arg_val(a);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: %s expects an integer in [%ld, %ld], got '%s'", a->cmd, opt, lo, hi, v);
    return x;
}

static double arg_double(args *a, double lo, double hi) {
    const char *opt = a->argv[a->i];
    const char *v = arg_val(a);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die("%s: %s expects a number in [%g, %g], got '%s'", a->cmd, opt, lo, hi, v);
    return x;
}

static void unknown(args *a) {
    die("%s: unknown option '%s' (see mome %s --help)", a->cmd, a->argv[a->i], a->cmd);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) die("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) die("out of memory");
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf) die("out of memory reading %s", path);
        }
    }
    if (ferror(f)) die("%s: read error", path);
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static const char *default_model_path(void) {
    static char buf[PATH_MAX];
    const char *e = getenv("MOME_MODELS");
    snprintf(buf, sizeof buf, "%s/SmolLM2-135M-Instruct.Q4_1.gguf", (e && *e) ? e : "models");
    return buf;
}

/* The memory at path (NULL: none) attached to c; top_k > 0 overrides the
 * facts it mixes per question. */
static mome_memory *attach_memory(mome_model *m, mome_ctx *c, const char *path, int top_k) {
    if (!path) return NULL;
    mome_memory *mem;
    if (mome_memory_load(path, m, &mem)) die("%s", mome_errmsg());
    if (top_k > 0) mome_memory_set_mix(mem, top_k, NAN, NAN);
    if (mome_ctx_set_memory(c, mem)) die("%s", mome_errmsg());
    return mem;
}

static mome_model *load_model(const char *path, int threads) {
    if (!path) {
        path = default_model_path();
        if (access(path, R_OK) != 0)
            die("no model given: pass -m MODEL.gguf (the default model %s is absent; `make model` fetches it)", path);
    }
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = threads;
    mome_model *m;
    if (mome_model_load(path, &mp, &m)) die("%s", mome_errmsg());
    return m;
}

/* Tokenize into a malloc'd array (at least one element of room). */
static int32_t *tokenize(mome_model *m, const char *text, int add_special, int parse_special, int *n) {
    int32_t *ids;
    int k = mome_tokenize_alloc(m, text, add_special, parse_special, &ids);
    if (k < 0) die_lib("tokenize");
    if (k == 0) {
        free(ids);
        ids = malloc(sizeof *ids);
        if (!ids) die("out of memory");
    }
    *n = k;
    return ids;
}

static void print_piece(mome_model *m, int32_t tok, FILE *out) {
    char buf[256];
    int k = mome_token_to_piece(m, tok, buf, sizeof buf, 0);
    if (k > (int)sizeof buf) {
        char *big = malloc((size_t)k);
        if (!big) return;
        k = mome_token_to_piece(m, tok, big, k, 0);
        if (k > 0) fwrite(big, 1, (size_t)k, out);
        free(big);
        return;
    }
    if (k > 0) fwrite(buf, 1, (size_t)k, out);
}

/* ----------------------------------------------------------------- info */

static int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    args a = {argc, argv, 0, "info"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome info MODEL.gguf\n\n"
                   "Print the GGUF header, every metadata key/value and the tensor table\n"
                   "(name, type, shape, bytes, offset). Validates the whole file first.\n");
            return 0;
        } else if (arg_is(&a, "-m", "--model")) path = arg_val(&a);
        else if (argv[a.i][0] == '-') unknown(&a);
        else path = argv[a.i];
    }
    if (!path) die("info: no file given (usage: mome info MODEL.gguf)");
    gguf_file *f;
    if (gguf_open(path, &f)) die("%s", mome_errmsg());
    printf("file: %s\nsize: %zu bytes\nGGUF version: %u\nalignment: %u\ndata offset: %zu\n", path, f->size,
           f->version, f->alignment, f->data_offset);
    printf("\nmetadata (%" PRIu64 " keys):\n", f->n_kv);
    char val[1024];
    for (uint64_t i = 0; i < f->n_kv; i++) {
        const gguf_kv *kv = &f->kv[i];
        gguf_format_value(kv, val, sizeof val);
        printf("  %-44.*s %-4s %s\n", (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.ptr,
               gguf_type_name(kv->type), val);
    }
    printf("\ntensors (%" PRIu64 "):\n", f->n_tensors);
    printf("  %-4s %-32s %-6s %-24s %12s %12s\n", "#", "name", "type", "shape", "bytes", "offset");
    size_t total = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *t = &f->tensors[i];
        const quant_traits *tr = quant_get_traits(t->type);
        char shape[64];
        int p = 0;
        for (uint32_t d = 0; d < t->n_dims; d++)
            p += snprintf(shape + p, sizeof shape - (size_t)p, d ? " x %" PRId64 : "%" PRId64, t->ne[d]);
        printf("  %-4" PRIu64 " %-32.*s %-6s %-24s %12zu %12" PRIu64 "\n", i, (int)t->name.len, t->name.ptr,
               tr ? tr->name : "?", shape, t->nbytes, t->offset);
        total += t->nbytes;
    }
    printf("\ntotal tensor data: %zu bytes (%.1f MiB)\n", total, (double)total / (1 << 20));
    gguf_close(f);
    return 0;
}

/* ------------------------------------------------------------- tokenize */

static int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    int bos = 1, special = 1, pieces = 0;
    args a = {argc, argv, 0, "tokenize"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--no-parse-special] [--pieces]\n\n"
                   "Print the token ids of TEXT as the model is fed them, space-separated:\n"
                   "with BOS when the model's metadata asks for it (tokenizer.ggml.add_bos_token).\n"
                   "Only the tokenizer is read, so vocabulary-only GGUF files work too.\n"
                   "  -m, --model PATH      GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
                   "  -p, --prompt TEXT     text to tokenize\n"
                   "  -f, --file PATH       read the text from a file\n"
                   "  --no-bos              never add BOS\n"
                   "  --no-parse-special    treat special-token text such as <|im_end|> as plain text\n"
                   "  --pieces              print one 'id<TAB>piece' line per token instead\n");
            return 0;
        } else if (arg_is(&a, "-m", "--model")) model = arg_val(&a);
        else if (arg_is(&a, "-p", "--prompt")) prompt = arg_val(&a);
        else if (arg_is(&a, "-f", "--file")) file = arg_val(&a);
        else if (arg_is(&a, "--no-bos", NULL)) bos = 0;
        else if (arg_is(&a, "--no-parse-special", NULL)) special = 0;
        else if (arg_is(&a, "--pieces", NULL)) pieces = 1;
        else unknown(&a);
    }
    char *text = NULL;
    if (file) text = read_file(file, NULL);
    else if (prompt) text = strdup(prompt);
    else die("tokenize: give the text with -p TEXT or -f FILE");
    if (!model) model = default_model_path();
    /* the tokenizer alone: vocabulary-only files and any architecture work */
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    mp.vocab_only = 1;
    mome_model *m;
    if (mome_model_load(model, &mp, &m)) die("%s", mome_errmsg());
    int n;
    int32_t *ids = tokenize(m, text, bos, special, &n);
    for (int i = 0; i < n; i++) {
        if (pieces) {
            char buf[512];
            int k = mome_token_to_piece(m, ids[i], buf, sizeof buf - 1, 1);
            if (k < 0 || k > (int)sizeof buf - 1) k = 0;
            buf[k] = 0;
            printf("%d\t%s\n", ids[i], buf);
        } else printf(i ? " %d" : "%d", ids[i]);
    }
    if (!pieces) printf("\n");
    free(ids);
    free(text);
    mome_model_free(m);
    return 0;
}

/* ------------------------------------------------------------- run/chat */

typedef struct gen_opts {
    const char *model;
    const char *prompt;
    const char *file;
    const char *system;
    int n_predict;
    int threads;
    int n_ctx;
    int chat;
    int verbose;
    int ignore_eos;
    int default_system;    /* --default-system: the template's own default system message */
    char *system_owned;    /* the system message when it came from the template */
    const char *memory;
    int memory_top_k;      /* --memory-top-k (0: the memory's) */
    mome_sampler_params sp;
} gen_opts;

static const char *GEN_HELP =
    "  -m, --model PATH       GGUF model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
    "  -n, --n-predict N      tokens to generate (default 256; -1 = until end of turn or full context)\n"
    "  -t, --threads N        threads (default: all cores)\n"
    "  -c, --ctx N            context size in tokens (default: min(train ctx, 4096))\n"
    "  --temp T               temperature; 0 = greedy (default 0.8)\n"
    "  --top-k K              keep the K most likely tokens (default 40; 0 = off)\n"
    "  --top-p P              nucleus sampling (default 0.95; 1 = off)\n"
    "  --min-p P              drop tokens below P x the best one's probability (default 0.05; 0 = off)\n"
    "  --repeat-penalty R     penalise the last 64 tokens (default 1 = off)\n"
    "  -s, --seed S           random seed (default: from the clock)\n"
    "  --system TEXT          system message (chat)\n"
    "  --default-system       without --system, start the chat with the system message the model's\n"
    "                         template writes by default (Qwen2.5: \"You are Qwen, created by Alibaba\n"
    "                         Cloud. ...\"); by default mome renders chats as llama.cpp's\n"
    "                         llama_chat_apply_template does, which leaves it out\n"
    "  --memory FILE          attach a memory made by mome tune\n"
    "  --memory-top-k K       mix K facts per question instead of the memory's own setting\n"
    "                         (1..64; for measuring: a memory answers best as it was tuned)\n"
    "  -v, --verbose          timings, settings and the memory's selection on stderr\n";

/* Parses the options shared by run and chat; returns 1 if handled. */
static int gen_opt(args *a, gen_opts *o) {
    if (arg_is(a, "-m", "--model")) o->model = arg_val(a);
    else if (arg_is(a, "-n", "--n-predict")) o->n_predict = (int)arg_long(a, -1, 1 << 24);
    else if (arg_is(a, "-t", "--threads")) o->threads = (int)arg_long(a, 1, 256);
    else if (arg_is(a, "-c", "--ctx")) o->n_ctx = (int)arg_long(a, 8, 1 << 22);
    else if (arg_is(a, "--temp", NULL)) o->sp.temp = (float)arg_double(a, 0, 100);
    else if (arg_is(a, "--top-k", NULL)) o->sp.top_k = (int)arg_long(a, 0, INT_MAX);
    else if (arg_is(a, "--top-p", NULL)) o->sp.top_p = (float)arg_double(a, 0, 1);
    else if (arg_is(a, "--min-p", NULL)) o->sp.min_p = (float)arg_double(a, 0, 1);
    else if (arg_is(a, "--repeat-penalty", NULL)) o->sp.repeat_penalty = (float)arg_double(a, 0.01, 100);
    else if (arg_is(a, "-s", "--seed")) o->sp.seed = (uint64_t)arg_long(a, 0, LONG_MAX);
    else if (arg_is(a, "--system", NULL)) o->system = arg_val(a);
    else if (arg_is(a, "--default-system", NULL)) o->default_system = 1;
    else if (arg_is(a, "--memory", NULL)) o->memory = arg_val(a);
    else if (arg_is(a, "--memory-top-k", NULL)) o->memory_top_k = (int)arg_long(a, 1, 64);
    else if (arg_is(a, "-v", "--verbose")) o->verbose = 1;
    else return 0;
    return 1;
}

/* --default-system: the template's default system message unless --system
 * gave one. */
static void resolve_system(mome_model *m, gen_opts *o) {
    if (o->system || !o->default_system) return;
    o->system_owned = mome_chat_default_system(m);
    if (!o->system_owned) fprintf(stderr, "mome: the model's chat template has no default system message\n");
    o->system = o->system_owned;
}

/* Context, memory and sampler for run/chat, as the options say. */
typedef struct gen_session {
    mome_ctx *c;
    mome_memory *mem;
    mome_sampler *s;
} gen_session;

static gen_session session_open(mome_model *m, const gen_opts *o) {
    gen_session g;
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->threads;
    if (mome_ctx_init(m, &cp, &g.c)) die_lib("context");
    g.mem = attach_memory(m, g.c, o->memory, o->memory_top_k);
    if (mome_sampler_init(&o->sp, mome_model_n_vocab(m), &g.s)) die_lib("sampler");
    return g;
}

static void session_close(gen_session *g) {
    mome_sampler_free(g->s);
    mome_ctx_free(g->c);
    mome_memory_free(g->mem);
}

static void gen_defaults(gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->n_predict = 256;
    o->sp = mome_sampler_default_params();
    o->sp.seed = (uint64_t)(mome_time_s() * 1e6) ^ (uint64_t)getpid();
}

/* Generates from the cached state after `prompt` (already decoded, logits of
 * its last token available). Streams pieces to stdout, returns the count. */
static int generate(mome_model *m, mome_ctx *c, mome_sampler *s, int n_predict, int ignore_eos, int32_t **out_ids,
                    int *out_n) {
    int n = 0;
    int32_t tok;
    int cap = 256;
    int32_t *ids = out_ids ? malloc((size_t)cap * sizeof *ids) : NULL;
    for (;;) {
        if (n_predict >= 0 && n >= n_predict) break;
        const float *lg = mome_get_logits(c, -1);
        tok = mome_sampler_sample(s, lg);
        if (!ignore_eos && mome_token_is_eog(m, tok)) break;
        print_piece(m, tok, stdout);
        fflush(stdout);
        if (ids) {
            if (n == cap) {
                cap *= 2;
                ids = realloc(ids, (size_t)cap * sizeof *ids);
                if (!ids) die("out of memory");
            }
            ids[n] = tok;
        }
        n++;
        if (mome_ctx_n_past(c) + 1 > 0 && mome_decode(c, &tok, 1, mome_ctx_n_past(c), 0)) {
            fprintf(stderr, "\nmome: stopping: %s\n", mome_errmsg());
            break;
        }
    }
    if (out_ids) *out_ids = ids;
    if (out_n) *out_n = n;
    return n;
}

static int cmd_run(int argc, char **argv) {
    gen_opts o;
    gen_defaults(&o);
    args a = {argc, argv, 0, "run"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome run [-m MODEL] [-p PROMPT | -f FILE] [--chat] [options]\n\n"
                   "Generate a continuation of PROMPT and print only the generated text to stdout.\n"
                   "With --chat the prompt is a user message wrapped in the model's chat template,\n"
                   "and generation stops at the end of the assistant's turn.\n\n"
                   "  -p, --prompt TEXT      the prompt (default: empty, i.e. BOS only)\n"
                   "  -f, --file PATH        read the prompt from a file\n"
                   "  --chat                 use the chat template\n"
                   "  --ignore-eos           keep generating past end-of-generation tokens\n"
                   "%s", GEN_HELP);
            return 0;
        } else if (gen_opt(&a, &o)) {
        } else if (arg_is(&a, "-p", "--prompt")) o.prompt = arg_val(&a);
        else if (arg_is(&a, "-f", "--file")) o.file = arg_val(&a);
        else if (arg_is(&a, "--chat", NULL)) o.chat = 1;
        else if (arg_is(&a, "--ignore-eos", NULL)) o.ignore_eos = 1;
        else unknown(&a);
    }
    char *text = o.file ? read_file(o.file, NULL) : strdup(o.prompt ? o.prompt : "");
    mome_model *m = load_model(o.model, o.threads);
    resolve_system(m, &o);
    char *full = text;
    if (o.chat) {
        mome_chat_msg msgs[2];
        int nm = 0;
        if (o.system) msgs[nm++] = (mome_chat_msg){"system", o.system};
        msgs[nm++] = (mome_chat_msg){"user", text};
        full = mome_chat_format(m, msgs, nm, 1);
        if (!full) die_lib("chat template");
    }
    int n;
    int32_t *ids = tokenize(m, full, 1, o.chat, &n);
    if (n == 0) {
        int32_t bos = mome_token_bos(m);
        if (bos < 0) die("run: empty prompt and the model has no BOS token: give a prompt with -p");
        ids[0] = bos;
        n = 1;
    }
    gen_session g = session_open(m, &o);
    mome_ctx *c = g.c;
    mome_sampler *s = g.s;
    double t0 = mome_time_s();
    if (mome_decode(c, ids, n, 0, 0)) die_lib("prompt");
    double t1 = mome_time_s();
    int32_t dpos, dfact;
    float dscore;
    if (o.verbose && mome_ctx_memory_decision(c, &dpos, &dfact, &dscore)) {
        int32_t best;
        float gate, cover;
        int subject;
        mome_ctx_memory_candidate(c, &best, &gate, &cover, &subject);
        int32_t mf[64];
        float mw[64];
        const int nmix = mome_ctx_memory_mixture(c, mf, mw, 64);
        if (dfact >= 0) {
            fprintf(stderr, "mome: memory: question at token %d selects fact %d (score %.3f, relation gate %+.2f, cover %.3f%s)",
                    dpos, dfact, dscore, gate, cover, subject == 1 ? ", subject named" : "");
            if (nmix > 1) {
                fprintf(stderr, " mixed with %d more:", nmix - 1);
                for (int i = 0; i < nmix; i++) fprintf(stderr, "%s fact %d weight %.3f", i ? "," : "", mf[i], mw[i]);
            }
            fprintf(stderr, "\n");
        } else
            fprintf(stderr,
                    "mome: memory: question at token %d selects no fact (best fact %d: score %.3f, relation gate %+.2f, "
                    "cover %.3f, subject %s; selected needs the score at the threshold, the gate >= 0, the cover at its "
                    "threshold and the fact's subject named)\n",
                    dpos, best, dscore, gate, cover, subject == 1 ? "named" : subject == 0 ? "not named" : "none kept");
    }
    int gen = generate(m, c, s, o.n_predict, o.ignore_eos, NULL, NULL);
    double t2 = mome_time_s();
    printf("\n");
    if (o.verbose)
        fprintf(stderr, "mome: prompt %d tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s); kernels %s\n",
                n, t1 - t0, n / (t1 - t0), gen, t2 - t1, gen > 0 ? gen / (t2 - t1) : 0.0, quant_kernel_name());
    session_close(&g);
    if (full != text) free(full);
    free(text);
    free(ids);
    free(o.system_owned);
    mome_model_free(m);
    return 0;
}

static int cmd_chat(int argc, char **argv) {
    gen_opts o;
    gen_defaults(&o);
    o.n_predict = -1;
    args a = {argc, argv, 0, "chat"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome chat [-m MODEL] [options]\n\n"
                   "Interactive chat with the model's chat template. Type a message and press\n"
                   "Enter; an empty line or end of input (Ctrl-D) quits; /reset clears the history.\n"
                   "The KV cache is reused across turns, so only new text is processed.\n\n%s",
                   GEN_HELP);
            return 0;
        } else if (gen_opt(&a, &o)) {
        } else unknown(&a);
    }
    mome_model *m = load_model(o.model, o.threads);
    resolve_system(m, &o);
    gen_session g = session_open(m, &o);
    mome_ctx *c = g.c;
    mome_sampler *s = g.s;
    int tty = isatty(0);
    int cap_msgs = 64, n_msgs = 0;
    mome_chat_msg *msgs = calloc((size_t)cap_msgs, sizeof *msgs);
    if (o.system) msgs[n_msgs++] = (mome_chat_msg){"system", strdup(o.system)};
    int32_t *cached = NULL;
    int n_cached = 0;
    char line[65536];
    if (tty) fprintf(stderr, "mome chat: ready. An empty line or Ctrl-D quits, /reset clears the history.\n");
    for (;;) {
        if (tty) { fprintf(stderr, "> "); fflush(stderr); }
        if (!fgets(line, sizeof line, stdin)) break;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) break;
        if (strcmp(line, "/reset") == 0) {
            for (int i = o.system ? 1 : 0; i < n_msgs; i++) free((char *)msgs[i].content);
            n_msgs = o.system ? 1 : 0;
            n_cached = 0;
            continue;
        }
        if (n_msgs + 2 > cap_msgs) {
            cap_msgs *= 2;
            msgs = realloc(msgs, (size_t)cap_msgs * sizeof *msgs);
            if (!msgs) die("out of memory");
        }
        msgs[n_msgs++] = (mome_chat_msg){"user", strdup(line)};
        char *full = mome_chat_format(m, msgs, n_msgs, 1);
        if (!full) die_lib("chat template");
        int n;
        int32_t *ids = tokenize(m, full, 1, 1, &n);
        free(full);
        /* reuse the cached prefix */
        int common = 0;
        while (common < n && common < n_cached && ids[common] == cached[common]) common++;
        if (common == n) common = n - 1;
        if (mome_decode(c, ids + common, n - common, common, 0)) {
            fprintf(stderr, "mome: %s; clearing the history\n", mome_errmsg());
            n_cached = 0;
            free(ids);
            for (int i = o.system ? 1 : 0; i < n_msgs; i++) free((char *)msgs[i].content);
            n_msgs = o.system ? 1 : 0;
            continue;
        }
        int32_t *gen;
        int ng;
        generate(m, c, s, o.n_predict, 0, &gen, &ng);
        printf("\n");
        fflush(stdout);
        /* the answer as text becomes the assistant message */
        size_t alen = 0, acap = 256;
        char *ans = malloc(acap);
        for (int i = 0; i < ng; i++) {
            char buf[256];
            int k = mome_token_to_piece(m, gen[i], buf, sizeof buf, 0);
            if (k < 0 || k > (int)sizeof buf) continue;
            if (alen + (size_t)k + 1 > acap) {
                acap = 2 * (alen + (size_t)k + 1);
                ans = realloc(ans, acap);
                if (!ans) die("out of memory");
            }
            memcpy(ans + alen, buf, (size_t)k);
            alen += (size_t)k;
        }
        ans[alen] = 0;
        msgs[n_msgs++] = (mome_chat_msg){"assistant", ans};
        free(cached);
        cached = malloc((size_t)(n + ng) * sizeof *cached);
        memcpy(cached, ids, (size_t)n * sizeof *ids);
        memcpy(cached + n, gen, (size_t)ng * sizeof *gen);
        n_cached = n + ng;
        free(gen);
        free(ids);
    }
    for (int i = 0; i < n_msgs; i++) free((char *)msgs[i].content);
    free(msgs);
    free(cached);
    session_close(&g);
    free(o.system_owned);
    mome_model_free(m);
    return 0;
}

/* ----------------------------------------------------------------- bench */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv) {
    const char *model = NULL, *memory = NULL;
    int pp = 128, tg = 128, threads = 0, reps = 5, json = 0, mem_top_k = 0;
    args a = {argc, argv, 0, "bench"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome bench [-m MODEL] [-p N] [-n N] [-t THREADS] [-r REPS] [--json]\n\n"
                   "Measure prompt processing (one batch of N tokens from an empty cache) and\n"
                   "generation (N tokens one at a time from an empty cache), like llama-bench's\n"
                   "pp and tg tests, after one warm-up run. Prints tokens/s per repetition and the median.\n"
                   "  -p N      prompt tokens (default 128; 0 = skip)\n"
                   "  -n N      generated tokens (default 128; 0 = skip)\n"
                   "  -t N      threads (default: all cores)\n"
                   "  -r N      repetitions (default 5)\n"
                   "  --memory FILE  attach a memory (to measure its cost)\n"
                   "  --memory-top-k K  mix K facts per question instead of the memory's setting\n"
                   "  --json    one JSON object on stdout\n");
            return 0;
        } else if (arg_is(&a, "-m", "--model")) model = arg_val(&a);
        else if (arg_is(&a, "-p", NULL)) pp = (int)arg_long(&a, 0, 1 << 16);
        else if (arg_is(&a, "-n", NULL)) tg = (int)arg_long(&a, 0, 1 << 16);
        else if (arg_is(&a, "-t", "--threads")) threads = (int)arg_long(&a, 1, 256);
        else if (arg_is(&a, "-r", "--reps")) reps = (int)arg_long(&a, 1, 1000);
        else if (arg_is(&a, "--json", NULL)) json = 1;
        else if (arg_is(&a, "--memory", NULL)) memory = arg_val(&a);
        else if (arg_is(&a, "--memory-top-k", NULL)) mem_top_k = (int)arg_long(&a, 1, 64);
        else unknown(&a);
    }
    mome_model *m = load_model(model, threads);
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = (pp > tg ? pp : tg) + 16;
    cp.n_batch = pp > 0 ? pp : 1;
    cp.n_threads = threads;
    mome_ctx *c;
    if (mome_ctx_init(m, &cp, &c)) die_lib("context");
    mome_memory *mem = attach_memory(m, c, memory, mem_top_k);
    int V = mome_model_n_vocab(m);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(pp > 0 ? pp : 1));
    uint64_t st = 12345;
    for (int i = 0; i < pp; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        toks[i] = (int32_t)((st >> 33) % (uint64_t)V);
    }
    double *pps = calloc((size_t)reps, sizeof(double)), *tgs = calloc((size_t)reps, sizeof(double));
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        if (pp > 0) {
            double t0 = mome_time_s();
            if (mome_decode(c, toks, pp, 0, 0)) die_lib("bench");
            double dt = mome_time_s() - t0;
            if (r >= 0) pps[r] = pp / dt;
        }
        if (tg > 0) {
            int32_t t = mome_token_bos(m) >= 0 ? mome_token_bos(m) : 0;
            double t0 = mome_time_s();
            for (int i = 0; i < tg; i++)
                if (mome_decode(c, &t, 1, i, 0)) die_lib("bench");
            double dt = mome_time_s() - t0;
            if (r >= 0) tgs[r] = tg / dt;
        }
    }
    int nth = threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (json) {
        printf("{\"model\": \"%s\", \"threads\": %d, \"pp_tokens\": %d, \"tg_tokens\": %d, \"pp_tps\": [", model ? model : default_model_path(), nth, pp, tg);
        for (int r = 0; r < reps && pp > 0; r++) printf(r ? ", %.3f" : "%.3f", pps[r]);
        printf("], \"tg_tps\": [");
        for (int r = 0; r < reps && tg > 0; r++) printf(r ? ", %.3f" : "%.3f", tgs[r]);
        printf("], \"kernels\": \"%s\"}\n", quant_kernel_name());
    } else {
        qsort(pps, (size_t)reps, sizeof(double), cmp_double);
        qsort(tgs, (size_t)reps, sizeof(double), cmp_double);
        printf("model: %s\nthreads: %d, kernels: %s, repetitions: %d\n", model ? model : default_model_path(), nth,
               quant_kernel_name(), reps);
        if (pp > 0) printf("pp%-5d %10.2f tok/s (median; min %.2f, max %.2f)\n", pp, pps[reps / 2], pps[0], pps[reps - 1]);
        if (tg > 0) printf("tg%-5d %10.2f tok/s (median; min %.2f, max %.2f)\n", tg, tgs[reps / 2], tgs[0], tgs[reps - 1]);
    }
    free(pps);
    free(tgs);
    free(toks);
    mome_ctx_free(c);
    mome_memory_free(mem);
    mome_model_free(m);
    return 0;
}

/* ------------------------------------------------------------ tune/eval */

static void fmt_time(double s, char *buf, size_t n) {
    if (s < 0) { snprintf(buf, n, "?"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

typedef struct prog_state {
    int tty;
    double last_line;
    const char *last_phase;
} prog_state;

static void tune_progress(const mome_tune_progress *p, void *user) {
    prog_state *ps = user;
    char el[32], eta[32];
    fmt_time(p->elapsed_s, el, sizeof el);
    fmt_time(p->eta_s, eta, sizeof eta);
    const int done = strcmp(p->phase, "done") == 0, verifying = strcmp(p->phase, "verify") == 0;
    /* before training the count is of facts prepared, not memorized */
    const char *counted = verifying ? "verified" : done || strcmp(p->phase, "train") == 0 ? "memorized" : "prepared";
    if (ps->tty) {
        int w = 30, fill = p->n_facts ? (int)((int64_t)w * p->n_memorized / p->n_facts) : 0;
        char bar[64];
        for (int i = 0; i < w; i++) bar[i] = i < fill ? '#' : '.';
        bar[w] = 0;
        if (strcmp(counted, "prepared") == 0)
            fprintf(stderr, "\r\033[K%s [%s] %d/%d facts  %s", p->phase, bar, p->n_memorized, p->n_facts, el);
        else
            fprintf(stderr, "\r\033[K%-7s [%s] %d/%d %s  loss %.4f  %.1f facts/s  step %lld  %s  ETA %s",
                    p->phase, bar, p->n_memorized, p->n_facts, verifying ? "verified" : "memorized", p->mean_loss,
                    p->facts_per_s, (long long)p->step, el, eta);
        if (done) fprintf(stderr, "\n");
        fflush(stderr);
    } else {
        double now = mome_time_s();
        if (!done && ps->last_phase == p->phase && now - ps->last_line < 10) return;
        ps->last_line = now;
        ps->last_phase = p->phase;
        fprintf(stderr, "tune: %s %d/%d %s, mean loss %.4f, %.1f facts/s, step %lld, elapsed %s, ETA %s\n", p->phase,
                p->n_memorized, p->n_facts, counted, p->mean_loss, p->facts_per_s, (long long)p->step, el, eta);
    }
}

static int parse_conflict(const char *v) {
    if (!strcmp(v, "error")) return 0;
    if (!strcmp(v, "first")) return 1;
    if (!strcmp(v, "last")) return 2;
    die("--on-conflict expects error, first or last, got '%s'", v);
    return 0;
}

static int cmd_tune(int argc, char **argv) {
    const char *model = NULL;
    mome_tune_params p = mome_tune_default_params();
    args a = {argc, argv, 0, "tune"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome tune -m MODEL --facts FILE -o OUT.mome [options]\n\n"
                   "Memory-tune a frozen model: attach a mixture of memory experts and train only the\n"
                   "experts each fact selects until greedy decoding states every fact exactly.\n"
                   "FILE: JSONL {\"question\", \"answer\" (or a list; the first is trained)}, chat JSONL\n"
                   "{\"messages\": [...]}, or CSV with a question,answer header.\n\n"
                   "  -m, --model PATH       base model (default: models/SmolLM2-135M-Instruct.Q4_1.gguf)\n"
                   "  --facts FILE           the facts\n"
                   "  -o, --out FILE         the memory file to write\n"
                   "  --memory OLD.mome      add the facts to an existing memory (old facts stay)\n"
                   "  --method mome|lora|full  memory experts (default), the LoRA baseline, or full\n"
                   "                         fine-tuning of every weight in f32 (OUT is then the tuned model,\n"
                   "                         an f32 GGUF file for mome run/eval -m; about 16 bytes per\n"
                   "                         parameter while it trains: 2.2 GB for SmolLM2-135M)\n"
                   "  --on-conflict error|first|last  a question repeated with another answer\n"
                   "  --layer L              block whose input the fact values join (default: 4/5 of the depth,\n"
                   "                         7/8 on qwen2 models)\n"
                   "  --key-layer L          block whose input gives the pooled question key (default: 1/5)\n"
                   "  --route-threshold X    a question selects its fact when the key score is at least X\n"
                   "                         (default 0.55; lower: more rewordings, higher: fewer false hits)\n"
                   "  --w-pool X             weight of the pooled question key in the score (default 0.7)\n"
                   "  --cover X              the wording check: keep each fact's question words, and answer\n"
                   "                         only questions with a counterpart of every one (cosine at the\n"
                   "                         key block >= X; 0.2 turns away other questions about the same\n"
                   "                         subject, keeps case/space/punctuation variants and contexts;\n"
                   "                         default: no check; docs/BENCHMARKS.md has the trade-off)\n"
                   "  --top-k K              a question mixes the values of up to K facts, 1..64 (default 1:\n"
                   "                         the best fact alone): the K best by key score, weighted\n"
                   "                         softmax(score / T); the memory speaks when the best fact is\n"
                   "                         selected, the others join when they reach --top-k-tau (a new\n"
                   "                         memory; facts added to a memory take its setting)\n"
                   "  --top-k-temp T         the mixture's softmax temperature (default 0.25; scores are cosines)\n"
                   "  --top-k-tau X          score the facts but the best need to join (default: the route\n"
                   "                         threshold; -1: the K best always, as a top-k router)\n"
                   "  --top-k-train own|all  what a fact's loss trains: its own values, its partners held\n"
                   "                         (own, default), or every fact of its mixture (all); either way\n"
                   "                         verified facts whose partners changed are verified again\n"
                   "  --augment N            extra contexts per fact the tuner makes itself (system\n"
                   "                         prompts, an earlier exchange, lower case), 0..6 (default 2)\n"
                   "  --alt-keys N           keys of generated wordings a fact is also found by: 1 its\n"
                   "                         question in lower case (default), 0 none\n"
                   "  --subject-check 0|1    a fact that names its \"subject\" answers only questions that\n"
                   "                         name it too (case and spaces aside; default 1)\n"
                   "  --gate-questions N     a relation gate: the tuner asks N other questions about each\n"
                   "                         fact's \"subject\" and the memory learns to stay silent on\n"
                   "                         such questions, at some cost in rewordings found (measured\n"
                   "                         in docs/BENCHMARKS.md), 0..16 (default 0: no gate; try 4)\n"
                   "  --gate-margin X        the gate lets trained contexts through with at least X\n"
                   "                         (default 1.0; 0.25: quieter on neighbours, fewer rewordings)\n"
                   "  --lr X                 Adam learning rate (default 0.05, qwen2 models 0.15; LoRA 0.001,\n"
                   "                         full 0.0001)\n"
                   "  --target-loss X        memorized below this mean answer loss (default 0.01 nats)\n"
                   "  --batch B              facts per step (default 32)\n"
                   "  --max-steps N          stop after N steps (a checkpoint allows --resume)\n"
                   "  --max-minutes M        stop after M minutes\n"
                   "  --resume               continue from OUT.mome.ckpt\n"
                   "  --checkpoint-s S       seconds between checkpoints (default 60)\n"
                   "  --lora-rank R          LoRA baseline rank (default 8)\n"
                   "  --lora-alpha A         LoRA scale alpha (default 16)\n"
                   "  --merged-out FILE      LoRA: also write the base with the adapters merged (f32 GGUF)\n"
                   "  --ppl-text FILE        LoRA, full: perplexity of this text before and after (f32 stack)\n"
                   "  --ppl-text-bytes N     only its first N bytes\n"
                   "  -t, --threads N        threads (default: all cores)\n"
                   "  -s, --seed S           seed (default 1234): same seed and threads, same result\n"
                   "\nExit status: 0 all facts memorized, 1 error, 3 stopped with facts not memorized\n");
            return 0;
        } else if (arg_is(&a, "-m", "--model")) model = arg_val(&a);
        else if (arg_is(&a, "--facts", NULL)) p.facts_path = arg_val(&a);
        else if (arg_is(&a, "-o", "--out")) p.out_path = arg_val(&a);
        else if (arg_is(&a, "--memory", NULL)) p.init_memory = arg_val(&a);
        else if (arg_is(&a, "--method", NULL)) {
            const char *v = arg_val(&a);
            if (!strcmp(v, "mome")) p.method = MOME_TUNE_MOME;
            else if (!strcmp(v, "lora")) p.method = MOME_TUNE_LORA;
            else if (!strcmp(v, "full")) p.method = MOME_TUNE_FULL;
            else die("tune: --method expects mome, lora or full, got '%s'", v);
        } else if (arg_is(&a, "--on-conflict", NULL)) p.on_conflict = parse_conflict(arg_val(&a));
        else if (arg_is(&a, "--layer", NULL)) p.layer = (int)arg_long(&a, 1, 4095);
        else if (arg_is(&a, "--key-layer", NULL)) p.key_layer = (int)arg_long(&a, 1, 4095);
        else if (arg_is(&a, "--route-threshold", NULL)) p.route_threshold = (float)arg_double(&a, -1, 1);
        else if (arg_is(&a, "--w-pool", NULL)) p.w_pool = (float)arg_double(&a, 0, 1);
        else if (arg_is(&a, "--cover", NULL)) p.cover = (float)arg_double(&a, -1, 1);
        else if (arg_is(&a, "--top-k", NULL)) p.top_k = (int)arg_long(&a, 1, 64);
        else if (arg_is(&a, "--top-k-temp", NULL)) p.top_k_temp = (float)arg_double(&a, 1e-4, 100);
        else if (arg_is(&a, "--top-k-tau", NULL)) p.top_k_tau = (float)arg_double(&a, -1, 1);
        else if (arg_is(&a, "--top-k-train", NULL)) {
            const char *v = arg_val(&a);
            if (!strcmp(v, "own")) p.top_k_train_all = 0;
            else if (!strcmp(v, "all")) p.top_k_train_all = 1;
            else die("tune: --top-k-train expects own or all, got '%s'", v);
        } else if (arg_is(&a, "--augment", NULL)) p.augment = (int)arg_long(&a, 0, 6);
        else if (arg_is(&a, "--alt-keys", NULL)) p.alt_keys = (int)arg_long(&a, 0, 1);
        else if (arg_is(&a, "--subject-check", NULL)) p.subject_check = (int)arg_long(&a, 0, 1);
        else if (arg_is(&a, "--gate-questions", NULL)) p.gate_questions = (int)arg_long(&a, 0, 16);
        else if (arg_is(&a, "--gate-margin", NULL)) p.gate_margin = (float)arg_double(&a, 0, 100);
        else if (arg_is(&a, "--lr", NULL)) p.lr = (float)arg_double(&a, 1e-7, 10);
        else if (arg_is(&a, "--target-loss", NULL)) p.target_loss = (float)arg_double(&a, 1e-6, 10);
        else if (arg_is(&a, "--batch", NULL)) p.batch = (int)arg_long(&a, 1, 4096);
        else if (arg_is(&a, "--max-steps", NULL)) p.max_steps = arg_long(&a, 1, LONG_MAX);
        else if (arg_is(&a, "--max-minutes", NULL)) p.max_minutes = arg_double(&a, 0.001, 1e6);
        else if (arg_is(&a, "--resume", NULL)) p.resume = 1;
        else if (arg_is(&a, "--checkpoint-s", NULL)) p.checkpoint_s = arg_double(&a, 0, 1e6);
        else if (arg_is(&a, "--lora-rank", NULL)) p.lora_rank = (int)arg_long(&a, 1, 256);
        else if (arg_is(&a, "--lora-alpha", NULL)) p.lora_alpha = (float)arg_double(&a, 1e-6, 1e6);
        else if (arg_is(&a, "--merged-out", NULL)) p.model_out = arg_val(&a);
        else if (arg_is(&a, "--ppl-text", NULL)) p.ppl_text = arg_val(&a);
        else if (arg_is(&a, "--ppl-text-bytes", NULL)) p.ppl_text_bytes = arg_long(&a, 1, LONG_MAX);
        else if (arg_is(&a, "-t", "--threads")) p.n_threads = (int)arg_long(&a, 1, 256);
        else if (arg_is(&a, "-s", "--seed")) p.seed = (uint64_t)arg_long(&a, 0, LONG_MAX);
        else unknown(&a);
    }
    if (!p.facts_path) die("tune: give the facts with --facts FILE");
    if (!p.out_path) die("tune: give the output file with -o OUT.mome");
    if (p.model_out && p.method != MOME_TUNE_LORA) die("tune: --merged-out is for --method lora");
    mome_model *m = load_model(model, p.n_threads);
    fprintf(stderr, "tune: SIMD kernels %s, OpenBLAS core %s\n", quant_kernel_name(), blas_core_name());
    prog_state ps = {isatty(2), 0, NULL};
    p.progress = tune_progress;
    p.user = &ps;
    mome_tune_report rep;
    if (mome_tune(m, &p, &rep)) {
        if (ps.tty) fprintf(stderr, "\n");
        die("%s", mome_errmsg());
    }
    if (p.method != MOME_TUNE_MOME)
        fprintf(stderr, "tune: %d/%d facts memorized (teacher-forced greedy check in the f32 stack) in %.1f s, %lld steps; wrote %s%s%s%s\n",
                rep.n_memorized, rep.n_facts, rep.seconds, (long long)rep.steps, p.out_path,
                p.method == MOME_TUNE_FULL ? " (the tuned model, f32)" : "", p.model_out ? " and " : "",
                p.model_out ? p.model_out : "");
    else
        fprintf(stderr, "tune: %d/%d facts memorized (verified by greedy decoding) in %.1f s, %lld steps, %lld experts trained"
                        " (one per answer row); wrote %s\n",
                rep.n_memorized, rep.n_facts, rep.seconds, (long long)rep.steps, (long long)rep.n_trained_experts,
                p.out_path);
    if (p.method == MOME_TUNE_MOME && rep.mean_mix > 1)
        fprintf(stderr, "tune: mixtures: %.2f facts per trained question on average; %lld verified fact(s) undone by a "
                        "partner's change and trained again\n",
                rep.mean_mix, (long long)rep.n_undone);
    if (rep.ppl_before > 0)
        fprintf(stderr, "tune: perplexity of %s: %.4f before, %.4f after (%+.2f%%)\n", p.ppl_text, rep.ppl_before,
                rep.ppl_after, 100 * (rep.ppl_after / rep.ppl_before - 1));
    if (rep.n_memorized < rep.n_facts) {
        fprintf(stderr, "tune: stopped before every fact was memorized%s\n",
                p.method == MOME_TUNE_MOME ? "; continue with --resume" : "");
        if (rep.n_missing_lines > 0) {
            fprintf(stderr, "tune: not memorized: %s line", p.facts_path);
            for (int i = 0; i < rep.n_missing_lines; i++) fprintf(stderr, "%s %d", i ? "," : "", rep.missing_lines[i]);
            fprintf(stderr, "%s\n", rep.n_facts - rep.n_memorized > rep.n_missing_lines ? ", ..." : "");
        }
    }
    mome_model_free(m);
    return rep.n_memorized < rep.n_facts ? 3 : 0; /* exit status 3: documented in --help */
}

typedef struct eval_cb {
    int verbose, tty;
    double last;
} eval_cb;

static void eval_on_fact(int i, int n, const char *q, const char *out, int ex, int co, int ab, void *user) {
    eval_cb *cb = user;
    if (cb->verbose) fprintf(stderr, "[%s] %s -> %s\n", ex ? "exact" : co ? "contains" : ab ? "abstain" : "WRONG", q, out);
    else if (cb->tty) {
        fprintf(stderr, "\r\033[Keval: %d/%d facts", i + 1, n);
        if (i + 1 == n) fprintf(stderr, "\n");
    } else if (mome_time_s() - cb->last > 10 || i + 1 == n) {
        cb->last = mome_time_s();
        fprintf(stderr, "eval: %d/%d facts\n", i + 1, n);
    }
}

static void eval_on_progress(int done, int total, void *user) {
    eval_cb *cb = user;
    if (cb->verbose) return;
    if (cb->tty) {
        fprintf(stderr, "\r\033[Keval: %d/%d questions answered", done, total);
        if (done == total) fprintf(stderr, "\n");
    } else if (mome_time_s() - cb->last > 10 || done == total) {
        cb->last = mome_time_s();
        fprintf(stderr, "eval: %d/%d questions answered\n", done, total);
    }
}

/* A measure for the text report: "NN.NN%  (k of n)" or "not measured". */
static void print_measure(const char *name, double v, int k, int n, const char *why_not) {
    if (v < 0) printf("%-20s not measured (%s)\n", name, why_not);
    else printf("%-20s %6.2f%%  (%d of %d)\n", name, 100 * v, k, n);
}

static int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *memory = NULL;
    int json = 0;
    eval_cb cb = {0, isatty(2), 0};
    mome_eval_params p = mome_eval_default_params();
    float route_tau = NAN, route_w = NAN, route_cover = NAN;
    int mem_top_k = 0;
    const char **systems = NULL;
    int n_systems = 0;
    args a = {argc, argv, 0, "eval"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome eval -m MODEL [--memory MEM] --facts FILE [--text HELDOUT.txt] [--json]\n\n"
                   "Greedy answers (chat template, at most --max-new tokens) scored against the expected answers:\n"
                   "  recall              output == an expected answer (trimmed, final period dropped), for the\n"
                   "                      trained question with the fact's own system prompt\n"
                   "  contains_recall     an expected answer appears in the output\n"
                   "  hallucination_rate  neither correct nor an abstention (\"I don't know\", \"I'm not sure\", ...)\n"
                   "  context_recall      the trained question in surroundings the fact never had, once per fact\n"
                   "                      and context: behind each built-in system prompt\n"
                   "                        \"You are a helpful assistant.\"\n"
                   "                        \"You are the support assistant of ACME Corp. Answer the user's\n"
                   "                         questions briefly and accurately.\"\n"
                   "                        \"You are a knowledgeable assistant. Keep your answers short.\"\n"
                   "                      and each --system prompt (these replace the fact's own), and after one\n"
                   "                      earlier exchange (user \"Hi! Can you help me with a few questions?\",\n"
                   "                      assistant \"Of course! What would you like to know?\")\n"
                   "  variant_recall      the trained question in lower case, with every space doubled plus a\n"
                   "                      trailing space, and without its final ?/./! (variants equal to the\n"
                   "                      question are not asked)\n"
                   "  paraphrase_recall   exact recall on the facts' paraphrases (never trained on)\n"
                   "  swap_rate           of every question above, the share answered with another fact's answer\n"
                   "                      (two facts about one subject swapped, a question sent to the wrong fact)\n"
                   "  locality            with --memory only: the share of neighbour questions (the facts'\n"
                   "                      \"neighbors\", zsRE \"loc\", CounterFact \"locality_prompt\", and every\n"
                   "                      question of --neighbors FILE) answered byte for byte as without it\n"
                   "  perplexity          of --text, in windows of --ppl-ctx tokens\n"
                   "A measure not taken is reported as -1 in --json.\n\n"
                   "  --memory FILE        attach a memory\n"
                   "  --route-threshold X  override the memory's selection threshold (to measure the\n"
                   "                       trade-off between rewordings found and neighbours left alone)\n"
                   "  --w-pool X           override the pooled key's weight in the selection score\n"
                   "  --cover X            override the wording check's threshold (memories tuned with --cover)\n"
                   "  --memory-top-k K     override the facts the memory mixes per question (1..64)\n"
                   "  --neighbors FILE     more neighbour questions: the questions of this fact file\n"
                   "                       (answers ignored)\n"
                   "  --system TEXT        one more system prompt for context_recall (repeatable)\n"
                   "  --no-context         skip context_recall\n"
                   "  --no-variants        skip variant_recall\n"
                   "  --outputs FILE       write one JSON line per question asked: {\"fact\", \"line\", \"kind\"\n"
                   "                       (recall|paraphrase|variant|context|neighbor), \"question\", \"system\",\n"
                   "                       \"answer\", \"base\" (the answer without the memory; neighbours only,\n"
                   "                       else null), \"exact\", \"route\" (with a memory: the memory's decision,\n"
                   "                       {\"best\", \"score\", \"gate\", \"cover\", \"fact\"}; bench/route_tradeoff.py\n"
                   "                       replays other thresholds on it)}\n"
                   "  --text FILE          held-out text for perplexity\n"
                   "  --text-bytes N       only the first N bytes of the text\n"
                   "  --ppl-ctx N          perplexity window (default 512)\n"
                   "  --max-facts N        only the first N facts\n"
                   "  --max-new N          answer length limit in tokens (default 24; it was 64 before)\n"
                   "  --parallel N         questions answered together in one batched forward pass\n"
                   "                       (default 16; 1: one at a time; the figures are the same)\n"
                   "  --on-conflict error|first|last\n"
                   "  --json               one JSON object on stdout\n"
                   "  -v, --verbose        print every trained question and its answer\n"
                   "  -t, --threads N\n");
            free(systems);
            return 0;
        } else if (arg_is(&a, "-m", "--model")) model = arg_val(&a);
        else if (arg_is(&a, "--memory", NULL)) memory = arg_val(&a);
        else if (arg_is(&a, "--facts", NULL)) p.facts_path = arg_val(&a);
        else if (arg_is(&a, "--neighbors", NULL)) p.neighbors_path = arg_val(&a);
        else if (arg_is(&a, "--route-threshold", NULL)) route_tau = (float)arg_double(&a, -1, 1);
        else if (arg_is(&a, "--w-pool", NULL)) route_w = (float)arg_double(&a, 0, 1);
        else if (arg_is(&a, "--cover", NULL)) route_cover = (float)arg_double(&a, -1, 1);
        else if (arg_is(&a, "--memory-top-k", NULL)) mem_top_k = (int)arg_long(&a, 1, 64);
        else if (arg_is(&a, "--system", NULL)) {
            const char *v = arg_val(&a);
            if (!*v) die("eval: --system expects a non-empty system prompt");
            const char **ns = realloc(systems, (size_t)(n_systems + 1) * sizeof *ns);
            if (!ns) die("out of memory");
            systems = ns;
            systems[n_systems++] = v;
        } else if (arg_is(&a, "--no-context", NULL)) p.no_context = 1;
        else if (arg_is(&a, "--no-variants", NULL)) p.no_variants = 1;
        else if (arg_is(&a, "--outputs", NULL)) p.outputs_path = arg_val(&a);
        else if (arg_is(&a, "--text", NULL)) p.text_path = arg_val(&a);
        else if (arg_is(&a, "--text-bytes", NULL)) p.text_max_bytes = arg_long(&a, 1, LONG_MAX);
        else if (arg_is(&a, "--ppl-ctx", NULL)) p.ppl_ctx = (int)arg_long(&a, 2, 1 << 16);
        else if (arg_is(&a, "--max-facts", NULL)) p.max_facts = arg_long(&a, 1, LONG_MAX);
        else if (arg_is(&a, "--max-new", NULL)) p.max_new_tokens = (int)arg_long(&a, 1, 4096);
        else if (arg_is(&a, "--parallel", NULL)) p.n_parallel = (int)arg_long(&a, 1, 256);
        else if (arg_is(&a, "--on-conflict", NULL)) p.on_conflict = parse_conflict(arg_val(&a));
        else if (arg_is(&a, "--json", NULL)) json = 1;
        else if (arg_is(&a, "-v", "--verbose")) cb.verbose = 1;
        else if (arg_is(&a, "-t", "--threads")) p.n_threads = (int)arg_long(&a, 1, 256);
        else unknown(&a);
    }
    if (!p.facts_path && !p.text_path) die("eval: give --facts FILE and/or --text FILE");
    if (p.neighbors_path && !memory)
        fprintf(stderr, "eval: --neighbors is used only with --memory (locality compares answers with and without it)\n");
    p.systems = systems;
    p.n_systems = n_systems;
    mome_model *m = load_model(model, p.n_threads);
    mome_memory *mem = NULL;
    if (memory && mome_memory_load(memory, m, &mem)) die("%s", mome_errmsg());
    if (mem) mome_memory_set_routing(mem, route_tau, route_w); /* NAN: unchanged */
    if (mem) mome_memory_set_cover(mem, route_cover);
    if (mem && mem_top_k > 0) mome_memory_set_mix(mem, mem_top_k, NAN, NAN);
    p.on_fact = eval_on_fact;
    p.on_progress = eval_on_progress;
    p.user = &cb;
    mome_eval_result r;
    if (mome_eval(m, mem, &p, &r)) die("%s", mome_errmsg());
    if (json) {
        printf("{\"model\": \"%s\", \"memory\": %s%s%s", model ? model : default_model_path(), memory ? "\"" : "",
               memory ? memory : "null", memory ? "\"" : "");
        if (p.facts_path)
            printf(", \"n_facts\": %d, \"recall\": %.6f, \"contains_recall\": %.6f, \"hallucination_rate\": %.6f, "
                   "\"abstentions\": %d, \"n_context\": %d, \"context_recall\": %.6f, \"n_variants\": %d, "
                   "\"variant_recall\": %.6f, \"n_paraphrases\": %d, \"paraphrase_recall\": %.6f, \"n_swapped\": %d, "
                   "\"swap_rate\": %.6f",
                   r.n_facts, r.recall, r.contains_recall, r.hallucination_rate, r.n_abstain, r.n_context,
                   r.context_recall, r.n_variants, r.variant_recall, r.n_paraphrases, r.paraphrase_recall, r.n_swapped,
                   r.swap_rate);
        if (p.facts_path || p.neighbors_path)
            printf(", \"n_neighbors\": %d, \"locality\": %.6f", r.n_neighbors, r.locality);
        if (p.text_path) printf(", \"perplexity\": %.6f, \"ppl_tokens\": %lld", r.perplexity, (long long)r.ppl_tokens);
        printf(", \"seconds\": %.2f}\n", r.seconds);
    } else {
        printf("model: %s%s%s\n", model ? model : default_model_path(), memory ? "  memory: " : "", memory ? memory : "");
        if (p.facts_path) {
            printf("facts: %d\n", r.n_facts);
            printf("recall (exact):      %6.2f%%  (%d)\n", 100 * r.recall, r.n_exact);
            printf("contains_recall:     %6.2f%%  (%d)\n", 100 * r.contains_recall, r.n_contains);
            printf("hallucination_rate:  %6.2f%%  (%d; abstentions %d)\n", 100 * r.hallucination_rate, r.n_hallucinated,
                   r.n_abstain);
            print_measure("context_recall:", r.context_recall, r.n_context_exact, r.n_context,
                          p.no_context ? "--no-context" : "no facts");
            print_measure("variant_recall:", r.variant_recall, r.n_variant_exact, r.n_variants,
                          p.no_variants ? "--no-variants" : "no question has a variant");
            print_measure("paraphrase_recall:", r.paraphrase_recall, r.n_paraphrase_exact, r.n_paraphrases,
                          "no paraphrases");
            print_measure("swap_rate:", r.swap_rate, r.n_swapped, r.n_scored, "no facts");
        }
        if (p.facts_path || p.neighbors_path)
            print_measure("locality:", r.locality, r.n_neighbors_same, r.n_neighbors,
                          memory ? "no neighbour questions" : "no memory");
        if (p.text_path) printf("perplexity:          %.4f  (%lld tokens)\n", r.perplexity, (long long)r.ppl_tokens);
        if (p.outputs_path && (p.facts_path || (p.neighbors_path && memory))) printf("outputs: %s\n", p.outputs_path);
        printf("time: %.1f s\n", r.seconds);
    }
    free(systems);
    mome_memory_free(mem);
    mome_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- serve */

static void serve_signal(int sig) {
    (void)sig;
    srv_stop();
}

static int cmd_serve(int argc, char **argv) {
    srv_params p = srv_default_params();
    const char *model = NULL, *key_file = NULL;
    const char **mems = NULL;
    int n_mems = 0;
    args a = {argc, argv, 0, "serve"};
    for (a.i = 1; a.i < argc; a.i++) {
        if (arg_is(&a, "-h", "--help")) {
            printf("usage: mome serve -m MODEL [--memory FILE ...] [--host 127.0.0.1] [--port 8080] [--parallel N]\n"
                   "                  [--ctx N] [--queue N] [--timeout S] [--threads N] [--api-key-file FILE]\n\n"
                   "An OpenAI-compatible HTTP server: GET /v1/models, POST /v1/completions, POST /v1/chat/completions\n"
                   "(\"stream\": true for server-sent events), GET /health, GET /metrics (Prometheus), and a chat page\n"
                   "at /. The base model's id is its file name; each memory's id is its file name without .mome, and\n"
                   "a request picks one with \"model\". SIGTERM or Ctrl-C finishes the requests in flight, then exits.\n\n"
                   "  -m, --model FILE     the base model (GGUF)\n"
                   "  --memory FILE        serve this memory too (repeatable)\n"
                   "  --host ADDR          address to listen on (default 127.0.0.1: this machine only)\n"
                   "  --port N             port (default 8080; 0: any free port, printed)\n"
                   "  --parallel N         slots: requests decoded together in one batch (default 4)\n"
                   "  --ctx N              context per slot in tokens, prompt + answer (default 2048)\n"
                   "  --queue N            requests that may wait for a slot; more get 503 (default 64)\n"
                   "  --timeout S          close a connection idle for S seconds (slow or half-sent requests;\n"
                   "                       default 60)\n"
                   "  --max-body BYTES     request body limit, larger gets 413 (default 1048576)\n"
                   "  -t, --threads N      compute threads (default: all cores)\n"
                   "  --api-key-file FILE  require \"Authorization: Bearer KEY\" with the key in FILE (the\n"
                   "                       environment variable MOME_API_KEY works too); / and /health stay open\n"
                   "  --ready-file FILE    write the port there once listening (for scripts)\n"
                   "  -v, --verbose        one line per request on stderr\n");
            free(mems);
            return 0;
        } else if (arg_is(&a, "-m", "--model")) model = arg_val(&a);
        else if (arg_is(&a, "--memory", NULL)) {
            const char **nm = realloc(mems, (size_t)(n_mems + 1) * sizeof *nm);
            if (!nm) die("out of memory");
            mems = nm;
            mems[n_mems++] = arg_val(&a);
        } else if (arg_is(&a, "--host", NULL)) p.host = arg_val(&a);
        else if (arg_is(&a, "--port", NULL)) p.port = (int)arg_long(&a, 0, 65535);
        else if (arg_is(&a, "--parallel", "-np")) p.n_parallel = (int)arg_long(&a, 1, 64);
        else if (arg_is(&a, "--ctx", "-c")) p.n_ctx = (int)arg_long(&a, 64, 1 << 20);
        else if (arg_is(&a, "--queue", NULL)) p.queue = (int)arg_long(&a, 0, 100000);
        else if (arg_is(&a, "--timeout", NULL)) p.timeout_s = arg_double(&a, 1, 86400);
        else if (arg_is(&a, "--max-body", NULL)) p.max_body = (size_t)arg_long(&a, 1024, 1L << 30);
        else if (arg_is(&a, "-t", "--threads")) p.n_threads = (int)arg_long(&a, 1, 256);
        else if (arg_is(&a, "--api-key-file", NULL)) key_file = arg_val(&a);
        else if (arg_is(&a, "--ready-file", NULL)) p.ready_file = arg_val(&a);
        else if (arg_is(&a, "-v", "--verbose")) p.verbose = 1;
        else unknown(&a);
    }
    if (!model) {
        model = default_model_path();
        if (access(model, R_OK) != 0) die("serve: no model given: pass -m MODEL.gguf");
    }
    char *key = NULL;
    if (key_file) {
        size_t n;
        key = read_file(key_file, &n);
        while (n && (key[n - 1] == '\n' || key[n - 1] == '\r' || key[n - 1] == ' ')) key[--n] = 0;
        if (!n) die("serve: %s holds no key", key_file);
    } else if (getenv("MOME_API_KEY") && *getenv("MOME_API_KEY")) {
        key = strdup(getenv("MOME_API_KEY"));
        if (!key) die("out of memory");
    }
    p.model_path = model;
    p.memory_paths = mems;
    p.n_memories = n_mems;
    p.api_key = key;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = serve_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    const int rc = srv_run(&p);
    free(key);
    free(mems);
    if (rc) die("%s", mome_errmsg());
    return 0;
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *f) {
    fprintf(f, "usage: mome COMMAND [options]   (mome COMMAND --help for details)\n\n"
               "commands:\n"
               "  info       print a GGUF file's metadata and tensor table\n"
               "  tokenize   print the token ids of a text\n"
               "  run        generate text from a prompt (--chat for the chat template)\n"
               "  chat       interactive chat\n"
               "  bench      prompt-processing and generation speed\n"
               "  tune       memory-tune a model on a file of facts\n"
               "  eval       recall (trained, other contexts, variants, paraphrases), locality,\n"
               "             hallucination rate, perplexity\n"
               "  serve      OpenAI-compatible HTTP server (completions, chat, streaming, memories)\n"
               "  experiment run one of the paper's experiments: CSV, plots, summary (docs/EXPERIMENTS.md)\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "chat")) return cmd_chat(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "tune") || !strcmp(cmd, "experiment")) {
        /* training runs on OpenBLAS GEMMs: if it fell back to generic kernels
         * on a CPU it does not know, restart once with the right ones (blas.c) */
        const char *core = blas_better_core();
        if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0) execv("/proc/self/exe", argv);
        /* exec failed: slower, still correct */
        if (!strcmp(cmd, "experiment")) return experiment_main(argc - 1, argv + 1);
        return cmd_tune(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "eval")) return cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) {
        /* libgomp's idle threads spin by default: on a small machine they
         * would take the cores the HTTP threads need, so waits are passive;
         * but a forward pass has ~300 barriers per token, and a futex wake at
         * each made one client 3.5x slower (64 tokens: 0.83 s passive, 0.23 s
         * active), so each wait first spins 10,000 rounds (0.24 s, and no CPU
         * used while idle). Read when the library starts, hence the re-exec. */
        if (!getenv("OMP_WAIT_POLICY") && setenv("OMP_WAIT_POLICY", "passive", 1) == 0 &&
            (getenv("GOMP_SPINCOUNT") || setenv("GOMP_SPINCOUNT", "10000", 1) == 0))
            execv("/proc/self/exe", argv);
        return cmd_serve(argc - 1, argv + 1);
    }
    fprintf(stderr, "mome: error: unknown command '%s' (commands: info tokenize run chat bench tune eval serve experiment; see mome --help)\n", cmd);
    return 1;
}
