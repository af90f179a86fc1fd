"""Free text people type (notes, pseudonyms), made safe to show to others.

Right-to-left overrides and isolates (U+202A-U+202E, U+2066-U+2069) reorder what follows them
on screen, so "gpj.exe" can read as "exe.jpg"; zero-width characters (U+200B-U+200F, U+FEFF)
make two different strings look alike. Both, and every other control or format character
(Unicode categories Cc and Cf) but the newline, are removed; the rest is put in NFC, so that
text that looks the same is stored the same.
"""

import unicodedata

# Listed for the reader; every one of them is in category Cc or Cf and removed by that rule.
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
ZERO_WIDTH = frozenset(chr(c) for c in (*range(0x200B, 0x2010), 0xFEFF))


def _kept(char: str, *, newlines: bool) -> bool:
    if char == "\n":
        return newlines
    return unicodedata.category(char) not in ("Cc", "Cf")


def normalise_text(value: str, *, newlines: bool = True) -> str:
    """``value`` in NFC without control and format characters (newlines kept when
    ``newlines``), with surrounding whitespace stripped."""
    # "\r\n" and lone "\r" are line breaks too: one form is stored.
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    kept = "".join(c for c in value if _kept(c, newlines=newlines))
    return unicodedata.normalize("NFC", kept).strip()
