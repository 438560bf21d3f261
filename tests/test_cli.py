"""Every command explains itself and refuses what it does not understand, at parse level (no job runs
here except where a test says so): ``--help`` lists every flag with its default, an unknown flag stops
with one line naming the closest known one, Beam's and Dataflow's options pass through, and the
reference's command lines (BERT's create_pretraining_data.py) parse unchanged."""

from __future__ import annotations

import importlib
import os
import pathlib
import subprocess
import sys

import pytest

from specs.errors import ConfigError
from transforms.core import runtime

REPO = pathlib.Path(__file__).resolve().parent.parent
JOBS = ("stackexchange", "translation_pairs", "dedup", "vocab", "pretrain_data", "finetune_data")
# A typo of one flag per job and the flag it should be taken for.
TYPOS = {"stackexchange": ("--pair_type=title_body", "--pair_types"),
         "translation_pairs": ("--sampling_alfa=0.3", "--sampling_alpha"),
         "dedup": ("--text_field=text", "--text_fields"),
         "vocab": ("--vocab_sise=100", "--vocab_size"),
         "pretrain_data": ("--max_seq_lenght=32", "--max_seq_length"),
         "finetune_data": ("--classification_task=SST-2", "--classification_task_name")}
BEAM_FLAGS = ["--runner=DirectRunner", "--project=p", "--region=us-central1", "--temp_location=gs://b/tmp",
              "--direct_num_workers=2", "--direct_running_mode=multi_processing", "--setup_file=./setup.py",
              "--experiments=use_runner_v2", "--experiments=x", "--job_name=j", "--max_num_workers=3",
              "--save_main_session", "--sdk_container_image=img", "--dataflow_service_options=a=b",
              "--num_workers", "2"]
# The command in google-research/bert's README, paths aside.
BERT_README = ["--input_file={text}", "--output_file={out}", "--vocab_file={vocab}", "--do_lower_case=True",
               "--max_seq_length=128", "--max_predictions_per_seq=20", "--masked_lm_prob=0.15",
               "--random_seed=12345", "--dupe_factor=5"]


def _job(name: str):
    module = importlib.import_module(f"pipelines.{name}")
    return module.build, runtime.options_class(module.build)


def _help(name: str, capsys) -> str:
    _, cls = _job(name)
    with pytest.raises(SystemExit) as done:
        runtime.check_flags(name, cls, ["--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", JOBS)
def test_help_lists_every_flag_with_meaning_and_default_job_flags_first(name, capsys):
    text = _help(name, capsys)
    _, cls = _job(name)
    parser = runtime.job_parser(name, cls)
    for action in parser._actions:
        assert action.help, f"{action.option_strings} has no help"
        for flag in action.option_strings:
            assert flag in text, flag
    job_flags = [a for a in parser._action_groups[-2]._group_actions]
    assert job_flags and parser._action_groups[-2].title == f"{name} flags"
    assert text.index(f"{name} flags:") < text.index("common flags") < text.index("--help_beam lists them all")
    assert "--output_dir" in text and "(default: 12345)" in " ".join(text.split())  # --seed, with its default
    # every flag with a default shows it
    for action in parser._actions:
        if action.default not in (None, [], "", False) and action.option_strings[0] not in ("-h",) \
                and action.default is not __import__("argparse").SUPPRESS:
            d = action.default
            shown = repr(d) if isinstance(d, str) and not d.isprintable() else d
            assert f"(default:{shown})".replace(" ", "") in "".join(text.split()), action.option_strings


def test_help_from_the_command_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipelines.pretrain_data", "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "usage: python -m pipelines.pretrain_data" in done.stdout
    assert "--max_seq_length" in done.stdout and "(default: 128)" in done.stdout
    assert "--output_file" in done.stdout and "--allow_empty" in done.stdout


def test_help_beam_lists_beams_options(capsys):
    _, cls = _job("vocab")
    with pytest.raises(SystemExit):
        runtime.check_flags("vocab", cls, ["--help_beam"])
    out = capsys.readouterr().out
    assert "--runner" in out and "--temp_location" in out and "--direct_num_workers" in out


@pytest.mark.parametrize("name", JOBS)
def test_unknown_flag_stops_at_start_up_with_the_closest_flag(name, tmp_path, capsys):
    build, _ = _job(name)
    typo, meant = TYPOS[name]
    out = tmp_path / "out"
    assert runtime.main(name, build, [typo, f"--output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"{name}: error: unknown flag {typo.split('=')[0]}; did you mean {meant}?"
    assert not out.exists()  # nothing was claimed or written


@pytest.mark.parametrize("name", JOBS)
def test_beam_and_dataflow_options_pass_through(name):
    _, cls = _job(name)
    runtime.check_flags(name, cls, [*BEAM_FLAGS, "--output_dir=/x"])


def test_bad_values_and_stray_arguments_are_one_line():
    _, cls = _job("pretrain_data")
    with pytest.raises(ConfigError, match="argument --max_seq_length: invalid int value: 'abc'"):
        runtime.check_flags("pretrain_data", cls, ["--max_seq_length=abc"])
    with pytest.raises(ConfigError, match="unexpected argument 'stray'"):
        runtime.check_flags("pretrain_data", cls, ["stray"])
    with pytest.raises(ConfigError, match="unknown flag --max_seq"):  # no abbreviations
        runtime.check_flags("pretrain_data", cls, ["--max_seq=12"])
    with pytest.raises(ConfigError, match="unknown flag --runer; did you mean --runner"):
        runtime.check_flags("pretrain_data", cls, ["--runer=DataflowRunner"])


def test_the_bert_readme_command_line_parses_unchanged(tmp_path, shared_data):
    argv = [a.format(text="sample_text.txt", out=tmp_path / "tf_examples.tfrecord",
                     vocab=shared_data / "vocab" / "bert-base-uncased.vocab.txt") for a in BERT_README]
    _, cls = _job("pretrain_data")
    options = runtime.parse_command_line("pretrain_data", cls, argv)
    o = options.view_as(cls)
    assert o.input_patterns == ["sample_text.txt"] and o.do_lower_case is True and o.max_seq_length == 128
    assert (o.max_predictions_per_seq, o.masked_lm_prob, o.random_seed, o.dupe_factor) == (20, 0.15, 12345, 5)
    folder, owned = o.run_folder()
    assert folder == str(tmp_path) and "tf_examples.tfrecord" in owned and "schema.pbtxt" in owned
    # absl's forms of the reference's booleans
    for flags, lower in ((["--nodo_lower_case"], False), (["--do_lower_case=false"], False),
                         (["--do_lower_case"], True), ([], True)):
        o = runtime.parse_command_line("pretrain_data", cls, [*argv[:3], *flags]).view_as(cls)
        assert o.do_lower_case is lower, flags


def test_reference_flags_the_job_cannot_honour_stop_with_one_line(tmp_path, shared_data, capsys):
    build, _ = _job("pretrain_data")
    vocab = shared_data / "vocab" / "bert-base-uncased.vocab.txt"
    text = REPO / "samples" / "text" / "cycling.multilingual.txt"
    base = [f"--input_file={text}", f"--vocab_file={vocab}"]
    assert runtime.main("pretrain_data", build, [*base, "--tokenization=SentencePiece",
                                                  f"--output_file={tmp_path / 'a.tfrecord'}"]) == 2
    assert "only WordPiece" in capsys.readouterr().err
    assert runtime.main("pretrain_data", build, [*base, f"--output_file={tmp_path / 'a' / 'x'},"
                                                         f"{tmp_path / 'b' / 'y'}"]) == 2
    assert "in 2 folders" in capsys.readouterr().err
    assert runtime.main("pretrain_data", build, [*base, f"--output_file={tmp_path / 'x'}",
                                                  f"--output_dir={tmp_path}"]) == 2
    assert "not both" in capsys.readouterr().err


def test_dry_run_prints_what_would_run_and_touches_nothing(tmp_path, capsys):
    build, _ = _job("vocab")
    out = tmp_path / "out"
    argv = [f"--input_patterns={REPO / 'samples' / 'text' / 'cycling.multilingual.txt'}", f"--output_dir={out}",
            "--vocab_size=1000", "--dry_run=True"]
    assert runtime.main("vocab", build, argv) == 0
    printed = capsys.readouterr().out
    assert "vocab: dry run on DirectRunner" in printed and "would write vocabulary" in printed
    assert not out.exists()


def test_output_path_problems_stop_at_start_up_with_one_line(tmp_path, capsys):
    build, _ = _job("vocab")
    flags = [f"--input_patterns={REPO / 'samples' / 'text' / 'cycling.multilingual.txt'}", "--vocab_size=1000"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out, expected in ((a_file, "is a file, not a folder"), (a_file / "sub", "which is a file")):
        assert runtime.main("vocab", build, [*flags, f"--output_dir={out}"]) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and "\n" not in err
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert runtime.main("vocab", build, [*flags, f"--output_dir={foreign}"]) == 2
    assert "is not empty and holds no polyembed run (notes.txt)" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert runtime.main("vocab", build, [*flags, f"--output_dir={locked / 'out'}"]) == 2
        assert "permission denied" in capsys.readouterr().err


def test_trainer_help_shows_defaults_without_importing_tensorflow():
    script = ("import runpy, sys\n"
              "for module in ('trainer.task', 'trainer.export_tfhub', 'trainer.evaluate', 'trainer.similarity',\n"
              "               'trainer.convert_checkpoint'):\n"
              "    sys.argv = [module, '--help']\n"
              "    try:\n"
              "        runpy.run_module(module, run_name='__main__')\n"
              "    except SystemExit as e:\n"
              "        assert e.code == 0, (module, e.code)\n"
              "print('TF_IMPORTED', 'tensorflow' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "TF_IMPORTED False" in out
    for prog in ("trainer.task", "trainer.export_tfhub", "trainer.evaluate", "trainer.similarity",
                 "trainer.convert_checkpoint"):
        assert f"usage: python -m {prog}" in out
    assert "(default: model)" in out and "(default: 256)" in out and "--held_out_from" in out
    # convert_checkpoint's description is whole, not its docstring's first line cut mid-sentence
    assert "with bert_config.json and vocab.txt beside it, or as a Hugging Face BERT folder (transformers) or a " \
           "sentence-transformers model." in " ".join(out.split())


@pytest.mark.slow
def test_trainer_commands_name_the_closest_flag_in_one_line():
    for module, typo, meant in (("trainer.task", "--experimnt=labse/train", "--experiment"),
                                ("trainer.export_tfhub", "--export_pth=/x", "--export_path"),
                                ("trainer.evaluate", "--tatoeba_dirs=/x", "--tatoeba_dir"),
                                ("trainer.similarity", "--row=3", "--rows"),
                                ("trainer.convert_checkpoint", "--layot=tf1", "--layout"),
                                ("trainer.submit", "--regon=x", "--region"),
                                ("pipelines.inspect", "--num_example=2", "--num_examples")):
        done = subprocess.run([sys.executable, "-m", module, typo], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, (module, done.stderr)
        err = done.stderr.strip().splitlines()[-1]
        assert f"unknown flag {typo.split('=')[0]}; did you mean {meant}?" in err, (module, done.stderr)


def test_inspect_and_submit_help_list_every_flag():
    for module, flags in (("pipelines.inspect", ("--allow_incomplete", "--num_examples", "(default: 3)")),
                          ("trainer.submit", ("--staging_bucket", "--gpu_count", "(default: 1)"))):
        done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        for flag in flags:
            assert flag in done.stdout, (module, flag)


def test_summary_table_stays_aligned_with_long_names():
    from transforms.core.accounting import format_summary

    def entry(n_in: int, n_out: int, filtered: int) -> dict:
        return {"in": n_in, "out": n_out, "filtered": {"too_long": filtered} if filtered else {},
                "dead_lettered": {}, "balanced": True}

    long_scope = "gs://a-long-bucket-name/corpora/" + "deep/" * 12 + "wiki-00001-of-00100.txt"
    summary = {"balanced": True, "stages": {
        "read_text": {"total": entry(1_234_567, 1_234_000, 567), "scopes": {long_scope: entry(1_234_567, 1_234_000,
                                                                                              567)}},
        "a_stage_with_a_name_longer_than_the_old_column": {"total": entry(5, 5, 0), "scopes": {"x.txt": entry(5, 5,
                                                                                                           0)}}}}
    lines = [line for line in format_summary(summary).splitlines() if " in=" in line]
    assert len(lines) == 4
    for column in ("in=", "out=", "filtered=", "dead_lettered="):
        assert len({line.index(" " + column) for line in lines}) == 1, column
    assert all(len(line) < 200 for line in lines) and "wiki-00001-of-00100.txt" in lines[1]


@pytest.mark.slow
def test_dataflow_dry_run_from_the_command_line_builds_the_job_and_exits_0(shared_data, capsys):
    """The Dataflow job request is built offline; no summary is read from the gs:// folder."""
    build, _ = _job("pretrain_data")
    argv = [f"--input_patterns={REPO / 'samples' / 'text' / 'cycling.multilingual.txt'}",
            f"--vocab_file={shared_data / 'vocab' / 'bert-base-multilingual-cased.vocab.txt'}",
            "--output_dir=gs://polyembed-test-bucket/out/pretrain", "--runner=DataflowRunner",
            "--project=polyembed-test", "--region=us-central1", "--temp_location=gs://polyembed-test-bucket/tmp",
            "--dry_run=True", f"--setup_file={REPO / 'setup.py'}"]
    assert runtime.main("pretrain_data", build, argv) == 0
    out = capsys.readouterr().out
    assert "pretrain_data: dry run on DataflowRunner" in out and "nothing was run or written" in out


@pytest.mark.parametrize("message, shown", [
    ("Unparseable argument: --write_jsonl. Did you mean '--write_jsonl_x'?'", False),  # a bare flag, as Beam writes it
    ("Unparseable argument: --num_shards=4. Did you mean '--num_workers'?'", False),
    ("Unparseable argument: --num_shrads=4. Did you mean '--num_shards'?'", True),  # a typo keeps Beam's warning
])
def test_beam_does_not_warn_about_the_jobs_own_flags(message, shown):
    import logging

    importlib.import_module("pipelines.mine_pairs")  # the options classes register by being imported, as a job's are
    record = logging.LogRecord("apache_beam.options.pipeline_options", logging.WARNING, __file__, 0, message,
                               None, None)
    assert runtime._KnownJobFlags().filter(record) is shown
