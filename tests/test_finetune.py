"""`vasari finetune`: the training loop on a plain module, unfreezing, masked loss, and a few steps
of the real backbone on tiny generated data exported as a bundle that loads and predicts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vasari.features import Preprocess
from vasari.finetune import (
    FinetuneConfig,
    FinetuneError,
    MultiTaskModel,
    Sample,
    amp_settings,
    backbone_stages,
    build_vocab,
    calibrate_norm,
    evaluate_model,
    fit,
    make_loaders,
    multitask_loss,
    resolve_device,
    set_trainable,
    warmup_cosine,
)

COLOURS = {"red": (200, 60, 50), "blue": (50, 70, 200)}


def make_samples(folder: Path, n: int, seed: int, size: int = 72) -> list[Sample]:
    """``n`` noisy pictures alternating between two colour classes (learnable labels)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        label = list(COLOURS)[i % 2]
        arr = np.clip(np.array(COLOURS[label]) + rng.normal(0, 45, (size, size, 3)), 0, 255).astype(np.uint8)
        path = folder / f"s{seed}_{i:03d}.png"
        Image.fromarray(arr, "RGB").save(path)
        out.append(Sample(str(path), {"type": label}, None))
    return out


class TinyNet(nn.Module):
    """A plain conv net laid out like timm models (stem, ``blocks`` of stages, head)."""

    def __init__(self):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.blocks = nn.Sequential(
            nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU()),
            nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1), nn.ReLU()),
        )
        self.conv_head = nn.Conv2d(16, 16, 1)

    def forward(self, x):
        return self.conv_head(self.blocks(self.conv_stem(x))).mean((2, 3))


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft-images")
    return make_samples(root, 32, 0), make_samples(root, 16, 1), make_samples(root, 24, 2)


def test_fit_plain_module_loss_decreases_and_beats_chance(colour_data, tmp_path):
    train, val, test = colour_data
    torch.manual_seed(0)
    net = TinyNet()
    config = FinetuneConfig(
        epochs=4, batch_size=8, image_size=32, num_workers=0, lr=1e-2, unfreeze="all", patience=10, label_smoothing=0.0
    )
    set_trainable(net, config)
    vocab = build_vocab(train, ["type"])
    model = MultiTaskModel(net, 16, vocab, year=False)
    train_loader, val_loader = make_loaders(train, val, vocab, config, Preprocess(32, 0.89), "cpu")
    calibrate_norm(model, train_loader, "cpu")
    before = evaluate_model(model, val_loader, {"type": torch.ones(2)}, config, "cpu")
    result = fit(
        model,
        train_loader,
        val_loader,
        {"type": torch.ones(2)},
        config,
        "cpu",
        checkpoint=tmp_path / "best.pt",
        progress=False,
    )
    losses = [v for h in result.history for v in h["train_losses"]]
    assert len(losses) == 4 * 4
    assert np.mean(losses[-4:]) < 0.5 * np.mean(losses[:4])
    assert result.best_val_loss < before["loss"]
    # held-out pictures never seen in training or early stopping
    _, test_loader = make_loaders(train, test, vocab, config, Preprocess(32, 0.89), "cpu")
    held_out = evaluate_model(model, test_loader, {"type": torch.ones(2)}, config, "cpu")
    assert held_out["top1"]["type"] >= 0.9
    saved = torch.load(tmp_path / "best.pt", weights_only=False)
    assert saved["epoch"] == result.best_epoch and math.isclose(saved["val_loss"], result.best_val_loss)
    assert not list(tmp_path.glob("*.tmp-*"))


def test_early_stopping_keeps_the_best_epoch(colour_data):
    """Validation labels are the opposite colours of the training ones, so every epoch that
    learns the training labels makes validation loss worse: training must stop after
    ``patience`` epochs without improvement and restore the first epoch's weights."""
    train, val, _ = colour_data
    swapped = {"red": "blue", "blue": "red"}
    val = [Sample(s.path, {"type": swapped[s.labels["type"]]}, s.year) for s in val]
    torch.manual_seed(0)  # the net and head initialisations do not depend on earlier tests
    net = TinyNet()
    config = FinetuneConfig(
        epochs=8, batch_size=8, image_size=32, num_workers=0, lr=1e-2, warmup_fraction=0.0, patience=2,
        unfreeze="all", label_smoothing=0.0,
    )
    set_trainable(net, config)
    vocab = build_vocab(train, ["type"])
    model = MultiTaskModel(net, 16, vocab, year=False)
    train_loader, val_loader = make_loaders(train, val, vocab, config, Preprocess(32, 0.89), "cpu")
    calibrate_norm(model, train_loader, "cpu")
    result = fit(model, train_loader, val_loader, {"type": torch.ones(2)}, config, "cpu", progress=False)
    val_losses = [h["val_loss"] for h in result.history]
    assert result.stopped_early
    assert result.best_epoch == 1 and len(val_losses) == result.best_epoch + config.patience < config.epochs
    assert result.best_val_loss == min(val_losses) < val_losses[-1]
    # the restored weights are the best epoch's
    again = evaluate_model(model, val_loader, {"type": torch.ones(2)}, config, "cpu")
    assert again["loss"] == pytest.approx(result.best_val_loss, rel=1e-4)


def test_masked_loss_ignores_missing_labels():
    config = FinetuneConfig(label_smoothing=0.0, year_weight=1.0)
    logits = {"type": torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]]), "school": torch.zeros(3, 3)}
    targets = torch.tensor([[0, -1], [1, -1], [-1, -1]])
    weights = {"type": torch.ones(2), "school": torch.ones(3)}
    year = torch.zeros(3)
    mask = torch.tensor([False, False, False])
    loss = multitask_loss(logits, targets, None, year, mask, weights, config)
    expected = torch.nn.functional.cross_entropy(logits["type"][:2], torch.tensor([0, 1]))
    assert float(loss) == pytest.approx(float(expected))  # row 3 and the unlabelled task add nothing
    assert multitask_loss(logits, torch.full((3, 2), -1), None, year, mask, weights, config) is None
    # class weights: the weighted mean over labelled rows, as torch computes it
    w = {"type": torch.tensor([1.0, 3.0]), "school": torch.ones(3)}
    loss = multitask_loss(logits, targets, None, year, mask, w, config)
    expected = torch.nn.functional.cross_entropy(logits["type"][:2], torch.tensor([0, 1]), weight=w["type"])
    assert float(loss) == pytest.approx(float(expected))
    # the year term only counts dated rows
    year_pred = torch.tensor([0.5, 10.0, -10.0])
    loss = multitask_loss(
        logits, torch.full((3, 2), -1), year_pred, torch.zeros(3), torch.tensor([True, False, False]), weights, config
    )
    assert float(loss) == pytest.approx(0.5 * 0.5**2)


def test_unfreeze_modes_on_a_plain_module():
    net = TinyNet()
    stem, stages, tail = backbone_stages(net)
    assert stem == [net.conv_stem] and stages == list(net.blocks) and tail == [net.conv_head]
    info = set_trainable(net, FinetuneConfig(unfreeze="last"))
    assert info["unfrozen_stages"] == 1
    assert not any(p.requires_grad for p in net.conv_stem.parameters())
    assert not any(p.requires_grad for p in net.blocks[0].parameters())
    assert all(p.requires_grad for p in net.blocks[1].parameters())
    assert all(p.requires_grad for p in net.conv_head.parameters())
    assert set_trainable(net, FinetuneConfig(unfreeze="2"))["unfrozen_stages"] == 2
    assert not any(p.requires_grad for p in net.conv_stem.parameters())
    info = set_trainable(net, FinetuneConfig(unfreeze="all"))
    assert info["trainable_params"] == info["params"]
    assert set_trainable(net, FinetuneConfig(unfreeze="0"))["trainable_params"] == 0
    with pytest.raises(FinetuneError, match="--unfreeze"):
        set_trainable(net, FinetuneConfig(unfreeze="most"))


def test_lr_schedule_warms_up_then_decays_to_zero():
    f = warmup_cosine(100, 10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and 0.45 < f(55) < 0.55 and f(100) == pytest.approx(0.0, abs=1e-9)
    values = [f(s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_devices_and_amp_on_this_machine():
    assert amp_settings("cpu") == (None, False)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(FinetuneError, match="cuda"):
            resolve_device("cuda")
    else:
        dtype, scaler = amp_settings("cuda")
        assert dtype in (torch.bfloat16, torch.float16) and scaler == (dtype == torch.float16)
    with pytest.raises(FinetuneError):
        resolve_device("tpu")


@pytest.fixture(scope="module")
def colour_dataset(colour_data, tmp_path_factory) -> Path:
    """A dataset folder (as `vasari dataset build` writes it) over the generated colour pictures."""
    from vasari.catalog import Artwork
    from vasari.dataset import Dataset, save_dataset

    train, val, test = colour_data
    artworks, splits = [], {}
    for split, samples in (("train", train), ("val", val), ("test", test)):
        for s in samples:
            art = Artwork(artwork_id=f"gen:{Path(s.path).stem}", source="gen", image=s.path, type=s.labels["type"])
            artworks.append(art)
            splits[art.artwork_id] = split
    out = tmp_path_factory.mktemp("ft-dataset")
    save_dataset(Dataset(artworks=artworks, splits=splits), out)
    return out


def test_finetune_cli_exports_a_bundle_that_loads_and_predicts(colour_dataset, colour_data, tmp_path):
    from typer.testing import CliRunner

    from vasari.bundle import load_bundle
    from vasari.cli import app
    from vasari.finetune import BUNDLE_ONNX, onnx_spec
    from vasari.inference.predictor import Predictor

    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        app,
        [
            "finetune",
            str(colour_dataset),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--image-size",
            "64",
            "--max-steps-per-epoch",
            "3",
            "--device",
            "auto",
            "--unfreeze",
            "last",
        ],
    )
    assert result.exit_code == 0, result.output
    if not torch.cuda.is_available():
        assert "slow" in result.output and "CPU" in result.output  # the CPU warning
    bundle = load_bundle(out)
    assert "+ft-" in bundle.spec.name and bundle.spec.key() != "efficientnet_lite2"
    assert (out / BUNDLE_ONNX).is_file() and onnx_spec(out / BUNDLE_ONNX).key() == bundle.spec.key()
    card = bundle.card["finetune"]
    assert card["best_epoch"] >= 1 and len(card["history"]) >= 1 and card["trainable"]["unfrozen_stages"] == 1
    assert (tmp_path / "bundle.finetune" / "best.pt").is_file()  # the checkpoint stays beside the bundle
    assert not (tmp_path / "bundle.finetune" / BUNDLE_ONNX).exists()
    assert bundle.metrics["test"]["tasks"]["type"]["top1"] >= 0.9
    assert (out / "report").is_dir()

    _, _, test = colour_data
    predictor = Predictor.load(out)
    preds = predictor.predict_paths([s.path for s in test], top_k=2)
    predicted = [p["predictions"]["type"][0]["label"] for p in preds]
    accuracy = np.mean([p == s.labels["type"] for p, s in zip(predicted, test)])
    assert accuracy >= 0.9  # two classes: chance is 0.5


def test_finetune_cli_views_and_refit_reach_the_bundle(colour_dataset, colour_data, tmp_path):
    """--views flip --refit-on-val: the bundle predicts with flip views through the fine-tuned
    graph, the heads were refit on train + val, and val (now training data) is not reported."""
    from typer.testing import CliRunner

    from vasari.bundle import load_bundle
    from vasari.cli import app
    from vasari.inference.predictor import Predictor

    out = tmp_path / "bundle"
    args = ["finetune", str(colour_dataset), "--out", str(out), "--epochs", "1", "--batch-size", "8",
            "--image-size", "64", "--max-steps-per-epoch", "2", "--views", "flip", "--refit-on-val", "--tasks", "type"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    bundle = load_bundle(out)
    assert bundle.spec.views == "flip" and "+ft-" in bundle.spec.name
    assert bundle.card["finetune"]["config"]["tasks"] == ["type"]
    assert bundle.heads.classifiers["type"].info["refit_on_val"] is True
    assert "val" not in bundle.metrics and bundle.metrics["test"]["tasks"]["type"]["top1"] >= 0.9
    _, _, test = colour_data
    predictor = Predictor.load(out)
    assert predictor.embedder.spec.views == "flip"
    preds = predictor.predict_paths([s.path for s in test], top_k=1)
    accuracy = np.mean([p["predictions"]["type"][0]["label"] == s.labels["type"] for p, s in zip(preds, test)])
    assert accuracy >= 0.9  # two classes: chance is 0.5


def test_finetune_cli_errors_are_one_line(colour_dataset, tmp_path):
    from typer.testing import CliRunner

    from vasari.cli import app

    result = CliRunner().invoke(app, ["finetune", str(tmp_path / "missing"), "--out", str(tmp_path / "b")])
    assert result.exit_code == 1 and "dataset.csv" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["finetune", str(colour_dataset), "--out", str(tmp_path / "b"), "--unfreeze", "x"])
    assert result.exit_code == 1 and "--unfreeze" in result.output
    result = CliRunner().invoke(app, ["finetune", str(colour_dataset), "--out", str(tmp_path / "b"), "--views", "tencrop"])
    assert result.exit_code == 1 and "unknown views" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["finetune", str(colour_dataset), "--out", str(tmp_path / "b"), "--tasks", "type,painter"])
    assert result.exit_code == 2 and "unknown task(s) painter" in result.output
    if not torch.cuda.is_available():
        result = CliRunner().invoke(
            app, ["finetune", str(colour_dataset), "--out", str(tmp_path / "b"), "--device", "cuda"]
        )
        assert result.exit_code == 1 and "cuda" in result.output.lower()
    assert not (tmp_path / "b").exists()
