/* memory.h - the memory of facts attached to a frozen model: keyed by how the
 * model reads the question, so it answers reworded questions and questions
 * inside a conversation, and silent everywhere else.
 *
 * Every fact f owns a small set of experts: one value vector v[f][j] (C) for
 * each row j of its answer (row 0 is the last prompt token, which predicts
 * the first answer token; row j >= 1 consumes answer token j-1 and predicts
 * token j, the last one predicts end-of-turn). At the input of the value
 * block lv the selected expert adds
 *
 *   h += rms(h) * v[f][j]
 *
 * (relative to the residual stream's scale, so one learning rate suits every
 * model). All other rows, and every row of text that is not a question the
 * memory knows, get nothing: the logits stay bit-identical.
 *
 * Selection (routing) happens once per question, at the last token of the
 * assistant header that follows a user turn (the "decision row"). The fact is
 * chosen by two keys the frozen model computes there:
 *   pool: the mean of x̂ = h/rms(h) at the input of the key block lk (a
 *         middle block) over the user message's content tokens. It survives
 *         rewording, a system prompt and earlier turns (measured: the nearest
 *         stored question is found for 97% of zsRE rewordings with it).
 *   last: x̂ at the value block at the decision row, which has read the whole
 *         conversation and tells relations of one subject apart.
 * Both are centred (mu_pool, mu_last: the mean over the tuned questions and a
 * built-in set of unrelated ones) and L2-normalised; the score of fact f is
 *   s_f = w_pool * cos(pool, K_pool[f]) + (1 - w_pool) * cos(last, K_last[f])
 * (the best over the fact's own keys and its alternative keys: the question
 * lower-cased, MEM_MAX_ALT) and the best fact is selected when s_f >= tau,
 * the relation gate lets the question through, its wording check and
 * subject check (below) pass, and it leads its rival by its margin (below;
 * off by default). Its experts then stay
 * selected row after row while the tokens fed are its answer's tokens; a
 * token that is not (sampling took another path) ends the selection.
 *
 * A mixture of k facts (mome tune --top-k, issue 11 experiment 4). With
 * top_k > 1 the decision row selects up to k facts: the k best by score
 * (mem_best_k); the memory speaks exactly when it would with k = 1 (the best
 * reaches tau and passes its gate), and each of the other k - 1 joins when
 * its score reaches mix_tau (tau unless set) and it passes its gate. Weights
 * a_i = softmax(s_i / T) over the facts in the mixture; on answer row j
 *
 *   h += rms(h) * sum_i a_i v[f_i][j]
 *
 * A fact stays in the mixture while the token fed is its own answer's next
 * token (mem_mix_follow), the weights renormalised over the facts still in
 * it; the memory's part ends when none is. With one fact in it a = 1 and
 * the row is mem_value_row's, so k = 1 is version 2 bit for bit (and its
 * files are version 2 files). The tuner trains the same mixture
 * (tune.c: each fact's partners are those its own keys select).
 *
 * The relation gate. Within a set whose facts share one wording ("What is
 * the ISO alpha-3 code of X?") centring removes the wording, so the keys
 * tell subjects apart but not what is asked about them: "What is the
 * population of X?" found X's fact. The gate is one linear function of the
 * centred unit last key, g(q) = w . last_c(q) + b, shared by all facts (a
 * relation is a direction common to every subject; a per-fact rule did not
 * generalise: docs/ARCHITECTURE.md). The tuner fits it by logistic
 * regression: accept the facts' questions in their training contexts, reject
 * other questions about the facts' subjects (built-in templates, when a fact
 * names its subject) and unrelated questions. Each fact then gets its own
 * bias, raised where needed so that every context it was trained in passes
 * with a margin: the gate never silences a trained wording. The gate is
 * opt-in (mome tune --gate-questions N): it trades rewordings for quiet on
 * other questions about a subject, measured in docs/BENCHMARKS.md. A memory without
 * such questions has no gate. The rejected keys are kept (at most
 * MEM_GATE_MAX_NEG) so that adding facts later refits the gate.
 *
 * Where the user turn starts and ends and what the assistant header is are
 * taken from the model's chat template (mem_marks_from_model), so the same
 * rule runs in the engine and in the tuner.
 *
 * Shapes: C = n_embd, n facts, R = sum over facts of (n_ans + 1) rows.
 */
#ifndef MOME_MEMORY_H
#define MOME_MEMORY_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "mome.h"

#define MEM_MAX_MARK 16
#define MEM_MAX_ANSWER 256 /* answer tokens a fact may have */
/* Selection defaults (measured on zsRE, see docs/ARCHITECTURE.md): the score
 * threshold and the pooled key's weight in the score. */
#define MEM_DEFAULT_TAU MOME_DEFAULT_ROUTE_THRESHOLD /* mome.h */
#define MEM_DEFAULT_W_POOL 0.7f
#define MEM_GATE_MAX_NEG 4096 /* rejected questions' keys a memory keeps */
#define MEM_MAX_K 64          /* facts one question may mix (top_k) */
/* Softmax temperature T of the mixture weights (scores are cosines). Measured
 * on 24 zsRE facts mixed together: at 0.25 a trained question's own fact
 * weighs 0.73 and a paraphrase's 0.56; at 0.1 (8 facts mixed) 0.999 and
 * 0.996, which leaves the partners next to nothing to do. */
#define MEM_DEFAULT_MIX_TEMP 0.25f

/* The wording check (mome tune --cover K, issue 8). The keys above find the
 * right fact for a reworded question, but they find it just as well for
 * another question about the same subject ("What is the ISO 3166-1 numeric
 * code of X?" against the trained "... alpha-3 code of X?": one word apart,
 * and nearer the fact at every block than the fact's own paraphrases). So
 * the memory also keeps, per fact, the x̂ at the key block of each content
 * token of its question (tokens with a letter or digit; at most
 * MEM_MAX_FACT_TOKENS), and a fact passes only when every one of them has a
 * counterpart in the question asked:
 *   cover(f, q) = min over f's tokens j of max over q's content tokens i of
 *                 cos(x̂_i - mu_tok, x̂_j - mu_tok)        >= cover_tau
 * (mu_tok: the mean over every stored token). A question that drops a word
 * of the fact's ("alpha-3") fails; lower case, extra spaces, missing
 * punctuation and a system prompt keep each word's counterpart. Measured
 * (docs/ARCHITECTURE.md): at 0.2 the numeric-code and same-subject
 * questions are turned away and the variants kept; zsRE rewordings that
 * replace a word of the question are turned away too. Memories without
 * tokens (cover_tau NAN) skip the check. */
#define MEM_MAX_FACT_TOKENS 64
#define MEM_MAX_QUERY_TOKENS 1024 /* content tokens of a question the check reads (the last ones) */

/* Alternative keys (issue 8). The pooled key is a mean of token states, and
 * lower case changes the tokens themselves ("United" and "united" are
 * different tokens with different states): in the demo's one-template set, 7
 * of 100 lower-case questions scored another country higher than their own.
 * So the tuner also keeps the keys of the lower-cased question, and a fact's
 * score is the best over its keys: one more engine pass over the prompt per
 * fact in tuning, 2C more dot products per fact per question, 2C f16 per fact
 * in the file. */
#define MEM_MAX_ALT 4

/* The subject check (issue 8). A fact that names its "subject" (zsRE,
 * CounterFact and the demo's facts do) keeps it, and takes part in a
 * selection only when the question's text contains it as whole words
 * (ASCII case and runs of spaces ignored). The keys cannot tell "What is the
 * ISO 3166-1 alpha-3 code of Germany?" from the tuned "... of Austria?":
 * once centred, the template is gone and country names sit close together
 * (measured on the demo: 77% of the 149 untuned countries' questions took a
 * tuned country's code, 97% with the wording check at 0.2, whose token
 * states match one name to another). The text of the question decides it
 * exactly, costs a string search per question, and keeps lower case,
 * spaces, punctuation, system prompts and rewordings that name the subject
 * (993 of 1,000 zsRE rewordings). A question longer than MEM_SUBJECT_TEXT
 * bytes is searched in its last MEM_SUBJECT_TEXT bytes. */
#define MEM_MAX_SUBJECT 256  /* bytes of a fact's subject, normalised */
#define MEM_SUBJECT_TEXT 8192

/* The margin over the rival (mome tune --route-margin M, issue 8). Among many
 * facts of one style (3,000 NQ questions, lower case, no subject) a question
 * about something else always finds one above tau; but it finds many about as
 * close, where a question about a stored fact, reworded or not, finds its
 * own fact well ahead of the rest (measured at 11,000 facts: median margin
 * 0.020 for unrelated questions, 0.257 for zsRE rewordings). So with M > 0
 * the best fact is selected only when
 *   s_best - s_rival >= M   or   s_best >= MEM_MARGIN_SURE
 * where the rival is the best-scoring fact among the MEM_MARGIN_K best that
 * the question could also be asking about: another answer (facts with the
 * same answer do not make a question ambiguous: NQ holds the same question
 * asked twice) and a subject check that does not fail (other countries of a
 * one-template set are no rivals when the question names its country).
 * None among them: no rival. A score of MEM_MARGIN_SURE or more is the
 * stored question itself (its own key scores 1): two facts whose questions
 * differ by a word keep their recall. M = 0: no margin (the default;
 * docs/BENCHMARKS.md measures it).
 *
 * Calibrated per fact: a fact's contexts (a system prompt, an earlier
 * exchange) lower its score while its rivals stay, and in a set without
 * subjects (one template, or one style) the cost in contexts is large. So
 * the tuner keeps, per fact, the smallest lead its own contexts have over
 * their rivals (lead_f: every context the tuner makes, the trained ones and,
 * keys only, the others: lower case, no final mark, doubled spaces), and
 * fact f needs
 *   min(share * lead_f, M)
 * (the gate's rule, "every context it was trained in passes with room"):
 * share (default MEM_DEFAULT_MARGIN_SHARE) and M are the memory's, and
 * mome eval moves both without tuning again. A fact without a lead (NAN:
 * added without a margin, or no context met a rival) needs M. A lead is
 * measured when its fact is tuned: facts added later with --memory may
 * become rivals of its contexts (the contexts' keys are not kept in the
 * file; tuning the set again measures it anew). */
#define MEM_MARGIN_K 8
#define MEM_MARGIN_SURE 0.98f
#define MEM_DEFAULT_MARGIN_SHARE MOME_DEFAULT_MARGIN_SHARE /* mome.h */

/* The relation check (mome tune --verify T, issue 8; a new memory has it
 * by default since 2026-12-05, T = 0.5). Once the subject
 * check has found a candidate, what is left is the relation: "What will be
 * the product of X?" must fire the fact "What is the product made by X?",
 * "Who owns X?" must not. Measured layer by layer (bench/relation_keys.py,
 * 300 zsRE facts, f32): the last prompt token's state at the input of block
 * 18 of 30 tells them apart best (59% of rewordings pass at 99% of
 * same-subject questions turned away; block 24, the last key, 42%; every
 * rule over score and cover 48%). It is a poor index (34-46% top-1 among
 * 300 facts) and a good check, but read in place it moves with what precedes
 * the question (behind an unseen system prompt 37% of trained questions
 * passed at 98.5% of same-subject questions left alone, 100 facts in the
 * engine). So the state is read from the question asked alone: the user
 * turn's content tokens as a fresh one-message chat (the template's marks
 * around them), blocks 0..ver_layer - 1, in a context of its own
 * (forward.c, ctx_question_state; a question that opens the context is read
 * in place, the same bits): a system prompt or earlier turns leave it
 * bit-identical. Each fact keeps that state for its question
 * as given, lower-cased, without its final mark and with doubled spaces
 * (each once; at most MEM_MAX_VER, f16), and the selected fact needs
 *   verify(f, q) = max over f's states k of cos(W (x̂_q - c_f), W (k - c_f))
 *                >= ver_tau
 * What tells a rewording from another question about the subject is the
 * relation, so c_f is the fact's subject centre: the mean state of 2 other
 * questions about its subject (the tuner's templates; 8 in earlier files),
 * and W = (S + lambda
 * I)^(-1/2) whitens with S, the spread of such questions around their
 * subject's centre, pooled over the facts' subjects and 16 built-in ones
 * (lambda 0.1 x the mean eigenvalue). The state is the decision row's, or
 * (ver_pool, mome tune --verify-key relation) the mean x̂ over
 * the question's tokens that neither spell the fact's subject nor are
 * whitespace (mem_relation_feature). Measured in f32 on 300 zsRE facts
 * (bench/relation_whiten.py), rewordings passing at 99% of same-subject
 * questions turned away, block 18: decision row centred on one mean 0.570,
 * subject-centred and whitened 0.697; relation feature 0.510 and 0.773
 * (0.800 at block 14). In the engine, 998 zsRE facts, forced eval replayed
 * at 99% of same-subject questions and every zsRE loc left alone: relation
 * feature 0.720 at block 18, 0.730 at block 14, so the relation key reads
 * block 7L/15 (14 of 30; 22% less work per question pass) and the others
 * 3L/5. The meaning key (mome tune --verify-key meaning; ver_open /
 * ver_close) reads the question inside `This sentence : "Q" means in one
 * word:"` (PromptEOL: the state that predicts a one-word summary of the
 * sentence) at its last token, block 12L/15 (24 of 30): 998 zsRE facts, the
 * same replay, 0.797 of rewordings at same-subject 0.991 (`loc` 0.999),
 * 0.779 with score >= 0.6 (`loc` 1.000); with 8 centre questions and block
 * 26, 0.816 at 0.990 and 0.791 at 0.991, for 2.4x the tuner's check time
 * (1,010 s against 721 s for the whole tune). Its pass is its
 * own (never read in place; the wrapper's opening is decoded once per
 * context) and runs 24 blocks, so the check's block may lie above the value
 * block.
 * Facts without a subject use c_f = mu_ver (the mean over the
 * tuned facts' states and the tuner's unrelated questions'); a memory
 * without W (mome tune --verify-key centred, files before 2026-12-04) uses
 * W = I, c_f = mu_ver for every fact. Facts without states are not
 * checked; ver_tau NAN: no check. Siblings: when facts that keep the same
 * subject are among the MEM_MARGIN_K best and reach tau, the one whose check
 * scores highest is taken as the best (rank_siblings in memory.c): the key
 * score ranks what is asked about, the check ranks which relation (300 demo
 * facts, three codes per country: paraphrases answered with a sibling's code
 * 275 of 600 by key score alone; docs/BENCHMARKS.md has the figures with
 * it). Cost: one pass of the question alone through ver_layer blocks per
 * decision row, 5 C x C products per checked fact. */
#define MEM_MAX_VER 8
/* Facts whose question names no subject (NQ-style questions, the CLI's plain
 * question/answer files) have no subject check, so the relation check is
 * all that tells an unrelated question in their style from a rewording:
 * they need verify >= max(ver_tau, ver_tau_unnamed). Measured on 1,000 NQ +
 * 998 zsRE facts tuned together (docs/BENCHMARKS.md, replayed): at
 * ver_tau 0.5 and score >= 0.6, 56 of 998 unrelated `loc` questions took an
 * NQ fact's answer (`loc` 0.944); with the subject-less facts at 0.85 /
 * 0.9 / 0.92, `loc` 0.995 / 0.997 / 1.000, with zsRE rewordings (0.786),
 * same-subject questions and every NQ recall, context and variant
 * unchanged (a context or variant is read alone or stored, so it scores
 * ~1). The threshold they need grows with their number: beside 10,000
 * subject-less facts `loc` is 0.985 / 0.990 / 0.996 at 0.9 / 0.92 / 0.94
 * (3 of the 4 answers 0.94 still changes are rewordings of a stored NQ
 * question), hence 0.94. The price is those facts' own rewordings (100
 * zsRE facts stripped of subjects: 0.44 at 0.9, 0.23 at 0.94). A threshold
 * of -1 still checks nothing. */
#define MEM_DEFAULT_VERIFY_UNNAMED MOME_DEFAULT_VERIFY_UNNAMED /* mome.h */
/* The check's threshold for fact f (-INFINITY: no check). */
float mem_verify_tau(const mome_memory *mem, int f);
#define MEM_QUESTION_TOKENS 256 /* content tokens the check reads (the last ones) */

/* Why a decision went as it did: the best fact by key score, selected or
 * not, and its checks. */
typedef struct mem_cand {
    int32_t best;  /* -1: empty memory */
    float score;   /* its key score (-inf: none) */
    float gate;    /* its relation gate (+inf: no gate) */
    float cover;   /* its wording check (+inf: no check) */
    int subject;   /* its subject check: 1 the question names it, 0 it does not, -1 no check */
    float second;  /* the key score of the next best fact (-inf: none): how far the best stands out */
    float rival;   /* the key score of its rival (-inf: none): the margin's runner-up (memory.h) */
    float margin;  /* the lead over the rival it needs (0: none) */
    float verify;  /* its relation check (+inf: no check) */
} mem_cand;
/* No decision yet. */
#define MEM_CAND_NONE ((mem_cand){-1, -INFINITY, INFINITY, INFINITY, -1, -INFINITY, -INFINITY, 0.0f, INFINITY})

/* Token sequences of the chat template around a user message. */
typedef struct mem_marks {
    int32_t user_open[MEM_MAX_MARK]; /* tokens before the user's content (e.g. <|im_start|> user \n) */
    int n_user_open;
    int32_t head[MEM_MAX_MARK];      /* tokens after it, up to the answer; head[0] closes the turn */
    int n_head;
} mem_marks;

struct mome_memory {
    char base_sha256[65];
    char *base_name;
    int32_t n_embd, n_layer, n_vocab;
    int32_t key_layer, value_layer;   /* lk < lv */
    float tau;                         /* selection threshold on the score */
    float w_pool;                      /* weight of the pooled key in the score */
    int32_t top_k;                     /* facts mixed per question, 1..MEM_MAX_K (1: version 2) */
    float mix_temp;                    /* T of the mixture weights softmax(s / T), > 0 */
    float mix_tau;                     /* score the facts but the best need to join the mixture (NAN: tau) */
    float margin;                      /* the best must lead its rival by this at most (0: no margin) */
    float margin_share;                /* and by this share of its contexts' lead */
    float *mu_pool, *mu_last;          /* (C) centres */
    /* facts */
    int32_t n_facts, cap_facts;
    int32_t n_frozen;                  /* facts that came from an earlier memory */
    float *kpool, *klast;              /* (n, C) raw keys (x̂ means / x̂), as measured */
    float *cpool, *clast;              /* (n, C) centred unit keys (derived) */
    /* alternative keys: the same fact asked in a wording the tuner generated
     * (lower case); a fact scores the best of its keys (mem_best_k) */
    int32_t *n_alt;                    /* (cap_facts) alternative keys of fact f, 0..MEM_MAX_ALT */
    int64_t *alt_off;                  /* (cap_facts) first row of fact f's in akpool / aklast */
    float *akpool, *aklast;            /* (n_alt_total, C) raw, as measured */
    float *acpool, *aclast;            /* (n_alt_total, C) centred unit (derived) */
    int64_t n_alt_total, cap_alt;
    int32_t alt_last;                  /* the fact the last alternative key went to (-1: none) */
    int32_t *n_ans;                    /* (n) answer tokens */
    int64_t *ans_off;                  /* (n) first answer token in ans; its rows start at ans_off + f */
    int32_t *ans;                      /* answer tokens, concatenated */
    int64_t n_ans_total, cap_ans;
    float *val;                        /* (R, C) expert values */
    int64_t cap_rows;
    /* relation gate (none when gate_w is NULL) */
    float *gate_w;                     /* (C) */
    float *gate_bias;                  /* (n_gate_bias) per fact; facts added after the fit have none */
    int32_t n_gate_bias;
    float *gneg;                       /* (n_gneg, C) raw last keys of rejected questions */
    int32_t n_gneg;
    /* wording check (none when cover_tau is NAN) */
    float cover_tau;                   /* a fact passes when cover(f, q) >= cover_tau */
    float *mu_tok;                     /* (C) mean of the stored token states (derived) */
    int32_t *n_tok;                    /* (cap_facts) content tokens kept per fact (0: the fact is not checked) */
    int64_t *tok_off;                  /* (cap_facts) first row of fact f in ktok */
    uint16_t *ktok;                    /* (n_tok_total, C) x̂ at the key block of the facts' content tokens, f16 */
    int64_t n_tok_total, cap_tok;
    /* subject check (a fact with subj_len 0 is not checked) */
    int32_t *subj_len;                 /* (cap_facts) bytes of fact f's subject, normalised */
    int64_t *subj_off;                 /* (cap_facts) its first byte in subj */
    char *subj;                        /* the subjects, concatenated */
    int64_t n_subj_total, cap_subj;
    float *flead;                      /* (cap_facts) fact f's contexts' smallest lead over their rivals (NAN: none) */
    /* relation check (none when ver_layer < 0) */
    int32_t ver_layer;                 /* the block whose input at the decision row is kept, < value_layer
                                          (any below the last with ver_open) */
    float ver_tau;                     /* a fact passes when verify(f, q) >= ver_tau (NAN: no check) */
    float ver_tau_unnamed;             /* ... a fact without a subject when >= max(ver_tau, this) (mem_verify_tau) */
    float *mu_ver;                     /* (C) centre */
    int32_t *n_ver;                    /* (cap_facts) states kept per fact, 0..MEM_MAX_VER (0: not checked) */
    int64_t *ver_off;                  /* (cap_facts) first row of fact f in kver */
    uint16_t *kver;                    /* (n_ver_total, C) x̂ at the input of ver_layer, f16 */
    int64_t n_ver_total, cap_ver;
    int32_t ver_last;                  /* the fact the last states went to (-1: none) */
    int32_t ver_pool;                  /* 1: the state is the relation feature (mem_relation_feature), 0: the decision row's */
    int32_t ver_open[MEM_MAX_MARK];    /* the text the check reads the question in (n_ver_open 0: the chat's own */
    int32_t ver_close[MEM_MAX_MARK];   /* marks, mk; --verify-key meaning: This sentence : "Q" means in one word:") */
    int32_t n_ver_open, n_ver_close;
    float *ver_w;                      /* (C, C) symmetric whitening W (NULL: none, every fact centred with mu_ver) */
    uint16_t *ver_ctr;                 /* (cap_facts, C) each fact's centre with W, f16 (NULL with ver_w) */
    mem_marks mk;
    int32_t *piece_off;                /* (n_vocab + 1) each token's text in pieces, ASCII lower case (bound) */
    char *pieces;
    uint8_t *blank;                    /* (n_vocab) 1: the token is whitespace only (left out of the pool) */
    uint8_t *content;                  /* (n_vocab) 1: the token has a letter or digit (the wording check's tokens) */
};

/* The question the wording check reads: the rows h (raw, at the key block)
 * of its content span and their tokens. */
typedef struct mem_query {
    const float *rows;     /* (n, C) */
    const int32_t *tokens; /* (n); NULL: every row is a content token */
    int32_t n;
    const char *text;      /* the question's text for the subject check (NULL: the tokens' text) */
    const float *ver;      /* (C) x̂ at the input of ver_layer at the decision row (NULL: no relation check) */
    const float *ver_rows; /* (n, C) raw x at the input of ver_layer of the content tokens, question alone (ver_pool) */
} mem_query;

/* The facts a question selected that are still followed, best score first,
 * with unnormalised weights e_i = exp((s_i - s_max) / T) (renormalised over
 * the facts present where they are used). */
typedef struct mem_mix {
    int32_t n;                 /* 0: none */
    int32_t fact[MEM_MAX_K];
    float e[MEM_MAX_K];
} mem_mix;

/* Per-position routing state of a context (see forward.c). */
typedef struct mem_pos {
    int32_t pool_start;   /* first content token of the open user turn, -1 if none */
    int32_t span0, span1; /* content tokens of the last closed user turn [span0, span1), span0 < 0: none */
    int32_t head_i;       /* tokens of the assistant header matched after that turn */
    int32_t row;          /* the answer row of the facts in the mixture at this position */
    mem_mix mix;          /* the selected facts still followed (mix.n = 0: none) */
} mem_pos;

/* The template's marks for m's chat template; error if it cannot be used. */
int mem_marks_from_model(const mome_model *m, mem_marks *mk);
/* What the memory needs from the model it runs on: the marks and which
 * tokens are whitespace only (extra spaces do not move the pooled key). */
int mem_bind_model(mome_memory *mem, const mome_model *m);

/* An empty memory for m with keys at block key_layer and values at value_layer. */
int mem_new(mome_model *m, int key_layer, int value_layer, mome_memory **out);
/* Appends a fact with zero values; returns its index or < 0. */
int mem_add_fact(mome_memory *mem, const float *kpool, const float *klast, const int32_t *ans, int n_ans);
/* Adds an alternative key pair (raw, as mem_add_fact's) to fact f; facts
 * get theirs in order (f no lower than the last fact given one), at most
 * MEM_MAX_ALT each; 0 or < 0. */
int mem_add_alt_key(mome_memory *mem, int f, const float *kpool, const float *klast);
/* The (n_ans + 1, C) values of fact f. */
float *mem_values(const mome_memory *mem, int f);
/* Sets mu_pool / mu_last (C each) and recomputes the centred keys. */
int mem_set_centres(mome_memory *mem, const float *mu_pool, const float *mu_last);

/* x̂ = h / rms(h), rms(h) = sqrt(mean(h^2) + eps); returns rms(h). */
float mem_rms_normalize(const float *h, float *xhat, int32_t C);
/* The best fact for raw keys (pool, last) and its score (the best over the
 * fact's own and alternative keys); -1 when the memory is empty. q (2C) is
 * scratch. Ties go to the later fact. */
int mem_best(const mome_memory *mem, const float *pool, const float *last, float *q, float *score);
/* The k best facts (k <= MEM_MAX_K) by score, best first, ties to the later
 * fact (mem_best is k = 1): their indices in idx and scores in score;
 * returns how many (min(k, facts)). q (2C) is scratch, left as mem_best
 * leaves it. */
int mem_best_k(const mome_memory *mem, const float *pool, const float *last, int k, float *q, int32_t *idx, float *score);
/* Stores the question tokens of fact f (< n_facts, which has none yet):
 * the raw key-block rows (n, C) of its content span and their tokens; the
 * content ones are kept (at most MEM_MAX_FACT_TOKENS). Call
 * mem_update_tok_centre after the last fact. */
int mem_set_fact_tokens(mome_memory *mem, int f, const mem_query *q);
/* Fact f's stored question tokens as rows (x̂, f32) into rows
 * (MEM_MAX_FACT_TOKENS x C); *n = how many. */
void mem_fact_tokens(const mome_memory *mem, int f, float *rows, int32_t *n);
/* mu_tok = the mean of every stored token state; 0 or MOME_ERR_NOMEM. */
int mem_update_tok_centre(mome_memory *mem);
/* cover(f, q) (the comment above); +INFINITY when the memory has no check
 * or f kept no tokens, -1 when q has no content token. scratch:
 * MEM_COVER_SCRATCH(C) floats. */
float mem_cover(const mome_memory *mem, int f, const mem_query *q, float *scratch);
#define MEM_COVER_SCRATCH(C) ((2 + (size_t)MEM_MAX_FACT_TOKENS) * (size_t)(C) + MEM_MAX_FACT_TOKENS)

/* Stores fact f's subject (the newest fact, which has none yet),
 * normalised, when its question names it (the check could never pass
 * otherwise) and it is 1..MEM_MAX_SUBJECT bytes once normalised: 1 stored,
 * 0 not (the fact is not checked), < 0 an error. */
int mem_set_fact_subject(mome_memory *mem, int f, const char *subject, const char *question);
/* The subject check of fact f for the question q (its text, or its tokens'
 * text): 1 passes, 0 the question does not name the subject, -1 f has no
 * subject or q neither text nor tokens (no check). */
int mem_subject_check(const mome_memory *mem, int f, const mem_query *q);

/* Turns the relation check on at block layer (1 <= layer < value_layer)
 * with threshold tau (NAN: states kept, no check), for a memory without
 * states yet. */
int mem_verify_init(mome_memory *mem, int layer, float tau);
/* Read the check's question between open and close instead of the chat's
 * marks (before any state is kept; 1..MEM_MAX_MARK tokens each; none of
 * either: the chat's marks again). The pass then never reads in place, so
 * the check's block may be any below the last. */
int mem_set_verify_wrap(mome_memory *mem, const int32_t *open, int n_open, const int32_t *close, int n_close);
/* Stores fact f's states x̂ (n, C; n <= MEM_MAX_VER; f16 as the file keeps
 * them); facts get theirs in order (f after the last fact given some), once. */
int mem_set_fact_verify(mome_memory *mem, int f, const float *rows, int n);
/* The last decision row of the tokens (n) and the content span of its
 * question [*span0, *span1); -1 when there is none. */
int mem_find_question(const mome_memory *mem, const int32_t *toks, int n, int32_t *span0, int32_t *span1);
/* mu_ver (C); the fact's states are centred with it when checked. */
int mem_set_verify_centre(mome_memory *mem, const float *mu);
/* The whitened check (memory.h's relation-check comment): W (C, C,
 * symmetric), then each fact's centre in order of the facts, every fact of
 * the memory once (facts without a subject: mu_ver). */
int mem_set_verify_whiten(mome_memory *mem, const float *w);
int mem_set_fact_verify_centre(mome_memory *mem, int f, const float *centre);
/* verify(f, q) (the comment above) for the state x̂ (C) of a question;
 * +INFINITY when the memory has no check, f kept no state or x̂ is NULL.
 * scratch: 4C floats. */
float mem_verify(const mome_memory *mem, int f, const float *xhat, float *scratch);
/* The relation feature of a question (ver_pool): the mean x̂ over its
 * content tokens (n; rows: raw x at ver_layer, question alone) that neither
 * spell the subject (as the subject check finds it; NULL: none) nor are
 * whitespace, into out (C). */
int mem_relation_feature(const mome_memory *mem, const char *subject, const int32_t *tokens, int n, const float *rows, float *out);
/* verify(f, q) with the memory's state: q->ver, or (ver_pool) the relation
 * feature of q's tokens with f's subject; scratch: 5C floats. */
float mem_verify_query(const mome_memory *mem, int f, const mem_query *q, float *scratch);

/* The lead over its rival fact f needs to be selected: min(share * lead_f,
 * M), M when it has no lead (0: none). */
float mem_fact_margin(const mome_memory *mem, int f);
/* Sets fact f's lead (NAN: none; else 0..2). */
int mem_set_fact_lead(mome_memory *mem, int f, float lead);

/* The mixture a question with raw keys (pool, last) and content tokens qt
 * (NULL: no wording or subject check) selects: the one rule of the engine
 * and the tuner (memory.h's top comment): a fact takes part when its score,
 * its gate, its wording check and its subject check pass. force >= 0 (the
 * tuner, training a fact under its own keys): that fact is in the mixture
 * whatever its score, gate and wording, in the place of the k-th best if it
 * is not among the k. cand (may be NULL): the best fact by score and its
 * checks, selected or not. q (MEM_SELECT_SCRATCH(C) floats) is scratch.
 * Returns mix->n (0: the memory stays silent). */
#define MEM_SELECT_SCRATCH(C) (2 * (size_t)(C) + MEM_COVER_SCRATCH(C))
int mem_mix_select(const mome_memory *mem, const float *pool, const float *last, const mem_query *qt, int force, float *q,
                   mem_mix *mix, mem_cand *cand);
/* The facts of `in` that go on after `tok` is fed at answer row `row` (the
 * token is their answer token `row`); out may be in. Returns out->n. */
int mem_mix_follow(const mome_memory *mem, const mem_mix *in, int32_t row, int32_t tok, mem_mix *out);
/* a_i = e_i / sum_j e_j for the n facts of a mixture (a_0 = 1 when n = 1). */
void mem_mix_weights(const float *e, int n, float *a);
/* The gate's value for fact f and a centred unit last key (as mem_best
 * leaves it in q + C); +INFINITY when the memory or the fact has no gate.
 * Selected only when >= 0. */
float mem_gate(const mome_memory *mem, int f, const float *last_c);
/* Keeps the raw last key of a question the gate must reject; 0 when kept, 1
 * when MEM_GATE_MAX_NEG are already kept. */
int mem_gate_add_negative(mome_memory *mem, const float *klast);
/* Fits the gate: accept the raw last keys pos (n_pos, C) of the facts
 * pos_fact (n_pos), reject the kept negatives (balanced logistic loss, L2
 * 1e-2, full-batch gradient descent, deterministic); then each fact's bias
 * lets its own keys pass with at least `margin` (logits). No negatives: no
 * gate. */
int mem_gate_fit(mome_memory *mem, const float *pos, const int32_t *pos_fact, int n_pos, float margin);

/* x = h + rms(h) * v for one row (x may be h); returns rms(h). The one
 * definition of an expert's output, for the engine and the tuner; its
 * gradient is dL/dv = rms(h) * dL/dx. */
float mem_value_row(const float *h, const float *v, float *x, int C);
/* x = h + rms(h) * sum_i a_i v_i for the n facts of a mixture on one row
 * (v: their value rows; a = mem_mix_weights(e)); written to a if a is not
 * NULL; x may be h; returns rms(h). One fact: exactly mem_value_row. The one
 * definition of the mixture's output; its gradient is dL/dv_i =
 * a_i rms(h) dL/dx. */
float mem_mix_row(const float *h, const float *const *v, const float *e, int n, float *x, int C, float *a);
/* h += the mixture's output on answer row `row` (mem_mix_row). */
void mem_apply_mix(const mome_memory *mem, const mem_mix *mix, int row, float *h);

/* The routing step of position pos: from the states of positions 0..pos-1
 * (hist) and the tokens of positions 0..pos (toks), the new state. Returns 1 when this position is a
 * decision row (the keys are to be computed and mem_mix_select consulted;
 * the caller then sets out->mix and out->row), 0 otherwise. An answer in
 * progress is already continued in out->mix / out->row (mem_mix_follow). */
int mem_pos_next(const mome_memory *mem, const mem_pos *hist, const int32_t *toks, int32_t pos, mem_pos *out);

/* Save (GGUF, atomic). f16: values as f16 (finished memories); f32 keeps them
 * exact (checkpoints). */
int mem_save(const mome_memory *m, const char *path, int f16);
/* A tuning checkpoint: the memory in f32 and the tuner's whole state, so
 * that a resumed run continues exactly as the uninterrupted one would have
 * (same memory file bit for bit, tested in tests/cli/test_tune.sh). */
enum mem_ckpt_fact {           /* ckpt.state codes (0 and 1 as in older checkpoints) */
    MEM_CKPT_TRAINING = 0,
    MEM_CKPT_VERIFIED = 1,
    MEM_CKPT_LEARNED = 2,      /* learned in training, not yet verified */
    MEM_CKPT_GIVEN_UP = 3,
};
typedef struct mem_ckpt_meta {
    int n;                 /* facts of the run */
    int32_t *state;        /* (n) enum mem_ckpt_fact */
    float *target_loss;    /* (n) */
    int64_t step;
    double seconds;
    /* the optimizer and the batch order; absent (NULL, 0) in checkpoints
     * written before they were saved, which then resume from fresh moments */
    int32_t *n_fail, *adam_t;  /* (n) */
    float *loss;               /* (n) */
    int32_t cursor;
    float *adam;               /* (2 * n_adam_rows, C): the run's facts' first moments, then their second */
    int64_t n_adam_rows;       /* answer rows (sum of T) of the run's facts */
    int32_t *recheck;          /* (n) or NULL: 1 = verified, to verify again (a fact of its mixture changed) */
} mem_ckpt_meta;
/* Frees meta's arrays. */
void mem_ckpt_meta_free(mem_ckpt_meta *meta);
int mem_save_ckpt(const mome_memory *m, const char *path, const mem_ckpt_meta *meta);
/* Loads a checkpoint; meta's arrays are malloc'd (the caller frees them). */
int mem_load_ckpt(const char *path, mome_model *model, mome_memory **out, mem_ckpt_meta *meta);
/* Rounds the values to f16 and back, as a saved file holds them. */
void mem_round_f16(mome_memory *m);

#endif
