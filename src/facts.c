/* facts.c - fact files (JSON lines, JSON arrays, CSV; native, chat, zsRE and
 * CounterFact objects) and answer matching.
 *
 * One pass checks the whole buffer for valid UTF-8 and NUL bytes (so every
 * later string is clean text), then a format-specific pass turns records into
 * facts: JSON lines are split with memchr and each line is handed to cJSON
 * (copied into a NUL-terminated scratch buffer); a JSON array is cut into its
 * elements by one scan that tracks strings and nesting (so each element keeps
 * the line it starts on) and each element goes to cJSON the same way; every
 * object is then read by its keys (fact_from_object); CSV goes through a
 * byte-at-a-time RFC 4180 state machine. Each fact goes through add_fact(),
 * which finds an earlier fact with the same (question, system) in an
 * open-addressing hash table and applies the duplicate/conflict policy.
 * Everything is linear in the input size.
 */
#include "facts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "util.h"

#define CSV_MAX_COLUMNS 1024

/* ------------------------------------------------------------ helpers */

static int is_ws(unsigned char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
static int is_alnum_ascii(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static unsigned char lower_ascii(unsigned char c) {
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static void trim(const char **s, size_t *n) {
    const char *p = *s;
    size_t m = *n;
    while (m && is_ws((unsigned char)p[0])) p++, m--;
    while (m && is_ws((unsigned char)p[m - 1])) m--;
    *s = p;
    *n = m;
}

static char *dupn(const char *s, size_t n) {
    char *d = mome_malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Write a short, printable, quoted excerpt of s[0..n) into dst: control bytes
 * escaped, cut at a UTF-8 boundary after about max bytes with "...". */
static void excerpt(char *dst, size_t cap, const char *s, size_t n, size_t max) {
    size_t o = 0;
    if (cap < 8) {
        if (cap) dst[0] = 0;
        return;
    }
    dst[o++] = '"';
    size_t i = 0;
    for (; i < n && i < max && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') { dst[o++] = '\\'; dst[o++] = 'n'; }
        else if (c == '\r') { dst[o++] = '\\'; dst[o++] = 'r'; }
        else if (c == '\t') { dst[o++] = '\\'; dst[o++] = 't'; }
        else if (c == '"') { dst[o++] = '\\'; dst[o++] = '"'; }
        else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(dst + o, cap - o, "\\x%02x", c);
        else dst[o++] = (char)c;
    }
    if (i < n) {
        /* do not end inside a multi-byte sequence */
        while (o > 1 && ((unsigned char)dst[o - 1] & 0xC0) == 0x80) o--;
        if (o > 1 && ((unsigned char)dst[o - 1] & 0xC0) == 0xC0) o--;
        dst[o++] = '"';
        memcpy(dst + o, "...", 3);
        o += 3;
    } else {
        dst[o++] = '"';
    }
    dst[o] = 0;
}

/* ------------------------------------------------------------ parser state */

typedef struct parser {
    const char *name;
    enum facts_conflict policy;
    fact_set *fs;
    int cap;
    uint64_t *hashes;       /* per fact, parallel to fs->v */
    int32_t *slots;         /* open addressing: index into fs->v, or -1 */
    size_t nslots;          /* power of two */
    char *scratch;          /* NUL-terminated copy of one JSON line / element */
    size_t scratch_cap;
    int array_line;         /* line of the '[' that opens a JSON array */
} parser;

/* "NAME:LINE: message" (or "NAME: message" when line is 0). */
MOME_PRINTF(3, 4)
static int perr(const parser *p, int line, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (line > 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s:%d: %s", p->name, line, msg);
    return mome_seterr_code(MOME_ERR_FORMAT, "%s: %s", p->name, msg);
}

static void fact_clear(fact *f) {
    free(f->question);
    for (int i = 0; i < f->n_answers; i++) free(f->answers[i]);
    free(f->answers);
    for (int i = 0; i < f->n_paraphrases; i++) free(f->paraphrases[i]);
    free(f->paraphrases);
    free(f->system);
    free(f->subject);
    for (int i = 0; i < f->n_neighbors; i++) free(f->neighbors[i]);
    free(f->neighbors);
    for (int i = 0; i < f->n_train_wordings; i++) free(f->train_wordings[i]);
    free(f->train_wordings);
    memset(f, 0, sizeof *f);
}

void facts_free(fact_set *fs) {
    if (!fs) return;
    for (int i = 0; i < fs->n; i++) fact_clear(&fs->v[i]);
    free(fs->v);
    free(fs->path);
    free(fs);
}

/* Trim s[0..n), check it is non-empty and within the field limit, copy it.
 * field is the name used in messages ("answer[2]"). If allow_empty, an empty
 * string gives *out = NULL and success. */
static int take_string(const parser *p, int line, const char *field, const char *s,
                       size_t n, int allow_empty, char **out) {
    *out = NULL;
    trim(&s, &n);
    if (n == 0) {
        if (allow_empty) return MOME_OK;
        return perr(p, line, "field '%s': empty", field);
    }
    if (n > FACTS_MAX_FIELD)
        return perr(p, line, "field '%s': %zu bytes, more than the limit of %zu bytes (64 KiB) for one field",
                    field, n, (size_t)FACTS_MAX_FIELD);
    *out = dupn(s, n);
    return *out ? MOME_OK : MOME_ERR_NOMEM;
}

/* Append s to a growable string list (count < FACTS_MAX_LIST checked by caller). */
static int list_push(char ***v, int *n, char *s) {
    char **nv = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!nv) {
        free(s);
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    }
    nv[(*n)++] = s;
    *v = nv;
    return MOME_OK;
}

/* ------------------------------------------------------------ UTF-8 */

/* Whole-buffer check: valid UTF-8 (no overlongs, surrogates or code points
 * above U+10FFFF) and no NUL byte; errors give the line and byte column. */
static int check_utf8(const parser *p, const unsigned char *s, size_t n) {
    int line = 1;
    size_t line_start = 0;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == 0)
                return perr(p, line, "NUL byte at column %zu (a fact file must be UTF-8 text)",
                            i - line_start + 1);
            if (c == '\n') {
                line++;
                line_start = i + 1;
            }
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else goto bad;
        if (n - i <= need) goto bad;
        for (size_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += need + 1;
        continue;
    bad:
        return perr(p, line, "invalid UTF-8 (byte 0x%02x at column %zu); save the file as UTF-8",
                    c, i - line_start + 1);
    }
    return MOME_OK;
}

/* ------------------------------------------------------------ facts, dedup */

static uint64_t key_hash(const char *q, const char *sys) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *s = (const unsigned char *)q; *s; s++) h = (h ^ *s) * 1099511628211ull;
    h = (h ^ 0xFF) * 1099511628211ull;   /* 0xFF never occurs in UTF-8 */
    if (sys) {
        h = (h ^ 0x01) * 1099511628211ull;
        for (const unsigned char *s = (const unsigned char *)sys; *s; s++) h = (h ^ *s) * 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static int same_key(const fact *a, const fact *b) {
    if (strcmp(a->question, b->question) != 0) return 0;
    if (!a->system || !b->system) return a->system == b->system;
    return strcmp(a->system, b->system) == 0;
}

static int table_grow(parser *p) {
    size_t ns = p->nslots ? p->nslots * 2 : 1024;
    int32_t *sl = malloc(ns * sizeof *sl);
    if (!sl) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    memset(sl, 0xFF, ns * sizeof *sl);
    for (int i = 0; i < p->fs->n; i++) {
        size_t j = (size_t)p->hashes[i] & (ns - 1);
        while (sl[j] >= 0) j = (j + 1) & (ns - 1);
        sl[j] = i;
    }
    free(p->slots);
    p->slots = sl;
    p->nslots = ns;
    return MOME_OK;
}

static int answers_equal(const char *a, const char *b) {
    char *na = facts_normalize_answer(a), *nb = facts_normalize_answer(b);
    int eq = na && nb && strcmp(na, nb) == 0;
    free(na);
    free(nb);
    return eq;
}

/* Take ownership of *f (cleared on return, success or not). */
static int add_fact(parser *p, fact *f) {
    fact_set *fs = p->fs;
    int rc = MOME_OK;
    if ((size_t)(fs->n + 1) * 2 > p->nslots && (rc = table_grow(p)) != MOME_OK) goto out;
    uint64_t h = key_hash(f->question, f->system);
    size_t j = (size_t)h & (p->nslots - 1);
    while (p->slots[j] >= 0) {
        int k = p->slots[j];
        if (p->hashes[k] == h && same_key(&fs->v[k], f)) {
            fact *g = &fs->v[k];
            if (answers_equal(g->answers[0], f->answers[0])) {
                fs->n_duplicates++;
                goto out;
            }
            if (p->policy == FACTS_CONFLICT_FIRST) {
                fs->n_conflicts++;
                goto out;
            }
            if (p->policy == FACTS_CONFLICT_LAST) {
                fs->n_conflicts++;
                fact_clear(g);
                *g = *f;
                memset(f, 0, sizeof *f);
                goto out;
            }
            char q[160], a1[160], a2[160];
            excerpt(q, sizeof q, f->question, strlen(f->question), 100);
            excerpt(a1, sizeof a1, g->answers[0], strlen(g->answers[0]), 100);
            excerpt(a2, sizeof a2, f->answers[0], strlen(f->answers[0]), 100);
            rc = perr(p, f->line,
                      "field 'answer': conflicting answers for the question %s: line %d says %s, "
                      "line %d says %s; fix the file or pass --on-conflict first|last to keep "
                      "the first or the last",
                      q, g->line, a1, f->line, a2);
            goto out;
        }
        j = (j + 1) & (p->nslots - 1);
    }
    if (fs->n == p->cap) {
        int nc = p->cap ? p->cap * 2 : 256;
        fact *nv = realloc(fs->v, (size_t)nc * sizeof *nv);
        if (!nv) { rc = mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); goto out; }
        fs->v = nv;
        uint64_t *nh = realloc(p->hashes, (size_t)nc * sizeof *nh);
        if (!nh) { rc = mome_seterr_code(MOME_ERR_NOMEM, "out of memory"); goto out; }
        p->hashes = nh;
        p->cap = nc;
    }
    fs->v[fs->n] = *f;
    p->hashes[fs->n] = h;
    p->slots[j] = fs->n;
    fs->n++;
    memset(f, 0, sizeof *f);
out:
    fact_clear(f);
    return rc;
}

/* ------------------------------------------------------------ JSON lines */

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    return "an unknown value";
}

/* A key that is absent: say so, with a hint when a near miss is there (else
 * the general hint, if any). */
static int missing_field(const parser *p, int line, const cJSON *obj, const char *key,
                         const char *plural, const char *hint) {
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string) continue;
        if (strcasecmp(c->string, key) == 0 || (plural && strcasecmp(c->string, plural) == 0))
            return perr(p, line, "field '%s': missing (found '%s'; the key is '%s')", key,
                        c->string, key);
    }
    return perr(p, line, "field '%s': missing%s", key, hint ? hint : "");
}

static int string_field(const parser *p, int line, const char *field, const cJSON *v,
                        int allow_empty, char **out) {
    *out = NULL;
    if (!cJSON_IsString(v) || !v->valuestring)
        return perr(p, line, "field '%s': expected a string, found %s", field, json_type_name(v));
    return take_string(p, line, field, v->valuestring, strlen(v->valuestring), allow_empty, out);
}

/* A list of strings, appended to *out; with allow_single also one string, and
 * then (unless empty_ok) the list must not be empty. */
static int string_list_field_x(const parser *p, int line, const char *field, const cJSON *v,
                               int allow_single, int empty_ok, char ***out, int *n_out) {
    char name[64];
    char *s;
    int rc;
    if (allow_single && cJSON_IsString(v)) {
        if ((rc = string_field(p, line, field, v, 0, &s)) != MOME_OK) return rc;
        return list_push(out, n_out, s);
    }
    if (!cJSON_IsArray(v))
        return perr(p, line, "field '%s': expected %s, found %s", field,
                    allow_single ? "a string or a list of strings" : "a list of strings",
                    json_type_name(v));
    int n = cJSON_GetArraySize(v);
    if (n == 0 && allow_single && !empty_ok) return perr(p, line, "field '%s': empty list", field);
    if (n > FACTS_MAX_LIST || *n_out + n > FACTS_MAX_LIST)
        return perr(p, line, "field '%s': %d items, more than the limit of %d", field, n,
                    FACTS_MAX_LIST);
    int i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        snprintf(name, sizeof name, "%s[%d]", field, i);
        if ((rc = string_field(p, line, name, c, 0, &s)) != MOME_OK) return rc;
        if ((rc = list_push(out, n_out, s)) != MOME_OK) return rc;
    }
    return MOME_OK;
}
static int string_list_field(const parser *p, int line, const char *field, const cJSON *v,
                             int allow_single, char ***out, int *n_out) {
    return string_list_field_x(p, line, field, v, allow_single, 0, out, n_out);
}

/* An optional list field (absent or null: nothing). */
static int optional_list(const parser *p, int line, const cJSON *obj, const char *key,
                         int allow_single, char ***out, int *n_out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return MOME_OK;
    return string_list_field_x(p, line, key, v, allow_single, 1, out, n_out);
}

static const char *KNOWN_KEYS[] = {
    "question", "answer", "paraphrases", "system", "messages", "neighbors", "train_wordings", "subject",
    "src", "alt", "rephrase", "loc",                                     /* zsRE */
    "prompt", "target_new", "rephrase_prompt", "locality_prompt",        /* CounterFact */
};
static const char *ZSRE_KEYS[] = {"src", "alt", "loc"};
static const char *CF_KEYS[] = {"prompt", "target_new", "rephrase_prompt", "locality_prompt"};
#define MISSING_QUESTION_HINT                                                               \
    " (a fact is {\"question\", \"answer\"}, {\"messages\": [...]}, zsRE {\"src\", \"alt\"} " \
    "or CounterFact {\"prompt\", \"target_new\"})"

static int parse_qa(const parser *p, int line, const cJSON *obj, fact *f) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "question");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "answer");
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(obj, "paraphrases");
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(obj, "system");
    int rc;
    if (!q) return missing_field(p, line, obj, "question", "questions", MISSING_QUESTION_HINT);
    if ((rc = string_field(p, line, "question", q, 0, &f->question)) != MOME_OK) return rc;
    if (!a) return missing_field(p, line, obj, "answer", "answers", NULL);
    if ((rc = string_list_field(p, line, "answer", a, 1, &f->answers, &f->n_answers)) != MOME_OK)
        return rc;
    if (ph && !cJSON_IsNull(ph) &&
        (rc = string_list_field(p, line, "paraphrases", ph, 0, &f->paraphrases,
                                &f->n_paraphrases)) != MOME_OK)
        return rc;
    if (sys && !cJSON_IsNull(sys) &&
        (rc = string_field(p, line, "system", sys, 1, &f->system)) != MOME_OK)
        return rc;
    if ((rc = optional_list(p, line, obj, "neighbors", 0, &f->neighbors, &f->n_neighbors)) != MOME_OK)
        return rc;
    return optional_list(p, line, obj, "train_wordings", 0, &f->train_wordings, &f->n_train_wordings);
}

#define SKIP_RECORD 1 /* a record with nothing to learn: counted in n_skipped */

/* zsRE: src = question, alt = the answer, rephrase = paraphrase(s),
 * loc = neighbour question(s) without the leading "nq question:". A record
 * whose alt is an empty string (the published sets have a few: no edit to
 * make) returns SKIP_RECORD. */
static int parse_zsre(const parser *p, int line, const cJSON *obj, fact *f) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "src");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "alt");
    char *s;
    int rc;
    if (!q) return missing_field(p, line, obj, "src", NULL, " (a zsRE record needs \"src\" and \"alt\")");
    if ((rc = string_field(p, line, "src", q, 0, &f->question)) != MOME_OK) return rc;
    if (!a) return missing_field(p, line, obj, "alt", NULL, " (a zsRE record needs \"src\" and \"alt\")");
    if ((rc = string_field(p, line, "alt", a, 1, &s)) != MOME_OK) return rc;
    if (!s) return SKIP_RECORD;
    if ((rc = list_push(&f->answers, &f->n_answers, s)) != MOME_OK) return rc;
    if ((rc = optional_list(p, line, obj, "rephrase", 1, &f->paraphrases, &f->n_paraphrases)) != MOME_OK)
        return rc;
    if ((rc = optional_list(p, line, obj, "loc", 1, &f->neighbors, &f->n_neighbors)) != MOME_OK) return rc;
    static const char PREFIX[] = "nq question:";
    const size_t np = sizeof PREFIX - 1;
    for (int i = 0; i < f->n_neighbors; i++) {
        char *t = f->neighbors[i];
        if (strncmp(t, PREFIX, np) != 0) continue;
        size_t k = np;
        while (t[k] && is_ws((unsigned char)t[k])) k++;
        if (!t[k]) {
            if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(obj, "loc")))
                return perr(p, line, "field 'loc': empty after its \"nq question:\" prefix");
            return perr(p, line, "field 'loc[%d]': empty after its \"nq question:\" prefix", i);
        }
        memmove(t, t + k, strlen(t + k) + 1);
    }
    return MOME_OK;
}

/* CounterFact: prompt = question, target_new = answer (a string or
 * {"str": ...}), rephrase_prompt = paraphrase(s), locality_prompt =
 * neighbour question(s). */
static int parse_counterfact(const parser *p, int line, const cJSON *obj, fact *f) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, "target_new");
    char *s;
    int rc;
    static const char HINT[] = " (a CounterFact record needs \"prompt\" and \"target_new\")";
    if (!q) return missing_field(p, line, obj, "prompt", NULL, HINT);
    if ((rc = string_field(p, line, "prompt", q, 0, &f->question)) != MOME_OK) return rc;
    if (!a) return missing_field(p, line, obj, "target_new", NULL, HINT);
    if (cJSON_IsObject(a)) {
        const cJSON *str = cJSON_GetObjectItemCaseSensitive(a, "str");
        if (!str) return perr(p, line, "field 'target_new.str': missing");
        if ((rc = string_field(p, line, "target_new.str", str, 0, &s)) != MOME_OK) return rc;
    } else if (cJSON_IsString(a)) {
        if ((rc = string_field(p, line, "target_new", a, 0, &s)) != MOME_OK) return rc;
    } else {
        return perr(p, line, "field 'target_new': expected a string or an object {\"str\": ...}, found %s",
                    json_type_name(a));
    }
    if ((rc = list_push(&f->answers, &f->n_answers, s)) != MOME_OK) return rc;
    if ((rc = optional_list(p, line, obj, "rephrase_prompt", 1, &f->paraphrases, &f->n_paraphrases)) !=
        MOME_OK)
        return rc;
    return optional_list(p, line, obj, "locality_prompt", 1, &f->neighbors, &f->n_neighbors);
}

static int has_any_key(const cJSON *obj, const char *const *keys, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (cJSON_GetObjectItemCaseSensitive(obj, keys[i])) return 1;
    return 0;
}

static int parse_chat(const parser *p, int line, const cJSON *msgs, fact *f) {
    char name[64];
    int rc;
    if (!cJSON_IsArray(msgs))
        return perr(p, line, "field 'messages': expected a list of messages, found %s",
                    json_type_name(msgs));
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return perr(p, line, "field 'messages': empty list");
    const cJSON *user = NULL, *sys = NULL;
    int i_user = -1, i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m))
            return perr(p, line, "field 'messages[%d]': expected an object, found %s", i,
                        json_type_name(m));
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!role) return perr(p, line, "field 'messages[%d].role': missing", i);
        if (!cJSON_IsString(role) || !role->valuestring)
            return perr(p, line, "field 'messages[%d].role': expected a string, found %s", i,
                        json_type_name(role));
        if (strcmp(role->valuestring, "user") == 0) user = m, i_user = i;
        else if (strcmp(role->valuestring, "system") == 0 && !sys) sys = m;
    }
    if (!user) return perr(p, line, "field 'messages': no message with role 'user'");
    const cJSON *asst = user->next;
    const cJSON *arole = asst ? cJSON_GetObjectItemCaseSensitive(asst, "role") : NULL;
    if (!asst || !arole || strcmp(arole->valuestring, "assistant") != 0)
        return perr(p, line,
                    "field 'messages': the last user message (messages[%d]) is not followed "
                    "by an assistant message with the answer", i_user);
    const struct { const cJSON *m; int idx; char **dst; int allow_empty; } take[3] = {
        {user, i_user, &f->question, 0},
        {asst, i_user + 1, NULL, 0},
        {sys, -1, &f->system, 1},
    };
    for (int k = 0; k < 3; k++) {
        if (!take[k].m) continue;
        int idx = take[k].idx;
        if (idx < 0) { /* index of the system message, for messages */
            idx = 0;
            for (const cJSON *m = msgs->child; m != take[k].m; m = m->next) idx++;
        }
        snprintf(name, sizeof name, "messages[%d].content", idx);
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(take[k].m, "content");
        if (!c) return perr(p, line, "field '%s': missing", name);
        char *s;
        if ((rc = string_field(p, line, name, c, take[k].allow_empty, &s)) != MOME_OK) return rc;
        if (take[k].dst) *take[k].dst = s;
        else if ((rc = list_push(&f->answers, &f->n_answers, s)) != MOME_OK) return rc;
    }
    return MOME_OK;
}

/* 1 if the line ends inside a string or with a list/object left open. */
static int json_unfinished(const char *s, size_t n) {
    long depth = 0;
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = 0;
        } else if (c == '"') in_str = 1;
        else if (c == '{' || c == '[') depth++;
        else if (c == '}' || c == ']') depth--;
    }
    return in_str || depth > 0;
}

/* Reject the JSON escape \u0000: cJSON would silently cut the string there. */
static int check_nul_escape(const parser *p, int line, const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && memcmp(s + i + 2, "0000", 4) == 0)
            return perr(p, line, "the escape \\u0000 (NUL) at column %zu is not allowed in a fact", i + 1);
        i++; /* skip the escaped character */
    }
    return MOME_OK;
}

/* Copy s[0..n) into the NUL-terminated scratch buffer and parse it with
 * cJSON: *obj is the value (NULL on a syntax error) and *stop the offset
 * where cJSON stopped (after the value, or at the error). */
static int scratch_parse(parser *p, const char *s, size_t n, cJSON **obj, size_t *stop) {
    if (n + 1 > p->scratch_cap) {
        size_t nc = p->scratch_cap ? p->scratch_cap : 4096;
        while (nc < n + 1) nc *= 2;
        char *ns = realloc(p->scratch, nc);
        if (!ns) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
        p->scratch = ns;
        p->scratch_cap = nc;
    }
    memcpy(p->scratch, s, n);
    p->scratch[n] = 0;
    const char *end = NULL;
    *obj = cJSON_ParseWithLengthOpts(p->scratch, n, &end, 0);
    *stop = end && end >= p->scratch && end <= p->scratch + n ? (size_t)(end - p->scratch) : 0;
    return MOME_OK;
}

/* Read one JSON object into a fact and add it (obj is deleted). The object's
 * keys choose the format: "messages" chat, "question" native, zsRE keys,
 * CounterFact keys; anything else is reported as a missing 'question'. */
static int fact_from_object(parser *p, int line, cJSON *obj) {
    int rc;
    if (!cJSON_IsObject(obj)) {
        rc = perr(p, line, "expected a JSON object, found %s", json_type_name(obj));
        cJSON_Delete(obj);
        return rc;
    }
    /* Our keys must not appear twice (cJSON would silently use the first). */
    for (const cJSON *c = obj->child; c; c = c->next) {
        if (!c->string) continue;
        for (size_t k = 0; k < sizeof KNOWN_KEYS / sizeof *KNOWN_KEYS; k++) {
            if (strcmp(c->string, KNOWN_KEYS[k]) != 0) continue;
            for (const cJSON *d = c->next; d; d = d->next)
                if (d->string && strcmp(d->string, c->string) == 0) {
                    rc = perr(p, line, "field '%s': appears twice in the object", c->string);
                    cJSON_Delete(obj);
                    return rc;
                }
        }
    }
    fact f = {0};
    f.line = line;
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    if (msgs) {
        if (cJSON_GetObjectItemCaseSensitive(obj, "question") ||
            cJSON_GetObjectItemCaseSensitive(obj, "answer"))
            rc = perr(p, line, "field 'messages': found together with 'question'/'answer'; "
                               "use one of the two formats per line");
        else
            rc = parse_chat(p, line, msgs, &f);
    } else if (cJSON_GetObjectItemCaseSensitive(obj, "question")) {
        rc = parse_qa(p, line, obj, &f);
    } else if (has_any_key(obj, ZSRE_KEYS, sizeof ZSRE_KEYS / sizeof *ZSRE_KEYS)) {
        rc = parse_zsre(p, line, obj, &f);
    } else if (has_any_key(obj, CF_KEYS, sizeof CF_KEYS / sizeof *CF_KEYS)) {
        rc = parse_counterfact(p, line, obj, &f);
    } else {
        rc = parse_qa(p, line, obj, &f);
    }
    /* "subject" means the same in every JSON format (zsRE and CounterFact
     * ship one) */
    const cJSON *subj = cJSON_GetObjectItemCaseSensitive(obj, "subject");
    if (rc == MOME_OK && subj && !cJSON_IsNull(subj)) rc = string_field(p, line, "subject", subj, 1, &f.subject);
    cJSON_Delete(obj);
    if (rc == SKIP_RECORD) {
        p->fs->n_skipped++;
        fact_clear(&f);
        return MOME_OK;
    }
    if (rc != MOME_OK) {
        fact_clear(&f);
        return rc;
    }
    return add_fact(p, &f);
}

static int parse_json_line(parser *p, const char *s, size_t n, int line) {
    char near[80];
    int rc;
    if (n > FACTS_MAX_RECORD)
        return perr(p, line, "line of %zu bytes, more than the limit of %zu bytes (8 MiB) for one fact",
                    n, (size_t)FACTS_MAX_RECORD);
    if ((rc = check_nul_escape(p, line, s, n)) != MOME_OK) return rc;
    cJSON *obj;
    size_t col;
    if ((rc = scratch_parse(p, s, n, &obj, &col)) != MOME_OK) return rc;
    if (!obj) {
        size_t first = 0;
        while (first < n && is_ws((unsigned char)s[first])) first++;
        const char *hint = (first < n && s[first] != '{')
                               ? " (each line must hold one JSON object: {\"question\": ..., \"answer\": ...})"
                               : "";
        size_t rest = n - col, last = n;
        while (rest && is_ws((unsigned char)s[col + rest - 1])) rest--;
        while (last && is_ws((unsigned char)s[last - 1])) last--;
        if (rest == 0 || (col + 1 >= last && json_unfinished(s, n)))
            return perr(p, line,
                        "malformed JSON: the line ends at column %zu inside an unfinished string, "
                        "list or object (one fact per line; objects cannot span lines)%s",
                        col + 1, hint);
        excerpt(near, sizeof near, s + col, rest, 24);
        size_t prev = col;
        while (prev && is_ws((unsigned char)s[prev - 1])) prev--;
        if (s[col] == '\'')
            hint = " (JSON strings and keys need double quotes)";
        else if ((s[col] == '}' || s[col] == ']') && prev && s[prev - 1] == ',')
            hint = " (a trailing comma?)";
        return perr(p, line, "malformed JSON at column %zu: cannot parse the text starting %s%s",
                    col + 1, near, hint);
    }
    size_t off = col;
    while (off < n && is_ws((unsigned char)s[off])) off++;
    if (off < n) {
        excerpt(near, sizeof near, s + off, n - off, 24);
        cJSON_Delete(obj);
        return perr(p, line, "malformed JSON: unexpected text after the object at column %zu: %s "
                    "(one fact per line)", off + 1, near);
    }
    return fact_from_object(p, line, obj);
}

static int parse_jsonl(parser *p, const char *buf, size_t len) {
    size_t pos = 0;
    int line = 1, rc;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len;
        size_t n = end - pos;
        const char *s = buf + pos;
        size_t k = 0;
        while (k < n && is_ws((unsigned char)s[k])) k++;
        if (k < n) {
            /* A JSON array instead of JSON lines. */
            if (s[k] == '[' && p->fs->n == 0)
                return perr(p, line,
                            "the file is a JSON array; a .jsonl file must be JSON lines, one "
                            "object per line (name it .json, or convert with: jq -c '.[]' FILE > "
                            "FILE.jsonl)");
            if ((rc = parse_json_line(p, s, n, line)) != MOME_OK) return rc;
        }
        line++;
        pos = end + 1;
    }
    return MOME_OK;
}

/* Advance *line over the newlines in buf[from..to). */
static void count_lines(const char *buf, size_t from, size_t to, int *line) {
    const char *q = buf + from, *e = buf + to;
    while (q < e && (q = memchr(q, '\n', (size_t)(e - q))) != NULL) {
        (*line)++;
        q++;
    }
}

/* Line and column (1-based) of byte `at` of the buffer, given that byte
 * `from` is on line `line`. */
static void line_col(const char *buf, size_t from, int line, size_t at, int *out_line, size_t *out_col) {
    count_lines(buf, from, at, &line);
    size_t k = at;
    while (k > 0 && buf[k - 1] != '\n') k--;
    *out_line = line;
    *out_col = at - k + 1;
}

/* End (exclusive) of the JSON value starting at buf[i]: the matching close of
 * an object/list, the closing quote of a string, else the end of a scalar.
 * When an object, list or string runs to the end of the buffer unfinished it
 * returns len and sets *open_str to where the string left open starts (or
 * len when none is); otherwise *open_str is 0. */
static size_t value_end(const char *buf, size_t len, size_t i, size_t *open_str) {
    char c = buf[i];
    *open_str = 0;
    if (c == '{' || c == '[' || c == '"') {
        long depth = 0;
        size_t str_at = 0;
        int in_str = 0;
        for (size_t j = i; j < len; j++) {
            char d = buf[j];
            if (in_str) {
                if (d == '\\') j++;
                else if (d == '"') {
                    in_str = 0;
                    if (depth == 0) return j + 1;
                }
            } else if (d == '"') in_str = 1, str_at = j;
            else if (d == '{' || d == '[') depth++;
            else if ((d == '}' || d == ']') && --depth == 0) return j + 1;
        }
        *open_str = in_str ? str_at : len;
        return len;
    }
    size_t j = i;
    while (j < len && buf[j] != ',' && buf[j] != ']' && buf[j] != '}' && !is_ws((unsigned char)buf[j])) j++;
    return j;
}

/* Skips whitespace inside the array from *i, counting lines; an error if the
 * file ends before the array is closed. */
static int array_skip_ws(parser *p, const char *buf, size_t len, size_t *i, int *line) {
    while (*i < len && is_ws((unsigned char)buf[*i])) {
        if (buf[*i] == '\n') (*line)++;
        (*i)++;
    }
    if (*i == len)
        return perr(p, *line, "the JSON array opened on line %d is not closed (no final ']')", p->array_line);
    return MOME_OK;
}

/* A JSON array of fact objects: buf[start] is '[' on line `line`. */
static int parse_json_array(parser *p, const char *buf, size_t len, size_t start, int line) {
    char near[80];
    int rc;
    size_t i = start + 1;
    int n_el = 0;
    for (;;) {
        if ((rc = array_skip_ws(p, buf, len, &i, &line)) != MOME_OK) return rc;
        if (buf[i] == ']') {
            if (n_el > 0)
                return perr(p, line, "malformed JSON: a trailing comma before the ']' that closes the array");
            break;
        }
        size_t open_str;
        size_t e = value_end(buf, len, i, &open_str);
        if (e - i > FACTS_MAX_RECORD)
            return perr(p, line, "array element of %zu bytes, more than the limit of %zu bytes (8 MiB) for one fact",
                        e - i, (size_t)FACTS_MAX_RECORD);
        if ((rc = check_nul_escape(p, line, buf + i, e - i)) != MOME_OK) return rc;
        cJSON *obj;
        size_t stop;
        if ((rc = scratch_parse(p, buf + i, e - i, &obj, &stop)) != MOME_OK) return rc;
        if (!obj || stop != e - i) {
            if (obj) cJSON_Delete(obj);
            int el;
            size_t col;
            line_col(buf, i, line, i + stop, &el, &col);
            if (open_str) { /* unfinished at the end of the file: say so unless cJSON
                               * stopped at an error before the final token */
                size_t last = len;
                while (last > i && is_ws((unsigned char)buf[last - 1])) last--;
                if (i + stop + 1 >= last || (open_str < len && i + stop >= open_str))
                    return perr(p, line, "malformed JSON: the array element starting on this line is not "
                                "finished when the file ends (a string, list or object is not closed)");
            }
            excerpt(near, sizeof near, buf + i + stop, len - (i + stop), 24);
            size_t prev = i + stop;
            while (prev > i && is_ws((unsigned char)buf[prev - 1])) prev--;
            const char *hint = "";
            if (buf[i + stop] == '\'') hint = " (JSON strings and keys need double quotes)";
            else if ((buf[i + stop] == '}' || buf[i + stop] == ']') && prev > i && buf[prev - 1] == ',')
                hint = " (a trailing comma?)";
            return perr(p, el, "malformed JSON at column %zu: cannot parse the text starting %s%s "
                        "(in the array element starting on line %d)", col, near, hint, line);
        }
        int el_line = line;
        count_lines(buf, i, e, &line);
        if ((rc = fact_from_object(p, el_line, obj)) != MOME_OK) return rc;
        n_el++;
        i = e;
        if ((rc = array_skip_ws(p, buf, len, &i, &line)) != MOME_OK) return rc;
        if (buf[i] == ']') break;
        if (buf[i] != ',') {
            excerpt(near, sizeof near, buf + i, len - i, 24);
            return perr(p, line, "malformed JSON: expected ',' or ']' after the array element starting on "
                        "line %d, found %s", el_line, near);
        }
        i++;
    }
    /* only whitespace may follow the array */
    for (i++; i < len; i++) {
        if (buf[i] == '\n') line++;
        else if (!is_ws((unsigned char)buf[i])) {
            excerpt(near, sizeof near, buf + i, len - i, 24);
            return perr(p, line, "malformed JSON: unexpected text after the array: %s (a JSON fact "
                        "file holds one array, or one object per line)", near);
        }
    }
    return MOME_OK;
}

/* ------------------------------------------------------------ CSV */

typedef struct csv_rec {
    char *buf;              /* field bytes, each field NUL-terminated */
    size_t len, cap;
    size_t *off;            /* start of each field in buf */
    int nf, cap_f;
    int quoted_any;
} csv_rec;

static int rec_putc(csv_rec *r, char c) {
    if (r->len == r->cap) {
        size_t nc = r->cap ? r->cap * 2 : 1024;
        char *nb = realloc(r->buf, nc);
        if (!nb) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
        r->buf = nb;
        r->cap = nc;
    }
    r->buf[r->len++] = c;
    return MOME_OK;
}

static int rec_new_field(csv_rec *r) {
    if (r->nf == r->cap_f) {
        int nc = r->cap_f ? r->cap_f * 2 : 16;
        size_t *no = realloc(r->off, (size_t)nc * sizeof *no);
        if (!no) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
        r->off = no;
        r->cap_f = nc;
    }
    r->off[r->nf++] = r->len;
    return MOME_OK;
}

typedef struct csv_cols {
    int q, a, ph, sys, subj;/* column indices, -1 if absent */
    int ncols;
    int have_header;
    char **names;           /* header names (for messages) */
} csv_cols;

static const char *col_name(const csv_cols *c, int i) {
    return (c->names && i < c->ncols) ? c->names[i] : "?";
}

static int csv_header(parser *p, csv_rec *r, int line, csv_cols *c) {
    c->q = c->a = c->ph = c->sys = c->subj = -1;
    c->ncols = r->nf;
    c->names = calloc((size_t)r->nf, sizeof *c->names);
    if (!c->names) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    for (int i = 0; i < r->nf; i++) {
        const char *s = r->buf + r->off[i];
        size_t n = strlen(s);
        trim(&s, &n);
        if (!(c->names[i] = dupn(s, n))) return MOME_ERR_NOMEM;
        int *slot = NULL;
        if (strcasecmp(c->names[i], "question") == 0) slot = &c->q;
        else if (strcasecmp(c->names[i], "answer") == 0) slot = &c->a;
        else if (strcasecmp(c->names[i], "paraphrases") == 0) slot = &c->ph;
        else if (strcasecmp(c->names[i], "system") == 0) slot = &c->sys;
        else if (strcasecmp(c->names[i], "subject") == 0) slot = &c->subj;
        if (!slot) continue;
        if (*slot >= 0)
            return perr(p, line, "CSV header: column '%s' appears twice (columns %d and %d)",
                        c->names[i], *slot + 1, i + 1);
        *slot = i;
    }
    if (c->q < 0 || c->a < 0) {
        char found[600];
        size_t o = 0;
        found[0] = 0;
        for (int i = 0; i < r->nf && o + 80 < sizeof found; i++) {
            char e[80];
            excerpt(e, sizeof e, c->names[i], strlen(c->names[i]), 40);
            o += (size_t)snprintf(found + o, sizeof found - o, "%s%s", i ? ", " : "", e);
        }
        if (o + 80 >= sizeof found) snprintf(found + o, sizeof found - o, ", ...");
        return perr(p, line,
                    "CSV header has no '%s' column (a header row naming 'question' and 'answer' "
                    "columns is required; found: %s)",
                    c->q < 0 ? "question" : "answer", found);
    }
    c->have_header = 1;
    return MOME_OK;
}

static int csv_row(parser *p, csv_rec *r, int line, csv_cols *c) {
    int rc;
    /* Skip rows whose fields are all blank (blank lines, ",,,"). */
    int blank = 1;
    for (size_t i = 0; i < r->len && blank; i++)
        if (r->buf[i] && !is_ws((unsigned char)r->buf[i])) blank = 0;
    if (blank) return MOME_OK;
    if (!c->have_header) return csv_header(p, r, line, c);
    if (r->nf > c->ncols)
        return perr(p, line,
                    "row has %d fields but the header has %d (a field with a comma must be "
                    "quoted: \"a, b\")", r->nf, c->ncols);
    fact f = {0};
    f.line = line;
    char *s;
    const int need[2] = {c->q, c->a};
    for (int k = 0; k < 2; k++)
        if (need[k] >= r->nf) {
            return perr(p, line, "field '%s': missing (the row has %d fields, the header %d)",
                        k ? "answer" : "question", r->nf, c->ncols);
        }
    const char *q = r->buf + r->off[c->q];
    if ((rc = take_string(p, line, "question", q, strlen(q), 0, &f.question)) != MOME_OK) goto fail;
    const char *a = r->buf + r->off[c->a];
    if ((rc = take_string(p, line, "answer", a, strlen(a), 0, &s)) != MOME_OK) goto fail;
    if ((rc = list_push(&f.answers, &f.n_answers, s)) != MOME_OK) goto fail;
    if (c->sys >= 0 && c->sys < r->nf) {
        const char *t = r->buf + r->off[c->sys];
        if ((rc = take_string(p, line, "system", t, strlen(t), 1, &f.system)) != MOME_OK) goto fail;
    }
    if (c->subj >= 0 && c->subj < r->nf) {
        const char *t = r->buf + r->off[c->subj];
        if ((rc = take_string(p, line, "subject", t, strlen(t), 1, &f.subject)) != MOME_OK) goto fail;
    }
    if (c->ph >= 0 && c->ph < r->nf) {
        const char *t = r->buf + r->off[c->ph];
        int i = 0;
        char name[48];
        for (;;) {
            const char *bar = strchr(t, '|');
            size_t n = bar ? (size_t)(bar - t) : strlen(t);
            snprintf(name, sizeof name, "paraphrases[%d]", i);
            if ((rc = take_string(p, line, name, t, n, 1, &s)) != MOME_OK) goto fail;
            if (s) {
                if (f.n_paraphrases >= FACTS_MAX_LIST) {
                    free(s);
                    rc = perr(p, line, "field 'paraphrases': more than %d items", FACTS_MAX_LIST);
                    goto fail;
                }
                if ((rc = list_push(&f.paraphrases, &f.n_paraphrases, s)) != MOME_OK) goto fail;
                i++;
            }
            if (!bar) break;
            t = bar + 1;
        }
    }
    return add_fact(p, &f);
fail:
    fact_clear(&f);
    return rc;
}

static int parse_csv(parser *p, const char *buf, size_t len) {
    enum { START, UNQUOTED, QUOTED, AFTER_QUOTE } st = START;
    csv_rec r = {0};
    csv_cols c = {0};
    int line = 1, rec_line = 1, quote_line = 0, rc = MOME_OK;
    size_t field_start = 0;
    int in_record = 0;
    size_t i = 0;

#define END_FIELD()                                                               \
    do {                                                                          \
        if ((rc = rec_putc(&r, 0)) != MOME_OK) goto done;                        \
    } while (0)
#define BEGIN_FIELD()                                                             \
    do {                                                                          \
        if (r.nf >= CSV_MAX_COLUMNS) {                                            \
            rc = perr(p, rec_line, "more than %d fields in one row", CSV_MAX_COLUMNS); \
            goto done;                                                            \
        }                                                                         \
        if ((rc = rec_new_field(&r)) != MOME_OK) goto done;                       \
        field_start = r.len;                                                      \
    } while (0)
#define END_RECORD()                                                              \
    do {                                                                          \
        END_FIELD();                                                              \
        if ((rc = csv_row(p, &r, rec_line, &c)) != MOME_OK) goto done;            \
        r.len = 0;                                                                \
        r.nf = 0;                                                                 \
        field_start = 0;                                                          \
        in_record = 0;                                                            \
    } while (0)

    while (i < len) {
        char ch = buf[i];
        if (!in_record) {
            in_record = 1;
            rec_line = line;
            st = START;
            BEGIN_FIELD();
        }
        int is_nl = ch == '\n' || (ch == '\r' && i + 1 < len && buf[i + 1] == '\n');
        size_t nl_len = ch == '\r' ? 2 : 1;
        switch (st) {
        case START:
        case UNQUOTED:
            if (st == START && ch == '"') {
                st = QUOTED;
                quote_line = line;
                i++;
            } else if (ch == ',') {
                END_FIELD();
                BEGIN_FIELD();
                st = START;
                i++;
            } else if (is_nl) {
                END_RECORD();
                line++;
                i += nl_len;
            } else {
                if ((rc = rec_putc(&r, ch)) != MOME_OK) goto done;
                st = UNQUOTED;
                i++;
            }
            break;
        case QUOTED:
            if (ch == '"') {
                if (i + 1 < len && buf[i + 1] == '"') {
                    if ((rc = rec_putc(&r, '"')) != MOME_OK) goto done;
                    i += 2;
                } else {
                    st = AFTER_QUOTE;
                    i++;
                }
            } else {
                /* Fast path: copy up to the next quote or newline. */
                size_t lim = len - i < 65536 ? len : i + 65536;
                const char *q = memchr(buf + i, '"', lim - i);
                size_t stop = q ? (size_t)(q - buf) : lim;
                for (size_t k = i; k < stop; k++) {
                    if (buf[k] == '\n') line++;
                    if ((rc = rec_putc(&r, buf[k])) != MOME_OK) goto done;
                }
                i = stop;
            }
            break;
        case AFTER_QUOTE:
            if (ch == ',') {
                END_FIELD();
                BEGIN_FIELD();
                st = START;
                i++;
            } else if (is_nl) {
                END_RECORD();
                line++;
                i += nl_len;
            } else if (ch == ' ' || ch == '\t') {
                i++;
            } else {
                char near[64];
                excerpt(near, sizeof near, buf + i, len - i, 16);
                rc = perr(p, line,
                          "CSV: unexpected text %s after the closing quote of a field (a quote "
                          "inside a quoted field must be doubled: \"\")", near);
                goto done;
            }
            break;
        }
        if (r.len - field_start > FACTS_MAX_FIELD) {
            char why[96] = "";
            if (st == QUOTED)
                snprintf(why, sizeof why, " (is the quote opened on line %d never closed?)",
                         quote_line);
            rc = perr(p, rec_line, "field '%s': more than the limit of %zu bytes (64 KiB) for "
                      "one field%s", c.have_header ? col_name(&c, r.nf - 1) : "header",
                      (size_t)FACTS_MAX_FIELD, why);
            goto done;
        }
    }
    if (in_record) {
        if (st == QUOTED) {
            rc = perr(p, rec_line, "CSV: unterminated quoted field (the quote opened on line %d "
                      "is never closed)", quote_line);
            goto done;
        }
        END_RECORD();
    }
    if (!c.have_header) rc = perr(p, 0, "no facts (the file has no CSV header row)");
#undef END_FIELD
#undef BEGIN_FIELD
#undef END_RECORD
done:
    if (c.names)
        for (int k = 0; k < c.ncols; k++) free(c.names[k]);
    free(c.names);
    free(r.buf);
    free(r.off);
    return rc;
}

/* ------------------------------------------------------------ entry points */

static int has_ext(const char *name, const char *ext) {
    if (!name) return 0;
    size_t n = strlen(name), e = strlen(ext);
    return n > e && strcasecmp(name + n - e, ext) == 0;
}

int facts_parse_buffer(const char *buf, size_t len, const char *name,
                       enum facts_conflict policy, fact_set **out) {
    if (!out) return mome_seterr_code(MOME_ERR_ARG, "facts_parse_buffer: out is NULL");
    *out = NULL;
    if (!buf && len) return mome_seterr_code(MOME_ERR_ARG, "facts_parse_buffer: buf is NULL");
    if (policy != FACTS_CONFLICT_ERROR && policy != FACTS_CONFLICT_FIRST &&
        policy != FACTS_CONFLICT_LAST)
        return mome_seterr_code(MOME_ERR_ARG, "facts_parse_buffer: bad conflict policy %d",
                                (int)policy);
    parser p = {0};
    p.name = name ? name : "<facts>";
    p.policy = policy;
    if (len > FACTS_MAX_FILE)
        return perr(&p, 0, "%zu bytes, more than the limit of %zu bytes (1 GiB) for a fact file",
                    len, (size_t)FACTS_MAX_FILE);
    fact_set *fs = calloc(1, sizeof *fs);
    if (!fs) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    p.fs = fs;
    int rc;
    if (!(fs->path = dupn(p.name, strlen(p.name)))) { rc = MOME_ERR_NOMEM; goto out; }
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) buf += 3, len -= 3;
    size_t k = 0;
    while (k < len && is_ws((unsigned char)buf[k])) k++;
    if (k == len) {
        rc = perr(&p, 0, "no facts (the file is %s)", len ? "blank" : "empty");
        goto out;
    }
    if ((rc = check_utf8(&p, (const unsigned char *)buf, len)) != MOME_OK) goto out;
    /* .jsonl/.ndjson are JSON lines (a '[' there is reported by parse_jsonl);
     * .json and unnamed content starting with '[' are a JSON array */
    if (has_ext(name, ".csv")) fs->format = FACTS_FORMAT_CSV;
    else if (has_ext(name, ".jsonl") || has_ext(name, ".ndjson")) fs->format = FACTS_FORMAT_JSONL;
    else if (buf[k] == '[') fs->format = FACTS_FORMAT_JSON_ARRAY;
    else if (has_ext(name, ".json")) fs->format = FACTS_FORMAT_JSONL;
    else fs->format = buf[k] == '{' ? FACTS_FORMAT_JSONL : FACTS_FORMAT_CSV;
    if (fs->format == FACTS_FORMAT_JSON_ARRAY) {
        int line = 1;
        count_lines(buf, 0, k, &line);
        p.array_line = line;
        rc = parse_json_array(&p, buf, len, k, line);
    } else {
        rc = fs->format == FACTS_FORMAT_CSV ? parse_csv(&p, buf, len) : parse_jsonl(&p, buf, len);
    }
    if (rc == MOME_OK && fs->n == 0 && fs->n_skipped > 0)
        rc = perr(&p, 0, "no facts (%d zsRE record%s with an empty 'alt', nothing else)", fs->n_skipped,
                  fs->n_skipped == 1 ? "" : "s");
    else if (rc == MOME_OK && fs->n == 0)
        rc = perr(&p, 0, "no facts (%s)", fs->format == FACTS_FORMAT_CSV          ? "the CSV file has only a header row"
                                          : fs->format == FACTS_FORMAT_JSON_ARRAY ? "an empty JSON array"
                                                                                  : "only blank lines");
out:
    free(p.hashes);
    free(p.slots);
    free(p.scratch);
    if (rc != MOME_OK) {
        facts_free(fs);
        return rc;
    }
    /* give back the slack of the doubling growth */
    fact *nv = realloc(fs->v, (size_t)fs->n * sizeof *nv);
    if (nv) fs->v = nv;
    *out = fs;
    return MOME_OK;
}

int facts_load(const char *path, enum facts_conflict policy, fact_set **out) {
    if (!out) return mome_seterr_code(MOME_ERR_ARG, "facts_load: out is NULL");
    *out = NULL;
    if (!path) return mome_seterr_code(MOME_ERR_ARG, "facts_load: path is NULL");
    FILE *f = fopen(path, "rb");
    if (!f) return mome_seterr_code(MOME_ERR_IO, "%s: cannot open the fact file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return mome_seterr_code(MOME_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        fclose(f);
        return mome_seterr_code(MOME_ERR_IO, "%s: is a directory, not a fact file", path);
    }
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > FACTS_MAX_FILE) {
        fclose(f);
        return mome_seterr_code(MOME_ERR_FORMAT,
                                "%s: %lld bytes, more than the limit of %zu bytes (1 GiB) for a fact file",
                                path, (long long)st.st_size, (size_t)FACTS_MAX_FILE);
    }
    size_t cap = S_ISREG(st.st_mode) ? (size_t)st.st_size + 1 : 65536, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory (reading %s)", path);
    }
    for (;;) {
        if (len == cap) {
            if (cap > FACTS_MAX_FILE) {
                free(buf);
                fclose(f);
                return mome_seterr_code(MOME_ERR_FORMAT,
                                        "%s: more than the limit of %zu bytes (1 GiB) for a fact file",
                                        path, (size_t)FACTS_MAX_FILE);
            }
            size_t nc = cap * 2;
            char *nb = realloc(buf, nc);
            if (!nb) {
                free(buf);
                fclose(f);
                return mome_seterr_code(MOME_ERR_NOMEM, "out of memory (reading %s)", path);
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        int e = errno;
        free(buf);
        fclose(f);
        return mome_seterr_code(MOME_ERR_IO, "%s: read error: %s", path, strerror(e));
    }
    fclose(f);
    int rc = facts_parse_buffer(buf, len, path, policy, out);
    free(buf);
    return rc;
}

/* ------------------------------------------------------------ matching */

char *facts_normalize_answer(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s);
    trim(&s, &n);
    char *d = malloc(n + 1);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_ws((unsigned char)s[i])) {
            if (o && d[o - 1] != ' ') d[o++] = ' ';
        } else {
            d[o++] = s[i];
        }
    }
    if (o && d[o - 1] == '.') o--;
    while (o && d[o - 1] == ' ') o--;
    d[o] = 0;
    return d;
}

int facts_answer_matches(const fact *f, const char *output) {
    if (!f || !output) return 0;
    char *no = facts_normalize_answer(output);
    if (!no) return 0;
    int hit = 0;
    for (int i = 0; i < f->n_answers && !hit; i++) {
        char *na = facts_normalize_answer(f->answers[i]);
        if (na && na[0] && strcmp(na, no) == 0) hit = 1;
        free(na);
    }
    free(no);
    return hit;
}

static void lower_inplace(char *s) {
    for (; *s; s++) *s = (char)lower_ascii((unsigned char)*s);
}

/* Find needle in hay (both lowercased) at a word boundary. */
static int find_word(const char *hay, size_t nh, const char *needle, size_t nn, int end_boundary) {
    if (nn == 0 || nn > nh) return 0;
    const unsigned char first = (unsigned char)needle[0], last = (unsigned char)needle[nn - 1];
    const char *p = hay;
    while ((p = memmem(p, nh - (size_t)(p - hay), needle, nn)) != NULL) {
        size_t at = (size_t)(p - hay);
        int ok = 1;
        if (at > 0 && is_alnum_ascii(first) && is_alnum_ascii((unsigned char)hay[at - 1])) ok = 0;
        if (end_boundary && at + nn < nh && is_alnum_ascii(last) &&
            is_alnum_ascii((unsigned char)hay[at + nn]))
            ok = 0;
        if (ok) return 1;
        p++;
        if ((size_t)(p - hay) + nn > nh) break;
    }
    return 0;
}

int facts_answer_contained(const fact *f, const char *output) {
    if (!f || !output) return 0;
    char *no = facts_normalize_answer(output);
    if (!no) return 0;
    lower_inplace(no);
    size_t nh = strlen(no);
    int hit = 0;
    for (int i = 0; i < f->n_answers && !hit; i++) {
        char *na = facts_normalize_answer(f->answers[i]);
        if (!na) continue;
        lower_inplace(na);
        hit = find_word(no, nh, na, strlen(na), 1);
        free(na);
    }
    free(no);
    return hit;
}

static const char *ABSTAIN_PHRASES[] = {
    "i don't know", "i do not know", "i dont know",
    "i'm not sure", "i am not sure", "im not sure", "i'm not certain", "i am not certain",
    "i'm unsure", "i am unsure",
    "i do not have that information", "i don't have that information",
    "i do not have enough information", "i don't have enough information",
    "i do not have any information", "i don't have any information",
    "i do not have the information", "i don't have the information",
    "i have no information", "i have no idea",
    "i cannot answer", "i can't answer", "i can not answer", "i'm unable to answer",
    "i am unable to answer", "i'm not able to answer", "i am not able to answer",
    "i cannot provide", "i can't provide", "i'm not aware of", "i am not aware of",
    "i couldn't find", "i could not find", "there is no information",
    "i'm sorry, but i don't", "i am sorry, but i do not",
};
static const char *ABSTAIN_WHOLE[] = {
    "unknown", "not sure", "no idea", "don't know", "dont know", "n/a", "no answer",
    "i don't know", "unsure",
};

int facts_is_abstention(const char *output) {
    if (!output) return 0;
    char *no = facts_normalize_answer(output);
    if (!no) return 0;
    /* lowercase and fold U+2018/U+2019 (E2 80 98/99) to an ASCII apostrophe */
    size_t o = 0;
    for (size_t i = 0; no[i]; i++) {
        if ((unsigned char)no[i] == 0xE2 && (unsigned char)no[i + 1] == 0x80 &&
            ((unsigned char)no[i + 2] == 0x98 || (unsigned char)no[i + 2] == 0x99)) {
            no[o++] = '\'';
            i += 2;
        } else {
            no[o++] = (char)lower_ascii((unsigned char)no[i]);
        }
    }
    no[o] = 0;
    int hit = 0;
    for (size_t k = 0; k < sizeof ABSTAIN_WHOLE / sizeof *ABSTAIN_WHOLE && !hit; k++)
        if (strcmp(no, ABSTAIN_WHOLE[k]) == 0) hit = 1;
    for (size_t k = 0; k < sizeof ABSTAIN_PHRASES / sizeof *ABSTAIN_PHRASES && !hit; k++)
        hit = find_word(no, o, ABSTAIN_PHRASES[k], strlen(ABSTAIN_PHRASES[k]), 0);
    free(no);
    return hit;
}

/* ------------------------------------------------------- inferred subjects */

/* A question is split into words at whitespace, with a final ? . ! or : as
 * a word of its own; words compare ASCII case-insensitively. */
#define SUBJ_MAX_WORDS 64   /* longer questions are left alone */
#define SUBJ_MAX_SPAN 8     /* words a subject spans at most */
#define SUBJ_MIN_TEMPLATE 4 /* template words around the span, the mark aside */

typedef struct qwords {
    int n, mark;                       /* words; 1: the last one is the final mark */
    int beg[SUBJ_MAX_WORDS], end[SUBJ_MAX_WORDS];
} qwords;

static int split_words(const char *q, qwords *w) {
    w->n = w->mark = 0;
    const size_t len = strlen(q);
    size_t i = 0;
    while (i < len) {
        while (i < len && is_ws((unsigned char)q[i])) i++;
        if (i == len) break;
        if (w->n == SUBJ_MAX_WORDS) return -1;
        const size_t b = i;
        while (i < len && !is_ws((unsigned char)q[i])) i++;
        w->beg[w->n] = (int)b;
        w->end[w->n] = (int)i;
        w->n++;
    }
    if (w->n == 0) return -1;
    const int l = w->n - 1;
    const char c = q[w->end[l] - 1];
    if ((c == '?' || c == '.' || c == '!' || c == ':') && w->n < SUBJ_MAX_WORDS) {
        if (w->end[l] - w->beg[l] == 1) w->mark = 1; /* "... X ?" */
        else {
            w->beg[w->n] = w->end[l] - 1;
            w->end[w->n] = w->end[l];
            w->end[l]--;
            w->n++;
            w->mark = 1;
        }
    }
    return 0;
}

static uint64_t hash_word(uint64_t h, const char *s, int b, int e) {
    for (int i = b; i < e; i++) h = (h ^ lower_ascii((unsigned char)s[i])) * 0x100000001b3ull;
    return (h ^ 0x1f) * 0x100000001b3ull; /* a separator after each word */
}

/* Counts of 64-bit keys, open addressing (0 is never a key: keys are or'ed with 1). */
typedef struct key_count {
    uint64_t *key;
    int32_t *n;
    size_t cap;
} key_count;

/* The slot of key k (k | 1): its own, or the empty one it would take. */
static size_t kc_find(const key_count *kc, uint64_t k) {
    size_t i = (size_t)(k * 0x9e3779b97f4a7c15ull) & (kc->cap - 1);
    while (kc->key[i] && kc->key[i] != k) i = (i + 1) & (kc->cap - 1);
    return i;
}

static int32_t *kc_slot(key_count *kc, uint64_t k) {
    const size_t i = kc_find(kc, k | 1);
    kc->key[i] = k | 1;
    return &kc->n[i];
}

static int32_t kc_get(const key_count *kc, uint64_t k) {
    const size_t i = kc_find(kc, k | 1);
    return kc->key[i] ? kc->n[i] : 0;
}

static uint64_t pair_key(uint64_t pre, int np, uint64_t suf, int ns) {
    return (pre * 0x9e3779b97f4a7c15ull) ^ (suf + 0x632be59bd9b4e019ull + ((uint64_t)np << 40) + ((uint64_t)ns << 48));
}

int facts_infer_subjects(fact_set *fs, int min_count) {
    if (min_count < 2) return 0;
    const int n = fs->n;
    qwords *w = mome_calloc((size_t)n, sizeof(qwords));
    size_t *off = mome_calloc((size_t)n + 1, sizeof(size_t)); /* fact f's prefix and suffix hashes: pre[off[f] ..] */
    /* per question of n words: n prefixes, n suffixes and at most n SUBJ_MAX_SPAN spans to count */
    size_t need = 16;
    for (int i = 0; w && off && i < n; i++) {
        if (!fs->v[i].subject && split_words(fs->v[i].question, &w[i]) == 0) need += (size_t)(w[i].n + 1) * (2 + SUBJ_MAX_SPAN);
        else w[i].n = 0;
        off[i + 1] = off[i] + (w[i].n > 0 ? 2 * (size_t)(w[i].n + 1) : 0);
    }
    uint64_t *pre = w && off ? mome_malloc((off[n] + 1) * sizeof(uint64_t)) : NULL;
    size_t cap = 1;
    while (cap < 2 * need) cap <<= 1;
    key_count kc = {mome_calloc(cap, sizeof(uint64_t)), mome_calloc(cap, sizeof(int32_t)), cap};
    int rc = 0, inferred = 0;
    if (!w || !off || !pre || !kc.key || !kc.n) { rc = MOME_ERR_NOMEM; goto done; }
    /* prefix i: hash of words [0, i); suffix s: hash of the last s words */
    for (int f = 0; f < n; f++) {
        const qwords *q = &w[f];
        if (q->n == 0) continue;
        uint64_t *P = pre + off[f], *S = P + q->n + 1;
        P[0] = S[0] = 0xcbf29ce484222325ull;
        for (int i = 0; i < q->n; i++) P[i + 1] = hash_word(P[i], fs->v[f].question, q->beg[i], q->end[i]);
        for (int s = 0; s < q->n; s++) S[s + 1] = hash_word(S[s] ^ 0x5bd1e995ull, fs->v[f].question, q->beg[q->n - 1 - s], q->end[q->n - 1 - s]);
        for (int i = 1; i <= q->n; i++) (*kc_slot(&kc, P[i] ^ 0xa5a5ull))++, (*kc_slot(&kc, S[i] ^ 0x5a5aull))++;
    }
    /* spans [i, j) whose prefix and suffix are both common: count their (prefix, suffix) pairs */
    for (int pass = 0; pass < 2; pass++)
        for (int f = 0; f < n; f++) {
            const qwords *q = &w[f];
            if (q->n == 0) continue;
            const uint64_t *P = pre + off[f], *S = P + q->n + 1;
            int bi = -1, bj = -1;
            double bs = 0;
            for (int i = 0; i < q->n; i++) {
                if (i > 0 && kc_get(&kc, P[i] ^ 0xa5a5ull) < min_count) break;
                for (int j = i + 1; j < q->n && j - i <= SUBJ_MAX_SPAN; j++) { /* a template word (or the mark) after it */
                    const int ns = q->n - j, tw = i + ns - q->mark;
                    if (tw < SUBJ_MIN_TEMPLATE || (ns > 0 && kc_get(&kc, S[ns] ^ 0x5a5aull) < min_count)) continue;
                    const uint64_t k = pair_key(P[i], i, S[ns], ns);
                    if (pass == 0) { (*kc_slot(&kc, k))++; continue; }
                    const int c = kc_get(&kc, k);
                    const double sc = tw + log2((double)c) / 3.0; /* a word more is worth 8x fewer questions */
                    if (c >= min_count && sc > bs) bi = i, bj = j, bs = sc;
                }
            }
            if (pass == 0 || bi < 0) continue;
            const char *qs = fs->v[f].question;
            const int b = q->beg[bi], e = q->end[bj - 1];
            int alnum = 0;
            for (int x = b; x < e && !alnum; x++) alnum = is_alnum_ascii((unsigned char)qs[x]) || (unsigned char)qs[x] >= 0x80;
            if (!alnum) continue;
            char *s = mome_malloc((size_t)(e - b) + 1);
            if (!s) { rc = MOME_ERR_NOMEM; goto done; }
            memcpy(s, qs + b, (size_t)(e - b));
            s[e - b] = 0;
            fs->v[f].subject = s;
            inferred++;
        }
done:
    free(w); free(off); free(pre); free(kc.key); free(kc.n);
    return rc ? -rc : inferred;
}
