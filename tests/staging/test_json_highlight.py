"""Json Script's server-side colouring (staging/templatetags/json_highlight.py)."""

from __future__ import annotations

import html
import json
import re

from staging.templatetags.json_highlight import json_highlight


def test_tokens_are_wrapped_by_kind() -> None:
    text = json.dumps(
        {"Id": "58", "Active": True, "Balance": -12.5, "Parent": None, "token": "••• redacted •••"},
        indent=2,
        ensure_ascii=False,  # as the Json Script presenter writes it
    )
    out = json_highlight(text)
    assert (
        '<span class="j-key">&quot;Id&quot;</span>: <span class="j-string">&quot;58&quot;</span>'
        in out
    )
    assert '<span class="j-literal">true</span>' in out
    assert '<span class="j-number">-12.5</span>' in out
    assert '<span class="j-literal">null</span>' in out
    assert '<span class="j-redacted">&quot;••• redacted •••&quot;</span>' in out


def test_markup_in_values_stays_text_and_the_text_is_unchanged() -> None:
    text = json.dumps({"name": "<script>alert(1)</script> & 'x'"}, indent=2)
    out = json_highlight(text)
    assert "<script>" not in out
    assert "&lt;script&gt;" in out
    # Without the spans, the visible text is exactly the document (what Copy copies).
    assert html.unescape(re.sub(r"</?span[^>]*>", "", out)) == text
