"""Train the voice emotion BiLSTM on RAVDESS, speaker-independently, on the CPU.

Split (../shared/data/README.md): train actors 1-16, validation 17-18 (early stopping and every
choice), test 19-24 (evaluated once, at the end). Reads the 16 kHz FLAC copy or the original
48 kHz WAV release. Writes the weights (``--out``), a JSON card next to them, and a log under
``runs/``.

Training windows are random 1 s crops around the speech of each clip (leading and trailing
silence trimmed), so the model never learns digital silence as an emotion. Augmentation, on the
waveform: speed perturbation (0.9/1.0/1.1, precomputed), coloured noise at a random SNR, and
truncation to 0.5-1 s with zero padding (the run-time padding rule); on the features:
SpecAugment time and coefficient masks. Evaluation uses the run-time classifier itself: 1 s
windows every 0.5 s over the whole clip, the windows above the silence gate, and their mean
probabilities for the clip.

    python -m eval.train_voice                      # defaults as committed
    python -m eval.train_voice --epochs 2 --no-test # a quick check
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from eval.metrics import format_confusion, summarize
from realtime.audio import (
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    level_db,
    load_audio_file,
    mfcc_batch,
    resample_to_16k,
)
from realtime.config import PROJECT_ROOT
from realtime.labels import LABEL_INDEX, LABELS, ravdess_actor, ravdess_label
from realtime.voice import (
    VoiceBiLSTM,
    VoiceClassifier,
    VoiceModelConfig,
    save_weights,
    speech_windows,
)

SPLITS = {"train": range(1, 17), "validation": range(17, 19), "test": range(19, 25)}
SPEEDS = (0.9, 1.0, 1.1)
TRIM_TOP_DB = 30.0  # speech = frames within 30 dB of the clip's loudest frame
MIN_CROP_DB = -60.0  # crops quieter than this are dropped: never train on silence

log = logging.getLogger("train_voice")


@dataclass(frozen=True)
class Clip:
    stem: str
    label: int
    actor: int
    samples: np.ndarray  # float32, 16 kHz, the whole clip


@dataclass(frozen=True)
class Version:
    """One (possibly speed-perturbed) training copy of a clip and where its speech lies."""

    samples: np.ndarray
    label: int
    speech_start: int
    speech_end: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared/data/ravdess")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "weights/audio_bilstm.pt")
    parser.add_argument("--log-dir", type=Path, default=PROJECT_ROOT / "runs")
    parser.add_argument("--epochs", type=int, default=30, help="maximum epochs")
    parser.add_argument("--patience", type=int, default=8, help="epochs without improvement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--crops-per-clip", type=int, default=3, help="random 1 s crops per epoch")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--noise-prob", type=float, default=0.7)
    parser.add_argument("--snr-db", type=float, nargs=2, default=(5.0, 40.0))
    parser.add_argument("--pad-prob", type=float, default=0.1, help="truncate-and-pad crops")
    parser.add_argument("--time-masks", type=int, default=2)
    parser.add_argument("--coef-masks", type=int, default=2)
    parser.add_argument("--no-augment", action="store_true", help="crops only, no augmentation")
    parser.add_argument("--no-test", action="store_true", help="skip the test actors (variants)")
    parser.add_argument("--silence-db", type=float, default=-45.0, help="evaluation gate")
    return parser.parse_args(argv)


def load_clips(folder: Path) -> list[Clip]:
    """Every RAVDESS .wav/.flac under ``folder``, as 16 kHz mono float32."""
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".wav", ".flac"})
    if not paths:
        raise FileNotFoundError(f"no RAVDESS .wav/.flac files under {folder}")
    return [
        Clip(
            p.stem,
            LABEL_INDEX[ravdess_label(p.stem)],
            ravdess_actor(p.stem),
            load_audio_file(p),
        )
        for p in tqdm(paths, desc="loading", unit="clip")
    ]


def split(clips: list[Clip], name: str) -> list[Clip]:
    return [clip for clip in clips if clip.actor in SPLITS[name]]


def training_versions(clips: list[Clip], speeds: tuple[float, ...]) -> list[list[Version]]:
    """Per clip, its speed-perturbed copies (resampling: tempo and pitch change together)."""
    versions = []
    for clip in tqdm(clips, desc="speed perturbation", unit="clip"):
        copies = []
        for speed in speeds:
            samples = resample_to_16k(clip.samples, int(round(SAMPLE_RATE * speed)))
            _, (start, end) = librosa.effects.trim(
                samples, top_db=TRIM_TOP_DB, frame_length=512, hop_length=128
            )
            copies.append(Version(samples, clip.label, int(start), int(end)))
        versions.append(copies)
    return versions


def random_crop(version: Version, rng: np.random.Generator) -> np.ndarray:
    """A 1 s crop that lies mostly on speech (up to 1/4 s may hang over its ends)."""
    size = WINDOW_SAMPLES
    low = version.speech_start - size // 4
    high = version.speech_end - 3 * size // 4
    if high < low:  # speech shorter than the window: cover all of it
        low, high = version.speech_end - size, version.speech_start
    last = max(0, version.samples.size - size)
    start = int(rng.integers(min(max(low, 0), last), min(max(high, 0), last) + 1))
    crop = version.samples[start : start + size]
    return np.pad(crop, (0, size - crop.size))


def coloured_noise(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """Unit-RMS noise with a 1/f^a power spectrum, a random in {0 white, 1 pink, 2 brown}."""
    spectrum = np.fft.rfft(rng.standard_normal((count, size)), axis=1)
    freqs = np.fft.rfftfreq(size)
    freqs[0] = freqs[1]
    exponent = rng.integers(0, 3, size=(count, 1))
    noise = np.fft.irfft(spectrum / freqs[None, :] ** (exponent / 2.0), n=size, axis=1)
    return noise / (np.sqrt(np.mean(noise**2, axis=1, keepdims=True)) + 1e-12)


def augment_waveforms(
    crops: np.ndarray, args: argparse.Namespace, rng: np.random.Generator
) -> np.ndarray:
    """Noise at a random SNR, then (sometimes) truncation to 0.5-1 s with zero padding."""
    crops = crops.copy()
    count, size = crops.shape
    noisy = rng.random(count) < args.noise_prob
    if noisy.any():
        snr_db = rng.uniform(*args.snr_db, size=(int(noisy.sum()), 1))
        rms = np.sqrt(np.mean(crops[noisy] ** 2, axis=1, keepdims=True))
        noise = coloured_noise(rng, int(noisy.sum()), size)
        crops[noisy] += (noise * rms * 10 ** (-snr_db / 20)).astype(np.float32)
    for index in np.flatnonzero(rng.random(count) < args.pad_prob):
        crops[index, int(rng.uniform(0.5, 1.0) * size) :] = 0.0
    return crops


def spec_augment(
    features: np.ndarray, args: argparse.Namespace, rng: np.random.Generator
) -> np.ndarray:
    """Zero (= the normalised mean) random spans of frames (<= 10) and coefficients (<= 5)."""
    features = features.copy()
    count, frames, coefs = features.shape
    for index in range(count):
        for _ in range(args.time_masks):
            width = int(rng.integers(0, 11))
            start = int(rng.integers(0, frames - width + 1))
            features[index, start : start + width, :] = 0.0
        for _ in range(args.coef_masks):
            width = int(rng.integers(0, 6))
            start = int(rng.integers(0, coefs - width + 1))
            features[index, :, start : start + width] = 0.0
    return features


def epoch_data(
    versions: list[list[Version]], args: argparse.Namespace, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """This epoch's training features (N, frames, 40) and labels (N,), shuffled."""
    picks = [
        copies[int(rng.integers(len(copies)))]
        for copies in versions
        for _ in range(args.crops_per_clip)
    ]
    waveforms = np.stack([random_crop(version, rng) for version in picks])
    labels = np.array([version.label for version in picks], dtype=np.int64)
    audible = np.array([level_db(crop) >= MIN_CROP_DB for crop in waveforms])
    waveforms, labels = waveforms[audible], labels[audible]
    if not args.no_augment:
        waveforms = augment_waveforms(waveforms, args, rng)
    features = mfcc_batch(waveforms)
    if not args.no_augment:
        features = spec_augment(features, args, rng)
    order = rng.permutation(len(labels))
    return features[order], labels[order]


def class_weights(clips: list[Clip]) -> torch.Tensor:
    """Inverse class frequency over the training clips, mean 1 (neutral+calm is 1.5x as common)."""
    counts = np.bincount([clip.label for clip in clips], minlength=len(LABELS)).astype(np.float64)
    weights = counts.sum() / (len(LABELS) * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def train_epoch(
    model: VoiceBiLSTM,
    features: np.ndarray,
    labels: np.ndarray,
    loss_fn: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    args: argparse.Namespace,
    epoch: int,
) -> float:
    """One pass over this epoch's crops; returns the mean training loss."""
    model.train()
    total, seen = 0.0, 0
    starts = range(0, len(labels), args.batch_size)
    for start in tqdm(starts, desc=f"epoch {epoch}", unit="batch", leave=False):
        x = torch.from_numpy(features[start : start + args.batch_size])
        y = torch.from_numpy(labels[start : start + args.batch_size])
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(y)
        seen += len(y)
    return total / seen


def evaluate(model: VoiceBiLSTM, clips: list[Clip], silence_db: float) -> dict[str, Any]:
    """Window- and clip-level figures through the run-time classifier (gate, windows, mean)."""
    classifier = VoiceClassifier(model, name="training")
    window_probs, window_labels, clip_probs = [], [], []
    for clip in clips:
        probs = classifier.predict_windows(speech_windows(clip.samples, silence_db))
        window_probs.append(probs)
        window_labels.extend([clip.label] * len(probs))
        clip_probs.append(probs.mean(axis=0))
    clip_labels = np.array([clip.label for clip in clips])
    return {
        "window": summarize(np.array(window_labels), np.concatenate(window_probs), LABELS),
        "clip": summarize(clip_labels, np.stack(clip_probs), LABELS),
    }


def brief(figures: dict[str, Any]) -> str:
    return " ".join(
        f"{level} top1 {figures[level]['top1']:.3f} top5 {figures[level]['top5']:.3f} "
        f"F1 {figures[level]['macro_f1']:.3f} (n={figures[level]['n']})"
        for level in ("window", "clip")
    )


def setup_logging(log_dir: Path) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"train_voice_{time.strftime('%Y%m%d_%H%M%S')}.log"
    formatter = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    for handler in (logging.FileHandler(path), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    return path


def fit(
    model: VoiceBiLSTM,
    train: list[Clip],
    validation: list[Clip],
    args: argparse.Namespace,
    rng: np.random.Generator,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Train with early stopping on validation window macro-F1; load and return the best epoch."""
    versions = training_versions(train, speeds(args))
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(train), label_smoothing=args.label_smoothing)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps = args.epochs * -(-len(train) * args.crops_per_clip // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1
    )
    best: dict[str, Any] = {"score": -1.0}
    history = []
    began = time.time()
    for epoch in range(1, args.epochs + 1):
        features, labels = epoch_data(versions, args, rng)
        loss = train_epoch(model, features, labels, loss_fn, optimizer, scheduler, args, epoch)
        figures = evaluate(model, validation, args.silence_db)
        score = figures["window"]["macro_f1"]
        history.append({"epoch": epoch, "loss": loss, "validation": brief(figures)})
        improved = score > best["score"]
        if improved:
            state = {k: v.clone() for k, v in model.state_dict().items()}
            best = {"score": score, "epoch": epoch, "figures": figures, "state": state}
        log.info(
            "epoch %2d loss %.4f | val %s%s | %.0f s",
            epoch, loss, brief(figures), " *" if improved else "", time.time() - began,
        )
        if epoch - best["epoch"] >= args.patience:
            log.info("early stop: no validation improvement for %d epochs", args.patience)
            break
    model.load_state_dict(best.pop("state"))
    model.eval()
    log.info("best epoch %d (validation window macro-F1 %.3f)", best["epoch"], best["score"])
    return best, history


def speeds(args: argparse.Namespace) -> tuple[float, ...]:
    return (1.0,) if args.no_augment else SPEEDS


def log_figures(name: str, figures: dict[str, Any]) -> None:
    log.info("%s: %s", name, brief(figures))
    for level in ("window", "clip"):
        matrix = format_confusion(figures[level]["confusion"], LABELS)
        log.info("%s %s confusion (rows true, columns predicted):\n%s", name, level, matrix)


def model_card(
    args: argparse.Namespace,
    command: str,
    config: VoiceModelConfig,
    best: dict[str, Any],
    test: dict[str, Any] | None,
    history: list[dict[str, Any]],
    run: dict[str, Any],
) -> dict[str, Any]:
    """The JSON card written next to the weights: data, split, command, settings, figures."""
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    return {
        "model": "BiLSTM over MFCC(40) of 1 s 16 kHz windows (realtime/voice.py)",
        "data": {
            "path": settings["data"],
            "dataset": "RAVDESS speech, 24 actors, 1,440 clips",
            "clips": run["clips"],
            "calm": "counted as neutral",
        },
        "split": {name: f"actors {r.start}-{r.stop - 1}" for name, r in SPLITS.items()},
        "command": command,
        "hyper_parameters": {**settings, "model": asdict(config), "speeds": list(speeds(args))},
        "evaluation": (
            "1 s windows every 0.5 s over the whole clip, windows above "
            f"{args.silence_db} dBFS (all if none); clip = mean of its window probs"
        ),
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "wall_time_s": run["wall_time_s"],
        "torch": torch.__version__,
        "validation": best["figures"],
        "test": test,
        "history": history,
        "log": run["log"],
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.time()
    log_path = setup_logging(args.log_dir)
    command = "python -m eval.train_voice " + " ".join(sys.argv[1:] if argv is None else argv)
    log.info("command: %s", command)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    clips = load_clips(args.data)
    train, validation = split(clips, "train"), split(clips, "validation")
    log.info("clips: %d train, %d validation", len(train), len(validation))
    config = VoiceModelConfig(hidden=args.hidden, layers=args.layers, dropout=args.dropout)
    model = VoiceBiLSTM(config)
    best, history = fit(model, train, validation, args, rng)

    test = None if args.no_test else evaluate(model, split(clips, "test"), args.silence_db)
    log_figures("validation", best["figures"])
    if test is not None:
        log_figures("test", test)
    wall = time.time() - began
    inside = log_path.is_relative_to(PROJECT_ROOT)
    log_name = log_path.relative_to(PROJECT_ROOT) if inside else log_path
    run = {"clips": len(clips), "wall_time_s": round(wall, 1), "log": str(log_name)}
    card = model_card(args, command, config, best, test, history, run)
    save_weights(args.out, model, config, {"best_epoch": best["epoch"], "seed": args.seed})
    args.out.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    log.info("wrote %s and its card; wall time %.1f min", args.out, wall / 60)


if __name__ == "__main__":
    main()
