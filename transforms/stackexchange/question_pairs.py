"""Posts and duplicate links -> pairs: questions grouped with their answers and linked questions (Beam)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam

from transforms.core.accounting import DEAD_LETTER, TALLY, Accounted, AccountedDoFn, apply_accounted
from transforms.stackexchange.pairs import PairOptions, PostPair, duplicate_pairs, thread_pairs
from transforms.stackexchange.rows import QUESTION, Post


def _account_pair(fn: AccountedDoFn, scope: str, result: PostPair | str) -> Iterator[PostPair]:
    """Stage ``pairs``, scope ``site/pair_type``: one candidate in, a pair out or a filter reason."""
    fn.took_in(scope, stage="pairs")
    if isinstance(result, PostPair):
        fn.out(scope, stage="pairs")
        yield result
    else:
        fn.filtered(scope, result, stage="pairs")


LINK_ENDS = "link_ends"


class BuildThreadPairs(AccountedDoFn):
    """((site, question_id), posts and link ends) -> PostPair for every requested thread pair type.

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

    def process(self, item: tuple[tuple[str, int, int], Iterable[tuple[int, Post | None]]]) -> Iterator[PostPair]:
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
