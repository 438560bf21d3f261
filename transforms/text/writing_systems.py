"""Which Unicode scripts a text is written in, and which scripts a language is expected to use.

Used by the translation-pair cleaner to catch mislabelled data (Latin text labelled ``jpn``, a
Russian file given as ``ukr``'s other side, English left untranslated on both sides...).

Script detection: Python's ``unicodedata`` has no Script property, but every letter's Unicode name
starts with its script's name ("LATIN SMALL LETTER A", "CJK UNIFIED IDEOGRAPH-4E00", "HIRAGANA
LETTER A", "DEVANAGARI LETTER KA"), so a lookup table from code point to script is derived from the
names once per process (about 0.15 s) and is then applied to a text with numpy in one vectorised
step. Only letters and the vowel signs of abugidas (general categories L* and M* whose name carries a
script) count: digits, punctuation, symbols and generic combining marks belong to no language. The
result depends only on the Python build's Unicode version, which is the same on every worker of a job.

The language table maps ISO 639-1/639-3 codes (and FLORES-style ``xxx_Scrp`` codes, whose script is
taken from the code itself) to ISO 15924 script codes. Users extend or override it with a JSON file
``{"lang": ["Scrp", ...]}`` (``--script_table``); unknown languages are not checked.
"""

from __future__ import annotations

import functools
import json
import re
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from specs.errors import ConfigError

# Unicode name prefix (first word after FULLWIDTH/HALFWIDTH) -> ISO 15924 code.
_NAME_TO_SCRIPT = {
    "LATIN": "Latn", "CYRILLIC": "Cyrl", "GREEK": "Grek", "ARMENIAN": "Armn", "GEORGIAN": "Geor",
    "HEBREW": "Hebr", "ARABIC": "Arab", "SYRIAC": "Syrc", "THAANA": "Thaa", "NKO": "Nkoo",
    "DEVANAGARI": "Deva", "BENGALI": "Beng", "GURMUKHI": "Guru", "GUJARATI": "Gujr", "ORIYA": "Orya",
    "TAMIL": "Taml", "TELUGU": "Telu", "KANNADA": "Knda", "MALAYALAM": "Mlym", "SINHALA": "Sinh",
    "THAI": "Thai", "LAO": "Laoo", "TIBETAN": "Tibt", "MYANMAR": "Mymr", "KHMER": "Khmr",
    "MONGOLIAN": "Mong", "ETHIOPIC": "Ethi", "CHEROKEE": "Cher", "CANADIAN": "Cans", "TIFINAGH": "Tfng",
    "HANGUL": "Hang", "HIRAGANA": "Hira", "KATAKANA": "Kana", "KATAKANA-HIRAGANA": "Kana",
    "CJK": "Hani", "IDEOGRAPHIC": "Hani", "BOPOMOFO": "Bopo", "YI": "Yiii", "JAVANESE": "Java",
    "BALINESE": "Bali", "SUNDANESE": "Sund", "VAI": "Vaii", "ADLAM": "Adlm", "OL": "Olck",
    "COPTIC": "Copt", "GLAGOLITIC": "Glag", "RUNIC": "Runr", "OGHAM": "Ogam", "GOTHIC": "Goth",
}

# Expected scripts per language. Chinese, Japanese and Korean list every script their normal
# orthography mixes; languages written in two scripts in practice list both.
_CJK_JA = ("Hani", "Hira", "Kana")
_SCRIPT_GROUPS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("Latn",): (
        "af afr ang ast az aze br bre bs bos ca cat cbk ceb cs ces cze cha cor csb cy cym wel da dan de deu ger "
        "dsb dtp en eng eo epo es spa et est eu eus baq fo fao fi fin fil fr fra fre fy fry ga gle gd gla gl glg "
        "gsw ha hau hr hrv hsb ht hat hu hun id ind ido ie ile ia ina ig ibo is isl ice it ita kab kzj la "
        "lat lb ltz lfn lt lit lv lav lvs mg mlg max mi mri ms msa may zsm mt mlt nds nl nld dut nn nno no nor "
        "nb nob nov oc oci pam pl pol pms pt por qu que rm roh ro ron rum sk slk slo sl slv sm smo sn sna so "
        "som sq sqi alb st sot su sun sv swe swg sw swa swh tl tgl tk tuk tn tsn to ton tr tur tzl vi vie war "
        "wo wol xh xho yo yor zu zul"
    ),
    ("Latn", "Cyrl"): "lfn",
    ("Latn", "Java"): "jv jav",
    ("Cyrl",): "be bel bg bul ce che cv chv kk kaz ky kir mhr mk mkd mac orv os oss ru rus tg tgk uk ukr",
    ("Cyrl", "Latn"): "sr srp tt tat uz uzb",
    ("Cyrl", "Mong"): "mn mon",
    ("Grek",): "el ell gre grc",
    ("Armn",): "hy hye arm",
    ("Geor",): "ka kat geo",
    ("Hebr",): "he heb yi yid",
    ("Arab",): "ar ara arb arq ary arz acm apc ckb fa fas per pes prs ps pus sd snd ur urd",
    ("Arab", "Latn"): "ku kur kmr",
    ("Arab", "Cyrl", "Latn"): "ug uig",
    ("Latn", "Tfng"): "ber tzm zgh",
    ("Deva",): "awa bho hi hin mai mr mar ne nep npi sa san",
    ("Beng",): "as asm bn ben",
    ("Guru",): "pa pan",
    ("Gujr",): "gu guj",
    ("Orya",): "or ori ory",
    ("Taml",): "ta tam",
    ("Telu",): "te tel",
    ("Knda",): "kn kan",
    ("Mlym",): "ml mal",
    ("Sinh",): "si sin",
    ("Thai",): "th tha",
    ("Laoo",): "lo lao",
    ("Tibt",): "bo bod tib dz dzo",
    ("Mymr",): "my mya bur",
    ("Khmr",): "km khm",
    ("Ethi",): "am amh ti tir",
    ("Thaa",): "dv div",
    ("Hani",): "zh zho chi cmn yue wuu lzh",
    _CJK_JA: "ja jpn",
    ("Hang", "Hani"): "ko kor",
}
DEFAULT_LANGUAGE_SCRIPTS: Mapping[str, frozenset[str]] = {
    lang: frozenset(scripts) for scripts, langs in _SCRIPT_GROUPS.items() for lang in langs.split()
}

# Script subtags of language codes (ISO 15924) that stand for several scripts.
_SCRIPT_ALIASES = {"Jpan": _CJK_JA, "Hans": ("Hani",), "Hant": ("Hani",), "Kore": ("Hang", "Hani"),
                   "Hrkt": ("Hira", "Kana")}
_CODE = re.compile(r"^([A-Za-z]{2,3})(?:[-_]([A-Z][a-z]{3}))?(?:[-_][A-Za-z0-9]+)*$")
_ASCII_LETTERS = string.ascii_letters.encode("ascii")
_PLANES = 0x30000  # the BMP and the first two supplementary planes hold every modern letter


@functools.cache
def _script_table() -> tuple[np.ndarray, tuple[str, ...]]:
    """``(ids, names)``: ``names[ids[cp]]`` is code point ``cp``'s script, ``""`` for non-letters."""
    names: list[str] = [""]
    index: dict[str, int] = {"": 0}
    ids = np.zeros(_PLANES, dtype=np.uint8)
    for cp in range(_PLANES):
        ch = chr(cp)
        if unicodedata.category(ch)[0] not in "LM":
            continue
        words = unicodedata.name(ch, "").split()
        if words and words[0] in ("FULLWIDTH", "HALFWIDTH"):
            words = words[1:]
        script = _NAME_TO_SCRIPT.get(words[0]) if words else None
        if script is None:
            continue
        if script not in index:
            index[script] = len(names)
            names.append(script)
        ids[cp] = index[script]
    return ids, tuple(names)


def script_counts(text: str) -> dict[str, int]:
    """Number of letters of each script in ``text`` (letters of unlisted scripts are not counted)."""
    if text.isascii():
        data = text.encode("ascii")
        n = len(data) - len(data.translate(None, _ASCII_LETTERS))
        return {"Latn": n} if n else {}
    ids, names = _script_table()
    cps = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    cps = cps[cps < _PLANES]
    counts = np.bincount(ids[cps])
    return {names[i]: int(counts[i]) for i in counts[1:].nonzero()[0] + 1}


def _read_local(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class LanguageScripts:
    """The expected-script table: ``expected(lang)`` is the set of scripts ``lang`` is written in,
    or ``None`` when the language is unknown (then nothing is checked)."""

    def __init__(self, overrides: Mapping[str, Iterable[str]] | None = None) -> None:
        table = dict(DEFAULT_LANGUAGE_SCRIPTS)
        for lang, scripts in (overrides or {}).items():
            table[lang.lower()] = frozenset(scripts)
        self._table = table

    @classmethod
    def from_json_file(cls, path: str | None, flag: str = "--script_table",
                       reader: Callable[[str], bytes] | None = None) -> LanguageScripts:
        """The default table extended by a JSON file ``{"lang": ["Scrp", ...]}``; a malformed file is
        a configuration error naming the flag and the path. ``reader`` reads the file's bytes (the
        pipelines pass Beam's FileSystems, ``transforms.core.storage.read_bytes``, for gs://; the text
        layer imports no Beam); by default a local file."""
        if not path:
            return cls()
        try:
            data = json.loads((reader or _read_local)(path).decode("utf-8"))
        except Exception as e:
            raise ConfigError(f"{flag}: cannot read {path!r}: {type(e).__name__}: {e}".splitlines()[0]) from None
        known = set(_NAME_TO_SCRIPT.values())
        if not isinstance(data, dict):
            raise ConfigError(f"{flag}: {path!r} must hold a JSON object {{\"lang\": [\"Scrp\", ...]}}")
        for lang, scripts in data.items():
            if not isinstance(scripts, list) or not scripts or not all(s in known for s in scripts):
                raise ConfigError(f"{flag}: {path!r}: {lang!r} must map to a non-empty list of script codes "
                                  f"among {sorted(known)}")
        return cls(data)

    def to_dict(self) -> dict[str, list[str]]:
        return {lang: sorted(s) for lang, s in sorted(self._table.items())}

    def expected(self, lang: str) -> frozenset[str] | None:
        found = self._table.get(lang.lower())
        if found is not None:
            return found
        m = _CODE.match(lang)
        if not m:
            return None
        base, script = m.group(1).lower(), m.group(2)
        if script:
            return frozenset(_SCRIPT_ALIASES.get(script, (script,)))
        return self._table.get(base)


# An ideograph or a Hangul/kana syllable carries about as much text as two or three Latin letters;
# without these weights "我叫Jack。" would count as mostly Latin.
LETTER_WEIGHTS = {"Hani": 3, "Hang": 2, "Hira": 2, "Kana": 2, "Yiii": 3}


def expected_fraction(counts: Mapping[str, int], expected: frozenset[str]) -> float:
    """The weighted share of letters written in one of the ``expected`` scripts (1.0 without letters)."""
    total = mine = 0
    for script, n in counts.items():
        w = n * LETTER_WEIGHTS.get(script, 1)
        total += w
        if script in expected:
            mine += w
    return mine / total if total else 1.0


def fits_language(counts: Mapping[str, int], expected: frozenset[str] | None, min_fraction: float) -> bool:
    """True when at least ``min_fraction`` of the (weighted) letters are in one of the expected
    scripts. Text without letters, and unknown languages, fit (other filters judge those)."""
    return expected is None or expected_fraction(counts, expected) >= min_fraction
