"""Language tags (a BCP-47 subset), their fallbacks, and HTTP ``Accept-Language`` negotiation."""

import re
from collections.abc import Collection

ENGLISH = "en"
# language[-Script][-REGION]: en, de, pt-BR, es-419, zh-Hant, zh-Hant-TW. Enough for
# translations; private-use and variant subtags would only name files nobody writes.
LANGUAGE_TAG = r"[a-z]{2,3}(?:-[A-Z][a-z]{3})?(?:-(?:[A-Z]{2}|[0-9]{3}))?"
_TAG = re.compile(LANGUAGE_TAG)
# A header is sent by the client: only so many ranges are read, so a huge one costs nothing.
MAX_RANGES = 32
_Q = re.compile(r"q=(?P<q>[01](?:\.[0-9]{0,3})?)", re.IGNORECASE)


def canonical(tag: str) -> str:
    """``PT_br`` -> ``pt-BR``: the case BCP-47 recommends, with ``-`` between subtags."""
    parts = tag.strip().replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        if len(part) == 4 and part.isalpha():
            out.append(part.title())
        elif len(part) in (2, 3):
            out.append(part.upper())
        else:
            out.append(part.lower())
    return "-".join(out)


def is_language_tag(tag: str) -> bool:
    """Whether ``tag`` is a language tag of the subset this catalog accepts, in canonical case."""
    return _TAG.fullmatch(tag) is not None


def prefixes(language: str) -> list[str]:
    """``zh-Hant-TW`` -> ``["zh-Hant-TW", "zh-Hant", "zh"]``: the tag, then ever shorter."""
    parts = canonical(language).split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def fallbacks(language: str) -> list[str]:
    """Tags to try in order for ``language``: itself, shorter prefixes, then English."""
    return list(dict.fromkeys([*prefixes(language), ENGLISH]))


def _ranges(header: str) -> list[tuple[str, float]]:
    """``de-AT,de;q=0.8`` -> ``[("de-AT", 1.0), ("de", 0.8)]``, best first, q=0 dropped."""
    ranges: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")[:MAX_RANGES]):
        tag, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            if param.lower().startswith("q="):
                match = _Q.fullmatch(param)
                # A malformed weight says nothing usable: the range is ignored (RFC 9110 12.4.2).
                quality = min(1.0, float(match["q"])) if match else 0.0
        if tag and quality > 0:
            ranges.append((-quality, position, tag))
    # Stable on position: of equal weights the one the client listed first wins.
    return [(tag, -weight) for weight, _, tag in sorted(ranges)]


def negotiate(header: str | None, available: Collection[str]) -> str:
    """The best of ``available`` for an ``Accept-Language`` header, else English."""
    if not header:
        return ENGLISH
    have = {tag.lower(): tag for tag in available}
    for tag, _ in _ranges(header):
        if tag == "*":
            return ENGLISH
        # de-AT asks for de too (lookup, RFC 4647 3.4) ...
        for candidate in prefixes(tag):
            if candidate.lower() in have:
                return have[candidate.lower()]
        # ... and pt or pt-PT take pt-BR rather than a language the client ranks lower.
        primary = canonical(tag).split("-")[0]
        related = sorted(key for key in have if key.split("-")[0] == primary)
        if related:
            return have[related[0]]
    return ENGLISH
