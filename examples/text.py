"""Text pieces the book's NLP chapters share: tokens, vocabulary, padding, GloVe, IMDb and SNLI readers."""
from __future__ import annotations

import collections
import os
import re
from collections.abc import Iterable, Sequence

import torch

__all__ = ["tokenize", "Vocab", "truncate_pad", "load_glove", "read_imdb", "read_snli", "pad_ids"]

PAD, UNK = "<pad>", "<unk>"


def tokenize(lines: Iterable[str]) -> list[list[str]]:
    """Word tokens, split on whitespace, as the book's ``tokenize(lines, 'word')``."""
    return [line.split() for line in lines]


class Vocab:
    """Tokens by descending frequency (ties keep first-seen order); ``<unk>`` is index 0."""

    def __init__(self, tokens: Iterable[Sequence[str]] = (), min_freq: int = 0,
                 reserved_tokens: Sequence[str] = (), idx_to_token: Sequence[str] | None = None) -> None:
        if idx_to_token is None:
            counts = collections.Counter(t for line in tokens for t in line)
            ranked = sorted(counts.items(), key=lambda kv: kv[1], reverse=True)
            idx_to_token = [UNK, *reserved_tokens] + [t for t, n in ranked if n >= min_freq and t not in reserved_tokens
                                                      and t != UNK]
        self.idx_to_token = list(idx_to_token)
        self.token_to_idx = {t: i for i, t in enumerate(self.idx_to_token)}
        self.unk = self.token_to_idx.get(UNK, 0)

    def __len__(self) -> int:
        return len(self.idx_to_token)

    def __getitem__(self, tokens: str | Sequence[str]) -> int | list[int]:
        if isinstance(tokens, str):
            return self.token_to_idx.get(tokens, self.unk)
        return [self.token_to_idx.get(t, self.unk) for t in tokens]


def truncate_pad(ids: Sequence[int], num_steps: int, pad: int) -> list[int]:
    return list(ids[:num_steps]) + [pad] * max(0, num_steps - len(ids))


def pad_ids(lines: Sequence[Sequence[str]], vocab: Vocab, num_steps: int) -> torch.Tensor:
    """Token lists as one ``(n, num_steps)`` tensor of ids, cut or padded with ``<pad>``."""
    return torch.tensor([truncate_pad(vocab[line], num_steps, vocab[PAD]) for line in lines], dtype=torch.long)


def load_glove(path: str, vocab: Vocab) -> torch.Tensor:
    """GloVe vectors for ``vocab`` from a text file (``token v1 v2 ...`` a line, or the book's ``vec.txt``
    in a folder); tokens GloVe lacks get zeros, as in the book."""
    if os.path.isdir(path):
        path = os.path.join(path, "vec.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no GloVe file at {path}; pass --glove with glove.6B.100d.txt or the book's folder")
    wanted, vectors, dim = vocab.token_to_idx, {}, None
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip().split(" ")
            if len(parts) < 3:  # a fastText-style header line
                continue
            dim = dim or len(parts) - 1
            if parts[0] in wanted and len(parts) - 1 == dim:
                vectors[wanted[parts[0]]] = torch.tensor([float(v) for v in parts[1:]])
    if dim is None:
        raise ValueError(f"{path} holds no vectors; it is not a GloVe text file")
    table = torch.zeros(len(vocab), dim)
    for i, v in vectors.items():
        table[i] = v
    return table


def read_imdb(data_dir: str, train: bool, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Reviews and labels (1 = pos) from the ``aclImdb`` folder layout; ``limit`` reviews per class."""
    texts, labels = [], []
    for label, folder in ((1, "pos"), (0, "neg")):
        root = os.path.join(data_dir, "train" if train else "test", folder)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"{root} is missing; --data-dir must hold the aclImdb folder's parent")
        for name in sorted(os.listdir(root))[:limit]:
            with open(os.path.join(root, name), "rb") as f:
                texts.append(f.read().decode("utf-8").replace("\n", ""))
            labels.append(label)
    return texts, labels


SNLI_LABELS = {"entailment": 0, "contradiction": 1, "neutral": 2}


def _parse_text(s: str) -> str:
    return re.sub(r"\s{2,}", " ", s.replace("(", "").replace(")", "")).strip()


def read_snli(data_dir: str, train: bool, limit: int | None = None) -> tuple[list[str], list[str], list[int]]:
    """Premises, hypotheses and labels from ``snli_1.0_{train,test}.txt`` (rows without a gold label skipped)."""
    path = os.path.join(data_dir, "snli_1.0_train.txt" if train else "snli_1.0_test.txt")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f.readlines()[1:]]
    rows = [r for r in rows if r[0] in SNLI_LABELS][:limit]
    return [_parse_text(r[1]) for r in rows], [_parse_text(r[2]) for r in rows], [SNLI_LABELS[r[0]] for r in rows]


def imdb_loaders(data_dir: str, batch_size: int, num_steps: int = 500, limit: int | None = None,
                 num_workers: int = 0) -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader, Vocab]:
    """The book's ``load_data_imdb``: word tokens, a vocabulary of words seen 5+ times, 500-token rows."""
    from torch.utils.data import DataLoader, TensorDataset

    (train_x, train_y), (test_x, test_y) = (read_imdb(data_dir, t, limit) for t in (True, False))
    train_tokens, test_tokens = tokenize(train_x), tokenize(test_x)
    vocab = Vocab(train_tokens, min_freq=5, reserved_tokens=[PAD])
    train = TensorDataset(pad_ids(train_tokens, vocab, num_steps), torch.tensor(train_y))
    test = TensorDataset(pad_ids(test_tokens, vocab, num_steps), torch.tensor(test_y))
    pin = torch.cuda.is_available()  # the side-stream copy overlaps a step only from pinned memory
    return (DataLoader(train, batch_size, shuffle=True, num_workers=num_workers, pin_memory=pin),
            DataLoader(test, batch_size, num_workers=num_workers, pin_memory=pin), vocab)


class SNLIDataset(torch.utils.data.Dataset):
    """``((premise ids, hypothesis ids), label)`` items: a DataLoader turns them into ``X = [P, H]``."""

    def __init__(self, premises: list[str], hypotheses: list[str], labels: list[int], num_steps: int,
                 vocab: Vocab | None = None) -> None:
        p, h = tokenize(premises), tokenize(hypotheses)
        self.vocab = vocab or Vocab(p + h, min_freq=5, reserved_tokens=[PAD])
        self.premises, self.hypotheses = pad_ids(p, self.vocab, num_steps), pad_ids(h, self.vocab, num_steps)
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        return (self.premises[i], self.hypotheses[i]), self.labels[i]
