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

The parts, one job each: assistant/text/quotemarks.py (the characters: paragraphs, spans inside quotation marks),
cues.py (the speech verbs and the matcher), names.py (names and their aliases), speakers.py (who speaks a quote);
this module finds the quotes in the parse and holds the public functions.

Why rules and not textacy. textacy 0.13's `textacy.extract.triples.direct_quotations` was the other approach
measured, on the seed and the nine fictional articles of tests/data/quotes (35 direct and 44 reported quotes; 27
and 33 of them with a named speaker). A quote matches a gold one when they overlap by half of the longer; speaker
precision = right named speakers / named speakers given, recall = right named speakers / gold named speakers.

                                         direct: span P / R, speaker P / R    reported: span P / R, speaker P / R
    rules (this extractor), all 10 texts   1.00 / 1.00,  1.00 / 1.00           1.00 / 1.00,  1.00 / 1.00
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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.text import nlp as _nlp
from assistant.text.cues import _LEMMA, _MAY_QUOTE, _PARTIAL, _THAT_ONLY, _cue, _get_matcher
from assistant.text.names import _capital, _name_run, _names_in, _org_phrase, _person_like
from assistant.text.quotemarks import _clean, _direct_spans, _paragraphs
from assistant.text.speakers import _RESEARCHERS, _Claim, _inverted_name, _name_before, _Speakers, _subject

if TYPE_CHECKING:
    from assistant.text.nlp import Doc, Token

__all__ = ["EXTRACTOR_VERSION", "MAX_CHARS", "Quote", "aliases_of", "quotes_of", "quotes_of_many", "speakers_of"]

log = logging.getLogger(__name__)

# Bump when the extractor's output changes, so the archive's quotes can be re-read by a better one.
EXTRACTOR_VERSION = 6
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


# Verbs that only report speech: a clause they head, put before another speech verb, is a report of a report.
_REPORTING = frozenset({"say", "tell", "write", "ask", "report", "add"})
# A reported clause has a subject of its own; one without is a fragment the parser hung on the verb.
_CLAUSE_SUBJECTS = frozenset({"nsubj", "nsubjpass", "expl", "csubj", "csubjpass"})
# "according to a survey by X": the organisation behind the document.
_DOCUMENTS = set("survey report study poll analysis estimate estimates figures data statement review".split())


# --- reading one text -----------------------------------------------------------------------------------------------

class _Reader(_Speakers):
    def __init__(self, text: str, paragraphs: list[tuple[int, int]], docs: list[Doc | None]):
        self.text = text
        self.paragraphs = paragraphs
        self.docs = docs
        self.directs = _direct_spans(text, paragraphs)
        self.names, self.aliases = _names_in(text, paragraphs, docs)
        self.pronouns = {}

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
        person: tuple[str | None | bool, int] = (False, 0)  # the same for "he" and "she"
        for claim in claims:
            speaker = self._speaker(claim, previous, previous_at, person)
            out.append((claim, speaker))
            if (speaker is not None and claim.subject is not None and claim.subject.lower_ in ("he", "she")
                    and " and " not in speaker):
                self.pronouns.setdefault(speaker, claim.subject.lower_)
            if not claim.headline:
                previous, previous_at = speaker, claim.cue_at
                if not self._not_a_person(claim, speaker):
                    person = (speaker, claim.cue_at)
                if speaker is not None and " and " not in speaker and not _person_like(speaker):
                    self.last_body = (speaker, claim.cue_at)
        # a paragraph-spanning quotation has one speaker: the one its attributed part gives
        by_group: dict[int, str | None] = {}
        for claim, speaker in out:
            if claim.direct is not None and speaker is not None:
                by_group.setdefault(claim.direct.group, speaker)
        # a quote with no cue after a quote or reported clause of the same paragraph ("“…,” Ostrow said. “…”";
        # "…, said Ada Brenn in the Gazette. Such is the “…”") is that speaker's too, when no other name comes
        # between the end of the attributing sentence and the quote
        last: tuple[_Claim, str | None] | None = None
        for k in sorted(range(len(out)), key=lambda k: out[k][0].start):
            claim, speaker = out[k]
            if claim.kind == "direct" and (claim.subject is None and not claim.cue and not claim.headline
                                           and last is not None and last[0].para == claim.para
                                           and last[1] is not None and last[0].cue
                                           and set(self._between(last[0], last[1], claim.start))
                                           <= set(last[1].split(" and "))):
                claim.cue = last[0].cue
                out[k] = (claim, last[1])
            if claim.kind == "direct" or out[k][1] is not None:
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

    def _between(self, claim: _Claim, speaker: str, before: int) -> list[str]:
        """The people named as the subject of their clause between an attributed claim and `before` in its
        paragraph ("… said after Ada Brenn spoke", "Ada Brenn left."): a possible new speaker; a name as an object
        ("said during Vellmar Radio's show", "owned by Ivo Marsh") is what the quote is about."""
        return self._mentions(max(claim.end, claim.cue_at), before, subjects=True, besides=speaker)

    @staticmethod
    def _not_a_person(claim: _Claim, speaker: str | None) -> bool:
        """No single person can have spoken this quote, so "he" or "she" after it looks further back: a quotation
        with no cue at all, "according to" a body or nobody named, a plural subject ("officials said", "they")."""
        if claim.kind == "direct" and not claim.cue and claim.subject is None and not claim.org_source:
            return True
        if claim.cue == "according to":
            return speaker is None or not _person_like(speaker)
        subj = claim.subject
        return speaker is None and subj is not None and (subj.tag_ in ("NNS", "NNPS")
                                                         or subj.lower_ in ("they", "we", "it"))

    def _continue(self, out: list[tuple[_Claim, str | None]], by_group: dict[int, str | None]) -> None:
        """News style: a paragraph that is only a quotation, with no cue, right after a paragraph whose quotes are
        all attributed to one named speaker (a person or a body, not a pair), is that speaker's too (and so is the next
        such paragraph), when nobody else is named in between and the paragraph names nobody outside its quotes.
        Anything less certain keeps no speaker."""
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
            pe = self.paragraphs[n][1]
            if any(ps <= m.start < pe and not self.in_direct(m.start) for m in self.names):
                continue  # "“…,” as the Gazette put it, …": a name outside its quotes may be another speaker
            before = [out[k] for k in by_para.get(n - 1, [])]
            speakers = {s for _, s in before}
            if not before or len(speakers) != 1:
                continue
            [speaker] = speakers
            if speaker is None or " and " in speaker:
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
                    if cue in _THAT_ONLY and not any(c.dep_ == "ccomp" for c in tok.children):
                        continue  # "the figure is feared to be “higher”": no speech without a clause
                    if cue in _PARTIAL or cue in _THAT_ONLY:
                        sub = tok.subtree
                        first, last = min(t.idx for t in sub), max(t.idx + len(t) for t in tok.subtree)
                        if not (first <= d.start - ps and d.end - ps <= last + 1):
                            continue
                    distance = min(abs(tok.idx - (d.end - ps)), abs(tok.idx - (d.start - ps)))
                    if best is None or distance < best[0]:
                        best = (distance, tok, cue)
            according = None if best is not None else self._according_in(sents, ps)
            if according is not None:
                # "All but six states report “very high” levels, according to the Orrin Health Office."
                claim = _Claim(d.start, d.end, "direct", "according to", None, ps + according[0].idx, n == 0, d, n)
                claim.org_source = self._source(doc, *according)
                claims.append(claim)
            elif best is None:
                claims.append(_Claim(d.start, d.end, "direct", "", None, d.start, n == 0, d, n))
            else:
                _, tok, cue = best
                subject = _subject(tok)
                if subject is not None and self.in_direct(ps + subject.idx):
                    # the parser took a word of the quotation for the verb's subject: "Ada Brenn joked that
                    # “we go by train”, adding “…”" hangs "adding" on the quotation's verb; the speech verb that
                    # governs the quotation has the speaker
                    subject = self._governing_subject(subject, ps)
                claim = _Claim(d.start, d.end, "direct", cue, subject, ps + tok.idx, n == 0, d, n)
                if claim.subject is None:
                    claim.org_source = _inverted_name(tok) or _name_before(tok)
                claims.append(claim)
        return claims

    def _governing_subject(self, inner: Token, ps: int) -> Token | None:
        """The subject of the first speech verb outside quotes above the quotation's verb that `inner` is the
        subject of (None when there is none, or its subject is inside a quotation too)."""
        verb = tok = inner.head
        for _ in range(4):
            if not self.in_direct(ps + tok.idx) or tok.head is tok:
                break
            tok = tok.head
        if tok is verb or self.in_direct(ps + tok.idx) or _cue(tok) is None:
            return None
        subject = _subject(tok)
        return subject if subject is not None and not self.in_direct(ps + subject.idx) else None

    def _according_in(self, sents: list, ps: int) -> tuple[Token, Token] | None:
        """The one "according to <source>" outside quotes in these sentences: (according, source)."""
        found = []
        for sent in sents:
            for tok in sent:
                if tok.lower_ == "according" and not self.in_direct(ps + tok.idx):
                    to = next((c for c in tok.children if c.lower_ == "to"), None)
                    source = next((g for g in to.children if g.dep_ == "pobj"), None) if to is not None else None
                    if source is not None:
                        found.append((tok, source))
        return found[0] if len(found) == 1 else None

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

    @staticmethod
    def _rest_of_sentence(last: Token) -> list[Token]:
        """What a reported clause after its verb runs on to, to the end of its sentence, when the parser hung it on
        the verb ("Brenn said the fees were fair, but that has been disputed"): not a participle after a comma, the
        writer's gloss (", signalling a rift"), nor a second speech verb or a semicolon."""
        sent = last.sent
        rest = list(last.doc[last.i + 1:sent.end])
        for k, tok in enumerate(rest):
            if (tok.text == ";" or _cue(tok) is not None
                    or (tok.tag_ == "VBG" and k > 0 and rest[k - 1].text == ",")):
                return [] if k == 0 or rest[k - 1].text != "," else rest[:k - 1]
        return rest

    def _clause(self, doc: Doc, verb: Token, clause: Token, ps: int, n: int) -> _Claim | None:
        cue = _LEMMA.get(verb.lower_)
        if cue is None or _cue(verb) is None or self.in_direct(ps + verb.idx):
            return None
        marks = [c for c in clause.children if c.dep_ == "mark" and c.lower_ == "that" and c.i < clause.i]
        if cue in _THAT_ONLY and not marks:
            return None
        if not any(c.dep_ in _CLAUSE_SUBJECTS for c in clause.children):
            return None  # a clause with no subject of its own is a misparse ("… he says is aimed at …")
        tokens = list(clause.subtree)
        if tokens[0].lower_ in ("who", "which", "whose", "whom", "where"):
            return None  # "said Per Aldous, who speaks for …": a relative clause the parser hung on the verb
        if marks:
            tokens = [t for t in tokens if t.i > marks[0].i]
        elif clause.i < verb.i and not any(t.is_punct for t in doc[clause.right_edge.i + 1:verb.i]):
            return None  # "prices rose, Marrow said" needs the comma; anything else is not a reported clause
        elif clause.i < verb.i and _cue(clause) in _REPORTING:
            return None  # "Ada Brenn said that …, the Gazette reports": the outlet sources her words, its own are none
        if (clause.i > verb.i and not marks and _cue(clause) in _REPORTING
                and "," in (doc[clause.left_edge.i].text, doc[clause.left_edge.i - 1].text)):
            return None  # "Ivo Marsh said …, the Gazette reports": the outlet's attribution, parsed as his clause
        if clause.i > verb.i:
            gloss = next((c for c in clause.children if c.dep_ == "advcl" and c.tag_ == "VBG" and c.i > clause.i
                          and doc[c.left_edge.i - 1].text == ","), None)
            if gloss is not None:  # "…, signalling a truce": the writer's gloss, not the speaker's words
                tokens = [t for t in tokens if t.i < gloss.left_edge.i - 1]
            else:
                tokens += self._rest_of_sentence(tokens[-1])
        span = self._span(doc, tokens, ps)
        if span is None or self.in_direct(ps + clause.idx):
            return None  # the clause of a direct quote ("“…,” Quell told reporters") is that quote
        claim = _Claim(span[0], span[1], "reported", cue, _subject(verb), ps + verb.idx, n == 0, para=n)
        if claim.subject is None:
            # "The results are clear, said Ada Brenn, who …"; "… Ada Brenn said" with no subject parsed
            claim.org_source = (_inverted_name(verb) if clause.i < verb.i else None) or _name_before(verb)
        return claim

    @staticmethod
    def _more_sources(doc: Doc, according: Token) -> bool:
        """"according to X, local reports and …": unnamed sources after the named one, hung elsewhere by the
        parser (an apposition or conjunct in lower case right after the phrase's comma)."""
        k = according.right_edge.i + 1
        if k + 1 >= len(doc) or doc[k].text != ",":
            return False
        tok = doc[k + 1]
        while tok.dep_ in ("amod", "det", "compound", "poss", "nummod") and tok.head is not tok:
            tok = tok.head
        return tok.dep_ in ("appos", "conj") and tok.tag_ in ("NN", "NNS") and tok.text.islower()

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
        claim = _Claim(span[0], span[1], "reported", "according to", None, ps + according.idx, n == 0, para=n)
        claim.org_source = self._source(doc, according, source)
        return claim

    def _source(self, doc: Doc, according: Token, source: Token) -> str | None:
        """The named source of "according to <source>", or None."""
        if source.lower_ in _DOCUMENTS:  # "according to a survey by the Vellmar Chamber of Commerce"
            by = next((c for c in source.children if c.dep_ == "prep" and c.lower_ in ("by", "from", "of")), None)
            source = next((g for g in by.children if g.dep_ == "pobj"), source) if by is not None else source
        if source.lower_ in _RESEARCHERS:  # "according to Saltwind Capital analysts": the firm
            source = next((c for c in source.children if c.dep_ in ("compound", "poss") and _capital(c)), source)
        # "according to the Vellmar Gazette and the Orrin Post": both; "according to X, local reports and …": a mix
        # of named and unnamed sources is no one speaker
        joint = not any(c.dep_ == "cc" and c.lower_ == "or" for c in source.children)  # "X, or XYZ": one name
        runs = [_name_run(s) or _org_phrase(s) for s in (source, *(source.conjuncts if joint else ()))]
        if self._more_sources(doc, according):
            runs.append(None)
        parts = [self.aliases.canonical(r.text) or r.text for r in runs if r is not None]
        return " and ".join(dict.fromkeys(parts)) if None not in runs else None


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
