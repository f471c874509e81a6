"""relation_common.py - what the relation-check studies (relation_whiten.py,
relation_meaning.py, relation_centre.py) share with the engine: the wordings of
a question the check stores (src/tune.c keeps each once: as given, lower
case, without its final mark, with doubled spaces), the same-subject
questions bench_generalization.sh asks (SAME, two per fact) and the tuner's
subject-centre templates (CENTRE: relation_templates[0, 2, .., 14] in
src/tune.c; a fact's subject takes the first 2, its centre subjects all 8).
unique=False keeps all 4 (a repeated wording does not change a best cosine,
and a study can stack them as 4 rows; zsRE's questions all end in a mark)."""


def wordings(q, unique=True):
    w = [q, q.lower()]
    if q and q[-1] in "?.!":
        w.append(q[:-1])
    w.append(q.replace(" ", "  "))
    return list(dict.fromkeys(w)) if unique else w


SAME = ["Who owns %s?", "What is the official website of %s?", "Where did %s die?",
        "What award did %s receive?", "Who is married to %s?", "What is %s made of?"]
CENTRE = ["What is the population of %s?", "Who founded %s?", "What is %s known for?", "What is the currency of %s?",
          "How big is %s?", "When was %s born?", "Who created %s?", "What is the climate like in %s?"]


def check_scores(X, whiten=True, ridge=0.1, stored=(0, 1, 2, 3), k=8, spread=None, variants=False):
    """The relation check's scores of one state, as the engine computes them
    (memory.h): X is F x 15 x C per fact (0-3 its 4 wordings, 4 its
    rephrase, 5-6 two same-subject questions, 7-14 its CENTRE questions).
    Whitened: take away the fact's subject centre (mean of its first k
    CENTRE rows) and whiten with W = (S + ridge mean(eig S) I)^(-1/2), S the
    spread around the centres: of all facts' k rows (spread=None, with k=8
    the studies before relation_centre.py), or of their k rows pooled with
    the last `spread` facts' 8 (standing in for src/tune.c's centre_subjects,
    8 questions each); else centre on the mean of the stored wordings. A
    question scores the best cosine to its fact's `stored` wordings. Returns
    (rephrase scores F, same-subject scores F x 2), and with variants=True
    also the 4 wordings' scores (F x 4; a stored one scores 1)."""
    import torch
    F, C = X.shape[0], X.shape[-1]
    tm = X[:, 7:15]
    if whiten:
        ctr = tm[:, :k].mean(1)
        D = (tm[:, :k] - ctr[:, None]).reshape(-1, C) if k > 1 else X.new_zeros(0, C)
        if spread:
            fx = tm[-spread:]
            D = torch.cat([D, (fx - fx.mean(1, keepdim=True)).reshape(-1, C)])
        ev, evec = torch.linalg.eigh(D.T @ D / D.shape[0])
        ev = ev.clamp(min=0)
        W = evec @ torch.diag((ev + ridge * ev.mean()) ** -0.5) @ evec.T
    else:
        W = torch.eye(C)
        ctr = X[:, list(stored)].reshape(-1, C).mean(0).expand(F, -1)
    f = lambda v: torch.nn.functional.normalize((v - ctr[:, None]) @ W, dim=-1)
    S = f(X[:, list(stored)])
    g = lambda q: (f(q)[:, :, None] * S[:, None]).sum(-1).max(-1).values
    out = (g(X[:, 4:5])[:, 0], g(X[:, 5:7]))
    return out + (g(X[:, 0:4]),) if variants else out


def turned_away(neg, q):
    """The threshold that turns away the share q of the same-subject
    questions' scores (neg): a question passes when it scores above it."""
    s = neg.flatten().sort().values
    return s[min(len(s) - 1, int(q * len(s)))]


def frontier_row(name, pos, neg):
    """A table row: the share of rewordings (pos) passing the threshold that
    turns away 95 / 97 / 98 / 99% of the same-subject questions (neg), and the AUC."""
    cells = ["%.3f" % (pos > turned_away(neg, q)).float().mean() for q in (0.95, 0.97, 0.98, 0.99)]
    return "| %s | %s | %.3f |" % (name, " | ".join(cells), (pos[:, None, None] > neg[None]).float().mean())
