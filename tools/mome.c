/* mome.c - the command-line tool: info, tokenize, run, chat, bench, tune, eval, serve,
 * experiment (tools/experiment.c).
 *
 * Options: every option of every command is one row of OPTS below
 * (tools/arg.h): its spellings, the field of V it sets, its range, its help
 * text and the commands that take it, so an option several commands share
 * (the model, threads, sampling, the memory) is declared once. A command sets
 * its defaults in V (from the library's *_default_params()), calls
 * parse_args() and reads V; its --help is its usage text and the lines
 * arg_help() makes from the rows, with the defaults read from V.
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

#include "arg.h"
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

/* -------------------------------------------------------------- options */

enum {
    CMD_INFO = 1 << 0,
    CMD_TOKENIZE = 1 << 1,
    CMD_RUN = 1 << 2,
    CMD_CHAT = 1 << 3,
    CMD_BENCH = 1 << 4,
    CMD_TUNE = 1 << 5,
    CMD_EVAL = 1 << 6,
    CMD_SERVE = 1 << 7,
    CMD_GEN = CMD_RUN | CMD_CHAT,                 /* generate with a sampler */
    CMD_MEM = CMD_GEN | CMD_BENCH | CMD_EVAL,     /* attach a memory */
    CMD_COMPUTE = CMD_MEM | CMD_TUNE | CMD_SERVE, /* run the model (threads) */
    CMD_MODEL = CMD_TOKENIZE | CMD_COMPUTE,       /* -m, with the default model */
};

/* What the options set. The library's parameter structs are filled in place
 * by the options of the command they belong to; an option several commands
 * share has its own field, which the commands copy where they need it. The
 * process runs one command, so the rest stays zero. */
static struct cli {
    /* shared */
    const char *model;        /* -m (NULL: default_model) */
    int threads;              /* -t (0: all cores) */
    const char *memory;       /* --memory: attach it */
    int memory_top_k;         /* --memory-top-k (0: the memory's) */
    const char *facts;        /* tune, eval: --facts */
    int on_conflict;          /* tune, eval: --on-conflict */
    int json;                 /* bench, eval: --json */
    int verbose;              /* run, chat, eval: -v */
    /* tokenize, run, chat */
    const char *prompt, *file;
    int no_bos, no_parse_special, pieces;
    int chat, ignore_eos, n_predict, n_ctx;
    const char *system;       /* --system */
    int default_system;       /* --default-system: the template's own default system message */
    mome_sampler_params sp;
    /* bench */
    int pp, tg, reps;
    /* tune */
    mome_tune_params tune;
    /* eval */
    mome_eval_params eval;
    float route_tau, route_w, route_cover, route_verify, route_verify_unnamed, route_margin, route_share; /* overrides of the memory's (NAN: its own) */
    arg_list systems;
    /* serve */
    srv_params srv;
    arg_list memories;
    const char *key_file;
} V;

/* $MOME_MODELS/SmolLM2-135M-Instruct.Q4_1.gguf ($MOME_MODELS: models), set by main. */
static char default_model[PATH_MAX];
/* MOME_DEFAULT_MARGIN_SHARE as text, for the help (set by main). */
static char default_share[32], default_unnamed[32];

static const arg_opt OPTS[] = {
    /* the model */
    {CMD_INFO, "-m, --model", "PATH", ARG_STR(&V.model), .help = "the GGUF file (or give it without -m)"},
    {CMD_MODEL, "-m, --model", "PATH", ARG_STR(&V.model), .help = "GGUF model", .def = default_model},

    /* the text: tokenize, run */
    {CMD_TOKENIZE, "-p, --prompt", "TEXT", ARG_STR(&V.prompt), .help = "text to tokenize"},
    {CMD_RUN, "-p, --prompt", "TEXT", ARG_STR(&V.prompt), .help = "the prompt", .def = "empty, i.e. BOS only"},
    {CMD_TOKENIZE | CMD_RUN, "-f, --file", "PATH", ARG_STR(&V.file), .help = "read the text from a file"},
    {CMD_TOKENIZE, "--no-bos", NULL, ARG_FLAG(&V.no_bos), .help = "never add BOS"},
    {CMD_TOKENIZE, "--no-parse-special", NULL, ARG_FLAG(&V.no_parse_special),
     .help = "treat special-token text such as <|im_end|> as plain text"},
    {CMD_TOKENIZE, "--pieces", NULL, ARG_FLAG(&V.pieces), .help = "print one 'id<TAB>piece' line per token instead"},

    /* generation: run, chat */
    {CMD_RUN, "--chat", NULL, ARG_FLAG(&V.chat), .help = "use the chat template"},
    {CMD_RUN, "--ignore-eos", NULL, ARG_FLAG(&V.ignore_eos), .help = "keep generating past end-of-generation tokens"},
    {CMD_GEN, "-n, --n-predict", "N", ARG_INT(&V.n_predict, -1, 1 << 24),
     .help = "tokens to generate; -1 = until end of turn or full context"},
    {CMD_GEN, "-c, --ctx", "N", ARG_INT(&V.n_ctx, 8, 1 << 22), .help = "context size in tokens",
     .def = "min(train ctx, 4096)"},
    {CMD_GEN, "--temp", "T", ARG_FLOAT(&V.sp.temp, 0, 100), .help = "temperature; 0 = greedy"},
    {CMD_GEN, "--top-k", "K", ARG_INT(&V.sp.top_k, 0, INT_MAX), .help = "keep the K most likely tokens; 0 = off"},
    {CMD_GEN, "--top-p", "P", ARG_FLOAT(&V.sp.top_p, 0, 1), .help = "nucleus sampling; 1 = off"},
    {CMD_GEN, "--min-p", "P", ARG_FLOAT(&V.sp.min_p, 0, 1),
     .help = "drop tokens below P x the best one's probability; 0 = off"},
    {CMD_GEN, "--repeat-penalty", "R", ARG_FLOAT(&V.sp.repeat_penalty, 0.01, 100),
     .help = "penalise the last 64 tokens; 1 = off"},
    {CMD_GEN, "-s, --seed", "S", ARG_U64(&V.sp.seed, 0, LONG_MAX), .help = "random seed", .def = "from the clock"},
    {CMD_GEN, "--system", "TEXT", ARG_STR(&V.system), .help = "system message (chat)"},
    {CMD_GEN, "--default-system", NULL, ARG_FLAG(&V.default_system),
     .help = "without --system, start the chat with the system message the model's template writes by default "
             "(Qwen2.5: \"You are Qwen, created by Alibaba Cloud. ...\"); by default mome renders chats as "
             "llama.cpp's llama_chat_apply_template does, which leaves it out"},

    /* a memory made by mome tune, attached */
    {CMD_MEM, "--memory", "FILE", ARG_STR(&V.memory), .help = "attach a memory made by mome tune"},
    {CMD_MEM, "--memory-top-k", "K", ARG_INT(&V.memory_top_k, 1, 64),
     .help = "mix K facts per question, 1..64 (for measuring: a memory answers best as it was tuned)",
     .def = "the memory's own setting"},
    {CMD_GEN, "-v, --verbose", NULL, ARG_FLAG(&V.verbose),
     .help = "timings, settings and the memory's selection on stderr"},

    /* bench */
    {CMD_BENCH, "-p", "N", ARG_INT(&V.pp, 0, 1 << 16), .help = "prompt tokens; 0 = skip"},
    {CMD_BENCH, "-n", "N", ARG_INT(&V.tg, 0, 1 << 16), .help = "generated tokens; 0 = skip"},
    {CMD_BENCH, "-r, --reps", "N", ARG_INT(&V.reps, 1, 1000), .help = "repetitions"},

    /* tune (and eval's facts) */
    {CMD_TUNE | CMD_EVAL, "--facts", "FILE", ARG_STR(&V.facts), .help = "the facts (JSONL, chat JSONL or CSV)"},
    {CMD_TUNE, "-o, --out", "FILE", ARG_STR(&V.tune.out_path), .help = "the memory file to write"},
    {CMD_TUNE, "--memory", "OLD.mome", ARG_STR(&V.tune.init_memory),
     .help = "add the facts to an existing memory (old facts stay)"},
    {CMD_TUNE, "--method", NULL, ARG_CHOICE(&V.tune.method, "mome|lora|full"),
     .help = "memory experts, the LoRA baseline, or full fine-tuning of every weight in f32 (OUT is then the "
             "tuned model, an f32 GGUF file for mome run/eval -m; about 16 bytes per parameter while it trains: "
             "2.2 GB for SmolLM2-135M)"},
    {CMD_TUNE | CMD_EVAL, "--on-conflict", NULL, ARG_CHOICE(&V.on_conflict, "error|first|last"),
     .help = "a question repeated with another answer"},
    {CMD_TUNE, "--layer", "L", ARG_INT(&V.tune.layer, 1, 4095), .help = "block whose input the fact values join",
     .def = "4/5 of the depth, 7/8 on qwen2 models"},
    {CMD_TUNE, "--key-layer", "L", ARG_INT(&V.tune.key_layer, 1, 4095),
     .help = "block whose input gives the pooled question key", .def = "1/5 of the depth"},
    {CMD_TUNE, "--route-threshold", "X", ARG_FLOAT(&V.tune.route_threshold, -1, 1),
     .help = "a question selects its fact when the key score is at least X; lower: more rewordings, higher: "
             "fewer false hits (a new memory's; facts added with --memory use the memory's)"},
    {CMD_TUNE, "--route-margin", "M", ARG_FLOAT(&V.tune.route_margin, 0, 2),
     .help = "a question selects its fact only when its key score leads the fact's rival (the best other fact with "
             "another answer that the question could be asking about) by the fact's margin, or is the stored "
             "question: quiet on unrelated questions among many facts of one style. Each fact's margin is a share "
             "(--route-margin-share) of the smallest lead the contexts the tuner makes for it have (trained, and for "
             "their keys only the rest of the 6: slower prepare), at most M; facts added "
             "with --memory use the memory's settings unless given",
     .def = "0, no margin"},
    {CMD_TUNE, "--route-margin-share", "X", ARG_FLOAT(&V.tune.route_margin_share, 0, 2),
     .help = "the share of its contexts' lead a fact's margin is; higher: quieter on unrelated "
             "questions, fewer contexts and variants answered",
     .def = default_share},
    {CMD_TUNE, "--w-pool", "X", ARG_FLOAT(&V.tune.w_pool, 0, 1),
     .help = "weight of the pooled question key in the score"},
    {CMD_TUNE, "--cover", "X", ARG_FLOAT(&V.tune.cover, -1, 1),
     .help = "the wording check: keep each fact's question words, and answer only questions with a counterpart "
             "of every one (cosine at the key block >= X); 0.2 turns away other questions about the same subject, "
             "keeps case/space/punctuation variants and contexts; docs/BENCHMARKS.md has the trade-off",
     .def = "no check"},
    {CMD_TUNE, "--verify", "X", ARG_FLOAT(&V.tune.verify, -1, 1),
     .help = "the relation check: keep each fact's state at --verify-layer of its question asked alone "
             "(as given, lower case, without its final mark, with doubled spaces; read as --verify-key "
             "says), and answer only "
             "questions whose own question, read alone, is near one of them (cosine >= X after taking away "
             "the fact's subject centre and whitening, --verify-key), whatever system prompt or turns "
             "precede it; it tells rewordings from other questions about the same subject better than "
             "--cover; -1 keeps the states and checks nothing (for eval --verify); docs/BENCHMARKS.md has "
             "the trade-off. It costs about a third more tuning time and 4.6-5.8 KB per fact; "
             "--verify-key none tunes a memory without it (more rewordings, and other questions about a "
             "tuned subject or in the style of subject-less facts take their answers)",
     .def = "0.5 for a new memory; facts added with --memory are checked as the memory's own"},
    {CMD_TUNE, "--verify-unnamed", "X", ARG_FLOAT(&V.tune.verify_unnamed, -1, 1),
     .help = "the relation check's threshold for facts whose question names no subject (no subject check "
             "guards them); they need max(X, --verify). Lower it to let such facts answer rewordings, at the "
             "cost of unrelated questions in their style",
     .def = default_unnamed},
    {CMD_TUNE, "--verify-layer", "N", ARG_INT(&V.tune.verify_layer, 1, 4096),
     .help = "the block whose input the relation check reads (below --layer, but for the meaning key, "
             "which reads in a pass of its own)", .def = "7/15 of the blocks with --verify-key relation, 12/15 with meaning, else 3/5"},
    {CMD_TUNE, "--verify-key", NULL, ARG_CHOICE(&V.tune.verify_key, "centred|last|relation|meaning|none"),
     .help = "the state the relation check compares: relation, the mean over the question's tokens that "
             "are not its subject's; last, the state at the end of the question; meaning, the state at the "
             "end of 'This sentence : \"QUESTION\" means in one word:\"'; each after taking away the fact's "
             "subject centre (2 other questions about its subject) and whitening with their spread; centred, "
             "the state at the end centred on one mean (the check before 2026-12-04); none, no relation "
             "check (the default before 2026-12-05). A new memory's choice, kept when facts are added",
     .def = "meaning"},
    {CMD_TUNE, "--top-k", "K", ARG_INT(&V.tune.top_k, 1, 64),
     .help = "a question mixes the values of up to K facts, 1..64: the K best by key score, weighted "
             "softmax(score / T); the memory speaks when the best fact is selected, the others join when they "
             "reach --top-k-tau (a new memory; facts added to a memory take its setting)",
     .def = "1, the best fact alone"},
    {CMD_TUNE, "--top-k-temp", "T", ARG_FLOAT(&V.tune.top_k_temp, 1e-4, 100),
     .help = "the mixture's softmax temperature; scores are cosines"},
    {CMD_TUNE, "--top-k-tau", "X", ARG_FLOAT(&V.tune.top_k_tau, -1, 1),
     .help = "score the facts but the best need to join; -1: the K best always, as a top-k router",
     .def = "the route threshold"},
    {CMD_TUNE, "--top-k-train", NULL, ARG_CHOICE(&V.tune.top_k_train_all, "own|all"),
     .help = "what a fact's loss trains: its own values, its partners held (own), or every fact of its mixture "
             "(all); either way verified facts whose partners changed are verified again"},
    {CMD_TUNE, "--augment", "N", ARG_INT(&V.tune.augment, 0, 6),
     .help = "extra contexts per fact the tuner makes itself and trains (in order: a system prompt, an earlier "
             "exchange, lower case, another system prompt, no final mark, doubled spaces), 0..6"},
    {CMD_TUNE, "--alt-keys", "N", ARG_INT(&V.tune.alt_keys, 0, 1),
     .help = "keys of generated wordings a fact is also found by: 1 its question in lower case, 0 none"},
    {CMD_TUNE, "--subject-check", "0|1", ARG_INT(&V.tune.subject_check, 0, 1),
     .help = "a fact that names its \"subject\" answers only questions that name it too, case and spaces aside"},
    {CMD_TUNE, "--infer-subjects", "K", ARG_INT(&V.tune.infer_subjects, 0, 1000000),
     .help = "facts without a \"subject\" get one from the file's own templates: where K or more questions read "
             "the same around one span of words (\"What is the capital of _?\"), the span is each one's subject, "
             "so the subject check and the relation check's subject centre apply to them; 0: off"},
    {CMD_TUNE, "--gate-questions", "N", ARG_INT(&V.tune.gate_questions, 0, 16),
     .help = "a relation gate: the tuner asks N other questions about each fact's \"subject\" and the memory "
             "learns to stay silent on such questions, at some cost in rewordings found (measured in "
             "docs/BENCHMARKS.md), 0..16; 0: no gate, try 4"},
    {CMD_TUNE, "--gate-margin", "X", ARG_FLOAT(&V.tune.gate_margin, 0, 100),
     .help = "the gate lets trained contexts through with at least X; 0.25: quieter on neighbours, fewer "
             "rewordings"},
    {CMD_TUNE, "--cached-facts", "N", ARG_INT(&V.tune.cached_facts, 0, INT_MAX),
     .help = "facts whose training contexts are held at once (about 1 MB each on SmolLM2; the others are "
             "prepared as earlier ones are verified), which bounds the tuner's memory; 0: all at once"},
    {CMD_TUNE, "--lr", "X", ARG_FLOAT(&V.tune.lr, 1e-7, 10), .help = "Adam learning rate",
     .def = "0.05, qwen2 models 0.15; LoRA 0.001, full 0.0001"},
    {CMD_TUNE, "--target-loss", "X", ARG_FLOAT(&V.tune.target_loss, 1e-6, 10),
     .help = "memorized below this mean answer loss, in nats"},
    {CMD_TUNE, "--batch", "B", ARG_INT(&V.tune.batch, 1, 4096), .help = "facts per step"},
    {CMD_TUNE, "--max-steps", "N", ARG_I64(&V.tune.max_steps, 1, LONG_MAX),
     .help = "stop after N steps; a checkpoint allows --resume", .def = "no limit"},
    {CMD_TUNE, "--max-minutes", "M", ARG_DOUBLE(&V.tune.max_minutes, 0.001, 1e6), .help = "stop after M minutes",
     .def = "no limit"},
    {CMD_TUNE, "--resume", NULL, ARG_FLAG(&V.tune.resume), .help = "continue from OUT.mome.ckpt"},
    {CMD_TUNE, "--checkpoint-s", "S", ARG_DOUBLE(&V.tune.checkpoint_s, 0, 1e6),
     .help = "seconds between checkpoints"},
    {CMD_TUNE, "--lora-rank", "R", ARG_INT(&V.tune.lora_rank, 1, 256), .help = "LoRA baseline rank"},
    {CMD_TUNE, "--lora-alpha", "A", ARG_FLOAT(&V.tune.lora_alpha, 1e-6, 1e6), .help = "LoRA scale alpha"},
    {CMD_TUNE, "--merged-out", "FILE", ARG_STR(&V.tune.model_out),
     .help = "LoRA: also write the base with the adapters merged (f32 GGUF)"},
    {CMD_TUNE, "--ppl-text", "FILE", ARG_STR(&V.tune.ppl_text),
     .help = "LoRA, full: perplexity of this text before and after (f32 stack)"},
    {CMD_TUNE, "--ppl-text-bytes", "N", ARG_I64(&V.tune.ppl_text_bytes, 1, LONG_MAX), .help = "only its first N bytes",
     .def = ""},
    {CMD_TUNE, "-s, --seed", "S", ARG_U64(&V.tune.seed, 0, LONG_MAX),
     .help = "seed: same seed and threads, same result"},

    /* eval */
    {CMD_EVAL, "--route-threshold", "X", ARG_FLOAT(&V.route_tau, -1, 1),
     .help = "override the memory's selection threshold (to measure the trade-off between rewordings found and "
             "neighbours left alone)"},
    {CMD_EVAL, "--route-margin", "M", ARG_FLOAT(&V.route_margin, 0, 2),
     .help = "cap the facts' margins over their rivals at M (0: no margin)"},
    {CMD_EVAL, "--route-margin-share", "X", ARG_FLOAT(&V.route_share, 0, 2),
     .help = "override the share of its contexts' lead a fact's margin is"},
    {CMD_EVAL, "--w-pool", "X", ARG_FLOAT(&V.route_w, 0, 1),
     .help = "override the pooled key's weight in the selection score"},
    {CMD_EVAL, "--cover", "X", ARG_FLOAT(&V.route_cover, -1, 1),
     .help = "override the wording check's threshold (memories tuned with --cover)"},
    {CMD_EVAL, "--verify", "X", ARG_FLOAT(&V.route_verify, -1, 1),
     .help = "override the relation check's threshold (memories tuned with --verify)"},
    {CMD_EVAL, "--verify-unnamed", "X", ARG_FLOAT(&V.route_verify_unnamed, -1, 1),
     .help = "override the check's threshold for facts that name no subject"},
    {CMD_EVAL, "--neighbors", "FILE", ARG_STR(&V.eval.neighbors_path),
     .help = "more neighbour questions: the questions of this fact file (answers ignored)"},
    {CMD_EVAL, "--system", "TEXT", ARG_LIST(&V.systems),
     .help = "one more system prompt for context_recall (repeatable)"},
    {CMD_EVAL, "--no-context", NULL, ARG_FLAG(&V.eval.no_context), .help = "skip context_recall"},
    {CMD_EVAL, "--no-variants", NULL, ARG_FLAG(&V.eval.no_variants), .help = "skip variant_recall"},
    {CMD_EVAL, "--outputs", "FILE", ARG_STR(&V.eval.outputs_path),
     .help = "write one JSON line per question asked: {\"fact\", \"line\", \"kind\" "
             "(recall|paraphrase|variant|context|neighbor), \"question\", \"system\", \"answer\", \"base\" (the "
             "answer without the memory; neighbours only, else null), \"exact\", \"route\" (with a memory: the "
             "memory's decision, {\"best\", \"score\", \"gate\", \"cover\", \"verify\", \"fact\"}; bench/route_tradeoff.py "
             "replays other thresholds on it)}"},
    {CMD_EVAL, "--text", "FILE", ARG_STR(&V.eval.text_path), .help = "held-out text for perplexity"},
    {CMD_EVAL, "--text-bytes", "N", ARG_I64(&V.eval.text_max_bytes, 1, LONG_MAX),
     .help = "only the first N bytes of the text", .def = ""},
    {CMD_EVAL, "--ppl-ctx", "N", ARG_INT(&V.eval.ppl_ctx, 2, 1 << 16), .help = "perplexity window"},
    {CMD_EVAL, "--max-facts", "N", ARG_I64(&V.eval.max_facts, 1, LONG_MAX), .help = "only the first N facts",
     .def = ""},
    {CMD_EVAL, "--max-new", "N", ARG_INT(&V.eval.max_new_tokens, 1, 4096),
     .help = "answer length limit in tokens; it was 64 before"},
    {CMD_EVAL, "--parallel", "N", ARG_INT(&V.eval.n_parallel, 1, 256),
     .help = "questions answered together in one batched forward pass; 1: one at a time, the figures are the "
             "same"},
    {CMD_EVAL, "-v, --verbose", NULL, ARG_FLAG(&V.verbose), .help = "print every trained question and its answer"},

    /* serve */
    {CMD_SERVE, "--memory", "FILE", ARG_LIST(&V.memories), .help = "serve this memory too (repeatable)"},
    {CMD_SERVE, "--host", "ADDR", ARG_STR(&V.srv.host),
     .help = "address to listen on; the default is this machine only"},
    {CMD_SERVE, "--port", "N", ARG_INT(&V.srv.port, 0, 65535), .help = "port; 0: any free port, printed"},
    {CMD_SERVE, "-np, --parallel", "N", ARG_INT(&V.srv.n_parallel, 1, 64),
     .help = "slots: requests decoded together in one batch"},
    {CMD_SERVE, "-c, --ctx", "N", ARG_INT(&V.srv.n_ctx, 64, 1 << 20),
     .help = "context per slot in tokens, prompt + answer"},
    {CMD_SERVE, "--queue", "N", ARG_INT(&V.srv.queue, 0, 100000),
     .help = "requests that may wait for a slot; more get 503"},
    {CMD_SERVE, "--timeout", "S", ARG_DOUBLE(&V.srv.timeout_s, 1, 86400),
     .help = "close a connection idle for S seconds: slow or half-sent requests"},
    {CMD_SERVE, "--max-body", "BYTES", ARG_SIZE(&V.srv.max_body, 1024, 1L << 30),
     .help = "request body limit, larger gets 413"},
    {CMD_SERVE, "--api-key-file", "FILE", ARG_STR(&V.key_file),
     .help = "require \"Authorization: Bearer KEY\" with the key in FILE (the environment variable MOME_API_KEY "
             "works too); / and /health stay open"},
    {CMD_SERVE, "--ready-file", "FILE", ARG_STR(&V.srv.ready_file),
     .help = "write the port there once listening (for scripts)"},
    {CMD_SERVE, "-v, --verbose", NULL, ARG_FLAG(&V.srv.verbose), .help = "one line per request on stderr"},

    /* the machine and the output */
    {CMD_COMPUTE, "-t, --threads", "N", ARG_INT(&V.threads, 1, 256), .help = "compute threads", .def = "all cores"},
    {CMD_BENCH | CMD_EVAL, "--json", NULL, ARG_FLAG(&V.json), .help = "one JSON object on stdout"},
};

/* Parses the arguments of command cmd (a CMD_* bit; argv[0] is its name)
 * into V. --help prints the usage text, then the options cmd takes with
 * their defaults as V holds them, and exits 0; an error dies. An argument
 * that is no option goes to *positional, or is an error without it. */
static void parse_args(unsigned cmd, int argc, char **argv, const char **positional, const char *usage) {
    const int n_opts = (int)(sizeof OPTS / sizeof OPTS[0]);
    arg_error e;
    const enum arg_result r = arg_parse(OPTS, n_opts, cmd, argc, argv, positional, &e);
    if (r == ARG_HELP) {
        printf("%s\n", usage);
        arg_help(stdout, OPTS, n_opts, cmd);
        exit(0);
    }
    if (r == ARG_ERROR) {
        char msg[512];
        arg_error_text(&e, msg, sizeof msg);
        if (e.kind == ARG_ERR_UNKNOWN || e.kind == ARG_ERR_MISSING)
            die("%s: %s (see mome %s --help)", argv[0], msg, argv[0]);
        die("%s: %s", argv[0], msg);
    }
}

/* ------------------------------------------------------------- helpers */

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

/* The model -m names (or the default one) with -t's threads. */
static mome_model *load_model(void) {
    const char *path = V.model;
    if (!path) {
        path = default_model;
        if (access(path, R_OK) != 0)
            die("no model given: pass -m MODEL.gguf (the default model %s is absent; `make model` fetches it)", path);
    }
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = V.threads;
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
    parse_args(CMD_INFO, argc, argv, &V.model,
               "usage: mome info MODEL.gguf\n\n"
               "Print the GGUF header, every metadata key/value and the tensor table\n"
               "(name, type, shape, bytes, offset). Validates the whole file first.\n");
    const char *path = V.model;
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
    parse_args(CMD_TOKENIZE, argc, argv, NULL,
               "usage: mome tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--no-parse-special] [--pieces]\n\n"
               "Print the token ids of TEXT as the model is fed them, space-separated:\n"
               "with BOS when the model's metadata asks for it (tokenizer.ggml.add_bos_token).\n"
               "Only the tokenizer is read, so vocabulary-only GGUF files work too.\n");
    char *text = NULL;
    if (V.file) text = read_file(V.file, NULL);
    else if (V.prompt) text = strdup(V.prompt);
    else die("tokenize: give the text with -p TEXT or -f FILE");
    const char *model = V.model ? V.model : default_model;
    /* the tokenizer alone: vocabulary-only files and any architecture work */
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 1;
    mp.vocab_only = 1;
    mome_model *m;
    if (mome_model_load(model, &mp, &m)) die("%s", mome_errmsg());
    int n;
    int32_t *ids = tokenize(m, text, !V.no_bos, !V.no_parse_special, &n);
    for (int i = 0; i < n; i++) {
        if (V.pieces) {
            char buf[512];
            int k = mome_token_to_piece(m, ids[i], buf, sizeof buf - 1, 1);
            if (k < 0 || k > (int)sizeof buf - 1) k = 0;
            buf[k] = 0;
            printf("%d\t%s\n", ids[i], buf);
        } else printf(i ? " %d" : "%d", ids[i]);
    }
    if (!V.pieces) printf("\n");
    free(ids);
    free(text);
    mome_model_free(m);
    return 0;
}

/* ------------------------------------------------------------- run/chat */

/* run's and chat's defaults: the sampler's, a seed from the clock. */
static void gen_defaults(int n_predict) {
    V.n_predict = n_predict;
    V.sp = mome_sampler_default_params();
    V.sp.seed = (uint64_t)(mome_time_s() * 1e6) ^ (uint64_t)getpid();
}

/* The system message: --system, else with --default-system the template's
 * default one (malloc'd into *owned), else none. */
static const char *chat_system(mome_model *m, char **owned) {
    *owned = NULL;
    if (V.system || !V.default_system) return V.system;
    *owned = mome_chat_default_system(m);
    if (!*owned) fprintf(stderr, "mome: the model's chat template has no default system message\n");
    return *owned;
}

/* Context, memory and sampler for run/chat, as the options say. */
typedef struct gen_session {
    mome_ctx *c;
    mome_memory *mem;
    mome_sampler *s;
} gen_session;

static gen_session session_open(mome_model *m) {
    gen_session g;
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = V.n_ctx;
    cp.n_threads = V.threads;
    if (mome_ctx_init(m, &cp, &g.c)) die_lib("context");
    g.mem = attach_memory(m, g.c, V.memory, V.memory_top_k);
    if (mome_sampler_init(&V.sp, mome_model_n_vocab(m), &g.s)) die_lib("sampler");
    return g;
}

static void session_close(gen_session *g) {
    mome_sampler_free(g->s);
    mome_ctx_free(g->c);
    mome_memory_free(g->mem);
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
    gen_defaults(256);
    parse_args(CMD_RUN, argc, argv, NULL,
               "usage: mome run [-m MODEL] [-p PROMPT | -f FILE] [--chat] [options]\n\n"
               "Generate a continuation of PROMPT and print only the generated text to stdout.\n"
               "With --chat the prompt is a user message wrapped in the model's chat template,\n"
               "and generation stops at the end of the assistant's turn.\n");
    char *text = V.file ? read_file(V.file, NULL) : strdup(V.prompt ? V.prompt : "");
    mome_model *m = load_model();
    char *system_owned;
    const char *system = chat_system(m, &system_owned);
    char *full = text;
    if (V.chat) {
        mome_chat_msg msgs[2];
        int nm = 0;
        if (system) msgs[nm++] = (mome_chat_msg){"system", system};
        msgs[nm++] = (mome_chat_msg){"user", text};
        full = mome_chat_format(m, msgs, nm, 1);
        if (!full) die_lib("chat template");
    }
    int n;
    int32_t *ids = tokenize(m, full, 1, V.chat, &n);
    if (n == 0) {
        int32_t bos = mome_token_bos(m);
        if (bos < 0) die("run: empty prompt and the model has no BOS token: give a prompt with -p");
        ids[0] = bos;
        n = 1;
    }
    gen_session g = session_open(m);
    mome_ctx *c = g.c;
    mome_sampler *s = g.s;
    double t0 = mome_time_s();
    if (mome_decode(c, ids, n, 0, 0)) die_lib("prompt");
    double t1 = mome_time_s();
    int32_t dpos, dfact;
    float dscore;
    if (V.verbose && mome_ctx_memory_decision(c, &dpos, &dfact, &dscore)) {
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
    int gen = generate(m, c, s, V.n_predict, V.ignore_eos, NULL, NULL);
    double t2 = mome_time_s();
    printf("\n");
    if (V.verbose)
        fprintf(stderr, "mome: prompt %d tokens in %.3f s (%.1f tok/s); generated %d tokens in %.3f s (%.1f tok/s); kernels %s\n",
                n, t1 - t0, n / (t1 - t0), gen, t2 - t1, gen > 0 ? gen / (t2 - t1) : 0.0, quant_kernel_name());
    session_close(&g);
    if (full != text) free(full);
    free(text);
    free(ids);
    free(system_owned);
    mome_model_free(m);
    return 0;
}

/* An interactive chat's conversation: the system message (kept by /reset)
 * and the turns so far, and the tokens the context holds. */
typedef struct chat_history {
    mome_chat_msg *msgs;
    int n, cap, keep;    /* keep: the system message, if any */
    int32_t *cached;     /* the tokens in the context's cache */
    int n_cached;
} chat_history;

static void history_add(chat_history *h, const char *role, char *content) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->msgs = realloc(h->msgs, (size_t)h->cap * sizeof *h->msgs);
        if (!h->msgs) die("out of memory");
    }
    if (!content) die("out of memory");
    h->msgs[h->n++] = (mome_chat_msg){role, content};
}

/* Back to the system message alone, nothing cached. */
static void history_reset(chat_history *h) {
    for (int i = h->keep; i < h->n; i++) free((char *)h->msgs[i].content);
    h->n = h->keep;
    h->n_cached = 0;
}

/* The text of n tokens (malloc'd). */
static char *detokenize(mome_model *m, const int32_t *ids, int n) {
    size_t len = 0, cap = 256;
    char *t = malloc(cap);
    if (!t) die("out of memory");
    for (int i = 0; i < n; i++) {
        char buf[256];
        const int k = mome_token_to_piece(m, ids[i], buf, sizeof buf, 0);
        if (k < 0 || k > (int)sizeof buf) continue;
        if (len + (size_t)k + 1 > cap) {
            cap = 2 * (len + (size_t)k + 1);
            if (!(t = realloc(t, cap))) die("out of memory");
        }
        memcpy(t + len, buf, (size_t)k);
        len += (size_t)k;
    }
    t[len] = 0;
    return t;
}

/* One turn: the user's line added, the conversation rendered and only what
 * the cache lacks decoded, the answer generated (printed as it comes) and
 * added as the assistant's message. A failed decode clears the history. */
static void chat_turn(mome_model *m, gen_session *g, chat_history *h, const char *line) {
    history_add(h, "user", strdup(line));
    char *full = mome_chat_format(m, h->msgs, h->n, 1);
    if (!full) die_lib("chat template");
    int n;
    int32_t *ids = tokenize(m, full, 1, 1, &n);
    free(full);
    int common = 0; /* the cached prefix is reused */
    while (common < n && common < h->n_cached && ids[common] == h->cached[common]) common++;
    if (common == n) common = n - 1;
    if (mome_decode(g->c, ids + common, n - common, common, 0)) {
        fprintf(stderr, "mome: %s; clearing the history\n", mome_errmsg());
        free(ids);
        history_reset(h);
        return;
    }
    int32_t *gen;
    int ng;
    generate(m, g->c, g->s, V.n_predict, 0, &gen, &ng);
    printf("\n");
    fflush(stdout);
    history_add(h, "assistant", detokenize(m, gen, ng));
    free(h->cached);
    if (!(h->cached = malloc((size_t)(n + ng) * sizeof *h->cached))) die("out of memory");
    memcpy(h->cached, ids, (size_t)n * sizeof *ids);
    memcpy(h->cached + n, gen, (size_t)ng * sizeof *gen);
    h->n_cached = n + ng;
    free(gen);
    free(ids);
}

static int cmd_chat(int argc, char **argv) {
    gen_defaults(-1);
    parse_args(CMD_CHAT, argc, argv, NULL,
               "usage: mome chat [-m MODEL] [options]\n\n"
               "Interactive chat with the model's chat template. Type a message and press\n"
               "Enter; an empty line or end of input (Ctrl-D) quits; /reset clears the history.\n"
               "The KV cache is reused across turns, so only new text is processed.\n");
    mome_model *m = load_model();
    char *system_owned;
    const char *system = chat_system(m, &system_owned);
    gen_session g = session_open(m);
    chat_history h = {0};
    if (system) history_add(&h, "system", strdup(system));
    h.keep = h.n;
    const int tty = isatty(0);
    char line[65536];
    if (tty) fprintf(stderr, "mome chat: ready. An empty line or Ctrl-D quits, /reset clears the history.\n");
    for (;;) {
        if (tty) {
            fprintf(stderr, "> ");
            fflush(stderr);
        }
        if (!fgets(line, sizeof line, stdin)) break;
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (len == 0) break;
        if (strcmp(line, "/reset") == 0) history_reset(&h);
        else chat_turn(m, &g, &h, line);
    }
    for (int i = 0; i < h.n; i++) free((char *)h.msgs[i].content);
    free(h.msgs);
    free(h.cached);
    session_close(&g);
    free(system_owned);
    mome_model_free(m);
    return 0;
}


/* ----------------------------------------------------------------- bench */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv) {
    V.pp = 128;
    V.tg = 128;
    V.reps = 5;
    parse_args(CMD_BENCH, argc, argv, NULL,
               "usage: mome bench [-m MODEL] [-p N] [-n N] [-t THREADS] [-r REPS] [--json]\n\n"
               "Measure prompt processing (one batch of N tokens from an empty cache) and\n"
               "generation (N tokens one at a time from an empty cache), like llama-bench's\n"
               "pp and tg tests, after one warm-up run. Prints tokens/s per repetition and the median.\n");
    const int pp = V.pp, tg = V.tg, reps = V.reps;
    mome_model *m = load_model();
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = (pp > tg ? pp : tg) + 16;
    cp.n_batch = pp > 0 ? pp : 1;
    cp.n_threads = V.threads;
    mome_ctx *c;
    if (mome_ctx_init(m, &cp, &c)) die_lib("context");
    mome_memory *mem = attach_memory(m, c, V.memory, V.memory_top_k);
    const int n_vocab = mome_model_n_vocab(m);
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)(pp > 0 ? pp : 1));
    uint64_t st = 12345;
    for (int i = 0; i < pp; i++) {
        st = st * 6364136223846793005ULL + 1442695040888963407ULL;
        toks[i] = (int32_t)((st >> 33) % (uint64_t)n_vocab);
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
    int nth = V.threads > 0 ? V.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (V.json) {
        printf("{\"model\": \"%s\", \"threads\": %d, \"pp_tokens\": %d, \"tg_tokens\": %d, \"pp_tps\": [",
               V.model ? V.model : default_model, nth, pp, tg);
        for (int r = 0; r < reps && pp > 0; r++) printf(r ? ", %.3f" : "%.3f", pps[r]);
        printf("], \"tg_tps\": [");
        for (int r = 0; r < reps && tg > 0; r++) printf(r ? ", %.3f" : "%.3f", tgs[r]);
        printf("], \"kernels\": \"%s\"}\n", quant_kernel_name());
    } else {
        qsort(pps, (size_t)reps, sizeof(double), cmp_double);
        qsort(tgs, (size_t)reps, sizeof(double), cmp_double);
        printf("model: %s\nthreads: %d, kernels: %s, repetitions: %d\n", V.model ? V.model : default_model, nth,
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

static int cmd_tune(int argc, char **argv) {
    V.tune = mome_tune_default_params();
    V.on_conflict = V.tune.on_conflict;
    parse_args(CMD_TUNE, argc, argv, NULL,
               "usage: mome tune -m MODEL --facts FILE -o OUT.mome [options]\n\n"
               "Memory-tune a frozen model: attach a mixture of memory experts and train only the\n"
               "experts each fact selects until greedy decoding states every fact exactly.\n"
               "FILE: JSONL {\"question\", \"answer\" (or a list; the first is trained)}, chat JSONL\n"
               "{\"messages\": [...]}, or CSV with a question,answer header.\n"
               "Exit status: 0 all facts memorized, 1 error, 3 stopped with facts not memorized.\n");
    mome_tune_params p = V.tune;
    p.facts_path = V.facts;
    p.on_conflict = V.on_conflict;
    p.n_threads = V.threads;
    if (!p.facts_path) die("tune: give the facts with --facts FILE");
    if (!p.out_path) die("tune: give the output file with -o OUT.mome");
    if (p.model_out && p.method != MOME_TUNE_LORA) die("tune: --merged-out is for --method lora");
    mome_model *m = load_model();
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
    if (p.method == MOME_TUNE_MOME && rep.n_inferred > 0)
        fprintf(stderr, "tune: %d fact(s) keep a subject, %d of them inferred from the file's templates (--infer-subjects)\n",
                rep.n_subjects, rep.n_inferred);
    /* subject-less facts without any check: the case where a memory changes unrelated questions most
     * (docs/BENCHMARKS.md: 1,000 NQ questions beside 1,000 languages left 29-40% of zsRE's `loc` alone) */
    if (p.method == MOME_TUNE_MOME && !p.init_memory && p.verify_key == MOME_VERIFY_NONE && isnan(p.cover) &&
        rep.n_subjects < rep.n_facts)
        fprintf(stderr, "tune: %d fact(s) name no subject, so only the key score decides which questions they answer and "
                        "unrelated questions in their style can take their answers; the relation check (the default, "
                        "which --verify-key none turned off; README) holds them to what they ask\n",
                rep.n_facts - rep.n_subjects);
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

/* eval's usage: what each measure is. */
static const char EVAL_USAGE[] =
    "usage: mome eval -m MODEL [--memory MEM] --facts FILE [--text HELDOUT.txt] [--json]\n\n"
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
    "A measure not taken is reported as -1 in --json.\n";

static int cmd_eval(int argc, char **argv) {
    V.eval = mome_eval_default_params();
    V.on_conflict = V.eval.on_conflict;
    V.route_tau = V.route_w = V.route_cover = V.route_verify = V.route_verify_unnamed = V.route_margin = V.route_share = NAN;
    parse_args(CMD_EVAL, argc, argv, NULL, EVAL_USAGE);
    for (int i = 0; i < V.systems.n; i++)
        if (!*V.systems.v[i]) die("eval: --system expects a non-empty system prompt");
    mome_eval_params p = V.eval;
    p.facts_path = V.facts;
    p.on_conflict = V.on_conflict;
    p.n_threads = V.threads;
    p.systems = V.systems.v;
    p.n_systems = V.systems.n;
    const char *model = V.model, *memory = V.memory;
    eval_cb cb = {V.verbose, isatty(2), 0};
    if (!p.facts_path && !p.text_path) die("eval: give --facts FILE and/or --text FILE");
    if (p.neighbors_path && !memory)
        fprintf(stderr, "eval: --neighbors is used only with --memory (locality compares answers with and without it)\n");
    mome_model *m = load_model();
    mome_memory *mem = NULL;
    if (memory && mome_memory_load(memory, m, &mem)) die("%s", mome_errmsg());
    if (mem) mome_memory_set_routing(mem, V.route_tau, V.route_w); /* NAN: unchanged */
    if (mem) mome_memory_set_cover(mem, V.route_cover);
    if (mem) mome_memory_set_verify(mem, V.route_verify);
    if (mem) mome_memory_set_verify_unnamed(mem, V.route_verify_unnamed);
    if (mem) mome_memory_set_margin(mem, V.route_margin);
    if (mem) mome_memory_set_margin_share(mem, V.route_share);
    if (mem && V.memory_top_k > 0) mome_memory_set_mix(mem, V.memory_top_k, NAN, NAN);
    p.on_fact = eval_on_fact;
    p.on_progress = eval_on_progress;
    p.user = &cb;
    mome_eval_result r;
    if (mome_eval(m, mem, &p, &r)) die("%s", mome_errmsg());
    if (V.json) {
        printf("{\"model\": \"%s\", \"memory\": %s%s%s", model ? model : default_model, memory ? "\"" : "",
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
        printf("model: %s%s%s\n", model ? model : default_model, memory ? "  memory: " : "", memory ? memory : "");
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
    free(V.systems.v);
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
    V.srv = srv_default_params();
    parse_args(CMD_SERVE, argc, argv, NULL,
               "usage: mome serve -m MODEL [--memory FILE ...] [--host ADDR] [--port N] [--parallel N]\n"
               "                  [--ctx N] [--queue N] [--timeout S] [--threads N] [--api-key-file FILE]\n\n"
               "An OpenAI-compatible HTTP server: GET /v1/models, POST /v1/completions, POST /v1/chat/completions\n"
               "(\"stream\": true for server-sent events), GET /health, GET /metrics (Prometheus), and a chat page\n"
               "at /. The base model's id is its file name; each memory's id is its file name without .mome, and\n"
               "a request picks one with \"model\". SIGTERM or Ctrl-C finishes the requests in flight, then exits.\n");
    srv_params p = V.srv;
    const char *model = V.model, *key_file = V.key_file;
    if (!model) {
        model = default_model;
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
    p.memory_paths = V.memories.v;
    p.n_memories = V.memories.n;
    p.n_threads = V.threads;
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
    free(V.memories.v);
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

/* libgomp's waits: passive after 10,000 spins, unless the user chose
 * (OMP_WAIT_POLICY). 1 if the environment changed (the caller re-executes:
 * libgomp reads it when it starts). */
static int passive_omp_waits(void) {
    if (getenv("OMP_WAIT_POLICY")) return 0;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return 0;
    if (!getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "10000", 1);
    return 1;
}

int main(int argc, char **argv) {
    const char *models = getenv("MOME_MODELS");
    snprintf(default_model, sizeof default_model, "%s/SmolLM2-135M-Instruct.Q4_1.gguf",
             models && *models ? models : "models");
    snprintf(default_share, sizeof default_share, "%g", (double)MOME_DEFAULT_MARGIN_SHARE);
    snprintf(default_unnamed, sizeof default_unnamed, "%g", (double)MOME_DEFAULT_VERIFY_UNNAMED);
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
         * on a CPU it does not know, restart once with the right ones (blas.c).
         * Its steps alternate OpenBLAS calls and OpenMP regions on the same
         * cores, and libgomp's idle threads spinning after a region take the
         * core OpenBLAS's own thread needs: waits turn passive after 10,000
         * spins (passive_omp_waits), as for serve. Measured on 100 zsRE facts
         * (--verify -1 -t 2, the same memory byte for byte): 57-64 s against
         * 63-67 s. Both are read when the libraries start, hence the re-exec. */
        const char *core = blas_better_core();
        int again = core && setenv("OPENBLAS_CORETYPE", core, 1) == 0;
        again |= passive_omp_waits();
        if (again) execv("/proc/self/exe", argv);
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
         * used while idle). */
        if (passive_omp_waits()) execv("/proc/self/exe", argv);
        return cmd_serve(argc - 1, argv + 1);
    }
    fprintf(stderr, "mome: error: unknown command '%s' (commands: info tokenize run chat bench tune eval serve experiment; see mome --help)\n", cmd);
    return 1;
}
