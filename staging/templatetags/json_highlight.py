"""Json Script's colours, rendered on the server: each JSON token of an already formatted
document wrapped in a span whose class names its kind (`j-key`, `j-string`, `j-number`,
`j-literal`, and `j-redacted` for a value replaced by the redaction marker).

Every piece of the text is escaped before it is wrapped, so a project name holding markup
stays text; the spans only add colour, and the text a reader copies is the document itself.
"""

from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# A string (then, for a key, its colon), a literal, or a number.
_TOKEN = re.compile(
    r'("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)'
)
REDACTED_MARK = "••• redacted •••"


def _span(kind: str, text: str) -> str:
    return f'<span class="j-{kind}">{escape(text)}</span>'


@register.filter
def json_highlight(text: str) -> SafeString:
    """`text` (pretty-printed JSON) escaped, its tokens in classed spans."""
    text = str(text)
    parts: list[str] = []
    last = 0
    for match in _TOKEN.finditer(text):
        parts.append(escape(text[last : match.start()]))
        string, colon, literal, _number = match.groups()
        if string is not None:
            kind = "key" if colon else "redacted" if REDACTED_MARK in string else "string"
            parts.append(_span(kind, string))
            if colon:
                parts.append(escape(colon))
        else:
            parts.append(_span("literal" if literal else "number", match.group(0)))
        last = match.end()
    parts.append(escape(text[last:]))
    return mark_safe("".join(parts))  # noqa: S308 - every piece escaped above
