"""Posts -> pairs: the pair types, the text filters and the choice of answers (plain Python)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence

from transforms.stackexchange.rows import QUESTION, Post

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
class PostPair:
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


def _pair(pair_type: str, posts: Sequence[Post], texts: Sequence[str]) -> PostPair:
    return PostPair(pair_type, posts[0].site, tuple(texts), tuple(p.id for p in posts), tuple(p.score for p in posts),
                tuple(p.license for p in posts), tuple(p.author for p in posts),
                tuple(f"https://{p.site}/{'q' if p.type == QUESTION else 'a'}/{p.id}" for p in posts))


def thread_pairs(question: Post, answers: Sequence[Post], pair_types: Iterable[str],
                 o: PairOptions) -> Iterator[tuple[str, PostPair | str]]:
    """For each requested thread pair type, ``(pair_type, PostPair)`` or ``(pair_type, filter_reason)``."""
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


def duplicate_pairs(a: Post, b: Post, pair_types: Iterable[str],
                    o: PairOptions) -> Iterator[tuple[str, PostPair | str]]:
    """For each requested duplicate pair type, ``(pair_type, PostPair)`` or ``(pair_type, filter_reason)``."""
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
