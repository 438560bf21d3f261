"""Dump rows -> posts: one ``<row .../>`` line parsed on its own, its fields checked (plain Python).

The dump writes one row per line, so every line is parsed with lxml by itself (entity resolution,
DTD loading and network access off) and a file is never built into a DOM.
"""

from __future__ import annotations

import dataclasses
import re
import threading

from lxml import etree

from transforms.stackexchange.html_text import html_to_text, nfc_one_line

QUESTION, ANSWER = 1, 2
ANSWER_BOT_USER_ID = -2
COMMUNITY_USER_ID = -1
# Since 2024 every dump carries two fabricated posts by the Community user (a question and an answer
# with ids far above any real post) to watermark the export; they are nonsense and must not be trained on.
WATERMARK_POST_IDS = frozenset({1000000001, 1000000010})
DUPLICATE_LINK_TYPE = 3


_PARSERS = threading.local()  # lxml serialises threads sharing one parser; Dataflow runs many threads


def _xml_parser() -> etree.XMLParser:
    parser = getattr(_PARSERS, "xml", None)
    if parser is None:
        parser = _PARSERS.xml = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
            remove_comments=True, remove_pis=True)
    return parser

_ENVELOPE = re.compile(rb"^(<\?xml[^>]*\?>|</?[A-Za-z]+>)?$")


class RowError(ValueError):
    """A line that is not a well-formed row; ``reason`` names the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def parse_row(line: bytes) -> dict[str, str] | None:
    """Parses one dump line. Returns the row's attributes, None for the XML envelope (declaration,
    ``<posts>``, ``</posts>``, blank), and raises RowError for anything malformed."""
    line = line.strip()
    if _ENVELOPE.match(line):
        return None
    if not line.startswith(b"<row"):
        raise RowError("not_a_row", "line is neither a <row/> nor the XML envelope")
    if b"<!" in line:
        # No DTD, entity declaration or CDATA trick belongs in a row; refuse before parsing.
        raise RowError("dtd_or_entity_declaration", "row contains '<!'")
    try:
        el = etree.fromstring(line, _xml_parser())
    except etree.XMLSyntaxError as e:
        raise RowError("xml_syntax", str(e)) from None
    if el.tag != "row" or len(el):
        raise RowError("not_a_row", f"element <{el.tag}> with {len(el)} children")
    return dict(el.attrib)


def int_field(attrs: dict[str, str], name: str, default: int | None = None) -> int | None:
    """The integer attribute ``name``, ``default`` when absent or empty; a RowError when not an integer."""
    v = attrs.get(name)
    if v is None or v == "":
        return default
    try:
        return int(v)
    except ValueError:
        raise RowError("bad_field", f"{name}={v!r} is not an integer") from None


def parse_tags(tags: str) -> list[str]:
    """Both dump encodings: ``<a><b>`` (classic) and ``|a|b|`` (2024 and later)."""
    tags = tags.strip()
    if not tags:
        return []
    if tags.startswith("<"):
        return [t for t in re.findall(r"<([^<>]+)>", tags)]
    return [t for t in tags.strip("|").split("|") if t]


def license_of(attrs: dict[str, str]) -> str:
    """The row's ContentLicense; older dumps lack it, so derive it from the creation date the way
    Stack Exchange relicensed content (2.5 until 2011-04-08, 3.0 until 2018-05-02, then 4.0)."""
    lic = attrs.get("ContentLicense")
    if lic:
        return lic
    date = attrs.get("CreationDate", "")
    if date and date < "2011-04-08":
        return "CC BY-SA 2.5"
    if date and date < "2018-05-02":
        return "CC BY-SA 3.0"
    return "CC BY-SA 4.0"


@dataclasses.dataclass(frozen=True)
class Post:
    """The fields of a question or answer that pairs need, with the body already as text."""

    site: str
    id: int
    type: int
    parent_id: int  # question id for answers, own id for questions
    score: int
    title: str
    body: str
    accepted_answer_id: int
    license: str
    author: str
    tags: tuple[str, ...] = ()


def post_from_attrs(site: str, attrs: dict[str, str], keep_code_blocks: bool = True) -> Post:
    """Builds a Post from a row's attributes (raises RowError on missing/bad fields)."""
    post_id = int_field(attrs, "Id")
    if post_id is None:
        raise RowError("bad_field", "row has no Id")
    ptype = int_field(attrs, "PostTypeId", 0)
    parent = int_field(attrs, "ParentId", 0) if ptype == ANSWER else post_id
    if ptype == ANSWER and not parent:
        raise RowError("bad_field", f"answer {post_id} has no ParentId")
    owner = attrs.get("OwnerUserId")
    author = f"https://{site}/users/{owner}" if owner else attrs.get("OwnerDisplayName", "")
    try:
        body = html_to_text(attrs.get("Body", ""), keep_code_blocks)
    except (etree.LxmlError, ValueError) as e:
        raise RowError("bad_html", str(e)) from None
    return Post(
        site=site,
        id=post_id,
        type=ptype or 0,
        parent_id=parent or 0,
        score=int_field(attrs, "Score", 0) or 0,
        title=nfc_one_line(attrs.get("Title", "")),
        body=body,
        accepted_answer_id=int_field(attrs, "AcceptedAnswerId", 0) or 0,
        license=license_of(attrs),
        author=author,
        tags=tuple(parse_tags(attrs.get("Tags", ""))),
    )


def post_filter_reason(attrs: dict[str, str], drop_answer_bot: bool,
                       watermark_ids: frozenset[int]) -> str | None:
    """Row-level filters that say a post is not real Q&A content (checked before HTML work)."""
    ptype = attrs.get("PostTypeId", "")
    if ptype not in ("1", "2"):
        return f"post_type_{ptype or 'missing'}"
    if attrs.get("Id", "").isdigit() and int(attrs["Id"]) in watermark_ids \
            and attrs.get("OwnerUserId") == str(COMMUNITY_USER_ID):
        return "watermark"
    if drop_answer_bot and attrs.get("OwnerUserId") == str(ANSWER_BOT_USER_ID):
        return "answer_bot"
    return None
