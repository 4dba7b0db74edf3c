"""Train the `local` face-expression classifier on FER-2013 (48 px grayscale), from scratch.

Data: ``<data>/{train,test}/<label>/*.png|jpg``. Train images pixel-identical to any test image, and
blank train images, are dropped; a stratified 10 % of the rest is the validation set used for model
choice. The test split is evaluated once at the end, through the server's own preprocessing
(:class:`realtime.face.LocalFaceClassifier` on the image files).

A full checkpoint (model, optimizer, schedule position, best score, history) is written every epoch to
``--checkpoint``; ``--resume`` continues from it with the same ``--epochs``/``--max-minutes``. The
learning rate follows a cosine over the larger of step/steps-planned and time/``--max-minutes``, and
training stops before an epoch that would overrun ``--max-minutes``. To train longer, resume with
larger ``--epochs`` and ``--max-minutes``: the cosine then resumes from an earlier point (a warm
restart) and anneals again by the new limits.
At the end the best weights are saved to ``--out`` (``.pt``), exported to ONNX beside it, checked
against ONNX Runtime, evaluated on the whole test split, and described in a JSON card (``.json``).

Example::

    python eval/train_face.py --arch vgg48 --bf16 --threads 1 --epochs 40 --max-minutes 92
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from eval.metrics import summarize  # noqa: E402
from realtime.labels import LABELS, NUM_LABELS  # noqa: E402
from realtime.weights import file_sha256  # noqa: E402

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Input normalisation x = (pixel / 255 - MEAN) / STD; the exported ONNX graph does it itself (ServingModel).
PIXEL_MEAN = 0.5
PIXEL_STD = 0.25
WIDTHS = {"vgg32": (32, 64, 128, 256), "vgg48": (48, 96, 192, 384), "vgg64": (64, 128, 256, 512)}

log = logging.getLogger("train_face")


# --------------------------------------------------------------------------------------- data


@dataclass
class Split:
    images: np.ndarray  # (N, S, S) uint8
    labels: np.ndarray  # (N,) int64, index into LABELS
    paths: list[str]


def read_split(root: Path, split: str, size: int, cache_dir: Path) -> Split:
    """Decode every image of one split once (gray, ``size`` px) and cache it as a .npz."""
    cache = cache_dir / f"fer2013_{split}_{size}.npz"
    if cache.exists():
        data = np.load(cache)
        return Split(data["images"], data["labels"], list(data["paths"]))
    images, labels, paths = [], [], []
    for index, label in enumerate(LABELS):
        files = sorted(p for p in (root / split / label).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise ValueError(f"cannot decode {path}")
            if image.shape != (size, size):
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            images.append(image)
            labels.append(index)
            paths.append(str(path.relative_to(root)))
    split_data = Split(np.stack(images), np.asarray(labels, dtype=np.int64), paths)
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, images=split_data.images, labels=split_data.labels, paths=np.asarray(paths))
    return split_data


def pixel_hash(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def clean_train(train: Split, test: Split) -> tuple[Split, dict[str, int]]:
    """Drop train images pixel-identical to a test image, and blank (near-constant) images."""
    test_hashes = {pixel_hash(image) for image in test.images}
    duplicate = np.array([pixel_hash(image) in test_hashes for image in train.images])
    blank = train.images.reshape(len(train.images), -1).std(axis=1) < 2.0
    keep = ~(duplicate | blank)
    kept = Split(train.images[keep], train.labels[keep], [p for p, k in zip(train.paths, keep) if k])
    counts = {
        "train_files": len(train.labels),
        "dropped_identical_to_test": int(duplicate.sum()),
        "dropped_blank": int((blank & ~duplicate).sum()),
        "kept": int(keep.sum()),
    }
    return kept, counts


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with ``fraction`` of every class in val."""
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for label in range(NUM_LABELS):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = round(len(idx) * fraction)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    return np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(val_idx))


def to_input(images_uint8: torch.Tensor) -> torch.Tensor:
    """(N, S, S) uint8 -> (N, 1, S, S) float, normalised as the exported model does it (ServingModel)."""
    return ((images_uint8.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD).unsqueeze(1)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Batch augmentation on normalised (N, 1, S, S) input: flip, rotation/scale/shift, contrast, erasing."""
    n, _, s, _ = x.shape

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator) * (high - low) + low

    angle = uniform(-15, 15) * math.pi / 180
    scale = uniform(0.85, 1.15)
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, uniform(-0.12, 0.12)], dim=1),
            torch.stack([sin * flip, cos, uniform(-0.12, 0.12)], dim=1),
        ],
        dim=1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    contrast = uniform(0.7, 1.3).view(n, 1, 1, 1)
    brightness = uniform(-0.4, 0.4).view(n, 1, 1, 1)
    x = x * contrast + brightness
    # Random erasing: one rectangle of 2-20 % of the area in half of the images.
    erase = torch.rand(n, generator=generator) < 0.5
    for i in erase.nonzero().flatten().tolist():
        area = float(uniform(0.02, 0.2)[0]) * s * s
        ratio = math.exp(float(uniform(math.log(0.3), math.log(3.3))[0]))
        h = min(s, max(1, round(math.sqrt(area * ratio))))
        w = min(s, max(1, round(math.sqrt(area / ratio))))
        top = int(torch.randint(0, s - h + 1, (1,), generator=generator))
        left = int(torch.randint(0, s - w + 1, (1,), generator=generator))
        x[i, :, top : top + h, left : left + w] = torch.randn(1, h, w, generator=generator)
    return x


# -------------------------------------------------------------------------------------- model


class VggNet(nn.Module):
    """VGG-style CNN for small gray faces: 4 blocks of 2 x (conv3x3-BN-ReLU) + max-pool, GAP, FC."""

    def __init__(self, widths: tuple[int, ...], num_classes: int = NUM_LABELS, dropout: float = 0.4) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for block, width in enumerate(widths):
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(2))
            if block >= 1:
                layers.append(nn.Dropout2d(0.05 * block))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build_model(arch: str) -> nn.Module:
    if arch in WIDTHS:
        return VggNet(WIDTHS[arch])
    import timm

    return timm.create_model(arch, pretrained=False, in_chans=1, num_classes=NUM_LABELS)


# ------------------------------------------------------------------------------------ metrics


def scores(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """n, top-1, top-5, macro-F1, per-class figures and the confusion matrix (eval/metrics.py)."""
    return summarize(y_true, probs, LABELS, k=5)


@torch.no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Probabilities with horizontal-flip averaging, as served."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(torch.from_numpy(images[start : start + batch_size])).contiguous(
            memory_format=torch.channels_last
        )
        logits = model(x).softmax(1) + model(torch.flip(x, dims=[3])).softmax(1)
        out.append((logits / 2).numpy())
    return np.concatenate(out)


# ---------------------------------------------------------------------------------- training


@dataclass
class Schedule:
    """Linear warm-up, then cosine decay to 1 % of the peak learning rate.

    Progress is the larger of steps done / planned steps and training time / time budget, so that a
    run slowed down by other jobs on the machine still anneals fully before ``--max-minutes``.
    The state (``step``, ``seconds``) goes into every checkpoint.
    """

    peak_lr: float
    total_steps: int
    warmup_steps: int
    budget_seconds: float | None
    step: int = 0
    seconds: float = 0.0

    def progress(self) -> float:
        by_time = self.seconds / self.budget_seconds if self.budget_seconds else 0.0
        return min(1.0, max(self.step / self.total_steps, by_time))

    def lr(self) -> float:
        if self.step < self.warmup_steps:
            return self.peak_lr * (self.step + 1) / self.warmup_steps
        return self.peak_lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * self.progress())))

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        for group in optimizer.param_groups:
            group["lr"] = self.lr()


def class_weights(labels: np.ndarray, power: float) -> torch.Tensor:
    """Loss weights proportional to (1 / class frequency) ** power, mean 1."""
    counts = np.bincount(labels, minlength=NUM_LABELS).astype(float)
    weights = (counts.sum() / counts) ** power
    return torch.tensor(weights / (weights * counts).sum() * counts.sum(), dtype=torch.float32)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    criterion: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    args: argparse.Namespace,
    generator: torch.Generator,
    epoch: int,
) -> float:
    model.train()
    order = torch.randperm(len(labels), generator=generator)
    n_batches = len(order) // args.batch_size
    total_loss = 0.0
    bar = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, mininterval=5)
    last = time.monotonic()
    for b in bar:
        schedule.apply(optimizer)
        idx = order[b * args.batch_size : (b + 1) * args.batch_size]
        x = augment(to_input(images[idx]), generator).contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            loss = criterion(model(x).float(), labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        now = time.monotonic()
        schedule.step, schedule.seconds, last = schedule.step + 1, schedule.seconds + now - last, now
        total_loss += loss.item()
        bar.set_postfix(loss=f"{total_loss / (b + 1):.3f}")
    return total_loss / max(1, n_batches)


def save_checkpoint(
    path: Path, model: nn.Module, optimizer, schedule: Schedule, epoch: int, best: dict, history: list
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": {"step": schedule.step, "seconds": schedule.seconds},
            "epoch": epoch,
            "best": best,
            "history": history,
            "rng": torch.get_rng_state(),
        },
        tmp,
    )
    tmp.replace(path)


def save_weights(path: Path, model: nn.Module, arch: str, img_size: int) -> None:
    """The small file that is committed: weights plus what is needed to rebuild and feed the model."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    meta = {
        "arch": arch,
        "img_size": img_size,
        "labels": list(LABELS),
        "pixel_mean": PIXEL_MEAN,
        "pixel_std": PIXEL_STD,
    }
    torch.save({"state_dict": state, "meta": meta}, path)


def load_weights(path: Path) -> tuple[nn.Module, dict]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(saved["meta"]["arch"])
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved["meta"]


class ServingModel(nn.Module):
    """What is exported: raw gray pixels (N, 1, S, S) in 0..255 -> normalise -> network -> softmax."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model((pixels / 255.0 - PIXEL_MEAN) / PIXEL_STD).softmax(dim=1)


def export_onnx(pt_path: Path, onnx_path: Path) -> None:
    """Export the .pt weights to ONNX (opset 17, dynamic batch); the labels go into its metadata."""
    import onnx

    model, meta = load_weights(pt_path)
    size = meta["img_size"]
    torch.onnx.export(
        ServingModel(model).eval(),
        (torch.zeros(1, 1, size, size),),
        str(onnx_path),
        input_names=["pixels"],
        output_names=["probs"],
        dynamic_axes={"pixels": {0: "batch"}, "probs": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    exported = onnx.load(str(onnx_path))
    onnx.helper.set_model_props(
        exported,
        {
            "labels": ",".join(LABELS),
            "input": "gray pixels 0-255",
            "arch": meta["arch"],
            "source_sha256": file_sha256(pt_path),
        },
    )
    onnx.save(exported, str(onnx_path))


def check_onnx(pt_path: Path, onnx_path: Path, images: np.ndarray) -> float:
    """Largest absolute difference between torch and ONNX Runtime probabilities on ``images``."""
    import onnxruntime as ort

    model, _ = load_weights(pt_path)
    with torch.no_grad():
        expected = model(to_input(torch.from_numpy(images))).softmax(1).numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"pixels": images[:, None].astype(np.float32)})[0]
    return float(np.abs(expected - got).max())


def evaluate_test_files(onnx_path: Path, root: Path, test: Split) -> dict:
    """Whole test split through the server's preprocessing: LocalFaceClassifier on the image files."""
    from realtime.face import LocalFaceClassifier

    classifier = LocalFaceClassifier.load(onnx_path, threads=2)
    probs = []
    for start in tqdm(range(0, len(test.paths), 256), desc="test", leave=False, mininterval=5):
        crops = [cv2.imread(str(root / p), cv2.IMREAD_COLOR) for p in test.paths[start : start + 256]]
        probs.append(classifier.predict_batch(crops))
    return scores(test.labels, np.concatenate(probs))


# --------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data" / "fer2013")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "weights" / "face_local.pt")
    parser.add_argument("--checkpoint", type=Path, default=PROJECT_ROOT / "runs" / "face_train_ckpt.pt")
    parser.add_argument("--log-file", type=Path, default=PROJECT_ROOT / "runs" / "face_train.log")
    parser.add_argument("--arch", default="vgg48", help=f"{', '.join(WIDTHS)} or a timm model name")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--img-size", type=int, default=48)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--class-weight-power", type=float, default=0.5, help="0: none, 1: inverse frequency")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (CPU)")
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="training-time budget over all resumes: the LR schedule anneals within it, and training "
        "stops before an epoch that would overrun it",
    )
    parser.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    parser.add_argument(
        "--finish-only",
        action="store_true",
        help="skip training: export --out, check it, test it, card from --checkpoint's history",
    )
    return parser.parse_args(argv)


def setup_logging(log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    formatter = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(log_file)):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def train(args: argparse.Namespace, images: np.ndarray, labels: np.ndarray, train_idx, val_idx) -> dict:
    """Train, checkpointing every epoch and saving the best-by-validation weights to ``args.out``."""
    started = time.monotonic()
    generator = torch.Generator().manual_seed(args.seed)
    model = build_model(args.arch).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_idx) // args.batch_size
    budget = args.max_minutes * 60 if args.max_minutes else None
    schedule = Schedule(args.lr, args.epochs * steps_per_epoch, steps_per_epoch, budget)
    first_epoch, best, history = 1, {"val_top1": -1.0, "epoch": 0}, []
    if args.resume:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.step, schedule.seconds = state["schedule"]["step"], state["schedule"]["seconds"]
        torch.set_rng_state(state["rng"])
        generator.manual_seed(args.seed + state["epoch"])
        first_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        log.info(
            "resumed from %s at epoch %d (best val top-1 %.4f)",
            args.checkpoint,
            state["epoch"],
            best["val_top1"],
        )

    train_images, train_labels = torch.from_numpy(images[train_idx]), torch.from_numpy(labels[train_idx])
    criterion = nn.CrossEntropyLoss(
        weight=class_weights(labels[train_idx], args.class_weight_power), label_smoothing=args.label_smoothing
    )
    epoch_times: list[float] = []
    for epoch in range(first_epoch, args.epochs + 1):
        t0 = time.monotonic()
        loss = train_epoch(
            model, optimizer, schedule, criterion, train_images, train_labels, args, generator, epoch
        )
        val_started = time.monotonic()
        val = scores(labels[val_idx], predict(model, images[val_idx]))
        schedule.seconds += time.monotonic() - val_started
        epoch_times.append(time.monotonic() - t0)
        improved = val["top1"] > best["val_top1"]
        if improved:
            best = {
                "val_top1": val["top1"],
                "val_top5": val["top5"],
                "val_macro_f1": val["macro_f1"],
                "val_confusion": val["confusion"],
                "epoch": epoch,
            }
            save_weights(args.out, model, args.arch, args.img_size)
        history.append(
            {
                "epoch": epoch,
                "loss": loss,
                "val_top1": val["top1"],
                "val_macro_f1": val["macro_f1"],
                "seconds": epoch_times[-1],
            }
        )
        save_checkpoint(args.checkpoint, model, optimizer, schedule, epoch, best, history)
        log.info(
            "epoch %d/%d loss %.4f val top-1 %.4f top-5 %.4f macro-F1 %.4f lr %.2e %.0fs%s",
            epoch,
            args.epochs,
            loss,
            val["top1"],
            val["top5"],
            val["macro_f1"],
            schedule.lr(),
            epoch_times[-1],
            " *best" if improved else "",
        )
        if budget is not None and schedule.seconds + max(epoch_times) > budget and epoch < args.epochs:
            log.info(
                "stopping after epoch %d: the next epoch would pass --max-minutes %.0f",
                epoch,
                args.max_minutes,
            )
            break
    return {
        "best": best,
        "history": history,
        "epochs_run": len(history),
        "train_minutes": (time.monotonic() - started) / 60,
    }


def finish(args: argparse.Namespace, root: Path, test: Split, val_images: np.ndarray, report: dict) -> None:
    """Export to ONNX, check it against torch, evaluate the test split once and write the card."""
    onnx_path, card_path = args.out.with_suffix(".onnx"), args.out.with_suffix(".json")
    export_onnx(args.out, onnx_path)
    max_diff = check_onnx(args.out, onnx_path, val_images[:64])
    log.info("ONNX export %s; max |torch - onnxruntime| = %.2e", onnx_path, max_diff)
    if max_diff > 1e-4:
        raise RuntimeError(f"ONNX output differs from torch by {max_diff}")
    test_scores = evaluate_test_files(onnx_path, root, test)
    log.info(
        "TEST (%d): top-1 %.4f top-5 %.4f macro-F1 %.4f",
        test_scores["n"],
        test_scores["top1"],
        test_scores["top5"],
        test_scores["macro_f1"],
    )
    card = {
        "model": "local face-expression classifier, trained from scratch by eval/train_face.py",
        "files": {"torch": args.out.name, "onnx": onnx_path.name, "onnx_max_abs_diff_vs_torch": max_diff},
        "labels": list(LABELS),
        "input": {
            "channels": "gray",
            "size": args.img_size,
            "normalisation": f"(pixel/255 - {PIXEL_MEAN}) / {PIXEL_STD}",
            "tta": "mean of image and horizontal flip",
        },
        "data": {
            "dataset": "FER-2013 (folder layout of the Kaggle image copy)",
            "path": str(args.data),
            **report["data"],
        },
        "command": "python " + " ".join(sys.argv),
        "hyper_parameters": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **{k: report[k] for k in ("epochs_run", "train_minutes", "history", "best") if k in report},
        "test": {"split": "FER-2013 test (PublicTest + PrivateTest), whole", **test_scores},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    card_path.write_text(json.dumps(card, indent=1) + "\n")
    log.info("card written to %s", card_path)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup_logging(args.log_file)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    root = args.data.resolve()
    cache_dir = PROJECT_ROOT / "runs"
    train_split = read_split(root, "train", args.img_size, cache_dir)
    test = read_split(root, "test", args.img_size, cache_dir)
    cleaned, counts = clean_train(train_split, test)
    train_idx, val_idx = stratified_split(cleaned.labels, args.val_fraction, args.seed)
    counts.update(train=len(train_idx), val=len(val_idx), test=len(test.labels))
    log.info("data: %s", counts)
    data_report = {
        "split": f"train minus duplicates and blanks; a stratified {args.val_fraction:.0%} of it held out "
        f"for validation (seed {args.seed})",
        **counts,
    }
    if args.finish_only:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
        minutes = sum(h["seconds"] for h in state["history"]) / 60
        report = {
            "best": state["best"],
            "history": state["history"],
            "epochs_run": len(state["history"]),
            "train_minutes": minutes,
            "data": data_report,
        }
    else:
        log.info("command: python %s", " ".join(sys.argv))
        report = {**train(args, cleaned.images, cleaned.labels, train_idx, val_idx), "data": data_report}
    finish(args, root, test, cleaned.images[val_idx], report)


if __name__ == "__main__":
    main()
