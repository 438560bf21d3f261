"""Learning a WordPiece vocabulary from counted words (no Beam): reserved tokens, language smoothing,
tensorflow_text's learner with a geometric threshold search, coverage of the training text.

The learner itself is tensorflow_text's (``tensorflow_text.tools.wordpiece_vocab``, the algorithm behind
``bert_vocab_from_dataset``); it is a single-process Python algorithm that needs ``(word, count)`` pairs,
which the Beam steps (``steps``) count, weight and prune in bounded memory.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from specs import vocabulary as sv
from specs.errors import ConfigError
from specs.vocabulary import CLS, MASK, PAD, SEP, UNK
from transforms.core.sampling import smoothed_rates
from transforms.vocab.pretokenize import JOINER, is_isolated_char, wordpiece_split

# --- configuration ------------------------------------------------------------------------------

def reserved_tokens(num_unused: int, extra: Sequence[str] = ()) -> list[str]:
    """The reserved head of the vocabulary, laid out as Google's BERT vocabularies are: ``[PAD]``,
    ``num_unused`` ``[unusedN]`` slots (free for task tokens later without resizing embeddings), then
    ``[UNK] [CLS] [SEP] [MASK]`` and the caller's extra tokens. With the default 99 unused slots the
    special ids are BERT's: [PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103."""
    tokens = [PAD, *(f"[unused{i}]" for i in range(num_unused)), UNK, CLS, SEP, MASK, *extra]
    dupes = sorted({t for t in tokens if tokens.count(t) > 1})
    if dupes:
        raise ConfigError(f"--reserved_tokens: duplicates or clashes with built-in tokens: {dupes}")
    return tokens


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """What the WordPiece learner needs; checked at start-up by ``validate``."""

    vocab_size: int
    reserved: tuple[str, ...]
    num_unused: int
    lower: bool
    min_token_count: int = 10
    num_iterations: int = 4
    max_token_length: int = 50
    max_unique_chars: int = 1000
    slack_ratio: float = 0.05
    pad_to_vocab_size: bool = True

    def validate(self) -> None:
        room = self.vocab_size - len(self.reserved)
        if room < 256:
            raise ConfigError(f"--vocab_size={self.vocab_size} leaves {room} tokens after {len(self.reserved)} "
                              "reserved ones; need at least 256")
        for name in ("min_token_count", "num_iterations", "max_token_length", "max_unique_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.slack_ratio < 1:
            raise ConfigError(f"--slack_ratio must be in [0, 1), got {self.slack_ratio}")
        for t in self.reserved:
            if not t or any(c.isspace() for c in t):
                raise ConfigError(f"--reserved_tokens: token {t!r} is empty or contains whitespace")


# --- language smoothing -------------------------------------------------------------------------

def language_weights(sizes: Mapping[str, int], alpha: float) -> dict[str, float]:
    """Per-language multipliers for word counts so that language l carries a share ``∝ n_l^alpha``,
    where ``n_l`` is the language's size (characters, see ``language_totals``).

    Sampling a corpus with p_l ∝ n_l^alpha (mBERT and XLM use alpha 0.7 and 0.3-0.5) multiplies the
    expected count of every word of language l by its smoothed rate (``sampling.smoothed_rates``).
    Multiplying the counts is that sampling without its variance and without dropping data. The vocab
    policy divides by the largest language's rate, so counts stay in units of real occurrences and
    every weight is >= 1 (alpha <= 1); an empty language keeps weight 1.
    """
    rates = smoothed_rates(sizes, alpha)
    base = rates[max(rates, key=sizes.__getitem__)] if rates else 1.0
    return {lang: rates[lang] / base if lang in rates else 1.0 for lang in sorted(sizes)}


def weighted_count(count: int, weight: float) -> int:
    """An integer weighted count (integers sum the same in any order, floats do not)."""
    return max(1, round(count * weight))


# --- the learner --------------------------------------------------------------------------------

def search_threshold(words: list[tuple[str, int]], lower: int, upper: int, params: Any) -> tuple[list[str], int]:
    """The learner's search for the count threshold that gives the target size, bisecting
    geometrically instead of arithmetically; returns the vocabulary and the number of steps.

    ``learner_lib.learn_binary_search`` halves ``[lower, upper]`` linearly, where ``upper`` is the
    largest word count (tens of millions on a real corpus) and the answer is usually a small number,
    so most of its 15-25 steps (each a full run of the learner) are spent far above it. The size is
    monotone in the threshold either way; the geometric midpoint reaches the answer in about half the
    steps. Stopping rules are the library's: within ``slack_ratio`` below the target, an empty
    interval, or a threshold of 1.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    slack = max(0.0, params.slack_ratio * params.vocab_size)
    steps = 0
    while True:
        thresh = max(1, math.isqrt(max(lower, 1) * max(upper, 1)))
        vocab = lib.learn_with_thresh(words, thresh, params)
        steps += 1
        size = len(vocab)
        if (size <= params.vocab_size and params.vocab_size - size <= slack) or lower >= upper or thresh <= 1:
            return vocab, steps
        if size > params.vocab_size:
            lower = thresh + 1
        else:
            upper = thresh - 1


def learn_wordpiece(word_counts: Sequence[tuple[str, int]], cfg: LearnerConfig,
                    char_counts: Sequence[tuple[str, int]] | None = None) -> tuple[list[str], dict[str, Any]]:
    """Runs tensorflow_text's WordPiece learner and shapes its result into a BERT vocabulary.

    Returns the vocabulary (reserved tokens first, then single characters, then learned pieces by
    frequency) and a report. Differences from calling ``learner_lib.learn`` directly, and why:

    - Input is sorted by (count desc, word), so ties never depend on the order counts arrived in.
    - The alphabet comes from ``char_counts`` (the whole corpus) when given, not only from the
      words the learner sees: characters missing from the words enter as one-character words.
    - ``##c`` for punctuation and CJK ideographs is removed: BERT's pre-tokeniser isolates those
      characters, so such pieces are never produced (mBERT spends thousands of ids on them). The
      learner is asked for that many more tokens so the useful size still reaches the target.
    - The alphabet is capped so single characters (and their ``##`` forms) take at most half of the
      vocabulary; a small vocab_size with a huge alphabet would otherwise be unsatisfiable.
    - The threshold is searched geometrically (``search_threshold``), in about half the learner runs.
    - The learner's search may end slightly above the target: the least frequent learned
      pieces are cut (every word stays tokenisable, all characters remain). Below the target, with
      ``pad_to_vocab_size``, ``[unusedN]`` tokens fill the rest, so vocab.txt has exactly vocab_size
      lines as model configs expect.
    """
    from tensorflow_text.tools.wordpiece_vocab import wordpiece_tokenizer_learner_lib as lib

    reserved = list(cfg.reserved)
    counts = sorted(((w, int(c)) for w, c in word_counts if w), key=lambda wc: (-wc[1], wc[0]))
    report: dict[str, Any] = {"learner_input_words": len(counts)}
    if not counts:
        vocab = list(reserved)
    else:
        all_counts = lib.get_input_words(counts, reserved, cfg.max_token_length)
        char_budget = (cfg.vocab_size - len(reserved)) // 2
        if char_counts is None:
            counter: collections.Counter = collections.Counter()
            for w, c in all_counts:
                for ch in w:
                    counter[ch] += c
            char_counts = list(counter.items())
        ranked = sorted(((ch, c) for ch, c in char_counts if len(ch) == 1 and ch not in reserved),
                        key=lambda kv: (-kv[1], kv[0]))
        chars: list[str] = []
        cost = 0
        for ch, _ in ranked[:cfg.max_unique_chars]:
            step = 1 if is_isolated_char(ch) else 2
            if cost + step > char_budget:
                break
            chars.append(ch)
            cost += step
        allowed = set(chars)
        filtered = lib.filter_input_words(all_counts, allowed, -1)
        dropped = len(all_counts) - len(filtered)
        present = {w for w, _ in filtered if len(w) == 1}
        filtered += [(ch, 1) for ch in chars if ch not in present]
        alphabet = lib.extract_char_tokens(filtered)
        unreachable = {JOINER + ch for ch in alphabet if is_isolated_char(ch)}
        params = lib.Params(
            upper_thresh=int(1e7), lower_thresh=cfg.min_token_count, num_iterations=cfg.num_iterations,
            max_input_tokens=-1, max_token_length=cfg.max_token_length, max_unique_chars=cfg.max_unique_chars,
            vocab_size=cfg.vocab_size + len(unreachable), slack_ratio=cfg.slack_ratio, include_joiner_token=True,
            joiner=JOINER, reserved_tokens=reserved)
        learned, steps = list(reserved), 0
        if filtered:
            upper, lower = lib.get_search_threshs(filtered, params.upper_thresh, params.lower_thresh)
            learned, steps = search_threshold(filtered, lower, upper, params)
        vocab = [t for t in learned if t not in unreachable]
        report.update({
            "alphabet_size": len(alphabet),
            "alphabet_capped": len(ranked) > len(chars),
            "characters_considered": len(ranked),
            "words_dropped_for_rare_characters": dropped,
            "unreachable_suffixes_removed": len(unreachable),
            "threshold_search_steps": steps,
        })
    report["learned_size"] = len(vocab)
    cut = max(0, len(vocab) - cfg.vocab_size)
    vocab = vocab[:cfg.vocab_size]
    padding = 0
    if cfg.pad_to_vocab_size:
        taken = set(vocab)
        i = cfg.num_unused
        while len(vocab) < cfg.vocab_size:
            tok = f"[unused{i}]"
            i += 1
            if tok not in taken:
                vocab.append(tok)
                padding += 1
    report.update({"tokens_cut_to_fit": cut, "unused_padding": padding, "vocab_size": len(vocab)})
    return vocab, report


def coverage_stats(item: tuple[tuple[str, str], int], vocab: frozenset[str]) -> tuple[str, tuple[int, ...]]:
    """``(language, (words, unk_words, pieces, distinct, distinct_unk))`` for one counted word: how the
    learned vocabulary tokenises the training text, per language (unweighted counts)."""
    (lang, word), n = item
    pieces = wordpiece_split(word, vocab)
    if pieces is None:
        return lang, (n, n, n, 1, 1)
    return lang, (n, 0, n * len(pieces), 1, 0)


def format_vocab(tokens: Sequence[str]) -> bytes:
    """vocab.txt: one token per line, line number - 1 = id, LF endings, trailing newline, UTF-8."""
    return ("\n".join(tokens) + "\n").encode("utf-8")


def summarize_coverage(per_language: Mapping[str, Sequence[int]]) -> dict[str, dict[str, float]]:
    """Per-language and total [UNK] rate and pieces per word of the training text."""
    out: dict[str, dict[str, float]] = {}
    total = [0] * 5
    for lang in sorted(per_language):
        words, unk, pieces, distinct, distinct_unk = per_language[lang]
        total = [a + b for a, b in zip(total, per_language[lang], strict=True)]
        out[lang] = _coverage_entry(words, unk, pieces, distinct, distinct_unk)
    out["ALL"] = _coverage_entry(*total)
    return out


def _coverage_entry(words: int, unk: int, pieces: int, distinct: int, distinct_unk: int) -> dict[str, float]:
    return {
        "words": words,
        "unk_rate": unk / words if words else 0.0,
        "pieces_per_word": pieces / words if words else 0.0,
        "distinct_words": distinct,
        "distinct_unk_rate": distinct_unk / distinct if distinct else 0.0,
    }


def vocab_params(flags: Mapping[str, Any], learned: Mapping[str, Any], totals: Sequence[tuple[str, Sequence[int]]],
                 weights: Mapping[str, float], prune: Sequence[int], coverage: Mapping[str, Sequence[int]]
                 ) -> dict[str, Any]:
    """The vocab_params.json document: how ids from the vocabulary are made (as every spec sidecar
    records it, ``specs.vocabulary``), the flags, the special ids, per language the counts, weight and
    share before and after smoothing, the pruning, the learner's report and the coverage of the
    training text. ``learned`` is ``{"tokens", "report"}``; ``totals`` ``(language, (words,
    distinct_words, characters))``; ``prune`` ``(all_words, all_mass, kept_words, kept_mass)``."""
    all_words, all_mass, kept_words, kept_mass = prune
    written = sv.Vocabulary(sv.parse_vocab(format_vocab(learned["tokens"])), flags["do_lower_case"])
    return {
        **sv.tokenization_params(written.params()),
        "flags": dict(flags),
        "special_ids": {t: learned["tokens"].index(t) for t in (PAD, UNK, CLS, SEP, MASK)},
        "languages": {lang: {"words": n, "distinct_words": d, "characters": c, "weight": weights.get(lang, 1.0),
                             "share": c / sum(t[1][2] for t in totals),
                             "smoothed_share": c * weights.get(lang, 1.0) / sum(
                                 t[1][2] * weights.get(t[0], 1.0) for t in totals)}
                      for lang, (n, d, c) in sorted(totals)},
        "pruning": {"distinct_words": all_words, "weighted_words": all_mass,
                    "kept_distinct_words": kept_words, "kept_weighted_words": kept_mass,
                    "min_word_count": flags["min_word_count"],
                    "cut_by_max_words": max(0, kept_words - learned["report"]["learner_input_words"])},
        "learner": learned["report"],
        "training_text_coverage": summarize_coverage(coverage),
    }


def weights_of_totals(totals: Sequence[tuple[str, Sequence[int]]], alpha: float) -> dict[str, float]:
    """``language_weights`` from the per-language totals ``(language, (words, distinct, characters))``:
    a language's size is its characters."""
    return language_weights({lang: t[2] for lang, t in totals}, alpha)
