"""The speech verbs of the quote extractor (assistant/text/quotes.py): their lexicon and inflected forms, the test
that a parsed token is one (a cue), and the dependency matcher that finds a cue with its reported clause, or
"according to" with its source."""

from __future__ import annotations

import re
import threading
from typing import TYPE_CHECKING

from assistant.text import nlp as _nlp

if TYPE_CHECKING:
    from assistant.text.nlp import Token

# The tagger's fine-grained (Penn Treebank) tags are read directly: the pipeline has no attribute_ruler to map them
# to coarse parts of speech (it cost as much as the parser).
_VERB_TAGS = frozenset({"VB", "VBD", "VBG", "VBN", "VBP", "VBZ"})


# --- speech verbs -------------------------------------------------------------------------------------------------

# Verbs that introduce a quote or reported clause anywhere in their sentence.
_SPEECH = (
    "say tell add state explain note argue warn claim insist acknowledge admit announce confirm deny write reply "
    "respond conclude stress emphasise emphasize declare reiterate assert allege concede contend observe remark "
    "recall predict estimate tweet answer complain report caution continue ask testify point affirm quip chime joke "
    "muse lament exclaim recount share"
).split()
# Verbs that report speech only with a "that" clause ("believe that ...", not "believe the report").
_THAT_ONLY = "believe think suggest agree fear hope expect maintain urge promise pledge vow feel post".split()
# Verbs that take a partial quote as their object ("called the plan “a patch”"), only when the quote is inside it.
_PARTIAL = "call criticise criticize condemn describe accuse dismiss praise label brand".split()

_IRREGULAR = {
    "say": ["said"], "tell": ["told"], "write": ["wrote", "written"], "think": ["thought"], "feel": ["felt"],
    "admit": ["admitted", "admitting"], "label": ["labelled", "labelling"], "quip": ["quipped", "quipping"],
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


# "Ada Brenn toldThe Gazette": a speech verb glued to the next word by a space lost with a link's markup.
_GLUED = re.compile(r"(said|says|told|tells|wrote|writes|added|adds)(?=[A-Z][a-z])")


def _cue(token: Token) -> str | None:
    """The lemma of a speech verb, or None when `token` is not one."""
    if token.tag_ not in _VERB_TAGS:
        glued = _GLUED.match(token.text)
        return _LEMMA[glued.group(1)] if glued else None
    lemma = _LEMMA.get(token.lower_)
    if lemma == "point" and not any(c.dep_ == "prt" and c.lower_ == "out" for c in token.children):
        return None
    return lemma



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

