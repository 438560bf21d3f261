#!/usr/bin/env bash
# The end-to-end demo behind `make demo`: every pipeline on the bundled samples with the DirectRunner,
# then both trainer experiments on CPU, the TF Hub export, and a cross-lingual similarity table.
#
#   scripts/demo.sh [OUTPUT_DIR]     (default demo_out; PY=path/to/python to use another interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-demo_out}
PY=${PY:-.venv/bin/python}
export TF_CPP_MIN_LOG_LEVEL=2 PYTHONWARNINGS=ignore
STEPS=11
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

step "StackExchange dump -> near-deduplicated sentence pairs (jsonl + TFRecords)" \
  "$PY" -m pipelines.stackexchange --input=samples/stackexchange/cycling.example.stackexchange.com \
    --output_dir="$OUT/stackexchange" --dedup=near

# The similarity table at the end shows the first 5 German-English pairs; they are held out: every pair
# with one of their sentences (in any language pair) is excluded from all splits, and the table checks it.
HELD_OUT="$OUT/held_out.deu-eng.tsv"
head -n 5 samples/translation/cycling.deu-eng.tsv > "$HELD_OUT"
cut -f1,2 "$HELD_OUT" | tr '\t' '\n' > "$OUT/held_out.sentences.txt"

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

# Fine-tuning (bert/sentence_prediction) needs GLUE's SST-2, which is not bundled: it is read from the
# shared data folder ($POLYEMBED_SHARED, else ../shared) when present, and the step says so when not.
GLUE_SST2=${POLYEMBED_SHARED:-../shared}/data/glue/SST-2
finetune_sst2() {
  if [ ! -f "$GLUE_SST2/train.tsv" ] || [ ! -f "$GLUE_SST2/dev.tsv" ]; then
    echo "skipped: no GLUE SST-2 at $GLUE_SST2 (set POLYEMBED_SHARED to the folder holding data/glue)"
    return 0
  fi
  mkdir -p "$OUT/glue/SST-2"
  head -n 401 "$GLUE_SST2/train.tsv" > "$OUT/glue/SST-2/train.tsv"
  head -n 201 "$GLUE_SST2/dev.tsv" > "$OUT/glue/SST-2/dev.tsv"
  "$PY" -m pipelines.finetune_data --task=SST-2 --input_data_dir="$OUT/glue/SST-2" \
    --vocab_file="$OUT/vocab/vocab.txt" --do_lower_case=false --max_seq_length=64 --output_dir="$OUT/finetune/sst2"
  "$PY" -m trainer.task --experiment=bert/sentence_prediction --mode=train_and_eval --model_dir="$OUT/sst2" \
    --config_file=trainer/configs/sentence_prediction_tiny.yaml \
    --params_override="task.model.encoder.vocab_size=$VOCAB_SIZE,task.init_checkpoint=$OUT/bert,task.train_data.input_path=$OUT/finetune/sst2/train/*,task.validation_data.input_path=$OUT/finetune/sst2/dev/*,task.train_data.global_batch_size=16,trainer.train_steps=60,trainer.steps_per_loop=20,trainer.checkpoint_interval=60,trainer.validation_interval=60"
  "$PY" -c 'import json, sys; m = json.load(open(sys.argv[1])); step, acc, n = m["step"], m["accuracy"], int(m["examples"]); print(f"SST-2 dev accuracy after {step} steps from the pretrained tiny BERT: {acc:.3f} on {n} sentences (majority class: about 0.5)")' "$OUT/sst2/eval/metrics-60.json"
}
step "bert/sentence_prediction: fine-tune that BERT on 400 SST-2 sentences, dev accuracy" finetune_sst2

printf '\nDemo finished in %d s. Outputs under %s/:\n' "$((SECONDS - t0))" "$OUT"
printf '  stackexchange/  translation/  vocab/  pretrain/  bert/  labse/  export/  similarity.txt  (sst2/)\n'
