/* server.c - `mome serve`: OpenAI-compatible HTTP API over one base model
 * and its memories, with continuous batching.
 *
 * HTTP is GNU libmicrohttpd (Debian's libmicrohttpd-dev), in its
 * thread-per-connection mode: a connection's thread reads and validates the
 * request (cJSON), renders the chat template and tokenizes, queues the
 * request, then sleeps on the request's condition variable until tokens
 * arrive (a timed wait that also polls the socket, so a client that goes
 * away is noticed within 100 ms; never a spin). Streaming responses are
 * MHD content-reader callbacks that block the same way.
 *
 * One compute thread owns the engine. It keeps --parallel slots, each with
 * its own context (K/V cache): between decode steps it admits queued
 * requests into free slots (prompt decoded with mome_decode in chunks of
 * SRV_PREFILL_CHUNK tokens per step, reusing the K/V of the prefix the
 * slot's cache shares with the new prompt, as llama-server's prompt cache
 * does), then feeds one token of every running slot in one
 * mome_decode_batch call (continuous batching: a request joins
 * or leaves the running batch between steps). Since a batched row has the
 * bits of one-token decoding, a greedy answer does not depend on what
 * shares its batch. Each slot may carry another memory (chosen by the
 * request's "model") or none.
 *
 * Everything shared (queue, slot states, each request's output, metrics)
 * is guarded by one mutex; the compute thread publishes after each step and
 * signals the requests that changed. A request is freed by whichever side
 * drops the last of its two references (HTTP and compute).
 *
 * Text goes out in whole UTF-8 characters, holding back any tail that could
 * begin a stop string; invalid bytes a token produced become U+FFFD.
 */
#include "server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "answer.h"
#include "mome.h"
#include "server_page.h"
#include "util.h"

#define SRV_MAX_STOPS 4
#define SRV_MAX_STOP_LEN 256
#define SRV_MAX_MSGS 1024
/* prompt tokens decoded per step: a long prompt goes in chunks between the
 * running slots' batched steps instead of stalling them */
#define SRV_PREFILL_CHUNK 128

srv_params srv_default_params(void) {
    srv_params p = {0};
    p.host = "127.0.0.1";
    p.port = 8080;
    p.n_parallel = 4;
    p.n_ctx = 2048;
    p.queue = 64;
    p.timeout_s = 60;
    p.max_body = (size_t)1 << 20;
    return p;
}

/* ------------------------------------------------------------ strings */

static void sb_free(sbuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

/* Length of the UTF-8 sequence starting with byte c (0: not a lead byte). */
static int utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return 2;
    if (c >= 0xE0 && c <= 0xEF) return 3;
    if (c >= 0xF0 && c <= 0xF4) return 4;
    return 0;
}

/* Whether s[0..k) is one valid UTF-8 character (no overlongs, surrogates or
 * code points past U+10FFFF). */
static int utf8_char_ok(const unsigned char *s, int k) {
    for (int i = 1; i < k; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (k == 3) {
        if (s[0] == 0xE0 && s[1] < 0xA0) return 0;
        if (s[0] == 0xED && s[1] >= 0xA0) return 0;
    } else if (k == 4) {
        if (s[0] == 0xF0 && s[1] < 0x90) return 0;
        if (s[0] == 0xF4 && s[1] >= 0x90) return 0;
    }
    return 1;
}

static int utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const int k = utf8_len(u[i]);
        if (!k || i + (size_t)k > n || !utf8_char_ok(u + i, k)) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* Appends s[0..n) to b with every invalid byte replaced by U+FFFD. */
static void sb_add_utf8(sbuf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        const int k = utf8_len(u[i]);
        if (k && i + (size_t)k <= n && utf8_char_ok(u + i, k)) {
            sb_add(b, s + i, (size_t)k);
            i += (size_t)k;
        } else {
            sb_add(b, "\xEF\xBF\xBD", 3);
            i++;
        }
    }
}

/* The end of the longest prefix of s[0..n) that does not end inside a
 * UTF-8 character that could still be completed. */
static size_t utf8_complete(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const unsigned char c = u[n - back];
        if ((c & 0xC0) == 0x80) continue;
        const int k = utf8_len(c);
        return k > (int)back ? n - back : n;
    }
    return n;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ state */

enum { REQ_QUEUED, REQ_RUNNING, REQ_DONE };
enum { KIND_COMPLETION, KIND_CHAT };

typedef struct srv_req srv_req;
struct srv_req {
    /* set by the HTTP thread before queueing, then read-only */
    int kind;
    int stream, include_usage;
    int32_t *ids;
    int n_ids;
    int max_tokens;
    float temperature, top_p;
    uint64_t seed;
    char *stops[SRV_MAX_STOPS];
    int n_stops;
    int mem;                  /* memory index, -1: the base model */
    const char *model_id;
    char id[48];
    long created;
    int fd;                   /* the client's socket, polled for a hang-up */
    double t_start;
    /* shared, under srv.mu */
    pthread_cond_t cv;
    int state;
    int cancel;               /* the client went away */
    int refs;
    sbuf text;                /* the published answer text */
    int n_gen;                /* completion tokens */
    int n_cached;             /* prompt tokens whose K/V were reused */
    const char *finish;       /* "stop" or "length" once done */
    char err[256];            /* an engine error (500) */
    double t_first;           /* first token published (0: none yet) */
    srv_req *next;            /* queue link */
    /* the HTTP thread's own (streaming) */
    size_t sent;              /* bytes of text already sent */
    sbuf stage;               /* formatted SSE bytes not yet handed to MHD */
    size_t stage_off;
    int sent_role, sent_finish;
};

typedef struct srv_slot {
    mome_ctx *ctx;
    int cache_mem;            /* memory the cached tokens were decoded with (-2: nothing cached) */
    srv_req *req;             /* NULL: free */
    mome_sampler *smp;
    int32_t next;             /* token to feed in the next batch step */
    int pending;              /* next is to be fed */
    int finished;
    int prefill;              /* next prompt token to decode (-1: prompt done) */
    sbuf gen;                 /* generated bytes, cut at a stop string */
    size_t published;         /* bytes of gen copied to req->text */
} srv_slot;

#define N_BUCKETS 12
static const double k_buckets[N_BUCKETS] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

typedef struct histo {
    uint64_t count[N_BUCKETS + 1];
    double sum;
    uint64_t n;
} histo;

static void histo_add(histo *h, double v) {
    int i = 0;
    while (i < N_BUCKETS && v > k_buckets[i]) i++;
    h->count[i]++;
    h->sum += v;
    h->n++;
}

typedef struct srv_state {
    const srv_params *p;
    mome_model *m;
    mome_memory **mems;
    char **ids;               /* [0]: the base model, [1 + i]: memory i */
    int n_ids;
    long created;
    pthread_mutex_t mu;
    pthread_cond_t work;      /* compute thread: a request arrived or was cancelled */
    pthread_cond_t idle;      /* drain: a request was freed */
    srv_req *q_head, *q_tail;
    int n_queued, n_running, n_reqs;
    int draining, quit;
    srv_slot *slots;
    uint64_t id_counter;
    /* metrics */
    uint64_t m_status[600];   /* responses by HTTP status */
    uint64_t m_prompt_tokens, m_cached_tokens, m_gen_tokens, m_steps, m_step_rows;
    histo h_latency, h_ttft;
    int mhd_error;
} srv_state;

static srv_state g_srv;
static int g_stop_pipe[2] = {-1, -1};
static atomic_int g_stop_requested;

void srv_stop(void) {
    atomic_store(&g_stop_requested, 1);
    if (g_stop_pipe[1] >= 0) {
        const char c = 1;
        ssize_t k = write(g_stop_pipe[1], &c, 1);
        (void)k;
    }
}

/* Drops one reference (under mu); frees the request with the last. */
static void req_unref_locked(srv_req *r) {
    if (--r->refs > 0) return;
    pthread_cond_destroy(&r->cv);
    free(r->ids);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    sb_free(&r->text);
    sb_free(&r->stage);
    free(r);
    g_srv.n_reqs--;
    pthread_cond_broadcast(&g_srv.idle);
}

/* ------------------------------------------------------------ compute */

/* Longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_holdback(const srv_req *r, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < r->n_stops; i++) {
        const size_t L = strlen(r->stops[i]);
        for (size_t k = L - 1; k > best; k--)
            if (k <= n && memcmp(s + n - k, r->stops[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* One generated token: ends the answer or appends its text. */
static void slot_token(srv_state *S, srv_slot *sl, int32_t tok) {
    srv_req *r = sl->req;
    sl->pending = 0;
    if (mome_token_is_eog(S->m, tok)) {
        sl->finished = 1;
        r->finish = "stop";
        return;
    }
    r->n_gen++;
    char piece[256];
    const int k = mome_token_to_piece(S->m, tok, piece, sizeof piece, 0);
    const size_t before = sl->gen.n;
    if (k > 0 && k <= (int)sizeof piece) sb_add(&sl->gen, piece, (size_t)k);
    for (int i = 0; i < r->n_stops; i++) {
        const size_t L = strlen(r->stops[i]);
        const size_t from = before >= L ? before - L + 1 : 0;
        if (sl->gen.n < L) continue;
        for (size_t at = from; at + L <= sl->gen.n; at++)
            if (memcmp(sl->gen.p + at, r->stops[i], L) == 0) {
                sl->gen.n = at;
                sl->gen.p[at] = 0;
                sl->finished = 1;
                r->finish = "stop";
                return;
            }
    }
    if (r->n_gen >= r->max_tokens || mome_ctx_n_past(sl->ctx) >= S->p->n_ctx) {
        sl->finished = 1;
        r->finish = "length";
        return;
    }
    sl->next = tok;
    sl->pending = 1;
}

/* Tokens of r's prompt the slot's cache can keep: the prefix it shares with
 * them if it was decoded with the same memory, leaving at least 2 tokens to
 * decode. A 1-token rest would take the one-token attention order and give
 * other bits than the whole prompt decoded at once; from 2 tokens on (with
 * 4-token tiles that sum as vec_dot does) splitting gives the same bits, so
 * an answer does not depend on what the slot served before. */
static int slot_keep(const srv_slot *sl, const srv_req *r) {
    if (sl->cache_mem != r->mem) return 0;
    const int keep = mome_ctx_shared_prefix(sl->ctx, r->ids, r->n_ids);
    return keep <= r->n_ids - 2 ? keep : (r->n_ids >= 2 ? r->n_ids - 2 : 0);
}

static int32_t slot_sample(srv_state *S, srv_slot *sl) {
    const float *lg = mome_get_logits(sl->ctx, -1);
    if (!sl->smp) return ans_argmax(lg, mome_model_n_vocab(S->m)); /* greedy: the first largest */
    return mome_sampler_sample(sl->smp, lg);
}

/* A request enters its slot: sampler, memory, and where its prompt starts
 * (after the prefix the cache shares with it, if decoded with the same
 * memory). Runs on the compute thread without the lock. */
static int slot_start(srv_state *S, srv_slot *sl) {
    srv_req *r = sl->req;
    sl->gen.n = 0;
    sl->published = 0;
    sl->finished = 0;
    sl->pending = 0;
    if (r->temperature > 0) {
        mome_sampler_params sp = mome_sampler_default_params();
        sp.temp = r->temperature;
        sp.top_k = 0;
        sp.top_p = r->top_p;
        sp.min_p = 0;
        sp.repeat_penalty = 1;
        sp.seed = r->seed;
        if (mome_sampler_init(&sp, mome_model_n_vocab(S->m), &sl->smp)) return MOME_ERR;
    }
    if (mome_ctx_set_memory(sl->ctx, r->mem >= 0 ? S->mems[r->mem] : NULL)) return MOME_ERR;
    /* a memory changes the K/V of the rows it acts on: reuse only what the
     * same memory (or none) decoded */
    const int keep = slot_keep(sl, r);
    sl->cache_mem = -2;
    r->n_cached = keep;
    sl->prefill = keep;
    return MOME_OK;
}

/* The next chunk of the slot's prompt; after the last, its first token.
 * Chunks are SRV_PREFILL_CHUNK tokens but never leave a 1-token rest (see
 * slot_keep: the split points then do not change the bits). */
static int slot_prefill(srv_state *S, srv_slot *sl) {
    srv_req *r = sl->req;
    const int rest = r->n_ids - sl->prefill;
    int k = rest < SRV_PREFILL_CHUNK ? rest : SRV_PREFILL_CHUNK;
    if (rest - k == 1) k = rest;
    if (mome_decode(sl->ctx, r->ids + sl->prefill, k, sl->prefill, 0)) return MOME_ERR;
    sl->prefill += k;
    if (sl->prefill == r->n_ids) {
        sl->prefill = -1;
        sl->cache_mem = r->mem;
        slot_token(S, sl, slot_sample(S, sl));
    }
    return MOME_OK;
}

/* Under mu: the slot's new text goes to its request; a finished request
 * leaves its slot. */
static void slot_publish(srv_state *S, srv_slot *sl, double t) {
    srv_req *r = sl->req;
    size_t upto = sl->gen.n;
    if (!sl->finished) upto = utf8_complete(sl->gen.p, sl->gen.n - stop_holdback(r, sl->gen.p, sl->gen.n));
    if (upto > sl->published) {
        sb_add_utf8(&r->text, sl->gen.p + sl->published, upto - sl->published);
        sl->published = upto;
        if (r->t_first == 0) {
            r->t_first = t;
            histo_add(&S->h_ttft, t - r->t_start);
        }
    }
    if (r->text.oom && !r->err[0]) {
        snprintf(r->err, sizeof r->err, "out of memory");
        sl->finished = 1;
    }
    if (sl->finished) {
        r->state = REQ_DONE;
        S->m_gen_tokens += (uint64_t)r->n_gen;
        histo_add(&S->h_latency, t - r->t_start);
        mome_sampler_free(sl->smp);
        sl->smp = NULL;
        sl->req = NULL;
        sl->pending = 0;
        S->n_running--;
        pthread_cond_broadcast(&r->cv);
        req_unref_locked(r);
    } else {
        pthread_cond_broadcast(&r->cv);
    }
}

/* Admits queued requests in arrival order (S->mu held), each into the free
 * slot whose cache shares the longest prefix with it (a chat that goes on
 * finds its earlier turns); cancelled ones are done. The slots admitted
 * into fresh; their count. */
static int admit_queued(srv_state *S, int *fresh) {
    const int P = S->p->n_parallel;
    int nf = 0;
    while (S->q_head) {
        srv_req *r = S->q_head;
        int best = -1, best_keep = -1;
        for (int i = 0; i < P; i++) {
            const srv_slot *sl = &S->slots[i];
            if (sl->req) continue;
            const int keep = slot_keep(sl, r);
            if (keep > best_keep) {
                best = i;
                best_keep = keep;
            }
        }
        if (best < 0) break;
        S->q_head = r->next;
        if (!S->q_head) S->q_tail = NULL;
        S->n_queued--;
        if (r->cancel) {
            r->state = REQ_DONE;
            pthread_cond_broadcast(&r->cv);
            req_unref_locked(r);
            continue;
        }
        r->state = REQ_RUNNING;
        S->slots[best].req = r;
        S->n_running++;
        S->m_prompt_tokens += (uint64_t)r->n_ids;
        fresh[nf++] = best;
    }
    return nf;
}

/* A slot's request fails with the library's message. */
static void slot_fail(srv_slot *sl) {
    snprintf(sl->req->err, sizeof sl->req->err, "%s", mome_errmsg());
    sl->finished = 1;
}

/* The admitted slots start (their cached prefix kept), then one chunk of
 * every prompt being read. */
static void prefill_step(srv_state *S, const int *fresh, int nf, const int *cancel) {
    for (int k = 0; k < nf; k++) {
        srv_slot *sl = &S->slots[fresh[k]];
        if (!cancel[fresh[k]] && slot_start(S, sl)) slot_fail(sl);
    }
    for (int i = 0; i < S->p->n_parallel; i++) {
        srv_slot *sl = &S->slots[i];
        if (!sl->req || sl->finished || cancel[i] || sl->prefill < 0) continue;
        if (slot_prefill(S, sl)) slot_fail(sl);
    }
}

/* One token of every running slot in one forward pass, sampled and
 * appended; the slots stepped. */
static int decode_step(srv_state *S, const int *cancel) {
    mome_ctx *bc[64];
    int32_t bt[64];
    int bi[64], n = 0;
    for (int i = 0; i < S->p->n_parallel; i++) {
        srv_slot *sl = &S->slots[i];
        if (sl->req && sl->pending && !sl->finished && !cancel[i]) {
            bc[n] = sl->ctx;
            bt[n] = sl->next;
            bi[n++] = i;
        }
    }
    if (n == 0) return 0;
    if (mome_decode_batch(bc, bt, n)) {
        for (int k = 0; k < n; k++) {
            slot_fail(&S->slots[bi[k]]);
            S->slots[bi[k]].cache_mem = -2;
        }
    } else
        for (int k = 0; k < n; k++) slot_token(S, &S->slots[bi[k]], slot_sample(S, &S->slots[bi[k]]));
    return n;
}

/* The compute thread: while there is work, admit (under the lock), read
 * prompts and decode one token of every slot (without it), then count the
 * step and publish each slot's new text to its request (under it). */
static void *compute_main(void *arg) {
    srv_state *S = arg;
    const int P = S->p->n_parallel;
    int fresh[64], cancel[64];
    pthread_mutex_lock(&S->mu);
    for (;;) {
        while (!S->quit && S->n_running == 0 && !S->q_head) pthread_cond_wait(&S->work, &S->mu);
        if (S->quit && S->n_running == 0 && !S->q_head) break;
        const int nf = admit_queued(S, fresh);
        for (int i = 0; i < P; i++) cancel[i] = S->slots[i].req && S->slots[i].req->cancel;
        pthread_mutex_unlock(&S->mu);

        prefill_step(S, fresh, nf, cancel);
        const int n = decode_step(S, cancel);

        pthread_mutex_lock(&S->mu);
        if (n > 0) {
            S->m_steps++;
            S->m_step_rows += (uint64_t)n;
        }
        const double t = now_s();
        for (int i = 0; i < P; i++) {
            srv_slot *sl = &S->slots[i];
            if (!sl->req) continue;
            if (sl->req->cancel && !sl->finished) {
                sl->finished = 1;
                sl->req->finish = "cancelled";
            }
            slot_publish(S, sl, t);
        }
    }
    pthread_mutex_unlock(&S->mu);
    return NULL;
}

/* ------------------------------------------------------------ HTTP */

typedef struct conn_state {
    sbuf body;
    int too_large;
} conn_state;

static int client_gone(int fd) {
    if (fd < 0) return 0;
    struct pollfd pf = {fd, POLLRDHUP, 0};
    return poll(&pf, 1, 0) > 0 && (pf.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

/* Under mu: waits until r has text past `have` bytes (or until it is done
 * when until_done), polling the client's socket every 100 ms. Returns -1
 * if the client went away (the request is cancelled). */
static int wait_output(srv_state *S, srv_req *r, size_t have, int until_done) {
    while (r->state != REQ_DONE && (until_done || r->text.n <= have)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&r->cv, &S->mu, &ts);
        if (r->state != REQ_DONE && client_gone(r->fd)) {
            r->cancel = 1;
            pthread_cond_signal(&S->work);
            return -1;
        }
    }
    return 0;
}

static void count_status(srv_state *S, unsigned status) {
    pthread_mutex_lock(&S->mu);
    if (status < 600) S->m_status[status]++;
    pthread_mutex_unlock(&S->mu);
}

static enum MHD_Result send_body(srv_state *S, struct MHD_Connection *c, unsigned status, const char *type,
                                 const char *body, size_t n) {
    struct MHD_Response *rs = MHD_create_response_from_buffer(n, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!rs) return MHD_NO;
    MHD_add_response_header(rs, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, rs);
    MHD_destroy_response(rs);
    count_status(S, status);
    return ret;
}

static enum MHD_Result send_json(srv_state *S, struct MHD_Connection *c, unsigned status, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) return send_body(S, c, 500, "text/plain", "out of memory\n", 14);
    enum MHD_Result ret = send_body(S, c, status, "application/json", s, strlen(s));
    free(s);
    return ret;
}

static const char *error_type(unsigned status) {
    switch (status) {
    case 401: return "authentication_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 503: return "server_busy";
    default: return status >= 500 ? "server_error" : "invalid_request_error";
    }
}

/* OpenAI's error body: {"error": {"message", "type", "param", "code"}} */
static enum MHD_Result send_error(srv_state *S, struct MHD_Connection *c, unsigned status, const char *param,
                                  const char *code, const char *fmt, ...) MOME_PRINTF(6, 7);
static enum MHD_Result send_error(srv_state *S, struct MHD_Connection *c, unsigned status, const char *param,
                                  const char *code, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbuf clean = {0};
    sb_add_utf8(&clean, msg, strlen(msg));
    cJSON *root = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "message", clean.p ? clean.p : "error");
    cJSON_AddStringToObject(e, "type", error_type(status));
    if (param) cJSON_AddStringToObject(e, "param", param);
    else cJSON_AddNullToObject(e, "param");
    if (code) cJSON_AddStringToObject(e, "code", code);
    else cJSON_AddNullToObject(e, "code");
    sb_free(&clean);
    if (S->p->verbose) fprintf(stderr, "mome serve: %u %s\n", status, msg);
    return send_json(S, c, status, root);
}

/* Compares the Authorization header with "Bearer KEY" in time that does not
 * depend on where they differ. */
static int auth_ok(srv_state *S, struct MHD_Connection *c) {
    const char *key = S->p->api_key;
    if (!key) return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    const size_t nh = strlen(h), nk = strlen(key);
    volatile unsigned char d = (unsigned char)(nh != nk);
    for (size_t i = 0; i < nk; i++) d |= (unsigned char)((i < nh ? (unsigned char)h[i] : 0) ^ (unsigned char)key[i]);
    return d == 0;
}

static int find_model(srv_state *S, const char *id) {
    for (int i = 0; i < S->n_ids; i++)
        if (strcmp(S->ids[i], id) == 0) return i;
    return -1;
}

/* ----------------------------------------------------- request parsing */

typedef struct perr {
    unsigned status;
    const char *code;
    char param[64];       /* "" : none */
    char msg[384];
} perr;

static int fail(perr *e, unsigned status, const char *param, const char *code, const char *fmt, ...)
    MOME_PRINTF(5, 6);
static int fail(perr *e, unsigned status, const char *param, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->status = status;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    e->code = code;
    return -1;
}

static int is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* An integer-valued JSON number in [lo, hi]. */
static int get_int(const cJSON *v, double lo, double hi, int64_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    const double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < lo || d > hi) return -1;
    *out = (int64_t)d;
    return 0;
}

/* The text of a message's content: a string, or an array of
 * {"type": "text", "text": ...} parts (concatenated). */
static int content_text(const cJSON *v, sbuf *out) {
    if (cJSON_IsString(v)) {
        sb_str(out, v->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(v)) return -1;
    const cJSON *part;
    cJSON_ArrayForEach(part, v) {
        const cJSON *ty = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(ty) || strcmp(ty->valuestring, "text") || !cJSON_IsString(tx))
            return -1;
        sb_str(out, tx->valuestring);
    }
    return 0;
}

/* Keys both endpoints accept, and the neutral values of the ones mome does
 * not implement (anything else there is a 400, never silently ignored). */
static int check_unsupported(const cJSON *k, perr *e) {
    const char *n = k->string;
    if (!strcmp(n, "n") || !strcmp(n, "best_of")) {
        int64_t v;
        if (is_null(k) || (get_int(k, 1, 1, &v) == 0)) return 0;
        return fail(e, 400, n, "unsupported_parameter", "'%s' must be 1: mome returns one choice per request", n);
    }
    if (!strcmp(n, "logprobs") || !strcmp(n, "echo")) {
        if (is_null(k) || cJSON_IsFalse(k)) return 0;
        return fail(e, 400, n, "unsupported_parameter", "'%s' is not supported by mome", n);
    }
    if (!strcmp(n, "presence_penalty") || !strcmp(n, "frequency_penalty")) {
        if (is_null(k) || (cJSON_IsNumber(k) && k->valuedouble == 0)) return 0;
        return fail(e, 400, n, "unsupported_parameter", "'%s' is not supported by mome (only 0)", n);
    }
    if (!strcmp(n, "logit_bias") || !strcmp(n, "tools") || !strcmp(n, "functions")) {
        if (is_null(k) || ((cJSON_IsObject(k) || cJSON_IsArray(k)) && !k->child)) return 0;
        return fail(e, 400, n, "unsupported_parameter", "'%s' is not supported by mome", n);
    }
    if (!strcmp(n, "tool_choice") || !strcmp(n, "function_call")) {
        if (is_null(k) || (cJSON_IsString(k) && !strcmp(k->valuestring, "none"))) return 0;
        return fail(e, 400, n, "unsupported_parameter", "'%s' is not supported by mome", n);
    }
    if (!strcmp(n, "response_format")) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(k, "type");
        if (is_null(k) || (cJSON_IsString(t) && !strcmp(t->valuestring, "text"))) return 0;
        return fail(e, 400, n, "unsupported_parameter", "only {\"type\": \"text\"} response_format is supported");
    }
    if (!strcmp(n, "top_logprobs") || !strcmp(n, "suffix")) {
        if (is_null(k)) return 0;
        return fail(e, 400, n, "unsupported_parameter", "'%s' is not supported by mome", n);
    }
    if (!strcmp(n, "user")) {
        if (is_null(k) || cJSON_IsString(k)) return 0;
        return fail(e, 400, n, "invalid_type", "'user' must be a string");
    }
    return fail(e, 400, n, "unknown_parameter", "unrecognized request argument supplied: %s", n);
}

/* Parses and validates a request body into r (prompt tokenized). Returns
 * 0, or -1 with the HTTP error in e. */
/* The chat request's messages rendered with the model's template into
 * *prompt (the caller frees it); -1 with e filled. */
static int parse_messages(srv_state *S, const cJSON *j_msgs, char **prompt, perr *e) {
    int rc = -1, n_msgs = 0, n_texts = 0;
    mome_chat_msg *msgs = NULL;
    sbuf *texts = NULL;
    if (!j_msgs) { fail(e, 400, "messages", "missing_required_parameter", "'messages' is required"); goto out; }
    const int nm = cJSON_GetArraySize(j_msgs);
    if (!cJSON_IsArray(j_msgs) || nm < 1 || nm > SRV_MAX_MSGS) {
        fail(e, 400, "messages", "invalid_value", "'messages' must be an array of 1 to %d messages", SRV_MAX_MSGS);
        goto out;
    }
    msgs = calloc((size_t)nm, sizeof *msgs);
    texts = calloc((size_t)nm, sizeof *texts);
    if (!msgs || !texts) { fail(e, 500, NULL, NULL, "out of memory"); goto out; }
    n_texts = nm;
    const cJSON *m;
    cJSON_ArrayForEach(m, j_msgs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            fail(e, 400, "messages", "invalid_value", "messages[%d] must be an object with a string 'role'", n_msgs);
            goto out;
        }
        const char *rs = role->valuestring;
        if (!strcmp(rs, "developer")) rs = "system";
        if (strcmp(rs, "system") && strcmp(rs, "user") && strcmp(rs, "assistant")) {
            fail(e, 400, "messages", "invalid_value",
                 "messages[%d]: role '%.40s' is not supported (system, developer, user, assistant)", n_msgs,
                 role->valuestring);
            goto out;
        }
        const cJSON *f;
        cJSON_ArrayForEach(f, m) if (strcmp(f->string, "role") && strcmp(f->string, "content") && strcmp(f->string, "name")) {
            fail(e, 400, "messages", "unsupported_parameter", "messages[%d]: '%.40s' is not supported", n_msgs,
                 f->string);
            goto out;
        }
        if (content_text(content, &texts[n_msgs])) {
            fail(e, 400, "messages", "invalid_value",
                 "messages[%d].content must be a string or an array of text parts", n_msgs);
            goto out;
        }
        if (texts[n_msgs].oom) { fail(e, 500, NULL, NULL, "out of memory"); goto out; }
        msgs[n_msgs].role = rs;
        msgs[n_msgs].content = texts[n_msgs].p ? texts[n_msgs].p : "";
        n_msgs++;
    }
    *prompt = mome_chat_format(S->m, msgs, n_msgs, 1);
    if (!*prompt) { fail(e, 500, NULL, NULL, "chat template: %s", mome_errmsg()); goto out; }
    rc = 0;
out:
    for (int i = 0; i < n_texts; i++) sb_free(&texts[i]);
    free(texts);
    free(msgs);
    return rc;
}

/* The completion request's prompt (a string, or an array of one) into
 * *prompt (the caller frees it); -1 with e filled. */
static int parse_prompt(const cJSON *j_prompt, char **prompt, perr *e) {
    if (!j_prompt) { fail(e, 400, "prompt", "missing_required_parameter", "'prompt' is required"); return -1; }
    const cJSON *ps = j_prompt;
    if (cJSON_IsArray(j_prompt) && cJSON_GetArraySize(j_prompt) == 1) ps = j_prompt->child;
    if (!cJSON_IsString(ps)) {
        fail(e, 400, "prompt", "invalid_value", "'prompt' must be a string (or an array of one string)");
        return -1;
    }
    *prompt = strdup(ps->valuestring);
    if (!*prompt) { fail(e, 500, NULL, NULL, "out of memory"); return -1; }
    return 0;
}

/* "stop": a string or an array of at most SRV_MAX_STOPS non-empty strings
 * into r->stops; -1 with e filled. */
static int parse_stop(const cJSON *k, srv_req *r, perr *e) {
    const char *n = k->string;
    const cJSON *one = k;
    int count = cJSON_IsArray(k) ? cJSON_GetArraySize(k) : 1;
    if ((!cJSON_IsString(k) && !cJSON_IsArray(k)) || count > SRV_MAX_STOPS) {
        fail(e, 400, n, "invalid_value", "'stop' must be a string or an array of at most %d strings",
             SRV_MAX_STOPS);
        return -1;
    }
    if (cJSON_IsArray(k)) one = k->child;
    for (; one; one = cJSON_IsArray(k) ? one->next : NULL) {
        if (!cJSON_IsString(one) || !one->valuestring[0] || strlen(one->valuestring) > SRV_MAX_STOP_LEN) {
            fail(e, 400, n, "invalid_value", "each stop string must be a non-empty string of at most %d bytes",
                 SRV_MAX_STOP_LEN);
            return -1;
        }
        if (!(r->stops[r->n_stops] = strdup(one->valuestring))) {
            fail(e, 500, NULL, NULL, "out of memory");
            return -1;
        }
        r->n_stops++;
    }
    return 0;
}

/* What a request's fields leave for after the loop over them: the
 * messages or prompt (rendered once every field is read) and max_tokens. */
typedef struct req_fields {
    const cJSON *prompt, *msgs;
    int64_t max_tokens; /* -1: the rest of the slot's context */
} req_fields;

/* One top-level field of a request (null means "not given"); -1 after the
 * error. */
static int parse_field(srv_state *S, int kind, const cJSON *k, srv_req *r, req_fields *q, perr *e) {
    const char *n = k->string;
    int64_t iv;
    if (kind == KIND_CHAT && !strcmp(n, "messages")) q->msgs = k;
    else if (kind == KIND_COMPLETION && !strcmp(n, "prompt")) q->prompt = k;
    else if (!strcmp(n, "model")) {
        if (is_null(k)) return 0;
        if (!cJSON_IsString(k)) return fail(e, 400, n, "invalid_type", "'model' must be a string");
        const int mi = find_model(S, k->valuestring);
        if (mi < 0)
            return fail(e, 404, n, "model_not_found", "the model '%.200s' does not exist (GET /v1/models lists them)",
                        k->valuestring);
        r->mem = mi - 1;
        r->model_id = S->ids[mi];
    } else if (!strcmp(n, "max_tokens") || (kind == KIND_CHAT && !strcmp(n, "max_completion_tokens"))) {
        if (is_null(k)) return 0;
        if (get_int(k, 1, (double)S->p->n_ctx, &iv))
            return fail(e, 400, n, "invalid_value", "'%s' must be an integer in [1, %d] (the context size per slot)", n,
                        S->p->n_ctx);
        q->max_tokens = iv;
    } else if (!strcmp(n, "temperature")) {
        if (is_null(k)) return 0;
        if (!cJSON_IsNumber(k) || !(k->valuedouble >= 0 && k->valuedouble <= 2))
            return fail(e, 400, n, "invalid_value", "'temperature' must be a number in [0, 2]");
        r->temperature = (float)k->valuedouble;
    } else if (!strcmp(n, "top_p")) {
        if (is_null(k)) return 0;
        if (!cJSON_IsNumber(k) || !(k->valuedouble > 0 && k->valuedouble <= 1))
            return fail(e, 400, n, "invalid_value", "'top_p' must be a number in (0, 1]");
        r->top_p = (float)k->valuedouble;
    } else if (!strcmp(n, "seed")) {
        if (is_null(k)) return 0;
        if (get_int(k, -9007199254740992.0, 9007199254740992.0, &iv))
            return fail(e, 400, n, "invalid_value", "'seed' must be an integer");
        r->seed = (uint64_t)iv;
    } else if (!strcmp(n, "stream")) {
        if (is_null(k)) return 0;
        if (!cJSON_IsBool(k)) return fail(e, 400, n, "invalid_type", "'stream' must be a boolean");
        r->stream = cJSON_IsTrue(k);
    } else if (!strcmp(n, "stream_options")) {
        if (is_null(k)) return 0;
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(k, "include_usage");
        if (!cJSON_IsObject(k) || (u && !cJSON_IsBool(u)) || cJSON_GetArraySize(k) != (u ? 1 : 0))
            return fail(e, 400, n, "invalid_value", "'stream_options' may only hold the boolean 'include_usage'");
        r->include_usage = u && cJSON_IsTrue(u);
    } else if (!strcmp(n, "stop"))
        return is_null(k) || !parse_stop(k, r, e) ? 0 : -1;
    else if (check_unsupported(k, e))
        return -1;
    return 0;
}

/* The rendered prompt's tokens into r: not empty, shorter than a slot's
 * context; max_tokens the rest of it unless given. */
static int tokenize_prompt(srv_state *S, int kind, const char *prompt, int64_t max_tokens, srv_req *r, perr *e) {
    const int n = mome_tokenize_alloc(S->m, prompt, 1, 1, &r->ids);
    if (n < 0) return fail(e, 400, NULL, "invalid_value", "tokenizer: %s", mome_errmsg());
    r->n_ids = n;
    if (n == 0) return fail(e, 400, "prompt", "invalid_value", "the prompt is empty");
    if (n >= S->p->n_ctx)
        return fail(e, 400, kind == KIND_CHAT ? "messages" : "prompt", "context_length_exceeded",
                    "the prompt is %d tokens; the context is %d tokens per slot (mome serve --ctx)", n, S->p->n_ctx);
    r->max_tokens = max_tokens > 0 ? (int)max_tokens : S->p->n_ctx - n;
    return 0;
}

static int parse_request(srv_state *S, int kind, const char *body, size_t len, srv_req *r, perr *e) {
    if (!utf8_valid(body, len)) return fail(e, 400, NULL, "invalid_utf8", "request body is not valid UTF-8");
    cJSON *root = cJSON_ParseWithLength(body, len);
    if (!root) return fail(e, 400, NULL, "invalid_json", "request body is not valid JSON");
    char *prompt = NULL;
    req_fields q = {NULL, NULL, -1};
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->mem = -1;
    r->model_id = S->ids[0];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    r->seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20);
    int rc = cJSON_IsObject(root) ? 0 : fail(e, 400, NULL, "invalid_json", "request body must be a JSON object");
    const cJSON *k;
    if (!rc) {
        cJSON_ArrayForEach(k, root) {
            if ((rc = parse_field(S, kind, k, r, &q, e))) break;
        }
    }
    if (!rc && r->include_usage && !r->stream)
        rc = fail(e, 400, "stream_options", "invalid_value", "'stream_options' is only allowed with \"stream\": true");
    if (!rc) rc = kind == KIND_CHAT ? parse_messages(S, q.msgs, &prompt, e) : parse_prompt(q.prompt, &prompt, e);
    if (!rc) rc = tokenize_prompt(S, kind, prompt, q.max_tokens, r, e);
    free(prompt);
    cJSON_Delete(root);
    return rc ? -1 : 0;
}

/* ----------------------------------------------------- responses */

static cJSON *usage_json(const srv_req *r) {
    cJSON *u = cJSON_CreateObject();
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_ids);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_ids + r->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", r->n_cached);
    return u;
}

static cJSON *resp_head(const srv_req *r, const char *object) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "object", object);
    cJSON_AddNumberToObject(j, "created", (double)r->created);
    cJSON_AddStringToObject(j, "model", r->model_id);
    cJSON_AddStringToObject(j, "system_fingerprint", "mome");
    return j;
}

/* One choice; text NULL leaves the text/delta content out. */
static cJSON *choice_json(const srv_req *r, const char *text, const char *finish, int role, int stream) {
    cJSON *c = cJSON_CreateObject();
    cJSON_AddNumberToObject(c, "index", 0);
    if (r->kind == KIND_CHAT) {
        cJSON *msg = cJSON_AddObjectToObject(c, stream ? "delta" : "message");
        if (role) cJSON_AddStringToObject(msg, "role", "assistant");
        if (text) cJSON_AddStringToObject(msg, "content", text);
    } else {
        cJSON_AddStringToObject(c, "text", text ? text : "");
    }
    cJSON_AddNullToObject(c, "logprobs");
    if (finish) cJSON_AddStringToObject(c, "finish_reason", finish);
    else cJSON_AddNullToObject(c, "finish_reason");
    return c;
}

static void sse_put(sbuf *b, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s) {
        b->oom = 1;
        return;
    }
    sb_str(b, "data: ");
    sb_str(b, s);
    sb_str(b, "\n\n");
    free(s);
}

static void sse_chunk(sbuf *b, const srv_req *r, const char *text, const char *finish, int role) {
    cJSON *j = resp_head(r, r->kind == KIND_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(j, "choices");
    cJSON_AddItemToArray(ch, choice_json(r, text, finish, role, 1));
    sse_put(b, j);
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max) {
    srv_req *r = cls;
    srv_state *S = &g_srv;
    (void)pos;
    while (r->stage_off >= r->stage.n) {
        r->stage.n = 0;
        r->stage_off = 0;
        if (r->sent_finish) return MHD_CONTENT_READER_END_OF_STREAM;
        if (r->kind == KIND_CHAT && !r->sent_role) {
            sse_chunk(&r->stage, r, "", NULL, 1);
            r->sent_role = 1;
            continue;
        }
        pthread_mutex_lock(&S->mu);
        if (wait_output(S, r, r->sent, 0)) {
            pthread_mutex_unlock(&S->mu);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        sbuf delta = {0};
        sb_add(&delta, r->text.p ? r->text.p + r->sent : "", r->text.n - r->sent);
        r->sent = r->text.n;
        const int done = r->state == REQ_DONE;
        pthread_mutex_unlock(&S->mu);
        if (delta.n) sse_chunk(&r->stage, r, delta.p, NULL, 0);
        sb_free(&delta);
        if (done) {
            if (r->err[0]) {
                cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
                cJSON_AddStringToObject(e, "message", r->err);
                cJSON_AddStringToObject(e, "type", "server_error");
                sse_put(&r->stage, j);
            } else {
                sse_chunk(&r->stage, r, r->kind == KIND_CHAT ? NULL : "", r->finish, 0);
                if (r->include_usage) {
                    cJSON *j = resp_head(r, r->kind == KIND_CHAT ? "chat.completion.chunk" : "text_completion");
                    cJSON_AddArrayToObject(j, "choices");
                    cJSON_AddItemToObject(j, "usage", usage_json(r));
                    sse_put(&r->stage, j);
                }
            }
            sb_str(&r->stage, "data: [DONE]\n\n");
            r->sent_finish = 1;
        }
        if (r->stage.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t k = r->stage.n - r->stage_off;
    if (k > max) k = max;
    memcpy(buf, r->stage.p + r->stage_off, k);
    r->stage_off += k;
    return (ssize_t)k;
}

static void stream_free(void *cls) {
    srv_req *r = cls;
    pthread_mutex_lock(&g_srv.mu);
    if (r->state != REQ_DONE) {
        r->cancel = 1;
        pthread_cond_signal(&g_srv.work);
    }
    req_unref_locked(r);
    pthread_mutex_unlock(&g_srv.mu);
}

static enum MHD_Result handle_generate(srv_state *S, struct MHD_Connection *c, int kind, conn_state *cs) {
    srv_req *r = calloc(1, sizeof *r);
    if (!r) return send_error(S, c, 500, NULL, NULL, "out of memory");
    r->kind = kind;
    r->fd = -1;
    perr e = {0};
    if (parse_request(S, kind, cs->body.p ? cs->body.p : "", cs->body.n, r, &e)) {
        for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
        free(r->ids);
        free(r);
        return send_error(S, c, e.status, e.param[0] ? e.param : NULL, e.code, "%s", e.msg);
    }
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) r->fd = ci->connect_fd;
    pthread_cond_init(&r->cv, NULL);
    r->created = (long)time(NULL);
    r->t_start = now_s();
    pthread_mutex_lock(&S->mu);
    snprintf(r->id, sizeof r->id, "%s-%llu", kind == KIND_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)++S->id_counter);
    const int busy = S->n_queued + S->n_running >= S->p->n_parallel + S->p->queue;
    if (S->draining || busy) {
        const int draining = S->draining;
        pthread_mutex_unlock(&S->mu);
        pthread_cond_destroy(&r->cv);
        for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
        free(r->ids);
        free(r);
        return draining ? send_error(S, c, 503, NULL, "shutting_down", "the server is shutting down")
                        : send_error(S, c, 503, NULL, "server_busy",
                                     "the server is busy: %d slots and %d queued requests in use; retry later",
                                     S->p->n_parallel, S->p->queue);
    }
    r->refs = 2;
    r->state = REQ_QUEUED;
    if (S->q_tail) S->q_tail->next = r;
    else S->q_head = r;
    S->q_tail = r;
    S->n_queued++;
    S->n_reqs++;
    pthread_cond_signal(&S->work);
    if (r->stream) {
        pthread_mutex_unlock(&S->mu);
        struct MHD_Response *rs = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_cb, r, stream_free);
        if (!rs) {
            stream_free(r);
            return MHD_NO;
        }
        MHD_add_response_header(rs, "Content-Type", "text/event-stream");
        MHD_add_response_header(rs, "Cache-Control", "no-cache");
        enum MHD_Result ret = MHD_queue_response(c, 200, rs);
        MHD_destroy_response(rs);
        count_status(S, 200);
        return ret;
    }
    const int gone = wait_output(S, r, 0, 1);
    if (gone) {
        req_unref_locked(r);
        pthread_mutex_unlock(&S->mu);
        return MHD_NO; /* nobody to answer */
    }
    pthread_mutex_unlock(&S->mu);
    enum MHD_Result ret;
    if (r->err[0]) {
        ret = send_error(S, c, 500, NULL, NULL, "%s", r->err);
    } else {
        cJSON *j = resp_head(r, kind == KIND_CHAT ? "chat.completion" : "text_completion");
        cJSON *ch = cJSON_AddArrayToObject(j, "choices");
        cJSON_AddItemToArray(ch, choice_json(r, r->text.p ? r->text.p : "", r->finish, 1, 0));
        cJSON_AddItemToObject(j, "usage", usage_json(r));
        ret = send_json(S, c, 200, j);
    }
    if (S->p->verbose)
        fprintf(stderr, "mome serve: %s %s prompt %d (cached %d) + %d tokens, %.3f s, %s\n", r->id, r->model_id,
                r->n_ids, r->n_cached, r->n_gen, now_s() - r->t_start, r->finish ? r->finish : "error");
    pthread_mutex_lock(&S->mu);
    req_unref_locked(r);
    pthread_mutex_unlock(&S->mu);
    return ret;
}

static cJSON *model_json(srv_state *S, int i) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", S->ids[i]);
    cJSON_AddStringToObject(o, "object", "model");
    cJSON_AddNumberToObject(o, "created", (double)S->created);
    cJSON_AddStringToObject(o, "owned_by", "mome");
    if (i > 0) {
        cJSON_AddStringToObject(o, "parent", S->ids[0]);
        cJSON_AddNumberToObject(o, "facts", (double)mome_memory_n_trained(S->mems[i - 1]));
    }
    return o;
}

/* GET /v1/models (id NULL) or GET /v1/models/ID */
static enum MHD_Result handle_models(srv_state *S, struct MHD_Connection *c, const char *id) {
    if (id) {
        const int i = find_model(S, id);
        if (i < 0)
            return send_error(S, c, 404, "model", "model_not_found", "the model '%.200s' does not exist", id);
        return send_json(S, c, 200, model_json(S, i));
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(j, "data");
    for (int i = 0; i < S->n_ids; i++) cJSON_AddItemToArray(d, model_json(S, i));
    return send_json(S, c, 200, j);
}

static void histo_print(sbuf *b, const char *name, const char *help, const histo *h) {
    char line[256];
    snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    sb_str(b, line);
    uint64_t cum = 0;
    for (int i = 0; i < N_BUCKETS; i++) {
        cum += h->count[i];
        snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, k_buckets[i], (unsigned long long)cum);
        sb_str(b, line);
    }
    cum += h->count[N_BUCKETS];
    snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
             (unsigned long long)cum, name, h->sum, name, (unsigned long long)h->n);
    sb_str(b, line);
}

static enum MHD_Result handle_metrics(srv_state *S, struct MHD_Connection *c) {
    sbuf b = {0};
    char line[256];
    pthread_mutex_lock(&S->mu);
    sb_str(&b, "# HELP mome_requests_total HTTP responses by status code.\n# TYPE mome_requests_total counter\n");
    for (int s = 100; s < 600; s++)
        if (S->m_status[s]) {
            snprintf(line, sizeof line, "mome_requests_total{code=\"%d\"} %llu\n", s, (unsigned long long)S->m_status[s]);
            sb_str(&b, line);
        }
    const struct {
        const char *name, *type, *help;
        double v;
    } rows[] = {
        {"mome_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", (double)S->m_prompt_tokens},
        {"mome_generated_tokens_total", "counter", "Tokens generated.", (double)S->m_gen_tokens},
        {"mome_decode_steps_total", "counter", "Batched decode steps.", (double)S->m_steps},
        {"mome_decode_rows_total", "counter", "Sequences decoded over all steps (mean batch = rows/steps).",
         (double)S->m_step_rows},
        {"mome_queue_depth", "gauge", "Requests waiting for a slot.", (double)S->n_queued},
        {"mome_slots_busy", "gauge", "Slots decoding a request.", (double)S->n_running},
        {"mome_slots_total", "gauge", "Slots (--parallel).", (double)S->p->n_parallel},
        {"mome_queue_capacity", "gauge", "Queue length (--queue).", (double)S->p->queue},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %.0f\n", rows[i].name, rows[i].help, rows[i].name,
                 rows[i].type, rows[i].name, rows[i].v);
        sb_str(&b, line);
    }
    histo_print(&b, "mome_request_duration_seconds", "Time from a request's arrival to its last token.", &S->h_latency);
    histo_print(&b, "mome_time_to_first_token_seconds", "Time from a request's arrival to its first text.",
                &S->h_ttft);
    S->m_status[200]++;
    pthread_mutex_unlock(&S->mu);
    if (b.oom) {
        sb_free(&b);
        return send_body(S, c, 500, "text/plain", "out of memory\n", 14);
    }
    struct MHD_Response *rs = MHD_create_response_from_buffer(b.n, b.p, MHD_RESPMEM_MUST_COPY);
    sb_free(&b);
    if (!rs) return MHD_NO;
    MHD_add_response_header(rs, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(c, 200, rs);
    MHD_destroy_response(rs);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    srv_state *S = cls;
    (void)version;
    conn_state *cs = *con_cls;
    const int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), is_post = !strcmp(method, "POST");
    if (!strncmp(url, "/v1/", 4)) url += 3; /* /v1/models == /models, as llama-server */
    const int public_path = !strcmp(url, "/") || !strcmp(url, "/health");
    if (!cs) {
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        if (!public_path && !auth_ok(S, c))
            return send_error(S, c, 401, NULL, "invalid_api_key",
                              "missing or wrong API key: send the header Authorization: Bearer KEY");
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            errno = 0;
            const unsigned long long v = strtoull(cl, &end, 10);
            if (errno || end == cl || v > S->p->max_body)
                return send_error(S, c, 413, NULL, "request_too_large", "the request body is over the limit of %zu bytes",
                                  S->p->max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!cs->too_large) {
            if (cs->body.n + *upload_size > S->p->max_body) {
                cs->too_large = 1;
                sb_free(&cs->body);
            } else {
                sb_add(&cs->body, upload, *upload_size);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (cs->too_large)
        return send_error(S, c, 413, NULL, "request_too_large", "the request body is over the limit of %zu bytes",
                          S->p->max_body);
    if (cs->body.oom) return send_error(S, c, 500, NULL, NULL, "out of memory");
    if (!strcmp(url, "/")) {
        if (!is_get) return send_error(S, c, 405, NULL, "method_not_allowed", "use GET /");
        return send_body(S, c, 200, "text/html; charset=utf-8", srv_page_html, strlen(srv_page_html));
    }
    if (!strcmp(url, "/health")) {
        if (!is_get) return send_error(S, c, 405, NULL, "method_not_allowed", "use GET /health");
        pthread_mutex_lock(&S->mu);
        const int draining = S->draining, busy = S->n_running, queued = S->n_queued;
        pthread_mutex_unlock(&S->mu);
        char body[160];
        snprintf(body, sizeof body, "{\"status\":\"%s\",\"slots_busy\":%d,\"slots_total\":%d,\"queued\":%d}",
                 draining ? "draining" : "ok", busy, S->p->n_parallel, queued);
        return send_body(S, c, draining ? 503 : 200, "application/json", body, strlen(body));
    }
    if (!strcmp(url, "/metrics")) {
        if (!is_get) return send_error(S, c, 405, NULL, "method_not_allowed", "use GET /metrics");
        return handle_metrics(S, c);
    }
    if (!strcmp(url, "/models") || !strncmp(url, "/models/", 8)) {
        if (!is_get) return send_error(S, c, 405, NULL, "method_not_allowed", "use GET /v1/models");
        return handle_models(S, c, url[7] ? url + 8 : NULL);
    }
    if (!strcmp(url, "/completions") || !strcmp(url, "/chat/completions")) {
        if (!is_post) return send_error(S, c, 405, NULL, "method_not_allowed", "use POST %s", url);
        return handle_generate(S, c, strcmp(url, "/completions") ? KIND_CHAT : KIND_COMPLETION, cs);
    }
    return send_error(S, c, 404, NULL, "not_found", "no such endpoint: %s %.200s", method, url);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn_state *cs = *con_cls;
    if (!cs) return;
    sb_free(&cs->body);
    free(cs);
    *con_cls = NULL;
}

/* ------------------------------------------------------------ run */

/* libmicrohttpd's own messages: the last one is kept for a start-up error;
 * with -v they are printed as they come. */
static char g_mhd_msg[256];
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    const srv_state *S = cls;
    vsnprintf(g_mhd_msg, sizeof g_mhd_msg, fmt, ap);
    const size_t n = strlen(g_mhd_msg);
    if (n && g_mhd_msg[n - 1] == '\n') g_mhd_msg[n - 1] = 0;
    if (S->p && S->p->verbose) fprintf(stderr, "mome serve: libmicrohttpd: %s\n", g_mhd_msg);
}

/* The file's name without its directory (and without suffix if given). */
static char *base_name(const char *path, const char *suffix) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    size_t n = strlen(b);
    if (suffix && n > strlen(suffix) && !strcmp(b + n - strlen(suffix), suffix)) n -= strlen(suffix);
    char *s = malloc(n + 1);
    if (!s) return NULL;
    memcpy(s, b, n);
    s[n] = 0;
    return s;
}

static void free_state(srv_state *S) {
    if (S->slots)
        for (int i = 0; i < S->p->n_parallel; i++) {
            mome_ctx_free(S->slots[i].ctx);
            mome_sampler_free(S->slots[i].smp);
            sb_free(&S->slots[i].gen);
        }
    free(S->slots);
    for (int i = 0; i < S->n_ids; i++) free(S->ids[i]);
    free(S->ids);
    if (S->mems)
        for (int i = 0; i < S->p->n_memories; i++) mome_memory_free(S->mems[i]);
    free(S->mems);
    mome_model_free(S->m);
}

/* The settings' ranges, before anything is loaded. */
static int check_params(const srv_params *p) {
    if (!p || !p->model_path) return mome_seterr_code(MOME_ERR_ARG, "serve: no model");
    if (p->n_parallel < 1 || p->n_parallel > 64)
        return mome_seterr_code(MOME_ERR_ARG, "serve: --parallel must be in [1, 64]");
    if (p->n_ctx < 64) return mome_seterr_code(MOME_ERR_ARG, "serve: --ctx must be at least 64");
    if (p->queue < 0 || p->queue > 100000) return mome_seterr_code(MOME_ERR_ARG, "serve: --queue must be in [0, 100000]");
    if (p->port < 0 || p->port > 65535) return mome_seterr_code(MOME_ERR_ARG, "serve: --port must be in [0, 65535]");
    if (!(p->timeout_s >= 1 && p->timeout_s <= 86400))
        return mome_seterr_code(MOME_ERR_ARG, "serve: --timeout must be in [1, 86400] seconds");
    return 0;
}

/* The model, its memories (each a model id: the file name without .mome,
 * unique) and the slots' contexts; on failure the caller frees S. */
static int load_models(srv_state *S) {
    const srv_params *p = S->p;
    mome_model_params mp = mome_model_default_params();
    mp.n_threads = p->n_threads;
    int rc = mome_model_load(p->model_path, &mp, &S->m);
    if (rc) return rc;
    S->mems = calloc((size_t)(p->n_memories > 0 ? p->n_memories : 1), sizeof *S->mems);
    S->ids = calloc((size_t)p->n_memories + 1, sizeof *S->ids);
    S->slots = calloc((size_t)p->n_parallel, sizeof *S->slots);
    if (!S->mems || !S->ids || !S->slots) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    if (!(S->ids[S->n_ids++] = base_name(p->model_path, NULL))) return MOME_ERR_NOMEM;
    for (int i = 0; i < p->n_memories; i++) {
        if ((rc = mome_memory_load(p->memory_paths[i], S->m, &S->mems[i]))) return rc;
        if (!(S->ids[S->n_ids] = base_name(p->memory_paths[i], ".mome"))) return MOME_ERR_NOMEM;
        if (find_model(S, S->ids[S->n_ids]) >= 0)
            return mome_seterr_code(MOME_ERR_ARG, "serve: two models named '%s' (%s)", S->ids[S->n_ids],
                                    p->memory_paths[i]);
        S->n_ids++;
    }
    mome_ctx_params cp = mome_ctx_default_params();
    cp.n_ctx = p->n_ctx;
    cp.n_threads = p->n_threads;
    for (int i = 0; i < p->n_parallel && !rc; i++) {
        rc = mome_ctx_init(S->m, &cp, &S->slots[i].ctx);
        S->slots[i].cache_mem = -2;
    }
    return rc;
}

/* The HTTP daemon on host:port (one thread per connection) into *d. */
static int start_http(srv_state *S, struct MHD_Daemon **d) {
    const srv_params *p = S->p;
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", p->port);
    const int gai = getaddrinfo(p->host, port_s, &hints, &ai);
    if (gai) return mome_seterr_code(MOME_ERR_ARG, "serve: cannot resolve host '%s': %s", p->host, gai_strerror(gai));
    const unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
                           (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    *d = MHD_start_daemon(flags, (uint16_t)p->port, NULL, NULL, on_request, S, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->timeout_s, MHD_OPTION_CONNECTION_LIMIT,
                          (unsigned)(p->n_parallel + p->queue + 64), MHD_OPTION_NOTIFY_COMPLETED, on_completed, S,
                          MHD_OPTION_EXTERNAL_LOGGER, mhd_log, S, MHD_OPTION_END);
    freeaddrinfo(ai);
    return *d ? 0
              : mome_seterr_code(MOME_ERR_IO, "serve: cannot listen on %s port %d%s%s", p->host, p->port,
                                 g_mhd_msg[0] ? ": " : "", g_mhd_msg);
}

/* Says where it listens (and writes the port to --ready-file), serves until
 * a stop is requested, then drains: new requests are refused, those in
 * flight finish, and the daemon stops. */
static void serve_until_stopped(srv_state *S, struct MHD_Daemon *d) {
    const srv_params *p = S->p;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    const int port = di ? di->port : p->port;
    fprintf(stderr, "mome serve: listening on http://%s:%d (%d slots of %d tokens, queue %d%s); models:", p->host, port,
            p->n_parallel, p->n_ctx, p->queue, p->api_key ? ", API key required" : "");
    for (int i = 0; i < S->n_ids; i++) fprintf(stderr, " %s", S->ids[i]);
    fprintf(stderr, "\n");
    if (p->ready_file) {
        FILE *f = fopen(p->ready_file, "w");
        if (f) {
            fprintf(f, "%d\n", port);
            fclose(f);
        }
    }
    while (!atomic_load(&g_stop_requested)) {
        char ch;
        ssize_t k = read(g_stop_pipe[0], &ch, 1);
        if (k < 0 && errno != EINTR) break;
    }
    pthread_mutex_lock(&S->mu);
    S->draining = 1;
    if (S->n_reqs) fprintf(stderr, "mome serve: draining %d requests\n", S->n_reqs);
    while (S->n_reqs > 0) pthread_cond_wait(&S->idle, &S->mu);
    pthread_mutex_unlock(&S->mu);
    MHD_stop_daemon(d);
    fprintf(stderr, "mome serve: stopped\n");
}

int srv_run(const srv_params *p) {
    srv_state *S = &g_srv;
    int rc = check_params(p);
    if (rc) return rc;
    memset(S, 0, sizeof *S);
    S->p = p;
    S->created = (long)time(NULL);
    if ((rc = load_models(S))) {
        free_state(S);
        return rc;
    }
    if (pipe2(g_stop_pipe, O_CLOEXEC)) {
        free_state(S);
        return mome_seterr_code(MOME_ERR_IO, "serve: pipe: %s", strerror(errno));
    }
    pthread_mutex_init(&S->mu, NULL);
    pthread_cond_init(&S->work, NULL);
    pthread_cond_init(&S->idle, NULL);
    pthread_t compute;
    if (pthread_create(&compute, NULL, compute_main, S))
        rc = mome_seterr_code(MOME_ERR, "serve: cannot start the compute thread");
    else {
        struct MHD_Daemon *d = NULL;
        if (!(rc = start_http(S, &d))) serve_until_stopped(S, d);
        pthread_mutex_lock(&S->mu);
        S->quit = 1;
        pthread_cond_signal(&S->work);
        pthread_mutex_unlock(&S->mu);
        pthread_join(compute, NULL);
    }
    close(g_stop_pipe[0]);
    close(g_stop_pipe[1]);
    g_stop_pipe[0] = g_stop_pipe[1] = -1;
    pthread_cond_destroy(&S->work);
    pthread_cond_destroy(&S->idle);
    pthread_mutex_destroy(&S->mu);
    free_state(S);
    return rc;
}
