"""Display names and query literals that QBO accepts ([customer] and [queries]).

``sanitize_display_name`` is deterministic: the same input always gives the same output, so
a name computed on one run can be looked up on the next. Its rules, in order:

1. Unicode NFKC normalisation (full-width letters, ligatures, non-breaking spaces → plain).
2. Smart punctuation → ASCII: curly single quotes/primes → ``'``, curly double quotes → ``"``,
   en/em dashes and minus signs → ``-``, ellipsis → ``...``. QBO's query lexer rejects curly
   quotes and en dashes inside a literal, so a name holding one could be saved but never
   found again ([queries]).
3. Each run of ``:`` (QBO's FullyQualifiedName separator, forbidden in names) becomes
   `` - ``; tabs, newlines and other control characters become a space, invisible format
   characters (zero-width space, BOM) are dropped ([customer]).
4. Runs of whitespace collapse to one space and the ends are trimmed; colons at the ends
   or in a row leave no empty segment behind.
5. Longer than ``max_len`` (QBO documents 500, third-party guides 100; we keep 100): cut at
   the last space before the limit when that keeps at least half of it, else hard-cut, then
   trim trailing spaces and ``-``.

An input that is empty after these steps raises ``ValueError``: QBO would build a name from
other fields and the sync would lose track of it.

Sources:
[customer] Intuit, Customer entity:
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer
[queries] Intuit, data queries:
    https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries
"""

from __future__ import annotations

import re
import unicodedata

# QBO's entity Ids and SyncTokens are strings of digits. Intuit documents them as "String"
# without a length (https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/customer);
# real ones are well under 20 digits. Columns holding them allow 64, so a long one is kept
# whole, and anything longer is refused at the edge rather than cut (a cut Id names another
# record).
QBO_ID_MAX_LENGTH = 64

_SMART_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",  # left single quotation mark
        "\u2019": "'",  # right single quotation mark
        "\u201a": "'",  # single low-9 quotation mark
        "\u201b": "'",  # single high-reversed-9 quotation mark
        "\u2032": "'",  # prime
        "\u00b4": "'",  # acute accent used as an apostrophe
        "\u201c": '"',  # left double quotation mark
        "\u201d": '"',  # right double quotation mark
        "\u201e": '"',  # double low-9 quotation mark
        "\u201f": '"',  # double high-reversed-9 quotation mark
        "\u2033": '"',  # double prime
        "\u00ab": '"',  # left guillemet
        "\u00bb": '"',  # right guillemet
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2015": "-",  # horizontal bar
        "\u2212": "-",  # minus sign
        "\u2026": "...",  # horizontal ellipsis
    }
)
_WHITESPACE = re.compile(r"\s+")


def _strip_controls(text: str) -> str:
    # Cc (tab, newline, CR, other C0/C1 controls) separates words; Cf/Co/Cn (zero-width
    # spaces, BOM, private use, unassigned) is invisible, so it is dropped.
    return "".join(
        " " if cat == "Cc" else "" if cat.startswith("C") else ch
        for ch, cat in ((ch, unicodedata.category(ch)) for ch in text)
    )


def sanitize_display_name(name: str, max_len: int = 100) -> str:
    """Make ``name`` safe for QBO's ``DisplayName`` (see the module docstring for the rules)."""
    if max_len < 1:
        raise ValueError("max_len must be positive")
    text = unicodedata.normalize("NFKC", name).translate(_SMART_PUNCTUATION)
    text = _strip_controls(text)
    parts = (_WHITESPACE.sub(" ", part).strip() for part in text.split(":"))
    text = " - ".join(part for part in parts if part)
    if len(text) > max_len:
        cut = text[:max_len]
        if text[max_len] != " ":
            last_space = cut.rfind(" ")
            if last_space >= max_len // 2:
                cut = cut[:last_space]
        text = cut.rstrip(" -")
    if not text:
        raise ValueError("display name is empty after sanitising")
    return text


def escape_query_literal(value: str) -> str:
    """Escape a value for a single-quoted QBO query literal: ``\\`` first, then ``'``
    ([queries]; python-quickbooks escapes only the quote, #319)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def normalize_for_compare(value: str) -> str:
    """Key for comparing names the way QBO's uniqueness check might (its case and whitespace
    rules are undocumented, [customer]): casefolded, trimmed, inner spaces collapsed."""
    return _WHITESPACE.sub(" ", value).strip().casefold()
