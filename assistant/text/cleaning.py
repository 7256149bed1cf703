"""Page furniture in scraped articles (bylines, captions, related-story links, newsletter prompts)."""

from __future__ import annotations

import re

# Whole lines that are page furniture, not story text.
_FURNITURE = [
    re.compile(p, re.IGNORECASE) for p in (
        r"^(sign up|subscribe|get (our|the)|join) .{0,120}(newsletter|inbox|updates|email)",
        r"^.{0,60}newsletter\b.{0,80}$",
        r"^(related|read more|more|watch|listen|see also|also read|recommended|trending|live updates|"
        r"opinion|analysis|video|photos?|most read|don't miss|latest)\s*:",
        r"^(advertisement|ad feedback|skip to (main )?content|share( this)?( story| article)?|copy link|"
        r"story continues( below)?( advertisement)?|continue reading|click here.*|print|comments?)\s*$",
        r"^[A-Z][A-Za-z .,'&-]{0,60}\s+—\s*$",  # dateline alone: "CNN —", "Washington —"
        r"^(photo|image|video|credit|caption)s?\s*(credit)?\s*:",
        r"(/|\b)(getty images|ap photo|associated press photo|reuters|afp|shutterstock|usa today network|"
        r"imagn images|epa-efe)\s*\)?$",
        r"^(by|written by)\s+[A-Z][\w.'-]+(\s+[A-Z][\w.'-]+){0,3}(,\s*[\w ]+)?$",
        r"^(the associated press|associated press|usa today|cnn|reuters|ap)\s*$",
        r"^(updated|published|posted)\s+\d.{0,60}$",
        r"^\d+\s+min(ute)?s?\s+read$",
        r"^(this (story|article) (was|has been) (updated|corrected|produced)).{0,200}$",
        r"^(contributing|contributed)\s*:",
        # promos, author bios and contact lines that USA Today / CNN / The Week pages repeat
        r"^need a break\? play the",
        r"^(from )?usa today network and wire reports$",
        r"^subscribe to\b",
        r"\bsign up (here|for (our|the|cnn)|to get)\b",
        r"^prefer to listen\?",
        r"\breach (him|her|them) at\s+\S+@",
        r"^(email|contact|follow)\b.{0,120}(@|\btwitter\b|\bon x\b)",
        r"^we occasionally recommend interesting products",
        r"\bis a usa today content partner\b",
        r"\bmade possible in part by a grant\b",
        r"^\(?(this story (was|has been) updated|this article (was|has been) updated).{0,80}\)?$",
        r"^[–—−-]{1,2}\s*(?-i:[A-Z][\w.'’-]+(\s+[A-Z][\w.'’-]+){0,3})(,\s*usa today( network)?)?$",  # sign-off: "– Marina Pitofsky"
        r"^(special (for|to) usa today|opinion contributor|usa today sports|the news journal|the motley fool)$",
    )
]
# A byline of names only: "Aaron Morrison, Aisha I. Jefferson and Kim Chandler".
_NAMES = re.compile(r"^([A-Z][\w'’.-]*\.?\s){1,3}[A-Z][\w'’-]+((,| and|,? &)\s([A-Z][\w'’.-]*\.?\s){1,3}[A-Z][\w'’-]+)*$")


def is_furniture(line: str, position: int) -> bool:
    """Whether a stripped line is page furniture; `position` is its index among the body's lines."""
    if not line:
        return False
    if any(p.search(line) for p in _FURNITURE):
        return True
    # Names-only bylines sit at the top of the page.
    return position < 4 and len(line) < 90 and bool(_NAMES.match(line)) and not line.endswith(".")


def content_regions(body: str) -> list[tuple[int, int]]:
    """Spans of the body that carry the story: runs of lines that are not page furniture."""
    regions: list[tuple[int, int]] = []
    start: int | None = None
    end = 0
    position = 0
    for m in re.finditer(r"[^\n]*(\n|$)", body):
        if m.start() == len(body) and not m.group():
            break
        line = m.group().strip()
        if not line:
            continue
        ls = m.start()
        le = m.start() + len(m.group().rstrip())
        if is_furniture(line, position):
            if start is not None:
                regions.append((start, end))
                start = None
        else:
            if start is None:
                start = ls
            end = le
        position += 1
    if start is not None:
        regions.append((start, end))
    return regions or [(0, len(body))]
