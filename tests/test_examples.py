"""Every example runs one short epoch on data written in its real on-disk format, as a user runs it."""
from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import pytest
import torch

import vision_data

pytestmark = pytest.mark.slow  # several processes, servers or a browser: `make test`, not `make check`

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
sys.path.insert(0, EXAMPLES)
SUMMARY = re.compile(r"loss ([\w.+-]+), train acc ([\d.]+), test acc ([\d.]+)\n([\d.]+) examples/sec on \[device")


def example(name: str, data: str, out: str, *args: str) -> tuple[float, float, float]:
    done = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), "--data-dir", data, "--out", out, "--epochs", "1",
         "--num-workers", "0", "--no-plot", "--no-progress", *args],
        capture_output=True, text=True, timeout=600, cwd=out.rsplit(os.sep, 1)[0],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    print(name, *args, "->", " | ".join(done.stdout.strip().splitlines()[-3:-1]), file=sys.stderr)
    m = SUMMARY.search(done.stdout)
    assert m, done.stdout
    loss, train_acc, test_acc = (float(m.group(i)) for i in (1, 2, 3))
    assert math.isfinite(loss) and 0 <= train_acc <= 1 and 0 <= test_acc <= 1
    assert any(n.startswith("last_checkpoint_1") for n in os.listdir(out))
    return loss, train_acc, test_acc


def test_fashion_mnist_lenet_reads_idx_files(tmp_path):
    vision_data.fashion_mnist(str(tmp_path / "data"))
    example("fashion_mnist_lenet.py", str(tmp_path / "data"), str(tmp_path / "run"), "--batch-size", "32")


def test_image_augmentation_resnet18_on_cifar_batches(tmp_path):
    vision_data.cifar10(str(tmp_path / "data"))
    example("image_augmentation.py", str(tmp_path / "data"), str(tmp_path / "run"), "--batch-size", "16",
            "--no-verify")


def test_cifar_without_no_verify_refuses_foreign_batches_offline(tmp_path):
    vision_data.cifar10(str(tmp_path / "data"))
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, "image_augmentation.py"), "--data-dir",
                           str(tmp_path / "data"), "--no-plot", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9"))
    assert done.returncode != 0 and "could not be downloaded" in done.stderr


@pytest.mark.parametrize("variant", ["local-weights", "scratch"])
def test_fine_tuning_on_a_hotdog_imagefolder(tmp_path, variant):
    import torchvision

    vision_data.hotdog(str(tmp_path / "data"))
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    args = ["--weights", str(weights)] if variant == "local-weights" else ["--scratch"]
    example("fine_tuning.py", str(tmp_path / "data"), str(tmp_path / "run"), "--batch-size", "4", *args)


def test_fcn_segmentation_on_voc_layout_counts_pixels(tmp_path):
    vision_data.voc2012(str(tmp_path / "data"))
    example("semantic_segmentation.py", str(tmp_path / "data"), str(tmp_path / "run"), "--batch-size", "2",
            "--crop", "64", "96", "--weights", str(_resnet_weights(tmp_path)))


def _resnet_weights(tmp_path):
    import torchvision

    path = tmp_path / "trunk.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_voc_labels_decode_to_class_indices(tmp_path):
    from vision import VOCSegDataset

    vision_data.voc2012(str(tmp_path / "data"), n_train=2, n_val=1)
    ds = VOCSegDataset(str(tmp_path / "data" / "VOCdevkit" / "VOC2012"), True, (64, 96))
    X, y = ds[0]
    assert X.shape == (3, 64, 96) and y.shape == (64, 96) and y.dtype == torch.long
    full = ds.labels[0]
    assert full[:2].eq(0).all() and full[-1].min() >= 1 and full[-1].max() <= 20
