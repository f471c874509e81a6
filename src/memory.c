/* memory.c - the memory of facts: keys, selection, expert values, the
 * routing state machine the engine runs per position, and the memory file.
 * See memory.h for the model; the design and the measurements behind it are
 * in docs/ARCHITECTURE.md.
 */
#include "memory.h"

#include <math.h>
#include <string.h>

#include "gguf.h"
#include "gguf_write.h"
#include "model.h"
#include "quant.h"
#include "util.h"

static float dot(const float *a, const float *b, int n) { return quant_dot_f32(n, a, b); }

float mem_rms_normalize(const float *h, float *xhat, int32_t C) {
    double ss = 0;
    for (int i = 0; i < C; i++) ss += (double)h[i] * h[i];
    const double rms = sqrt(ss / C + 1e-6);
    const float r = (float)(1.0 / rms);
    for (int i = 0; i < C; i++) xhat[i] = h[i] * r;
    return (float)rms;
}

/* out = (v - mu) / |v - mu| */
static void centre_unit(const float *v, const float *mu, float *out, int C) {
    double s = 0;
    for (int i = 0; i < C; i++) {
        out[i] = v[i] - mu[i];
        s += (double)out[i] * out[i];
    }
    const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < C; i++) out[i] *= inv;
}

/* ------------------------------------------------------------ template marks */

/* Tokens of the rendered conversation [user: X] with the assistant turn
 * opened: everything before the content X but a leading BOS is user_open,
 * everything after it is the header. The marks are checked by tokenizing the
 * whole rendering and finding them around the content. */
int mem_marks_from_model(const mome_model *m, mem_marks *mk) {
    memset(mk, 0, sizeof *mk);
    static const char sentinel[] = "Zq";
    mome_chat_msg msg = {"user", sentinel};
    char *txt = mome_chat_format(m, &msg, 1, 1);
    if (!txt) return MOME_ERR;
    char *at = strstr(txt, sentinel);
    int rc = MOME_OK;
    int32_t *pre = NULL, *post = NULL, *all = NULL;
    if (!at) { rc = mome_seterr_code(MOME_ERR_UNSUPPORTED, "memory: the chat template does not show the user's text"); goto done; }
    *at = 0;
    int npre = mome_tokenize_alloc(m, txt, 0, 1, &pre);
    int npost = mome_tokenize_alloc(m, at + sizeof sentinel - 1, 0, 1, &post);
    *at = sentinel[0];
    int nall = mome_tokenize_alloc(m, txt, 0, 1, &all);
    if (npre < 0 || npost < 0 || nall < 0) { rc = MOME_ERR; goto done; }
    /* the user-open run is the whole prefix but a leading BOS */
    int s = npre > 0 && pre[0] == mome_token_bos(m) ? 1 : 0;
    if (npre - s < 1 || npre - s > MEM_MAX_MARK || npost < 1 || npost > MEM_MAX_MARK) {
        rc = mome_seterr_code(MOME_ERR_UNSUPPORTED, "memory: the chat template's user turn has %d opening and %d closing tokens (1..%d supported)",
                              npre - s, npost, MEM_MAX_MARK);
        goto done;
    }
    /* the whole rendering must be prefix + content + suffix token for token */
    if (nall < npre + npost + 1 || memcmp(all, pre, (size_t)npre * 4) != 0 ||
        memcmp(all + nall - npost, post, (size_t)npost * 4) != 0) {
        rc = mome_seterr_code(MOME_ERR_UNSUPPORTED, "memory: the chat template's marks do not tokenize apart from the user's text");
        goto done;
    }
    mk->n_user_open = npre - s;
    memcpy(mk->user_open, pre + s, (size_t)mk->n_user_open * 4);
    mk->n_head = npost;
    memcpy(mk->head, post, (size_t)npost * 4);
done:
    free(txt); free(pre); free(post); free(all);
    return rc;
}

static int grow(void **p, int64_t n, size_t elem) {
    void *q = realloc(*p, (size_t)n * elem);
    if (!q) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory growing the memory");
    *p = q;
    return 0;
}

int mem_bind_model(mome_memory *mem, const mome_model *m) {
    int rc = mem_marks_from_model(m, &mem->mk);
    if (rc) return rc;
    const int V = m->hp.n_vocab;
    free(mem->blank);
    free(mem->content);
    free(mem->piece_off);
    free(mem->pieces);
    mem->blank = mome_calloc((size_t)V, 1);
    mem->content = mome_calloc((size_t)V, 1);
    mem->piece_off = mome_calloc((size_t)V + 1, sizeof(int32_t));
    mem->pieces = mome_malloc((size_t)V * 8 + 64);
    int64_t cap_pieces = (int64_t)V * 8 + 64, n_pieces = 0;
    if (!mem->blank || !mem->content || !mem->piece_off || !mem->pieces) return MOME_ERR_NOMEM;
    /* one pass over the vocabulary: whitespace-only tokens (left out of the
     * pool) and tokens with a letter or digit (the wording check's); special
     * tokens have no text here and are neither */
    for (int v = 0; v < V; v++) {
        char piece[256]; /* a longer token counts as neither and adds no text */
        mem->piece_off[v + 1] = (int32_t)n_pieces;
        int n = mome_token_to_piece(m, v, piece, sizeof piece, 0);
        if (n <= 0 || n > (int)sizeof piece) continue;
        int blank = 1, alnum = 0;
        for (int i = 0; i < n; i++) {
            const unsigned char ch = (unsigned char)piece[i];
            blank &= ch == ' ' || ch == '\t';
            alnum |= (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch >= 0x80;
        }
        mem->blank[v] = (uint8_t)blank;
        mem->content[v] = (uint8_t)alnum;
        /* its text for the subject check, ASCII lower case */
        if (n_pieces + n > cap_pieces) {
            cap_pieces = 2 * cap_pieces + n;
            if (grow((void **)&mem->pieces, cap_pieces, 1)) return MOME_ERR_NOMEM;
        }
        for (int i = 0; i < n; i++) {
            const char ch = piece[i];
            mem->pieces[n_pieces + i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        }
        n_pieces += n;
        mem->piece_off[v + 1] = (int32_t)n_pieces;
    }
    return 0;
}

/* ------------------------------------------------------------------ facts */

/* The settings of a memory without its optional parts (one fact per
 * question, no margin, no wording check, no alternative key yet): a new
 * memory's, and a file's before it says otherwise. */
static void optional_parts_off(mome_memory *m) {
    m->top_k = 1;
    m->mix_temp = MEM_DEFAULT_MIX_TEMP;
    m->mix_tau = NAN;
    m->margin = 0.0f;
    m->margin_share = MEM_DEFAULT_MARGIN_SHARE;
    m->cover_tau = NAN;
    m->alt_last = -1;
    m->ver_layer = -1;
    m->ver_tau = NAN;
    m->ver_tau_unnamed = MEM_DEFAULT_VERIFY_UNNAMED;
    m->ver_last = -1;
}

int mem_new(mome_model *m, int key_layer, int value_layer, mome_memory **out) {
    *out = NULL;
    const int L = m->hp.n_layer, C = m->hp.n_embd;
    if (key_layer < 1 || key_layer >= value_layer || value_layer >= L)
        return mome_seterr_code(MOME_ERR_ARG, "memory: need 1 <= key layer (%d) < value layer (%d) < %d", key_layer,
                                value_layer, L);
    const char *sha = mome_model_sha256(m);
    if (!sha) return MOME_ERR_IO;
    mome_memory *mem = calloc(1, sizeof *mem);
    if (!mem) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    memcpy(mem->base_sha256, sha, 65);
    mem->base_name = strdup(m->name ? m->name : "");
    mem->n_embd = C;
    mem->n_layer = L;
    mem->n_vocab = m->hp.n_vocab;
    mem->key_layer = key_layer;
    mem->value_layer = value_layer;
    mem->tau = MEM_DEFAULT_TAU;
    mem->w_pool = MEM_DEFAULT_W_POOL;
    optional_parts_off(mem);
    mem->mu_pool = mome_calloc((size_t)C, sizeof(float));
    mem->mu_last = mome_calloc((size_t)C, sizeof(float));
    int rc = mem->base_name && mem->mu_pool && mem->mu_last ? mem_bind_model(mem, m) : MOME_ERR_NOMEM;
    if (rc) { mome_memory_free(mem); return rc; }
    *out = mem;
    return MOME_OK;
}

int mem_add_fact(mome_memory *mem, const float *kpool, const float *klast, const int32_t *ans, int n_ans) {
    const int C = mem->n_embd;
    if (n_ans < 1 || n_ans > MEM_MAX_ANSWER)
        return mome_seterr_code(MOME_ERR_ARG, "memory: an answer of %d tokens (1..%d supported)", n_ans, MEM_MAX_ANSWER);
    if (mem->n_facts == mem->cap_facts) {
        int64_t nc = mem->cap_facts ? 2 * (int64_t)mem->cap_facts : 64;
        if (nc > INT32_MAX / 2) return mome_seterr_code(MOME_ERR_ARG, "memory: too many facts");
        if (grow((void **)&mem->kpool, nc * C, sizeof(float)) || grow((void **)&mem->klast, nc * C, sizeof(float)) ||
            grow((void **)&mem->cpool, nc * C, sizeof(float)) || grow((void **)&mem->clast, nc * C, sizeof(float)) ||
            grow((void **)&mem->n_ans, nc, sizeof(int32_t)) || grow((void **)&mem->ans_off, nc, sizeof(int64_t)) ||
            grow((void **)&mem->n_tok, nc, sizeof(int32_t)) || grow((void **)&mem->tok_off, nc, sizeof(int64_t)) ||
            grow((void **)&mem->n_alt, nc, sizeof(int32_t)) || grow((void **)&mem->alt_off, nc, sizeof(int64_t)) ||
            grow((void **)&mem->subj_len, nc, sizeof(int32_t)) || grow((void **)&mem->subj_off, nc, sizeof(int64_t)) ||
            grow((void **)&mem->flead, nc, sizeof(float)) || grow((void **)&mem->n_ver, nc, sizeof(int32_t)) ||
            grow((void **)&mem->ver_off, nc, sizeof(int64_t)) ||
            (mem->ver_ctr && grow((void **)&mem->ver_ctr, nc * C, sizeof(uint16_t))))
            return MOME_ERR_NOMEM;
        mem->cap_facts = (int32_t)nc;
    }
    if (mem->n_ans_total + n_ans > mem->cap_ans) {
        int64_t nc = mem->cap_ans ? 2 * mem->cap_ans : 1024;
        while (nc < mem->n_ans_total + n_ans) nc *= 2;
        if (grow((void **)&mem->ans, nc, sizeof(int32_t))) return MOME_ERR_NOMEM;
        mem->cap_ans = nc;
    }
    const int64_t rows = mem->n_ans_total + mem->n_facts; /* rows so far */
    if (rows + n_ans + 1 > mem->cap_rows) {
        int64_t nc = mem->cap_rows ? 2 * mem->cap_rows : 1024;
        while (nc < rows + n_ans + 1) nc *= 2;
        if (grow((void **)&mem->val, nc * C, sizeof(float))) return MOME_ERR_NOMEM;
        mem->cap_rows = nc;
    }
    const int f = mem->n_facts++;
    memcpy(mem->kpool + (size_t)f * C, kpool, (size_t)C * sizeof(float));
    memcpy(mem->klast + (size_t)f * C, klast, (size_t)C * sizeof(float));
    centre_unit(kpool, mem->mu_pool, mem->cpool + (size_t)f * C, C);
    centre_unit(klast, mem->mu_last, mem->clast + (size_t)f * C, C);
    mem->n_ans[f] = n_ans;
    mem->ans_off[f] = mem->n_ans_total;
    mem->n_tok[f] = 0;
    mem->tok_off[f] = mem->n_tok_total;
    mem->n_alt[f] = 0;
    mem->alt_off[f] = mem->n_alt_total;
    mem->subj_len[f] = 0;
    mem->subj_off[f] = mem->n_subj_total;
    mem->flead[f] = NAN;
    mem->n_ver[f] = 0;
    mem->ver_off[f] = mem->n_ver_total;
    if (mem->ver_ctr)
        for (int c = 0; c < C; c++) mem->ver_ctr[(size_t)f * C + c] = quant_f32_to_f16(mem->mu_ver[c]);
    memcpy(mem->ans + mem->n_ans_total, ans, (size_t)n_ans * sizeof(int32_t));
    memset(mem->val + (size_t)rows * C, 0, (size_t)(n_ans + 1) * C * sizeof(float));
    mem->n_ans_total += n_ans;
    return f;
}

int mem_add_alt_key(mome_memory *mem, int f, const float *kpool, const float *klast) {
    const int C = mem->n_embd;
    if (f < 0 || f >= mem->n_facts || f < mem->alt_last || mem->n_alt[f] >= MEM_MAX_ALT)
        return mome_seterr_code(MOME_ERR_ARG, "memory: alternative keys go to facts in order (fact %d after %d), at most %d each",
                                f, mem->alt_last, MEM_MAX_ALT);
    if (mem->n_alt[f] == 0) mem->alt_off[f] = mem->n_alt_total; /* f's are the last ones: f >= alt_last */
    if (mem->n_alt_total == mem->cap_alt) {
        const int64_t nc = mem->cap_alt ? 2 * mem->cap_alt : 64;
        if (grow((void **)&mem->akpool, nc * C, sizeof(float)) || grow((void **)&mem->aklast, nc * C, sizeof(float)) ||
            grow((void **)&mem->acpool, nc * C, sizeof(float)) || grow((void **)&mem->aclast, nc * C, sizeof(float)))
            return MOME_ERR_NOMEM;
        mem->cap_alt = nc;
    }
    /* kept as the file keeps them (f16), so the tuner routes as the saved memory will */
    const size_t a = (size_t)mem->n_alt_total++;
    for (int i = 0; i < C; i++) {
        mem->akpool[a * C + i] = quant_f16_to_f32(quant_f32_to_f16(kpool[i]));
        mem->aklast[a * C + i] = quant_f16_to_f32(quant_f32_to_f16(klast[i]));
    }
    centre_unit(mem->akpool + a * C, mem->mu_pool, mem->acpool + a * C, C);
    centre_unit(mem->aklast + a * C, mem->mu_last, mem->aclast + a * C, C);
    mem->n_alt[f]++;
    mem->alt_last = f;
    return 0;
}

/* ------------------------------------------------------ relation check */

/* The last block the check may read: read in place, its state must be
 * taken before the values join; read in a wrapper, it has a pass of its own. */
static int ver_layer_max(const mome_memory *mem) { return mem->n_ver_open > 0 ? mem->n_layer - 1 : mem->value_layer - 1; }

int mem_verify_init(mome_memory *mem, int layer, float tau) {
    if (layer < 1 || layer > ver_layer_max(mem) || !(isnan(tau) || (tau >= -1.0f && tau <= 1.0f)))
        return mome_seterr_code(MOME_ERR_ARG, "memory: relation check at block %d (1..%d) with threshold %g ([-1, 1])", layer,
                                ver_layer_max(mem), (double)tau);
    if (mem->n_ver_total > 0 && layer != mem->ver_layer)
        return mome_seterr_code(MOME_ERR_ARG, "memory: its relation check reads block %d, not %d", mem->ver_layer, layer);
    if (!mem->mu_ver && !(mem->mu_ver = mome_calloc((size_t)mem->n_embd, sizeof(float)))) return MOME_ERR_NOMEM;
    mem->ver_layer = layer;
    mem->ver_tau = tau;
    return 0;
}

int mem_set_verify_wrap(mome_memory *mem, const int32_t *open, int n_open, const int32_t *close, int n_close) {
    if (mem->n_ver_total == 0 && n_open == 0 && n_close == 0) { /* the chat's own marks */
        mem->n_ver_open = mem->n_ver_close = 0;
        return 0;
    }
    if (mem->n_ver_total > 0 || n_open < 1 || n_open > MEM_MAX_MARK || n_close < 1 || n_close > MEM_MAX_MARK)
        return mome_seterr_code(MOME_ERR_ARG, "memory: the check's wrapper has %d and %d tokens (1..%d each, before any state)",
                                n_open, n_close, MEM_MAX_MARK);
    for (int i = 0; i < n_open + n_close; i++) {
        const int32_t t = i < n_open ? open[i] : close[i - n_open];
        if (t < 0 || t >= mem->n_vocab) return mome_seterr_code(MOME_ERR_ARG, "memory: the check's wrapper token %d is out of range", t);
    }
    memcpy(mem->ver_open, open, (size_t)n_open * sizeof(int32_t));
    memcpy(mem->ver_close, close, (size_t)n_close * sizeof(int32_t));
    mem->n_ver_open = n_open;
    mem->n_ver_close = n_close;
    return 0;
}

int mem_set_fact_verify(mome_memory *mem, int f, const float *rows, int n) {
    const int C = mem->n_embd;
    if (mem->ver_layer < 0 || f < 0 || f >= mem->n_facts || f <= mem->ver_last || n < 0 || n > MEM_MAX_VER)
        return mome_seterr_code(MOME_ERR_ARG, "memory: relation-check states go to facts in order, once (fact %d after %d), "
                                              "at most %d each, to a memory with the check", f, mem->ver_last, MEM_MAX_VER);
    if (mem->n_ver_total + n > mem->cap_ver) {
        int64_t nc = mem->cap_ver ? 2 * mem->cap_ver : 256;
        while (nc < mem->n_ver_total + n) nc *= 2;
        if (grow((void **)&mem->kver, nc * C, sizeof(uint16_t))) return MOME_ERR_NOMEM;
        mem->cap_ver = nc;
    }
    mem->ver_off[f] = mem->n_ver_total; /* f's are the last ones: f > ver_last */
    for (size_t i = 0; i < (size_t)n * C; i++) mem->kver[(size_t)mem->n_ver_total * C + i] = quant_f32_to_f16(rows[i]);
    mem->n_ver[f] = n;
    mem->n_ver_total += n;
    mem->ver_last = f;
    return 0;
}

int mem_find_question(const mome_memory *mem, const int32_t *toks, int n, int32_t *span0, int32_t *span1) {
    mem_pos *st = mome_malloc((size_t)(n > 0 ? n : 1) * sizeof(mem_pos));
    if (!st) return MOME_ERR_NOMEM;
    int32_t dec = -1;
    for (int32_t p = 0; p < n; p++)
        if (mem_pos_next(mem, st, toks, p, &st[p])) {
            dec = p;
            *span0 = st[p].span0;
            *span1 = st[p].span1;
        }
    free(st);
    return dec;
}

int mem_set_verify_centre(mome_memory *mem, const float *mu) {
    if (mem->ver_layer < 0 || !mem->mu_ver) return mome_seterr_code(MOME_ERR_ARG, "memory: no relation check");
    memcpy(mem->mu_ver, mu, (size_t)mem->n_embd * sizeof(float));
    return 0;
}

int mem_set_verify_whiten(mome_memory *mem, const float *w) {
    const int C = mem->n_embd;
    if (mem->ver_layer < 0 || !mem->mu_ver) return mome_seterr_code(MOME_ERR_ARG, "memory: no relation check");
    if (!mem->ver_w && !(mem->ver_w = mome_malloc((size_t)C * C * sizeof(float)))) return MOME_ERR_NOMEM;
    memcpy(mem->ver_w, w, (size_t)C * C * sizeof(float));
    if (!mem->ver_ctr) {
        if (!(mem->ver_ctr = mome_malloc((size_t)(mem->cap_facts > 0 ? mem->cap_facts : 1) * C * sizeof(uint16_t))))
            return MOME_ERR_NOMEM;
        for (int f = 0; f < mem->n_facts; f++)
            for (int c = 0; c < C; c++) mem->ver_ctr[(size_t)f * C + c] = quant_f32_to_f16(mem->mu_ver[c]);
    }
    return 0;
}

int mem_set_fact_verify_centre(mome_memory *mem, int f, const float *centre) {
    const int C = mem->n_embd;
    if (!mem->ver_ctr || f < 0 || f >= mem->n_facts)
        return mome_seterr_code(MOME_ERR_ARG, "memory: a relation-check centre for fact %d of %d without a whitening", f, mem->n_facts);
    for (int c = 0; c < C; c++) mem->ver_ctr[(size_t)f * C + c] = quant_f32_to_f16(centre[c]);
    return 0;
}

/* out = W (v - c) / |W (v - c)|; tmp: C floats. */
static void whiten_unit(const float *w, const float *v, const float *c, float *tmp, float *out, int C) {
    for (int i = 0; i < C; i++) tmp[i] = v[i] - c[i];
    double s = 0;
    for (int i = 0; i < C; i++) {
        out[i] = dot(w + (size_t)i * C, tmp, C);
        s += (double)out[i] * out[i];
    }
    const float inv = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    for (int i = 0; i < C; i++) out[i] *= inv;
}

float mem_verify(const mome_memory *mem, int f, const float *xhat, float *scratch) {
    if (isnan(mem->ver_tau) || mem->ver_layer < 0 || !xhat || f < 0 || f >= mem->n_facts || mem->n_ver[f] == 0)
        return INFINITY;
    const int C = mem->n_embd;
    float *qc = scratch, *kc = scratch + C, *ctr = scratch + 2 * (size_t)C;
    if (mem->ver_w) { /* the fact's own centre, whitened */
        for (int c = 0; c < C; c++) ctr[c] = quant_f16_to_f32(mem->ver_ctr[(size_t)f * C + c]);
        whiten_unit(mem->ver_w, xhat, ctr, kc, qc, C);
    } else
        centre_unit(xhat, mem->mu_ver, qc, C);
    float best = -INFINITY;
    for (int j = 0; j < mem->n_ver[f]; j++) {
        const uint16_t *src = mem->kver + (size_t)(mem->ver_off[f] + j) * C;
        float *k = mem->ver_w ? scratch + 3 * (size_t)C : kc;
        for (int c = 0; c < C; c++) k[c] = quant_f16_to_f32(src[c]);
        if (mem->ver_w) whiten_unit(mem->ver_w, k, ctr, k, kc, C);
        else centre_unit(kc, mem->mu_ver, kc, C);
        const float d = dot(qc, kc, C);
        if (d > best) best = d;
    }
    return best;
}

/* ------------------------------------------------------- subject check */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_word(char c) {
    const unsigned char u = (unsigned char)c;
    return (u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80;
}
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Text as the subject check reads it: ASCII lower case, each run of
 * whitespace one space, none at either end. One rule for subjects,
 * questions and the token pieces the subject mask maps back. */
typedef struct norm_text {
    char *t;
    int16_t *owner; /* NULL, or the token each byte came from */
    size_t cap, len;
    int sp;   /* a space is pending */
    int full; /* t filled with keep_last 0: nothing more is appended */
} norm_text;

/* Appends src (n bytes), from token `who`, to nt; when t fills, keep_last
 * keeps its last half (the end of a long question is the question), else
 * appending stops. */
static void norm_append(norm_text *nt, const char *src, size_t n, int16_t who, int keep_last) {
    for (size_t i = 0; i < n && !nt->full; i++) {
        if (is_space(src[i])) { nt->sp = nt->len > 0; continue; }
        if (nt->len + 2 > nt->cap) {
            if (!keep_last) { nt->full = 1; break; }
            const size_t h = nt->cap / 2;
            memmove(nt->t, nt->t + h, nt->len - h);
            if (nt->owner) memmove(nt->owner, nt->owner + h, (nt->len - h) * sizeof *nt->owner);
            nt->len -= h;
        }
        if (nt->sp) {
            if (nt->owner) nt->owner[nt->len] = who;
            nt->t[nt->len++] = ' ';
            nt->sp = 0;
        }
        if (nt->owner) nt->owner[nt->len] = who;
        nt->t[nt->len++] = lower(src[i]);
    }
}

/* src (n bytes) normalised into dst (n bytes at most); returns the length. */
static size_t normalise(const char *src, size_t n, char *dst) {
    norm_text nt = {dst, NULL, n + 2, 0, 0, 0}; /* never fills: one byte out per byte in at most */
    norm_append(&nt, src, n, 0, 0);
    return nt.len;
}

/* 1 when the normalised text (n bytes) contains the normalised subject (ns
 * bytes) as whole words: a word character or a hyphen on neither side. */
static long find_subject(const char *text, size_t n, const char *subject, int32_t ns) {
    if (ns <= 0 || (size_t)ns > n) return -1;
    for (size_t i = 0; i + (size_t)ns <= n; i++) {
        if (text[i] != subject[0] || memcmp(text + i, subject, (size_t)ns) != 0) continue;
        /* a hyphen joins: "Guinea-Bissau" does not name "Guinea" */
        const int before = i == 0 || !(is_word(text[i - 1]) || text[i - 1] == '-') || !is_word(subject[0]);
        const int after = i + ns == n || !(is_word(text[i + ns]) || text[i + ns] == '-') || !is_word(subject[ns - 1]);
        if (before && after) return (long)i;
    }
    return -1;
}
static int has_subject(const char *text, size_t n, const char *subject, int32_t ns) {
    return find_subject(text, n, subject, ns) >= 0;
}

int mem_set_fact_subject(mome_memory *mem, int f, const char *subject, const char *question) {
    if (f < 0 || f != mem->n_facts - 1 || mem->subj_len[f] != 0 || mem->subj_off[f] != mem->n_subj_total)
        return mome_seterr_code(MOME_ERR_ARG, "memory: the subject of fact %d must follow its mem_add_fact", f);
    const size_t raw = strlen(subject);
    char *buf = mome_malloc(raw + 1);
    if (!buf) return MOME_ERR_NOMEM;
    const size_t k = normalise(subject, raw, buf);
    if (k == 0 || k > MEM_MAX_SUBJECT) { free(buf); return 0; }
    if (mem->n_subj_total + (int64_t)k > mem->cap_subj) {
        int64_t nc = mem->cap_subj ? 2 * mem->cap_subj : 4096;
        while (nc < mem->n_subj_total + (int64_t)k) nc *= 2;
        if (grow((void **)&mem->subj, nc, 1)) { free(buf); return MOME_ERR_NOMEM; }
        mem->cap_subj = nc;
    }
    memcpy(mem->subj + mem->n_subj_total, buf, k);
    free(buf);
    mem->n_subj_total += (int64_t)k;
    mem->subj_len[f] = (int32_t)k;
    const mem_query q = {NULL, NULL, 0, question, NULL, NULL};
    if (mem_subject_check(mem, f, &q) == 1) return 1;
    mem->subj_len[f] = 0;
    mem->n_subj_total -= (int64_t)k;
    return 0;
}

int mem_subject_check(const mome_memory *mem, int f, const mem_query *q) {
    if (f < 0 || f >= mem->n_facts || mem->subj_len[f] == 0 || !q) return -1;
    char text[MEM_SUBJECT_TEXT];
    norm_text nt = {text, NULL, sizeof text, 0, 0, 0};
    if (q->text) norm_append(&nt, q->text, strlen(q->text), 0, 1);
    else if (q->tokens) {
        if (!mem->piece_off) return 0; /* not bound to a model: the text cannot be read, so it names nothing */
        for (int32_t i = 0; i < q->n; i++) {
            const int32_t t = q->tokens[i];
            if (t >= 0 && t < mem->n_vocab)
                norm_append(&nt, mem->pieces + mem->piece_off[t], (size_t)(mem->piece_off[t + 1] - mem->piece_off[t]), 0, 1);
        }
    } else
        return -1;
    return has_subject(text, nt.len, mem->subj + mem->subj_off[f], mem->subj_len[f]);
}

/* The tokens (n) that spell the normalised subject (ns bytes; the first
 * place it stands as whole words in their normalised text), 1 in mask. */
static void subject_mask(const mome_memory *mem, const char *subject, int32_t ns, const int32_t *tokens, int n, uint8_t *mask) {
    char text[MEM_SUBJECT_TEXT];
    int16_t owner[MEM_SUBJECT_TEXT];
    norm_text nt = {text, owner, sizeof text, 0, 0, 0};
    memset(mask, 0, (size_t)n);
    if (ns <= 0 || !mem->piece_off) return;
    for (int i = 0; i < n && !nt.full; i++) {
        const int32_t t = tokens[i];
        if (t >= 0 && t < mem->n_vocab)
            norm_append(&nt, mem->pieces + mem->piece_off[t], (size_t)(mem->piece_off[t + 1] - mem->piece_off[t]), (int16_t)i, 0);
    }
    const long at = find_subject(text, nt.len, subject, ns);
    for (long j = at; at >= 0 && j < at + ns; j++) mask[owner[j]] = 1;
}

/* The relation feature: the mean x̂ of the rows (n, C, raw) of the tokens
 * that are neither the subject's nor whitespace (all of them when none is
 * left), into out (C). */
static void relation_pool(const mome_memory *mem, const char *subject, int32_t ns, const int32_t *tokens, int n, const float *rows,
                          float *out, float *tmp) {
    const int C = mem->n_embd;
    uint8_t mask[MEM_QUESTION_TOKENS];
    if (n > MEM_QUESTION_TOKENS) { /* the last ones, as the question pass reads them */
        tokens += n - MEM_QUESTION_TOKENS;
        rows += (size_t)(n - MEM_QUESTION_TOKENS) * C;
        n = MEM_QUESTION_TOKENS;
    }
    subject_mask(mem, subject, ns, tokens, n, mask);
    int kept = 0;
    for (int i = 0; i < n; i++) kept += !mask[i] && !(mem->blank && mem->blank[tokens[i]]);
    for (int c = 0; c < C; c++) out[c] = 0.0f;
    for (int i = 0; i < n; i++) {
        if (kept > 0 && (mask[i] || (mem->blank && mem->blank[tokens[i]]))) continue;
        mem_rms_normalize(rows + (size_t)i * C, tmp, C);
        for (int c = 0; c < C; c++) out[c] += tmp[c];
    }
    const float inv = 1.0f / (float)(kept > 0 ? kept : n > 0 ? n : 1);
    for (int c = 0; c < C; c++) out[c] *= inv;
}

int mem_relation_feature(const mome_memory *mem, const char *subject, const int32_t *tokens, int n, const float *rows, float *out) {
    char norm[MEM_MAX_SUBJECT + 1];
    size_t ns = 0;
    if (subject) {
        const size_t raw = strlen(subject);
        char *buf = mome_malloc(raw + 1);
        if (!buf) return MOME_ERR_NOMEM;
        ns = normalise(subject, raw, buf);
        if (ns > MEM_MAX_SUBJECT) ns = 0;
        memcpy(norm, buf, ns);
        free(buf);
    }
    float *tmp = mome_malloc((size_t)mem->n_embd * sizeof(float));
    if (!tmp) return MOME_ERR_NOMEM;
    relation_pool(mem, norm, (int32_t)ns, tokens, n, rows, out, tmp);
    free(tmp);
    return 0;
}

float mem_verify_query(const mome_memory *mem, int f, const mem_query *q, float *scratch) {
    if (!q || isnan(mem->ver_tau) || mem->ver_layer < 0 || f < 0 || f >= mem->n_facts || mem->n_ver[f] == 0) return INFINITY;
    if (!mem->ver_pool) return mem_verify(mem, f, q->ver, scratch);
    if (!q->ver_rows || !q->tokens || q->n < 1) return INFINITY;
    const int C = mem->n_embd;
    float *feat = scratch + 4 * (size_t)C;
    relation_pool(mem, mem->subj + mem->subj_off[f], mem->subj_len[f], q->tokens, q->n, q->ver_rows, feat, scratch);
    return mem_verify(mem, f, feat, scratch);
}

float *mem_values(const mome_memory *mem, int f) { return mem->val + (size_t)(mem->ans_off[f] + f) * mem->n_embd; }

int mem_set_centres(mome_memory *mem, const float *mu_pool, const float *mu_last) {
    const int C = mem->n_embd;
    memcpy(mem->mu_pool, mu_pool, (size_t)C * sizeof(float));
    memcpy(mem->mu_last, mu_last, (size_t)C * sizeof(float));
    for (int f = 0; f < mem->n_facts; f++) {
        centre_unit(mem->kpool + (size_t)f * C, mem->mu_pool, mem->cpool + (size_t)f * C, C);
        centre_unit(mem->klast + (size_t)f * C, mem->mu_last, mem->clast + (size_t)f * C, C);
    }
    for (int64_t a = 0; a < mem->n_alt_total; a++) {
        centre_unit(mem->akpool + (size_t)a * C, mem->mu_pool, mem->acpool + (size_t)a * C, C);
        centre_unit(mem->aklast + (size_t)a * C, mem->mu_last, mem->aclast + (size_t)a * C, C);
    }
    return MOME_OK;
}

/* ------------------------------------------------------- wording check */

int mem_set_fact_tokens(mome_memory *mem, int f, const mem_query *q) {
    const int C = mem->n_embd;
    if (f < 0 || f >= mem->n_facts || mem->n_tok[f] != 0 || f != mem->n_facts - 1 || mem->tok_off[f] != mem->n_tok_total)
        return mome_seterr_code(MOME_ERR_ARG, "memory: question tokens for fact %d must follow its mem_add_fact", f);
    if (!mem->content) return mome_seterr_code(MOME_ERR_ARG, "memory: not bound to a model");
    int n = 0;
    for (int32_t i = 0; i < q->n; i++) n += mem->content[q->tokens[i]] != 0;
    if (n > MEM_MAX_FACT_TOKENS) n = MEM_MAX_FACT_TOKENS;
    if (mem->n_tok_total + n > mem->cap_tok) {
        int64_t nc = mem->cap_tok ? 2 * mem->cap_tok : 1024;
        while (nc < mem->n_tok_total + n) nc *= 2;
        if (grow((void **)&mem->ktok, nc * C, sizeof(uint16_t))) return MOME_ERR_NOMEM;
        mem->cap_tok = nc;
    }
    float *xh = mome_malloc((size_t)C * sizeof(float));
    if (!xh) return MOME_ERR_NOMEM;
    int k = 0;
    for (int32_t i = 0; i < q->n && k < n; i++) {
        if (!mem->content[q->tokens[i]]) continue;
        mem_rms_normalize(q->rows + (size_t)i * C, xh, C);
        uint16_t *dst = mem->ktok + (size_t)(mem->n_tok_total + k) * C;
        for (int c = 0; c < C; c++) dst[c] = quant_f32_to_f16(xh[c]);
        k++;
    }
    free(xh);
    mem->n_tok[f] = k;
    mem->n_tok_total += k;
    return MOME_OK;
}

void mem_fact_tokens(const mome_memory *mem, int f, float *rows, int32_t *n) {
    const int C = mem->n_embd;
    *n = f >= 0 && f < mem->n_facts ? mem->n_tok[f] : 0;
    for (int j = 0; j < *n; j++)
        for (int c = 0; c < C; c++) rows[(size_t)j * C + c] = quant_f16_to_f32(mem->ktok[(size_t)(mem->tok_off[f] + j) * C + c]);
}

int mem_update_tok_centre(mome_memory *mem) {
    const int C = mem->n_embd;
    if (!mem->mu_tok && !(mem->mu_tok = mome_calloc((size_t)C, sizeof(float)))) return MOME_ERR_NOMEM;
    double *acc = mome_calloc((size_t)C, sizeof(double));
    if (!acc) return MOME_ERR_NOMEM;
    for (int64_t r = 0; r < mem->n_tok_total; r++)
        for (int c = 0; c < C; c++) acc[c] += quant_f16_to_f32(mem->ktok[(size_t)r * C + c]);
    for (int c = 0; c < C; c++) mem->mu_tok[c] = mem->n_tok_total ? (float)(acc[c] / (double)mem->n_tok_total) : 0.0f;
    free(acc);
    return MOME_OK;
}

float mem_cover(const mome_memory *mem, int f, const mem_query *q, float *scratch) {
    if (isnan(mem->cover_tau) || !mem->mu_tok || !mem->content || !q || f < 0 || f >= mem->n_facts || mem->n_tok[f] == 0) return INFINITY;
    const int C = mem->n_embd, nf = mem->n_tok[f];
    float *xh = scratch, *qc = xh + C, *fc = qc + C, *best = fc + (size_t)MEM_MAX_FACT_TOKENS * C;
    /* the fact's tokens, centred and unit, once */
    for (int j = 0; j < nf; j++) {
        const uint16_t *src = mem->ktok + (size_t)(mem->tok_off[f] + j) * C;
        for (int c = 0; c < C; c++) xh[c] = quant_f16_to_f32(src[c]);
        centre_unit(xh, mem->mu_tok, fc + (size_t)j * C, C);
        best[j] = -INFINITY;
    }
    int nq = 0;
    const int32_t first = q->n > MEM_MAX_QUERY_TOKENS ? q->n - MEM_MAX_QUERY_TOKENS : 0;
    for (int32_t i = first; i < q->n; i++) {
        if (q->tokens && !mem->content[q->tokens[i]]) continue;
        mem_rms_normalize(q->rows + (size_t)i * C, xh, C);
        centre_unit(xh, mem->mu_tok, qc, C);
        nq++;
        for (int j = 0; j < nf; j++) {
            const float d = dot(qc, fc + (size_t)j * C, C);
            if (d > best[j]) best[j] = d;
        }
    }
    if (nq == 0) return -1.0f;
    float cov = INFINITY;
    for (int j = 0; j < nf; j++)
        if (best[j] < cov) cov = best[j];
    return cov;
}

int mem_best_k(const mome_memory *mem, const float *pool, const float *last, int k, float *q, int32_t *idx, float *score) {
    const int C = mem->n_embd;
    float *qp = q, *ql = q + C;
    centre_unit(pool, mem->mu_pool, qp, C);
    centre_unit(last, mem->mu_last, ql, C);
    if (k > MEM_MAX_K) k = MEM_MAX_K;
    const float w = mem->w_pool;
    int n = 0;
    for (int f = 0; f < mem->n_facts && k > 0; f++) {
        float s = w * dot(qp, mem->cpool + (size_t)f * C, C) + (1.0f - w) * dot(ql, mem->clast + (size_t)f * C, C);
        for (int64_t a = mem->alt_off[f], e = a + mem->n_alt[f]; a < e; a++) {
            const float sa = w * dot(qp, mem->acpool + (size_t)a * C, C) + (1.0f - w) * dot(ql, mem->aclast + (size_t)a * C, C);
            if (sa > s) s = sa;
        }
        if (!(s >= -INFINITY)) continue; /* NaN */
        /* insertion before the first kept score it reaches: ties go to the later fact */
        int at = 0;
        while (at < n && !(s >= score[at])) at++;
        if (at == k) continue;
        const int last_i = n < k ? n : k - 1;
        for (int i = last_i; i > at; i--) {
            idx[i] = idx[i - 1];
            score[i] = score[i - 1];
        }
        idx[at] = f;
        score[at] = s;
        if (n < k) n++;
    }
    return n;
}

int mem_best(const mome_memory *mem, const float *pool, const float *last, float *q, float *score) {
    int32_t f;
    float s;
    if (mem_best_k(mem, pool, last, 1, q, &f, &s) < 1) {
        *score = -INFINITY;
        return -1;
    }
    *score = s;
    return f;
}

float mem_fact_margin(const mome_memory *mem, int f) {
    const float own = mem->margin_share * mem->flead[f];
    return !isnan(own) && own < mem->margin ? own : mem->margin;
}

int mem_set_fact_lead(mome_memory *mem, int f, float lead) {
    if (f < 0 || f >= mem->n_facts || !(isnan(lead) || (lead >= 0.0f && lead <= 2.0f)))
        return mome_seterr_code(MOME_ERR_ARG, "memory: a lead of %g for fact %d", (double)lead, f);
    mem->flead[f] = lead;
    return 0;
}

/* Whether facts a and b answer the same tokens. */
static int same_answer(const mome_memory *mem, int a, int b) {
    return mem->n_ans[a] == mem->n_ans[b] &&
           !memcmp(mem->ans + mem->ans_off[a], mem->ans + mem->ans_off[b], (size_t)mem->n_ans[a] * sizeof(int32_t));
}

/* The rival of the best of the n best facts idx/sc for the question qt
 * (memory.h, the margin): the first with another answer whose subject check
 * does not fail; -inf when none is. */
static float mem_rival(const mome_memory *mem, const int32_t *idx, const float *sc, int n, const mem_query *qt) {
    for (int i = 1; i < n && i < MEM_MARGIN_K; i++)
        if (!same_answer(mem, idx[0], idx[i]) && mem_subject_check(mem, idx[i], qt) != 0) return sc[i];
    return -INFINITY;
}

/* Whether facts a and b keep the same subject. */
static int same_subject(const mome_memory *mem, int a, int b) {
    return mem->subj_len[a] > 0 && mem->subj_len[a] == mem->subj_len[b] &&
           !memcmp(mem->subj + mem->subj_off[a], mem->subj + mem->subj_off[b], (size_t)mem->subj_len[a]);
}

/* Siblings (memory.h): among the n best facts idx/sc that keep the best's
 * subject, which the question names, and reach the score threshold, the
 * one the relation check scores highest goes first (ties keep the order);
 * the others keep theirs. Returns the first's check when it read it (NAN:
 * not read; when read, the first's subject check passed). No check, or no
 * sibling: nothing moves. */
static float rank_siblings(const mome_memory *mem, int32_t *idx, float *sc, int n, const mem_query *qt, float *scratch) {
    if (n < 2 || !qt || isnan(mem->ver_tau) || mem->ver_layer < 0) return NAN;
    const int f0 = idx[0];
    int bi = 0;
    float bv = NAN; /* the best's check, read at the first sibling */
    for (int i = 1; i < n; i++) {
        if (!(sc[i] >= mem->tau) || !same_subject(mem, f0, idx[i])) continue;
        if (isnan(bv)) {
            if (mem_subject_check(mem, f0, qt) != 1) return NAN;
            bv = mem_verify_query(mem, f0, qt, scratch);
        }
        const float v = mem_verify_query(mem, idx[i], qt, scratch);
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    const int32_t fb = idx[bi];
    const float sb = sc[bi];
    for (int i = bi; i > 0; i--) {
        idx[i] = idx[i - 1];
        sc[i] = sc[i - 1];
    }
    idx[0] = fb;
    sc[0] = sb;
    return bv;
}

float mem_verify_tau(const mome_memory *mem, int f) {
    if (isnan(mem->ver_tau)) return -INFINITY;
    const int unnamed = f >= 0 && f < mem->n_facts && mem->subj_len[f] == 0;
    return unnamed && mem->ver_tau > -1.0f && mem->ver_tau_unnamed > mem->ver_tau ? mem->ver_tau_unnamed : mem->ver_tau;
}

int mem_mix_select(const mome_memory *mem, const float *pool, const float *last, const mem_query *qt, int force, float *q,
                   mem_mix *mix, mem_cand *cand) {
    int32_t idx[MEM_MAX_K];
    float sc[MEM_MAX_K];
    const int k = mem->top_k < 1 ? 1 : mem->top_k > MEM_MAX_K ? MEM_MAX_K : mem->top_k;
    /* at least the MEM_MARGIN_K best: the runner-up and the rival are
     * reported (mem_cand), the rival decides the margin */
    int n = mem_best_k(mem, pool, last, k < MEM_MARGIN_K ? MEM_MARGIN_K : k, q, idx, sc);
    const float vb = force < 0 ? rank_siblings(mem, idx, sc, n, qt, q + 2 * (size_t)mem->n_embd) : NAN;
    const float second = n > 1 ? sc[1] : -INFINITY;
    const float rival = mem_rival(mem, idx, sc, n, qt);
    if (n > k) n = k;
    const float *last_c = q + mem->n_embd; /* the centred last key mem_best_k left there */
    float *cs = q + 2 * (size_t)mem->n_embd;
    const float g0 = n > 0 ? mem_gate(mem, idx[0], last_c) : INFINITY;
    const float c0 = n > 0 && qt ? mem_cover(mem, idx[0], qt, cs) : INFINITY;
    /* a ranked sibling shares the subject whose check rank_siblings read (1) */
    const int s0 = !isnan(vb) ? 1 : n > 0 ? mem_subject_check(mem, idx[0], qt) : -1;
    const float need = n > 0 ? mem_fact_margin(mem, idx[0]) : 0.0f;
    const float v0 = !isnan(vb) ? vb : n > 0 && qt ? mem_verify_query(mem, idx[0], qt, cs) : INFINITY;
    if (cand) *cand = (mem_cand){n > 0 ? idx[0] : -1, n > 0 ? sc[0] : -INFINITY, g0, c0, s0, second, rival, need, v0};
    const int lead = !(need > 0.0f) || sc[0] >= MEM_MARGIN_SURE || sc[0] - rival >= need;
    const float ctau = isnan(mem->cover_tau) ? -INFINITY : mem->cover_tau;
    mix->n = 0;
    if (force >= 0) {
        int have = 0;
        for (int i = 0; i < n && !have; i++) have = idx[i] == force;
        if (!have) {
            /* its own score, in the k-th place (mem_best_k's order is kept
             * for the others; the weights use the scores, not the places) */
            const int C = mem->n_embd;
            const float w = mem->w_pool;
            const float s = w * dot(q, mem->cpool + (size_t)force * C, C) + (1.0f - w) * dot(last_c, mem->clast + (size_t)force * C, C);
            if (n == k) n--;
            idx[n] = force;
            sc[n] = s;
            n++;
        }
    } else if (n == 0 || !(sc[0] >= mem->tau && lead && g0 >= 0.0f && c0 >= ctau && s0 != 0 && v0 >= mem_verify_tau(mem, idx[0])))
        return 0; /* the memory speaks only when its best fact is selected */
    const float tau_k = isnan(mem->mix_tau) ? mem->tau : mem->mix_tau;
    float smax = -INFINITY;
    for (int i = 0; i < n; i++) {
        const int first = force >= 0 ? idx[i] == force : i == 0;
        if (!first && !(sc[i] >= tau_k && mem_gate(mem, idx[i], last_c) >= 0.0f &&
                        (!qt || (mem_cover(mem, idx[i], qt, cs) >= ctau && mem_verify_query(mem, idx[i], qt, cs) >= mem_verify_tau(mem, idx[i]))) &&
                        mem_subject_check(mem, idx[i], qt) != 0))
            continue;
        mix->fact[mix->n] = idx[i];
        mix->e[mix->n] = sc[i];
        mix->n++;
        if (sc[i] > smax) smax = sc[i];
    }
    /* e_i = exp((s_i - s_max) / T): 1 for the best, exactly */
    const float T = mem->mix_temp > 0 ? mem->mix_temp : MEM_DEFAULT_MIX_TEMP;
    for (int i = 0; i < mix->n; i++) mix->e[i] = mix->e[i] == smax ? 1.0f : expf((mix->e[i] - smax) / T);
    return mix->n;
}

int mem_mix_follow(const mome_memory *mem, const mem_mix *in, int32_t row, int32_t tok, mem_mix *out) {
    int n = 0;
    for (int i = 0; i < in->n; i++) {
        const int32_t f = in->fact[i];
        if (row < mem->n_ans[f] && mem->ans[mem->ans_off[f] + row] == tok) {
            out->fact[n] = f;
            out->e[n] = in->e[i];
            n++;
        }
    }
    out->n = n;
    return n;
}

void mem_mix_weights(const float *e, int n, float *a) {
    if (n == 1) {
        a[0] = 1.0f;
        return;
    }
    double s = 0;
    for (int i = 0; i < n; i++) s += e[i];
    for (int i = 0; i < n; i++) a[i] = (float)(e[i] / s);
}

/* ------------------------------------------------------------------ gate */

float mem_gate(const mome_memory *mem, int f, const float *last_c) {
    if (!mem->gate_w || f < 0 || f >= mem->n_gate_bias) return INFINITY;
    return dot(mem->gate_w, last_c, mem->n_embd) + mem->gate_bias[f];
}

int mem_gate_add_negative(mome_memory *mem, const float *klast) {
    const int C = mem->n_embd;
    if (mem->n_gneg >= MEM_GATE_MAX_NEG) return 1;
    if (!mem->gneg && !(mem->gneg = mome_malloc((size_t)MEM_GATE_MAX_NEG * C * sizeof(float)))) return MOME_ERR_NOMEM;
    memcpy(mem->gneg + (size_t)mem->n_gneg++ * C, klast, (size_t)C * sizeof(float));
    return 0;
}

/* Measured on the demo's countries (docs/ARCHITECTURE.md): the decision
 * moves little with L2 in [1e-3, 1e-1]; 400 steps of rate 1 converge. */
#define GATE_L2 1e-2f
#define GATE_STEPS 400
#define GATE_LR 1.0f
#define GATE_MAX_POS 8192

static void gate_clear(mome_memory *mem) {
    free(mem->gate_w);
    free(mem->gate_bias);
    mem->gate_w = mem->gate_bias = NULL;
    mem->n_gate_bias = 0;
}

int mem_gate_fit(mome_memory *mem, const float *pos, const int32_t *pos_fact, int n_pos, float margin) {
    const int C = mem->n_embd;
    gate_clear(mem);
    if (mem->n_gneg == 0 || n_pos <= 0) return MOME_OK;
    for (int i = 0; i < n_pos; i++)
        if (pos_fact[i] < 0 || pos_fact[i] >= mem->n_facts)
            return mome_seterr_code(MOME_ERR_ARG, "gate: positive %d names fact %d of %d", i, pos_fact[i], mem->n_facts);
    /* positives beyond GATE_MAX_POS are subsampled evenly */
    const int stride = n_pos > GATE_MAX_POS ? (n_pos + GATE_MAX_POS - 1) / GATE_MAX_POS : 1;
    const int np = (n_pos + stride - 1) / stride, nn = mem->n_gneg, N = np + nn;
    float *Z = mome_malloc((size_t)N * C * sizeof(float));
    float *w = mome_calloc((size_t)C, sizeof(float));
    float *g = mome_malloc((size_t)C * sizeof(float));
    float *r = mome_malloc((size_t)N * sizeof(float));
    float *bias = mome_malloc((size_t)(mem->n_facts ? mem->n_facts : 1) * sizeof(float));
    if (!Z || !w || !g || !r || !bias) {
        free(Z); free(w); free(g); free(r); free(bias);
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory fitting the relation gate");
    }
    for (int i = 0; i < np; i++) centre_unit(pos + (size_t)i * stride * C, mem->mu_last, Z + (size_t)i * C, C);
    for (int i = 0; i < nn; i++) centre_unit(mem->gneg + (size_t)i * C, mem->mu_last, Z + (size_t)(np + i) * C, C);
    /* each class weighs one half */
    const float wp = 0.5f / (float)np, wn = 0.5f / (float)nn;
    float b = 0;
    for (int it = 0; it < GATE_STEPS; it++) {
        float gb = 0;
        for (int i = 0; i < N; i++) {
            const float z = dot(w, Z + (size_t)i * C, C) + b;
            const float p = 1.0f / (1.0f + expf(-z));
            r[i] = i < np ? (p - 1.0f) * wp : p * wn;
            gb += r[i];
        }
        for (int j = 0; j < C; j++) g[j] = GATE_L2 * w[j];
        for (int i = 0; i < N; i++) {
            const float *z = Z + (size_t)i * C;
            for (int j = 0; j < C; j++) g[j] += r[i] * z[j];
        }
        for (int j = 0; j < C; j++) w[j] -= GATE_LR * g[j];
        b -= GATE_LR * gb;
    }
    /* each fact's bias: the shared one, raised until every one of its
     * contexts (all of them, not only the subsample) passes with the margin */
    for (int f = 0; f < mem->n_facts; f++) bias[f] = b;
    for (int i = 0; i < n_pos; i++) {
        centre_unit(pos + (size_t)i * C, mem->mu_last, g, C);
        const float need = margin - dot(w, g, C);
        if (need > bias[pos_fact[i]]) bias[pos_fact[i]] = need;
    }
    free(Z); free(g); free(r);
    mem->gate_w = w;
    mem->gate_bias = bias;
    mem->n_gate_bias = mem->n_facts;
    return MOME_OK;
}

static float row_rms(const float *h, int C) {
    double ss = 0;
    for (int i = 0; i < C; i++) ss += (double)h[i] * h[i];
    return (float)sqrt(ss / C + 1e-6);
}

float mem_value_row(const float *h, const float *v, float *x, int C) {
    const float rms = row_rms(h, C);
    for (int i = 0; i < C; i++) x[i] = h[i] + rms * v[i];
    return rms;
}

float mem_mix_row(const float *h, const float *const *v, const float *e, int n, float *x, int C, float *a) {
    float aa[MEM_MAX_K];
    if (!a) a = aa;
    mem_mix_weights(e, n, a);
    if (n == 1) return mem_value_row(h, v[0], x, C);
    const float rms = row_rms(h, C);
    for (int i = 0; i < C; i++) {
        float s = 0;
        for (int f = 0; f < n; f++) s += a[f] * v[f][i];
        x[i] = h[i] + rms * s;
    }
    return rms;
}

void mem_apply_mix(const mome_memory *mem, const mem_mix *mix, int row, float *h) {
    const int C = mem->n_embd;
    const float *v[MEM_MAX_K];
    for (int i = 0; i < mix->n; i++) v[i] = mem_values(mem, mix->fact[i]) + (size_t)row * C;
    mem_mix_row(h, v, mix->e, mix->n, h, C, NULL);
}

/* ---------------------------------------------------------------- routing */

int mem_pos_next(const mome_memory *mem, const mem_pos *hist, const int32_t *toks, int32_t pos, mem_pos *out) {
    const int32_t tok = toks[pos];
    const mem_marks *mk = &mem->mk;
    const mem_pos *prev = pos > 0 ? &hist[pos - 1] : NULL;
    mem_pos s;
    if (prev) s = *prev;
    else {
        s.pool_start = -1;
        s.span0 = s.span1 = -1;
        s.head_i = 0;
    }
    s.mix.n = 0;
    s.row = 0;
    int decision = 0;
    /* an answer in progress goes on while its facts' own tokens are fed */
    if (prev && prev->mix.n > 0 && mem_mix_follow(mem, &prev->mix, prev->row, tok, &s.mix) > 0) s.row = prev->row + 1;
    /* the assistant header after a closed user turn, token by token */
    if (s.span0 >= 0) {
        /* the span stays in the decision row's state for the caller; the
         * next token ends it (one decision per turn) */
        if (s.head_i < mk->n_head && mk->head[s.head_i] == tok) {
            if (++s.head_i == mk->n_head) decision = 1;
        } else
            s.span0 = -1;
    }
    /* a user turn closes with the header's first token */
    if (s.pool_start >= 0 && tok == mk->head[0]) {
        if (pos > s.pool_start) {
            s.span0 = s.pool_start;
            s.span1 = pos;
            s.head_i = 1;
            if (mk->n_head == 1) decision = 1;
        }
        s.pool_start = -1;
    }
    /* a user turn opens: this token ends the user-open run */
    const int nu = mk->n_user_open;
    if (nu > 0 && tok == mk->user_open[nu - 1] && pos + 1 >= nu) {
        int match = 1;
        for (int i = 1; i < nu && match; i++) match = toks[pos - i] == mk->user_open[nu - 1 - i];
        if (match) {
            s.pool_start = pos + 1;
            s.span0 = -1;
        }
    }
    *out = s;
    return decision;
}

/* ------------------------------------------------------------------ file */

#define MEM_ARCH "mome-memory"
/* Version 2: one fact per question. Version 3 adds the mixture (mome.top_k,
 * mome.top_k_temp and, when set, mome.top_k_tau); a memory with top_k = 1 is
 * written as version 2, byte for byte as before, and a version-2 reader
 * refuses a mixture it would run as one fact. */
#define MEM_VERSION 2
#define MEM_VERSION_MIX 3
#define MEM_VERSION_COVER 4 /* the wording check's tokens (and, optionally, a mixture) */

void mem_round_f16(mome_memory *m) {
    const size_t n = (size_t)(m->n_ans_total + m->n_facts) * m->n_embd;
    for (size_t i = 0; i < n; i++) m->val[i] = quant_f16_to_f32(quant_f32_to_f16(m->val[i]));
}

/* Whether the file carries the wording check's tokens / the relation
 * check's states (a memory with facts and the check on). */
static int saves_cover(const mome_memory *m) { return !isnan(m->cover_tau) && m->n_facts > 0; }
static int saves_verify(const mome_memory *m) { return m->ver_layer >= 0 && m->n_facts > 0; }

/* Buffers the writer refers to until the file is written (the f16 copies
 * and the answer counts). */
typedef struct save_bufs {
    uint16_t *h16, *a16;
    int32_t *n_ans;
} save_bufs;

#define CK(x)                                 \
    do {                                      \
        if ((rc = (x)) != 0) return rc;       \
    } while (0)

/* The header: the format version, the base model the memory belongs to,
 * and the routing settings. */
static int save_header(gguf_writer *w, const mome_memory *m) {
    int rc;
    const int mix = m->top_k > 1, cover = saves_cover(m);
    CK(gguf_writer_add_str(w, "general.architecture", MEM_ARCH));
    CK(gguf_writer_add_u32(w, "mome.version", cover ? MEM_VERSION_COVER : mix ? MEM_VERSION_MIX : MEM_VERSION));
    CK(gguf_writer_add_str(w, "mome.base.sha256", m->base_sha256));
    CK(gguf_writer_add_str(w, "mome.base.name", m->base_name ? m->base_name : ""));
    CK(gguf_writer_add_i32(w, "mome.base.n_embd", m->n_embd));
    CK(gguf_writer_add_i32(w, "mome.base.n_layer", m->n_layer));
    CK(gguf_writer_add_i32(w, "mome.base.n_vocab", m->n_vocab));
    CK(gguf_writer_add_i32(w, "mome.key_layer", m->key_layer));
    CK(gguf_writer_add_i32(w, "mome.value_layer", m->value_layer));
    CK(gguf_writer_add_f32(w, "mome.tau", m->tau));
    CK(gguf_writer_add_f32(w, "mome.w_pool", m->w_pool));
    if (m->margin > 0.0f) CK(gguf_writer_add_f32(w, "mome.route_margin", m->margin));
    if (m->margin_share != MEM_DEFAULT_MARGIN_SHARE) CK(gguf_writer_add_f32(w, "mome.route_margin_share", m->margin_share));
    if (mix) {
        CK(gguf_writer_add_i32(w, "mome.top_k", m->top_k));
        CK(gguf_writer_add_f32(w, "mome.top_k_temp", m->mix_temp));
        if (!isnan(m->mix_tau)) CK(gguf_writer_add_f32(w, "mome.top_k_tau", m->mix_tau));
    }
    return 0;
}

/* Per fact: its answer, alternative keys, lead, subject, question tokens
 * (the wording check) and relation-check states, as metadata arrays. */
static int save_fact_arrays(gguf_writer *w, const mome_memory *m, save_bufs *b) {
    int rc;
    const int64_t n = m->n_facts;
    CK(gguf_writer_add_u32(w, "mome.n_facts", (uint32_t)n));
    b->n_ans = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!b->n_ans) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    if (n) memcpy(b->n_ans, m->n_ans, (size_t)n * sizeof(int32_t));
    CK(gguf_writer_add_arr(w, "mome.n_answer", GGUF_TYPE_INT32, b->n_ans, (uint64_t)n));
    CK(gguf_writer_add_arr(w, "mome.answer_tokens", GGUF_TYPE_INT32, m->ans ? m->ans : b->n_ans, (uint64_t)m->n_ans_total));
    if (m->n_alt_total > 0) CK(gguf_writer_add_arr(w, "mome.n_alt_keys", GGUF_TYPE_INT32, m->n_alt, (uint64_t)n));
    int calibrated = 0;
    for (int64_t i = 0; i < n && !calibrated; i++) calibrated = !isnan(m->flead[i]);
    if (calibrated) CK(gguf_writer_add_arr(w, "mome.fact_lead", GGUF_TYPE_FLOAT32, m->flead, (uint64_t)n));
    if (m->n_subj_total > 0) {
        CK(gguf_writer_add_arr(w, "mome.subject_len", GGUF_TYPE_INT32, m->subj_len, (uint64_t)n));
        CK(gguf_writer_add_arr(w, "mome.subject_text", GGUF_TYPE_UINT8, m->subj, (uint64_t)m->n_subj_total));
    }
    if (saves_cover(m)) {
        CK(gguf_writer_add_f32(w, "mome.cover_tau", m->cover_tau));
        CK(gguf_writer_add_arr(w, "mome.n_question_tokens", GGUF_TYPE_INT32, m->n_tok, (uint64_t)n));
    }
    if (saves_verify(m)) {
        CK(gguf_writer_add_i32(w, "mome.verify_layer", m->ver_layer));
        CK(gguf_writer_add_f32(w, "mome.verify_tau", m->ver_tau));
        if (m->ver_tau_unnamed != MEM_DEFAULT_VERIFY_UNNAMED) CK(gguf_writer_add_f32(w, "mome.verify_tau_unnamed", m->ver_tau_unnamed));
        CK(gguf_writer_add_arr(w, "mome.n_verify", GGUF_TYPE_INT32, m->n_ver, (uint64_t)n));
        if (m->ver_pool) CK(gguf_writer_add_i32(w, "mome.verify_relation", 1));
        if (m->n_ver_open > 0) {
            CK(gguf_writer_add_arr(w, "mome.verify_open", GGUF_TYPE_INT32, m->ver_open, (uint64_t)m->n_ver_open));
            CK(gguf_writer_add_arr(w, "mome.verify_close", GGUF_TYPE_INT32, m->ver_close, (uint64_t)m->n_ver_close));
        }
    }
    return 0;
}

/* A checkpoint's tuner state (the tensors' part is ckpt.adam). */
static int save_ckpt_meta(gguf_writer *w, const mem_ckpt_meta *meta) {
    int rc;
    CK(gguf_writer_add_u64(w, "ckpt.step", (uint64_t)meta->step));
    CK(gguf_writer_add_f32(w, "ckpt.seconds", (float)meta->seconds));
    CK(gguf_writer_add_arr(w, "ckpt.state", GGUF_TYPE_INT32, meta->state, (uint64_t)meta->n));
    CK(gguf_writer_add_arr(w, "ckpt.target_loss", GGUF_TYPE_FLOAT32, meta->target_loss, (uint64_t)meta->n));
    if (meta->adam) {
        CK(gguf_writer_add_arr(w, "ckpt.n_fail", GGUF_TYPE_INT32, meta->n_fail, (uint64_t)meta->n));
        CK(gguf_writer_add_arr(w, "ckpt.adam_t", GGUF_TYPE_INT32, meta->adam_t, (uint64_t)meta->n));
        CK(gguf_writer_add_arr(w, "ckpt.loss", GGUF_TYPE_FLOAT32, meta->loss, (uint64_t)meta->n));
        CK(gguf_writer_add_i32(w, "ckpt.cursor", meta->cursor));
    }
    if (meta->recheck) CK(gguf_writer_add_arr(w, "ckpt.recheck", GGUF_TYPE_INT32, meta->recheck, (uint64_t)meta->n));
    return 0;
}

/* One C x rows tensor the writer refers to. */
static int save_tensor(gguf_writer *w, const char *name, int64_t C, int64_t rows, const void *ptr, uint32_t type,
                       size_t bytes) {
    const int64_t ne[3] = {C, rows, 1};
    return gguf_writer_add_tensor(w, name, 2, ne, type, ptr, bytes, GGUF_WRITER_REF);
}

/* The tensors: key centres, the gate, the facts' keys and values (f16 or
 * f32), alternative keys, question tokens, the relation check's states and
 * whitening, a checkpoint's Adam moments. */
static int save_tensors(gguf_writer *w, const mome_memory *m, int f16, const mem_ckpt_meta *meta, save_bufs *b) {
    int rc;
    const int64_t C = m->n_embd, n = m->n_facts, R = m->n_ans_total + m->n_facts;
    CK(save_tensor(w, "mem.mu_pool", C, 1, m->mu_pool, MOME_DTYPE_F32, (size_t)C * 4));
    CK(save_tensor(w, "mem.mu_last", C, 1, m->mu_last, MOME_DTYPE_F32, (size_t)C * 4));
    if (m->gate_w) {
        CK(save_tensor(w, "mem.gate_w", C, 1, m->gate_w, MOME_DTYPE_F32, (size_t)C * 4));
        CK(save_tensor(w, "mem.gate_bias", m->n_gate_bias, 1, m->gate_bias, MOME_DTYPE_F32, (size_t)m->n_gate_bias * 4));
    }
    if (m->n_gneg) CK(save_tensor(w, "mem.gate_neg", C, m->n_gneg, m->gneg, MOME_DTYPE_F32, (size_t)(C * m->n_gneg) * 4));
    if (n) {
        CK(save_tensor(w, "mem.key_pool", C, n, m->kpool, MOME_DTYPE_F32, (size_t)(C * n) * 4));
        CK(save_tensor(w, "mem.key_last", C, n, m->klast, MOME_DTYPE_F32, (size_t)(C * n) * 4));
        if (f16) {
            b->h16 = malloc((size_t)(C * R) * sizeof(uint16_t));
            if (!b->h16) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
            for (size_t i = 0; i < (size_t)(C * R); i++) b->h16[i] = quant_f32_to_f16(m->val[i]);
            CK(save_tensor(w, "mem.values", C, R, b->h16, MOME_DTYPE_F16, (size_t)(C * R) * 2));
        } else
            CK(save_tensor(w, "mem.values", C, R, m->val, MOME_DTYPE_F32, (size_t)(C * R) * 4));
    }
    if (m->n_alt_total > 0) {
        const size_t na = (size_t)(C * m->n_alt_total);
        b->a16 = malloc(2 * na * sizeof(uint16_t));
        if (!b->a16) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < na; i++) {
            b->a16[i] = quant_f32_to_f16(m->akpool[i]);
            b->a16[na + i] = quant_f32_to_f16(m->aklast[i]);
        }
        CK(save_tensor(w, "mem.alt_key_pool", C, m->n_alt_total, b->a16, MOME_DTYPE_F16, na * 2));
        CK(save_tensor(w, "mem.alt_key_last", C, m->n_alt_total, b->a16 + na, MOME_DTYPE_F16, na * 2));
    }
    if (saves_cover(m) && m->n_tok_total > 0)
        CK(save_tensor(w, "mem.question_tokens", C, m->n_tok_total, m->ktok, MOME_DTYPE_F16,
                       (size_t)(C * m->n_tok_total) * 2));
    if (saves_verify(m)) {
        CK(save_tensor(w, "mem.verify_centre", C, 1, m->mu_ver, MOME_DTYPE_F32, (size_t)C * 4));
        if (m->n_ver_total > 0)
            CK(save_tensor(w, "mem.verify_states", C, m->n_ver_total, m->kver, MOME_DTYPE_F16,
                           (size_t)(C * m->n_ver_total) * 2));
        if (m->ver_w) {
            CK(save_tensor(w, "mem.verify_whiten", C, C, m->ver_w, MOME_DTYPE_F32, (size_t)C * C * 4));
            CK(save_tensor(w, "mem.verify_fact_centres", C, n, m->ver_ctr, MOME_DTYPE_F16, (size_t)C * n * 2));
        }
    }
    if (meta && meta->adam && meta->n_adam_rows > 0)
        CK(save_tensor(w, "ckpt.adam", C, 2 * meta->n_adam_rows, meta->adam, MOME_DTYPE_F32,
                       (size_t)(C * 2 * meta->n_adam_rows) * 4));
    return 0;
}
#undef CK

static int save_file(const mome_memory *m, const char *path, int f16, const mem_ckpt_meta *meta) {
    gguf_writer *w;
    save_bufs b = {0};
    int rc = gguf_writer_init(&w);
    if (rc) return rc;
    rc = save_header(w, m);
    if (!rc) rc = save_fact_arrays(w, m, &b);
    if (!rc && meta) rc = save_ckpt_meta(w, meta);
    if (!rc) rc = save_tensors(w, m, f16, meta, &b);
    if (!rc) rc = gguf_writer_write_file(w, path);
    gguf_writer_free(w);
    free(b.h16);
    free(b.a16);
    free(b.n_ans);
    return rc;
}

int mem_save(const mome_memory *m, const char *path, int f16) { return save_file(m, path, f16, NULL); }
int mem_save_ckpt(const mome_memory *m, const char *path, const mem_ckpt_meta *meta) { return save_file(m, path, 0, meta); }

static int get_req_u32(const gguf_file *f, const char *k, uint32_t *v) {
    int r = gguf_get_u32(f, k, v);
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory metadata '%s' is missing", f->path, k);
    return r < 0 ? -1 : 0;
}
static int get_req_i32(const gguf_file *f, const char *k, int32_t *v) {
    int r = gguf_get_i32(f, k, v);
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory metadata '%s' is missing", f->path, k);
    return r < 0 ? -1 : 0;
}
static int get_req_f32(const gguf_file *f, const char *k, float *v) {
    int r = gguf_get_f32(f, k, v);
    if (r == 0) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory metadata '%s' is missing", f->path, k);
    return r < 0 ? -1 : 0;
}

/* The f32 (or f16 when allowed) tensor name of shape (ne0, ne1) into dst. */
static int read_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1, int allow_f16, float *dst) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' is missing", f->path, name);
    if (!(t->type == MOME_DTYPE_F32 || (allow_f16 && t->type == MOME_DTYPE_F16)) || t->ne[0] != ne0 || t->ne[1] != ne1 ||
        t->ne[2] != 1 || t->ne[3] != 1)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' has the wrong type or shape (expected [%lld, %lld])",
                                f->path, name, (long long)ne0, (long long)ne1);
    const size_t n = (size_t)(ne0 * ne1);
    if (t->type == MOME_DTYPE_F32) memcpy(dst, t->data, n * sizeof(float));
    else
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, (const char *)t->data + 2 * i, 2);
            dst[i] = quant_f16_to_f32(h);
        }
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i])) return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' contains NaN/Inf", f->path, name);
    return 0;
}

/* The f16 tensor name of tot rows of C (tot > 0), checked (shape, finite
 * values), into *out (malloc'd). */
static int read_f16_rows(const gguf_file *f, const char *name, int C, int64_t tot, uint16_t **out) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t || t->type != MOME_DTYPE_F16 || t->ne[0] != C || t->ne[1] != tot || t->ne[2] != 1 || t->ne[3] != 1)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' is missing or not f16 [%d, %lld]", f->path, name, C,
                                (long long)tot);
    if (!(*out = mome_malloc((size_t)tot * C * sizeof(uint16_t)))) return MOME_ERR_NOMEM;
    memcpy(*out, t->data, (size_t)tot * C * sizeof(uint16_t));
    for (size_t i = 0; i < (size_t)tot * C; i++)
        if (!isfinite(quant_f16_to_f32((*out)[i])))
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor '%s' contains NaN/Inf", f->path, name);
    return 0;
}

/* The wording check of a version-4 file: its threshold, the token count
 * of each fact (checked before anything is sized by them) and the tokens. */
static int load_cover(const gguf_file *f, mome_memory *m) {
    const int C = m->n_embd, nf = m->n_facts;
    const gguf_kv *nt;
    if (get_req_f32(f, "mome.cover_tau", &m->cover_tau)) return MOME_ERR_FORMAT;
    if (!(m->cover_tau >= -1.0f && m->cover_tau <= 1.0f))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.cover_tau %g outside [-1, 1]", f->path, (double)m->cover_tau);
    if (gguf_get_arr(f, "mome.n_question_tokens", GGUF_TYPE_INT32, &nt) != 1 || nt->n != (uint64_t)nf)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.n_question_tokens missing, mistyped or not one per fact (%d)",
                                f->path, nf);
    int64_t tot = 0;
    for (int i = 0; i < nf; i++) {
        int32_t k;
        memcpy(&k, nt->data + 4 * (size_t)i, 4);
        if (k < 0 || k > MEM_MAX_FACT_TOKENS)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %d keeps %d question tokens (0..%d)", f->path, i, k,
                                    MEM_MAX_FACT_TOKENS);
        m->n_tok[i] = k;
        m->tok_off[i] = tot;
        tot += k;
    }
    if (tot == 0) { m->n_tok_total = 0; return mem_update_tok_centre(m); }
    const int rc = read_f16_rows(f, "mem.question_tokens", C, tot, &m->ktok);
    if (rc) return rc;
    m->n_tok_total = m->cap_tok = tot;
    return mem_update_tok_centre(m);
}

/* The wrapper the check reads questions in, when the file has one (both
 * arrays or neither). */
static int load_verify_wrap(const gguf_file *f, mome_memory *m) {
    const gguf_kv *o, *c;
    const int ro = gguf_get_arr(f, "mome.verify_open", GGUF_TYPE_INT32, &o), rcl = gguf_get_arr(f, "mome.verify_close", GGUF_TYPE_INT32, &c);
    if (ro == 0 && rcl == 0) return 0;
    if (ro != 1 || rcl != 1 || o->n < 1 || o->n > MEM_MAX_MARK || c->n < 1 || c->n > MEM_MAX_MARK)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.verify_open / mome.verify_close missing, mistyped or not 1..%d tokens",
                                f->path, MEM_MAX_MARK);
    int32_t open[MEM_MAX_MARK], close[MEM_MAX_MARK];
    memcpy(open, o->data, (size_t)o->n * 4);
    memcpy(close, c->data, (size_t)c->n * 4);
    if (mem_set_verify_wrap(m, open, (int)o->n, close, (int)c->n))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.verify_open / mome.verify_close hold a token outside the vocabulary (%d)",
                                f->path, m->n_vocab);
    return 0;
}

/* The relation check, when the file has one: its block and threshold, the
 * state count of each fact (checked before anything is sized by them), the
 * centre and the states. */
static int load_verify(const gguf_file *f, mome_memory *m) {
    const int C = m->n_embd, nf = m->n_facts;
    int32_t layer;
    const int r = gguf_get_i32(f, "mome.verify_layer", &layer);
    if (r == 0) return 0;
    float tau;
    const gguf_kv *nv;
    if (r < 0 || get_req_f32(f, "mome.verify_tau", &tau)) return MOME_ERR_FORMAT;
    const int ru = gguf_get_f32(f, "mome.verify_tau_unnamed", &m->ver_tau_unnamed);
    if (ru < 0) return MOME_ERR_FORMAT;
    if (ru == 0) m->ver_tau_unnamed = MEM_DEFAULT_VERIFY_UNNAMED;
    if (!(m->ver_tau_unnamed >= -1.0f && m->ver_tau_unnamed <= 1.0f))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.verify_tau_unnamed %g outside [-1, 1]", f->path, (double)m->ver_tau_unnamed);
    int rc = load_verify_wrap(f, m);
    if (rc) return rc;
    if (layer < 1 || layer > ver_layer_max(m) || !(isnan(tau) || (tau >= -1.0f && tau <= 1.0f)))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: relation check at block %d (1..%d) with threshold %g ([-1, 1])", f->path,
                                layer, ver_layer_max(m), (double)tau);
    if (gguf_get_arr(f, "mome.n_verify", GGUF_TYPE_INT32, &nv) != 1 || nv->n != (uint64_t)nf)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.n_verify missing, mistyped or not one per fact (%d)", f->path, nf);
    int64_t tot = 0;
    for (int i = 0; i < nf; i++) {
        int32_t k;
        memcpy(&k, nv->data + 4 * (size_t)i, 4);
        if (k < 0 || k > MEM_MAX_VER)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %d keeps %d relation-check states (0..%d)", f->path, i, k, MEM_MAX_VER);
        tot += k;
    }
    if ((rc = mem_verify_init(m, layer, tau))) return rc;
    if ((rc = read_tensor(f, "mem.verify_centre", C, 1, 0, m->mu_ver))) return rc;
    if (tot > 0 && (rc = read_f16_rows(f, "mem.verify_states", C, tot, &m->kver))) return rc;
    int64_t off = 0;
    for (int i = 0; i < nf; i++) {
        memcpy(&m->n_ver[i], nv->data + 4 * (size_t)i, 4);
        m->ver_off[i] = off;
        off += m->n_ver[i];
    }
    m->n_ver_total = m->cap_ver = tot;
    m->ver_last = nf - 1;
    int32_t pool = 0;
    const int rp = gguf_get_i32(f, "mome.verify_relation", &pool);
    if (rp < 0 || (rp == 1 && pool != 0 && pool != 1))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.verify_relation is not 0 or 1", f->path);
    m->ver_pool = rp == 1 && pool == 1;
    if (!gguf_find_tensor(f, "mem.verify_whiten")) return 0; /* the check centred with mu_ver alone */
    if (!(m->ver_w = mome_malloc((size_t)C * C * sizeof(float)))) return MOME_ERR_NOMEM;
    if ((rc = read_tensor(f, "mem.verify_whiten", C, C, 0, m->ver_w))) return rc;
    if ((rc = read_f16_rows(f, "mem.verify_fact_centres", C, nf, &m->ver_ctr))) return rc;
    return grow((void **)&m->ver_ctr, (int64_t)m->cap_facts * C, sizeof(uint16_t)); /* rows for facts added later */
}

/* The alternative keys, when the file has them: the count per fact (checked
 * before anything is sized by it) into *n_of (nf), the pool keys then the
 * last keys into *keys (2 * *total rows of C); none: NULLs and 0. */
static int load_alt_keys(const gguf_file *f, int C, uint32_t nf, int32_t **n_of, float **keys, int64_t *total) {
    *n_of = NULL; *keys = NULL; *total = 0;
    const gguf_kv *kv;
    const int r = gguf_get_arr(f, "mome.n_alt_keys", GGUF_TYPE_INT32, &kv);
    if (r == 0) return 0;
    if (r < 0 || kv->n != nf)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.n_alt_keys is mistyped or not one per fact (%u)", f->path, nf);
    if (!(*n_of = mome_malloc((size_t)nf * sizeof(int32_t)))) return MOME_ERR_NOMEM;
    memcpy(*n_of, kv->data, (size_t)nf * sizeof(int32_t));
    int64_t tot = 0;
    for (uint32_t i = 0; i < nf; i++) {
        if ((*n_of)[i] < 0 || (*n_of)[i] > MEM_MAX_ALT)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %u has %d alternative keys (0..%d)", f->path, i, (*n_of)[i],
                                    MEM_MAX_ALT);
        tot += (*n_of)[i];
    }
    if (tot == 0) return 0;
    if (!(*keys = mome_malloc((size_t)(2 * tot) * C * sizeof(float)))) return MOME_ERR_NOMEM;
    int rc = read_tensor(f, "mem.alt_key_pool", C, tot, 1, *keys);
    if (!rc) rc = read_tensor(f, "mem.alt_key_last", C, tot, 1, *keys + (size_t)tot * C);
    if (!rc) *total = tot;
    return rc;
}

/* The facts' leads, when the file has them: one per fact, NAN (none: the
 * memory's margin) or in [0, 2]. */
static int load_fact_leads(const gguf_file *f, mome_memory *m) {
    const gguf_kv *kv;
    const int r = gguf_get_arr(f, "mome.fact_lead", GGUF_TYPE_FLOAT32, &kv);
    if (r == 0) return 0;
    if (r < 0 || kv->n != (uint64_t)m->n_facts)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.fact_lead mistyped or not one per fact (%d)", f->path, m->n_facts);
    for (int i = 0; i < m->n_facts; i++) {
        float v;
        memcpy(&v, kv->data + 4 * (size_t)i, 4);
        if (!(isnan(v) || (v >= 0.0f && v <= 2.0f)))
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.fact_lead of fact %d is %g (NaN or 0..2)", f->path, i, (double)v);
        m->flead[i] = v;
    }
    return 0;
}

/* The subjects, when the file has them: a length per fact (checked first)
 * and the text, stored as mem_set_fact_subject left it. */
static int load_subjects(const gguf_file *f, mome_memory *m) {
    const gguf_kv *kl, *kt;
    const int r = gguf_get_arr(f, "mome.subject_len", GGUF_TYPE_INT32, &kl);
    if (r == 0) return 0;
    if (r < 0 || kl->n != (uint64_t)m->n_facts || gguf_get_arr(f, "mome.subject_text", GGUF_TYPE_UINT8, &kt) != 1)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.subject_len / mome.subject_text missing, mistyped or not one per fact (%d)",
                                f->path, m->n_facts);
    uint64_t tot = 0;
    for (int i = 0; i < m->n_facts; i++) {
        int32_t k;
        memcpy(&k, kl->data + 4 * (size_t)i, 4);
        if (k < 0 || k > MEM_MAX_SUBJECT)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %d has a subject of %d bytes (0..%d)", f->path, i, k, MEM_MAX_SUBJECT);
        tot += (uint64_t)k;
    }
    if (tot != kt->n)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.subject_text has %llu bytes, the subject lengths add up to %llu",
                                f->path, (unsigned long long)kt->n, (unsigned long long)tot);
    if (!(m->subj = mome_malloc(tot ? (size_t)tot : 1))) return MOME_ERR_NOMEM;
    memcpy(m->subj, kt->data, (size_t)tot);
    m->cap_subj = m->n_subj_total = (int64_t)tot;
    int64_t off = 0;
    for (int i = 0; i < m->n_facts; i++) {
        memcpy(&m->subj_len[i], kl->data + 4 * (size_t)i, 4);
        m->subj_off[i] = off;
        off += m->subj_len[i];
    }
    return 0;
}

/* The header: what the file is, its base model, layers and routing. */
static int load_header(const gguf_file *f, mome_memory *m, uint32_t *ver, uint32_t *nf) {
    const char *path = f->path;
    gguf_str s;
    if (gguf_get_str(f, "general.architecture", &s) != 1 || !gguf_str_eq(s, MEM_ARCH))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: not a mome memory file (general.architecture is not '%s')", path,
                                MEM_ARCH);
    if (get_req_u32(f, "mome.version", ver)) return MOME_ERR_FORMAT;
    if (*ver != MEM_VERSION && *ver != MEM_VERSION_MIX && *ver != MEM_VERSION_COVER)
        return mome_seterr_code(MOME_ERR_UNSUPPORTED,
                                "%s: memory file version %u; this mome reads versions %d to %d (version 1 was the "
                                "product-key memory, which answered only the exact wording: tune the facts again)",
                                path, *ver, MEM_VERSION, MEM_VERSION_COVER);
    if (gguf_get_str(f, "mome.base.sha256", &s) != 1 || s.len != 64)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.base.sha256 missing or malformed", path);
    memcpy(m->base_sha256, s.ptr, 64);
    if (gguf_get_str(f, "mome.base.name", &s) == 1) {
        m->base_name = malloc((size_t)s.len + 1);
        if (m->base_name) { memcpy(m->base_name, s.ptr, (size_t)s.len); m->base_name[s.len] = 0; }
    }
    if (get_req_i32(f, "mome.base.n_embd", &m->n_embd) || get_req_i32(f, "mome.base.n_layer", &m->n_layer) ||
        get_req_i32(f, "mome.base.n_vocab", &m->n_vocab) || get_req_i32(f, "mome.key_layer", &m->key_layer) ||
        get_req_i32(f, "mome.value_layer", &m->value_layer) || get_req_f32(f, "mome.tau", &m->tau) ||
        get_req_f32(f, "mome.w_pool", &m->w_pool) || get_req_u32(f, "mome.n_facts", nf))
        return MOME_ERR_FORMAT;
    if (m->n_embd < 1 || m->n_embd > 65536 || m->n_layer < 2 || m->n_layer > 4096 || m->n_vocab < 1)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: implausible model shape in the memory header", path);
    if (m->key_layer < 1 || m->key_layer >= m->value_layer || m->value_layer >= m->n_layer)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: key layer %d / value layer %d outside 1 <= key < value < %d", path,
                                m->key_layer, m->value_layer, m->n_layer);
    if (!(m->tau >= -1.0f && m->tau <= 1.0f) || !(m->w_pool >= 0.0f && m->w_pool <= 1.0f))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.tau must be in [-1, 1] and mome.w_pool in [0, 1]", path);
    return 0;
}

/* The margin and, in a mixture memory (version 3, or 4 with mome.top_k),
 * the mixture's settings; absent ones keep optional_parts_off's. */
static int load_selection(const gguf_file *f, mome_memory *m, uint32_t ver) {
    const char *path = f->path;
    optional_parts_off(m);
    const int r = gguf_get_f32(f, "mome.route_margin", &m->margin), r2 = gguf_get_f32(f, "mome.route_margin_share", &m->margin_share);
    if (r < 0 || r2 < 0) return MOME_ERR_FORMAT;
    if (r == 0) m->margin = 0.0f;
    if (r2 == 0) m->margin_share = MEM_DEFAULT_MARGIN_SHARE;
    if (!(m->margin >= 0.0f && m->margin <= 2.0f) || !(m->margin_share >= 0.0f && m->margin_share <= 2.0f))
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.route_margin %g or mome.route_margin_share %g outside [0, 2]",
                                path, (double)m->margin, (double)m->margin_share);
    int has_mix = ver == MEM_VERSION_MIX;
    if (ver == MEM_VERSION_COVER) {
        int32_t k;
        const int rk = gguf_get_i32(f, "mome.top_k", &k);
        if (rk < 0) return MOME_ERR_FORMAT;
        has_mix = rk == 1;
    }
    if (!has_mix) return 0;
    if (get_req_i32(f, "mome.top_k", &m->top_k) || get_req_f32(f, "mome.top_k_temp", &m->mix_temp)) return MOME_ERR_FORMAT;
    const int rt = gguf_get_f32(f, "mome.top_k_tau", &m->mix_tau);
    if (rt < 0) return MOME_ERR_FORMAT;
    if (rt == 0) m->mix_tau = NAN;
    if (m->top_k < 2 || m->top_k > MEM_MAX_K || !(m->mix_temp > 0.0f && m->mix_temp <= 100.0f) ||
        (rt == 1 && !(m->mix_tau >= -1.0f && m->mix_tau <= 1.0f)))
        return mome_seterr_code(MOME_ERR_FORMAT,
                                "%s: mixture settings out of range (mome.top_k %d: 2..%d, mome.top_k_temp %g: (0, 100], "
                                "mome.top_k_tau: [-1, 1])",
                                path, m->top_k, MEM_MAX_K, (double)m->mix_temp);
    return 0;
}

/* The memory was made for this model (its file's SHA-256 and shape). */
static int check_base(const gguf_file *f, mome_memory *m, mome_model *model) {
    const char *sha = mome_model_sha256(model);
    if (!sha) return MOME_ERR_IO;
    if (strcmp(sha, m->base_sha256) != 0 || m->n_embd != model->hp.n_embd || m->n_layer != model->hp.n_layer ||
        m->n_vocab != model->hp.n_vocab)
        return mome_seterr_code(MOME_ERR_ARG,
                                "%s: this memory was made for another base model (%s, sha256 %.16s...); the model given "
                                "is %s (sha256 %.16s...). Use the model the memory was tuned on.",
                                f->path, m->base_name ? m->base_name : "?", m->base_sha256, model->path, sha);
    return mem_bind_model(m, model);
}

/* The answer lengths (checked first: they decide every later size) and
 * tokens; *tot: their sum. */
static int load_answer_lengths(const gguf_file *f, uint32_t nf, const gguf_kv **na, const gguf_kv **at, uint64_t *tot) {
    const char *path = f->path;
    if (gguf_get_arr(f, "mome.n_answer", GGUF_TYPE_INT32, na) != 1 ||
        gguf_get_arr(f, "mome.answer_tokens", GGUF_TYPE_INT32, at) != 1)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.n_answer / mome.answer_tokens missing or mistyped", path);
    if ((*na)->n != nf)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.n_answer has %llu entries for %u facts", path,
                                (unsigned long long)(*na)->n, nf);
    *tot = 0;
    for (uint32_t i = 0; i < nf; i++) {
        int32_t k;
        memcpy(&k, (*na)->data + 4 * (size_t)i, 4);
        if (k < 1 || k > MEM_MAX_ANSWER)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %u has an answer of %d tokens (1..%d)", path, i, k,
                                    MEM_MAX_ANSWER);
        *tot += (uint64_t)k;
    }
    if (*tot != (*at)->n)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: mome.answer_tokens has %llu tokens, the answer lengths add up to %llu",
                                path, (unsigned long long)(*at)->n, (unsigned long long)*tot);
    return 0;
}

/* The centres, and the relation gate when the file has one. */
static int load_centres_gate(const gguf_file *f, mome_memory *m, uint32_t nf) {
    const char *path = f->path;
    const int C = m->n_embd;
    m->mu_pool = mome_malloc((size_t)C * sizeof(float));
    m->mu_last = mome_malloc((size_t)C * sizeof(float));
    if (!m->mu_pool || !m->mu_last) return MOME_ERR_NOMEM;
    int rc;
    if ((rc = read_tensor(f, "mem.mu_pool", C, 1, 0, m->mu_pool)) || (rc = read_tensor(f, "mem.mu_last", C, 1, 0, m->mu_last)))
        return rc;
    if (gguf_find_tensor(f, "mem.gate_w")) {
        /* a gate biases every fact of the file (facts tuned later have none) */
        const gguf_tensor *tb = gguf_find_tensor(f, "mem.gate_bias");
        if (!tb || tb->ne[0] < 1 || (uint64_t)tb->ne[0] > nf)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor 'mem.gate_bias' is missing or longer than the %u facts",
                                    path, nf);
        m->gate_w = mome_malloc((size_t)C * sizeof(float));
        m->gate_bias = mome_malloc((size_t)tb->ne[0] * sizeof(float));
        if (!m->gate_w || !m->gate_bias) return MOME_ERR_NOMEM;
        if ((rc = read_tensor(f, "mem.gate_w", C, 1, 0, m->gate_w)) ||
            (rc = read_tensor(f, "mem.gate_bias", tb->ne[0], 1, 0, m->gate_bias)))
            return rc;
        m->n_gate_bias = (int32_t)tb->ne[0];
    }
    const gguf_tensor *tg = gguf_find_tensor(f, "mem.gate_neg");
    if (tg) {
        if (tg->ne[1] < 1 || tg->ne[1] > MEM_GATE_MAX_NEG)
            return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor 'mem.gate_neg' holds %lld keys (1..%d)", path,
                                    (long long)tg->ne[1], MEM_GATE_MAX_NEG);
        if (!(m->gneg = mome_malloc((size_t)MEM_GATE_MAX_NEG * C * sizeof(float)))) return MOME_ERR_NOMEM;
        if ((rc = read_tensor(f, "mem.gate_neg", C, tg->ne[1], 0, m->gneg))) return rc;
        m->n_gneg = (int32_t)tg->ne[1];
    }
    return 0;
}

/* The facts: keys, values, answers (inside the vocabulary) and alternative
 * keys, added through mem_add_fact as the tuner adds them. */
static int load_fact_data(const gguf_file *f, mome_memory *m, uint32_t nf, const gguf_kv *na, const gguf_kv *at,
                          uint64_t tot) {
    if (nf == 0) return 0;
    const char *path = f->path;
    const int C = m->n_embd;
    const uint64_t R = tot + nf;
    /* the tensor table was bounds-checked against the file, so a shape
     * that matches is backed by bytes; allocate only after that check */
    const gguf_tensor *tv = gguf_find_tensor(f, "mem.values");
    if (!tv || tv->ne[0] != C || (uint64_t)tv->ne[1] != R)
        return mome_seterr_code(MOME_ERR_FORMAT, "%s: memory tensor 'mem.values' is missing or not [%d, %llu]", path, C,
                                (unsigned long long)R);
    float *kp = mome_malloc((size_t)nf * C * sizeof(float)), *kl = mome_malloc((size_t)nf * C * sizeof(float));
    float *val = mome_malloc((size_t)R * C * sizeof(float)), *alt = NULL;
    int32_t *alt_n = NULL;
    int64_t n_alt = 0, alt_at = 0;
    int rc = kp && kl && val ? 0 : MOME_ERR_NOMEM;
    if (!rc && !(rc = read_tensor(f, "mem.key_pool", C, nf, 0, kp)) && !(rc = read_tensor(f, "mem.key_last", C, nf, 0, kl)) &&
        !(rc = read_tensor(f, "mem.values", C, (int64_t)R, 1, val)))
        rc = load_alt_keys(f, C, nf, &alt_n, &alt, &n_alt);
    for (uint32_t i = 0; i < nf && !rc; i++) {
        int32_t k;
        memcpy(&k, na->data + 4 * (size_t)i, 4);
        int32_t ans[MEM_MAX_ANSWER];
        const int64_t off = m->n_ans_total;
        memcpy(ans, at->data + 4 * (size_t)off, (size_t)k * 4);
        for (int j = 0; j < k && !rc; j++)
            if (ans[j] < 0 || ans[j] >= m->n_vocab)
                rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: fact %u: answer token %d is outside the vocabulary", path, i,
                                      ans[j]);
        const int fi = rc ? -1 : mem_add_fact(m, kp + (size_t)i * C, kl + (size_t)i * C, ans, k);
        if (!rc && fi < 0) rc = fi;
        if (!rc) memcpy(mem_values(m, fi), val + (size_t)(off + i) * C, (size_t)(k + 1) * C * sizeof(float));
        for (int32_t j = 0; !rc && alt && j < alt_n[i]; j++, alt_at++)
            rc = mem_add_alt_key(m, fi, alt + (size_t)alt_at * C, alt + (size_t)(n_alt + alt_at) * C);
    }
    free(kp); free(kl); free(val); free(alt); free(alt_n);
    return rc;
}

/* The memory in an open GGUF file (the caller closes it): its parts in
 * file order, each checked before anything is sized by it. */
static int memory_from(const gguf_file *f, mome_model *model, mome_memory **out) {
    *out = NULL;
    mome_memory *m = calloc(1, sizeof *m);
    if (!m) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    uint32_t ver = 0, nf = 0;
    uint64_t tot = 0;
    const gguf_kv *na = NULL, *at = NULL;
    int rc = load_header(f, m, &ver, &nf);
    if (!rc) rc = load_selection(f, m, ver);
    if (!rc && model) rc = check_base(f, m, model);
    if (!rc) rc = load_answer_lengths(f, nf, &na, &at, &tot);
    if (!rc) rc = load_centres_gate(f, m, nf);
    if (!rc) rc = load_fact_data(f, m, nf, na, at, tot);
    if (!rc && nf > 0) rc = load_subjects(f, m);
    if (!rc && nf > 0) rc = load_fact_leads(f, m);
    if (!rc && ver == MEM_VERSION_COVER && nf > 0) rc = load_cover(f, m);
    if (!rc && nf > 0) rc = load_verify(f, m);
    if (rc) {
        mome_memory_free(m);
        return rc;
    }
    m->n_frozen = m->n_facts;
    *out = m;
    return MOME_OK;
}

int mome_memory_load(const char *path, mome_model *model, mome_memory **out) {
    *out = NULL;
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc) return rc;
    rc = memory_from(f, model, out);
    gguf_close(f);
    return rc;
}


void mem_ckpt_meta_free(mem_ckpt_meta *meta) {
    free(meta->state); free(meta->target_loss); free(meta->n_fail); free(meta->adam_t); free(meta->loss);
    free(meta->adam); free(meta->recheck);
    memset(meta, 0, sizeof *meta);
}

/* A copy of the n-element array key (elem_type, 4-byte elements); 1 copied,
 * 0 absent, <0 wrong type or length. */
static int ckpt_arr(const gguf_file *f, const char *key, uint32_t elem_type, uint64_t n, void **out) {
    const gguf_kv *kv;
    const int r = gguf_get_arr(f, key, elem_type, &kv);
    if (r != 1) return r;
    if (kv->n != n) return mome_seterr_code(MOME_ERR_FORMAT, "%s: checkpoint field '%s' has %llu entries, expected %llu",
                                            f->path, key, (unsigned long long)kv->n, (unsigned long long)n);
    *out = mome_malloc((size_t)(n ? n : 1) * 4);
    if (!*out) return MOME_ERR_NOMEM;
    memcpy(*out, kv->data, (size_t)n * 4);
    return 1;
}

int mem_load_ckpt(const char *path, mome_model *model, mome_memory **out, mem_ckpt_meta *meta) {
    memset(meta, 0, sizeof *meta);
    *out = NULL;
    gguf_file *f;
    int rc = gguf_open(path, &f);
    if (rc) return rc;
    if ((rc = memory_from(f, model, out))) { gguf_close(f); return rc; }
    const gguf_kv *st;
    uint64_t step = 0;
    float sec = 0;
    rc = MOME_OK;
    if (gguf_get_u64(f, "ckpt.step", &step) != 1 || gguf_get_f32(f, "ckpt.seconds", &sec) != 1 ||
        gguf_get_arr(f, "ckpt.state", GGUF_TYPE_INT32, &st) != 1 || st->n > (1u << 30) ||
        ckpt_arr(f, "ckpt.state", GGUF_TYPE_INT32, st->n, (void **)&meta->state) != 1 ||
        ckpt_arr(f, "ckpt.target_loss", GGUF_TYPE_FLOAT32, st->n, (void **)&meta->target_loss) != 1) {
        rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: not a tuning checkpoint (ckpt.* fields missing or inconsistent)", path);
        goto done;
    }
    meta->n = (int)st->n;
    meta->step = (int64_t)(step > (uint64_t)INT64_MAX ? 0 : step);
    meta->seconds = isfinite(sec) && sec >= 0 ? sec : 0;
    for (int i = 0; i < meta->n; i++)
        if (meta->state[i] < MEM_CKPT_TRAINING || meta->state[i] > MEM_CKPT_GIVEN_UP) {
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: checkpoint fact %d has state %d (0..3)", path, i, meta->state[i]);
            goto done;
        }
    /* the facts to verify again (mixtures only; absent: none) */
    int rr = ckpt_arr(f, "ckpt.recheck", GGUF_TYPE_INT32, st->n, (void **)&meta->recheck);
    if (rr < 0) {
        rc = rr;
        goto done;
    }
    for (int i = 0; meta->recheck && i < meta->n; i++)
        if (meta->recheck[i] != 0 && meta->recheck[i] != 1) {
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: checkpoint fact %d has recheck %d (0 or 1)", path, i, meta->recheck[i]);
            goto done;
        }
    /* the optimizer's state: all of it or none (an older checkpoint) */
    const gguf_tensor *ta = gguf_find_tensor(f, "ckpt.adam");
    const gguf_kv *at;
    if (!ta && gguf_get_arr(f, "ckpt.adam_t", GGUF_TYPE_INT32, &at) == 0) goto done;
    const int64_t C = (*out)->n_embd;
    int r;
    if ((r = ckpt_arr(f, "ckpt.n_fail", GGUF_TYPE_INT32, st->n, (void **)&meta->n_fail)) != 1 ||
        (r = ckpt_arr(f, "ckpt.adam_t", GGUF_TYPE_INT32, st->n, (void **)&meta->adam_t)) != 1 ||
        (r = ckpt_arr(f, "ckpt.loss", GGUF_TYPE_FLOAT32, st->n, (void **)&meta->loss)) != 1 ||
        gguf_get_i32(f, "ckpt.cursor", &meta->cursor) != 1 || !ta || ta->type != MOME_DTYPE_F32 || ta->ne[0] != C ||
        ta->ne[1] < 2 || ta->ne[1] % 2 || ta->ne[2] != 1 || ta->ne[3] != 1) {
        rc = mome_seterr_code(r == MOME_ERR_NOMEM ? r : MOME_ERR_FORMAT,
                              "%s: the checkpoint's optimizer state is incomplete or has the wrong shape (delete it to "
                              "start over)", path);
        goto done;
    }
    meta->n_adam_rows = ta->ne[1] / 2;
    const size_t na = (size_t)(C * ta->ne[1]);
    meta->adam = mome_malloc(na * sizeof(float));
    if (!meta->adam) { rc = MOME_ERR_NOMEM; goto done; }
    memcpy(meta->adam, ta->data, na * sizeof(float));
    for (size_t i = 0; i < na; i++)
        if (!isfinite(meta->adam[i])) {
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: the checkpoint's optimizer state contains NaN/Inf", path);
            goto done;
        }
    for (int i = 0; i < meta->n; i++)
        if (meta->adam_t[i] < 0 || meta->n_fail[i] < 0 || !isfinite(meta->loss[i])) {
            rc = mome_seterr_code(MOME_ERR_FORMAT, "%s: checkpoint fact %d has a negative step or failure count", path, i);
            goto done;
        }
done:
    gguf_close(f);
    if (rc) {
        mem_ckpt_meta_free(meta);
        mome_memory_free(*out);
        *out = NULL;
    }
    return rc;
}

void mome_memory_free(mome_memory *m) {
    if (!m) return;
    free(m->base_name); free(m->mu_pool); free(m->mu_last); free(m->kpool); free(m->klast); free(m->cpool);
    free(m->clast); free(m->n_ans); free(m->ans_off); free(m->ans); free(m->val); free(m->blank);
    free(m->gate_w); free(m->gate_bias); free(m->gneg);
    free(m->mu_tok); free(m->n_tok); free(m->tok_off); free(m->ktok); free(m->content);
    free(m->n_alt); free(m->alt_off); free(m->akpool); free(m->aklast); free(m->acpool); free(m->aclast);
    free(m->subj_len); free(m->subj_off); free(m->subj); free(m->piece_off); free(m->pieces); free(m->flead);
    free(m->mu_ver); free(m->n_ver); free(m->ver_off); free(m->kver); free(m->ver_w); free(m->ver_ctr);
    free(m);
}

int64_t mome_memory_n_trained(const mome_memory *m) { return m->n_facts; }

void mome_memory_set_routing(mome_memory *mem, float threshold, float w_pool) {
    if (threshold >= -1.0f && threshold <= 1.0f) mem->tau = threshold;
    if (w_pool >= 0.0f && w_pool <= 1.0f) mem->w_pool = w_pool;
}

void mome_memory_set_cover(mome_memory *mem, float cover) {
    if (cover >= -1.0f && cover <= 1.0f) mem->cover_tau = cover;
}

float mome_memory_cover_threshold(const mome_memory *mem) { return mem->cover_tau; }

void mome_memory_set_verify(mome_memory *mem, float verify) {
    if (mem->ver_layer >= 0 && verify >= -1.0f && verify <= 1.0f) mem->ver_tau = verify;
}

float mome_memory_verify_threshold(const mome_memory *mem) { return mem->ver_layer >= 0 ? mem->ver_tau : NAN; }

void mome_memory_set_verify_unnamed(mome_memory *mem, float verify) {
    if (verify >= -1.0f && verify <= 1.0f) mem->ver_tau_unnamed = verify;
}

float mome_memory_verify_unnamed(const mome_memory *mem) { return mem->ver_tau_unnamed; }

void mome_memory_set_margin_share(mome_memory *mem, float share) {
    if (share >= 0.0f && share <= 2.0f) mem->margin_share = share;
}

void mome_memory_set_margin(mome_memory *mem, float margin) {
    if (margin >= 0.0f && margin <= 2.0f) mem->margin = margin;
}

float mome_memory_margin(const mome_memory *mem) { return mem->margin; }

void mome_memory_set_mix(mome_memory *mem, int top_k, float temp, float tau) {
    if (top_k >= 1 && top_k <= MEM_MAX_K) mem->top_k = top_k;
    if (temp > 0.0f && temp <= 100.0f) mem->mix_temp = temp;
    if (tau >= -1.0f && tau <= 1.0f) mem->mix_tau = tau;
}

int mome_memory_top_k(const mome_memory *mem) { return mem->top_k; }
