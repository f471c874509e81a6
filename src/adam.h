/* adam.h - the one Adam update, used by memory tuning and the LoRA baseline.
 *
 * Kingma & Ba's Adam with bias correction: for a parameter block p with
 * gradient g and moments m, v after t >= 1 steps of this block,
 *   m = b1 m + (1 - b1) g,  v = b2 v + (1 - b2) g^2,
 *   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
 * Each caller keeps its own step count per block, so sparse training (only
 * the facts of a batch move) corrects each block by its own steps.
 */
#ifndef MOME_ADAM_H
#define MOME_ADAM_H

#include <math.h>
#include <stddef.h>

typedef struct adam_cfg {
    float lr, b1, b2, eps;
} adam_cfg;

static inline adam_cfg adam_default(float lr) {
    adam_cfg c = {lr, 0.9f, 0.999f, 1e-8f};
    return c;
}

static inline void adam_update(const adam_cfg *c, int t, float *p, const float *g, float *m, float *v, size_t n) {
    const float c1 = 1.0f / (1.0f - powf(c->b1, (float)t)), c2 = 1.0f / (1.0f - powf(c->b2, (float)t));
    for (size_t j = 0; j < n; j++) {
        m[j] = c->b1 * m[j] + (1 - c->b1) * g[j];
        v[j] = c->b2 * v[j] + (1 - c->b2) * g[j] * g[j];
        p[j] -= c->lr * (m[j] * c1) / (sqrtf(v[j] * c2) + c->eps);
    }
}

#endif
