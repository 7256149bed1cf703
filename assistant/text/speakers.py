"""Who speaks each quote: the rules that read the subject of its cue, after the names of assistant/text/names.py
(a name or two, "A and B"; an apposition; a named organisation, through "analysts at X" or "the statement"; a
pronoun back to the previous speaker or the one person named since; "the two ministers" to the two people just
named; the name after an inverted "said"), None when unsure. The reader of assistant/text/quotes.py mixes them in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.text.names import (
    _ORG_WORDS,
    _TITLES,
    _Aliases,
    _capital,
    _is_org,
    _Name,
    _name_run,
    _org_phrase,
    _person_like,
)
from assistant.text.quotemarks import _Direct

if TYPE_CHECKING:
    from assistant.text.nlp import Doc, Token

# People whose organisation speaks through them ("analysts at the Institute ...", "ISW's researchers").
# Nouns that stand for the organisation named just before ("the statement said").
_NOMINAL = set("statement release agency company firm report department".split())
_RESEARCHERS = set("analyst analysts researcher researchers expert experts economist economists scientist "
                   "scientists strategist strategists".split())
# Nouns that stand for the publication quoted just before ("the paper continued", "the news site adds").
_MEDIA = set("paper newspaper site website outlet magazine daily tabloid broadsheet publication broadcaster".split())
# Subjects that name two people introduced just before ("the two ministers", "both leaders").
_JOINT_NUMBERS = {"two", "both"}


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


class _Speakers:
    """The speaker rules of one text's reader (assistant.text.quotes._Reader, which sets what they read)."""
    text: str
    paragraphs: list[tuple[int, int]]
    docs: list[Doc | None]
    names: list[_Name]
    aliases: _Aliases
    in_direct: Callable[[int], bool]  # which direct quote a character offset is in
    last_body: tuple[str | None, int] = (None, 0)  # the last speaker that is a body, not a person (and where)
    _place_names: set[str] | None = None  # see _places
    pronouns: dict[str, str]  # each person the text has called "he" or "she" -> that pronoun (set by the reader)

    # -- speakers
    def _speaker(self, claim: _Claim, previous: str | None | bool, previous_at: int,
                 person: tuple[str | None | bool, int] | None = None) -> str | None:
        """`previous`: the previous quote's speaker (False before the first quote, None when it had none), the
        antecedent of "they" and "it"; `person`: the same for "he" and "she", which skips the quotes no single
        person can have spoken (see assistant.text.quotes._Reader.read)."""
        if claim.cue == "according to":
            return self.aliases.canonical(claim.org_source) if claim.org_source else None
        subj = claim.subject
        if subj is None:
            return self.aliases.canonical(claim.org_source) if claim.org_source else None
        if subj.tag_ == "PRP":
            if claim.headline:
                return None
            if person is not None and subj.lower_ in ("he", "she"):
                previous, previous_at = person
            return self._pronoun(subj, previous, previous_at)
        name = self._named(subj)
        if name is not None:
            return name
        if claim.headline:
            return None
        body, body_at = self.last_body
        if (subj.lower_ in _MEDIA | _NOMINAL | _ORG_WORDS and subj.text.islower()
                and [c.lower_ for c in subj.children if c.dep_ == "det"] == ["the"]
                and body is not None and self._paragraph(body_at) >= self._paragraph(claim.cue_at) - 1):
            # "…, said The Guardian. The rejig “…”, the paper continued."; "“…,” Orrin Ferries said. “…,” the
            # company said.": the last body that spoke, in this paragraph or the one before
            return body
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
        out = []
        for name in self.names:
            if (subjects and not name.subject) or not after <= name.start < before:
                continue
            full = self._person(name)
            if full is not None and not (besides and full != besides and self._describes(name, besides)):
                out.append(full)
        return list(dict.fromkeys(out))

    def _person(self, name: _Name) -> str | None:
        """The fullest form of a mention that may be a person who speaks next: in the body, outside quotes,
        person-like, and no place ("in Port Vellan", or a name the text uses as one elsewhere) and no photo credit
        ("Ada Brenn/Vellmar Gazette")."""
        head_end = self.paragraphs[0][1] if self.paragraphs else 0
        if (name.place or name.start < head_end or self.in_direct(name.start)
                or self.text[name.end:name.end + 1] == "/"):
            return None
        full = self.aliases.canonical(name.text)
        if full is None or full in self._places() or not _person_like(full):
            return None
        return full

    def _places(self) -> set[str]:
        """The names the text uses as places somewhere ("in Port Vellan"): a place wherever they stand."""
        if self._place_names is None:
            self._place_names = {full for n in self.names if n.place
                                 and (full := self.aliases.canonical(n.text)) is not None}
        return self._place_names

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
        at = subj.idx + self._offset(subj)
        if previous is False or previous is None:
            if word in ("he", "she") and previous is False:
                names = self._mentions(0, at)
                return self._fits(names[0], word) if len(names) == 1 else self._recent(at, word, None)
            if word in ("he", "she"):
                # the previous quote had no named speaker: the one person named since it, as a subject, and
                # nobody else
                since = self._mentions(previous_at + 1, at)
                if len(since) == 1 and self._mentions(previous_at + 1, at, subjects=True) == since:
                    return self._fits(since[0], word)
                return self._recent(at, word, None)
            return None
        assert isinstance(previous, str)
        parts = previous.split(" and ")
        since = self._mentions(previous_at + 1, at, besides=previous)
        others = [m for m in since if m not in parts]
        if others:
            # "Mayor Lukas Fenn defended the closure. “…,” he said.": the one person named since the previous
            # quote, as a subject, and the previous speaker not named again; anything else is unsure
            if (word in ("he", "she") and len(others) == 1 and len(since) == 1
                    and self._mentions(previous_at + 1, at, subjects=True) == others):
                return self._fits(others[0], word)
            return self._recent(at, word, previous) if word in ("he", "she") else None
        joint = " and " in previous
        if word in ("he", "she"):
            if joint or _is_org(previous):
                return None
            return self._fits(previous, word)
        if word == "they":
            return previous if joint else None
        if word == "it":
            return previous if _is_org(previous) else None
        return None

    def _fits(self, person: str, word: str) -> str | None:
        """`person`, unless the text already called them by the other pronoun ("she" for a "he")."""
        return person if self.pronouns.get(person, word) == word else None

    def _recent(self, at: int, word: str, previous: str | None) -> str | None:
        """"Ivo Marsh is one of the fishers. … “…,” he says.": the person named last before the pronoun, as the
        subject of a clause in its paragraph or the one before, when the previous speaker cannot be meant (the
        text called them by the other pronoun) and the text never called this person by the other one either."""
        if previous is not None and " and " not in previous and self.pronouns.get(previous, _OTHER[word]) == word:
            return None
        for name in sorted(self.names, key=lambda n: -n.start):
            full = self._person(name) if name.start < at else None
            if full is None:
                continue
            if not name.subject or self._paragraph(name.start) < self._paragraph(at) - 1:
                return None
            return self._fits(full, word) if full != previous else None
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

    def _paragraph(self, at: int) -> int:
        """The index of the paragraph holding a character offset."""
        return next((k for k, (ps, pe) in enumerate(self.paragraphs) if ps <= at < pe), len(self.paragraphs))

    def _offset(self, tok: Token) -> int:
        """The character offset of `tok`'s paragraph in the text."""
        for (ps, _), doc in zip(self.paragraphs, self.docs):
            if doc is tok.doc:
                return ps
        return 0


_OTHER = {"he": "she", "she": "he"}


def _inverted_name(verb: Token) -> str | None:
    """`“…,” said Per Aldous` when the parser gave the verb no subject: the capitalised words right after it,
    ending in a proper noun ("Per" read as a preposition)."""
    if verb.lower_.startswith(("told", "tell")) or not verb.tag_.startswith("VB"):
        return None  # "told Ada Brenn", "toldThe Gazette" (glued): whom it was said to, not who said it
    doc = verb.doc
    words: list[Token] = []
    first = verb.i + 1
    if first < len(doc) and (doc[first].dep_ == "prt" or (verb.lower_.startswith("chime") and doc[first].lower_ == "in")):
        first += 1  # "chimed in Quentin Letts"
    for tok in doc[first:first + 4]:
        if not tok.text[:1].isupper() or not tok.is_alpha:
            break
        words.append(tok)
    while words and not _capital(words[-1]):
        words.pop()
    if len(words) < 2 or words[0].lower_ in _TITLES:
        return None
    return " ".join(t.text for t in words)


def _name_before(verb: Token) -> str | None:
    """`… Amanda Hayes said` when the parser gave the verb no subject (or one inside a quotation): the name that
    ends right before the verb."""
    if verb.i == 0:
        return None
    last = verb.doc[verb.i - 1]
    if not last.whitespace_:
        return None
    if not verb.tag_.startswith("VB") and last.text[:1].isupper() and last.tag_ in ("JJ", "NN") and last.is_alpha:
        return last.text  # "Vellan toldSaltwind Dispatch": a glued verb throws the tagger off the name before it
    if not _capital(last):
        return None
    run = _name_run(last)
    return run.text if run is not None and run.end == verb.i else None


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

