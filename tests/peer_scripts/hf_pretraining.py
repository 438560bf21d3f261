"""Peer side of tests/test_hf_out.py for a ``bert/pretraining`` run's Hugging Face folder, run with the peer
venv's Python: ``BertForPreTraining`` and ``BertModel`` load it; the heads' logits on our inputs are written.

    python hf_pretraining.py FOLDER ARRAYS_DIR

``ARRAYS_DIR`` holds ``input_word_ids.npy``, ``input_mask.npy``, ``input_type_ids.npy`` and
``masked_lm_positions.npy``; ``mlm_logits.npy`` (at those positions) and ``nsp_logits.npy`` are written there.
Prints one JSON line: each model's missing and unexpected weights, and whether the decoder is tied.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
import transformers


def main() -> None:
    folder, arrays = sys.argv[1], sys.argv[2]
    report = {}
    for cls in (transformers.BertModel, transformers.BertForPreTraining):
        model, info = cls.from_pretrained(folder, output_loading_info=True)
        report[cls.__name__] = {"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"])}
    model.eval()
    decoder, embeddings = model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight
    report["tied"] = bool(torch.equal(decoder, embeddings))
    ids, mask, types = (torch.from_numpy(np.load(os.path.join(arrays, f"{k}.npy"))).long()
                        for k in ("input_word_ids", "input_mask", "input_type_ids"))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    positions = torch.from_numpy(np.load(os.path.join(arrays, "masked_lm_positions.npy"))).long()
    mlm = torch.gather(out.prediction_logits, 1, positions[:, :, None].expand(-1, -1, out.prediction_logits.shape[-1]))
    np.save(os.path.join(arrays, "mlm_logits.npy"), mlm.numpy())
    np.save(os.path.join(arrays, "nsp_logits.npy"), out.seq_relationship_logits.numpy())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
