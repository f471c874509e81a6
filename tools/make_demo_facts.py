#!/usr/bin/env python3
"""make_demo_facts.py - build the demo's fact set from Debian's iso-codes.

Reads /usr/share/iso-codes/json/iso_3166-1.json (Debian package iso-codes,
present on every Debian machine) and writes one JSON line per country:

  {"question": "What is the ISO 3166-1 alpha-3 code of Peru?", "answer": "PER",
   "paraphrases": ["Which three-letter ISO 3166-1 code does Peru have?",
                   "Peru's ISO alpha-3 country code is what?"],
   "subject": "Peru"}

The country name is the entry's common_name when it has one ("Bolivia"),
else its name ("Peru"). Countries are sorted by alpha-2 code and then
shuffled with a fixed seed, so the output is the same on every machine with
the same iso-codes version; --limit N keeps the first N of that order.

--neighbors FILE also writes the questions a memory of these facts must
leave to the model (locality, issue 8), one JSON line each with answer "-":
the same question about every country left out by --limit (other subjects,
the same relation), the capital and the numeric code of each country in the
set (the same subjects, other relations; for --kind numeric, the alpha-3
code), and 12 unrelated questions.

Usage: make_demo_facts.py [--kind alpha3|alpha2|numeric] [--limit N]
                          [--seed S] [--source FILE] [--out FILE]
                          [--neighbors FILE]
Python 3 standard library only.
"""
import argparse
import json
import os
import random
import sys
import tempfile

DEFAULT_SOURCE = "/usr/share/iso-codes/json/iso_3166-1.json"
DEFAULT_SEED = 3166

KINDS = {
    "alpha3": {
        "field": "alpha_3",
        "question": "What is the ISO 3166-1 alpha-3 code of {name}?",
        "paraphrases": ["Which three-letter ISO 3166-1 code does {name} have?",
                        "{name}'s ISO alpha-3 country code is what?"],
    },
    "alpha2": {
        "field": "alpha_2",
        "question": "What is the ISO 3166-1 alpha-2 code of {name}?",
        "paraphrases": ["Which two-letter ISO 3166-1 code does {name} have?",
                        "{name}'s ISO alpha-2 country code is what?"],
    },
    "numeric": {
        "field": "numeric",
        "question": "What is the ISO 3166-1 numeric code of {name}?",
        "paraphrases": ["Which three-digit ISO 3166-1 numeric code does {name} have?",
                        "{name}'s ISO numeric country code is what?"],
    },
}


def die(msg):
    print("make_demo_facts: " + msg, file=sys.stderr)
    sys.exit(1)


def load_countries(source):
    try:
        with open(source, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        die("%s not found: the iso-codes package is not installed "
            "(install it with: sudo apt-get install iso-codes)" % source)
    except (OSError, ValueError) as e:
        die("cannot read %s: %s" % (source, e))
    countries = data.get("3166-1") if isinstance(data, dict) else None
    if not isinstance(countries, list) or not countries:
        die("%s: no '3166-1' list of countries in the file" % source)
    return countries


UNRELATED = ["How do I sort a list in Python?", "What is the boiling point of water?", "Tell me a joke.",
             "Who wrote Pride and Prejudice?", "What is 15 times 4?", "Write a short poem about rain.",
             "What does CPU stand for?", "How many days are in a leap year?", "What is the tallest animal?",
             "Explain what a noun is.", "What is the speed of light?", "Name three primary colors."]


def neighbors(countries, kind, seed, limit):
    """Questions a memory of build(...)'s facts must leave alone."""
    every = build(countries, kind, seed, None)
    kept = every[:limit] if limit is not None else every
    other = "alpha3" if kind == "numeric" else "numeric"
    out = [f["question"] for f in every[len(kept):]]
    for f in kept:
        out.append("What is the capital of %s?" % f["subject"])
        out.append(KINDS[other]["question"].format(name=f["subject"]))
    out += UNRELATED
    return [{"question": q, "answer": "-"} for q in out]


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=".make_demo_facts.", dir=d)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)   # mkstemp makes 0600 files
        os.replace(tmp, path)   # atomic: readers never see a half-written file
    except OSError as e:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
        die("cannot write %s: %s" % (path, e))


def build(countries, kind, seed, limit):
    spec = KINDS[kind]
    rows = []
    seen = set()
    for c in countries:
        name = c.get("common_name") or c.get("name")
        code = c.get(spec["field"])
        if not name or not code or not c.get("alpha_2"):
            continue
        if name in seen:          # never emit the same question twice
            continue
        seen.add(name)
        rows.append((c["alpha_2"], name, code))
    rows.sort()
    random.Random(seed).shuffle(rows)
    if limit is not None:
        rows = rows[:limit]
    out = []
    for _, name, code in rows:
        out.append({
            "question": spec["question"].format(name=name),
            "answer": code,
            "paraphrases": [p.format(name=name) for p in spec["paraphrases"]],
            "subject": name,
        })
    return out


def main():
    ap = argparse.ArgumentParser(description="Build the demo fact set (JSON lines) from iso-codes.")
    ap.add_argument("--kind", choices=sorted(KINDS), default="alpha3",
                    help="which code the answer is (default alpha3)")
    ap.add_argument("--limit", type=int, default=None, help="keep only the first N facts")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help="shuffle seed (default %d)" % DEFAULT_SEED)
    ap.add_argument("--source", default=DEFAULT_SOURCE, help="iso_3166-1.json (default %(default)s)")
    ap.add_argument("--out", default="-", help="output file (default: standard output)")
    ap.add_argument("--neighbors", default=None,
                    help="also write the questions the memory must leave alone to this file")
    a = ap.parse_args()
    if a.limit is not None and a.limit < 1:
        die("--limit must be at least 1")

    countries = load_countries(a.source)
    facts = build(countries, a.kind, a.seed, a.limit)
    if not facts:
        die("%s: no countries with a %s code" % (a.source, a.kind))
    if a.neighbors:
        nb = neighbors(countries, a.kind, a.seed, a.limit)
        write_atomic(a.neighbors, "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in nb))
        print("make_demo_facts: wrote %d neighbour questions to %s" % (len(nb), a.neighbors), file=sys.stderr)
    text = "".join(json.dumps(f, ensure_ascii=False) + "\n" for f in facts)
    if a.out == "-":
        sys.stdout.write(text)
        return
    write_atomic(a.out, text)
    print("make_demo_facts: wrote %d %s facts to %s" % (len(facts), a.kind, a.out), file=sys.stderr)


if __name__ == "__main__":
    main()
