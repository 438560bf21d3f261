"""Learning a WordPiece vocabulary from a corpus: BERT pre-tokenisation, word counts, language smoothing.

The learner itself is tensorflow_text's (``tensorflow_text.tools.wordpiece_vocab``, the algorithm behind
``bert_vocab_from_dataset``); it is a single-process Python algorithm that needs ``(word, count)`` pairs.
Everything before it runs on Beam in bounded memory: lines (or JSONL documents) are pre-tokenised into
words exactly as BERT's ``BasicTokenizer`` does, counted per language with a combiner, re-weighted so
that languages are sampled with ``p ∝ n^alpha``, pruned (a minimum count, then the ``max_words`` most
frequent words), and only that bounded list reaches the learner.

Pre-tokenisation must equal BERT's, or the vocabulary holds pieces the BERT tokenizer never produces and
lacks ones it needs. The rules (``tokenization.BasicTokenizer``): delete NUL, U+FFFD and control/format
characters (categories Cc/Cf except tab, newline, carriage return); turn whitespace into spaces; put
spaces around CJK ideographs; split on whitespace; when lower-casing, lower-case, decompose (NFD) and
drop non-spacing marks (Mn); split off every punctuation character (ASCII symbols and categories P*).
``pre_tokenize`` applies these to the whole line at once with regular expressions instead of character
by character, which is equivalent (lower-casing, NFD and mark removal never cross whitespace) and about
ten times faster; a test checks it against a literal implementation on real multilingual text.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import math
import re
import sys
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from specs.vocabulary import CJK_RANGES, CLS, MASK, PAD, REFERENCE_MAX_CHARS_PER_WORD, SEP, UNK
from transforms.accounting import Accounted, AccountedDoFn, DeadLetter, apply_accounted
from transforms.errors import ConfigError
from transforms.files import LineBatch, ReadLineBatches

JOINER = "##"
# A word longer than this is [UNK], as the tokenizer that will use the vocabulary has it.
MAX_CHARS_PER_WORD = REFERENCE_MAX_CHARS_PER_WORD
_ASCII_PUNCT = "".join(chr(c) for c in [*range(33, 48), *range(58, 65), *range(91, 97), *range(123, 127)])


# --- BERT BasicTokenizer rules ------------------------------------------------------------------

def _char_class(codepoints: Iterable[int]) -> str:
    """A regex character class body for sorted code points, written as ranges."""
    parts = []
    cps = sorted(codepoints)
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        a, b = cps[i], cps[j]
        parts.append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
        i = j + 1
    return "".join(parts)


class _Rules:
    """The compiled tables of BERT's BasicTokenizer, built once per process from ``unicodedata``."""

    def __init__(self) -> None:
        delete: list[int] = []
        space: list[int] = []
        punct: list[int] = [ord(c) for c in _ASCII_PUNCT]
        marks: list[int] = []
        for cp in range(sys.maxunicode + 1):
            ch = chr(cp)
            cat = unicodedata.category(ch)
            if ch in "\t\n\r" or cat == "Zs":
                if ch != " ":
                    space.append(cp)
            elif cp in (0, 0xFFFD) or cat in ("Cc", "Cf"):
                delete.append(cp)
            elif cat.startswith("P") and cp > 127:
                punct.append(cp)
            elif cat == "Mn":
                marks.append(cp)
        self.clean = {cp: None for cp in delete} | {cp: " " for cp in space}
        self.ascii_clean = {cp: v for cp, v in self.clean.items() if cp < 128}
        self.punct = frozenset(chr(cp) for cp in punct)
        p = _char_class(punct)
        self.words = re.compile(rf"[^\s{p}]+|[{p}]")
        self.ascii_words = re.compile(rf"[^\s{re.escape(_ASCII_PUNCT)}]+|[{re.escape(_ASCII_PUNCT)}]")
        self.cjk = re.compile("[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in CJK_RANGES) + "]")
        self.marks = re.compile(f"[{_char_class(marks)}]+")


@functools.cache
def _rules() -> _Rules:
    return _Rules()


def pre_tokenize(text: str, lower: bool) -> list[str]:
    """Splits text into the words BERT's BasicTokenizer produces (before WordPiece).

    ``lower`` is BERT's ``do_lower_case``: lower-case and strip accents (uncased models); otherwise
    case and accents are kept (cased and multilingual-cased models).
    """
    r = _rules()
    if text.isascii():
        text = text.translate(r.ascii_clean)
        return r.ascii_words.findall(text.lower() if lower else text)
    text = r.cjk.sub(r" \g<0> ", text.translate(r.clean))
    if lower:
        text = r.marks.sub("", unicodedata.normalize("NFD", text.lower()))
    return r.words.findall(text)


def decode_line(raw: bytes) -> str:
    """UTF-8 with invalid bytes dropped, as the BERT reference reads its input."""
    return raw.decode("utf-8", errors="ignore")


def is_isolated_char(ch: str) -> bool:
    """True for characters BERT's pre-tokeniser always makes a word of their own (punctuation and CJK
    ideographs): their ``##`` continuation forms can never be produced by the tokenizer."""
    if ch in _rules().punct:
        return True
    cp = ord(ch)
    return any(a <= cp <= b for a, b in CJK_RANGES)


def wordpiece_split(word: str, vocab: frozenset[str] | set[str]) -> list[str] | None:
    """Greedy longest-match-first WordPiece, as BERT's WordpieceTokenizer; None means ``[UNK]``."""
    if len(word) > MAX_CHARS_PER_WORD:
        return None
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        while end > start:
            piece = word[start:end] if start == 0 else JOINER + word[start:end]
            if piece in vocab:
                break
            end -= 1
        if end == start:
            return None
        pieces.append(piece)
        start = end
    return pieces


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
    expected count of every word of language l by ``n_l^(alpha-1)`` up to a constant. Multiplying the
    counts is that sampling without its variance and without dropping data. The constant makes the
    largest language's weight 1, so counts stay in units of real occurrences and every weight is >= 1.
    """
    if not sizes:
        return {}
    top = max(sizes.values())
    return {lang: (top / n) ** (1.0 - alpha) if n > 0 else 1.0 for lang, n in sorted(sizes.items())}


def weighted_count(count: int, weight: float) -> int:
    """An integer weighted count (integers sum the same in any order, floats do not)."""
    return max(1, round(count * weight))


# --- reading records --------------------------------------------------------------------------------

TEXT, JSONL = "text", "jsonl"


@dataclasses.dataclass(frozen=True)
class InputConfig:
    """How input lines become ``(language, text)``."""

    fmt: str = "auto"  # "text" (sentence per line), "jsonl", or "auto" (by file name)
    text_field: str = "text"
    language_field: str = ""
    language_pattern: str = ""  # regex on the file path; group 1 is the language
    default_language: str = "und"

    def validate(self) -> None:
        if self.fmt not in ("auto", TEXT, JSONL):
            raise ConfigError(f"--input_format must be auto, text or jsonl, not {self.fmt!r}")
        if self.language_pattern:
            try:
                rx = re.compile(self.language_pattern)
            except re.error as e:
                raise ConfigError(f"--language_pattern {self.language_pattern!r}: {e}") from None
            if rx.groups < 1:
                raise ConfigError(f"--language_pattern {self.language_pattern!r} needs a group for the language")

    def format_of(self, path: str) -> str:
        if self.fmt != "auto":
            return self.fmt
        name = path.rsplit("/", 1)[-1].lower()
        for ext in (".gz", ".bz2", ".deflate", ".zst", ".lzma"):
            name = name.removesuffix(ext)
        return JSONL if name.endswith((".jsonl", ".json", ".ndjson")) else TEXT

    def language_of_path(self, path: str) -> str:
        if self.language_pattern:
            m = re.search(self.language_pattern, path)
            if m and m.group(1):
                return m.group(1)
        return self.default_language


class BadRecordError(ValueError):
    """A JSONL line that cannot be used; ``reason`` names the dead-letter reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


def parse_jsonl_record(line: bytes, text_field: str, language_field: str, default_language: str) -> tuple[str, str]:
    """``(language, text)`` of one JSONL document; raises ``BadRecordError`` for unusable lines."""
    try:
        doc = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BadRecordError("invalid_json", str(e)) from None
    if not isinstance(doc, dict):
        raise BadRecordError("not_an_object", type(doc).__name__)
    if text_field not in doc:
        raise BadRecordError("missing_text_field", f"no {text_field!r} in {sorted(doc)[:10]}")
    text = doc[text_field]
    if not isinstance(text, str):
        raise BadRecordError("text_not_a_string", type(text).__name__)
    lang = default_language
    if language_field:
        value = doc.get(language_field)
        if isinstance(value, str) and value.strip():
            lang = value.strip()
        elif value is not None and not isinstance(value, str):
            raise BadRecordError("language_not_a_string", type(value).__name__)
    return lang, text


class _CountWords(AccountedDoFn):
    """Pre-tokenises each line (a sentence, or a JSONL document) and counts words per language.

    Outputs ``((language, word), count)`` summed over a bundle; the combiner downstream does the
    rest. Each line is one record: out if it has words, filtered if blank (a document
    boundary in the BERT format) or without words, dead-lettered if it is an unusable JSONL line.
    """

    stage = "count_words"
    # Counts are combined over the whole bundle before they leave the DoFn (a Beam element costs
    # microseconds, a dict update nanoseconds); past this many distinct keys they are flushed, which
    # bounds the memory a bundle can take.
    FLUSH_AT = 200_000

    def __init__(self, inputs: InputConfig, lower: bool) -> None:
        self._inputs = inputs
        self._lower = lower

    def start_bundle(self) -> None:
        super().start_bundle()
        self._counts: dict[str, collections.Counter] = {}
        self._keys = 0

    def _flush(self) -> Iterator[tuple[tuple[str, str], int]]:
        for lang, counts in self._counts.items():
            for word, n in counts.items():
                yield (lang, word), n
        self._counts = {}
        self._keys = 0

    def finish_bundle(self) -> Iterator[Any]:
        for kv in self._flush():
            yield WindowedValue(kv, MIN_TIMESTAMP, [GlobalWindow()])
        yield from super().finish_bundle()

    def process(self, batch: LineBatch) -> Iterator[Any]:
        cfg = self._inputs
        fmt = cfg.format_of(batch.path)
        path_lang = cfg.language_of_path(batch.path)
        for offset, raw in batch.lines:
            self.took_in(batch.path)
            if not raw.strip():
                self.filtered(batch.path, "blank_line")
                continue
            if fmt == JSONL:
                try:
                    lang, text = parse_jsonl_record(raw, cfg.text_field, cfg.language_field, path_lang)
                except BadRecordError as e:
                    yield self.dead_letter(batch.path, DeadLetter.make(
                        self.stage, e.reason, raw, source=batch.path, offset=offset, detail=str(e)))
                    continue
            else:
                lang, text = path_lang, decode_line(raw)
            words = pre_tokenize(text, self._lower)
            if not words:
                self.filtered(batch.path, "no_words")
                continue
            self.out(batch.path)
            counts = self._counts.get(lang)
            if counts is None:
                counts = self._counts[lang] = collections.Counter()
            before = len(counts)
            counts.update(words)
            self._keys += len(counts) - before
        if self._keys >= self.FLUSH_AT:
            yield from self._flush()


class CountWordsByLanguage(beam.PTransform):
    """Files -> ``((language, word), count)`` over the whole corpus, in bounded memory (a combiner)."""

    def __init__(self, paths: Sequence[str], inputs: InputConfig, lower: bool) -> None:
        super().__init__()
        self._paths = list(paths)
        self._inputs = inputs
        self._lower = lower

    def expand(self, pbegin: beam.pvalue.PBegin) -> Accounted:
        lines = pbegin | "ReadLines" >> ReadLineBatches(self._paths)
        res = apply_accounted(lines.out, "PreTokenize", _CountWords(self._inputs, self._lower))
        counts = res.out | "SumPerLanguageWord" >> beam.CombinePerKey(sum)
        return Accounted(counts, (lines.tally, res.tally) | "Tallies" >> beam.Flatten(),
                         (lines.dead_letter, res.dead_letter) | "DeadLetters" >> beam.Flatten())


# --- from counts to the learner's input -----------------------------------------------------------

class SumTuples(beam.CombineFn):
    """Element-wise sum of fixed-length integer tuples."""

    def __init__(self, width: int) -> None:
        self._width = width

    def create_accumulator(self) -> tuple[int, ...]:
        return (0,) * self._width

    def add_input(self, acc: tuple[int, ...], x: Sequence[int]) -> tuple[int, ...]:
        return tuple(a + b for a, b in zip(acc, x, strict=True))

    def merge_accumulators(self, accs: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
        out = (0,) * self._width
        for acc in accs:
            out = tuple(a + b for a, b in zip(out, acc, strict=True))
        return out

    def extract_output(self, acc: tuple[int, ...]) -> tuple[int, ...]:
        return acc


def language_totals(lang_word_counts: beam.PCollection) -> beam.PCollection:
    """``(language, (words, distinct_words, characters))`` per language, characters counted without
    whitespace. Characters, not words, measure a language's size for smoothing: Thai, Khmer, Burmese
    and Japanese do not separate words by spaces, so their pre-tokens are phrases and a word count
    would call them tiny."""
    return (
        lang_word_counts
        | "PerLanguage" >> beam.Map(lambda kv: (kv[0][0], (kv[1], 1, kv[1] * len(kv[0][1]))))
        | "SumPerLanguage" >> beam.CombinePerKey(SumTuples(3))
    )


class SelectLearnerWords(beam.PTransform):
    """``((language, word), count)`` -> the learner's input: words and characters with weighted counts.

    Counts are multiplied by the language weights (a small side input) and summed over languages.
    Words below ``min_word_count`` are dropped (rare words are mostly typos, numbers and names and cost
    learner time) and the ``max_words`` most frequent remain (``Top`` keeps bounded accumulators).
    Characters are counted over all words, pruned ones included, and the ``max_chars`` most frequent
    form the alphabet: the learner would otherwise only know characters of the words it sees, and a
    rare CJK character missing from the vocabulary makes its whole word ``[UNK]``.

    Returns ``(words, chars, stats)``: two sorted singleton lists of ``(string, count)`` and
    ``(all_words, all_mass, kept_words, kept_mass)`` for the report.
    """

    def __init__(self, min_word_count: int, max_words: int, max_chars: int) -> None:
        super().__init__()
        self._min = min_word_count
        self._max = max_words
        self._max_chars = max_chars

    def expand(self, inputs: tuple[beam.PCollection, beam.PCollection]) -> tuple[beam.PCollection, ...]:
        lang_word_counts, weights = inputs
        min_count = self._min
        weighted = (
            lang_word_counts
            | "Weight" >> beam.Map(lambda kv, w: (kv[0][1], weighted_count(kv[1], w.get(kv[0][0], 1.0))),
                                   beam.pvalue.AsSingleton(weights))
            | "SumOverLanguages" >> beam.CombinePerKey(sum)
        )
        stats = (
            weighted
            | "PruneStats" >> beam.Map(lambda kv: (1, kv[1], int(kv[1] >= min_count), kv[1] * (kv[1] >= min_count)))
            | "SumPruneStats" >> beam.CombineGlobally(SumTuples(4))
        )
        words = (
            weighted
            | "DropRare" >> beam.Filter(lambda kv: kv[1] >= min_count)
            | "MostFrequentWords" >> beam.combiners.Top.Of(self._max, key=lambda kv: (kv[1], kv[0]))
            | "SortWords" >> beam.Map(lambda kvs: sorted(kvs, key=lambda kv: (-kv[1], kv[0])))
        )
        chars = (
            weighted
            | "Characters" >> beam.FlatMap(lambda kv: [(ch, kv[1] * k) for ch, k in collections.Counter(kv[0]).items()])
            | "SumCharacters" >> beam.CombinePerKey(sum)
            | "MostFrequentChars" >> beam.combiners.Top.Of(self._max_chars, key=lambda kv: (kv[1], kv[0]))
            | "SortChars" >> beam.Map(lambda kvs: sorted(kvs, key=lambda kv: (-kv[1], kv[0])))
        )
        return words, chars, stats


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
