"""Showing names that came from Linarc, QuickBooks or a user without letting their
bidirectional-text controls reorder what is around them.

A right-to-left override (U+202E) in a project name reverses every character shown after it
up to the end of the paragraph: the rest of a sentence, a confirm dialog, a CSV line. So:

- in HTML, a name goes inside ``<bdi>``, which the browser treats as a bidi isolate: the name
  keeps its own direction and controls, and nothing outside it moves
  (https://developer.mozilla.org/en-US/docs/Web/HTML/Element/bdi);
- where markup cannot go (an attribute, a ``<title>``, an ``<option>``, a CSV cell), the
  controls are removed;
- in Json Script they are written as JSON escapes (``\\u202e``), the same value, visibly.

The stored data is never changed: Linarc's text is staged as sent (docs/bad-input.md).
"""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString

register = template.Library()

# The explicit embeddings, overrides and isolates (LRE RLE PDF LRO RLO, LRI RLI FSI PDI) and
# the three invisible marks (LRM RLM ALM): https://www.unicode.org/reports/tr9/#Directional_Formatting_Characters
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


# The two overrides (LRO, RLO) force every letter after them into one direction: Latin text
# reads backwards ("Trojan Source", https://trojansource.codes/). Text written right to left
# never needs them (embeddings, isolates and marks serve it), so names are shown without
# them even inside an isolate, and a row reads the same as the confirm dialog.
BIDI_OVERRIDES = re.compile("[\u202d\u202e]")


def strip_bidi_overrides(text: str) -> str:
    """``text`` without LRO/RLO: what a ``<bdi>`` shows."""
    return BIDI_OVERRIDES.sub("", text)


def strip_bidi_controls(text: str) -> str:
    """``text`` without bidi controls: for places that cannot hold a ``<bdi>``."""
    return BIDI_CONTROLS.sub("", text)


def escape_bidi_controls(json_text: str) -> str:
    """JSON text with each bidi control written as its ``\\uXXXX`` escape. Controls can only
    occur inside JSON strings, where the escape is the same character, so the text still
    parses to the same value."""
    return BIDI_CONTROLS.sub(lambda match: f"\\u{ord(match.group()):04x}", json_text)


@register.filter(is_safe=True)
def bidi_isolate(value: Any) -> SafeString:
    """``value`` HTML-escaped (unless already safe) inside ``<bdi>``; "" stays ""."""
    escaped = strip_bidi_overrides(conditional_escape(value))
    return SafeString(f"<bdi>{escaped}</bdi>") if escaped else SafeString("")


@register.filter(is_safe=True)
def bidi_strip(value: Any) -> str:
    """``strip_bidi_controls`` for templates (attributes, ``<title>``, ``<option>``). Removing
    characters keeps escaped text escaped, so a safe value stays safe."""
    return strip_bidi_controls(value if isinstance(value, str) else str(value))
