/* test_eval.c - the greedy answer (answer.c) and the evaluation measures
 * (eval.c): question variants, the prompt-prefix cache giving the same
 * answers as decoding from scratch, the counts behind each measure, the
 * outputs file, options that skip measures, and errors.
 *
 * The model is a tiny random llama written by tinymodel.h (no download
 * needed): its answers are noise, but every count and file line is
 * determined by the facts, which is what is checked here. Locality with a
 * real memory is checked end to end in tests/cli/test_eval.sh.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "answer.h"
#include "eval.h"
#include "model.h"
#include "mome.h"
#include "test.h"
#include "tinymodel.h"
#include "util.h"

static char g_tmp[256];
static const char *tmp_path(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_tmp, name);
    return buf[k];
}
static int write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(s);
    size_t w = fwrite(s, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

static mome_model *g_model;

static mome_model *tiny(void) {
    if (g_model) return g_model;
    tinymodel_params p = tinymodel_default_params();
    p.n_ctx = 2048;
    p.seed = 7;
    const char *path = tmp_path("tiny.gguf");
    if (tinymodel_write(path, &p) != MOME_OK) {
        fprintf(stderr, "  tinymodel: %s\n", mome_errmsg());
        return NULL;
    }
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = 2;
    if (mome_model_load(path, &mp, &g_model)) fprintf(stderr, "  load: %s\n", mome_errmsg());
    return g_model;
}

/* ------------------------------------------------------------ variants */

static int variants_are(const char *q, int n, const char *const *want, const char *const *kinds) {
    char *v[EVAL_N_VARIANTS];
    const char *k[EVAL_N_VARIANTS];
    int got = eval_variants(q, v, k);
    int ok = got == n;
    for (int i = 0; ok && i < n; i++)
        if (strcmp(v[i], want[i]) != 0 || strcmp(k[i], kinds[i]) != 0) {
            fprintf(stderr, "    '%s': variant %d is %s '%s', want %s '%s'\n", q, i, k[i], v[i], kinds[i], want[i]);
            ok = 0;
        }
    if (got != n) fprintf(stderr, "    '%s': %d variants, want %d\n", q, got, n);
    for (int i = 0; i < got; i++) free(v[i]);
    return ok;
}

static void test_variants(void) {
    {
        const char *w[] = {"what is the capital of france?", "What  is  the  capital  of  France? ",
                           "What is the capital of France"};
        const char *k[] = {"lower", "spaces", "no_punct"};
        CHECK(variants_are("What is the capital of France?", 3, w, k), "three variants");
    }
    {   /* already lower case: that variant is left out; '.' and '!' are final punctuation too */
        const char *w[] = {"name  the  author  of  hamlet. ", "name the author of hamlet"};
        const char *k[] = {"spaces", "no_punct"};
        CHECK(variants_are("name the author of hamlet.", 2, w, k), "lower case question");
        const char *w2[] = {"tell  me! ", "tell me"};
        CHECK(variants_are("tell me!", 2, w2, k), "exclamation");
    }
    {   /* no final punctuation, no spaces: only the trailing space differs */
        const char *w[] = {"x "};
        const char *k[] = {"spaces"};
        CHECK(variants_are("x", 1, w, k), "one word");
        const char *w2[] = {"? "};
        CHECK(variants_are("?", 1, w2, k), "a lone '?' is not stripped to nothing");
    }
    {   /* only ASCII letters are lowered; a single final mark is removed; runs of spaces doubled */
        const char *w[] = {"où est paris ?", "Où  est  Paris  ? ", "Où est Paris "};
        const char *k[] = {"lower", "spaces", "no_punct"};
        CHECK(variants_are("Où est Paris ?", 3, w, k), "UTF-8");
        const char *w2[] = {"why??", "Why?? ", "Why?"};
        CHECK(variants_are("Why??", 3, w2, k), "one mark removed");
    }
    char *v[EVAL_N_VARIANTS];
    const char *k[EVAL_N_VARIANTS];
    CHECK(eval_variants(NULL, v, k) == 0, "NULL");
    CHECK(eval_n_builtin_systems >= 3, "at least three built-in system prompts");
    for (int i = 0; i < eval_n_builtin_systems; i++)
        for (int j = i + 1; j < eval_n_builtin_systems; j++)
            CHECK(strcmp(eval_builtin_systems[i], eval_builtin_systems[j]) != 0, "system prompts %d, %d differ", i, j);
}

/* ------------------------------------------------------------ ans_greedy */

static void test_greedy(void) {
    float lg[5] = {1, 3, 3, -1, 2};
    CHECK(ans_argmax(lg, 5) == 1, "first of the largest");
    CHECK(ans_argmax(lg, 1) == 0, "V = 1");
    mome_model *m = tiny();
    REQUIRE(m, "no tiny model");
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = 1024;
    cp.n_threads = 2;
    mome_ctx *c1 = NULL, *c2 = NULL;
    REQUIRE(mome_ctx_init(m, &cp, &c1) == MOME_OK && mome_ctx_init(m, &cp, &c2) == MOME_OK, "%s", mome_errmsg());
    static const char *const sys[] = {"You are a helpful assistant.", "You are a helpful assistant.", NULL,
                                      "Be brief.", "Be brief."};
    static const char *const qs[] = {"What is 2+2?", "Who wrote Hamlet?", "Hi", "Capital of Peru?", "Capital of Peru?"};
    int same = 1, reused = 0;
    for (int i = 0; i < 5; i++) {
        mome_chat_msg msgs[2];
        int n = 0;
        if (sys[i]) msgs[n++] = (mome_chat_msg){"system", sys[i]};
        msgs[n++] = (mome_chat_msg){"user", qs[i]};
        char *t1 = NULL, *t2 = NULL;
        int32_t *id1 = NULL, *id2 = NULL;
        int n1 = -1, n2 = -1;
        /* c1 keeps its K/V from question to question; c2 starts empty each time */
        int32_t *pids = NULL;
        char *pt = mome_chat_format(m, msgs, n, 1);
        int np = pt ? mome_tokenize_alloc(m, pt, 1, 1, &pids) : -1;
        int had = np > 0 ? mome_ctx_shared_prefix(c1, pids, np) : 0;
        free(pt);
        free(pids);
        mome_ctx_free(c2);
        c2 = NULL;
        REQUIRE(mome_ctx_init(m, &cp, &c2) == MOME_OK, "%s", mome_errmsg());
        int rc1 = ans_greedy(m, c1, msgs, n, 12, &t1, &id1, &n1, NULL);
        int rc2 = ans_greedy(m, c2, msgs, n, 12, &t2, &id2, &n2, NULL);
        CHECK(rc1 == MOME_OK && rc2 == MOME_OK, "%d %d: %s", rc1, rc2, mome_errmsg());
        if (rc1 || rc2) { free(t1); free(t2); free(id1); free(id2); break; }
        reused += had > 0;
        CHECK(n1 >= 0 && n1 <= 12 && (n1 == 0) == (id1 == NULL), "n_ids %d", n1);
        if (strcmp(t1, t2) != 0 || n1 != n2 || (n1 && memcmp(id1, id2, (size_t)n1 * sizeof *id1) != 0)) same = 0;
        /* the text is the concatenation of the ids' pieces */
        char buf[4096];
        size_t o = 0;
        for (int j = 0; j < n1; j++) {
            int k = mome_token_to_piece(m, id1[j], buf + o, (int)(sizeof buf - o - 1), 0);
            if (k > 0) o += (size_t)k;
        }
        buf[o] = 0;
        CHECK(strcmp(buf, t1) == 0, "text '%s' vs pieces '%s'", t1, buf);
        free(t1); free(t2); free(id1); free(id2);
    }
    CHECK(same, "the prefix cache changes an answer");
    /* the tiny model's F32 4-token tiles give a row other bits beside other
     * rows, so its head is never reused (mome_ctx_shared_prefix); SmolLM2's
     * reuse is checked by tests/cli/test_eval.sh (--parallel 1 vs 16) */
    CHECK(reused == (m->chunk_invariant ? 4 : 0), "cache used %d times (chunk-invariant %d)", reused, m->chunk_invariant);
    /* text only */
    mome_chat_msg one = {"user", "Hello"};
    char *t = NULL;
    CHECK(ans_greedy(m, c1, &one, 1, 3, &t, NULL, NULL, NULL) == MOME_OK && t, "%s", mome_errmsg());
    free(t);
    /* errors: too long for the context, bad arguments */
    char *big = malloc(5000);
    REQUIRE(big, "oom");
    memset(big, 'a', 4999);
    big[4999] = 0;
    mome_chat_msg longm = {"user", big};
    t = (char *)1;
    const int32_t past = mome_ctx_n_past(c1);
    CHECK(ans_greedy(m, c1, &longm, 1, 4, &t, NULL, NULL, NULL) == MOME_ERR_ARG && t == NULL &&
              strstr(mome_errmsg(), "too long"), "%s", mome_errmsg());
    CHECK(past > 0 && mome_ctx_n_past(c1) == past, "refused before decoding: the context's cache is untouched");
    free(big);
    CHECK(ans_greedy(m, c1, NULL, 0, 4, &t, NULL, NULL, NULL) == MOME_ERR_ARG, "no messages");
    mome_ctx_free(c1);
    mome_ctx_free(c2);
}

/* ------------------------------------------------------------ mome_eval */

static const char *FACTS =
    "{\"question\": \"What is the capital of France?\", \"answer\": \"Paris\", \"paraphrases\": [\"France's capital?\"], "
    "\"neighbors\": [\"What is 2+2?\"]}\n"
    "{\"question\": \"who wrote hamlet\", \"answer\": \"Shakespeare\", \"system\": \"Be brief.\"}\n"
    "{\"question\": \"Not evaluated (max_facts is 2)?\", \"answer\": \"x\"}\n";

/* Reads the outputs file: number of lines, all valid JSON objects with the
 * expected keys; counts per kind into k[5] (recall paraphrase variant context neighbor). */
static int read_outputs(const char *path, int k[5], int *neighbors_ok) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    char line[65536];
    int n = 0;
    static const char *const kinds[5] = {"recall", "paraphrase", "variant", "context", "neighbor"};
    for (int i = 0; i < 5; i++) k[i] = 0;
    *neighbors_ok = 1;
    while (fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        if (!o) { n = -1000; break; }
        const cJSON *kind = cJSON_GetObjectItem(o, "kind"), *q = cJSON_GetObjectItem(o, "question"),
                    *a = cJSON_GetObjectItem(o, "answer"), *b = cJSON_GetObjectItem(o, "base"),
                    *ex = cJSON_GetObjectItem(o, "exact"), *fa = cJSON_GetObjectItem(o, "fact"),
                    *sy = cJSON_GetObjectItem(o, "system");
        if (!cJSON_IsString(kind) || !cJSON_IsString(q) || !cJSON_IsString(a) || !cJSON_IsBool(ex) || !fa || !sy || !b)
            n = -1000;
        else {
            for (int i = 0; i < 5; i++)
                if (strcmp(kind->valuestring, kinds[i]) == 0) k[i]++;
            if (strcmp(kind->valuestring, "neighbor") == 0) {
                if (!cJSON_IsString(b) || cJSON_IsTrue(ex) != (strcmp(a->valuestring, b->valuestring) == 0))
                    *neighbors_ok = 0;
            } else if (!cJSON_IsNull(b)) {
                n = -1000;
            }
        }
        cJSON_Delete(o);
        n++;
    }
    fclose(f);
    return n;
}

static int in01(double x) { return x >= 0 && x <= 1; }

static void test_eval_measures(void) {
    mome_model *m = tiny();
    REQUIRE(m, "no tiny model");
    const char *facts = tmp_path("f.jsonl");
    REQUIRE(write_text(facts, FACTS) == 0, "write");
    const char *outp = tmp_path("out.jsonl");
    mome_eval_params p = mome_eval_default_params();
    CHECK(p.max_new_tokens == 24, "default answer length %d", p.max_new_tokens);
    p.facts_path = facts;
    p.max_facts = 2;
    p.max_new_tokens = 4;
    p.n_threads = 2;
    p.outputs_path = outp;
    static const char *const extra[] = {"You answer in French."};
    p.systems = extra;
    p.n_systems = 1;
    p.neighbors_path = "/nonexistent/neighbors.jsonl"; /* not read without a memory */
    mome_eval_result r;
    int rc = mome_eval(m, NULL, &p, &r);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    CHECK(r.n_facts == 2, "facts %d", r.n_facts);
    CHECK(r.n_paraphrases == 1, "paraphrases %d", r.n_paraphrases);
    /* France: 3 variants; "who wrote hamlet": lower is the same, no final mark -> spaces only */
    CHECK(r.n_variants == 4, "variants %d", r.n_variants);
    const int contexts = eval_n_builtin_systems + 1 + 1; /* built-in + --system + the exchange */
    CHECK(r.n_context == 2 * contexts, "contexts %d, want %d", r.n_context, 2 * contexts);
    CHECK(r.n_neighbors == 0 && r.locality == -1, "no memory: locality not measured (%d, %g)", r.n_neighbors,
          r.locality);
    CHECK(in01(r.recall) && in01(r.contains_recall) && in01(r.hallucination_rate) && in01(r.context_recall) &&
              in01(r.variant_recall) && in01(r.paraphrase_recall),
          "measures in [0,1]: %g %g %g %g %g %g", r.recall, r.contains_recall, r.hallucination_rate, r.context_recall,
          r.variant_recall, r.paraphrase_recall);
    CHECK(r.n_context_exact <= r.n_context && r.n_variant_exact <= r.n_variants, "exact counts");
    int k[5], nok;
    int lines = read_outputs(outp, k, &nok);
    CHECK(lines == r.n_facts + r.n_paraphrases + r.n_variants + r.n_context, "outputs: %d lines", lines);
    CHECK(k[0] == 2 && k[1] == 1 && k[2] == 4 && k[3] == 2 * contexts && k[4] == 0, "kinds %d %d %d %d %d", k[0], k[1],
          k[2], k[3], k[4]);

    /* the same answers again, bit for bit (fresh contexts, same prompts) */
    char *first = NULL;
    {
        FILE *f = fopen(outp, "rb");
        if (f) {
            first = calloc(1, 1 << 20);
            if (first && fread(first, 1, (1 << 20) - 1, f) == 0) first[0] = 0;
            fclose(f);
        }
    }
    /* skipping measures */
    p.no_context = 1;
    p.no_variants = 1;
    p.n_systems = 0;
    rc = mome_eval(m, NULL, &p, &r);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    CHECK(r.n_context == 0 && r.context_recall == -1 && r.n_variants == 0 && r.variant_recall == -1,
          "skipped: %d %g %d %g", r.n_context, r.context_recall, r.n_variants, r.variant_recall);
    CHECK(in01(r.recall) && in01(r.paraphrase_recall), "still measured");
    lines = read_outputs(outp, k, &nok);
    CHECK(lines == 3 && k[0] == 2 && k[1] == 1, "outputs rewritten: %d lines", lines);
    /* recall and paraphrase lines are the same as in the full run */
    if (first) {
        FILE *f = fopen(outp, "rb");
        char line[65536];
        int found = 0;
        while (f && fgets(line, sizeof line, f)) found += strstr(first, line) != NULL;
        if (f) fclose(f);
        CHECK(found == 3, "%d of 3 lines identical to the full run's", found);
        free(first);
    }

    /* errors: one message naming the file */
    p.outputs_path = tmp_path("no/such/dir/out.jsonl");
    rc = mome_eval(m, NULL, &p, &r);
    CHECK(rc == MOME_ERR_IO && strstr(mome_errmsg(), "no/such/dir/out.jsonl") && strstr(mome_errmsg(), "cannot write"),
          "rc %d: %s", rc, mome_errmsg());
    p.outputs_path = NULL;
    const char *bad = tmp_path("bad.json");
    REQUIRE(write_text(bad, "[\n{\"src\": \"q\", \"alt\": 3}\n]\n") == 0, "write");
    p.facts_path = bad;
    rc = mome_eval(m, NULL, &p, &r);
    CHECK(rc == MOME_ERR_FORMAT && strstr(mome_errmsg(), "bad.json:2:") && strstr(mome_errmsg(), "field 'alt'"), "%s",
          mome_errmsg());
    p.facts_path = facts;
    p.max_new_tokens = 0;
    CHECK(mome_eval(m, NULL, &p, &r) == MOME_ERR_ARG, "max_new_tokens 0");
    p.max_new_tokens = 4;
    p.n_systems = 1;
    p.systems = NULL;
    CHECK(mome_eval(m, NULL, &p, &r) == MOME_ERR_ARG, "systems NULL");
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mome_test_eval_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_variants);
    RUN(test_greedy);
    RUN(test_eval_measures);
    if (g_model) mome_model_free(g_model);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary();
}
