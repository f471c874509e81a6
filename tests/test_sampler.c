/* test_sampler.c - sampling: greedy is the argmax, a seed reproduces a run,
 * top-k = 1 is greedy, and temperature sampling follows softmax(logits / T)
 * (frequencies over many draws within a few standard errors), top-p keeps
 * only the nucleus, min-p drops the improbable.
 */
#include <math.h>

#include "mome.h"
#include "test.h"

static void test_greedy(void) {
    float lg[6] = {0.1f, 2.0f, -1.0f, 3.5f, 3.4f, 0.0f};
    mome_sampler_params p = mome_sampler_default_params();
    p.temp = 0;
    mome_sampler *s;
    REQUIRE(mome_sampler_init(&p, 6, &s) == 0, "init");
    CHECK(mome_sampler_sample(s, lg) == 3, "greedy");
    mome_sampler_free(s);
    p.temp = 1.0f;
    p.top_k = 1;
    REQUIRE(mome_sampler_init(&p, 6, &s) == 0, "init");
    for (int i = 0; i < 20; i++) CHECK(mome_sampler_sample(s, lg) == 3, "top-k 1 is greedy");
    mome_sampler_free(s);
}

static void test_seed_reproducible(void) {
    float lg[50];
    for (int i = 0; i < 50; i++) lg[i] = sinf((float)i);
    mome_sampler_params p = mome_sampler_default_params();
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 42;
    mome_sampler *a, *b, *c;
    mome_sampler_init(&p, 50, &a);
    mome_sampler_init(&p, 50, &b);
    p.seed = 43;
    mome_sampler_init(&p, 50, &c);
    int same = 1, diff = 0;
    for (int i = 0; i < 200; i++) {
        int x = mome_sampler_sample(a, lg), y = mome_sampler_sample(b, lg), z = mome_sampler_sample(c, lg);
        same &= x == y;
        diff |= x != z;
    }
    CHECK(same, "same seed gave different draws");
    CHECK(diff, "different seeds gave the same 200 draws");
    mome_sampler_free(a);
    mome_sampler_free(b);
    mome_sampler_free(c);
}

static void test_distribution(void) {
    const int V = 5, N = 40000;
    float lg[5] = {1.0f, 0.5f, 0.0f, -0.5f, -3.0f};
    mome_sampler_params p = mome_sampler_default_params();
    p.temp = 0.7f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 7;
    mome_sampler *s;
    REQUIRE(mome_sampler_init(&p, V, &s) == 0, "init");
    int cnt[5] = {0};
    for (int i = 0; i < N; i++) cnt[mome_sampler_sample(s, lg)]++;
    double z = 0, pr[5];
    for (int i = 0; i < V; i++) z += exp(lg[i] / p.temp);
    for (int i = 0; i < V; i++) {
        pr[i] = exp(lg[i] / p.temp) / z;
        double se = sqrt(pr[i] * (1 - pr[i]) / N), f = (double)cnt[i] / N;
        CHECK(fabs(f - pr[i]) < 5 * se + 1e-4, "token %d: frequency %.4f, softmax %.4f", i, f, pr[i]);
    }
    mome_sampler_free(s);
    /* top-p 0.5 keeps only the most likely token here (p0 = 0.49 < 0.5 < p0 + p1) */
    p.top_p = 0.5f;
    REQUIRE(mome_sampler_init(&p, V, &s) == 0, "init");
    int seen[5] = {0};
    for (int i = 0; i < 2000; i++) seen[mome_sampler_sample(s, lg)] = 1;
    CHECK(seen[0] && seen[1] && !seen[2] && !seen[3] && !seen[4], "top-p kept %d%d%d%d%d", seen[0], seen[1], seen[2],
          seen[3], seen[4]);
    mome_sampler_free(s);
    /* min-p 0.1 drops token 4 (its probability is ~0.3% of the best) */
    p.top_p = 1.0f;
    p.min_p = 0.1f;
    REQUIRE(mome_sampler_init(&p, V, &s) == 0, "init");
    int got4 = 0;
    for (int i = 0; i < 5000; i++) got4 |= mome_sampler_sample(s, lg) == 4;
    CHECK(!got4, "min-p did not drop the improbable token");
    mome_sampler_free(s);
}

int main(void) {
    RUN(test_greedy);
    RUN(test_seed_reproducible);
    RUN(test_distribution);
    return test_summary();
}
