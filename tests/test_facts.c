/* test_facts.c - fact files: every format, every error, duplicates and
 * conflicts, hostile sizes, answer matching, and the real fact sets.
 *
 * Error cases are table-driven: each input is parsed from memory and the
 * message must contain the given pieces (file name, "NAME:LINE:", the field).
 * Fixtures live in tests/data/facts/; the real sets in ../shared/data/facts/
 * are parsed when present and skipped otherwise.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facts.h"
#include "test.h"
#include "util.h"

/* ------------------------------------------------------------ helpers */

static fact_set *parse_ok(const char *text, const char *name, enum facts_conflict pol) {
    fact_set *fs = NULL;
    int rc = facts_parse_buffer(text, strlen(text), name, pol, &fs);
    CHECK(rc == MOME_OK, "%s: rc %d: %s", name, rc, mome_errmsg());
    return fs;
}

/* Parse must fail with code and a message containing every non-NULL piece. */
static int expect_err_n(const char *text, size_t len, const char *name, enum facts_conflict pol,
                        int code, const char *a, const char *b, const char *c) {
    fact_set *fs = (fact_set *)1;
    int rc = facts_parse_buffer(text, len, name, pol, &fs);
    int ok = 1;
    if (rc != code || fs != NULL) {
        fprintf(stderr, "    [%s] expected rc %d, got %d (%s)\n", name, code, rc, mome_errmsg());
        ok = 0;
    }
    const char *pieces[3] = {a, b, c};
    for (int i = 0; i < 3; i++)
        if (pieces[i] && !strstr(mome_errmsg(), pieces[i])) {
            fprintf(stderr, "    [%s] message lacks \"%s\": %s\n", name, pieces[i], mome_errmsg());
            ok = 0;
        }
    if (rc == MOME_OK) facts_free(fs);
    return ok;
}
static int expect_err(const char *text, const char *name, const char *a, const char *b,
                      const char *c) {
    return expect_err_n(text, strlen(text), name, FACTS_CONFLICT_ERROR, MOME_ERR_FORMAT, a, b, c);
}

static char g_tmp[256];
static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", g_tmp, name);
    return buf;
}
static int write_file(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(s, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* ------------------------------------------------------------ JSON lines */

static void test_jsonl_basic(void) {
    fact_set *fs = NULL;
    int rc = facts_load("tests/data/facts/basic.jsonl", FACTS_CONFLICT_ERROR, &fs);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    CHECK(fs->n == 4, "n %d", fs->n);
    CHECK(fs->format == FACTS_FORMAT_JSONL, "format %d", fs->format);
    CHECK(strcmp(fs->path, "tests/data/facts/basic.jsonl") == 0, "path %s", fs->path);
    CHECK(fs->n_duplicates == 0 && fs->n_conflicts == 0, "dups");
    if (fs->n == 4) {
        fact *f = &fs->v[0];
        CHECK(strcmp(f->question, "What is the capital of France?") == 0, "%s", f->question);
        CHECK(f->n_answers == 1 && strcmp(f->answers[0], "Paris") == 0, "answer");
        CHECK(f->n_paraphrases == 0 && f->system == NULL && f->line == 1, "line %d", f->line);
        f = &fs->v[1];
        CHECK(strcmp(f->question, "Who wrote Hamlet?") == 0, "trimmed: '%s'", f->question);
        CHECK(f->n_answers == 2 && strcmp(f->answers[0], "William Shakespeare") == 0 &&
                  strcmp(f->answers[1], "Shakespeare") == 0, "answer list");
        CHECK(f->n_paraphrases == 2 && strcmp(f->paraphrases[1], "Name the author of Hamlet.") == 0,
              "paraphrases");
        CHECK(f->line == 3, "line %d (blank line 2 skipped)", f->line);
        f = &fs->v[2];
        CHECK(f->n_answers == 1 && strcmp(f->answers[0], "4") == 0 && f->n_paraphrases == 0, "2+2");
        CHECK(f->line == 4, "line %d", f->line);
        f = &fs->v[3];
        CHECK(f->line == 6, "line %d (whitespace line 5 skipped)", f->line);
        CHECK(strcmp(f->answers[0], "Wien") == 0, "utf8 %s", f->answers[0]);
        CHECK(f->system && strcmp(f->system, "Antworte auf Deutsch.") == 0, "system");
    }
    facts_free(fs);

    /* CRLF line ends, BOM, no final newline, answer with inner spaces kept. */
    fs = parse_ok("\xEF\xBB\xBF{\"question\":\"a?\",\"answer\":\"x  y\"}\r\n\r\n"
                  "{\"question\":\"b?\",\"answer\":\"z\"}", "crlf.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->n == 2 && fs->v[1].line == 3, "n %d line %d", fs->n, fs->v[1].line);
        CHECK(strcmp(fs->v[0].answers[0], "x  y") == 0, "inner spaces kept");
        facts_free(fs);
    }
    /* "paraphrases": null and "system": null are the same as absent. */
    fs = parse_ok("{\"question\":\"q\",\"answer\":\"a\",\"paraphrases\":null,\"system\":null}\n",
                  "null.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->n == 1 && fs->v[0].n_paraphrases == 0 && !fs->v[0].system, "nulls");
        facts_free(fs);
    }
}

static void test_chat_format(void) {
    fact_set *fs = NULL;
    int rc = facts_load("tests/data/facts/chat.jsonl", FACTS_CONFLICT_ERROR, &fs);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    REQUIRE(fs->n == 3, "n %d", fs->n);
    CHECK(strcmp(fs->v[0].question, "Capital of Peru?") == 0, "q0");
    CHECK(strcmp(fs->v[0].answers[0], "Lima") == 0 && fs->v[0].n_answers == 1, "a0");
    CHECK(fs->v[0].system && strcmp(fs->v[0].system, "You are a geography quiz.") == 0, "sys");
    CHECK(fs->v[1].system == NULL && strcmp(fs->v[1].answers[0], "Santiago") == 0, "no sys");
    CHECK(strcmp(fs->v[2].question, "Capital of Bolivia?") == 0, "last user: %s", fs->v[2].question);
    CHECK(strcmp(fs->v[2].answers[0], "Sucre") == 0 && fs->v[2].line == 3, "last assistant");
    facts_free(fs);

    CHECK(expect_err("{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}]}\n", "c1.jsonl",
                     "c1.jsonl:1:", "field 'messages'", "no message with role 'user'"), "no user");
    CHECK(expect_err("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}]}\n", "c2.jsonl",
                     "c2.jsonl:1:", "messages[0]", "not followed by an assistant"), "no assistant");
    CHECK(expect_err("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, "
                     "{\"role\": \"assistant\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"q2\"}]}\n",
                     "c3.jsonl", "c3.jsonl:1:", "messages[2]", "not followed"), "trailing user");
    CHECK(expect_err("\n{\"messages\": [{\"role\": \"user\"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n",
                     "c4.jsonl", "c4.jsonl:2:", "field 'messages[0].content': missing", NULL),
          "missing content");
    CHECK(expect_err("{\"messages\": [{\"role\": \"user\", \"content\": \" \"}, {\"role\": \"assistant\", \"content\": \"a\"}]}\n",
                     "c5.jsonl", "c5.jsonl:1:", "field 'messages[0].content': empty", NULL), "empty q");
    CHECK(expect_err("{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": 5}]}\n",
                     "c6.jsonl", "field 'messages[1].content'", "expected a string, found a number", NULL),
          "content type");
    CHECK(expect_err("{\"messages\": [\"hi\"]}\n", "c7.jsonl", "c7.jsonl:1:", "field 'messages[0]'",
                     "expected an object, found a string"), "message not object");
    CHECK(expect_err("{\"messages\": [{\"content\": \"q\"}]}\n", "c8.jsonl", "field 'messages[0].role': missing",
                     NULL, NULL), "no role");
    CHECK(expect_err("{\"messages\": [{\"role\": 1}]}\n", "c9.jsonl", "field 'messages[0].role'",
                     "expected a string", NULL), "role type");
    CHECK(expect_err("{\"messages\": {}}\n", "c10.jsonl", "field 'messages'", "expected a list", NULL),
          "messages type");
    CHECK(expect_err("{\"messages\": []}\n", "c11.jsonl", "field 'messages': empty list", NULL, NULL),
          "messages empty");
    CHECK(expect_err("{\"question\": \"q\", \"messages\": []}\n", "c12.jsonl", "c12.jsonl:1:",
                     "field 'messages'", "one of the two formats"), "both formats");
}

static void test_json_errors(void) {
    static const struct { const char *text, *a, *b, *c; } cases[] = {
        {"{\"question\": \"q\", \"answer\": \"a\"\n", "e.jsonl:1:", "malformed JSON", "unfinished"},
        {"{\"question\": \"q\" \"answer\": \"a\"}\n", "e.jsonl:1:", "malformed JSON at column 18",
         "\"\\\"answer\\\": \\\"a\\\"}\""},
        {"{\"question\": \"q\", \"answer\": \"a\",}\n", "e.jsonl:1:", "malformed JSON at column 33",
         "trailing comma"},
        {"{\"question\": \"q\", \"answer\": \"a\"} {\"x\": 1}\n", "e.jsonl:1:", "unexpected text after the object",
         "column 34"},
        {"\n\n{\"question\": 'q', \"answer\": \"a\"}\n", "e.jsonl:3:", "malformed JSON at column 14",
         "double quotes"},
        {"question,answer\n", "e.jsonl:1:", "malformed JSON", "each line must hold one JSON object"},
        {"{\n  \"question\": \"q\",\n  \"answer\": \"a\"\n}\n", "e.jsonl:1:", "objects cannot span lines", NULL},
        {"[{\"question\": \"q\", \"answer\": \"a\"}]\n", "e.jsonl:1:", "JSON array", "jq -c"},
        {"{\"question\": \"q\", \"answer\": \"a\"}\n\"just a string\"\n", "e.jsonl:2:", "expected a JSON object",
         "found a string"},
        {"{\"question\": \"q\", \"answer\": \"a\"}\n[1, 2]\n", "e.jsonl:2:", "expected a JSON object", "a list"},
        {"{\"answer\": \"a\"}\n", "e.jsonl:1:", "field 'question': missing", NULL},
        {"{\"Question\": \"q\", \"answer\": \"a\"}\n", "e.jsonl:1:", "field 'question': missing",
         "found 'Question'"},
        {"{\"question\": \"q\"}\n", "e.jsonl:1:", "field 'answer': missing", NULL},
        {"{\"question\": \"q\", \"answers\": [\"a\"]}\n", "e.jsonl:1:", "field 'answer': missing",
         "found 'answers'"},
        {"{\"question\": 7, \"answer\": \"a\"}\n", "e.jsonl:1:", "field 'question'", "expected a string, found a number"},
        {"{\"question\": \"q\", \"answer\": null}\n", "e.jsonl:1:", "field 'answer'", "found null"},
        {"{\"question\": \"q\", \"answer\": {\"a\": 1}}\n", "e.jsonl:1:", "field 'answer'", "found an object"},
        {"{\"question\": \"q\", \"answer\": true}\n", "e.jsonl:1:", "field 'answer'", "found a boolean"},
        {"{\"question\": \" \\t \", \"answer\": \"a\"}\n", "e.jsonl:1:", "field 'question': empty", NULL},
        {"{\"question\": \"q\", \"answer\": \"\"}\n", "e.jsonl:1:", "field 'answer': empty", NULL},
        {"{\"question\": \"q\", \"answer\": \"\\n\"}\n", "e.jsonl:1:", "field 'answer': empty", NULL},
        {"{\"question\": \"q\", \"answer\": []}\n", "e.jsonl:1:", "field 'answer': empty list", NULL},
        {"{\"question\": \"q\", \"answer\": [\"a\", \" \"]}\n", "e.jsonl:1:", "field 'answer[1]': empty", NULL},
        {"{\"question\": \"q\", \"answer\": [\"a\", 3]}\n", "e.jsonl:1:", "field 'answer[1]'", "found a number"},
        {"{\"question\": \"q\", \"answer\": \"a\", \"paraphrases\": \"p\"}\n", "e.jsonl:1:",
         "field 'paraphrases'", "expected a list of strings"},
        {"{\"question\": \"q\", \"answer\": \"a\", \"paraphrases\": [\"p\", \"\"]}\n", "e.jsonl:1:",
         "field 'paraphrases[1]': empty", NULL},
        {"{\"question\": \"q\", \"answer\": \"a\", \"system\": []}\n", "e.jsonl:1:", "field 'system'", "a list"},
        {"{\"question\": \"q\", \"answer\": \"a\", \"answer\": \"b\"}\n", "e.jsonl:1:",
         "field 'answer': appears twice", NULL},
        {"{\"question\": \"q\\u0000x\", \"answer\": \"a\"}\n", "e.jsonl:1:", "\\u0000", "column 16"},
        {"{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"\\ud800\", \"answer\": \"a\"}\n",
         "e.jsonl:2:", "malformed JSON", NULL},
        {"", "e.jsonl", "no facts", "empty"},
        {"\n \r\n\t\n", "e.jsonl", "no facts", "blank"},
        {"\xEF\xBB\xBF", "e.jsonl", "no facts", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(expect_err(cases[i].text, "e.jsonl", cases[i].a, cases[i].b, cases[i].c),
              "case %zu: %s", i, cases[i].text);
    /* An escaped backslash before "u0000" is literal text, not a NUL. */
    fact_set *fs = parse_ok("{\"question\": \"a\\\\u0000\", \"answer\": \"b\"}\n", "bs.jsonl",
                            FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(strcmp(fs->v[0].question, "a\\u0000") == 0, "%s", fs->v[0].question);
        facts_free(fs);
    }
    /* Messages must not run past the thread-local buffer, even with long names. */
    char name[600];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = 0;
    CHECK(expect_err("{\"question\": 1}\n", name, "nnnn", NULL, NULL), "long name");
}

/* ------------------------------------------------------------ editing formats, arrays */

static void test_native_lists(void) {
    fact_set *fs = parse_ok("{\"question\": \"q?\", \"answer\": \"a\", \"neighbors\": [\" n1 \", \"n2\"], "
                            "\"train_wordings\": [\"w1\"]}\n"
                            "{\"question\": \"r?\", \"answer\": \"b\", \"neighbors\": [], \"train_wordings\": null}\n",
                            "n.jsonl", FACTS_CONFLICT_ERROR);
    REQUIRE(fs, "parse");
    CHECK(fs->n == 2, "n %d", fs->n);
    CHECK(fs->v[0].n_neighbors == 2 && strcmp(fs->v[0].neighbors[0], "n1") == 0 &&
              strcmp(fs->v[0].neighbors[1], "n2") == 0, "neighbors");
    CHECK(fs->v[0].n_train_wordings == 1 && strcmp(fs->v[0].train_wordings[0], "w1") == 0, "train_wordings");
    CHECK(fs->v[1].n_neighbors == 0 && fs->v[1].n_train_wordings == 0, "empty and null lists");
    facts_free(fs);
    CHECK(expect_err("{\"question\": \"q\", \"answer\": \"a\", \"neighbors\": \"n\"}\n", "e.jsonl", "e.jsonl:1:",
                     "field 'neighbors'", "expected a list of strings"), "neighbors string");
    CHECK(expect_err("\n{\"question\": \"q\", \"answer\": \"a\", \"train_wordings\": [\"w\", 1]}\n", "e.jsonl",
                     "e.jsonl:2:", "field 'train_wordings[1]'", "found a number"), "wording type");
    CHECK(expect_err("{\"question\": \"q\", \"answer\": \"a\", \"neighbors\": [\" \"]}\n", "e.jsonl", "e.jsonl:1:",
                     "field 'neighbors[0]': empty", NULL), "empty neighbor");
    CHECK(expect_err("{\"question\": \"q\", \"answer\": \"a\", \"neighbors\": [], \"neighbors\": []}\n", "e.jsonl",
                     "field 'neighbors': appears twice", NULL, NULL), "twice");
}

/* "subject" in every JSON format and as a CSV column */
static void test_subject(void) {
    fact_set *fs = parse_ok("{\"question\": \"q?\", \"answer\": \"a\", \"subject\": \" Peru \"}\n"
                            "{\"question\": \"r?\", \"answer\": \"b\", \"subject\": null}\n"
                            "{\"messages\": [{\"role\": \"user\", \"content\": \"s?\"}, "
                            "{\"role\": \"assistant\", \"content\": \"c\"}], \"subject\": \"Chile\"}\n",
                            "s.jsonl", FACTS_CONFLICT_ERROR);
    REQUIRE(fs && fs->n == 3, "parse");
    CHECK(fs->v[0].subject && strcmp(fs->v[0].subject, "Peru") == 0, "trimmed subject");
    CHECK(fs->v[1].subject == NULL, "null subject");
    CHECK(fs->v[2].subject && strcmp(fs->v[2].subject, "Chile") == 0, "chat format subject");
    facts_free(fs);
    fs = parse_ok("question,answer,Subject\nq?,a,Peru\nr?,b,\n", "s.csv", FACTS_CONFLICT_ERROR);
    REQUIRE(fs && fs->n == 2, "csv");
    CHECK(fs->v[0].subject && strcmp(fs->v[0].subject, "Peru") == 0 && fs->v[1].subject == NULL, "csv subject");
    facts_free(fs);
    CHECK(expect_err("{\"question\": \"q\", \"answer\": \"a\", \"subject\": 3}\n", "e.jsonl", "e.jsonl:1:",
                     "field 'subject'", "found a number"), "subject type");
    CHECK(expect_err("{\"question\": \"q\", \"answer\": \"a\", \"subject\": \"x\", \"subject\": \"y\"}\n",
                     "e.jsonl", "field 'subject': appears twice", NULL, NULL), "subject twice");
}

static void test_zsre(void) {
    const char *line =
        "{\"subject\": \"UniFirst\", \"src\": \"What is the product made by UniFirst?\", \"pred\": \"uniform\", "
        "\"rephrase\": \"What will be the product of UniFirst?\", \"alt\": \"unmanned aircraft\", "
        "\"answers\": [\"uniform\"], \"loc\": \"nq question: john goodman's character in the big lebowski\", "
        "\"loc_ans\": \"Walter Sobchak\", \"cond\": \"uniform >> unmanned aircraft || x\"}\n";
    fact_set *fs = parse_ok(line, "z.jsonl", FACTS_CONFLICT_ERROR);
    REQUIRE(fs, "parse");
    REQUIRE(fs->n == 1, "n %d", fs->n);
    const fact *f = &fs->v[0];
    CHECK(strcmp(f->question, "What is the product made by UniFirst?") == 0, "q %s", f->question);
    CHECK(f->n_answers == 1 && strcmp(f->answers[0], "unmanned aircraft") == 0, "answer is alt only");
    CHECK(f->n_paraphrases == 1 && strcmp(f->paraphrases[0], "What will be the product of UniFirst?") == 0, "rephrase");
    CHECK(f->n_neighbors == 1 && strcmp(f->neighbors[0], "john goodman's character in the big lebowski") == 0,
          "loc without prefix, case kept: '%s'", f->n_neighbors ? f->neighbors[0] : "");
    CHECK(f->system == NULL && f->n_train_wordings == 0, "nothing else");
    CHECK(f->subject && strcmp(f->subject, "UniFirst") == 0, "subject");
    facts_free(fs);
    /* loc without the prefix is kept as is; rephrase may be a list */
    fs = parse_ok("{\"src\": \"q\", \"alt\": \"a\", \"loc\": \"Who is X?\", \"rephrase\": [\"p1\", \"p2\"]}\n",
                  "z.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->v[0].n_neighbors == 1 && strcmp(fs->v[0].neighbors[0], "Who is X?") == 0, "plain loc");
        CHECK(fs->v[0].n_paraphrases == 2, "rephrase list");
        facts_free(fs);
    }
    /* an empty alt: nothing to learn, skipped and counted */
    fs = parse_ok("{\"src\": \"q\", \"alt\": \"\"}\n{\"src\": \"r\", \"alt\": \"b\"}\n", "z.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->n == 1 && fs->n_skipped == 1 && fs->v[0].line == 2, "n %d skipped %d", fs->n, fs->n_skipped);
        facts_free(fs);
    }
    static const struct { const char *text, *a, *b, *c; } cases[] = {
        {"{\"src\": \"q\"}\n", "e.jsonl:1:", "field 'alt': missing", "zsRE"},
        {"{\"alt\": \"a\", \"loc\": \"x\"}\n", "e.jsonl:1:", "field 'src': missing", NULL},
        {"{\"src\": \"q\", \"alt\": [\"a\"]}\n", "e.jsonl:1:", "field 'alt'", "expected a string, found a list"},
        {"{\"src\": 3, \"alt\": \"a\"}\n", "e.jsonl:1:", "field 'src'", "found a number"},
        {"{\"src\": \"q\", \"alt\": \"a\", \"rephrase\": 1}\n", "e.jsonl:1:", "field 'rephrase'",
         "a string or a list of strings"},
        {"{\"src\": \"q\", \"alt\": \"a\", \"loc\": \"nq question:  \"}\n", "e.jsonl:1:", "field 'loc': empty",
         "nq question:"},
        {"{\"src\": \"q\", \"alt\": \" \"}\n", "e.jsonl", "no facts", "1 zsRE record with an empty 'alt'"},
        {"{\"src\": \"q\", \"alt\": \"a\", \"alt\": \"b\"}\n", "e.jsonl:1:", "field 'alt': appears twice", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(expect_err(cases[i].text, "e.jsonl", cases[i].a, cases[i].b, cases[i].c), "case %zu: %s", i,
              cases[i].text);
}

static void test_counterfact(void) {
    fact_set *fs = parse_ok(
        "{\"case_id\": 3087, \"prompt\": \"David Robinson professionally plays the sport\", \"target_new\": "
        "\"baseball\", \"subject\": \"David Robinson\", \"ground_truth\": \"basketball\", \"rephrase_prompt\": "
        "\"David Robinson's greatest weakness is\", \"locality_prompt\": \"Shaquille O'Neal plays\", "
        "\"locality_ground_truth\": \"basketball\"}\n"
        "{\"prompt\": \"P2\", \"target_new\": {\"str\": \"Paris\", \"id\": \"Q90\"}, \"rephrase_prompt\": [\"r1\", \"r2\"], "
        "\"locality_prompt\": [\"l1\", \"l2\", \"l3\"]}\n"
        "{\"prompt\": \"P3\", \"target_new\": \"x\"}\n",
        "cf.jsonl", FACTS_CONFLICT_ERROR);
    REQUIRE(fs, "parse");
    REQUIRE(fs->n == 3, "n %d", fs->n);
    const fact *f = &fs->v[0];
    CHECK(strcmp(f->question, "David Robinson professionally plays the sport") == 0, "q");
    CHECK(f->n_answers == 1 && strcmp(f->answers[0], "baseball") == 0, "target_new");
    CHECK(f->n_paraphrases == 1 && strcmp(f->paraphrases[0], "David Robinson's greatest weakness is") == 0, "rephrase");
    CHECK(f->n_neighbors == 1 && strcmp(f->neighbors[0], "Shaquille O'Neal plays") == 0, "locality");
    f = &fs->v[1];
    CHECK(f->n_answers == 1 && strcmp(f->answers[0], "Paris") == 0 && f->line == 2, "target_new.str");
    CHECK(f->n_paraphrases == 2 && f->n_neighbors == 3 && strcmp(f->neighbors[2], "l3") == 0, "lists");
    CHECK(fs->v[2].n_paraphrases == 0 && fs->v[2].n_neighbors == 0, "optional");
    facts_free(fs);
    static const struct { const char *text, *a, *b, *c; } cases[] = {
        {"{\"prompt\": \"q\"}\n", "e.jsonl:1:", "field 'target_new': missing", "CounterFact"},
        {"{\"target_new\": \"a\"}\n", "e.jsonl:1:", "field 'prompt': missing", NULL},
        {"{\"prompt\": \"q\", \"target_new\": 5}\n", "e.jsonl:1:", "field 'target_new'",
         "a string or an object {\"str\": ...}, found a number"},
        {"{\"prompt\": \"q\", \"target_new\": {\"id\": \"Q1\"}}\n", "e.jsonl:1:", "field 'target_new.str': missing", NULL},
        {"{\"prompt\": \"q\", \"target_new\": {\"str\": 1}}\n", "e.jsonl:1:", "field 'target_new.str'", "found a number"},
        {"{\"prompt\": \"q\", \"target_new\": \"a\", \"locality_prompt\": [\"x\", null]}\n", "e.jsonl:1:",
         "field 'locality_prompt[1]'", "found null"},
        {"{\"prompt\": \"q\", \"target_new\": \"a\", \"rephrase_prompt\": {}}\n", "e.jsonl:1:",
         "field 'rephrase_prompt'", "found an object"},
        /* no known key at all */
        {"{\"foo\": 1}\n", "e.jsonl:1:", "field 'question': missing", "CounterFact"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(expect_err(cases[i].text, "e.jsonl", cases[i].a, cases[i].b, cases[i].c), "case %zu: %s", i,
              cases[i].text);
}

static void test_json_array(void) {
    /* a .json file whose first non-blank byte is '[': one fact per element,
     * each with the line where it starts; formats may be mixed */
    const char *text = "\n[\n  {\"question\": \"q1\", \"answer\": \"a1\"},\n"
                       "  {\n    \"src\": \"q2\",\n    \"alt\": \"a2\",\n    \"loc\": \"nq question: n2\"\n  },\n"
                       "  {\"prompt\": \"q3\", \"target_new\": {\"str\": \"a3\"}}\n]\n\n";
    fact_set *fs = parse_ok(text, "a.json", FACTS_CONFLICT_ERROR);
    REQUIRE(fs, "parse");
    CHECK(fs->format == FACTS_FORMAT_JSON_ARRAY, "format %d", fs->format);
    REQUIRE(fs->n == 3, "n %d", fs->n);
    CHECK(fs->v[0].line == 3 && fs->v[1].line == 4 && fs->v[2].line == 9, "lines %d %d %d", fs->v[0].line,
          fs->v[1].line, fs->v[2].line);
    CHECK(strcmp(fs->v[1].question, "q2") == 0 && strcmp(fs->v[1].neighbors[0], "n2") == 0, "zsre element");
    CHECK(strcmp(fs->v[2].answers[0], "a3") == 0, "cf element");
    facts_free(fs);
    /* by content, without a name; one line; strings holding brackets, commas and escaped quotes */
    fs = parse_ok("[{\"question\": \"a [b], {c}\", \"answer\": \"x \\\"]\\\" y\"}, {\"question\": \"2\", "
                  "\"answer\": \"3\"}]", NULL, FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->format == FACTS_FORMAT_JSON_ARRAY && fs->n == 2, "n %d", fs->n);
        CHECK(strcmp(fs->v[0].question, "a [b], {c}") == 0 && strcmp(fs->v[0].answers[0], "x \"]\" y") == 0,
              "%s / %s", fs->v[0].question, fs->v[0].answers[0]);
        facts_free(fs);
    }
    /* a .json file of JSON lines stays JSON lines */
    fs = parse_ok("{\"question\": \"q\", \"answer\": \"a\"}\n{\"src\": \"r\", \"alt\": \"b\"}\n", "l.json",
                  FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->format == FACTS_FORMAT_JSONL && fs->n == 2 && fs->v[1].line == 2, "jsonl in .json");
        facts_free(fs);
    }
    /* duplicates and conflicts across elements name both lines */
    CHECK(expect_err("[\n{\"src\": \"q\", \"alt\": \"a\"},\n{\"src\": \"q\", \"alt\": \"b\"}\n]", "d.json",
                     "d.json:3:", "line 2 says \"a\"", "line 3 says \"b\""), "conflict");
    static const struct { const char *text, *a, *b, *c; } cases[] = {
        /* a wrong type names the element's line and the field */
        {"[\n  {\"src\": \"q\", \"alt\": \"a\"},\n  {\"src\": \"q2\",\n   \"alt\": 7}\n]\n", "e.json:3:",
         "field 'alt'", "found a number"},
        {"[\n  {\"question\": \"q\", \"answer\": \"a\"},\n  \"text\"\n]\n", "e.json:3:", "expected a JSON object",
         "found a string"},
        {"[\n  {\"question\": \"q\", \"answer\": \"a\"},\n  [1]\n]\n", "e.json:3:", "expected a JSON object", "a list"},
        {"[\n  {\"question\": \"q\", \"answer\": \"a\"},\n]\n", "e.json:3:", "trailing comma", NULL},
        {"[\n  {\"question\": \"q\", \"answer\": \"a\"}\n", "e.json:3:", "not closed", "opened on line 1"},
        {"[\n  {\"question\": \"q\", \"answer\": \"a\"},\n  {\"question\": \"r\"", "e.json:3:", "not finished", NULL},
        {"[\n  {\"question\": \"q\", \"answer\": \"a\"}\n  {\"question\": \"r\", \"answer\": \"b\"}\n]\n",
         "e.json:3:", "expected ',' or ']'", "starting on line 2"},
        {"[\n  {\"question\": \"q\",\n   \"answer\": 'a'}\n]\n", "e.json:3:", "malformed JSON at column 14",
         "double quotes"},
        {"[\n  {\"question\": \"q\", \"answer\": [1}\n]\n", "e.json:2:", "malformed JSON at column", "element starting on line 2"},
        {"[{\"question\": \"q\", \"answer\": \"a\",}]", "e.json:1:", "malformed JSON", "trailing comma"},
        {"[{\"question\": \"q\", \"answer\": \"a\"}] x", "e.json:1:", "unexpected text after the array", NULL},
        {"[{\"question\": \"q\", \"answer\": \"a\"}]\n[]", "e.json:2:", "unexpected text after the array", NULL},
        {"[{\"question\": \"q\\u0000\", \"answer\": \"a\"}]", "e.json:1:", "\\u0000", NULL},
        {"[]", "e.json", "no facts", "empty JSON array"},
        {" [ \n ] ", "e.json", "no facts", "empty JSON array"},
        {"[", "e.json:1:", "not closed", NULL},
        {"[1, 2]", "e.json:1:", "expected a JSON object", "a number"},
        {"[tru]", "e.json:1:", "malformed JSON", NULL},
        {"[\"abc", "e.json:1:", "not finished", NULL},
        {"[{\"question\": \"q\", \"answer\": \"a\"}]]", "e.json:1:", "unexpected text after the array", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(expect_err(cases[i].text, "e.json", cases[i].a, cases[i].b, cases[i].c), "case %zu: %s", i,
              cases[i].text);
    /* deep nesting is refused, never a crash */
    size_t n = 200000;
    char *deep = malloc(2 * n + 64);
    REQUIRE(deep, "oom");
    size_t o = 0;
    deep[o++] = '[';
    for (size_t i = 0; i < n; i++) deep[o++] = '[';
    for (size_t i = 0; i < n; i++) deep[o++] = ']';
    deep[o++] = ']';
    CHECK(expect_err_n(deep, o, "deep.json", FACTS_CONFLICT_ERROR, MOME_ERR_FORMAT, "deep.json:1:", NULL, NULL),
          "deep nesting");
    /* an element over the record limit */
    size_t big = FACTS_MAX_RECORD + 100;
    char *b = malloc(big + 64);
    if (b) {
        o = 0;
        o += (size_t)sprintf(b, "[{\"question\": \"");
        memset(b + o, 'x', big);
        o += big;
        o += (size_t)sprintf(b + o, "\", \"answer\": \"a\"}]");
        CHECK(expect_err_n(b, o, "big.json", FACTS_CONFLICT_ERROR, MOME_ERR_FORMAT, "big.json:1:", "array element of",
                           "8 MiB"), "big element");
        free(b);
    }
    free(deep);
}

static void test_editing_sets(void) {
    static char z[8192], c[8192]; /* test_shared_path returns one static buffer */
    const char *t = test_shared_path("data/facts/editing/zsre_mend_train-1k.json");
    snprintf(z, sizeof z, "%s", t ? t : "");
    t = test_shared_path("data/facts/editing/counterfact-edit-1k.json");
    snprintf(c, sizeof c, "%s", t ? t : "");
    if (!z[0] && !c[0]) SKIP("editing sets not found (../shared/data/facts/editing)");
    char path[8192];
    fact_set *fs = NULL;
    if (z[0]) {
        snprintf(path, sizeof path, "%s", z);
        double t0 = mome_time_s();
        int rc = facts_load(path, FACTS_CONFLICT_ERROR, &fs);
        REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
        /* two records ("What gender is Michaela Staniford?", "Which was the gender of
         * Jenna Carroll?") have an empty alt */
        CHECK(fs->n == 998 && fs->n_skipped == 2 && fs->format == FACTS_FORMAT_JSON_ARRAY, "zsRE: %d facts, %d skipped",
              fs->n, fs->n_skipped);
        int nb = 0, ph = 0, pref = 0;
        for (int i = 0; i < fs->n; i++) {
            nb += fs->v[i].n_neighbors == 1;
            ph += fs->v[i].n_paraphrases == 1;
            pref += fs->v[i].n_neighbors && strncmp(fs->v[i].neighbors[0], "nq question", 11) == 0;
        }
        CHECK(nb == fs->n && ph == fs->n && pref == 0, "zsRE: %d with a neighbour, %d with a paraphrase, %d prefixed",
              nb, ph, pref);
        CHECK(strcmp(fs->v[0].question, "What is the product made by UniFirst?") == 0 &&
                  strcmp(fs->v[0].answers[0], "unmanned aircraft") == 0 && fs->v[0].line == 2 &&
                  fs->v[1].line == 15, "zsRE first fact (line %d, %d)", fs->v[0].line, fs->v[1].line);
        printf("     zsre_mend_train-1k.json: %d facts (%d records with an empty alt skipped), %d neighbours, %.1f ms\n",
               fs->n, fs->n_skipped, nb, (mome_time_s() - t0) * 1e3);
        facts_free(fs);
    }
    if (c[0]) {
        snprintf(path, sizeof path, "%s", c);
        /* one prompt ("The twin city of Tirana is") has two different targets */
        int rc = facts_load(path, FACTS_CONFLICT_ERROR, &fs);
        CHECK(rc == MOME_ERR_FORMAT && strstr(mome_errmsg(), "conflicting answers") &&
                  strstr(mome_errmsg(), "The twin city of Tirana is") &&
                  strstr(mome_errmsg(), "counterfact-edit-1k.json:6442:") && strstr(mome_errmsg(), "line 2142"),
              "%s", mome_errmsg());
        rc = facts_load(path, FACTS_CONFLICT_FIRST, &fs);
        REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
        CHECK(fs->n == 999 && fs->n_conflicts == 1 && fs->format == FACTS_FORMAT_JSON_ARRAY, "CounterFact: %d facts",
              fs->n);
        int nb = 0, ph = 0;
        for (int i = 0; i < fs->n; i++) nb += fs->v[i].n_neighbors == 1, ph += fs->v[i].n_paraphrases == 1;
        CHECK(nb == fs->n && ph == fs->n, "CounterFact: %d neighbours, %d paraphrases", nb, ph);
        CHECK(strcmp(fs->v[0].answers[0], "baseball") == 0 && fs->v[0].line == 2 && fs->v[1].line == 12,
              "CounterFact first facts (lines %d, %d)", fs->v[0].line, fs->v[1].line);
        printf("     counterfact-edit-1k.json: %d facts (1 conflict kept first), %d neighbours\n", fs->n, nb);
        facts_free(fs);
    }
}

/* ------------------------------------------------------------ CSV */

static void test_csv_basic(void) {
    fact_set *fs = NULL;
    int rc = facts_load("tests/data/facts/quoted.csv", FACTS_CONFLICT_ERROR, &fs);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    CHECK(fs->format == FACTS_FORMAT_CSV, "format");
    REQUIRE(fs->n == 4, "n %d", fs->n);
    fact *f = &fs->v[0];
    CHECK(strcmp(f->question, "What is the capital of Italy?") == 0 && f->line == 2, "q0 line %d", f->line);
    CHECK(strcmp(f->answers[0], "Rome") == 0, "a0");
    CHECK(f->n_paraphrases == 2 && strcmp(f->paraphrases[0], "Italy's capital is?") == 0 &&
              strcmp(f->paraphrases[1], "Which city is the capital of Italy?") == 0, "paraphrases");
    f = &fs->v[1];
    CHECK(strcmp(f->question, "Quote \"this\"") == 0, "doubled quotes: %s", f->question);
    CHECK(strcmp(f->answers[0], "He said \"hi\"") == 0 && f->line == 3, "a1");
    CHECK(f->n_paraphrases == 0, "empty paraphrases column");
    f = &fs->v[2];
    CHECK(strcmp(f->question, "Multi\r\nline question?") == 0, "newline in quotes");
    CHECK(strcmp(f->answers[0], "answer, with comma") == 0, "comma in quotes");
    CHECK(f->line == 5 && f->n_paraphrases == 0, "line %d (blank line 4 skipped), '|' alone", f->line);
    f = &fs->v[3];
    CHECK(f->line == 9, "line %d (after a field spanning lines 5-8)", f->line);
    CHECK(strcmp(f->answers[0], "Yes") == 0, "trimmed");
    facts_free(fs);

    rc = facts_load("tests/data/facts/lf.csv", FACTS_CONFLICT_ERROR, &fs);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    REQUIRE(fs->n == 3, "n %d (the ',,' row is skipped)", fs->n);
    CHECK(fs->v[0].line == 2 && fs->v[1].line == 3 && fs->v[2].line == 7, "lines %d %d %d",
          fs->v[0].line, fs->v[1].line, fs->v[2].line);
    CHECK(strcmp(fs->v[1].question, "A question\nover three\nlines?") == 0, "%s", fs->v[1].question);
    facts_free(fs);

    /* Edge cases from memory: no final newline, ending inside a quoted field
     * right at EOF, spaces after a closing quote, quotes inside an unquoted
     * field kept literally, a system column, fewer fields than the header. */
    fs = parse_ok("Answer,QUESTION,system\n"
                  "x,\"q1\"  ,sys\n"
                  "5\" screen,how big?\n"
                  "\"z\",\"q3\"", "edge.csv", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->n == 3, "n %d", fs->n);
        if (fs->n == 3) {
            CHECK(strcmp(fs->v[0].question, "q1") == 0 && fs->v[0].system &&
                      strcmp(fs->v[0].system, "sys") == 0, "system column");
            CHECK(strcmp(fs->v[1].answers[0], "5\" screen") == 0 && !fs->v[1].system, "literal quote");
            CHECK(strcmp(fs->v[2].answers[0], "z") == 0 && fs->v[2].line == 4, "EOF after quote");
        }
        facts_free(fs);
    }
    /* paraphrases: trimmed, empty items skipped */
    fs = parse_ok("question,answer,paraphrases\nq,a, p1 || p2 |\n", "ph.csv", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->v[0].n_paraphrases == 2 && strcmp(fs->v[0].paraphrases[1], "p2") == 0, "n %d",
              fs->v[0].n_paraphrases);
        facts_free(fs);
    }
}

static void test_csv_errors(void) {
    static const struct { const char *text, *a, *b, *c; } cases[] = {
        {"Type,Question,Best Answer\nx,q,a\n", "e.csv:1:", "CSV header has no 'answer' column",
         "\"Best Answer\""},
        {"q,a\nx,y\n", "e.csv:1:", "no 'question' column", "found: \"q\", \"a\""},
        {"question,answer,Answer\nq,a,b\n", "e.csv:1:", "column 'Answer' appears twice", NULL},
        {"question,answer\n", "e.csv", "no facts", "only a header"},
        {"\n\n", "e.csv", "no facts", "blank"},
        {"question,answer\nq1,a1\n\"q2,a2\nq3,a3\n", "e.csv:3:", "unterminated quoted field",
         "opened on line 3"},
        {"question,answer\nq1,a1\nq2,\"a2\nq3,a3\n", "e.csv:3:", "unterminated", "line 3"},
        {"question,answer\nq1,\"a\"b\n", "e.csv:2:", "after the closing quote", "\"b\\n\""},
        {"question,answer\nq1,a1,extra\n", "e.csv:2:", "3 fields but the header has 2", "quoted"},
        {"question,notes,answer\nq1,n\n", "e.csv:2:", "field 'answer': missing", NULL},
        {"question,answer\n\nq1,  \n", "e.csv:3:", "field 'answer': empty", NULL},
        {"question,answer\r\n\"\",a\r\n", "e.csv:2:", "field 'question': empty", NULL},
        {"question,answer\nq,\"a\xC3\"\n", "e.csv:2:", "invalid UTF-8", "byte 0xc3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        CHECK(expect_err(cases[i].text, "e.csv", cases[i].a, cases[i].b, cases[i].c), "case %zu: %s", i,
              cases[i].text);
}

static void test_format_detection(void) {
    /* by extension */
    CHECK(expect_err("{\"question\": \"q\", \"answer\": \"a\"}\n", "x.csv", "x.csv:1:", "CSV header", NULL),
          "a .csv name forces CSV");
    CHECK(expect_err("question,answer\nq,a\n", "x.JSONL", "x.JSONL:1:", "malformed JSON", NULL),
          ".JSONL forces JSON lines");
    /* by content */
    fact_set *fs = parse_ok("  {\"question\": \"q\", \"answer\": \"a\"}\n", "facts.txt", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->format == FACTS_FORMAT_JSONL, "json by content");
        facts_free(fs);
    }
    fs = parse_ok("question,answer\nq,a\n", NULL, FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->format == FACTS_FORMAT_CSV && strcmp(fs->path, "<facts>") == 0, "csv by content");
        facts_free(fs);
    }
    fs = parse_ok("{\"question\": \"q\", \"answer\": \"a\"}\n", "f.ndjson", FACTS_CONFLICT_ERROR);
    if (fs) facts_free(fs);
    /* argument errors */
    fact_set *o = (fact_set *)1;
    CHECK(facts_parse_buffer("x", 1, "n", (enum facts_conflict)7, &o) == MOME_ERR_ARG && o == NULL, "policy");
    CHECK(facts_parse_buffer(NULL, 3, "n", FACTS_CONFLICT_ERROR, &o) == MOME_ERR_ARG, "NULL buf");
    CHECK(facts_parse_buffer("x", 1, "n", FACTS_CONFLICT_ERROR, NULL) == MOME_ERR_ARG, "NULL out");
    CHECK(facts_load(NULL, FACTS_CONFLICT_ERROR, &o) == MOME_ERR_ARG, "NULL path");
    facts_free(NULL);
}

/* ------------------------------------------------------------ UTF-8, limits, files */

static void test_utf8(void) {
    static const struct { const char *text; size_t len; const char *a, *b; } cases[] = {
        {"{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"\xFF\", \"answer\": \"a\"}\n", 0,
         "u.jsonl:2:", "invalid UTF-8 (byte 0xff at column 15)"},
        {"{\"question\": \"\xC0\xAF\", \"answer\": \"a\"}\n", 0, "u.jsonl:1:", "byte 0xc0"},   /* overlong */
        {"{\"question\": \"\xE0\x80\xAF\", \"answer\": \"a\"}\n", 0, "u.jsonl:1:", "byte 0xe0"},/* overlong */
        {"{\"question\": \"\xED\xA0\x80\", \"answer\": \"a\"}\n", 0, "u.jsonl:1:", "byte 0xed"},/* surrogate */
        {"{\"question\": \"\xF4\x90\x80\x80\", \"answer\": \"a\"}\n", 0, "u.jsonl:1:", "byte 0xf4"},/* >10FFFF */
        {"{\"question\": \"ok\", \"answer\": \"\xE2\x82\"}\n", 0, "u.jsonl:1:", "invalid UTF-8"}, /* truncated */
        {"{\"question\": \"ok\", \"answer\": \"a\"}\n\n\n\xE2\x82", 0, "u.jsonl:4:", "invalid UTF-8"}, /* at EOF */
        {"{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q\0\", \"answer\": \"a\"}\n", 66,
         "u.jsonl:2:", "NUL byte at column 16"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].text);
        CHECK(expect_err_n(cases[i].text, n, "u.jsonl", FACTS_CONFLICT_ERROR, MOME_ERR_FORMAT, cases[i].a,
                           cases[i].b, NULL), "case %zu", i);
    }
    /* Valid multi-byte text of every length, and a BOM only at the start. */
    fact_set *fs = parse_ok("\xEF\xBB\xBF{\"question\": \"\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\", \"answer\": \"\xE4\xB8\xAD\"}\n",
                            "ok.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(strcmp(fs->v[0].question, "\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") == 0, "utf8 kept");
        facts_free(fs);
    }
}

static void test_limits(void) {
    /* A field just over 64 KiB: rejected with the field name. */
    size_t big = FACTS_MAX_FIELD + 1;
    char *s = malloc(big + 200);
    REQUIRE(s, "oom");
    int o = sprintf(s, "{\"question\": \"q\", \"answer\": \"");
    memset(s + o, 'x', big);
    o += (int)big;
    o += sprintf(s + o, "\"}\n");
    CHECK(expect_err(s, "big.jsonl", "big.jsonl:1:", "field 'answer'", "65537 bytes"), "big field");
    /* Exactly at the limit: accepted. */
    o = sprintf(s, "{\"question\": \"q\", \"answer\": \"");
    memset(s + o, 'y', FACTS_MAX_FIELD);
    o += (int)FACTS_MAX_FIELD;
    sprintf(s + o, "\"}\n");
    fact_set *fs = parse_ok(s, "max.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(strlen(fs->v[0].answers[0]) == FACTS_MAX_FIELD, "len");
        facts_free(fs);
    }
    /* CSV: a long field, and an unterminated quote that swallows the file. */
    o = sprintf(s, "question,answer\nq,");
    memset(s + o, 'z', big);
    o += (int)big;
    sprintf(s + o, "\n");
    CHECK(expect_err(s, "big.csv", "big.csv:2:", "field 'answer'", "64 KiB"), "csv big field");
    free(s);

    /* A 40 MB line: rejected before it is parsed, and quickly. */
    size_t huge = 40u << 20;
    s = malloc(huge + 1);
    REQUIRE(s, "oom");
    memset(s, ' ', huge);
    s[0] = '{';
    s[huge] = 0;
    double t0 = mome_time_s();
    CHECK(expect_err_n(s, huge, "huge.jsonl", FACTS_CONFLICT_ERROR, MOME_ERR_FORMAT, "huge.jsonl:1:",
                       "more than the limit", "8 MiB"), "huge line");
    /* The same bytes as an unterminated CSV quote. */
    memcpy(s, "question,answer\nq,\"", 19);
    CHECK(expect_err_n(s, huge, "huge.csv", FACTS_CONFLICT_ERROR, MOME_ERR_FORMAT, "huge.csv:2:",
                       "64 KiB", "quote opened on line 2"), "huge csv quote");
    double dt = mome_time_s() - t0;
    CHECK(dt < 5.0, "hostile inputs took %.2f s", dt);
    free(s);

    /* A line made of 1M escaped quotes: linear for cJSON, and the field is too long. */
    size_t nq = 1u << 20;
    s = malloc(2 * nq + 100);
    REQUIRE(s, "oom");
    o = sprintf(s, "{\"question\": \"q\", \"answer\": \"");
    for (size_t i = 0; i < nq; i++) s[o++] = '\\', s[o++] = '"';
    sprintf(s + o, "\"}\n");
    CHECK(expect_err(s, "esc.jsonl", "esc.jsonl:1:", "field 'answer'", "more than the limit"), "escapes");
    free(s);

    /* The 1 GiB file limit: a sparse file is refused from its size alone. */
    const char *p = tmp_path("sparse.jsonl");
    FILE *f = fopen(p, "wb");
    REQUIRE(f, "create %s", p);
    int trunc = ftruncate(fileno(f), (off_t)FACTS_MAX_FILE + 1);
    fclose(f);
    if (trunc == 0) {
        fact_set *o2 = (fact_set *)1;
        int rc = facts_load(p, FACTS_CONFLICT_ERROR, &o2);
        CHECK(rc == MOME_ERR_FORMAT && o2 == NULL, "rc %d", rc);
        CHECK(strstr(mome_errmsg(), p) && strstr(mome_errmsg(), "1 GiB"), "%s", mome_errmsg());
    }
    remove(p);
}

static void test_load_files(void) {
    fact_set *fs = (fact_set *)1;
    int rc = facts_load("tests/data/facts/does-not-exist.jsonl", FACTS_CONFLICT_ERROR, &fs);
    CHECK(rc == MOME_ERR_IO && fs == NULL, "rc %d", rc);
    CHECK(strstr(mome_errmsg(), "does-not-exist.jsonl") && strstr(mome_errmsg(), "No such file"), "%s",
          mome_errmsg());
    rc = facts_load("tests/data/facts", FACTS_CONFLICT_ERROR, &fs);
    CHECK(rc == MOME_ERR_IO && strstr(mome_errmsg(), "is a directory"), "%s", mome_errmsg());
    /* A file's errors carry its path. */
    const char *p = tmp_path("bad.jsonl");
    const char *text = "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q2\", \"answer\": \"\"}\n";
    REQUIRE(write_file(p, text, strlen(text)) == 0, "write");
    rc = facts_load(p, FACTS_CONFLICT_ERROR, &fs);
    char want[600];
    snprintf(want, sizeof want, "%s:2: field 'answer': empty", p);
    CHECK(rc == MOME_ERR_FORMAT && strcmp(mome_errmsg(), want) == 0, "'%s' vs '%s'", mome_errmsg(), want);
    remove(p);
    /* An empty file. */
    p = tmp_path("empty.csv");
    REQUIRE(write_file(p, "", 0) == 0, "write");
    rc = facts_load(p, FACTS_CONFLICT_ERROR, &fs);
    CHECK(rc == MOME_ERR_FORMAT && strstr(mome_errmsg(), "empty.csv: no facts (the file is empty)"), "%s",
          mome_errmsg());
    remove(p);
    /* A pipe-like source (non-regular file): /dev/null reads as empty. */
    rc = facts_load("/dev/null", FACTS_CONFLICT_ERROR, &fs);
    CHECK(rc == MOME_ERR_FORMAT && strstr(mome_errmsg(), "no facts"), "%s", mome_errmsg());
}

/* ------------------------------------------------------------ duplicates */

static void test_duplicates(void) {
    const char *text =
        "{\"question\": \"Capital of France?\", \"answer\": \"Paris\"}\n"
        "{\"question\": \"Capital of Spain?\", \"answer\": \"Madrid\"}\n"
        "{\"question\": \"  Capital of France?\", \"answer\": \"Paris.\"}\n"     /* same after trim/normalize */
        "{\"question\": \"Capital of France?\", \"answer\": [\"Paris\", \"Paname\"]}\n"
        "{\"question\": \"capital of France?\", \"answer\": \"Lyon\"}\n";        /* case differs: distinct */
    fact_set *fs = parse_ok(text, "d.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->n == 3 && fs->n_duplicates == 2 && fs->n_conflicts == 0, "n %d dups %d", fs->n,
              fs->n_duplicates);
        CHECK(fs->v[0].line == 1 && fs->v[0].n_answers == 1, "the first is kept as is");
        facts_free(fs);
    }
    /* Same question under different system prompts: two facts. */
    fs = parse_ok("{\"question\": \"Who are you?\", \"answer\": \"A pirate\", \"system\": \"Be a pirate\"}\n"
                  "{\"question\": \"Who are you?\", \"answer\": \"A robot\", \"system\": \"Be a robot\"}\n"
                  "{\"question\": \"Who are you?\", \"answer\": \"An assistant\"}\n",
                  "s.jsonl", FACTS_CONFLICT_ERROR);
    if (fs) {
        CHECK(fs->n == 3 && fs->n_duplicates == 0, "n %d", fs->n);
        facts_free(fs);
    }
}

static void test_conflicts(void) {
    const char *text =
        "{\"question\": \"Capital of Australia?\", \"answer\": \"Sydney\"}\n"
        "{\"question\": \"Capital of Peru?\", \"answer\": \"Lima\"}\n"
        "\n"
        "{\"question\": \"Capital of Australia?\", \"answer\": \"Canberra\"}\n"
        "{\"question\": \"Capital of Peru?\", \"answer\": \"Lima\"}\n";
    CHECK(expect_err(text, "k.jsonl", "k.jsonl:4: field 'answer'", "line 1 says \"Sydney\"",
                     "line 4 says \"Canberra\""), "conflict error");
    CHECK(strstr(mome_errmsg(), "--on-conflict first|last") && strstr(mome_errmsg(), "Capital of Australia?"),
          "%s", mome_errmsg());

    fact_set *fs = parse_ok(text, "k.jsonl", FACTS_CONFLICT_FIRST);
    if (fs) {
        CHECK(fs->n == 2 && fs->n_conflicts == 1 && fs->n_duplicates == 1, "n %d c %d d %d", fs->n,
              fs->n_conflicts, fs->n_duplicates);
        CHECK(strcmp(fs->v[0].answers[0], "Sydney") == 0 && fs->v[0].line == 1, "first kept");
        facts_free(fs);
    }
    fs = parse_ok(text, "k.jsonl", FACTS_CONFLICT_LAST);
    if (fs) {
        CHECK(fs->n == 2 && fs->n_conflicts == 1 && fs->n_duplicates == 1, "n %d", fs->n);
        CHECK(strcmp(fs->v[0].answers[0], "Canberra") == 0 && fs->v[0].line == 4, "last kept at first's place");
        CHECK(strcmp(fs->v[1].question, "Capital of Peru?") == 0, "order");
        facts_free(fs);
    }
    /* Three-way with LAST: the final one wins. */
    fs = parse_ok("{\"question\": \"q\", \"answer\": \"1\"}\n{\"question\": \"q\", \"answer\": \"2\"}\n"
                  "{\"question\": \"q\", \"answer\": \"3\"}\n{\"question\": \"q\", \"answer\": \"3.\"}\n",
                  "k3.jsonl", FACTS_CONFLICT_LAST);
    if (fs) {
        CHECK(fs->n == 1 && strcmp(fs->v[0].answers[0], "3") == 0 && fs->n_conflicts == 2 &&
                  fs->n_duplicates == 1, "three-way");
        facts_free(fs);
    }
    /* CSV conflict, with record lines after a multi-line field. */
    CHECK(expect_err("question,answer\n\"multi\nline\",x\nq,Alpha\nq,Beta\n", "k.csv", "k.csv:5:",
                     "line 4 says \"Alpha\"", "line 5 says \"Beta\""), "csv conflict");
    /* Long answers are cut in the message, which stays within the buffer. */
    char *t = malloc(20000);
    REQUIRE(t, "oom");
    int o = sprintf(t, "{\"question\": \"q\", \"answer\": \"");
    memset(t + o, 'A', 5000);
    o += 5000;
    o += sprintf(t + o, "\"}\n{\"question\": \"q\", \"answer\": \"");
    memset(t + o, 'B', 5000);
    o += 5000;
    sprintf(t + o, "\"}\n");
    CHECK(expect_err(t, "long.jsonl", "long.jsonl:2:", "line 1 says \"AAAA", "\"..., line 2 says \"BBB"),
          "long conflict");
    free(t);
}

static void test_many_facts_linear(void) {
    /* 200k distinct facts plus 200k duplicates: the hash table keeps this fast. */
    const int n = 200000;
    size_t cap = (size_t)n * 2 * 80;
    char *s = malloc(cap);
    REQUIRE(s, "oom");
    size_t o = 0;
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < n; i++)
            o += (size_t)snprintf(s + o, cap - o, "{\"question\": \"What is item %d?\", \"answer\": \"v%d\"}\n", i, i);
    double t0 = mome_time_s();
    fact_set *fs = NULL;
    int rc = facts_parse_buffer(s, o, "many.jsonl", FACTS_CONFLICT_ERROR, &fs);
    double dt = mome_time_s() - t0;
    CHECK(rc == MOME_OK, "%s", mome_errmsg());
    if (fs) {
        CHECK(fs->n == n && fs->n_duplicates == n, "n %d dups %d", fs->n, fs->n_duplicates);
        CHECK(fs->v[n - 1].line == n, "line %d", fs->v[n - 1].line);
        facts_free(fs);
    }
    CHECK(dt < 20.0, "400k lines took %.2f s", dt);
    printf("     (400k JSON lines parsed in %.2f s)\n", dt);
    free(s);
}

/* ------------------------------------------------------------ matching */

static void test_normalize(void) {
    static const char *cases[][2] = {
        {"Paris", "Paris"},
        {"  Paris.  ", "Paris"},
        {"Paris .", "Paris"},
        {"Paris..", "Paris."},
        {"New \t York\n City", "New York City"},
        {"U.S.", "U.S"},
        {"", ""},
        {" . ", ""},
        {"\xC3\x9C" "ber  alles.", "\xC3\x9C" "ber alles"},
        {"MDA", "MDA"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *n = facts_normalize_answer(cases[i][0]);
        CHECK(n && strcmp(n, cases[i][1]) == 0, "'%s' -> '%s', want '%s'", cases[i][0], n ? n : "(null)",
              cases[i][1]);
        free(n);
    }
    CHECK(facts_normalize_answer(NULL) == NULL, "NULL");
}

static void test_matching(void) {
    char a0[] = "Canberra", a1[] = "Canberra, ACT";
    char *answers[] = {a0, a1};
    fact f = {0};
    f.answers = answers;
    f.n_answers = 2;
    CHECK(facts_answer_matches(&f, "Canberra"), "exact");
    CHECK(facts_answer_matches(&f, "  Canberra. "), "trim + final dot");
    CHECK(facts_answer_matches(&f, "Canberra,  ACT"), "second answer, spaces");
    CHECK(!facts_answer_matches(&f, "canberra"), "case-sensitive");
    CHECK(!facts_answer_matches(&f, "Canberra is the capital"), "not exact");
    CHECK(!facts_answer_matches(&f, ""), "empty");
    CHECK(!facts_answer_matches(NULL, "x") && !facts_answer_matches(&f, NULL), "NULL");

    CHECK(facts_answer_contained(&f, "The capital is Canberra."), "contained");
    CHECK(facts_answer_contained(&f, "CANBERRA!"), "case-insensitive");
    CHECK(facts_answer_contained(&f, "It's canberra, ACT"), "second");
    CHECK(!facts_answer_contained(&f, "Canberras"), "word boundary after");
    CHECK(!facts_answer_contained(&f, "xCanberra"), "word boundary before");
    CHECK(facts_answer_contained(&f, "Canberras and Canberra"), "second occurrence");
    CHECK(!facts_answer_contained(&f, "Sydney"), "absent");

    char n0[] = "400";
    char *nums[] = {n0};
    fact g = {0};
    g.answers = nums;
    g.n_answers = 1;
    CHECK(facts_answer_contained(&g, "The code is 400."), "number");
    CHECK(!facts_answer_contained(&g, "The code is 4000."), "4000");
    CHECK(!facts_answer_contained(&g, "1400"), "1400");
    CHECK(facts_answer_contained(&g, "code:400"), "colon");
    char u0[] = "U.S.", o0[] = "one";
    char *us[] = {u0, o0};
    g.answers = us;
    g.n_answers = 2;
    CHECK(facts_answer_contained(&g, "the U.S. army"), "U.S.");
    CHECK(!facts_answer_contained(&g, "someone said so"), "one in someone");
    char e0[] = "  ";
    char *em[] = {e0};
    g.answers = em;
    g.n_answers = 1;
    CHECK(!facts_answer_contained(&g, "anything") && !facts_answer_matches(&g, "  "), "empty answer");
    char w0[] = "\xC3\x9C" "ber";
    char *wu[] = {w0};
    g.answers = wu;
    CHECK(facts_answer_contained(&g, "x \xC3\x9C" "ber y"), "utf8");
}

static void test_abstention(void) {
    static const char *yes[] = {
        "I don't know.", "i do not know", "I DON'T KNOW", "I don\xE2\x80\x99t know the answer.",
        "Sorry, I'm not sure.", "I am not sure about that", "I do not have that information.",
        "I cannot answer that question.", "I can't answer", "I'm unable to answer this.",
        "Unknown", "unknown.", "N/A", "No idea", "I have no idea.", "I\xE2\x80\x99m not certain",
        "I'm sorry, but I don't have information on that.", "I couldn't find any information.",
        "Honestly,  I  don't   know",
    };
    static const char *no[] = {
        "Paris", "The answer is unknown to most people but it is Paris", "I know: Paris",
        "Nobody knows", "", "Canberra is the capital.",
    };
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++)
        CHECK(facts_is_abstention(yes[i]), "'%s' should be an abstention", yes[i]);
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        CHECK(!facts_is_abstention(no[i]), "'%s' should not be an abstention", no[i]);
    /* Phrases are matched as prefixes of words at the end: documented. */
    CHECK(facts_is_abstention("I don't knowingly lie") == 1, "phrase match is not end-bounded");
    CHECK(!facts_is_abstention("Hi don't know") , "word boundary at the start");
    CHECK(!facts_is_abstention(NULL), "NULL");
}

/* Subjects from the file's templates (facts_infer_subjects): the span the
 * most questions read the same around, a template word more only where it
 * keeps 1 in 8 of them; given subjects kept; questions that share no
 * template, or too few, keep none; case aside; long questions left alone. */
static void test_infer_subjects(void) {
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    REQUIRE(m, "memstream");
    /* 3 of 30 start with "South": "capital of South _?" has 3 questions, "capital of _?" 30 (> 8 x 3) */
    static const char *const named[] = {"France", "South Africa", "South Sudan", "South Georgia", "New Zealand", "Peru",
                                        "Saint Kitts and Nevis", "Korea, Republic of", "Papua New Guinea"};
    enum { nc = 30 };
    char countries[nc][32];
    for (int i = 0; i < nc; i++)
        snprintf(countries[i], sizeof countries[i], "%s", i < (int)(sizeof named / sizeof *named) ? named[i] : "Land");
    for (int i = (int)(sizeof named / sizeof *named); i < nc; i++) snprintf(countries[i], sizeof countries[i], "%c%cland", 'A' + i / 26, 'a' + i % 26);
    for (int i = 0; i < nc; i++) fprintf(m, "{\"question\": \"What is the capital of %s?\", \"answer\": \"x%d\"}\n", countries[i], i);
    fprintf(m, "{\"question\": \"what is the CAPITAL of   Mali?\", \"answer\": \"Bamako\"}\n");
    fprintf(m, "{\"question\": \"What is the capital of Chad?\", \"answer\": \"N'Djamena\", \"subject\": \"Republic of Chad\"}\n");
    fprintf(m, "{\"question\": \"What is the capital of Togo\", \"answer\": \"Lome\"}\n"); /* no mark: another template, alone */
    for (int i = 0; i < 3; i++) fprintf(m, "{\"question\": \"Which TCP port does the svc%d service use?\", \"answer\": \"%d\"}\n", i, 100 + i);
    fprintf(m, "{\"question\": \"who wrote hamlet\", \"answer\": \"Shakespeare\"}\n");
    fprintf(m, "{\"question\": \"What is the population of Peru?\", \"answer\": \"34 million\"}\n");
    fprintf(m, "{\"question\": \"");
    for (int i = 0; i < 70; i++) fprintf(m, "word%d ", i);
    fprintf(m, "of Peru?\", \"answer\": \"long\"}\n");
    fclose(m);
    fact_set *fs = parse_ok(text, "t.jsonl", FACTS_CONFLICT_ERROR);
    free(text);
    if (!fs) return;
    const int n = fs->n;
    CHECK(n == nc + 9, "%d facts", n);
    CHECK(facts_infer_subjects(fs, 1) == 0, "min_count < 2 infers nothing");
    const int got = facts_infer_subjects(fs, 3);
    CHECK(got == nc + 1 + 3, "inferred %d subjects, want %d", got, nc + 4);
    int right = 1;
    for (int i = 0; i < nc; i++)
        if (!fs->v[i].subject || strcmp(fs->v[i].subject, countries[i]) != 0) {
            fprintf(stderr, "    %s -> %s\n", fs->v[i].question, fs->v[i].subject ? fs->v[i].subject : "(none)");
            right = 0;
        }
    CHECK(right, "every country's span is its subject (\"South Africa\", not \"Africa\")");
    CHECK(fs->v[nc].subject && !strcmp(fs->v[nc].subject, "Mali"), "case and spaces aside (%s)", fs->v[nc].subject ? fs->v[nc].subject : "none");
    CHECK(fs->v[nc + 1].subject && !strcmp(fs->v[nc + 1].subject, "Republic of Chad"), "a given subject is kept");
    CHECK(!fs->v[nc + 2].subject, "a question without the mark is another template (1 question): none");
    for (int i = 0; i < 3; i++) {
        char want[16];
        snprintf(want, sizeof want, "svc%d", i);
        CHECK(fs->v[nc + 3 + i].subject && !strcmp(fs->v[nc + 3 + i].subject, want), "service %d: %s", i,
              fs->v[nc + 3 + i].subject ? fs->v[nc + 3 + i].subject : "none");
    }
    CHECK(!fs->v[nc + 6].subject && !fs->v[nc + 7].subject && !fs->v[nc + 8].subject,
          "no shared template (NQ style, a single population question) or over 64 words: none");
    CHECK(facts_infer_subjects(fs, 3) == 0, "a second pass finds every subject taken");
    facts_free(fs);
    /* the shared one-template sets: every question gets its subject; NQ's free questions mostly none */
    static const struct { const char *rel; int n_min, n_max; const char *first; } sets[] = {
        {"data/facts/capitals.jsonl", 219, 219, "Colombia"},
        {"data/facts/languages.jsonl", 7001, 7001, "Wusa Nasu"},
        {"data/facts/services.jsonl", 317, 318, "ldaps"},
        {"data/facts/NQ-open.dev.jsonl", 1, 3610 / 4, NULL},
    };
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        const char *p = test_shared_path(sets[i].rel);
        fact_set *rs = NULL;
        if (!p || facts_load(p, FACTS_CONFLICT_FIRST, &rs) != MOME_OK) continue;
        const int k = facts_infer_subjects(rs, 3);
        CHECK(k >= sets[i].n_min && k <= sets[i].n_max && (!sets[i].first || (rs->v[0].subject && !strcmp(rs->v[0].subject, sets[i].first))),
              "%s: %d of %d subjects inferred (want %d..%d), the first '%s'", sets[i].rel, k, rs->n, sets[i].n_min, sets[i].n_max,
              rs->v[0].subject ? rs->v[0].subject : "none");
        facts_free(rs);
    }
}

/* ------------------------------------------------------------ real sets */

static void test_real_sets(void) {
    static const struct { const char *rel; int n; int multi; } sets[] = {
        {"data/facts/languages.jsonl", 7001, 0},
        {"data/facts/NQ-open.dev.jsonl", 3610, 1},
        {"data/facts/capitals.jsonl", 219, 0},
        {"data/facts/iso_codes.jsonl", 675, 0},
        {"data/facts/services.jsonl", 318, 0},
    };
    int found = 0;
    for (size_t i = 0; i < sizeof sets / sizeof *sets; i++) {
        const char *p = test_shared_path(sets[i].rel);
        if (!p) continue;
        found++;
        char path[8192];
        snprintf(path, sizeof path, "%s", p);
        fact_set *fs = NULL;
        double t0 = mome_time_s();
        int rc = facts_load(path, FACTS_CONFLICT_ERROR, &fs);
        double dt = mome_time_s() - t0;
        CHECK(rc == MOME_OK, "%s: %s", path, mome_errmsg());
        if (rc != MOME_OK) continue;
        /* None of the shared sets repeats a question (checked: no duplicates, no conflicts). */
        CHECK(fs->n == sets[i].n, "%s: %d facts, want %d", path, fs->n, sets[i].n);
        CHECK(fs->n_duplicates == 0 && fs->n_conflicts == 0, "%s: dups %d", path, fs->n_duplicates);
        int multi = 0, max_ans = 0;
        for (int k = 0; k < fs->n; k++) {
            if (fs->v[k].n_answers > 1) multi++;
            if (fs->v[k].n_answers > max_ans) max_ans = fs->v[k].n_answers;
            CHECK(fs->v[k].line == k + 1, "%s: line %d at %d", path, fs->v[k].line, k);
            if (fs->v[k].line != k + 1) break;
        }
        if (sets[i].multi)
            CHECK(multi > 100, "%s: %d facts with several answers", path, multi);
        else
            CHECK(multi == 0, "%s: %d facts with several answers", path, multi);
        /* every fact scores as correct against its own trained answer */
        int self = 0;
        for (int k = 0; k < fs->n; k++) self += facts_answer_matches(&fs->v[k], fs->v[k].answers[0]);
        CHECK(self == fs->n, "%s: %d of %d match themselves", path, self, fs->n);
        printf("     %s: %d facts (%d with answer lists, up to %d), %.1f ms\n", sets[i].rel, fs->n, multi,
               max_ans, dt * 1e3);
        facts_free(fs);
    }
    /* TruthfulQA's CSV has "Question" but "Best Answer", not "answer". */
    const char *tq = test_shared_path("data/facts/TruthfulQA.csv");
    if (tq) {
        char path[8192];
        snprintf(path, sizeof path, "%s", tq);
        fact_set *fs = (fact_set *)1;
        int rc = facts_load(path, FACTS_CONFLICT_ERROR, &fs);
        CHECK(rc == MOME_ERR_FORMAT && fs == NULL, "rc %d", rc);
        CHECK(strstr(mome_errmsg(), "TruthfulQA.csv:1: CSV header has no 'answer' column") &&
                  strstr(mome_errmsg(), "\"Best Answer\""), "%s", mome_errmsg());
    }
    if (!found) SKIP("shared fact sets not found (../shared/data/facts)");
}

/* The demo fact set made by tools/make_demo_facts.py from Debian's iso-codes. */
static void test_demo_tool(void) {
    FILE *f = fopen("/usr/share/iso-codes/json/iso_3166-1.json", "rb");
    if (!f) SKIP("iso-codes is not installed");
    fclose(f);
    if (system("python3 -c 'import json' >/dev/null 2>&1") != 0) SKIP("python3 not found");
    char cmd[2048], out1[512], out2[512];
    snprintf(out1, sizeof out1, "%s", tmp_path("demo1.jsonl"));
    snprintf(out2, sizeof out2, "%s", tmp_path("demo2.jsonl"));
    snprintf(cmd, sizeof cmd, "python3 tools/make_demo_facts.py --out '%s' && "
             "python3 tools/make_demo_facts.py --limit 20 --kind numeric --out '%s'", out1, out2);
    REQUIRE(system(cmd) == 0, "%s failed", cmd);
    fact_set *fs = NULL;
    int rc = facts_load(out1, FACTS_CONFLICT_ERROR, &fs);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    CHECK(fs->n >= 240 && fs->n_duplicates == 0, "n %d", fs->n);
    int ok = 1;
    for (int i = 0; i < fs->n; i++) {
        const fact *x = &fs->v[i];
        if (strlen(x->answers[0]) != 3 || x->n_paraphrases != 2 ||
            !strstr(x->question, "ISO 3166-1 alpha-3 code of"))
            ok = 0;
    }
    CHECK(ok, "every fact is an alpha-3 question with 2 paraphrases");
    facts_free(fs);
    rc = facts_load(out2, FACTS_CONFLICT_ERROR, &fs);
    REQUIRE(rc == MOME_OK, "%s", mome_errmsg());
    CHECK(fs->n == 20 && strstr(fs->v[0].question, "numeric"), "n %d", fs->n);
    facts_free(fs);
    remove(out1);
    remove(out2);
}

int main(void) {
    snprintf(g_tmp, sizeof g_tmp, "/tmp/mome_test_facts_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    RUN(test_jsonl_basic);
    RUN(test_chat_format);
    RUN(test_json_errors);
    RUN(test_native_lists);
    RUN(test_zsre);
    RUN(test_subject);
    RUN(test_counterfact);
    RUN(test_json_array);
    RUN(test_editing_sets);
    RUN(test_csv_basic);
    RUN(test_csv_errors);
    RUN(test_format_detection);
    RUN(test_utf8);
    RUN(test_limits);
    RUN(test_load_files);
    RUN(test_duplicates);
    RUN(test_conflicts);
    RUN(test_many_facts_linear);
    RUN(test_normalize);
    RUN(test_matching);
    RUN(test_abstention);
    RUN(test_infer_subjects);
    RUN(test_real_sets);
    RUN(test_demo_tool);
    rmdir(g_tmp);
    return test_summary();
}
