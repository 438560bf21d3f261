"""HTML post bodies to plain text, with lxml.

StackExchange bodies are HTML stored as XML attribute text. After the XML parser has decoded the
attribute once (``&lt;p&gt;`` -> ``<p>``), the HTML parser decodes the entities of the HTML itself
(``&amp;`` -> ``&``) exactly once more; regex cleaners that skip one of the two steps leave ``&lt;``
and ``&amp;`` in the text. Structure is kept where it carries meaning for sentence encoders:

- block elements (paragraphs, list items, headings, quotes, table rows) end up on their own lines;
- ``<pre>`` blocks (code) are kept verbatim as their own lines, or dropped with ``keep_code_blocks=False``;
- inline ``<code>`` stays inline; images become their ``alt`` text, links their text;
- whitespace inside normal text is collapsed to single spaces, blank lines removed, Unicode NFC.
"""

from __future__ import annotations

import threading
import unicodedata

from lxml import etree

_PARSERS = threading.local()  # lxml serialises threads sharing one parser; Dataflow runs many threads


def _html_parser() -> etree.HTMLParser:
    """The HTML parser never touches the network and keeps no comments or processing instructions."""
    parser = getattr(_PARSERS, "html", None)
    if parser is None:
        parser = _PARSERS.html = etree.HTMLParser(no_network=True, remove_comments=True, remove_pis=True,
                                                  recover=True, default_doctype=False)
    return parser

_BLOCK_TAGS = frozenset(
    "address article aside blockquote body dd details div dl dt figcaption figure footer form h1 h2 h3 h4 h5 h6 "
    "header hr html li main nav ol p section summary table tbody td tfoot th thead tr ul br".split()
)
_DROP_TAGS = frozenset({"script", "style", "template", "noscript"})

_BREAK = object()  # a block boundary in the flattened stream


class _Code(str):
    """Text of a <pre> block: kept verbatim instead of whitespace-collapsed."""


def nfc_one_line(text: str) -> str:
    """NFC and whitespace collapsed to single spaces; for titles and other one-line texts."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def _flatten(el: etree._Element, out: list, keep_code: bool) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _DROP_TAGS:
        return
    if tag == "pre":
        if keep_code:
            out.append(_BREAK)
            out.append(_Code("".join(el.itertext())))
            out.append(_BREAK)
        return
    block = tag in _BLOCK_TAGS
    if block:
        out.append(_BREAK)
    if tag == "img":
        alt = el.get("alt")
        if alt:
            out.append(f" {alt} ")
    elif el.text:
        out.append(el.text)
    for child in el:
        _flatten(child, out, keep_code)
        if child.tail:
            out.append(child.tail)
    if block:
        out.append(_BREAK)


def html_to_text(html: str, keep_code_blocks: bool = True) -> str:
    """Converts an HTML fragment to text (see the module docstring for the rules)."""
    if not html or not html.strip():
        return ""
    root = etree.fromstring(html, _html_parser())
    if root is None:
        return ""
    parts: list = []
    _flatten(root, parts, keep_code_blocks)
    parts.append(_BREAK)  # flushes the last chunk
    lines: list[str] = []
    chunk: list[str] = []
    for p in parts:
        if p is _BREAK or p.__class__ is _Code:
            if chunk:  # most breaks come in pairs (a block's end, the next one's start): nothing to flush
                text = " ".join("".join(chunk).split())
                if text:
                    lines.append(text)
                chunk = []
            if p is not _BREAK:
                lines.extend(_code_lines(p))
        else:
            chunk.append(p)
    return unicodedata.normalize("NFC", "\n".join(lines))


def _code_lines(code: str) -> list[str]:
    """A <pre> block verbatim, line by line, without trailing spaces or leading/trailing blank lines."""
    lines = [ln.rstrip() for ln in code.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines
