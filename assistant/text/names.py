"""The names in a text: runs of proper nouns in a parse (capitalised runs where there is none), titles stripped,
named organisations, and the aliases that map each name form to the fullest name the text gives (a bracketed
acronym to the name before it). What a name is, not who speaks: assistant/text/speakers.py reads these."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.text.words import MARKS

if TYPE_CHECKING:
    from assistant.text.nlp import Doc, Span, Token


# The tagger's fine-grained (Penn Treebank) tags are read directly: the pipeline has no attribute_ruler to map them
# to coarse parts of speech (it cost as much as the parser).
_PROPN_TAGS = frozenset({"NNP", "NNPS"})


# --- names ----------------------------------------------------------------------------------------------------------

# Words that open a name without being part of it ("President Vladimir Putin", "Foreign Minister Sergei Lavrov").
_TITLES = set(
    "president vice prime minister foreign finance interior defence defense transport deputy secretary general "
    "governor mayor senator chancellor spokesman spokeswoman spokesperson ambassador judge justice professor prof "
    "dr mr mrs ms miss sir dame lord lady king queen prince princess pope ayatollah sheikh captain colonel major "
    "commissioner director chairman chairwoman chair chief ceo leader councillor councilor harbour harbor master "
    "keeper opposition council supreme sayyid gov sen rep lt col gen sgt".split()
)
# The titles that end a title phrase ("Commissioner", not "Foreign"): what follows one is the person's name.
_TITLE_NOUNS = set(
    "president minister secretary governor mayor senator chancellor spokesman spokeswoman spokesperson ambassador "
    "judge professor prof dr mr mrs ms sir dame pope commissioner director chairman chairwoman ceo councillor "
    "councilor captain colonel leader gov sen rep".split()
)
# Heads of organisation names: such a name is not a person ("he" never refers to it).
_ORG_WORDS = set(
    "institute bank ministry office council agency company party union association university group corp inc ltd "
    "authority department commission committee court service police government parliament trust board foundation "
    "society centre center fund club league federation organisation organization network kremlin gazette times post "
    "herald tribune journal news daily chronicle courier radio television tv press observer review observatory "
    "laboratory museum library hospital school college academy bureau chamber alliance coalition forum".split()
)
# Prepositions whose object is a place, never a person who might speak next.
_PLACE_PREPOSITIONS = frozenset({"in", "into", "across", "throughout", "inside", "within", "near", "along", "around",
                                 "outside"})
# Days and months: "on Thursday" after a name is when, not more of the name.
_CALENDAR = set("monday tuesday wednesday thursday friday saturday sunday january february march april may june july "
                "august september october november december".split())
# Name-internal words ("Institute for the Study of War", "Bank of Northvale").
_CONNECTORS = {"of", "for", "the", "and", "&", "on"}


@dataclass
class _Name:
    text: str  # as written, titles stripped
    start: int  # character offsets in the whole text
    end: int
    words: tuple[str, ...]
    subject: bool = False  # the subject of its clause ("Mayor Lukas Fenn defended the closure")
    place: bool = False  # the object of "in", "into", "across", ... ("imports into the Orrin Isles"): not a person


def _name_run(token: Token) -> Span | None:
    """The run of proper nouns (with connectors between them) around the proper noun `token`, titles stripped."""
    if not _capital(token):
        return None
    doc = token.doc
    left = token.i
    while left > 0:
        if _capital(doc[left - 1]) and doc[left - 1].whitespace_ and doc[left - 1].dep_ != "poss":
            left -= 1
        elif left > 1 and _hyphen(doc, left - 1):  # "Ada Brenn-Ilvar": the tokenizer splits at the hyphen
            left -= 2
        else:
            break
    right = token.i
    while right + 1 < len(doc):
        nxt = doc[right + 1]
        if _capital(nxt) and doc[right].whitespace_:
            right += 1
        elif right + 2 < len(doc) and _hyphen(doc, right + 1):
            right += 2
        elif (nxt.dep_ == "case" and doc[right].dep_ == "poss" and right + 2 < len(doc) and _capital(doc[right + 2])
              and doc[right].head.i > right):  # "the Calder Commuters’ Union" is one name
            right += 2
        elif nxt.lower_ == "of" and _personal(doc[left:right + 1]):
            break  # "Orla Venn of Tolmere", "Dr. Ivo Marsh of the Kestrel Institute": the person, not the place
        elif (nxt.lower_ == "and" and right + 2 < len(doc) and _capital(doc[right + 2])
              and any(t.lower_ in ("of", "for") for t in doc[left:right + 1])):
            right += 2  # "the Department of Agriculture and Consumer Services": "of" made it an organisation
        elif (nxt.lower_ in _CONNECTORS and nxt.lower_ != "and" and right + 2 < len(doc)
              and doc[right + 2].lower_ not in _CALENDAR  # "the Atlantic Council on Thursday"
              and (_capital(doc[right + 2]) or (doc[right + 2].lower_ == "the" and right + 3 < len(doc)
                                                and _capital(doc[right + 3])))):
            right += 2 if _capital(doc[right + 2]) else 3
        else:
            break
    # "Though Vanne said …", "Can Vanne win?": an opening word the tagger took for a name at a sentence's start is
    # not part of the name (else "Vanne" fits two names and is read as nobody)
    while left < right and doc[left].is_sent_start and (doc[left].lower_ in _OPENERS or doc[left].lower_ in _NOT_NAMES):
        left += 1
        while left < right and doc[left].lower_ in _CONNECTORS:
            left += 1
    while (left < right and doc[left].lower_.rstrip(".") in _TITLES and doc[right].lower_ not in _ORG_WORDS
           and doc[left + 1].lower_ not in _CONNECTORS):  # "Supreme Leader of Iran" is not "of Iran"
        left += 1
        if left < right and _hyphen(doc, left):  # "Director-General": the hyphen, then its second part
            left += 1
    # "Vellmar Harbour Authority Commissioner Dr. Ivo Marsh", "Port Vellan Mayor Ada Brenn": a title inside the
    # run ends what came before it (an office, a place), when a plain name follows it ("Secretary-General" is
    # one title)
    for k in range(right - 1, left - 1, -1):
        if doc[k].lower_.rstrip(".") in _TITLE_NOUNS:
            end = k + 2 if k + 2 < right and _hyphen(doc, k + 1) else k
            tail = [t.lower_.rstrip(".") for t in doc[end + 1:right + 1]]
            if not any(w in _TITLES or w in _ORG_WORDS or w in _CONNECTORS for w in tail):
                left = end + 1
            break
    if not any(ch.isalpha() for ch in doc[left:right + 1].text):
        return None
    return doc[left:right + 1]


def _hyphen(doc: Doc, i: int) -> bool:
    """doc[i] is a hyphen inside one name: no space on either side, a capitalised name word on both."""
    return (doc[i].text in ("-", "‐") and not doc[i - 1].whitespace_ and not doc[i].whitespace_
            and _capital(doc[i - 1]) and _capital(doc[i + 1]))


def _run_words(run: Span) -> tuple[str, ...]:
    """A run's words, a hyphenated name one word ("Ada", "Brenn-Ilvar"), as `_Aliases.canonical` splits names."""
    words: list[str] = []
    for t in run:
        if words and (_hyphen(t.doc, t.i) or _hyphen(t.doc, t.i - 1)):
            words[-1] += t.text
        else:
            words.append(t.text)
    return tuple(words)


def _personal(run: Span) -> bool:
    """Two or more capitalised words after any titles, none a title or an organisation word: a person's name."""
    words = [t.lower_.rstrip(".") for t in run]
    while words and words[0] in _TITLES:
        words.pop(0)
    return len(words) >= 2 and not any(w in _TITLES or w in _ORG_WORDS or w in _CONNECTORS for w in words)


def _capital(token: Token) -> bool:
    """A proper noun written as one (the tagger sometimes calls "council" a proper noun), or a capitalised word
    whose accent is a separate combining mark ("Va\u0301zquez": the tagger reads such words as common nouns)."""
    if not token.text[:1].isupper():
        return False
    return token.tag_ in _PROPN_TAGS or (token.tag_ in ("NN", "JJ") and _COMBINING.search(token.text) is not None)


_COMBINING = re.compile(f"[{MARKS}]")


def _org_phrase(token: Token) -> Span | None:
    """A named organisation whose head is a common noun: "the Vellmar city council" -> "Vellmar city council"."""
    if token.lower_ not in _ORG_WORDS or not token.text.islower():
        return None
    doc = token.doc
    left = token.i
    while left > 0 and doc[left - 1].dep_ == "compound" and doc[left - 1].head.i in range(left, token.i + 1):
        left -= 1
    while left < token.i and not _capital(doc[left]):
        left += 1
    return doc[left:token.i + 1] if left < token.i else None


_WORD = rf"[A-Z][\w{MARKS}’'-]*"
_CAPITALISED_RUN = re.compile(rf"{_WORD}(?:[ \t]+(?:(?:of|for|the)[ \t]+)*{_WORD})*")
# Capitalised words that open a sentence without being a name.
_NOT_NAMES = set("the a an on in at by for of to from with after before despite however but and or so if when while "
                 "as this that these those it its he she they we his her their our some many most no not".split())


# Words that open a question or a clause at a sentence's start and are names elsewhere ("Will", "May") or never.
_OPENERS = set("though although whether how what why where who which both either neither can could will would should "
               "may might must does did do is are was were has have had even yet still also once since until unless "
               "because".split())
_SENTENCE_END = re.compile(r"(?:^|[.!?:;“”\"(]\s*)$")


def _regex_names(text: str, start: int, end: int) -> list[_Name]:
    """Names in a paragraph that is not parsed: runs of capitalised words, opening function words and titles
    dropped ("President Vladimir Putin" -> "Vladimir Putin"); used for aliases and to know who was mentioned."""
    names = []
    for m in _CAPITALISED_RUN.finditer(text, start, end):
        words = m.group().split()
        offsets = [m.start() + o.start() for o in re.finditer(r"\S+", m.group())]
        k = 0
        opening = bool(_SENTENCE_END.search(text[max(start, m.start() - 3):m.start()])) or m.start() == start
        while k < len(words) and (words[k].lower() in _NOT_NAMES or (opening and words[k].lower() in _OPENERS)):
            k += 1
        titles = [i for i in range(k, len(words)) if words[i].lower() in _TITLES]
        if titles and titles[-1] + 1 < len(words):
            k = titles[-1] + 1
        while k < len(words) and words[k].lower() in _CONNECTORS:
            k += 1
        kept = [w[:-2] if w.endswith(("’s", "'s")) else w for w in words[k:]]
        if not kept or (titles and titles[-1] >= k) or not kept[-1]:
            continue
        begin = offsets[k]
        names.append(_Name(" ".join(kept), begin, begin + len(" ".join(kept)), tuple(kept)))
    return names


def _is_org(name: str) -> bool:
    words = name.split()
    return bool(words) and (words[-1].lower() in _ORG_WORDS or any(w.lower() in _ORG_WORDS for w in words)
                            or (all(w.isupper() and len(w) > 1 for w in words)))  # "NATO", a masthead in capitals


def _person_like(name: str) -> bool:
    """A name that may be a person's: two or more capitalised words, no organisation word."""
    words = name.split()
    return len(words) >= 2 and not _is_org(name) and all(w[:1].isupper() for w in words)


class _Aliases:
    """Every name form in one text mapped to the fullest name it is part of (None when two fit)."""

    def __init__(self, names: Sequence[_Name], acronyms: dict[str, str]):
        self.full: list[tuple[str, tuple[str, ...]]] = []
        seen: set[str] = set()
        for name in sorted(names, key=lambda n: -len(n.words)):
            if name.text not in seen:
                seen.add(name.text)
                self.full.append((name.text, name.words))
        self.acronyms = acronyms

    def canonical(self, name: str) -> str | None:
        name = self.acronyms.get(name, name)
        words = tuple(name.split())
        if not words:
            return None
        fits = [full for full, fw in self.full if len(fw) >= len(words) and _contains(fw, words)]
        # the fullest fits; two fullest that are not one inside the other make the name ambiguous
        best: list[str] = []
        for full in fits:
            if any(_contains(tuple(b.split()), tuple(full.split())) for b in best):
                continue
            best.append(full)
        if len(best) > 1:
            return None
        if len(words) == 1 and any(words[0] in re.split(r"[-‐]", fw[-1]) for full, fw in self.full
                                   if full not in best and len(fw) > 1 and fw[-1] != words[0]):
            return None  # "Nix" may be the "Mona Nix-Roper" of the article as well as someone else: unsure
        return best[0] if best else name


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    """`shorter` is a suffix of `longer` or equal to it ("Peskov" in "Dmitry Peskov"); a suffix after "of" is not
    ("Northvale" is not the "Bank of Northvale")."""
    if longer == shorter:
        return True
    if len(longer) == len(shorter) + 1 and longer[:-1] == shorter and longer[-1].lower() in _ORG_WORDS:
        return True  # "Sellmark Rail" for the "Sellmark Rail Company"
    tail = longer[-len(shorter):]
    return tail == shorter and not any(w.lower() in _CONNECTORS for w in longer[:len(longer) - len(shorter)])


def _names_in(text: str, paragraphs: list[tuple[int, int]], docs: list[Doc | None]) -> tuple[list[_Name], _Aliases]:
    """The names of a text, paragraph by paragraph (a parsed one's proper-noun runs and named organisations, the
    others' capitalised runs), and their aliases."""
    names: list[_Name] = []
    acronyms: dict[str, str] = {}
    for (ps, pe), doc in zip(paragraphs, docs):
        if doc is None:
            names += _regex_names(text, ps, pe)
            continue
        seen_end = -1
        for tok in doc:
            org = _org_phrase(tok)
            if org is not None:
                names.append(_Name(org.text, ps + org.start_char, ps + org.end_char,
                                   tuple(t.text for t in org), tok.dep_ == "nsubj"))
            if tok.i <= seen_end or not _capital(tok):
                continue
            run = _name_run(tok)
            if run is None:
                continue
            seen_end = run.end - 1
            words = _run_words(run)
            subject = any(t.dep_ == "nsubj" for t in run) or (run[-1].dep_ == "appos"
                                                              and run[-1].head.dep_ == "nsubj")
            head = run.root
            place = head.dep_ == "pobj" and head.head.lower_ in _PLACE_PREPOSITIONS
            names.append(_Name(run.text, ps + run.start_char, ps + run.end_char, words, subject, place))
            # "the Institute for the Study of War (ISW)": the acronym in brackets names the run before it
            if run.end + 2 < len(doc) + 0 and doc[run.end].text == "(" and run.end + 2 <= len(doc) - 1 \
                    and doc[run.end + 2].text == ")":
                acro = doc[run.end + 1].text
                if acro.isupper() and len(acro) >= 2 and acro[0] == words[0][0]:
                    acronyms[acro] = run.text
    # a headline's compound ("Saltwind Tolmere plant", "Orrin Lanterns closure") is no fuller form of the body's
    # "Tolmere" or "Lanterns": a name of the title serves as one only when the body writes it too
    head_end = paragraphs[1][0] if len(paragraphs) > 1 else 0
    body = {n.text for n in names if n.start >= head_end}
    return names, _Aliases([n for n in names if n.start >= head_end or n.text in body], acronyms)
