"""StackExchange data dumps -> sentence pairs.

The dump writes one ``<row .../>`` per line, so every line is parsed on its own with lxml (entity
resolution, DTD loading and network access off) and a file is never built into a DOM: the read is
Beam's splittable one and memory stays bounded by a batch of lines. Posts are then grouped per
question (a question and its answers: bounded by the answers one question has) to choose the best and
a negative answer, and duplicate links are joined to their two questions by post id.

Pure functions (``parse_row``, ``post_from_attrs``, ``site_and_kind``, ``thread_pairs``, ...) hold the
logic and are tested without Beam; the DoFns around them only account for records.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue
from lxml import etree

from specs import FeatureSpec, text_pair_spec
from transforms.accounting import DEAD_LETTER, TALLY, Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.errors import ConfigError
from transforms.files import LineBatch, WriteShards, WriteSpec, sort_key
from transforms.html_text import html_to_text, normalize_text

POSTS, POSTLINKS = "Posts", "PostLinks"

PAIR_TYPES = (
    "title_body",
    "title_answer",
    "title_body_answer",
    "title_body_answer_negative",
    "duplicate_title_title",
    "duplicate_body_body",
    "duplicate_title_body_title_body",
)
THREAD_PAIR_TYPES = PAIR_TYPES[:4]
DUPLICATE_PAIR_TYPES = PAIR_TYPES[4:]
NUM_TEXTS = {t: 3 if t == "title_body_answer_negative" else 2 for t in PAIR_TYPES}

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

_BOM = b"\xef\xbb\xbf"
_ENVELOPE = re.compile(rb"^(<\?xml[^>]*\?>|</?[A-Za-z]+>)?$")
_KIND = re.compile(r"^(Posts|PostLinks)(?:-\d+)?\.xml(?:\.gz|\.bz2)?$")


class RowError(ValueError):
    """A line that is not a well-formed row; ``reason`` names the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# --- inputs -----------------------------------------------------------------------------------

def site_and_kind(path: str) -> tuple[str, str] | None:
    """``(site, "Posts"|"PostLinks")`` for a dump file, from its folder and name, else None.

    ``.../askubuntu.com/Posts.xml.gz`` -> ``("askubuntu.com", "Posts")``; transcoded 7z shards
    ``.../askubuntu.com/PostLinks-00003.xml`` are recognised too.
    """
    parts = path.replace("\\", "/").rstrip("/").split("/")
    if len(parts) < 2:
        return None
    m = _KIND.match(parts[-1])
    if not m or not parts[-2]:
        return None
    return parts[-2], m.group(1)


def site_of_archive(path: str) -> tuple[str, str | None] | None:
    """For ``askubuntu.com.7z`` -> ``("askubuntu.com", None)`` (a whole site), for
    ``stackoverflow.com-Posts.7z`` -> ``("stackoverflow.com", "Posts")``; None if not a .7z."""
    name = path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if not name.endswith(".7z"):
        return None
    stem = name[:-3]
    for kind in (POSTLINKS, POSTS):
        if stem.endswith("-" + kind):
            return stem[: -len(kind) - 1], kind
    return stem, None


def is_meta_site(site: str) -> bool:
    return site.startswith("meta.") or ".meta." in site


@dataclasses.dataclass
class DumpInputs:
    """What ``--input`` resolved to: plain dump files, 7z archives, and meta sites left out."""

    files: list[str] = dataclasses.field(default_factory=list)
    archives: list[tuple[str, str, str | None]] = dataclasses.field(default_factory=list)
    skipped_meta_sites: list[str] = dataclasses.field(default_factory=list)

    @property
    def sites(self) -> list[str]:
        return sorted({site_and_kind(f)[0] for f in self.files} | {a[1] for a in self.archives})


def discover_dump_files(inputs: Sequence[str], include_meta: bool) -> DumpInputs:
    """Resolves ``--input`` entries (site folders, globs of them, dump files, .7z archives; local or
    gs://) at start-up. An entry that yields no dump file, or a site with links but no posts, is a
    configuration error with a one-line message."""
    found = DumpInputs()
    skipped: set[str] = set()
    seen: set[str] = set()
    for entry in inputs:
        candidates: list[str] = []
        for pattern in (entry, entry.rstrip("/") + "/*", entry.rstrip("/") + "/*/*"):
            try:
                candidates += [m.path for m in FileSystems.match([pattern])[0].metadata_list]
            except Exception as e:  # a listing failure is a configuration error, reported below
                raise ConfigError(f"--input: cannot list {pattern!r}: {type(e).__name__}: {e}".splitlines()[0]) \
                    from None
        matched = 0
        for path in sorted(set(candidates)):
            sk, arch = site_and_kind(path), site_of_archive(path)
            site = sk[0] if sk else arch[0] if arch else None
            if site is None:
                continue
            matched += 1
            if is_meta_site(site) and not include_meta:
                skipped.add(site)
                continue
            if path in seen:
                continue
            seen.add(path)
            if sk:
                found.files.append(path)
            else:
                found.archives.append((path, arch[0], arch[1]))
        if not matched:
            raise ConfigError(f"--input: no Posts.xml, PostLinks.xml or .7z archive found at {entry!r}")
    kinds: dict[str, set[str]] = {}
    for f in found.files:
        site, kind = site_and_kind(f)
        kinds.setdefault(site, set()).add(kind)
    for site, ks in sorted(kinds.items()):
        if POSTS not in ks and not any(a[1] == site for a in found.archives):
            raise ConfigError(f"--input: site {site!r} has PostLinks but no Posts file")
    found.files.sort()
    found.archives.sort()
    found.skipped_meta_sites = sorted(skipped)
    return found


# --- rows -------------------------------------------------------------------------------------

def parse_row(line: bytes, first_line: bool = False) -> dict[str, str] | None:
    """Parses one dump line. Returns the row's attributes, None for the XML envelope (declaration,
    ``<posts>``, ``</posts>``, blank), and raises RowError for anything malformed."""
    if first_line and line.startswith(_BOM):
        line = line[3:]
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


def _int(attrs: dict[str, str], name: str, default: int | None = None) -> int | None:
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
    post_id = _int(attrs, "Id")
    if post_id is None:
        raise RowError("bad_field", "row has no Id")
    ptype = _int(attrs, "PostTypeId", 0)
    parent = _int(attrs, "ParentId", 0) if ptype == ANSWER else post_id
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
        score=_int(attrs, "Score", 0) or 0,
        title=normalize_text(attrs.get("Title", "")),
        body=body,
        accepted_answer_id=_int(attrs, "AcceptedAnswerId", 0) or 0,
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


# --- pairs ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PairOptions:
    """Every text filter is a flag; ``max_* = 0`` means no upper bound."""

    min_title_chars: int = 10
    max_title_chars: int = 300
    min_body_chars: int = 20
    max_body_chars: int = 4000
    min_answer_chars: int = 20
    max_answer_chars: int = 4000
    min_question_score: int = 0
    min_answer_score: int = 1
    best_answer: str = "accepted"  # or "top_scored"
    negative_score_gap: int = 2
    title_body_separator: str = "\n"


@dataclasses.dataclass(frozen=True)
class Pair:
    """An output pair (or triplet) with the attribution CC BY-SA requires."""

    pair_type: str
    site: str
    texts: tuple[str, ...]
    ids: tuple[int, ...]
    scores: tuple[int, ...]
    licenses: tuple[str, ...]
    authors: tuple[str, ...]
    urls: tuple[str, ...]

    def to_json(self, with_metadata: bool) -> str:
        if not with_metadata:
            return json.dumps(list(self.texts), ensure_ascii=False)
        return json.dumps({
            "texts": list(self.texts), "site": self.site, "ids": list(self.ids), "scores": list(self.scores),
            "license": list(self.licenses), "url": list(self.urls), "authors": list(self.authors),
        }, ensure_ascii=False)


def _length_reason(what: str, text: str, lo: int, hi: int) -> str | None:
    n = len(text)
    if n < lo:
        return f"{what}_too_short"
    if hi and n > hi:
        return f"{what}_too_long"
    return None


def _question_reason(q: Post, o: PairOptions, uses_body: bool) -> str | None:
    if q.score < o.min_question_score:
        return "question_score_too_low"
    reason = _length_reason("title", q.title, o.min_title_chars, o.max_title_chars)
    if reason is None and uses_body:
        reason = _length_reason("body", q.body, o.min_body_chars, o.max_body_chars)
    return reason


def _answer_ok(a: Post, o: PairOptions) -> bool:
    return a.score >= o.min_answer_score and _length_reason(
        "answer", a.body, o.min_answer_chars, o.max_answer_chars) is None


def choose_answers(question: Post, answers: Sequence[Post], o: PairOptions) -> tuple[Post | None, Post | None]:
    """(best, negative) among the answers that pass the answer filters.

    Best: with ``best_answer="accepted"`` the accepted answer when it passes the filters, otherwise the
    highest-scored; ties go to the accepted answer, then the older (smaller) id. Scores are integers.
    Negative: the lowest-scored other answer with ``score <= best.score - negative_score_gap``; it is
    exempt from ``min_answer_score`` (a low score is the point) but not from the length filters.
    """
    def rank(a: Post) -> tuple[int, int, int]:
        return (a.score, a.id == question.accepted_answer_id, -a.id)

    good = [a for a in answers if _answer_ok(a, o)]
    best = None
    if o.best_answer == "accepted":
        best = next((a for a in good if a.id == question.accepted_answer_id), None)
    if best is None and good:
        best = max(good, key=rank)
    if best is None:
        return None, None
    negatives = [a for a in answers if a.id != best.id and a.score <= best.score - o.negative_score_gap
                 and _length_reason("answer", a.body, o.min_answer_chars, o.max_answer_chars) is None]
    negative = min(negatives, key=lambda a: (a.score, a.id)) if negatives else None
    return best, negative


def _pair(pair_type: str, posts: Sequence[Post], texts: Sequence[str]) -> Pair:
    return Pair(pair_type, posts[0].site, tuple(texts), tuple(p.id for p in posts), tuple(p.score for p in posts),
                tuple(p.license for p in posts), tuple(p.author for p in posts),
                tuple(f"https://{p.site}/{'q' if p.type == QUESTION else 'a'}/{p.id}" for p in posts))


def thread_pairs(question: Post, answers: Sequence[Post], pair_types: Iterable[str],
                 o: PairOptions) -> Iterator[tuple[str, Pair | str]]:
    """For each requested thread pair type, ``(pair_type, Pair)`` or ``(pair_type, filter_reason)``."""
    best = negative = None
    chosen = False
    tb = question.title + o.title_body_separator + question.body
    for t in pair_types:
        reason = _question_reason(question, o, uses_body=t != "title_answer")
        if reason is None and t != "title_body":
            if not chosen:
                best, negative = choose_answers(question, answers, o)
                chosen = True
            if not answers:
                reason = "no_answers"
            elif best is None:
                reason = "no_answer_passes_filters"
            elif t == "title_body_answer_negative" and negative is None:
                reason = "no_negative_answer"
        if reason is not None:
            yield t, reason
        elif t == "title_body":
            yield t, _pair(t, [question], [question.title, question.body])
        elif t == "title_answer":
            yield t, _pair(t, [question, best], [question.title, best.body])
        elif t == "title_body_answer":
            yield t, _pair(t, [question, best], [tb, best.body])
        else:
            yield t, _pair(t, [question, best, negative], [tb, best.body, negative.body])


def duplicate_pairs(a: Post, b: Post, pair_types: Iterable[str], o: PairOptions) -> Iterator[tuple[str, Pair | str]]:
    """For each requested duplicate pair type, ``(pair_type, Pair)`` or ``(pair_type, filter_reason)``."""
    for t in pair_types:
        uses_body = t != "duplicate_title_title"
        reason = _question_reason(a, o, uses_body) or _question_reason(b, o, uses_body)
        if reason is not None:
            yield t, reason
            continue
        if t == "duplicate_title_title":
            texts = [a.title, b.title]
        elif t == "duplicate_body_body":
            texts = [a.body, b.body]
        else:
            texts = [a.title + o.title_body_separator + a.body, b.title + o.title_body_separator + b.body]
        yield t, _pair(t, [a, b], texts)


# --- Beam -------------------------------------------------------------------------------------

class ParseDumpRows(AccountedDoFn):
    """LineBatch -> Posts (keyed by (site, question id)) or duplicate links, one outcome per line.

    Scope: the input file. Filtered: the XML envelope, non-Q&A post types, watermarks, Answer Bot,
    links that are not duplicates. Dead-lettered: malformed rows.
    """

    stage = "parse_rows"

    def __init__(self, drop_answer_bot: bool, watermark_ids: frozenset[int], keep_code_blocks: bool) -> None:
        self._drop_answer_bot = drop_answer_bot
        self._watermark_ids = watermark_ids
        self._keep_code = keep_code_blocks

    def process(self, batch: LineBatch) -> Iterator[Any]:
        site, kind = site_and_kind(batch.path)
        scope = batch.path
        for offset, line in batch.lines:
            self.took_in(scope)
            try:
                attrs = parse_row(line, first_line=offset == 0)
                if attrs is None:
                    self.filtered(scope, "xml_envelope")
                    continue
                if kind == POSTS:
                    reason = post_filter_reason(attrs, self._drop_answer_bot, self._watermark_ids)
                    if reason:
                        self.filtered(scope, reason)
                        continue
                    post = post_from_attrs(site, attrs, self._keep_code)
                    self.out(scope)
                    yield beam.pvalue.TaggedOutput(POSTS, ((site, post.parent_id), post))
                else:
                    link_type = _int(attrs, "LinkTypeId", 0)
                    post_id, related = _int(attrs, "PostId"), _int(attrs, "RelatedPostId")
                    if post_id is None or related is None:
                        raise RowError("bad_field", "link lacks PostId or RelatedPostId")
                    if link_type != DUPLICATE_LINK_TYPE:
                        self.filtered(scope, f"link_type_{link_type}")
                        continue
                    if post_id == related:
                        self.filtered(scope, "self_link")
                        continue
                    self.out(scope)
                    yield beam.pvalue.TaggedOutput(POSTLINKS, (site, _int(attrs, "Id", 0) or 0, post_id, related))
            except RowError as e:
                yield self.dead_letter(scope, DeadLetter.make(
                    self.stage, e.reason, line, source=batch.path, offset=offset, detail=e.detail[:500]))


def _account_pair(fn: AccountedDoFn, scope: str, result: Pair | str) -> Iterator[Pair]:
    """Stage ``pairs``, scope ``site/pair_type``: one candidate in, a pair out or a filter reason."""
    fn.took_in(scope, stage="pairs")
    if isinstance(result, Pair):
        fn.out(scope, stage="pairs")
        yield result
    else:
        fn.filtered(scope, result, stage="pairs")


LINK_ENDS = "link_ends"


class BuildThreadPairs(AccountedDoFn):
    """((site, question_id), posts and link ends) -> Pair for every requested thread pair type.

    The group also holds the duplicate links ``(site, post_id, related_id)`` that name this question;
    each gets the question (or None when it is missing) on the ``LINK_ENDS`` output. Joining links in
    this one grouping, rather than in a second join of every question, means only linked questions
    are shuffled twice.

    Two stages of accounting: ``threads`` (a group without its question, because the question was
    deleted or filtered, is filtered as ``answers_without_question``) and ``pairs/<type>`` per site.
    A group holding only link ends is not a thread.
    """

    stage = "threads"

    def __init__(self, pair_types: Sequence[str], options: PairOptions) -> None:
        self._types = list(pair_types)
        self._o = options

    def process(self, item: tuple[tuple[str, int], Iterable[Post | tuple[str, int, int]]]) -> Iterator[Any]:
        (site, question_id), members = item
        question = None
        answers = []
        links = []
        for m in members:
            if not isinstance(m, Post):
                links.append(m)
            elif m.type == QUESTION:
                question = m
            else:
                answers.append(m)
        for link in links:
            yield beam.pvalue.TaggedOutput(LINK_ENDS, (link, (question_id, question)))
        if not self._types or (question is None and not answers):
            return
        self.took_in(site)
        if question is None:
            self.filtered(site, "answers_without_question")
            return
        self.out(site)
        answers.sort(key=lambda a: a.id)
        for pair_type, result in thread_pairs(question, answers, self._types, self._o):
            yield from _account_pair(self, f"{site}/{pair_type}", result)


class _LinkSide(AccountedDoFn):
    """(link_key, [(post_id, post_or_None), ...]) -> duplicate pairs, or a reason per pair type."""

    stage = "duplicate_links"

    def __init__(self, pair_types: Sequence[str], options: PairOptions) -> None:
        self._types = list(pair_types)
        self._o = options

    def process(self, item: tuple[tuple[str, int, int], Iterable[tuple[int, Post | None]]]) -> Iterator[Pair]:
        (site, post_id, related), sides = item
        found = dict(sides)
        self.took_in(site)
        a, b = found.get(post_id), found.get(related)
        if a is None or b is None:
            self.filtered(site, "links_missing_post")
            return
        if a.type != QUESTION or b.type != QUESTION:
            self.filtered(site, "links_non_question")
            return
        self.out(site)
        for pair_type, result in duplicate_pairs(a, b, self._types, self._o):
            yield from _account_pair(self, f"{site}/{pair_type}", result)


class _CollapseLinks(AccountedDoFn):
    """Keeps one link per unordered question pair: the one with the smallest link id (its direction,
    duplicate -> original, gives the text order)."""

    stage = "duplicate_links_collapse"

    def process(self, item: tuple[tuple[str, int, int], Iterable[tuple[int, int, int]]]) -> Iterator[tuple]:
        (site, _, _), links = item
        links = sorted(links)
        self.took_in(site, len(links))
        self.filtered(site, "duplicate_link_collapsed", len(links) - 1)
        self.out(site)
        _, post_id, related = links[0]
        yield (site, post_id, related)


class QuestionPairs(beam.PTransform):
    """(posts keyed by (site, question id), duplicate links) -> thread pairs and duplicate pairs.

    Posts are grouped by question once. Duplicate links are collapsed to one per unordered pair, and
    each end joins that same grouping, which hands the linked question back for the pairing.
    """

    def __init__(self, thread_types: Sequence[str], duplicate_types: Sequence[str], options: PairOptions) -> None:
        super().__init__()
        self._thread_types, self._duplicate_types, self._o = list(thread_types), list(duplicate_types), options

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> Accounted:
        posts, links = inputs
        members, tallies, dead = [posts], [], []
        if self._duplicate_types:
            collapsed = apply_accounted(
                links
                | "KeyUnordered" >> beam.Map(
                    lambda s: ((s[0], min(s[2], s[3]), max(s[2], s[3])), (s[1], s[2], s[3])))
                | "GroupUnordered" >> beam.GroupByKey(), "Collapse", _CollapseLinks())
            tallies.append(collapsed.tally)
            dead.append(collapsed.dead_letter)
            members.append(collapsed.out | "BothEnds" >> beam.FlatMap(
                lambda link: [((link[0], link[1]), link), ((link[0], link[2]), link)]))
        threads = (
            tuple(members)
            | "PostsAndLinkEnds" >> beam.Flatten()
            | "GroupByQuestion" >> beam.GroupByKey()
            | "ThreadPairs" >> beam.ParDo(BuildThreadPairs(self._thread_types, self._o)).with_outputs(
                TALLY, DEAD_LETTER, LINK_ENDS, main="out")
        )
        tallies.append(threads[TALLY])
        dead.append(threads[DEAD_LETTER])
        pairs = [threads.out]
        if self._duplicate_types:
            dups = apply_accounted(threads[LINK_ENDS] | "GroupSides" >> beam.GroupByKey(), "DuplicatePairs",
                                   _LinkSide(self._duplicate_types, self._o))
            tallies.append(dups.tally)
            dead.append(dups.dead_letter)
            pairs.append(dups.out)
        return Accounted(tuple(pairs) | "Pairs" >> beam.Flatten(), tuple(tallies) | "Tallies" >> beam.Flatten(),
                         tuple(dead) | "DeadLetters" >> beam.Flatten())


class _EncodePairs(beam.DoFn):
    """Pair -> its sort key and its bytes in every output format, sent on in batches per (type, format).

    One DoFn call per pair does what would otherwise be a keying, a partition and an encoding step
    per format; batches cross the shuffle into ``WriteShards(batched=True)`` as one element each.
    A batch is bounded (``_BATCH`` pairs) and flushed at the end of the bundle, so memory does not
    depend on the corpus and the bytes written do not depend on where bundles end.
    """

    _BATCH = 500

    def __init__(self, specs: dict[str, FeatureSpec], formats: Sequence[str], with_metadata: bool,
                 seed: int) -> None:
        self._specs, self._formats, self._meta, self._seed = specs, list(formats), with_metadata, seed

    def start_bundle(self) -> None:
        self._buffers: dict[str, list[tuple[bytes, bytes]]] = {}

    def _add(self, tag: str, record: tuple[bytes, bytes]) -> Iterator[beam.pvalue.TaggedOutput]:
        buf = self._buffers.setdefault(tag, [])
        buf.append(record)
        if len(buf) >= self._BATCH:
            yield beam.pvalue.TaggedOutput(tag, buf)
            self._buffers[tag] = []

    def process(self, pair: Pair) -> Iterator[beam.pvalue.TaggedOutput]:
        t = pair.pair_type
        key = sort_key(self._seed, pair.site, t, *pair.ids)
        if "jsonl" in self._formats:
            yield from self._add(f"{t}/jsonl", (key, pair.to_json(self._meta).encode("utf-8")))
        if "tfrecord" in self._formats:
            yield from self._add(f"{t}/tfrecord", (key, encode_texts(self._specs[t], pair.texts)))

    def finish_bundle(self) -> Iterator[beam.pvalue.TaggedOutput]:
        for tag, buf in sorted(self._buffers.items()):
            if buf:
                yield beam.pvalue.TaggedOutput(tag, WindowedValue(buf, MIN_TIMESTAMP, [GlobalWindow()]))
        self._buffers.clear()


class WritePairs(beam.PTransform):
    """Writes each pair type to its own folder, shuffled deterministically by a seeded hash:

    ``OUT/<pair_type>/jsonl/<pair_type>-SSSSS-of-NNNNN.jsonl.gz`` (a JSON list of texts per line, what
    sentence-transformers reads; objects with attribution under ``--with_metadata``) and
    ``OUT/<pair_type>/tfrecord/<pair_type>-SSSSS-of-NNNNN.tfrecord.gz`` (``src_raw``/``tgt_raw``[/``neg_raw``]
    Examples) with ``schema.pbtxt`` and ``feature_spec.json`` beside them.
    """

    def __init__(self, output_dir: str, pair_types: Sequence[str], formats: Sequence[str], with_metadata: bool,
                 seed: int, num_shards: int = 0, records_per_shard: int = 200_000, gzip_level: int = 6) -> None:
        super().__init__()
        self._out, self._types, self._formats = output_dir, list(pair_types), list(formats)
        self._meta, self._seed = with_metadata, seed
        self._shards, self._per_shard, self._gzip_level = num_shards, records_per_shard, gzip_level

    def folders(self) -> dict[str, str]:
        return {t: FileSystems.join(self._out, t) for t in self._types}

    def expand(self, pairs: beam.PCollection) -> dict[str, beam.PCollection]:
        tags = [f"{t}/{fmt}" for t in self._types for fmt in self._formats]
        specs = {t: text_pair_spec(NUM_TEXTS[t], name=f"stackexchange_{t}") for t in self._types}
        encoded = pairs | "Encode" >> beam.ParDo(
            _EncodePairs(specs, self._formats, self._meta, self._seed)).with_outputs(*tags)
        counts = {}
        for t in self._types:
            folder = FileSystems.join(self._out, t)
            for fmt in self._formats:
                if fmt == "tfrecord":
                    _ = pairs.pipeline | f"Spec[{t}]" >> WriteSpec(specs[t], FileSystems.join(folder, "tfrecord"))
                suffix, frame = (".jsonl.gz", "lines") if fmt == "jsonl" else (".tfrecord.gz", "tfrecord")
                counts[t] = encoded[f"{t}/{fmt}"] | f"Write{fmt.title()}[{t}]" >> WriteShards(
                    FileSystems.join(folder, fmt, t), suffix, frame, "gzip", self._shards, self._per_shard,
                    batched=True, gzip_level=self._gzip_level)
        return counts


def encode_texts(spec: FeatureSpec, texts: Sequence[str]) -> bytes:
    """Anchor, positive (and negative) texts as a ``src_raw``/``tgt_raw``(/``neg_raw``) Example."""
    return spec.encode(dict(zip(("src_raw", "tgt_raw", "neg_raw"), texts, strict=False)))


def pair_texts(p: Pair) -> tuple[str, ...]:
    return p.texts


def pair_scope(p: Pair) -> str:
    return f"{p.site}/{p.pair_type}"


def pair_rank(p: Pair) -> int:
    """Among duplicate pairs the best-voted one is kept (then the dedup transforms' own tie rule)."""
    return sum(p.scores)


class CleanPairs(beam.PTransform):
    """Optional removal of duplicate and evaluation-overlapping pairs, per pair type.

    ``dedup`` is ``"none"``, ``"exact"`` or ``"near"`` (MinHash LSH); ``dedup_key`` is ``"pair"`` (all
    texts must match) or ``"either"`` (pairs sharing any text are one cluster). Pair types are
    deduplicated separately: the same body legitimately appears in title_body and title_body_answer.
    """

    def __init__(self, pair_types: Sequence[str], dedup: str, dedup_key: str, exclude: Sequence[str],
                 exclude_ngram: int) -> None:
        super().__init__()
        from transforms.dedup import Decontaminate, ExactDedup, NearDedup

        self._types = list(pair_types)
        # Built here, so that configuration errors (an --exclude matching nothing) stop the job at
        # start-up; each is applied once per pair type under its own label.
        self._steps: list[tuple[str, beam.PTransform]] = []
        if exclude:
            self._steps.append(("Decontaminate", Decontaminate(
                pair_texts, exclude, ngram=exclude_ngram, scope_fn=pair_scope, stage="decontaminate")))
        if dedup == "exact":
            self._steps.append(("ExactDedup", ExactDedup(
                pair_texts, mode=dedup_key, rank_fn=pair_rank, scope_fn=pair_scope, stage="dedup_exact")))
        elif dedup == "near":
            self._steps.append(("NearDedup", NearDedup(
                pair_texts, mode=dedup_key, rank_fn=pair_rank, scope_fn=pair_scope, stage="dedup_near")))

    def expand(self, pairs: beam.PCollection) -> Accounted:
        if not self._steps:
            empty = pairs.pipeline | "NoTallies" >> beam.Create([])
            return Accounted(pairs, empty, empty)
        types = self._types
        parts = pairs | "ByType" >> beam.Partition(lambda p, _: types.index(p.pair_type), len(types))
        outs, tallies, dead = [], [], []
        for t, part in zip(types, parts, strict=True):
            for name, step in self._steps:
                res = part | f"{name}[{t}]" >> step
                part = res.out
                tallies.append(res.tally)
                dead.append(res.dead_letter)
            outs.append(part)
        return Accounted(tuple(outs) | "Kept" >> beam.Flatten(), tuple(tallies) | "Tallies" >> beam.Flatten(),
                         tuple(dead) | "DeadLetters" >> beam.Flatten())
