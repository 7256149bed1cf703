"""Words as the assistant counts them: the tokenizer, the stemmer and how much a word says.

The keyword index, retrieval, the extractive engine, citations and eval all read text through these rules, so a
word means the same thing everywhere; the keyword index hashes `tokenize`'s source into its tokenizer version.
"""

from __future__ import annotations

import functools
import re
import unicodedata

_WORD = re.compile(r"\w+(?:[.'’-]\w+)*", re.UNICODE)
MARKS = "\u0300-\u036f"  # the combining accents ("a" + U+0301 for "á"), as a character-class range
_LATIN_MARKS = re.compile(f"(?<=[A-Za-z])[{MARKS}]+")  # accents on a Latin letter, once decomposed
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves said says say
also after would could new one two its it's s t don't
""".split())


def tokenize(text: str) -> list[str]:
    """Lowercased words and numbers without stopwords; light plural folding keeps names intact.

    Accents on Latin letters are dropped, so a name is one word however it is typed or encoded ("Renée"
    written with é, with e and a combining accent, or as "Renee"); other scripts keep their marks.
    """
    out = []
    for m in _WORD.finditer(fold_accents(text.lower())):
        w = m.group().replace("’", "'")
        if w.endswith("'s"):
            w = w[:-2]
        w = w.replace(".", "") if len(w) <= 6 and "." in w else w  # u.s. -> us, a.m. -> am
        if w in STOPWORDS or not w:
            continue
        if len(w) > 4 and w.endswith("s") and not w.endswith(("ss", "us", "is")) and not w[0].isdigit():
            w = w[:-1]
        out.append(w)
    return out


def fold_accents(text: str) -> str:
    """Text without the accents of its Latin letters ("Erdoğan" -> "Erdogan"); other scripts keep their marks."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFC", _LATIN_MARKS.sub("", unicodedata.normalize("NFD", text)))


_SUFFIX = re.compile(r"(ing|ed|ly|es|s)$")
_ORIGIN = re.compile(r"(ese|ian|ean|an|ia|a|i|e)$")  # China/Chinese, Iran/Iranian, Israel/Israeli


def stem(term: str) -> str:
    """A crude stem (suffix cut, then a 6-letter prefix) so 'military'/'militarily', 'offer'/'offered' meet,
    and a place meets its people ('China'/'Chinese', 'Russia'/'Russian', 'Ukraine'/'Ukrainian')."""
    if len(term) <= 4 or term[0].isdigit():
        return term
    t = _SUFFIX.sub("", term)
    cut = _ORIGIN.sub("", t)
    return (cut if len(cut) >= 4 else t)[:6]


# wordfreq's lists by script: a word's information is judged against its own language's frequencies.
_SCRIPTS = (("ru", re.compile(r"[\u0400-\u04FF]")), ("ar", re.compile(r"[\u0600-\u06FF]")),
            ("he", re.compile(r"[\u0590-\u05FF]")), ("el", re.compile(r"[\u0370-\u03FF]")))
MAX_INFORMATION = 7.5  # a word no list knows (a rare name, a code): as informative as a word can be


@functools.lru_cache(maxsize=50_000)
def information(term: str) -> float:
    """How much a word says, from its frequency in general text (wordfreq's Zipf scale, 0 to about 7.5):
    'the' 0.3, 'military' 2.3, 'Peskov' 5.6, an unknown name 7.5; never below 0.5.

    Unlike IDF from the archive, it does not depend on what the archive holds, so a score built on it means
    the same on a one-article archive and on a million-chunk one.
    """
    from wordfreq import zipf_frequency

    lang = next((code for code, script in _SCRIPTS if script.search(term)), "en")
    return max(0.5, MAX_INFORMATION - zipf_frequency(term, lang))


@functools.lru_cache(maxsize=20_000)
def token_set(text: str) -> frozenset[str]:
    """`tokenize` as a set, memoized: reranking and confidence look at the same passages and sentences again
    within a question and across questions."""
    return frozenset(tokenize(text))
