"""The GLUE, XNLI and PAWS-X task files: where each split lives, its columns and its labels.

Model Garden 2.20's processors (``official/nlp/data/classifier_data_lib.py``) read most GLUE tasks from
TFDS; the TSV layouts below are GLUE's own files (``train.tsv``, ``dev.tsv``, ``test.tsv``) with the
columns google-research/bert's ``run_classifier.py`` and earlier Model Garden processors read, and
the labels in the reference's order (``get_labels``), which fixes the label ids. XNLI and PAWS-X
follow the file layouts of the reference's ``XnliProcessor`` and ``PawsxProcessor``, which still
read TSV. ``processor_type`` is the reference's ``get_processor_name()`` (written to the meta data).
"""

from __future__ import annotations

import dataclasses

from specs.errors import ConfigError

TRAIN, DEV, TEST = "train", "dev", "test"
SPLITS = (TRAIN, DEV, TEST)


@dataclasses.dataclass(frozen=True)
class RowFormat:
    """Where a TSV row keeps its fields: column indices (negative ones count from the end).

    ``label`` is None for unlabelled files (GLUE's test sets). ``language`` names a column whose value
    routes the row to a per-language output (XNLI's test file). ``id_column`` is a column holding an
    integer index, used to recognise the header of an unlabelled file. ``label_aliases`` maps spellings
    the data uses to the label list's (XNLI writes ``contradictory`` for ``contradiction``).
    """

    text_a: int
    text_b: int | None = None
    label: int | None = None
    language: int | None = None
    id_column: int | None = None
    label_aliases: tuple[tuple[str, str], ...] = ()

    @property
    def min_columns(self) -> int:
        """Columns a row needs: every non-negative index exists, and a negative one (the last column)
        lies beyond them."""
        cols = [c for c in (self.text_a, self.text_b, self.label, self.language, self.id_column) if c is not None]
        last = max((c + 1 for c in cols if c >= 0), default=0)
        return last + max((-c for c in cols if c < 0), default=0)


@dataclasses.dataclass(frozen=True)
class TaskFile:
    """One input file of a task, relative to ``--input_data_dir``; ``group`` is the per-language output
    the file's rows go to (PAWS-X's test files), "" for the split's one output."""

    path: str
    split: str
    fmt: RowFormat
    group: str = ""


@dataclasses.dataclass(frozen=True)
class Task:
    """A named task: the reference's processor name, its labels (None: regression) and its files."""

    name: str
    processor_type: str
    labels: tuple[str, ...] | None
    files: tuple[TaskFile, ...]
    languages: tuple[str, ...] = ()  # per-language test outputs (XNLI's come from a column)

    @property
    def regression(self) -> bool:
        return self.labels is None


BINARY = ("0", "1")
NLI3 = ("contradiction", "entailment", "neutral")
NLI2 = ("entailment", "not_entailment")
XNLI_LANGUAGES = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
PAWSX_LANGUAGES = ("de", "en", "es", "fr", "ja", "ko", "zh")
_CONTRADICTORY = (("contradictory", "contradiction"),)


def _glue(train_dev: RowFormat, test: RowFormat, dev: str = "dev.tsv", test_file: str = "test.tsv"
          ) -> tuple[TaskFile, ...]:
    return (TaskFile("train.tsv", TRAIN, train_dev), TaskFile(dev, DEV, train_dev), TaskFile(test_file, TEST, test))


def _pair_glue(label: int = -1) -> tuple[TaskFile, ...]:
    """``index sentence1 sentence2 label`` (QNLI, RTE, WNLI) and ``index sentence1 sentence2`` tests."""
    return _glue(RowFormat(1, 2, label), RowFormat(1, 2, id_column=0))


def glue_task(name: str, mnli_type: str = "matched", xnli_language: str = "en", pawsx_language: str = "en") -> Task:
    """The task called ``name`` (``--task`` / ``--classification_task_name``, any case); the language
    and MNLI flags choose files as the reference's do. One-line ConfigError for unknown names."""
    key = name.strip().upper()
    if key == "COLA":  # no header: source, label, original label, sentence
        return Task("CoLA", "COLA", BINARY, _glue(RowFormat(3, None, 1), RowFormat(1, id_column=0)))
    if key in ("SST-2", "SST2"):
        return Task("SST-2", "SST-2", BINARY, _glue(RowFormat(0, None, 1), RowFormat(1, id_column=0)))
    if key == "MRPC":  # Quality, #1 ID, #2 ID, #1 String, #2 String
        return Task("MRPC", "MRPC", BINARY, _glue(RowFormat(3, 4, 0), RowFormat(3, 4, id_column=0)))
    if key == "QQP":  # id, qid1, qid2, question1, question2, is_duplicate
        return Task("QQP", "QQP", BINARY, _glue(RowFormat(3, 4, 5), RowFormat(1, 2, id_column=0)))
    if key in ("STS-B", "STSB"):  # index genre filename year old_index source1 source2 sentence1 sentence2 score
        return Task("STS-B", "STS-B", None, _glue(RowFormat(7, 8, 9), RowFormat(7, 8, id_column=0)))
    if key == "MNLI":
        if mnli_type not in ("matched", "mismatched"):
            raise ConfigError(f"--mnli_type must be matched or mismatched, not {mnli_type!r}")
        # index ... sentence1 (8) sentence2 (9) label1 [label2..label5] gold_label (last)
        return Task("MNLI", "MNLI", NLI3, _glue(RowFormat(8, 9, -1), RowFormat(8, 9, id_column=0),
                                               f"dev_{mnli_type}.tsv", f"test_{mnli_type}.tsv"))
    if key == "QNLI":
        return Task("QNLI", "QNLI", NLI2, _pair_glue())
    if key == "RTE":
        return Task("RTE", "RTE", NLI2, _pair_glue())
    if key == "WNLI":
        return Task("WNLI", "WNLI", BINARY, _pair_glue())
    if key == "XNLI":
        langs = _languages(xnli_language, XNLI_LANGUAGES, "--xnli_language")
        # multinli.train.LANG.tsv: premise, hypo, label; xnli.{dev,test}.tsv: language, gold_label, ...,
        # sentence1 (6), sentence2 (7). The test file is split into one output per language.
        train = tuple(TaskFile(f"multinli/multinli.train.{lang}.tsv", TRAIN,
                               RowFormat(0, 1, 2, label_aliases=_CONTRADICTORY)) for lang in langs)
        evaluation = RowFormat(6, 7, 1, language=0)
        return Task("XNLI", "XNLI", NLI3, (*train, TaskFile("xnli.dev.tsv", DEV, RowFormat(6, 7, 1)),
                                           TaskFile("xnli.test.tsv", TEST, evaluation)), XNLI_LANGUAGES)
    if key == "PAWS-X":
        langs = _languages(pawsx_language, PAWSX_LANGUAGES, "--pawsx_language")
        row = RowFormat(1, 2, 3)  # id, sentence1, sentence2, label
        train = tuple(TaskFile(f"{lang}/{'train.tsv' if lang == 'en' else 'translated_train.tsv'}", TRAIN, row)
                      for lang in langs)
        dev = tuple(TaskFile(f"{lang}/dev_2k.tsv", DEV, row) for lang in PAWSX_LANGUAGES)
        test = tuple(TaskFile(f"{lang}/test_2k.tsv", TEST, row, group=lang) for lang in PAWSX_LANGUAGES)
        return Task("PAWS-X", "XTREME-PAWS-X", BINARY, (*train, *dev, *test), PAWSX_LANGUAGES)
    raise ConfigError(f"--task: unknown task {name!r} (known: {', '.join(TASK_NAMES)})")


TASK_NAMES = ("CoLA", "SST-2", "MRPC", "QQP", "STS-B", "MNLI", "QNLI", "RTE", "WNLI", "XNLI", "PAWS-X")


def _languages(value: str, supported: tuple[str, ...], flag: str) -> tuple[str, ...]:
    if value == "all":
        return supported
    if value not in supported:
        raise ConfigError(f"{flag}: {value!r} is not one of {', '.join(supported)} or all")
    return (value,)
