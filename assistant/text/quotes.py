"""Who said what in an article: direct quotes, reported speech and their speakers, from one spaCy pass.

`quotes_of(text)` returns the article's quotes in text order, each a `Quote` with character offsets into `text`
(`text[q.start:q.end]` is the span), its kind, its speaker and the speech verb (the cue). Span convention:

- direct: the characters inside the double quotation marks (straight or curly), the marks excluded, punctuation
  inside them kept; several sentences inside one pair are one span; a quote that runs over paragraphs, each one
  reopening with a mark and only the last one closing, is one span per paragraph.
- reported: the clause after "said that" / "argue that" / ... (the words after "that"); without "that", the reported
  clause itself ("Marrow said the budget was balanced"); for "according to X" the clause it attaches to. The span
  ends before the sentence's final punctuation.

Speakers: the fullest name the article gives ("Kremlin spokesman Dmitry Peskov", "Dmitry Peskov" and "Peskov" are
all "Dmitry Peskov"; titles stripped), a parenthesised acronym merged with its name ("ISW"); "he"/"she" resolved to
the previous quote's speaker when no other name came between, "the two ministers" resolved to "A and B" when exactly
two names came just before; unnamed speakers ("officials", "observers", "a source") are None, and so is anything
unsure: a wrong speaker is worse than none. A quote in the title has a speaker only when the title states one.

Odd input never raises: a non-string is [], text past MAX_CHARS is not read, control characters and lone surrogates
are read as blanks, a quotation mark left open is not a quote.

How it works: the tagger and dependency parser of en_core_web_sm (assistant/text/nlp.py: no NER, no
attribute_ruler) parse each paragraph that may hold a quote (a quotation mark, a speech verb's form, "according");
the other paragraphs are only read for names (capitalised runs). Direct quotes are found by scanning the quotation
marks and attributed to the nearest speech verb outside every quote in the same sentence; reported speech is found
with a DependencyMatcher (a speech verb with a clausal complement; "according" > "to" > its object); the speaker is
the verb's subject, read by small rules: names are runs of proper nouns (tagger), titles stripped, merged with their
longer forms; pronouns, "the two ...", "X and Y", "analysts at X", an apposition ("the minister, Ruben Sallow,")
and unnamed nouns.

Why rules and not textacy. textacy 0.13's `textacy.extract.triples.direct_quotations` was the other approach
measured, on the seed and the nine fictional articles of tests/data/quotes (35 direct and 44 reported quotes; 27
and 33 of them with a named speaker). A quote matches a gold one when they overlap by half of the longer; speaker
precision = right named speakers / named speakers given, recall = right named speakers / gold named speakers.

                                         direct: span P / R, speaker P / R    reported: span P / R, speaker P / R
    rules (this module), all 10 texts     1.00 / 1.00,  1.00 / 1.00           1.00 / 1.00,  1.00 / 1.00
    rules, held-out, before their fixes   1.00 / 1.00,  1.00 / 0.69 (9/13)    0.96 / 1.00,  0.82 / 0.47 (9/11, 9/19)
    textacy, raw speaker text             0.96 / 0.63,  0.09 / 0.07           -    / 0,     -    / 0
    textacy, speakers via our aliases     0.96 / 0.63,  1.00 / 0.41           -    / 0,     -    / 0

The rules were written against the seed and four articles, so their perfect row is optimistic; the held-out row is
two later batches (five articles) scored once before the rules were fixed on them (the misses: an apposition, a
lowercase word tagged as a name, "said Per Aldous" with "Per" parsed as a preposition, a coordinated pair before
"They"; the two wrong speakers: "council" and "Sellmark Rail" for the "Sellmark Rail Company"). textacy extracts
no reported speech (over half the quotes), gives the raw subject ("He", "the two ministers", "master Tomas Quell"
for a headline quote), and raises ValueError on an odd number of quotation marks — a paragraph-spanning quote, or
an apostrophe it counts as a mark ("Fishers’") — losing 2 of the 10 articles whole. So rules, and textacy is no
dependency.

Speed (tok2vec, tagger, parser; BATCH_SIZE paragraphs a batch; 2 shared cores): ~9.7 ms per 1,000 characters on
the seed, ~11.4 on the quote-dense test articles; ingest itself costs ~25-29, so the pass lowers ingest
throughput by about 28-32% (the limit is a third). Batch sizes 8 / 16 / 32 / 64 / 128: 14.1 / 12.6 / 11.9 / 11.4 /
11.4 ms on the test articles.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.text import nlp as _nlp

if TYPE_CHECKING:
    from assistant.text.nlp import Doc, Span, Token

__all__ = ["EXTRACTOR_VERSION", "MAX_CHARS", "Quote", "aliases_of", "quotes_of", "quotes_of_many", "speakers_of"]

log = logging.getLogger(__name__)

# Bump when the extractor's output changes, so the archive's quotes can be re-read by a better one.
EXTRACTOR_VERSION = 3
# Only the first MAX_CHARS characters of a text are read (a 2 MB page costs what 100k characters cost).
MAX_CHARS = 100_000
# Paragraphs parsed per batch (nlp.pipe): 64 measured as fast as larger batches (see the module docstring).
BATCH_SIZE = 64


@dataclass(frozen=True)
class Quote:
    start: int  # character offsets into the text: text[start:end] is the quote span
    end: int
    kind: str  # "direct" or "reported"
    speaker: str | None  # the fullest name the text gives, "A and B" for a joint speaker, or None
    cue: str = ""  # the speech verb's lemma ("say", "tell", "add", "according to"), "" when none


# The tagger's fine-grained (Penn Treebank) tags are read directly: the pipeline has no attribute_ruler to map them
# to coarse parts of speech (it cost as much as the parser).
_VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})
_PROPN_TAGS = frozenset({"NNP", "NNPS"})


# --- speech verbs -------------------------------------------------------------------------------------------------

# Verbs that introduce a quote or reported clause anywhere in their sentence.
_SPEECH = (
    "say tell add state explain note argue warn claim insist acknowledge admit announce confirm deny write reply "
    "respond conclude stress emphasise emphasize declare reiterate assert allege concede contend observe remark "
    "recall predict estimate tweet answer complain report caution continue ask testify point"
).split()
# Verbs that report speech only with a "that" clause ("believe that ...", not "believe the report").
_THAT_ONLY = "believe think suggest agree fear hope expect maintain urge promise pledge vow feel".split()
# Verbs that take a partial quote as their object ("called the plan “a patch”"), only when the quote is inside it.
_PARTIAL = "call criticise criticize condemn describe accuse dismiss praise label brand".split()

_IRREGULAR = {
    "say": ["said"], "tell": ["told"], "write": ["wrote", "written"], "think": ["thought"], "feel": ["felt"],
    "admit": ["admitted", "admitting"], "label": ["labelled", "labelling"],
}


def _forms(base: str) -> list[str]:
    """The inflected forms of a regular English verb (plus the irregular ones listed above)."""
    if base.endswith("e"):
        forms = [base, base + "s", base + "d", base[:-1] + "ing"]
    elif base.endswith("y") and base[-2] not in "aeiou":
        forms = [base, base[:-1] + "ies", base[:-1] + "ied", base + "ing"]
    elif base.endswith(("s", "sh", "ch", "x", "z")):
        forms = [base, base + "es", base + "ed", base + "ing"]
    else:
        forms = [base, base + "s", base + "ed", base + "ing"]
    return forms + _IRREGULAR.get(base, [])


_LEMMA = {form: base for base in (*_SPEECH, *_THAT_ONLY, *_PARTIAL) for form in _forms(base)}


# A paragraph with none of these holds no quote: it is not parsed, only read for names (_regex_names).
_MAY_QUOTE = re.compile(r'["“”„«»]|\b(?:according|' + "|".join(sorted(_LEMMA, key=len, reverse=True)) + r")\b",
                        re.IGNORECASE)


def _cue(token: Token) -> str | None:
    """The lemma of a speech verb, or None when `token` is not one."""
    if token.tag_ not in _VERB_TAGS:
        return None
    lemma = _LEMMA.get(token.lower_)
    if lemma == "point" and not any(c.dep_ == "prt" and c.lower_ == "out" for c in token.children):
        return None
    return lemma


# --- names ----------------------------------------------------------------------------------------------------------

# Words that open a name without being part of it ("President Vladimir Putin", "Foreign Minister Sergei Lavrov").
_TITLES = set(
    "president vice prime minister foreign finance interior defence defense transport deputy secretary general "
    "governor mayor senator chancellor spokesman spokeswoman spokesperson ambassador judge justice professor prof "
    "dr mr mrs ms miss sir dame lord lady king queen prince princess pope ayatollah sheikh captain colonel major "
    "commissioner director chairman chairwoman chair chief ceo leader councillor councilor harbour harbor master "
    "keeper opposition council supreme sayyid".split()
)
# Heads of organisation names: such a name is not a person ("he" never refers to it).
_ORG_WORDS = set(
    "institute bank ministry office council agency company party union association university group corp inc ltd "
    "authority department commission committee court service police government parliament trust board foundation "
    "society centre center fund club league federation organisation organization network kremlin gazette times post "
    "herald tribune journal news daily chronicle courier radio television tv press observer review observatory "
    "laboratory museum library hospital school college academy bureau chamber alliance coalition forum".split()
)
# Name-internal words ("Institute for the Study of War", "Bank of Northvale").
_CONNECTORS = {"of", "for", "the", "and", "&", "on"}
# People whose organisation speaks through them ("analysts at the Institute ...", "ISW's researchers").
# Nouns that stand for the organisation named just before ("the statement said").
_NOMINAL = set("statement release agency company firm report department".split())
_RESEARCHERS = set("analyst analysts researcher researchers expert experts economist economists scientist "
                   "scientists strategist strategists".split())
# "according to a survey by X": the organisation behind the document.
_DOCUMENTS = set("survey report study poll analysis estimate estimates figures data statement review".split())
# Subjects that name two people introduced just before ("the two ministers", "both leaders").
_JOINT_NUMBERS = {"two", "both"}


@dataclass
class _Name:
    text: str  # as written, titles stripped
    start: int  # character offsets in the whole text
    end: int
    words: tuple[str, ...]
    subject: bool = False  # the subject of its clause ("Mayor Lukas Fenn defended the closure")


def _name_run(token: Token) -> Span | None:
    """The run of proper nouns (with connectors between them) around the proper noun `token`, titles stripped."""
    if not _capital(token):
        return None
    doc = token.doc
    left = token.i
    while left > 0 and _capital(doc[left - 1]) and doc[left - 1].whitespace_ and doc[left - 1].dep_ != "poss":
        left -= 1
    right = token.i
    while right + 1 < len(doc):
        nxt = doc[right + 1]
        if _capital(nxt) and doc[right].whitespace_:
            right += 1
        elif (nxt.dep_ == "case" and doc[right].dep_ == "poss" and right + 2 < len(doc) and _capital(doc[right + 2])
              and doc[right].head.i > right):  # "the Calder Commuters’ Union" is one name
            right += 2
        elif nxt.lower_ == "of" and _personal(doc[left:right + 1]):
            break  # "Orla Venn of Tolmere", "Dr. Ivo Marsh of the Kestrel Institute": the person, not the place
        elif (nxt.lower_ in _CONNECTORS and nxt.lower_ != "and" and right + 2 < len(doc)
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
    if not any(ch.isalpha() for ch in doc[left:right + 1].text):
        return None
    return doc[left:right + 1]


def _personal(run: Span) -> bool:
    """Two or more capitalised words after any titles, none a title or an organisation word: a person's name."""
    words = [t.lower_.rstrip(".") for t in run]
    while words and words[0] in _TITLES:
        words.pop(0)
    return len(words) >= 2 and not any(w in _TITLES or w in _ORG_WORDS or w in _CONNECTORS for w in words)


def _capital(token: Token) -> bool:
    """A proper noun written as one (the tagger sometimes calls "council" a proper noun)."""
    return token.tag_ in _PROPN_TAGS and token.text[:1].isupper()


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


_CAPITALISED_RUN = re.compile(r"[A-Z][\w’'-]*(?:[ \t]+(?:(?:of|for|the)[ \t]+)*[A-Z][\w’'-]*)*")
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


# --- text preparation -----------------------------------------------------------------------------------------------

_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")
_OPEN = "“„«"
_CLOSE = "”»"
_STRAIGHT = '"'


def _clean(text: str) -> str:
    """`text` with control characters and lone surrogates as blanks, the same length (offsets stay valid)."""
    def blank(ch: str) -> str:
        if ch in "\n\t":
            return ch
        cat = unicodedata.category(ch)
        return " " if cat in ("Cc", "Cs", "Co", "Cn") else ch
    if text.isprintable():
        return text
    return "".join(blank(ch) for ch in text)


def _paragraphs(text: str) -> list[tuple[int, int]]:
    """(start, end) of each non-blank paragraph: blocks between blank lines, the first line always its own."""
    bounds: list[tuple[int, int]] = []
    first_nl = text.find("\n")
    head_end = len(text) if first_nl < 0 else first_nl
    pieces = [(0, head_end)]
    pos = head_end
    for m in _PARAGRAPH.finditer(text, pos):
        pieces.append((pos, m.start()))
        pos = m.end()
    pieces.append((pos, len(text)))
    for s, e in pieces:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            bounds.append((s, e))
    return bounds


@dataclass
class _Direct:
    start: int
    end: int
    group: int  # quotes of one paragraph-spanning quotation share a group
    speaker: str | None = None
    cue: str = ""
    resolved: bool = False


def _direct_spans(text: str, paragraphs: list[tuple[int, int]]) -> list[_Direct]:
    """Spans inside double quotation marks, paragraph by paragraph (a mark left open is not a quote, unless the
    next paragraph reopens with a mark: the convention for a quotation over several paragraphs)."""
    found: list[_Direct] = []
    group = 0
    carried = False  # the previous paragraph ended inside a quotation that this one continues
    for n, (ps, pe) in enumerate(paragraphs):
        opened: int | None = None
        for i in range(ps, pe):
            ch = text[i]
            if opened is None:
                if ch in _OPEN or ch == _STRAIGHT:
                    opened = i
            elif ch in _CLOSE or ch == _STRAIGHT:
                if i > opened + 1 and text[opened + 1:i].strip():
                    if not carried:
                        group += 1
                    found.append(_Direct(opened + 1, i, group))
                carried = False
                opened = None
        if opened is not None:
            nxt = paragraphs[n + 1][0] if n + 1 < len(paragraphs) else None
            if opened == ps and nxt is not None and text[nxt] in _OPEN + _STRAIGHT and text[opened + 1:pe].strip():
                if not carried:
                    group += 1
                found.append(_Direct(opened + 1, pe, group))
                carried = True
                continue
        carried = False
    return found


# --- the matcher ----------------------------------------------------------------------------------------------------

_matcher_lock = threading.Lock()
_matcher = None


def _get_matcher():
    global _matcher
    if _matcher is None:
        with _matcher_lock:
            if _matcher is None:
                verbs = sorted(f for f, base in _LEMMA.items() if base not in _PARTIAL)
                _matcher = _nlp.dependency_matcher({
                    "REPORTED": [[
                        {"RIGHT_ID": "cue", "RIGHT_ATTRS": {"LOWER": {"IN": verbs}, "TAG": {"IN": sorted(_VERB_TAGS)}}},
                        {"LEFT_ID": "cue", "REL_OP": ">", "RIGHT_ID": "clause", "RIGHT_ATTRS": {"DEP": "ccomp"}},
                    ]],
                    "ACCORDING": [[
                        {"RIGHT_ID": "according", "RIGHT_ATTRS": {"LOWER": "according"}},
                        {"LEFT_ID": "according", "REL_OP": ">", "RIGHT_ID": "to", "RIGHT_ATTRS": {"LOWER": "to"}},
                        {"LEFT_ID": "to", "REL_OP": ">", "RIGHT_ID": "source", "RIGHT_ATTRS": {"DEP": "pobj"}},
                    ]],
                })
    return _matcher


# --- reading one text -----------------------------------------------------------------------------------------------

@dataclass
class _Claim:
    """A quote waiting for its speaker: the subject token of its cue (None when no subject was found)."""
    start: int
    end: int
    kind: str
    cue: str
    subject: Token | None
    cue_at: int  # character offset of the cue (order of resolution)
    headline: bool
    direct: _Direct | None = None
    para: int = 0
    org_source: str | None = field(default=None)  # a name read without a subject token: "according to X", "said X"


class _Reader:
    def __init__(self, text: str, paragraphs: list[tuple[int, int]], docs: list[Doc | None]):
        self.text = text
        self.paragraphs = paragraphs
        self.docs = docs
        self.directs = _direct_spans(text, paragraphs)
        self.names: list[_Name] = []
        acronyms: dict[str, str] = {}
        for (ps, pe), doc in zip(paragraphs, docs):
            if doc is None:
                self.names += _regex_names(text, ps, pe)
                continue
            seen_end = -1
            for tok in doc:
                org = _org_phrase(tok)
                if org is not None:
                    self.names.append(_Name(org.text, ps + org.start_char, ps + org.end_char,
                                            tuple(t.text for t in org), tok.dep_ == "nsubj"))
                if tok.i <= seen_end or not _capital(tok):
                    continue
                run = _name_run(tok)
                if run is None:
                    continue
                seen_end = run.end - 1
                words = tuple(t.text for t in run)
                subject = any(t.dep_ == "nsubj" for t in run) or (run[-1].dep_ == "appos"
                                                                  and run[-1].head.dep_ == "nsubj")
                self.names.append(_Name(run.text, ps + run.start_char, ps + run.end_char, words, subject))
                # "the Institute for the Study of War (ISW)": the acronym in brackets names the run before it
                if run.end + 2 < len(doc) + 0 and doc[run.end].text == "(" and run.end + 2 <= len(doc) - 1 \
                        and doc[run.end + 2].text == ")":
                    acro = doc[run.end + 1].text
                    if acro.isupper() and len(acro) >= 2 and acro[0] == words[0][0]:
                        acronyms[acro] = run.text
        self.aliases = _Aliases(self.names, acronyms)

    # which direct quote a character offset is in
    def in_direct(self, at: int) -> bool:
        return any(d.start <= at < d.end for d in self.directs)

    def read(self) -> list[Quote]:
        claims: list[_Claim] = []
        for n, ((ps, pe), doc) in enumerate(zip(self.paragraphs, self.docs)):
            if doc is None:
                continue
            claims += self._direct_claims(n, ps, pe, doc)
            claims += self._reported_claims(n, ps, doc)
        claims.sort(key=lambda c: (c.cue_at, c.start))
        out: list[tuple[_Claim, str | None]] = []
        previous: str | None | bool = False  # False: no quote yet; None: the previous quote had no speaker
        previous_at = 0
        for claim in claims:
            speaker = self._speaker(claim, previous, previous_at)
            out.append((claim, speaker))
            if not claim.headline:
                previous, previous_at = speaker, claim.cue_at
        # a paragraph-spanning quotation has one speaker: the one its attributed part gives
        by_group: dict[int, str | None] = {}
        for claim, speaker in out:
            if claim.direct is not None and speaker is not None:
                by_group.setdefault(claim.direct.group, speaker)
        # a quote with no cue right after a quote of the same paragraph ("“…,” Ostrow said. “…”") is hers too,
        # when no other name comes between them
        last: tuple[_Claim, str | None] | None = None
        for k, (claim, speaker) in enumerate(out):
            if claim.kind != "direct":
                continue
            if (claim.subject is None and not claim.cue and not claim.headline and last is not None
                    and last[0].para == claim.para and last[1] is not None and last[0].cue
                    and set(self._mentions(last[0].end, claim.start, besides=last[1])) <= set(last[1].split(" and "))):
                claim.cue = last[0].cue
                out[k] = (claim, last[1])
            last = out[k]
        self._continue(out, by_group)
        quotes = []
        for claim, speaker in out:
            cue = claim.cue
            if claim.direct is not None and speaker is None and claim.direct.group in by_group and not claim.cue:
                speaker = by_group[claim.direct.group]
                cue = next(c.cue for c, s in out if c.direct is not None and c.direct.group == claim.direct.group
                           and s == speaker and c.cue)
            quotes.append(Quote(claim.start, claim.end, claim.kind, speaker, cue))
        return sorted(set(quotes), key=lambda q: (q.start, q.end, q.kind))

    def _continue(self, out: list[tuple[_Claim, str | None]], by_group: dict[int, str | None]) -> None:
        """News style: a paragraph that is only a quotation, with no cue, right after a paragraph whose quotes are
        all attributed to one named person, is that person's too (and so is the next such paragraph), when nobody
        else is named in between. Anything less certain keeps no speaker."""
        by_para: dict[int, list[int]] = {}
        for k, (claim, _) in enumerate(out):
            by_para.setdefault(claim.para, []).append(k)
        for n in sorted(by_para):
            mine = [out[k][0] for k in by_para[n]]
            if any(c.cue or c.subject is not None or c.org_source or c.headline or c.kind != "direct"
                   for c in mine):
                continue
            if any(c.direct is not None and c.direct.group in by_group for c in mine):
                continue
            ps = self.paragraphs[n][0]
            first = min(c.start for c in mine)
            if self.text[ps:first - 1].strip():
                continue  # the paragraph says something before its quote
            before = [out[k] for k in by_para.get(n - 1, [])]
            speakers = {s for _, s in before}
            if not before or len(speakers) != 1:
                continue
            [speaker] = speakers
            if speaker is None or " and " in speaker or not _person_like(speaker):
                continue
            since = max(max(c.end, c.cue_at) for c, _ in before)
            if set(self._mentions(since, first, besides=speaker)) - {speaker}:
                continue
            for k in by_para[n]:
                claim = out[k][0]
                claim.cue = next(c.cue for c, _ in before if c.cue) if any(c.cue for c, _ in before) else ""
                out[k] = (claim, speaker)

    # -- direct quotes: the nearest speech verb outside every quote in the quote's sentence(s)
    def _direct_claims(self, n: int, ps: int, pe: int, doc: Doc) -> list[_Claim]:
        claims = []
        for d in self.directs:
            if not ps <= d.start < pe:
                continue
            lo, hi = d.start - ps - 1, d.end - ps + 1
            sents = [s for s in doc.sents if s.start_char <= hi and s.end_char >= lo]
            best: tuple[int, Token, str] | None = None
            for sent in sents:
                for tok in sent:
                    cue = _cue(tok)
                    if cue is None or self.in_direct(ps + tok.idx):
                        continue
                    if cue in _PARTIAL or cue in _THAT_ONLY:
                        sub = tok.subtree
                        first, last = min(t.idx for t in sub), max(t.idx + len(t) for t in tok.subtree)
                        if not (first <= d.start - ps and d.end - ps <= last + 1):
                            continue
                    distance = min(abs(tok.idx - (d.end - ps)), abs(tok.idx - (d.start - ps)))
                    if best is None or distance < best[0]:
                        best = (distance, tok, cue)
            if best is None:
                claims.append(_Claim(d.start, d.end, "direct", "", None, d.start, n == 0, d, n))
            else:
                _, tok, cue = best
                claim = _Claim(d.start, d.end, "direct", cue, _subject(tok), ps + tok.idx, n == 0, d, n)
                if claim.subject is None:
                    claim.org_source = _inverted_name(tok)
                claims.append(claim)
        return claims

    # -- reported speech: a speech verb's clausal complement; "according to X"
    def _reported_claims(self, n: int, ps: int, doc: Doc) -> list[_Claim]:
        claims = []
        for match_id, (a, b, *rest) in _get_matcher()(doc):
            label = doc.vocab.strings[match_id]
            if label == "REPORTED":
                claim = self._clause(doc, doc[a], doc[b], ps, n)
            else:
                claim = self._according(doc, doc[a], doc[rest[0]], ps, n)
            if claim is not None:
                claims.append(claim)
        return claims

    def _span(self, doc: Doc, tokens: list[Token], ps: int) -> tuple[int, int] | None:
        while tokens and (tokens[-1].is_punct or tokens[-1].is_space or tokens[-1].is_quote):
            if tokens[-1].is_quote and len(tokens) > 1:
                inner = doc.text[tokens[0].idx:tokens[-1].idx]
                if inner.count("“") > inner.count("”") or inner.count('"') % 2 == 1:
                    break  # "gone “within a generation”": the closing mark of a quote inside the clause stays
            tokens = tokens[:-1]
        while tokens and (tokens[0].is_punct or tokens[0].is_space):
            tokens = tokens[1:]
        if not tokens:
            return None
        return ps + tokens[0].idx, ps + tokens[-1].idx + len(tokens[-1])

    def _clause(self, doc: Doc, verb: Token, clause: Token, ps: int, n: int) -> _Claim | None:
        cue = _LEMMA.get(verb.lower_)
        if cue is None or _cue(verb) is None or self.in_direct(ps + verb.idx):
            return None
        marks = [c for c in clause.children if c.dep_ == "mark" and c.lower_ == "that" and c.i < clause.i]
        if cue in _THAT_ONLY and not marks:
            return None
        tokens = list(clause.subtree)
        if tokens[0].lower_ in ("who", "which", "whose", "whom", "where"):
            return None  # "said Per Aldous, who speaks for …": a relative clause the parser hung on the verb
        if marks:
            tokens = [t for t in tokens if t.i > marks[0].i]
        elif clause.i < verb.i and not any(t.is_punct for t in doc[clause.right_edge.i + 1:verb.i]):
            return None  # "prices rose, Marrow said" needs the comma; anything else is not a reported clause
        span = self._span(doc, tokens, ps)
        if span is None or self.in_direct(ps + clause.idx):
            return None  # the clause of a direct quote ("“…,” Quell told reporters") is that quote
        claim = _Claim(span[0], span[1], "reported", cue, _subject(verb), ps + verb.idx, n == 0, para=n)
        if claim.subject is None and clause.i < verb.i:
            claim.org_source = _inverted_name(verb)  # "The results are clear, said Ada Brenn, who …"
        return claim

    def _according(self, doc: Doc, according: Token, source: Token, ps: int, n: int) -> _Claim | None:
        head = according.head
        if head is according or self.in_direct(ps + according.idx):
            return None
        sent = according.sent
        # "…,” Peskov told reporters, according to EFE": sourcing the report of a quote, not a quote of its own
        if _cue(head) is not None or any(sent.start_char <= d.start - ps < sent.end_char for d in self.directs):
            return None
        phrase = set(t.i for t in according.subtree)
        tokens = [t for t in head.subtree if t.i not in phrase]
        if according.i < head.i:
            tokens = [t for t in tokens if t.i > according.right_edge.i]
        span = self._span(doc, tokens, ps)
        if span is None:
            return None
        if source.lower_ in _DOCUMENTS:  # "according to a survey by the Vellmar Chamber of Commerce"
            by = next((c for c in source.children if c.dep_ == "prep" and c.lower_ in ("by", "from", "of")), None)
            source = next((g for g in by.children if g.dep_ == "pobj"), source) if by is not None else source
        run = _name_run(source) or _org_phrase(source)
        claim = _Claim(span[0], span[1], "reported", "according to", None, ps + according.idx, n == 0, para=n)
        claim.org_source = run.text if run is not None else None
        return claim

    # -- speakers
    def _speaker(self, claim: _Claim, previous: str | None | bool, previous_at: int) -> str | None:
        if claim.cue == "according to":
            return self.aliases.canonical(claim.org_source) if claim.org_source else None
        subj = claim.subject
        if subj is None:
            return self.aliases.canonical(claim.org_source) if claim.org_source else None
        if subj.tag_ == "PRP":
            if claim.headline:
                return None
            return self._pronoun(subj, previous, previous_at)
        name = self._named(subj)
        if name is not None:
            return name
        if claim.headline:
            return None
        return self._joint(subj, previous_at)

    def _named(self, subj: Token, alone: bool = False) -> str | None:
        """A named subject (or two, "A and B"; only `subj` itself when `alone`), or an organisation through its
        researchers."""
        heads = [subj] if alone else [subj, *[c for c in subj.conjuncts if c.i > subj.i]]
        if all(_capital(h) or self._known(h) for h in heads):
            names = []
            for h in heads:
                run = _name_run(h)
                full = self.aliases.canonical(run.text) if run is not None else self._known(h)
                if full is None:
                    return None
                names.append(full)
            return " and ".join(dict.fromkeys(names))
        if len(heads) == 1:
            # "The fisheries minister, Ruben Sallow, said": the name in apposition
            appos = [c for c in subj.children if c.dep_ == "appos" and _capital(c)]
            if len(appos) == 1 and (run := _name_run(appos[0])) is not None:
                return self.aliases.canonical(run.text)
            # "The Vellmar city council said", and then "the council said" when one council was named
            if (org := _org_phrase(subj)) is not None:
                return self.aliases.canonical(org.text)
            if (subj.lower_ in _ORG_WORDS and subj.text.islower() and [c.lower_ for c in subj.children] == ["the"]):
                full = self.aliases.canonical(subj.text)
                if full is not None and full != subj.text:
                    return full
            if subj.lower_ in _NOMINAL and [c.lower_ for c in subj.children] == ["the"]:
                return self._organisation_before(subj)
        if len(heads) == 1 and subj.lower_ in _RESEARCHERS:
            for child in subj.children:
                target = None
                if child.dep_ == "prep" and child.lower_ in ("at", "from", "of"):
                    target = next((g for g in child.children if g.dep_ == "pobj"), None)
                elif child.dep_ in ("poss", "compound"):
                    target = child  # "Saltwind Capital's analysts", "Saltwind Capital analysts"
                if target is not None and _capital(target):
                    # "analysts at X": X is where they work, an organisation whether or not its name says so
                    run = _name_run(target)
                    if run is not None and (full := self.aliases.canonical(run.text)) is not None:
                        return full
        return None

    def _organisation_before(self, subj: Token) -> str | None:
        """"the statement said", "the agency said": the one organisation named in this paragraph or the one
        before, outside quotes, when exactly one is (and no person is named in this paragraph before the cue)."""
        at = subj.idx + self._offset(subj)
        n = next((k for k, (ps, pe) in enumerate(self.paragraphs) if ps <= at < pe), 0)
        if n == 0:
            return None
        lo = self.paragraphs[n - 1][0]
        orgs = []
        for name in self.names:
            if lo <= name.start < at and not self.in_direct(name.start):
                full = self.aliases.canonical(name.text)
                if full is not None and _is_org(full) and len(full.split()) >= 2:
                    orgs.append(full)
        orgs = list(dict.fromkeys(orgs))
        if len(orgs) != 1 or self._mentions(self.paragraphs[n][0], at):
            return None
        return orgs[0]

    def _known(self, tok: Token) -> str | None:
        """A capitalised word the tagger missed as a name ("Tessel says ..." in a title) that is part of a longer
        name the text gives: that name."""
        if not tok.text[:1].isupper() or tok.tag_ not in ("NN", "NNS", "NNP", "NNPS", "JJ"):
            return None
        full = self.aliases.canonical(tok.text)
        return full if full is not None and full != tok.text else None

    def _mentions(self, after: int, before: int, subjects: bool = False, besides: str | None = None) -> list[str]:
        """Person-like names (fullest form) mentioned in the body between two offsets, outside quotes (only those
        that are the subject of their clause with `subjects`; not those in the description of `besides`, "Petra
        Lund, founder of Saltwind Morning Bread": the description of a person is not another person)."""
        head_end = self.paragraphs[0][1] if self.paragraphs else 0
        out = []
        for name in self.names:
            if subjects and not name.subject:
                continue
            if after <= name.start < before and name.start >= head_end and not self.in_direct(name.start):
                full = self.aliases.canonical(name.text)
                if full is not None and _person_like(full) and not (besides and full != besides
                                                                     and self._describes(name, besides)):
                    out.append(full)
        return list(dict.fromkeys(out))

    def _describes(self, name: _Name, person: str) -> bool:
        """`name` sits in a phrase hung on a mention of `person`: an apposition or its "of"/"at"/"for" phrase."""
        for (ps, pe), doc in zip(self.paragraphs, self.docs):
            if doc is None or not ps <= name.start < pe:
                continue
            tok = next((t for t in doc if ps + t.idx == name.start), None)
            if tok is None:
                return False
            seen = 0
            while tok.head is not tok and seen < 12:
                if tok.dep_ not in ("pobj", "prep", "appos", "conj", "compound", "cc", "poss", "case", "nmod",
                                    "amod"):
                    return False
                tok = tok.head
                seen += 1
                run = _name_run(tok) if _capital(tok) else None
                if run is not None and self.aliases.canonical(run.text) == person:
                    return True
            return False
        return False

    def _pronoun(self, subj: Token, previous: str | None | bool, previous_at: int) -> str | None:
        word = subj.lower_
        if word == "they" and not (isinstance(previous, str) and " and " in previous):
            return self._pair_before(subj)
        if previous is False or previous is None:
            at = subj.idx + self._offset(subj)
            if word in ("he", "she") and previous is False:
                names = self._mentions(0, at)
                return names[0] if len(names) == 1 else None
            if word in ("he", "she"):
                # the previous quote had no named speaker: the one person named since it, as a subject, and
                # nobody else
                since = self._mentions(previous_at + 1, at)
                if len(since) == 1 and self._mentions(previous_at + 1, at, subjects=True) == since:
                    return since[0]
            return None
        assert isinstance(previous, str)
        at = subj.idx + self._offset(subj)
        parts = previous.split(" and ")
        since = self._mentions(previous_at + 1, at, besides=previous)
        others = [m for m in since if m not in parts]
        if others:
            # "Mayor Lukas Fenn defended the closure. “…,” he said.": the one person named since the previous
            # quote, as a subject, and the previous speaker not named again; anything else is unsure
            if (word in ("he", "she") and len(others) == 1 and len(since) == 1
                    and self._mentions(previous_at + 1, at, subjects=True) == others):
                return others[0]
            return None
        joint = " and " in previous
        if word in ("he", "she"):
            return previous if not joint and not _is_org(previous) else None
        if word == "they":
            return previous if joint else None
        if word == "it":
            return previous if _is_org(previous) else None
        return None

    def _pair_before(self, subj: Token) -> str | None:
        """"Jon Melk and his neighbour Rosa Teague had fought the project. They said …": the two people of the
        previous sentence's coordinated subject, when nobody else is named there."""
        sents = list(subj.doc.sents)
        k = next(i for i, s in enumerate(sents) if s.start <= subj.i < s.end)
        if k == 0:
            return None
        prev = sents[k - 1]
        root = prev.root
        first = next((c for c in root.children if c.dep_ == "nsubj"), None)
        if first is None:
            return None
        heads = [first, *first.conjuncts]
        names = [self._named(h, alone=True) for h in heads]
        ps = self._offset(subj)
        named = self._mentions(ps + prev.start_char, ps + prev.end_char)
        if len(heads) == 2 and len(names) == 2 and None not in names and set(named) == set(names):
            return " and ".join(n for n in names if n)
        return None

    def _joint(self, subj: Token, previous_at: int) -> str | None:
        """"the two ministers" / "both leaders": the two people named since the previous quote, if exactly two."""
        if subj.tag_ not in ("NNS",) or not any(c.lower_ in _JOINT_NUMBERS for c in subj.children):
            return None
        names = self._mentions(previous_at + 1, subj.idx + self._offset(subj))
        return " and ".join(names) if len(names) == 2 else None

    def _offset(self, tok: Token) -> int:
        """The character offset of `tok`'s paragraph in the text."""
        for (ps, _), doc in zip(self.paragraphs, self.docs):
            if doc is tok.doc:
                return ps
        return 0


def _inverted_name(verb: Token) -> str | None:
    """`“…,” said Per Aldous` when the parser gave the verb no subject: the capitalised words right after it,
    ending in a proper noun ("Per" read as a preposition)."""
    doc = verb.doc
    words: list[Token] = []
    for tok in doc[verb.i + 1:verb.i + 5]:
        if not tok.text[:1].isupper() or not tok.is_alpha:
            break
        words.append(tok)
    while words and not _capital(words[-1]):
        words.pop()
    if len(words) < 2 or words[0].lower_ in _TITLES:
        return None
    return " ".join(t.text for t in words)


def _subject(verb: Token) -> Token | None:
    """The active subject of a speech verb, through "and added" / ", adding that" to the verb that has one."""
    tok = verb
    for _ in range(3):
        subj = next((c for c in tok.children if c.dep_ in ("nsubj",)), None)
        if subj is not None:
            return subj
        if any(c.dep_ in ("nsubjpass", "expl") for c in tok.children):
            return None
        if tok.dep_ in ("conj", "advcl", "xcomp") and tok.head is not tok:
            tok = tok.head
        else:
            return None
    return None


# --- the public functions -------------------------------------------------------------------------------------------

def _prepare(text: object) -> tuple[str, list[tuple[int, int]]] | None:
    if not isinstance(text, str) or not text:
        return None
    clipped = _clean(text[:MAX_CHARS])
    return clipped, _paragraphs(clipped)


def _readers(texts: Iterable[object], batch_size: int) -> list[_Reader | None]:
    """A reader for each text (None for a text that is not one), the paragraphs that may quote parsed in one
    `nlp.pipe`; a text the pipeline or the reader fails on is logged and gets None, the others are still read."""
    prepared = [_prepare(t) for t in texts]
    flat = [p[0][s:e] for p in prepared if p is not None for s, e in p[1] if _MAY_QUOTE.search(p[0], s, e)]
    try:
        docs = iter(list(_nlp.pipe(flat, batch_size=batch_size)))
    except Exception:  # one text the pipeline cannot take: read the others one by one
        if len(prepared) == 1:
            log.exception("quotes: the pipeline failed on a text of %d characters", sum(map(len, flat)))
            return [None]
        return [_readers([p[0] if p is not None else None], batch_size)[0] for p in prepared]
    readers: list[_Reader | None] = []
    for p in prepared:
        if p is None:
            readers.append(None)
            continue
        text, paragraphs = p
        own = [next(docs) if _MAY_QUOTE.search(text, s, e) else None for s, e in paragraphs]
        try:
            readers.append(_Reader(text, paragraphs, own))
        except Exception:  # never let one odd article stop an ingest
            log.exception("quotes: could not read a text of %d characters", len(text))
            readers.append(None)
    return readers


def quotes_of_many(texts: Iterable[object], batch_size: int = BATCH_SIZE) -> list[list[Quote]]:
    """`quotes_of` for each text, their paragraphs parsed together in batches (the way ingest should call it)."""
    results: list[list[Quote]] = []
    for reader in _readers(texts, batch_size):
        try:
            results.append(reader.read() if reader is not None else [])
        except Exception:  # never let one odd article stop an ingest: log it, give it no quotes
            log.exception("quotes: could not read a text of %d characters", len(reader.text) if reader else 0)
            results.append([])
    return results


def quotes_of(text: str) -> list[Quote]:
    """The quotes of one article (title on the first line, then the body), in text order."""
    return quotes_of_many([text])[0]


def aliases_of(text: str) -> dict[str, str]:
    """Each name form the text uses (titles stripped) -> the fullest name it is part of; ambiguous forms left out."""
    [reader] = _readers([text], BATCH_SIZE)
    if reader is None:
        return {}
    out = {}
    for name in reader.names:
        full = reader.aliases.canonical(name.text)
        if full is not None:
            out[name.text] = full
    for acro, full in reader.aliases.acronyms.items():
        if (canonical := reader.aliases.canonical(full)) is not None:
            out[acro] = canonical
    return out


def speakers_of(text: str) -> list[str]:
    """The distinct speakers of the text's quotes, in order of their first quote (a joint speaker as "A and B")."""
    return list(dict.fromkeys(q.speaker for q in quotes_of(text) if q.speaker is not None))
