"""Pseudonyms: normalised like any shown text, and none that passes for the team behind the site.

A volunteer called "Admin" or "expert team" on a leaderboard, or in a report an expert reads,
speaks with an authority it does not have. Reserved names are compared by their *skeleton*:
case, separators, look-alike digits and symbols, and accents folded away, so "ADMIN",
"Adm1n", "expert_team" and "m.s.c.r.o.w.d" all match.
"""

import re
import secrets
import unicodedata

from backend.core.errors import InvalidInput
from backend.core.text import normalise_text

RESERVED_NAMES = (
    "admin",
    "administrator",
    "expert",
    "experts",
    "expert team",
    "mscrowd",
    "moderator",
    "staff",
    "support",
    "system",
    "root",
    "official",
    "help desk",
    "security",
    "superuser",
    "sysop",
)
# Characters that stand for letters in look-alike spellings; "rn" reads as "m", "vv" as "w".
_LOOKALIKES = str.maketrans(
    {"0": "o", "1": "i", "l": "i", "|": "i", "!": "i", "3": "e", "4": "a", "@": "a"}
    | {"5": "s", "$": "s", "7": "t", "8": "b", "9": "g", "6": "g", "2": "z"}
)
_SEPARATORS = re.compile(r"[\s_.\-]+")
_TRAILING_DIGITS = re.compile(r"\d+$")


_ADJECTIVES = (
    "amber",
    "brisk",
    "calm",
    "deft",
    "eager",
    "fleet",
    "gentle",
    "keen",
    "lucid",
    "merry",
    "nimble",
    "quiet",
    "rapid",
    "steady",
    "sunny",
    "vivid",
    "wise",
    "zesty",
)
_ANIMALS = (
    "otter",
    "heron",
    "lynx",
    "finch",
    "badger",
    "marten",
    "wren",
    "ibex",
    "gecko",
    "puffin",
    "osprey",
    "tapir",
    "koala",
    "bison",
    "egret",
    "newt",
    "vole",
    "crane",
)


def random_pseudonym() -> str:
    """A pseudonym like ``brisk-heron-0042`` for a volunteer who chose none."""
    animal = secrets.choice(_ANIMALS)
    return f"{secrets.choice(_ADJECTIVES)}-{animal}-{secrets.randbelow(10_000):04d}"


class ReservedName(InvalidInput):
    """The pseudonym reads as the site's own staff or system (``reserved_name``)."""


def normalise_name(name: str) -> str:
    """A pseudonym as stored: NFC, no control, format or line-break characters, inner runs of
    whitespace as one space."""
    return " ".join(normalise_text(name, newlines=False).split())


def skeleton(text: str) -> str:
    """What ``text`` looks like, for comparing names: accents, case, separators and
    look-alike characters folded (``"Adm1n_"`` -> ``"admin"``)."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    letters = "".join(c for c in folded if not unicodedata.combining(c))
    squeezed = _SEPARATORS.sub("", letters).translate(_LOOKALIKES)
    return squeezed.replace("rn", "m").replace("vv", "w")


_RESERVED = frozenset(skeleton(name) for name in RESERVED_NAMES)


# Capitalised runs of letters: the words of a CamelCase name.
_CAMEL = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")


def is_reserved(name: str) -> bool:
    """Whether ``name``, one of its words, or it without trailing digits ("admin42") reads as
    a reserved name; and any name that contains "mscrowd"."""
    normal = normalise_name(name)
    lowered = normal.casefold()
    # Words by separators and by case ("SiteAdmin", "AdminBot"), each also without a plural s.
    words = {*_SEPARATORS.split(lowered), *(w.casefold() for w in _CAMEL.findall(normal))}
    words |= {w[:-1] for w in words if len(w) > 3 and w.endswith("s")}
    candidates = {lowered, _TRAILING_DIGITS.sub("", lowered), *words}
    skeletons = {skeleton(c) for c in candidates if c}
    return bool(skeletons & _RESERVED) or skeleton("mscrowd") in skeleton(lowered)


def check_pseudonym(name: str) -> None:
    """``ReservedName`` (422) when a volunteer may not take ``name``."""
    if is_reserved(name):
        raise ReservedName(
            "This pseudonym is reserved (it reads like the site's staff or system); "
            "choose another one"
        )
