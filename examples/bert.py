"""The book's small BERT (16.7): encoder blocks with masked multi-head attention, and its SNLI classifier.

Module names follow the book's, so its ``pretrained.params`` loads into ``encoder`` and ``hidden``.
"""
from __future__ import annotations

import json
import os

import torch
from torch import nn
from torch.nn import functional as F

from text import PAD, Vocab

__all__ = ["BERTEncoder", "BERTClassifier", "load_pretrained", "bert_inputs"]


class MultiHeadAttention(nn.Module):
    def __init__(self, num_hiddens: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads, self.dropout = num_heads, dropout
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(num_hiddens, num_hiddens, bias=False) for _ in range(4))

    def _heads(self, X: torch.Tensor) -> torch.Tensor:
        return X.reshape(X.shape[0], X.shape[1], self.num_heads, -1).transpose(1, 2)

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
        mask = None
        if valid_lens is not None:  # keys at or past an example's valid length get no attention
            mask = (torch.arange(X.shape[1], device=X.device)[None, :] < valid_lens[:, None])[:, None, None, :]
        out = F.scaled_dot_product_attention(self._heads(self.W_q(X)), self._heads(self.W_k(X)),
                                             self._heads(self.W_v(X)), attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.W_o(out.transpose(1, 2).reshape(X.shape))


class AddNorm(nn.Module):
    def __init__(self, num_hiddens: int, dropout: float) -> None:
        super().__init__()
        self.dropout, self.ln = nn.Dropout(dropout), nn.LayerNorm(num_hiddens)

    def forward(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(self.dropout(Y) + X)


class PositionWiseFFN(nn.Module):
    def __init__(self, num_hiddens: int, ffn_hiddens: int) -> None:
        super().__init__()
        self.dense1, self.relu = nn.Linear(num_hiddens, ffn_hiddens), nn.ReLU()
        self.dense2 = nn.Linear(ffn_hiddens, num_hiddens)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.relu(self.dense1(X)))


class EncoderBlock(nn.Module):
    def __init__(self, num_hiddens: int, ffn_hiddens: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(num_hiddens, ffn_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
        Y = self.addnorm1(X, self.attention(X, valid_lens))
        return self.addnorm2(Y, self.ffn(Y))


class BERTEncoder(nn.Module):
    """Token + segment + learned position embeddings, then ``num_blks`` encoder blocks."""

    def __init__(self, vocab_size: int, num_hiddens: int = 256, ffn_hiddens: int = 512, num_heads: int = 4,
                 num_blks: int = 2, dropout: float = 0.1, max_len: int = 512) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab_size, num_hiddens)
        self.segment_embedding = nn.Embedding(2, num_hiddens)
        self.blks = nn.Sequential(*(EncoderBlock(num_hiddens, ffn_hiddens, num_heads, dropout)
                                    for _ in range(num_blks)))
        self.pos_embedding = nn.Parameter(torch.randn(1, max_len, num_hiddens))

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None) -> torch.Tensor:
        X = self.token_embedding(tokens) + self.segment_embedding(segments) + self.pos_embedding[:, :tokens.shape[1]]
        for blk in self.blks:
            X = blk(X, valid_lens)
        return X


class BERTClassifier(nn.Module):
    """The encoding of ``<cls>`` through the pretraining's hidden layer, then a 3-way output."""

    def __init__(self, encoder: BERTEncoder, num_hiddens: int = 256, num_classes: int = 3) -> None:
        super().__init__()
        self.encoder = encoder
        self.hidden = nn.Sequential(nn.Linear(num_hiddens, num_hiddens), nn.Tanh())
        self.output = nn.Linear(num_hiddens, num_classes)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        tokens, segments, valid_lens = inputs
        return self.output(self.hidden(self.encoder(tokens, segments, valid_lens)[:, 0, :]))


def load_pretrained(folder: str, net: BERTClassifier) -> Vocab:
    """The book's ``bert.small.torch`` folder: ``vocab.json`` and ``pretrained.params`` (loaded
    ``weights_only``) into the encoder and hidden layer; returns its vocabulary."""
    with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
        vocab = Vocab(idx_to_token=json.load(f))
    state = torch.load(os.path.join(folder, "pretrained.params"), map_location="cpu", weights_only=True)
    ours = {k: v for k, v in state.items() if k.startswith(("encoder.", "hidden."))}
    if not ours:
        raise ValueError(f"{folder}/pretrained.params has no encoder weights; pass the book's bert.small.torch folder")
    if net.encoder.token_embedding.num_embeddings != len(vocab):
        net.encoder.token_embedding = nn.Embedding(len(vocab), net.encoder.token_embedding.embedding_dim)
    missing, unexpected = net.load_state_dict(ours, strict=False)
    if [k for k in missing if not k.startswith("output.")] or unexpected:
        raise ValueError(f"{folder}/pretrained.params does not fit this BERT (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); it must be the book's small BERT (256 hidden, 2 blocks)")
    return vocab


def bert_inputs(premise: list[str], hypothesis: list[str], vocab: Vocab,
                max_len: int) -> tuple[list[int], list[int], int]:
    """``<cls> premise <sep> hypothesis <sep>``: ids, segment ids and valid length, padded to ``max_len``
    (the longer sentence is cut first when the pair does not fit)."""
    p, h = list(premise), list(hypothesis)
    while len(p) + len(h) > max_len - 3:
        (p if len(p) > len(h) else h).pop()
    tokens = ["<cls>", *p, "<sep>", *h, "<sep>"]
    segments = [0] * (len(p) + 2) + [1] * (len(h) + 1)
    n = len(tokens)
    return vocab[tokens] + [vocab[PAD]] * (max_len - n), segments + [0] * (max_len - n), n
