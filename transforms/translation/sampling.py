"""Keys, splits and balancing of translation pairs (no Beam): every choice a hash of the pair and a seed."""

from __future__ import annotations

from collections.abc import Mapping

from specs.errors import ConfigError
from transforms.core.sampling import smoothed_rates
from transforms.core.seeding import stable_hash64, unit_interval
from transforms.translation.records import SPLITS, TranslationPair

# --- keys, splits, balancing -------------------------------------------------------------------

def unordered_lang_pair(src_lang: str, tgt_lang: str) -> str:
    """``deu-eng`` for both directions: the unit of balancing."""
    a, b = sorted((src_lang, tgt_lang))
    return f"{a}-{b}"


def texts_in_language_order(pair: TranslationPair) -> list[str]:
    """Both sides in language order, so ``de->en`` and ``en->de`` copies of a pair are one group
    (the identity exact dedup and decontamination compare)."""
    return [t for _, t in sorted(((pair.src_lang, pair.src), (pair.tgt_lang, pair.tgt)))]


def lang_pair_of(pair: TranslationPair) -> str:
    """The accounting scope of a pair: its directed language pair."""
    return pair.lang_pair


def pair_key(pair: TranslationPair) -> bytes:
    """A 128-bit identity of the normalised pair, the same for both directions (``de->en`` and
    ``en->de`` of the same sentences are one pair for dedup and splitting)."""
    a, b = sorted(((pair.src_lang, pair.src), (pair.tgt_lang, pair.tgt)))
    return stable_hash64(*a, *b).to_bytes(8, "big") + stable_hash64(*b, *a).to_bytes(8, "big")


def parse_split_fractions(spec: str, flag: str = "--split") -> dict[str, float]:
    """``train=0.98,validation=0.01,test=0.01`` (names among SPLITS, fractions summing to 1)."""
    out: dict[str, float] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, sep, value = item.partition("=")
        try:
            frac = float(value)
        except ValueError:
            frac = -1.0
        if not sep or name not in SPLITS or not 0 <= frac <= 1 or name in out:
            raise ConfigError(f"{flag}: {item!r} is not NAME=FRACTION with NAME one of {', '.join(SPLITS)}")
        out[name] = frac
    if not out or abs(sum(out.values()) - 1.0) > 1e-9:
        raise ConfigError(f"{flag}: fractions {spec!r} must sum to 1")
    return out


def split_of(key: bytes, fractions: Mapping[str, float], split_seed: int) -> str:
    """The split of a pair from a hash of its normalised content: the same pair lands in the same
    split on every run, whatever else is in the job."""
    u = unit_interval(split_seed, b"split", key)
    acc = 0.0
    names = [s for s in SPLITS if s in fractions]
    for name in names:
        acc += fractions[name]
        if u < acc:
            return name
    return names[-1]


def sampling_rates(counts: Mapping[str, int], alpha: float, cap: int = 0, max_upsample: float = 1.0
                   ) -> dict[str, tuple[int, float]]:
    """Exponentially smoothed sampling: per language pair ``(target, rate)``.

    The translation policy over ``sampling.smoothed_rates`` (alpha < 1 flattens the distribution
    towards low-resource pairs, as XLM-R/mT5/LaBSE do): pair ``i`` with ``n_i`` pairs and smoothed
    share ``q_i`` of ``N`` aims at ``min(N q_i, max_upsample n_i, cap)`` examples; ``rate = target /
    n_i`` is the expected number of copies of each of its pairs (``sampling.stochastic_round``).
    With ``alpha = 1`` and no cap every rate is 1.
    """
    out = {}
    for lp, rate in smoothed_rates(counts, alpha).items():
        n = counts[lp]
        target = n * min(rate, max_upsample)
        if cap:
            target = min(target, cap)
        out[lp] = (round(target), target / n)
    return out


LENGTH_BINS = (0, 4, 8, 16, 32, 64, 128, 256, 512)


def length_bin(tokens: int) -> int:
    """The lower edge of ``tokens``' histogram bin in LENGTH_BINS."""
    edge = 0
    for b in LENGTH_BINS:
        if tokens >= b:
            edge = b
    return edge


