"""Book 16.2 sentiment analysis: a 2-layer bidirectional LSTM over frozen GloVe 100d on IMDb, Adam 0.01.

    python examples/sentiment_rnn.py [--data-dir ../data] [--glove glove.6B.100d.txt]
The book printed ``loss 0.277, train acc 0.884, test acc 0.861`` (2 GPUs, 5 epochs, batch 64).
"""
from __future__ import annotations

import torch
from torch import nn

from common import DATA_URL, download_extract, example_parser, given_or_downloaded, run, script
from text import imdb_loaders, load_glove
from text_models import BiRNN

IMDB = (DATA_URL + "aclImdb_v1.tar.gz", "01ada507287d82875905620988597833ad4e0903")
GLOVE = (DATA_URL + "glove.6B.100d.zip", "cd43bfb07e44e6f27cbcc7bc9ae3d80284fdaf5a")


def text_parser(doc: str, **defaults):
    p = example_parser(doc.splitlines()[0], **defaults)
    p.add_argument("--glove", default=None, help="GloVe 100d text file or the book's glove.6B.100d folder "
                   "(default: downloaded to --data-dir; offline, embeddings start random and train)")
    p.add_argument("--num-steps", type=int, default=500, help="tokens a review is cut or padded to")
    return p


def glove_table(args, vocab) -> torch.Tensor | None:
    """The GloVe rows for ``vocab``, or None (with a message) when no file is given and none can be fetched."""
    path = given_or_downloaded(args.glove, GLOVE, args.data_dir, "glove.6B.100d", "glove",
                               "embeddings start random and are trained")
    return None if path is None else load_glove(path, vocab)


def main(argv: list[str] | None = None) -> None:
    p = text_parser(__doc__, epochs=5, batch_size=64, lr=0.01)
    args = p.parse_args(argv)
    folder = download_extract(*IMDB, args.data_dir, "aclImdb")
    train_iter, test_iter, vocab = imdb_loaders(folder, args.batch_size, args.num_steps, args.limit, args.num_workers)
    net = BiRNN(len(vocab), 100, 100, 2)
    table = glove_table(args, vocab)
    if table is not None:
        net.embedding.weight.data.copy_(table)
        net.embedding.weight.requires_grad_(False)
    run(args, net, train_iter, test_iter, nn.CrossEntropyLoss(reduction="none"),
        torch.optim.Adam((q for q in net.parameters() if q.requires_grad), lr=args.lr))


if __name__ == "__main__":
    script(main)
