"""Command lines of the trainer's commands (every one of them: task, export_tfhub, evaluate, similarity,
convert_checkpoint and submit), answerable before TensorFlow is imported.

``python -m trainer.X --help`` (or a mistyped flag) should answer at once, not after the seconds that
importing TensorFlow takes, so the parsers live here, in a module that imports neither TensorFlow nor
Beam nor YAML; each command module parses its arguments with them first thing (``parse_early``) and
imports its heavy dependencies after. They are ``specs.command_line.StrictParser``s, the policy every
command of the project follows.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from specs.command_line import HelpFormatter, StrictParser
from trainer.checkpoints.layouts import CONVERT_LAYOUTS
from trainer.experiments import NAMES
from trainer.export import EXPORT_TYPES, POOLERS
from trainer.launch import vertex

MODES = ("train", "eval", "train_and_eval", "export", "predict")


def _experiments() -> list[str]:
    return sorted(NAMES)  # the registry imports no TensorFlow


def _config_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config_file", action="append", default=[],
                   help="YAML config, applied in order over the experiment's defaults (repeatable).")
    p.add_argument("--params_override", action="append", default=[],
                   help="a.b=c,d.e=f overrides applied after the config files (repeatable).")


def task_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.task",
                     description="Trains, evaluates or exports an experiment (Model Garden style config).")
    p.add_argument("--experiment", required=True, choices=_experiments(), help="The named experiment.")
    p.add_argument("--mode", required=True, choices=MODES,
                   help="train, eval (the latest checkpoint), train_and_eval, export (the experiment's export: a "
                        "TF Hub encoder, or the classifier) or predict (bert/sentence_prediction: a GLUE "
                        "submission TSV).")
    p.add_argument("--model_dir", default="", help="Checkpoints, summaries, params.yaml; default $AIP_MODEL_DIR.")
    _config_flags(p)
    p.add_argument("--tpu", default="", help='TPU name, or "local" on a Vertex TPU VM; overrides the runtime.')
    return p


def export_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.export_tfhub",
                     description="Exports a trained model as TF Hub SavedModels (encoder, MLM, preprocessing, "
                                 "classifier).")
    p.add_argument("--experiment", required=True, help="The experiment the model was trained with.")
    p.add_argument("--model_dir", default="", help="The training run (its latest checkpoint is exported).")
    p.add_argument("--checkpoint_path", default="", help="A specific checkpoint instead of the latest.")
    _config_flags(p)
    p.add_argument("--export_type", default="model", choices=EXPORT_TYPES,
                   help="model (encoder), model_with_mlm (+ mlm signature), preprocessing, text_embedder (strings -> "
                        "the L2-normalised sentence embeddings, tokenisation inside), or for "
                        "bert/sentence_prediction classifier (encoder inputs -> logits) or text_classifier "
                        "(strings -> logits).")
    p.add_argument("--export_path", required=True, help="Where the SavedModel is written.")
    p.add_argument("--vocab_file", default="", help="Defaults to the run's task.train_data.vocab_file.")
    p.add_argument("--do_lower_case", default="", choices=("", "true", "false"),
                   help="Defaults to the run's task.train_data.lower_case (true for an uncased vocabulary).")
    p.add_argument("--pooler", default="trained", choices=POOLERS,
                   help="The pooled_output: trained, untrained, copy_from_nsp or identity ([CLS]).")
    return p


def _encoder_flags(p: argparse.ArgumentParser, seq_length: int) -> None:
    p.add_argument("--model", required=True, help="An encoder export (trainer.export_tfhub --export_type=model).")
    p.add_argument("--preprocessor", default="", help="A preprocessing export (else the encoder's vocab_file).")
    p.add_argument("--seq_length", type=int, default=seq_length, help="Tokens per sentence.")


def evaluate_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.evaluate",
                     description="Tatoeba-style retrieval precision@1 of an exported encoder, both directions.")
    _encoder_flags(p, 64)
    p.add_argument("--pairs", action="append", default=[], help="SRC_FILE:TGT_FILE (repeatable).")
    p.add_argument("--tatoeba_dir", default="", help="A LASER Tatoeba directory (tatoeba.xxx-eng.{xxx,eng}).")
    p.add_argument("--langs", default="", help="Comma-separated languages of --tatoeba_dir.")
    p.add_argument("--skip_lines", type=int, default=0, help="Lines to skip at the start of each file.")
    p.add_argument("--max_lines", type=int, default=0, help="Lines to score per file after skipping (0: all).")
    p.add_argument("--batch_size", type=int, default=256, help="Sentences embedded per call.")
    p.add_argument("--output_json", default="", help="Also write the scores to this file.")
    return p


def similarity_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.similarity",
                     description="A cosine-similarity table of translation pairs under an exported encoder.")
    _encoder_flags(p, 32)
    p.add_argument("--tsv", required=True, help="src<TAB>tgt lines (a translation-pair TSV).")
    p.add_argument("--rows", type=int, default=5, help="Pairs shown (the first lines of --tsv).")
    p.add_argument("--held_out_from", default="",
                   help="A translation_pairs run folder or a file of its training split: fails when a shown "
                        "sentence is in that split, and the table says the sentences are held out.")
    p.add_argument("--output", default="", help="Also write the table to this file.")
    return p


def convert_parser() -> StrictParser:
    p = StrictParser(prog="python -m trainer.convert_checkpoint",
                     description="Writes a run's latest checkpoint (or any encoder checkpoint task.init_checkpoint "
                                 "reads) as a Model Garden TF2 checkpoint or in Google's TF1 BERT layout, with "
                                 "bert_config.json and vocab.txt beside it, or as a Hugging Face BERT folder "
                                 "(transformers) or a sentence-transformers model.")
    p.add_argument("--model_dir", default="", help="The training run (its latest checkpoint and params.yaml).")
    p.add_argument("--checkpoint_path", default="", help="A checkpoint (any layout) instead of the run's latest.")
    p.add_argument("--output_dir", required=True, help="The folder the converted checkpoint is written to.")
    p.add_argument("--layout", required=True, choices=CONVERT_LAYOUTS,
                   help="model_garden (tf.train.Checkpoint(encoder=BertEncoder)), tf1 (bert_model.ckpt), hf "
                        "(BertModel.from_pretrained and AutoTokenizer.from_pretrained load it) or "
                        "sentence_transformers (SentenceTransformer(OUT) loads it: the run's pooling, "
                        "max_seq_length and normalisation).")
    return p


class _Formatter(argparse.RawDescriptionHelpFormatter, HelpFormatter):
    """The module docstring as written, and every flag's default."""


def parse_submit(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """``python -m trainer.submit``'s flags, and the arguments after ``--`` (for ``trainer.task``)."""
    argv = list(argv)
    passthrough: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    p = StrictParser(prog="python -m trainer.submit", description=vertex.__doc__, formatter_class=_Formatter,
                     epilog="Arguments after -- go to trainer.task unchanged (e.g. --params_override=...).")
    p.add_argument("--project", required=True, help="Google Cloud project of the Vertex AI job.")
    p.add_argument("--region", required=True, help="Vertex AI region, e.g. us-central1.")
    p.add_argument("--staging_bucket", required=True, help="gs://BUCKET[/prefix] for the sdist and outputs")
    p.add_argument("--experiment", required=True, choices=vertex.EXPERIMENTS, help="The experiment trainer.task runs.")
    accel = p.add_mutually_exclusive_group()
    accel.add_argument("--tpu_type", choices=sorted(vertex.TPU_TYPES), help="A TPU slice (else --gpu_type, else CPU).")
    accel.add_argument("--gpu_type", help="e.g. NVIDIA_TESLA_V100, NVIDIA_L4, NVIDIA_A100_80GB")
    p.add_argument("--gpu_count", type=int, default=1, help="GPUs per machine with --gpu_type.")
    p.add_argument("--machine_type", default=None, help="Vertex machine type (default: one that fits the accelerator).")
    p.add_argument("--container_uri", default=None, help="a custom training container (see Dockerfile)")
    p.add_argument("--executor_image_uri", default=None,
                   help="Vertex AI prebuilt TensorFlow image for the Python package spec; it must run the lock's "
                        "TensorFlow and Python (default: tf-cpu, tf-gpu or tf-tpu of those)")
    p.add_argument("--display_name", default=None, help="Job name (default: polyembed-EXPERIMENT-TIME).")
    p.add_argument("--base_output_dir", default=None,
                   help="The job's output folder (default: STAGING_BUCKET/polyembed/NAME).")
    p.add_argument("--service_account", default=None, help="Service account the job runs as.")
    p.add_argument("--tensorboard", default=None, help="a Vertex TensorBoard resource name")
    p.add_argument("--dry_run", action="store_true", help="print the job spec as JSON; upload and submit nothing")
    args = p.parse_args(argv)
    if not args.staging_bucket.startswith("gs://"):
        p.error("--staging_bucket must be a gs:// path")
    return args, passthrough


PARSERS = {"task": task_parser, "export_tfhub": export_parser, "evaluate": evaluate_parser,
           "similarity": similarity_parser, "convert_checkpoint": convert_parser}


def parse_early(command: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses a command's arguments (``--help`` answers and exits here, as does a bad flag)."""
    return PARSERS[command]().parse_args(sys.argv[1:] if argv is None else list(argv))


def one_line_errors(body: Callable[[], object]) -> int:
    """Runs a command's ``body``: 0 when it returns; a configuration, spec or folder error
    (``ConfigError``, ``specs.SpecError``, ``specs.run_folder.RunFolderError``) becomes its one line on
    stderr and exit status 2, before or instead of work."""
    import specs
    from specs.errors import ConfigError
    from specs.run_folder import RunFolderError

    try:
        body()
    except (ConfigError, specs.SpecError, RunFolderError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
