"""Book 16.3 sentiment analysis: TextCNN (kernels 3/4/5 x 100, two embeddings, one frozen GloVe) on IMDb.

    python examples/sentiment_cnn.py [--data-dir ../data] [--glove glove.6B.100d.txt]
The book printed ``loss 0.066, train acc 0.979, test acc 0.868`` (2 GPUs, 5 epochs, Adam 1e-3).
"""
from __future__ import annotations

import torch
from torch import nn

from common import download_extract, run, script
from sentiment_rnn import IMDB, glove_table, text_parser
from text import imdb_loaders
from text_models import TextCNN


def main(argv: list[str] | None = None) -> None:
    p = text_parser(__doc__, epochs=5, batch_size=64, lr=1e-3)
    args = p.parse_args(argv)
    folder = download_extract(*IMDB, args.data_dir, "aclImdb")
    train_iter, test_iter, vocab = imdb_loaders(folder, args.batch_size, args.num_steps, args.limit, args.num_workers)
    net = TextCNN(len(vocab), 100)
    table = glove_table(args, vocab)
    if table is not None:  # both start from GloVe; only the first keeps learning
        net.embedding.weight.data.copy_(table)
        net.constant_embedding.weight.data.copy_(table)
    run(args, net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
        torch.optim.Adam((q for q in net.parameters() if q.requires_grad), lr=args.lr))


if __name__ == "__main__":
    script(main)
