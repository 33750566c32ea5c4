"""Arabic-aware text normalization for search.

Folds the variation that makes Arabic search miss: diacritics (tashkeel, including Quranic marks),
tatweel (kashida), alef forms (أ إ آ ٱ -> ا), alef maqsura (ى -> ي), taa marbuta (ة -> ه), hamza
carriers (ؤ -> و, ئ -> ي), Arabic-Indic and Persian digits -> ASCII; Latin text is casefolded and
accents are stripped, so one normalized string serves Arabic and English queries alike.
`script_language` tells Arabic from English text by its script, for content that does not say.
"""

from __future__ import annotations

import re
import unicodedata

_DIACRITICS = re.compile("[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06dc\u06df-\u06e8\u06ea-\u06ed]")
_TATWEEL = "\u0640"
_FOLD = str.maketrans(
    {
        "\u0623": "\u0627",  # أ
        "\u0625": "\u0627",  # إ
        "\u0622": "\u0627",  # آ
        "\u0671": "\u0627",  # ٱ
        "\u0649": "\u064a",  # ى -> ي
        "\u0629": "\u0647",  # ة -> ه
        "\u0624": "\u0648",  # ؤ -> و
        "\u0626": "\u064a",  # ئ -> ي
        "\u06cc": "\u064a",  # Persian yeh
        "\u06a9": "\u0643",  # Persian kaf
        **{chr(0x0660 + i): str(i) for i in range(10)},
        **{chr(0x06F0 + i): str(i) for i in range(10)},
    }
)
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def normalize(text: str) -> str:
    """Normalize for matching; idempotent: ``normalize(normalize(x)) == normalize(x)``."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text)
    text = _DIACRITICS.sub("", text).replace(_TATWEEL, "")
    text = text.translate(_FOLD).casefold()
    # Strip Latin accents (é -> e) without touching Arabic letters.
    text = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not (unicodedata.combining(c) and ord(c) < 0x0600)
    )
    text = unicodedata.normalize("NFC", text)
    return " ".join(_NON_WORD.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    return normalize(text).split()


# Proclitics glued to Arabic words: the article and the conjunctions/prepositions before it.
_PREFIXES = ("وبال", "وال", "بال", "فال", "كال", "لل", "ال")


def variants(token: str) -> list[str]:
    """The token and its stem without a leading article/proclitic (المدرسه -> مدرسه), so a query
    for the bare word finds the prefixed one."""
    out = [token]
    for prefix in _PREFIXES:
        if token.startswith(prefix) and len(token) - len(prefix) >= 2:
            out.append(token[len(prefix) :])
            break
    return out


def search_document(*parts: str | None) -> str:
    """One normalized string of every searchable token (and its Arabic stem), space-delimited, so
    `LIKE '% word%'` is a word-prefix match on any backend."""
    words: dict[str, None] = {}
    for part in parts:
        for token in tokens(part or ""):
            for variant in variants(token):
                words.setdefault(variant, None)
    return f" {' '.join(words)} " if words else ""


# Letters of the Arabic script (Arabic, its supplement and extended blocks, presentation forms) and
# of the Latin script (ASCII and Latin-1/Extended-A/B letters).
_ARABIC_LETTER = re.compile(
    "[\u0620-\u064a\u066e-\u06d3\u06fa-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]"
)
_LATIN_LETTER = re.compile("[A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]")


def script_language(text: str | None) -> str | None:
    """`ar` when most letters of the text are Arabic script, `en` when most are Latin, None when it
    has no letters: the platform's two languages told apart by script, for text that does not say
    its language."""
    arabic = len(_ARABIC_LETTER.findall(text or ""))
    latin = len(_LATIN_LETTER.findall(text or ""))
    if not arabic and not latin:
        return None
    return "ar" if arabic >= latin else "en"


_LANGUAGE_NAMES = {"arabic": "ar", "english": "en", "العربية": "ar"}


def primary_language(tag: object) -> str | None:
    """The primary subtag of a language tag, lowercased (`ar-SA` -> `ar`, `en_US` -> `en`; the names
    `Arabic`, `English` and `العربية` as their codes); None for an empty value or one that is not text."""
    if not isinstance(tag, str) or not tag.strip():
        return None
    text = tag.strip().lower()
    return _LANGUAGE_NAMES.get(text) or re.split(r"[-_]", text, maxsplit=1)[0]
