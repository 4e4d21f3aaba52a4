"""Small text data in the real on-disk formats: aclImdb folders, SNLI tab-separated files, GloVe text."""
from __future__ import annotations

import os
import random

RNG = random.Random(0)
GOOD, BAD = ["great", "wonderful", "moving", "superb"], ["awful", "boring", "dull", "terrible"]
FILLER = ["the", "film", "was", "a", "story", "and", "acting", "plot", "it", "really"]


def review(positive: bool) -> str:
    words = [RNG.choice(FILLER) for _ in range(RNG.randint(8, 30))]
    for _ in range(3):
        words.insert(RNG.randrange(len(words)), RNG.choice(GOOD if positive else BAD))
    return " ".join(words) + "<br /><br />The end.\n"


def imdb(root: str, per_class: int = 24) -> str:
    """``aclImdb/{train,test}/{pos,neg}/<id>_<stars>.txt``."""
    folder = os.path.join(root, "aclImdb")
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            os.makedirs(os.path.join(folder, split, label), exist_ok=True)
            for i in range(per_class):
                stars = RNG.randint(7, 10) if label == "pos" else RNG.randint(1, 4)
                with open(os.path.join(folder, split, label, f"{i}_{stars}.txt"), "w", encoding="utf-8") as f:
                    f.write(review(label == "pos"))
    return folder


def _parse(words: list[str]) -> str:
    """A binary parse as SNLI writes it: ``( ( A man ) ( is ( here ) ) )``."""
    return "( " + " ".join(f"( {w} )" if i % 2 else w for i, w in enumerate(words)) + " )"


def snli(root: str, n_train: int = 60, n_test: int = 30) -> str:
    """``snli_1.0/snli_1.0_{train,test}.txt`` with the real header and a few rows without a gold label."""
    folder = os.path.join(root, "snli_1.0")
    os.makedirs(folder, exist_ok=True)
    header = ("gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
              "sentence1\tsentence2\tcaptionID\tpairID\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\n")
    for split, n in (("train", n_train), ("test", n_test)):
        with open(os.path.join(folder, f"snli_1.0_{split}.txt"), "w", encoding="utf-8") as f:
            f.write(header)
            for i in range(n):
                label = ("entailment", "contradiction", "neutral", "-")[i % 4]
                premise = [RNG.choice(FILLER) for _ in range(RNG.randint(4, 9))]
                hypothesis = premise[:3] + [{"entailment": "yes", "contradiction": "no"}.get(label, "maybe")]
                s1, s2 = " ".join(premise), " ".join(hypothesis)
                f.write(f"{label}\t{_parse(premise)}\t{_parse(hypothesis)}\t(ROOT)\t(ROOT)\t{s1}\t{s2}\t"
                        f"{i}#0\t{i}r\t{label}\t\t\t\t\n")
    return folder


def glove(path: str, dim: int = 100) -> str:
    """A GloVe text file (``token v1 ... v100`` a line) over the words above."""
    with open(path, "w", encoding="utf-8") as f:
        for word in GOOD + BAD + FILLER + ["yes", "no", "maybe"]:
            f.write(word + " " + " ".join(f"{RNG.uniform(-1, 1):.5f}" for _ in range(dim)) + "\n")
    return path
