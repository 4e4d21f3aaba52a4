"""The book's sentiment and NLI models: BiRNN (16.2), TextCNN (16.3), decomposable attention (16.5)."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["BiRNN", "TextCNN", "DecomposableAttention", "frozen_embedding"]


def frozen_embedding(table: torch.Tensor) -> nn.Embedding:
    return nn.Embedding.from_pretrained(table, freeze=True)


class BiRNN(nn.Module):
    """Embeddings through a bidirectional LSTM; the first and last steps' states classify."""

    def __init__(self, vocab_size: int, embed_size: int, num_hiddens: int, num_layers: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.encoder = nn.LSTM(embed_size, num_hiddens, num_layers=num_layers, bidirectional=True)
        self.decoder = nn.Linear(4 * num_hiddens, 2)
        for name, p in self.named_parameters():
            if name.startswith(("encoder.weight", "decoder.weight")):
                nn.init.xavier_uniform_(p)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        self.encoder.flatten_parameters()  # DataParallel replicas get non-contiguous weights: re-pack, no warning
        outputs, _ = self.encoder(self.embedding(inputs.T))
        return self.decoder(torch.cat((outputs[0], outputs[-1]), dim=1))


class TextCNN(nn.Module):
    """A trainable and a frozen embedding, 1-d convolutions of several widths, pooled over time (average, as
    the book's code)."""

    def __init__(self, vocab_size: int, embed_size: int, kernel_sizes: tuple[int, ...] = (3, 4, 5),
                 num_channels: tuple[int, ...] = (100, 100, 100)) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.constant_embedding = nn.Embedding(vocab_size, embed_size)
        self.constant_embedding.weight.requires_grad_(False)
        self.dropout = nn.Dropout(0.5)
        self.decoder = nn.Linear(sum(num_channels), 2)
        self.convs = nn.ModuleList(nn.Conv1d(2 * embed_size, c, k) for c, k in zip(num_channels, kernel_sizes))
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv1d)):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        embeddings = torch.cat((self.embedding(inputs), self.constant_embedding(inputs)), dim=2).permute(0, 2, 1)
        encoding = torch.cat([F.relu(F.adaptive_avg_pool1d(conv(embeddings), 1)).squeeze(-1) for conv in self.convs],
                             dim=1)
        return self.decoder(self.dropout(encoding))


def _mlp(num_inputs: int, num_hiddens: int, flatten: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Dropout(0.2), nn.Linear(num_inputs, num_hiddens), nn.ReLU()]
    if flatten:
        layers.append(nn.Flatten(start_dim=1))
    layers += [nn.Dropout(0.2), nn.Linear(num_hiddens, num_hiddens), nn.ReLU()]
    if flatten:
        layers.append(nn.Flatten(start_dim=1))
    return nn.Sequential(*layers)


class DecomposableAttention(nn.Module):
    """Attend (soft-align the two sentences), compare (each token with its aligned phrase), aggregate."""

    def __init__(self, vocab_size: int, embed_size: int = 100, num_hiddens: int = 200) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.f = _mlp(embed_size, num_hiddens, flatten=False)
        self.g = _mlp(2 * embed_size, num_hiddens, flatten=False)
        self.h = _mlp(2 * num_hiddens, num_hiddens, flatten=True)
        self.linear = nn.Linear(num_hiddens, 3)

    def forward(self, X: list[torch.Tensor]) -> torch.Tensor:
        premises, hypotheses = X
        A, B = self.embedding(premises), self.embedding(hypotheses)
        e = torch.bmm(self.f(A), self.f(B).permute(0, 2, 1))
        beta = torch.bmm(F.softmax(e, dim=-1), B)  # hypothesis phrases aligned to each premise token
        alpha = torch.bmm(F.softmax(e.permute(0, 2, 1), dim=-1), A)
        V_A = self.g(torch.cat([A, beta], dim=2)).sum(dim=1)
        V_B = self.g(torch.cat([B, alpha], dim=2)).sum(dim=1)
        return self.linear(self.h(torch.cat([V_A, V_B], dim=1)))
