"""Book 16.7 BERT fine-tuning on SNLI: a small BERT (256 hidden, 2 blocks, 4 heads), X = [tokens, segments, valid_lens].

    python examples/nli_bert.py [--data-dir ../data] [--bert-params ../data/bert.small.torch]
The book printed ``loss 0.520, train acc 0.791, test acc 0.786`` (2 GPUs, 5 epochs, batch 512, Adam 1e-4).
Without --bert-params the book's parameters are downloaded; offline, the BERT starts from random init.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from bert import BERTClassifier, BERTEncoder, bert_inputs, load_pretrained
from common import DATA_URL, download_extract, example_parser, given_or_downloaded, run, script
from nli_attention import SNLI
from text import PAD, Vocab, read_snli, tokenize

BERT_SMALL = (DATA_URL + "bert.small.torch.zip", "c72329e68a732bef0452e4b96a1c341c8910f81f")


class SNLIBERTDataset(Dataset):
    """``([token ids, segment ids, valid length], label)`` items for a premise/hypothesis pair."""

    def __init__(self, premises: list[str], hypotheses: list[str], labels: list[int], vocab: Vocab, max_len: int):
        rows = [bert_inputs(p, h, vocab, max_len) for p, h in zip(tokenize(premises), tokenize(hypotheses))]
        self.tokens = torch.tensor([r[0] for r in rows], dtype=torch.long)
        self.segments = torch.tensor([r[1] for r in rows], dtype=torch.long)
        self.valid_lens = torch.tensor([r[2] for r in rows])
        self.labels = torch.tensor(labels)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return (self.tokens[i], self.segments[i], self.valid_lens[i]), self.labels[i]


def build(args, train_text) -> tuple[BERTClassifier, Vocab]:
    net = BERTClassifier(BERTEncoder(1, 256, 512, 4, 2, 0.1, 512))
    folder = given_or_downloaded(args.bert_params, BERT_SMALL, args.data_dir, "bert.small.torch", "bert",
                                 "the BERT starts from random init")
    if folder is not None:
        return net, load_pretrained(folder, net)
    vocab = Vocab(tokenize(train_text[0]) + tokenize(train_text[1]), min_freq=5,
                  reserved_tokens=[PAD, "<mask>", "<cls>", "<sep>"])
    net.encoder.token_embedding = nn.Embedding(len(vocab), 256)
    return net, vocab


def main(argv: list[str] | None = None) -> None:
    p = example_parser(__doc__.splitlines()[0], epochs=5, batch_size=512, lr=1e-4)
    p.add_argument("--bert-params", default=None,
                   help="the book's bert.small.torch folder (vocab.json, pretrained.params)")
    p.add_argument("--max-len", type=int, default=128, help="tokens per premise/hypothesis pair")
    args = p.parse_args(argv)
    folder = download_extract(*SNLI, args.data_dir, "snli_1.0")
    train_text, test_text = read_snli(folder, True, args.limit), read_snli(folder, False, args.limit)
    net, vocab = build(args, train_text)
    train, test = (SNLIBERTDataset(*text, vocab, args.max_len) for text in (train_text, test_text))
    pin = torch.cuda.is_available()  # the side-stream copy overlaps a step only from pinned memory
    train_iter = DataLoader(train, args.batch_size, shuffle=True, num_workers=args.num_workers, pin_memory=pin)
    test_iter = DataLoader(test, args.batch_size, num_workers=args.num_workers, pin_memory=pin)
    run(args, net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
        torch.optim.Adam(net.parameters(), lr=args.lr))


if __name__ == "__main__":
    script(main)
