/* editing_tfacc.c - the knowledge-editing papers' teacher-forced token
 * accuracy under mome, for bench/bench_editing.sh (issue 8's peer table).
 *
 *   build/editing_tfacc MODEL.gguf [MEMORY.mome] < IN.jsonl > OUT.jsonl
 *
 * IN: one {"question": Q, "target": T} per line. Q is wrapped in the chat
 * template with an assistant turn opened and tokenized as answer.c does for
 * a greedy answer (BOS as the model asks, special tokens parsed); T is
 * tokenized as the tuner trains an answer (no BOS, no specials) and appended.
 * Prompt and target are decoded in one pass with every position's logits (a
 * memory then routes as while the answer is generated token by token, see
 * probe.h), once with the memory attached and once without, each from an
 * empty cache.
 *
 * OUT: one {"target": [ids], "mem": [ids], "base": [ids]} per input line:
 * the target's token ids and the argmax (ans_argmax: the first largest logit)
 * at each target position, i.e. the token predicted given the true prefix.
 * EasyEdit's rewrite/rephrase accuracy is mean(mem == target); its locality
 * is mean(mem == base) on a neighbour question with its own answer as the
 * target. Without MEMORY, "mem" equals "base". The scoring is done by
 * bench/editing_peers.py, which scores the peers the same way.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "mome.h"

enum { N_CTX = 1024 };

/* Decodes ids[0..n) on c from position 0 and writes the argmax at each of
 * the T positions that predict ids[n-T..n) into out. */
static int argmax_at(mome_ctx *c, const int32_t *ids, int n, int T, int V, int32_t *out) {
    int rc = mome_decode(c, ids, n, 0, 1);
    if (rc != MOME_OK) return rc;
    for (int i = 0; i < T; i++) out[i] = ans_argmax(mome_get_logits(c, n - T - 1 + i), V);
    return MOME_OK;
}

static void print_ids(const char *key, const int32_t *v, int n) {
    printf("\"%s\": [", key);
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", (int)v[i]);
    printf("]");
}

/* One input line; returns 0, or 1 after printing why it failed (to stderr,
 * and a null output line, so output line i stays input line i). */
static int one(mome_model *m, mome_ctx *cm, mome_ctx *cb, const char *line, int lineno) {
    cJSON *o = cJSON_Parse(line);
    const cJSON *q = o ? cJSON_GetObjectItemCaseSensitive(o, "question") : NULL;
    const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "target") : NULL;
    if (!cJSON_IsString(q) || !cJSON_IsString(t) || !*t->valuestring) {
        fprintf(stderr, "line %d: want {\"question\": string, \"target\": non-empty string}\n", lineno);
        printf("null\n");
        cJSON_Delete(o);
        return 1;
    }
    mome_chat_msg msg = {"user", q->valuestring};
    char *prompt = mome_chat_format(m, &msg, 1, 1);
    int32_t *p = NULL, *a = NULL, *ids = NULL, *om = NULL, *ob = NULL;
    int rc = 1;
    const int P = prompt ? mome_tokenize_alloc(m, prompt, 1, 1, &p) : -1;
    const int T = mome_tokenize_alloc(m, t->valuestring, 0, 0, &a);
    if (P < 1 || T < 1 || P + T > N_CTX) {
        fprintf(stderr, "line %d: %s\n", lineno, P + T > N_CTX ? "too long" : "cannot tokenize");
        goto done;
    }
    ids = malloc((size_t)(P + T) * sizeof *ids);
    om = malloc((size_t)T * sizeof *om);
    ob = malloc((size_t)T * sizeof *ob);
    if (!ids || !om || !ob) { fprintf(stderr, "out of memory\n"); goto done; }
    memcpy(ids, p, (size_t)P * sizeof *ids);
    memcpy(ids + P, a, (size_t)T * sizeof *ids);
    const int V = mome_model_n_vocab(m);
    if ((cm && argmax_at(cm, ids, P + T, T, V, om)) || argmax_at(cb, ids, P + T, T, V, ob)) {
        fprintf(stderr, "line %d: decode: %s\n", lineno, mome_errmsg());
        goto done;
    }
    printf("{");
    print_ids("target", a, T);
    printf(", ");
    print_ids("mem", cm ? om : ob, T);
    printf(", ");
    print_ids("base", ob, T);
    printf("}\n");
    rc = 0;
done:
    if (rc) printf("null\n");
    free(prompt);
    free(p);
    free(a);
    free(ids);
    free(om);
    free(ob);
    cJSON_Delete(o);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL.gguf [MEMORY.mome] < IN.jsonl > OUT.jsonl\n", argv[0]);
        return 2;
    }
    const char *th = getenv("THREADS");
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = th ? atoi(th) : 1;
    mome_model *m = NULL;
    mome_memory *mem = NULL;
    mome_ctx *cm = NULL, *cb = NULL;
    if (mome_model_load(argv[1], &mp, &m)) {
        fprintf(stderr, "%s: %s\n", argv[1], mome_errmsg());
        return 1;
    }
    int rc = 1;
    if (argc == 3 && mome_memory_load(argv[2], m, &mem)) {
        fprintf(stderr, "%s: %s\n", argv[2], mome_errmsg());
        goto out;
    }
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = cp.n_batch = N_CTX;
    cp.n_threads = mp.n_threads;
    if (mome_ctx_init(m, &cp, &cb) || (mem && (mome_ctx_init(m, &cp, &cm) || mome_ctx_set_memory(cm, mem)))) {
        fprintf(stderr, "context: %s\n", mome_errmsg());
        goto out;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, bad = 0;
    while (getline(&line, &cap, stdin) > 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        bad += one(m, cm, cb, line, lineno);
    }
    free(line);
    rc = bad ? 1 : 0;
out:
    mome_ctx_free(cm);
    mome_ctx_free(cb);
    mome_memory_free(mem);
    mome_model_free(m);
    return rc;
}
