"""realtime.audio: PCM helpers, ring buffer, resampling, file loading, windows and MFCC features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from realtime.audio import (
    SAMPLE_RATE,
    AudioRingBuffer,
    clip_windows,
    int16_to_float,
    level_db,
    load_audio_file,
    mfcc_batch,
    mfcc_features,
    resample_to_16k,
)

RAVDESS_CLIP = "Actor_19/03-01-05-02-01-01-19.flac"  # angry, strong, test actor


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / rate)[spectrum.argmax()])


def test_pcm_and_level() -> None:
    pcm = np.array([-32768, 0, 16384], dtype=np.int16)
    np.testing.assert_allclose(int16_to_float(pcm), [-1.0, 0.0, 0.5])
    assert level_db(np.zeros(100, np.float32)) == -120.0
    assert level_db(np.ones(100, np.float32)) == pytest.approx(0.0, abs=1e-6)


def test_ring_buffer_keeps_the_latest_second() -> None:
    buffer = AudioRingBuffer(seconds=1.0)
    buffer.append(np.arange(12_000, dtype=np.float32))
    buffer.append(np.arange(12_000, 20_000, dtype=np.float32))
    latest = buffer.latest()
    assert latest.size == SAMPLE_RATE and len(buffer) == SAMPLE_RATE
    np.testing.assert_array_equal(latest, np.arange(4_000, 20_000, dtype=np.float32))


def test_resample_from_48k_keeps_length_pitch_and_level() -> None:
    tone = sine(440.0, 1.0, 48_000)
    out = resample_to_16k(tone, 48_000)
    assert out.dtype == np.float32 and out.shape == (SAMPLE_RATE,)
    assert peak_hz(out, SAMPLE_RATE) == pytest.approx(440.0, abs=1.0)
    assert level_db(out[1000:-1000]) == pytest.approx(level_db(tone), abs=0.1)


def test_resample_other_rates_and_passthrough() -> None:
    assert resample_to_16k(sine(440.0, 1.0, 44_100), 44_100).shape == (SAMPLE_RATE,)
    assert resample_to_16k(sine(440.0, 1.0, 8_000), 8_000).shape == (SAMPLE_RATE,)
    tone = sine(440.0, 0.5, SAMPLE_RATE)
    same = resample_to_16k(tone, SAMPLE_RATE)
    np.testing.assert_array_equal(same, tone)
    assert same is not tone


@pytest.mark.parametrize("rate", [0, 3_999, 192_001])
def test_resample_refuses_silly_rates(rate: int) -> None:
    with pytest.raises(ValueError, match="sample rate"):
        resample_to_16k(np.zeros(100, np.float32), rate)


def test_load_48k_stereo_wav(tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    left, right = sine(440.0, 2.0, 48_000), sine(440.0, 2.0, 48_000, amplitude=0.25)
    sf.write(path, np.stack([left, right], axis=1), 48_000, subtype="PCM_16")
    audio = load_audio_file(path)
    assert audio.dtype == np.float32 and audio.shape == (2 * SAMPLE_RATE,)
    assert peak_hz(audio, SAMPLE_RATE) == pytest.approx(440.0, abs=1.0)
    assert np.abs(audio).max() == pytest.approx(0.375, abs=0.01)  # channels averaged


def test_original_48k_release_matches_the_16k_copy(ravdess_dir: Path, tmp_path: Path) -> None:
    """A RAVDESS clip written as 48 kHz WAV (as the original release) loads like the FLAC copy."""
    reference = load_audio_file(ravdess_dir / RAVDESS_CLIP)
    wav = tmp_path / "03-01-05-02-01-01-19.wav"
    sf.write(wav, resample_up(reference), 48_000, subtype="FLOAT")
    restored = load_audio_file(wav)
    assert restored.shape == reference.shape
    assert np.corrcoef(restored, reference)[0, 1] > 0.99
    features = mfcc_features(clip_windows(restored)[2])
    assert np.abs(features - mfcc_features(clip_windows(reference)[2])).mean() < 0.1


def resample_up(samples: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.resample(samples, orig_sr=SAMPLE_RATE, target_sr=48_000, res_type="soxr_hq")


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_audio_file(tmp_path / "missing.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    with pytest.raises(ValueError, match="not a readable audio file"):
        load_audio_file(garbage)


def test_clip_windows_pads_short_clips_at_the_end() -> None:
    short = np.ones(4_000, np.float32)
    windows = clip_windows(short)
    assert windows.shape == (1, SAMPLE_RATE) and windows.dtype == np.float32
    np.testing.assert_array_equal(windows[0, :4_000], short)
    assert not windows[0, 4_000:].any()
    assert clip_windows(np.zeros(0, np.float32)).shape == (1, SAMPLE_RATE)


def test_clip_windows_cover_the_whole_clip() -> None:
    samples = np.arange(int(2.2 * SAMPLE_RATE), dtype=np.float32)
    windows = clip_windows(samples)
    assert windows.shape == (4, SAMPLE_RATE)  # starts 0, 0.5, 1.0 s and the last second
    assert [w[0] for w in windows] == [0, 8_000, 16_000, samples.size - SAMPLE_RATE]
    np.testing.assert_array_equal(windows[-1], samples[-SAMPLE_RATE:])
    assert clip_windows(np.zeros(SAMPLE_RATE, np.float32)).shape == (1, SAMPLE_RATE)
    assert clip_windows(np.zeros(2 * SAMPLE_RATE, np.float32)).shape == (3, SAMPLE_RATE)


def test_mfcc_shape_dtype_normalisation(ravdess_dir: Path) -> None:
    window = clip_windows(load_audio_file(ravdess_dir / RAVDESS_CLIP))[2]
    features = mfcc_features(window)
    assert features.shape == (101, 40) and features.dtype == np.float32
    np.testing.assert_allclose(features.mean(axis=0), 0.0, atol=1e-3)  # per-window CMN
    assert features.std(axis=0).min() > 0.1  # the spread is kept


def test_mfcc_is_deterministic_and_gain_invariant(ravdess_dir: Path) -> None:
    window = clip_windows(load_audio_file(ravdess_dir / RAVDESS_CLIP))[2]
    first = mfcc_features(window)
    np.testing.assert_array_equal(first, mfcc_features(window.copy()))
    np.testing.assert_allclose(mfcc_features(window * 0.1), first, atol=1e-3)


def test_mfcc_batch_matches_single_windows() -> None:
    rng = np.random.default_rng(0)
    windows = (0.1 * rng.standard_normal((3, SAMPLE_RATE))).astype(np.float32)
    batch = mfcc_batch(windows)
    assert batch.shape == (3, 101, 40)
    for window, features in zip(windows, batch):
        np.testing.assert_allclose(features, mfcc_features(window), atol=1e-4)


def test_mfcc_of_silence_is_finite_and_bad_shapes_raise() -> None:
    assert np.isfinite(mfcc_features(np.zeros(SAMPLE_RATE, np.float32))).all()
    with pytest.raises(ValueError):
        mfcc_features(np.zeros(8_000, np.float32))
    with pytest.raises(ValueError):
        mfcc_batch(np.zeros((2, 3, SAMPLE_RATE), np.float32))
