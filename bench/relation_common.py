"""relation_common.py - what the relation-check studies (relation_features.py,
relation_whiten.py) share with the engine: the wordings of a question the check
stores (src/tune.c keeps each once: as given, lower case, without its final
mark, with doubled spaces).  unique=False keeps all 4 (a repeated wording
does not change a best cosine, and a study can stack them as 4 rows)."""


def wordings(q, unique=True):
    w = [q, q.lower()]
    if q and q[-1] in "?.!":
        w.append(q[:-1])
    w.append(q.replace(" ", "  "))
    return list(dict.fromkeys(w)) if unique else w
