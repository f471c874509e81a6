/* sampler.c - next-token selection: greedy, temperature, top-k, top-p,
 * min-p, repetition penalty, seeded.
 *
 * Order of operations follows llama.cpp's common chain: penalties, top-k,
 * top-p, min-p, temperature, then a draw from the renormalised
 * distribution. The PRNG is splitmix64/xoshiro256** seeded from the user's
 * seed, so a seed reproduces a run exactly on any machine. Greedy (temp <= 0)
 * takes the first index of the maximum logit.
 */
#include <math.h>
#include <string.h>

#include "mome.h"
#include "util.h"

struct mome_sampler {
    mome_sampler_params p;
    int32_t n_vocab;
    uint64_t s[4];
    float *work;       /* (V) scratch: logits after penalties */
    int32_t *idx;      /* (V) candidate ids */
    int32_t *hist;     /* last 64 tokens for the repetition penalty */
    int n_hist;
};

mome_sampler_params mome_sampler_default_params(void) {
    mome_sampler_params p = {0.8f, 40, 0.95f, 0.05f, 1.0f, 0};
    return p;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t next_u64(mome_sampler *s) {
    uint64_t *q = s->s;
    const uint64_t r = rotl(q[1] * 5, 7) * 9, t = q[1] << 17;
    q[2] ^= q[0]; q[3] ^= q[1]; q[1] ^= q[2]; q[0] ^= q[3];
    q[2] ^= t;
    q[3] = rotl(q[3], 45);
    return r;
}

int mome_sampler_init(const mome_sampler_params *p, int32_t n_vocab, mome_sampler **out) {
    *out = NULL;
    if (n_vocab <= 0) return mome_seterr_code(MOME_ERR_ARG, "sampler: empty vocabulary");
    mome_sampler *s = calloc(1, sizeof *s);
    if (!s) return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    s->p = p ? *p : mome_sampler_default_params();
    s->n_vocab = n_vocab;
    uint64_t seed = s->p.seed;
    for (int i = 0; i < 4; i++) s->s[i] = splitmix64(&seed);
    s->work = malloc((size_t)n_vocab * sizeof(float));
    s->idx = malloc((size_t)n_vocab * sizeof(int32_t));
    s->hist = calloc(64, sizeof(int32_t));
    if (!s->work || !s->idx || !s->hist) {
        mome_sampler_free(s);
        return mome_seterr_code(MOME_ERR_NOMEM, "out of memory");
    }
    *out = s;
    return MOME_OK;
}

void mome_sampler_free(mome_sampler *s) {
    if (!s) return;
    free(s->work);
    free(s->idx);
    free(s->hist);
    free(s);
}

static int cmp_desc(const void *a, const void *b, void *vals) {
    const float *v = vals;
    float x = v[*(const int32_t *)a], y = v[*(const int32_t *)b];
    if (x > y) return -1;
    if (x < y) return 1;
    return *(const int32_t *)a - *(const int32_t *)b;
}

/* Partial selection: moves the k largest of idx[0..n) to the front, sorted. */
static void top_k_sort(const float *v, int32_t *idx, int n, int k) {
    /* full sort when k is large, else insertion into a sorted buffer of k */
    if (k >= n || k > 256) {
        qsort_r(idx, (size_t)n, sizeof *idx, cmp_desc, (void *)v);
        return;
    }
    /* keep a sorted buffer of the best k */
    int m = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = idx[i];
        float x = v[id];
        if (m == k && !(x > v[idx[m - 1]])) continue;
        int j = m < k ? m++ : k - 1;
        while (j > 0 && v[idx[j - 1]] < x) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = id;
    }
}

int32_t mome_sampler_sample(mome_sampler *s, const float *logits) {
    const int32_t V = s->n_vocab;
    const mome_sampler_params *p = &s->p;
    int32_t tok;
    if (p->temp <= 0.0f && p->repeat_penalty == 1.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        tok = best;
        goto done;
    }
    memcpy(s->work, logits, (size_t)V * sizeof(float));
    if (p->repeat_penalty != 1.0f && p->repeat_penalty > 0.0f) {
        for (int i = 0; i < s->n_hist; i++) {
            int32_t t = s->hist[i];
            if (t < 0 || t >= V) continue;
            /* apply once per distinct token */
            int seen = 0;
            for (int j = 0; j < i; j++) seen |= s->hist[j] == t;
            if (seen) continue;
            s->work[t] = s->work[t] > 0 ? s->work[t] / p->repeat_penalty : s->work[t] * p->repeat_penalty;
        }
    }
    if (p->temp <= 0.0f) {
        int32_t best = 0;
        for (int32_t i = 1; i < V; i++)
            if (s->work[i] > s->work[best]) best = i;
        tok = best;
        goto done;
    }
    {
        int n = V;
        for (int32_t i = 0; i < V; i++) s->idx[i] = i;
        int k = (p->top_k > 0 && p->top_k < V) ? p->top_k : V;
        top_k_sort(s->work, s->idx, n, k);
        n = k;
        /* probabilities at temperature 1 for top-p / min-p (as llama.cpp) */
        float mx = s->work[s->idx[0]];
        double sum = 0;
        for (int i = 0; i < n; i++) sum += exp((double)(s->work[s->idx[i]] - mx));
        if (p->top_p > 0.0f && p->top_p < 1.0f) {
            double cum = 0;
            for (int i = 0; i < n; i++) {
                cum += exp((double)(s->work[s->idx[i]] - mx)) / sum;
                if (cum >= p->top_p) {
                    n = i + 1;
                    break;
                }
            }
        }
        if (p->min_p > 0.0f) {
            /* keep tokens with p >= min_p * p_max, i.e. logit >= mx + log(min_p) */
            float thr = mx + logf(p->min_p);
            int m = 1;
            while (m < n && s->work[s->idx[m]] >= thr) m++;
            n = m;
        }
        double tot = 0;
        for (int i = 0; i < n; i++) tot += exp((double)(s->work[s->idx[i]] - mx) / p->temp);
        double r = (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0) * tot;
        tok = s->idx[n - 1];
        double acc = 0;
        for (int i = 0; i < n; i++) {
            acc += exp((double)(s->work[s->idx[i]] - mx) / p->temp);
            if (r < acc) {
                tok = s->idx[i];
                break;
            }
        }
    }
done:
    if (s->n_hist < 64) s->hist[s->n_hist++] = tok;
    else {
        memmove(s->hist, s->hist + 1, 63 * sizeof(int32_t));
        s->hist[63] = tok;
    }
    return tok;
}
