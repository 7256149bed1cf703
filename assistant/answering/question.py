"""A question read once: what kind of fact it asks for, whom and what it names, who it asks about speaking.

`analyse(question)` returns a `Question` (cached by text, so the chain and the engines share one reading):

- `answer_type`: 'person', 'organisation', 'date', 'number', 'amount', 'place' or None, from the wh-word and
  its head ("who" -> person (an organisation also answers it), "when" / "what year" -> date, "how many" ->
  number, "how much" -> amount, "where" / "which country" -> place, "which company" -> organisation; up to
  three words may stand before the head: "which US state", "which fast-food restaurant chain");
  `yes_no` for questions opening with an auxiliary ("Did Russia offer ...?");
- `entities`: spaCy's named entities (text, label, character span), `named` those a reply must cover
  (people, organisations, places);
- `verb`: the lemma of the main verb;
- `said_by` / `about`: the speaker and topic of "What did X say about Y?" / "What has X said about Y?";
  `asks_speaker`: "Who said ...?", "Who condemned ...?".

The pipeline is `assistant.text.nlp.question_nlp()` (ner, tagger, lemmatizer; no parser): 4.1 ms per question
on 2 cores, measured over 7 questions x 20.

`mentions(entity, text)` is the one test of whether a passage mentions a named entity: its full name, or a
person's last name, or an organisation's initials, compared case- and accent-insensitively ("Erdogan" matches
"Erdoğan").
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.text.nlp import question_nlp
from assistant.text.words import STOPWORDS

if TYPE_CHECKING:
    from assistant.text.nlp import Span

# Labels of the entities a reply must cover: people, organisations, places.
NAMED_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "FAC"})

_AUX = r"(?:did|does|do|was|were|is|are|will|would|has|have|had|can|could|should)"
_PLACE_HEADS = (r"country|countries|city|cities|state|states|town|nation|region|province|capital|continent|island|"
                r"county|village|place|location|port|sea|river|border|territory|neighbourhood|neighborhood|area")
_ORG_HEADS = (r"company|companies|firm|chain|store|retailer|app|platform|network|airline|brand|organi[sz]ation|"
              r"group|party|team|club|agency|bank|outlet|newspaper|broadcaster|union|university|carrier|automaker|"
              r"carmaker|manufacturer|business|restaurant|ministry|government|court|alliance|service|website|"
              r"startup|giant|maker|channel|studio|publisher|school|hospital|charity|body|institution")
_PERSON_HEADS = (r"person|people|man|woman|politician|leader|president|minister|actor|actress|singer|player|"
                 r"athlete|official|ceo|executive|journalist|author|writer|artist|star|figure|celebrity|rapper|"
                 r"musician|judge|senator|governor|lawmaker|candidate|spokesman|spokeswoman|spokesperson|coach|"
                 r"director|founder|chief|head|pope|king|queen|prince|princess|general|commander|driver|golfer|"
                 r"manager|scientist|economist|analyst|envoy|ambassador|diplomat|mayor|chancellor|premier")
_OPEN = r"(?:^|[.?!;:]\s+|\bor\s+)"  # where a question's wh-word starts (the text, a new sentence)
# Up to three words between "which"/"what" and its head ("which American restaurant chain", "what US state");
# no auxiliary, article or preposition among them ("what did the company say" asks for no company).
_MODIFIERS = (r"(?:(?!(?:" + _AUX + r"|the|a|an|of|in|on|at|to|for|from|with|by|and|or|not|that|this)\b)"
              r"[\w'’.-]+\s+){0,3}")
_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bhow much\b|\b(?:what|which) (?:amount|price|sum|cost|fine|fee|salary|budget)\b", re.I),
     "amount"),
    (re.compile(r"\bhow (?:many|old|long|far|big|tall|high|deep|fast)\b|"
                r"\b(?:what|which) (?:percentage|percent|share|number|proportion|rate|age|score)\b", re.I),
     "number"),
    (re.compile(_OPEN + r"when\b|\bwhen " + _AUX + r"\b|\b(?:what|which) (?:year|month|day|date|time|week|decade)\b|"
                r"\bsince when\b", re.I), "date"),
    (re.compile(_OPEN + r"where\b|\bwhere " + _AUX + r"\b|\b(?:what|which)\s+" + _MODIFIERS + r"(?:" + _PLACE_HEADS + r")\b", re.I),
     "place"),
    (re.compile(r"\b(?:what|which)\s+" + _MODIFIERS + r"(?:" + _ORG_HEADS + r")\b", re.I), "organisation"),
    (re.compile(_OPEN + r"(?:who|whom|whose)\b|\b(?:by|to|with|from|for|of) whom\b|"
                r"\b(?:what|which)\s+" + _MODIFIERS + r"(?:" + _PERSON_HEADS + r")\b", re.I), "person"),
)
_YES_NO = re.compile(r"^" + _AUX + r"n?'?t?\b|^(?:isn't|aren't|wasn't|didn't|doesn't|hasn't|haven't)\b", re.I)
_SPEECH_VERBS = ("say|said|says|tell|told|claim|claimed|argue|argued|state|stated|write|wrote|announce|announced|"
                 "warn|warned|think|thought|suggest|suggested|reply|replied|respond|responded|comment|commented")
_SAID_BY = re.compile(r"\b(?:what|how)\s+(?:did|does|do|has|have|had|is|was|were)\s+(?P<who>.+?)\s+(?:been\s+)?"
                      r"(?:" + _SPEECH_VERBS + r"|saying|telling|claiming|arguing|writing|announcing|warning)\b"
                      r"(?:\s+(?:about|on|of|regarding|concerning|in|after)\s+(?P<about>[^?]+))?", re.I)
# Lemmas of verbs that make "Who <verb> ...?" a question about a speaker.
SPEAKER_VERBS = frozenset("""say tell state claim argue condemn criticise criticize deny warn announce praise call
describe accuse reject welcome urge insist suggest add write declare dismiss blame threaten vow pledge promise
express stress comment respond reply note acknowledge admit confirm denounce slam hail question demand predict
""".split())


@dataclass(frozen=True)
class Entity:
    """A named entity of the question: its text (without a leading "the"), spaCy label and character span."""

    text: str
    label: str
    start: int
    end: int
    setting: bool = False  # a place the question is set in ("in the US", "a US retailer"), not asked about


@dataclass(frozen=True)
class Question:
    text: str
    answer_type: str | None = None
    yes_no: bool = False
    entities: tuple[Entity, ...] = ()
    verb: str | None = None
    said_by: str | None = None
    about: str | None = None
    asks_speaker: bool = False
    parts: tuple[tuple[int, int], ...] = field(default=())  # character spans of the question's parts

    @property
    def named(self) -> tuple[Entity, ...]:
        """The people, organisations and places the question names (each once), which a reply must cover."""
        seen: set[str] = set()
        out = []
        for e in self.entities:
            key = fold(e.text)
            if e.label in NAMED_LABELS and key not in seen:
                seen.add(key)
                out.append(e)
        return tuple(out)

    def part_of(self, entity: Entity) -> int:
        """Which of the question's parts holds an entity (0 when it has one part)."""
        return next((i for i, (s, e) in enumerate(self.parts) if s <= entity.start < e), 0)


@functools.lru_cache(maxsize=4096)
def fold(text: str) -> str:
    """Text for comparing names: accents dropped, case folded, curly apostrophes straightened (remembered: one
    answer checks each passage against every name of its question, and the chain and the engine both check)."""
    decomposed = unicodedata.normalize("NFKD", text.replace("’", "'"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _keys(entity: Entity) -> list[str]:
    """The forms a passage may use for an entity: full name; a person's last name; an organisation's initials."""
    full = fold(entity.text)
    keys = [full]
    words = [w for w in re.findall(r"\w+(?:[-']\w+)*", full) if w not in STOPWORDS]
    if entity.label == "PERSON" and len(words) > 1 and len(words[-1]) >= 3:
        keys.append(words[-1])
    if entity.label != "PERSON" and len(words) > 1:
        keys.append("".join(w[0] for w in words))  # the International Olympic Committee -> ioc
    return keys


def mentions(entity: Entity, text: str) -> bool:
    """Whether a text names the entity (see `_keys`); a many-word organisation or place also when all its
    words occur ("the Westminster Kennel Club Dog Show" in a text about the Westminster dog show's kennel club)."""
    if re.fullmatch(r"[A-Z]{2,5}", entity.text.replace(".", "")):  # initials, in capitals: US, U.S., United States
        initials = entity.text.replace(".", "")
        expanded = r"\s+(?:(?:of|the|and|for)\s+)?".join(f"{c}\\w+" for c in initials)
        return re.search(rf"(?<!\w)(?:{initials}|{expanded})(?!\w)", re.sub(r"(?<=[A-Z])\.", "", text)) is not None
    folded = re.sub(r"(?<=\b\w)\.(?=\w\b)", "", fold(text))  # u.s. senate -> us. senate
    for key in _keys(entity):
        if re.search(r"(?<!\w)" + re.escape(key).replace(r"\.", r"\.?") + r"(?!\w)", folded):
            return True
    words = [w for w in re.findall(r"\w+", fold(entity.text)) if w not in STOPWORDS]
    if entity.label != "PERSON" and len(words) > 1:
        have = set(re.findall(r"\w+", folded))
        return all(w in have for w in words)
    return False


def answer_type_of(text: str) -> str | None:
    """The kind of fact the question's wh-word and head ask for (see the module docstring)."""
    found = [(m.start(), -m.end(), kind) for pattern, kind in _TYPES for m in [pattern.search(text)] if m]
    # The first wh-phrase of the question decides, and its last head ("which party leader" asks for a person).
    return min(found)[2] if found else None


def _parts(text: str) -> tuple[tuple[int, int], ...]:
    """The question's parts: cut at "and" / "or" / ";" / a question mark before the end (one part when none)."""
    cuts = [m for m in re.finditer(r"\s(?:and|or|as well as)\s|;|\?(?=\s*\S)|,\s(?:and|but)\s", text, re.I)]
    spans, pos = [], 0
    for m in cuts:
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, len(text)))
    return tuple(spans)


_SETTING_BEFORE = re.compile(r"\b(?:in|on|at|across|throughout|around|inside|outside|near|from|within)\s+(?:the\s+)?$",
                             re.I)
_PLACE_LABELS = frozenset({"GPE", "LOC"})


def _entity(span: Span) -> Entity:
    """An entity of the question; a place is its setting after a locative preposition or before a noun."""
    text, start = span.text, span.start_char
    m = re.match(r"(?i)the\s+", text)
    if m:
        text, start = text[m.end():], start + m.end()
    if span.label_ == "PERSON":  # "Donald Trump's Cabinet": the person is the owner
        text = re.split(r"['’]s\b", text)[0]
    text = re.sub(r"['’]s$", "", text)
    setting = False
    if span.label_ in _PLACE_LABELS:
        doc = span.doc
        after = doc[span.end] if span.end < len(doc) else None
        setting = bool(_SETTING_BEFORE.search(doc.text[:span.start_char])) or (
            after is not None and after.tag_ in ("NN", "NNS") and not span.text.endswith(("'s", "’s")))
    return Entity(text, span.label_, start, start + len(text), setting)


@functools.lru_cache(maxsize=512)
def analyse(question: str) -> Question:
    """The question's reading (see the module docstring); the same object for the same text."""
    text = " ".join(question.split())
    doc = question_nlp()(text)
    entities = tuple(_entity(e) for e in doc.ents
                     if any(ch.isupper() for ch in e.text) and e.text.lower() not in {"who", "what", "which"})
    verbs = [t for t in doc if t.pos_ == "VERB"]
    verb = verbs[0].lemma_.lower() if verbs else None
    kind = answer_type_of(text)
    parts = _parts(text)
    said_by = about = None
    m = _SAID_BY.search(text)
    if m:
        who = m.group("who")
        inside = [e for e in entities if m.start("who") <= e.start < m.end("who")]
        said_by = inside[0].text if inside else re.sub(r"(?i)^the\s+", "", who).strip()
        if m.group("about"):  # the topic ends with its part of the question
            end = next((e for s, e in parts if s <= m.start("about") < e), m.end("about"))
            about = text[m.start("about"):min(end, m.end("about"))].strip().rstrip(".?!, ") or None
    asks_speaker = bool(re.match(r"\s*(?:who|which (?:" + _PERSON_HEADS + r"|" + _ORG_HEADS + r"))\b", text, re.I)
                        and verb in SPEAKER_VERBS)
    return Question(text, kind, bool(_YES_NO.match(text)), entities, verb, said_by, about, asks_speaker,
                    parts)


@dataclass(frozen=True)
class Coverage:
    """Which named entities of a question some text mentions, and whether what is missing leaves a part.

    The rule: the question's people, organisations and places each must be mentioned by some passage. When one
    is not, a part of the question (see `_parts`) whose named entities are all mentioned is still answered, and
    the reply says which entity is missing; when no part is whole (one-part questions, or every part misses
    one), the reply refuses. A place the question is only set in (after "in", "on", "across"..., or naming a
    noun: "a US retailer", "the happiest country on Earth") is not checked: passages about the subject rarely
    repeat the setting (measured on the dev set: such places missed by the answer's passages were mostly on
    answerable questions). A part naming no entity is never taken for a covered part: "What did Erdogan say
    about the strikes and the sanctions?" is refused, not half-answered.
    """

    missing: tuple[Entity, ...] = ()
    refuse: bool = False

    def sentence(self, absent: Coverage | None = None) -> str:
        """'The articles do not mention X.' ('X or Y', 'X, Y or Z'); empty when nothing is missing.

        With `absent` (the same check over every retrieved passage, when this one is over the cited ones), the
        entities some other passage mentions are said to be missing from the answer's sources instead.
        """
        nowhere = {fold(e.text) for e in absent.missing} if absent is not None else {fold(e.text) for e in self.missing}
        names = list(dict.fromkeys(e.text for e in self.missing))
        out = []
        for subject, group in (("The articles", [n for n in names if fold(n) in nowhere]),
                               ("The passages this answer cites", [n for n in names if fold(n) not in nowhere])):
            if group:
                listed = group[0] if len(group) == 1 else f"{', '.join(group[:-1])} or {group[-1]}"
                out.append(f"{subject} do not mention {listed}.")
        return " ".join(out)


def coverage(question: Question, texts: list[str], labels: frozenset[str] = NAMED_LABELS) -> Coverage:
    """Check the question's named entities (those of `labels`) against texts (passages, with their titles);
    see `Coverage`."""
    checked = [e for e in question.named if e.label in labels and not e.setting]
    missing = tuple(e for e in checked if not any(mentions(e, t) for t in texts))
    if not missing:
        return Coverage()
    bad = {question.part_of(e) for e in missing}
    whole = {question.part_of(e) for e in checked} - bad  # parts naming only a setting are no covered part
    return Coverage(missing, refuse=not whole)
