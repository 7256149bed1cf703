"""The attribution scorer (bench/attribution.py) on invented text: span matching, speaker matching, what counts
for and against precision and recall, the hash check, and the trivial baseline.

Fictional people and places only; the real labelled set reads the realtimeqa dataset, which the tests never
touch (evaluation only).
"""

from __future__ import annotations

import json

import pytest

from bench.attribution import LabelsStale, Quote, baseline, check, load_labels, same_speaker, score, seed_body, sha1_8

TEXT = ("Mayor Ilsa Varnholt said that the Quillby bridge would reopen in May. "
        "“We are ready,” Varnholt said. The council called it a “historic day” for Quillby. "
        "“It is late,” one resident said.")


def span(text: str, part: str) -> tuple[int, int]:
    start = text.index(part)
    assert text.count(part) == 1
    return start, start + len(part)


def label(text: str, part: str, kind: str, speaker: str | None) -> dict:
    s, e = span(text, part)
    return {"start": s, "end": e, "sha1_8": sha1_8(text[s:e]), "kind": kind, "speaker": speaker}


ROW = {"url": "toy:quillby", "field": "body", "labeller_note": "invented", "aliases": {"Ilsa Varnholt": ["the mayor"]},
       "quotes": [label(TEXT, "the Quillby bridge would reopen in May", "reported", "Ilsa Varnholt"),
                  label(TEXT, "We are ready,", "direct", "Ilsa Varnholt"),
                  label(TEXT, "historic day", "other", None),
                  label(TEXT, "It is late,", "direct", None)]}


def q(part: str, kind: str, speaker: str | None, text: str = TEXT) -> Quote:
    return Quote(*span(text, part), kind, speaker)


def run(*preds: Quote) -> dict:
    return score([(TEXT, ROW)], lambda text: list(preds))


def test_a_perfect_extractor_scores_one_and_the_unnamed_quote_counts_only_for_span_recall():
    r = run(q("the Quillby bridge would reopen in May", "reported", "Ilsa Varnholt"),
            q("We are ready,", "direct", "Varnholt"), q("It is late,", "direct", None))
    assert (r["direct"]["precision"], r["direct"]["recall"], r["direct"]["span_recall"]) == (1.0, 1.0, 1.0)
    assert (r["reported"]["precision"], r["reported"]["recall"]) == (1.0, 1.0)
    assert r["direct"]["labelled_named"] == 1 and r["direct"]["labelled"] == 2 and not r["wrong"]


def test_wrong_speaker_unnamed_speaker_and_spurious_all_count_against_precision():
    r = run(q("We are ready,", "direct", "Tomas Brell"),          # wrong person
            q("It is late,", "direct", "Varnholt"),               # a name on an unnamed speaker's quote
            q("Mayor Ilsa Varnholt", "direct", "Ilsa Varnholt"))  # no quote there
    d = r["direct"]
    assert (d["wrong_speaker"], d["named_unnamed"], d["spurious"], d["correct"]) == (1, 1, 1, 0)
    assert d["precision"] == 0.0 and d["recall"] == 0.0 and d["span_recall"] == 1.0
    assert r["wrong"] == [{"url": "toy:quillby", "kind": "direct", **dict(zip(("start", "end"), span(TEXT, "We are ready,"))),
                           "label": "Ilsa Varnholt", "predicted": "Tomas Brell"}]


def test_other_spans_are_ignored_and_a_speakerless_prediction_is_not_counted_in_precision():
    r = run(q("historic day", "direct", "Quillby"), q("We are ready,", "direct", None))
    d = r["direct"]
    assert d["ignored_other"] == 1 and d["predicted_named"] == 0 and d["precision"] is None
    assert d["span_found"] == 1 and d["recall"] == 0.0


def test_spans_match_at_half_of_each_span_and_kinds_do_not_cross():
    text_span = span(TEXT, "the Quillby bridge would reopen in May")
    wide = Quote(text_span[0] - 30, text_span[1], "reported", "Ilsa Varnholt")  # more than half of it is label
    too_wide = Quote(0, text_span[1] + 60, "reported", "Ilsa Varnholt")
    as_direct = Quote(*text_span, "direct", "Ilsa Varnholt")
    assert run(wide)["reported"]["correct"] == 1
    assert run(too_wide)["reported"]["spurious"] == 1
    r = run(as_direct)
    assert r["direct"]["spurious"] == 1 and r["reported"]["span_found"] == 0


def test_one_labelled_quote_takes_one_prediction():
    r = run(q("We are ready,", "direct", "Varnholt"), q("We are ready", "direct", "Varnholt"))
    assert r["direct"]["correct"] == 1 and r["direct"]["spurious"] == 1


def test_speaker_matching():
    aliases = {"Ilsa Varnholt": ["the mayor"], "Orla Penn and Ida Marsk": ["the two envoys"]}
    others = ["Ilsa Varnholt", "Beno Varnholt", "Orla Penn and Ida Marsk", "Quillby Harbour Authority"]
    assert same_speaker("ilsa varnholt", "Ilsa Varnholt", aliases, others)
    assert same_speaker("The Mayor", "Ilsa Varnholt", aliases, others)
    assert not same_speaker("Varnholt", "Ilsa Varnholt", aliases, others)        # two Varnholts in the article
    assert same_speaker("Varnholt", "Ilsa Varnholt", aliases, ["Ilsa Varnholt"])  # one: the last name will do
    assert same_speaker("Dr. Ilsa Varnholt", "Ilsa Varnholt", aliases, others)
    assert same_speaker("Ida Marsk and Orla Penn", "Orla Penn and Ida Marsk", aliases, others)
    assert same_speaker("Marsk and Penn", "Orla Penn and Ida Marsk", aliases, others)
    assert same_speaker("the two envoys", "Orla Penn and Ida Marsk", aliases, others)
    assert not same_speaker("Orla Penn", "Orla Penn and Ida Marsk", aliases, others)
    assert not same_speaker("Quillby Times", "The Borne Times", {}, ["The Borne Times"])  # organisation word


def test_the_hash_check_fails_on_changed_text():
    check([ROW], {"toy:quillby": TEXT})
    with pytest.raises(LabelsStale, match="no longer has hash"):
        check([ROW], {"toy:quillby": "Breaking: " + TEXT})
    with pytest.raises(LabelsStale, match="not in the dataset"):
        check([ROW], {})


def test_the_baseline_finds_quotes_and_the_name_before_said():
    found = baseline(TEXT)
    direct = {TEXT[p.start:p.end]: p.speaker for p in found if p.kind == "direct"}
    assert direct == {"We are ready,": "Varnholt", "historic day": None, "It is late,": None}
    reported = [(TEXT[p.start:p.end], p.speaker) for p in found if p.kind == "reported"]
    assert reported == [("the Quillby bridge would reopen in May", "Mayor Ilsa Varnholt")]
    r = score([(TEXT, ROW)], baseline)
    assert r["direct"]["precision"] == 1.0 and r["reported"]["precision"] == 1.0


def test_label_file_and_seed_body(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(ROW) + "\n\n", encoding="utf-8")
    assert load_labels(path) == [ROW]
    seed = tmp_path / "seed.txt"
    seed.write_text("Quillby bridge reopens\n\n\nThe bridge reopened.\n\nIt was late.\n\n", encoding="utf-8")
    assert seed_body(seed) == "The bridge reopened.\n\nIt was late."


def test_the_ingest_extractor_reads_nfc_and_answers_in_the_labelled_text_offsets():
    """Ingest stores articles in NFC; labels hold offsets into the publisher's text, which may write accents
    as combining marks: the scorer's `ingest` maps each quote back to that text."""
    import unicodedata

    from bench.attribution import ingest, nfc_offsets

    text = unicodedata.normalize("NFD", "“The quay is ready,” said Renée Árvalo. Later, José Ruiz said the ferry ran.")
    back = nfc_offsets(text)
    composed = unicodedata.normalize("NFC", text)
    assert len(back) == len(composed) + 1 and back[-1] == len(text)
    assert all(unicodedata.normalize("NFC", text[:back[i]]) == composed[:i] for i in range(len(composed) + 1))
    quotes = ingest(text, "Quay works")
    assert [(text[q.start:q.end], unicodedata.normalize("NFC", q.speaker)) for q in quotes] == [
        ("The quay is ready,", "Renée Árvalo"), ("the ferry ran", "José Ruiz")]
