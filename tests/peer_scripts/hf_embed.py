"""Peer side of tests/test_hf_out.py, run with the peer venv's Python (torch, transformers,
sentence-transformers): embeds sentences with the third party's own loaders and writes what it got.

    python hf_embed.py SENTENCES_JSON OUT_DIR --hf=FOLDER [--st=FOLDER] [--seq_length=N] [--pooling=cls|mean]
                       [--normalize]

``--hf``: ``AutoTokenizer`` ids (``hf_ids.npy``, truncated and padded to ``--seq_length``) and ``BertModel``'s
embedding as our dual encoder pools it (``hf_emb.npy``: the pooler output for ``cls``, the masked mean of
``last_hidden_state`` for ``mean``, L2-normalised with ``--normalize``). ``--st``: ``SentenceTransformer``'s
``encode`` (``st_emb.npy``). Prints one JSON line: the loading info (missing and unexpected weights) and
what the loaded objects say about themselves.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch
import transformers


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("sentences")
    p.add_argument("out_dir")
    p.add_argument("--hf", required=True)
    p.add_argument("--st", default="")
    p.add_argument("--seq_length", type=int, default=128)
    p.add_argument("--pooling", default="cls")
    p.add_argument("--normalize", action="store_true")
    args = p.parse_args()
    with open(args.sentences, encoding="utf-8") as f:
        sentences = json.load(f)
    report: dict = {}

    tokenizer = transformers.AutoTokenizer.from_pretrained(args.hf)
    batch = tokenizer(sentences, truncation=True, max_length=args.seq_length, padding="max_length",
                      return_tensors="pt")
    model, info = transformers.BertModel.from_pretrained(args.hf, output_loading_info=True)
    model.eval()
    with torch.no_grad():
        out = model(**batch)
    if args.pooling == "mean":
        mask = batch["attention_mask"].unsqueeze(-1).float()
        emb = (out.last_hidden_state * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    else:
        emb = out.pooler_output
    if args.normalize:
        emb = torch.nn.functional.normalize(emb, dim=-1)
    np.save(os.path.join(args.out_dir, "hf_ids.npy"), batch["input_ids"].numpy())
    np.save(os.path.join(args.out_dir, "hf_emb.npy"), emb.numpy())
    report["hf"] = {"missing": sorted(info["missing_keys"]), "unexpected": sorted(info["unexpected_keys"]),
                    "hidden_act": model.config.hidden_act, "tokenizer": type(tokenizer).__name__,
                    "do_lower_case": getattr(tokenizer, "do_lower_case", None)}

    if args.st:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(args.st, device="cpu")
        np.save(os.path.join(args.out_dir, "st_emb.npy"), st.encode(sentences, batch_size=64, convert_to_numpy=True))
        report["st"] = {"modules": [type(m).__name__ for m in st], "max_seq_length": st.max_seq_length}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
