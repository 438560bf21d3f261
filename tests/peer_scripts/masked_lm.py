"""Runs in the peer venv (torch, transformers): writes a small ``BertForMaskedLM`` with transformers' own
code (random weights from a seed; every bias and layer norm perturbed so a swapped mapping shows) by
``save_pretrained`` (model.safetensors + config.json), and its MLM logits at given positions as .npy.

    python masked_lm.py OUT_DIR INPUTS.npz LOGITS.npy
"""

import sys

import numpy as np
import torch
from transformers import BertConfig, BertForMaskedLM

out_dir, inputs_file, logits_file = sys.argv[1:4]
torch.manual_seed(0)
config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    max_position_embeddings=16, hidden_act="gelu", hidden_dropout_prob=0.0,
                    attention_probs_dropout_prob=0.0)
model = BertForMaskedLM(config).eval()
with torch.no_grad():
    for p in model.parameters():
        if p.dim() == 1:
            p.add_(torch.randn_like(p) * 0.5)
model.save_pretrained(out_dir)
inputs = np.load(inputs_file)
with torch.no_grad():
    logits = model(input_ids=torch.tensor(inputs["input_word_ids"], dtype=torch.long),
                   attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
                   token_type_ids=torch.tensor(inputs["input_type_ids"], dtype=torch.long)).logits
positions = torch.tensor(inputs["masked_lm_positions"], dtype=torch.long)
np.save(logits_file, torch.gather(logits, 1, positions[:, :, None].expand(-1, -1, logits.shape[-1])).numpy())
