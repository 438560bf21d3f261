"""Runs in the peer venv (torch, sentence-transformers): sentences (one per line) -> the model's own
embeddings as .npy, by ``SentenceTransformer(path).encode``.

    python st_encode.py MODEL_DIR SENTENCES.txt OUT.npy
"""

import sys

import numpy as np
from sentence_transformers import SentenceTransformer

model_dir, sentences_file, out = sys.argv[1:4]
with open(sentences_file, encoding="utf-8") as f:
    sentences = [line.rstrip("\n") for line in f]
model = SentenceTransformer(model_dir, device="cpu")
np.save(out, model.encode(sentences, batch_size=64, convert_to_numpy=True))
