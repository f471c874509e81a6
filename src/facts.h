/* facts.h - the user's facts: parsing, validation, answer matching.
 *
 * A fact is one question with the answer the model must learn. Users bring
 * facts in one of these formats; the container is chosen by the file name
 * (.csv -> CSV; .jsonl/.ndjson -> JSON lines; .json -> a JSON array when the
 * first non-blank byte is '[', else JSON lines) and otherwise by content
 * (first non-blank byte '[' -> JSON array, '{' -> JSON lines, else CSV). In
 * JSON lines and JSON arrays alike each object is read by its keys:
 *
 *   Native, one object per line (or array element):
 *     {"question": "...", "answer": "..." | ["...", ...],
 *      "paraphrases": ["...", ...],                      (optional)
 *      "neighbors": ["...", ...],                        (optional)
 *      "train_wordings": ["...", ...],                   (optional)
 *      "system": "..."}                                  (optional)
 *     With an answer list the first answer is the one trained; any of them
 *     counts as correct in evaluation. "neighbors" are other questions whose
 *     answers must not change when the memory is attached (locality checks);
 *     "train_wordings" are extra wordings of the question to train on;
 *     "subject" (optional, in every JSON format and as a CSV column) names
 *     what the question is about, and the tuner asks other questions about
 *     it to learn where the fact does not apply. Other keys ("source", ...)
 *     are ignored.
 *   Chat fine-tuning format:
 *     {"messages": [{"role": "system", "content": S},     (optional)
 *                   {"role": "user", "content": Q},
 *                   {"role": "assistant", "content": A}]}
 *     The LAST user message is the question and the message right after it
 *     must be the assistant's answer; the first system message (if any) is
 *     kept as the fact's system prompt. Other roles are ignored.
 *   zsRE, as the knowledge-editing field ships it (recognised by "src", "alt"
 *     or "loc" when there is no "question"/"messages"):
 *     {"src": Q, "alt": A, "rephrase": P, "loc": "nq question: N", ...}
 *     src is the question, alt the one (trained) answer, rephrase a
 *     paraphrase (a string or a list), loc a neighbour question with its
 *     leading "nq question:" removed (otherwise kept as is; a string or a
 *     list); "answers", "pred", "loc_ans", "cond" are ignored. A
 *     record whose alt is empty (the published zsRE sets have a few: no edit
 *     to make) is skipped and counted in n_skipped.
 *   CounterFact (recognised by "prompt", "target_new", "rephrase_prompt" or
 *     "locality_prompt"):
 *     {"prompt": Q, "target_new": A | {"str": A}, "rephrase_prompt": P | [P...],
 *      "locality_prompt": N | [N...], ...}
 *     prompt is the question, target_new the answer, rephrase_prompt the
 *     paraphrases, locality_prompt the neighbour questions; "ground_truth",
 *     "case_id", ... are ignored.
 *   CSV (RFC 4180: quoted fields, "" for a quote, commas and newlines inside
 *     quotes, LF or CRLF) with a header row naming a `question` and an
 *     `answer` column (case-insensitive, extra columns ignored), optionally
 *     `paraphrases` (alternatives separated by '|', empty items skipped) and
 *     `system`. A CSV answer is one string (no list).
 *
 * Validation is strict and every error is one message, in the form
 *   "FILE:LINE: field 'answer': empty"
 * where LINE is the physical line on which the record starts (in a JSON
 * array: the line where the element starts; for malformed JSON: the line
 * where the parser stopped): malformed JSON (with the column and the text
 * cJSON stopped at), a line or array element that is not an object, an array
 * that is not closed or has a trailing comma, missing or mistyped fields, a
 * question/answer/paraphrase/neighbour that is empty after trimming, invalid
 * UTF-8 or a NUL byte anywhere in the file, an
 * unterminated CSV quote (with the line where it opened), a CSV header without
 * the needed columns, a file with no facts. A UTF-8 BOM at the start of the
 * file is ignored; blank lines (and CSV rows whose fields are all blank) are
 * skipped. Strings are stored trimmed of ASCII whitespace.
 *
 * Limits against hostile input: a file (or buffer) of at most FACTS_MAX_FILE
 * bytes, one JSON line or array element of at most FACTS_MAX_RECORD bytes, a
 * field of at most FACTS_MAX_FIELD bytes, at most FACTS_MAX_LIST items in
 * each list of a fact. Parsing is linear in the input: lines are split with
 * memchr, array elements are delimited by one scan that tracks strings and
 * nesting, CSV is a single-pass state machine, and duplicate questions are
 * found with a hash table.
 *
 * Duplicates. Two facts have the same question when their trimmed question
 * AND system prompt are byte-identical. If their first (trained) answers are
 * equal after facts_normalize_answer(), the later one is a duplicate: it is
 * dropped (the first occurrence is kept as it is, whatever the policy) and
 * counted in n_duplicates. Otherwise it is a conflict,
 * resolved by the policy: FACTS_CONFLICT_ERROR fails with a message naming
 * both line numbers and both answers; FACTS_CONFLICT_FIRST keeps the earlier
 * fact; FACTS_CONFLICT_LAST replaces the earlier fact by the later one (at the
 * earlier one's position). Resolved conflicts are counted in n_conflicts.
 *
 * Like the rest of the library these functions never print or exit: they
 * return MOME_OK or a negative mome_status and set mome_errmsg().
 */
#ifndef MOME_FACTS_H
#define MOME_FACTS_H

#include <stddef.h>

#include "mome.h"

#define FACTS_MAX_FILE   ((size_t)1 << 30)   /* 1 GiB */
#define FACTS_MAX_RECORD ((size_t)8 << 20)   /* 8 MiB per JSON line / element */
#define FACTS_MAX_FIELD  ((size_t)64 << 10)  /* 64 KiB per string */
#define FACTS_MAX_LIST   1024                /* items per list of a fact */

typedef struct fact {
    char *question;        /* trimmed, non-empty */
    char **answers;        /* n_answers >= 1; answers[0] is trained */
    int n_answers;
    char **paraphrases;    /* other wordings of the question (may be NULL) */
    int n_paraphrases;
    char *system;          /* per-fact system prompt, or NULL */
    char *subject;         /* what the question is about ("France"), or NULL: the
                            * tuner asks other questions about it to learn which
                            * questions are not this fact's */
    char **neighbors;      /* questions whose answers with the memory must equal
                            * the answers without it (may be NULL) */
    int n_neighbors;
    char **train_wordings; /* extra wordings of the question to train on (may be NULL) */
    int n_train_wordings;
    int line;              /* physical line where the record starts (1-based) */
} fact;

/* The messages that ask fact fa as its file states it: its system prompt,
 * if it has one, then its question. Returns their number (1 or 2). */
static inline int fact_messages(const fact *fa, mome_chat_msg msgs[2]) {
    int n = 0;
    if (fa->system) msgs[n++] = (mome_chat_msg){"system", fa->system};
    msgs[n++] = (mome_chat_msg){"user", fa->question};
    return n;
}

enum facts_format { FACTS_FORMAT_JSONL = 1, FACTS_FORMAT_CSV = 2, FACTS_FORMAT_JSON_ARRAY = 3 };

typedef struct fact_set {
    fact *v;               /* facts in file order (duplicates removed) */
    int n;
    char *path;            /* the name given (file path), for messages */
    int format;            /* enum facts_format */
    int n_duplicates;      /* same question, same answer: dropped */
    int n_conflicts;       /* same question, other answer: resolved by policy */
    int n_skipped;         /* zsRE records with an empty "alt": nothing to learn, dropped */
} fact_set;

enum facts_conflict {
    FACTS_CONFLICT_ERROR = 0,  /* default: fail, naming both lines */
    FACTS_CONFLICT_FIRST,      /* keep the earliest fact */
    FACTS_CONFLICT_LAST,       /* keep the latest fact */
};

/* Read and parse a fact file. On success *out holds at least one fact; on
 * error *out is NULL and mome_errmsg() says what is wrong (MOME_ERR_IO for an
 * unreadable file, MOME_ERR_FORMAT for bad content, MOME_ERR_NOMEM). */
int facts_load(const char *path, enum facts_conflict policy, fact_set **out);

/* Parse facts from memory (buf need not be NUL-terminated). name is used in
 * messages and, by its extension, to pick the format (may be NULL). */
int facts_parse_buffer(const char *buf, size_t len, const char *name,
                       enum facts_conflict policy, fact_set **out);

void facts_free(fact_set *fs);

/* Subjects for the facts that name none, from the file's own templates: a
 * question's subject is a span of at most 8 words, followed by at least
 * one word (the final ? . ! : counts as a word), such that at least
 * min_count questions read the same around their span (the same words
 * before and after, ASCII case aside, at least 4 such words besides the
 * mark). Of the spans a question allows, the one
 * whose template scores highest by (template words) + log2(questions sharing
 * it) / 3 is taken (one template word more is worth 8 times fewer
 * questions): "What is the capital of South Africa?" takes "capital of _?"
 * (219 questions) over "capital of South _?" (3), "What is the position of
 * X?" takes "position of _?" over "position _?", and "What is the ISO 639-3
 * code of the X language?" takes X. Questions that share no template (NQ's)
 * keep none. Returns how many facts got a subject (>= 0), or -MOME_ERR_NOMEM;
 * min_count < 2 infers nothing. */
int facts_infer_subjects(fact_set *fs, int min_count);

/* Normalize for exact-match scoring: trim whitespace, collapse internal runs
 * of whitespace to one space, drop one final '.' (and trim again). Case is
 * kept. Returns a malloc'd string, or NULL (out of memory, s NULL). */
char *facts_normalize_answer(const char *s);

/* 1 if output, normalized, equals any expected answer, normalized
 * (case-sensitive: "mda" does not match "MDA"); 0 otherwise. */
int facts_answer_matches(const fact *f, const char *output);

/* 1 if any expected answer (normalized) occurs inside the output (normalized),
 * ASCII case-insensitively, at word boundaries: where the answer starts
 * (ends) with an ASCII letter or digit, the output byte just before (after)
 * the occurrence must not be one (so "400" is not found in "4000", nor "one"
 * in "someone", but "U.S" is found in "the U.S. army"). Non-ASCII bytes
 * compare exactly. Empty answers never match. */
int facts_answer_contained(const fact *f, const char *output);

/* 1 if the output is an explicit abstention. Case-insensitive, with the
 * typographic apostrophes U+2018/U+2019 read as "'". It is one when the
 * output contains, starting at a word boundary, one of:
 *   i don't know, i do not know, i dont know,
 *   i'm not sure, i am not sure, im not sure, i'm not certain,
 *   i am not certain, i'm unsure, i am unsure,
 *   i do not have that information, i don't have that information,
 *   i do not have (enough|any|the) information, i don't have (enough|any|the)
 *   information, i have no information, i have no idea,
 *   i cannot answer, i can't answer, i can not answer, i'm unable to answer,
 *   i am unable to answer, i'm not able to answer, i am not able to answer,
 *   i cannot provide, i can't provide, i'm not aware of, i am not aware of,
 *   i couldn't find, i could not find, there is no information,
 *   i'm sorry, but i don't, i am sorry, but i do not,
 * or when the whole output (normalized) is one of:
 *   unknown, not sure, no idea, don't know, dont know, n/a, no answer,
 *   i don't know, unsure.
 * Callers that score should test facts_answer_matches/contained first: an
 * output such as "I'm not sure, but I think Paris" counts as an abstention
 * here. */
int facts_is_abstention(const char *output);

#endif
