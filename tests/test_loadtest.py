"""The load test in its short mode: real server on loopback, 2 clients, a few seconds, JSON out.

No wall-clock speed is asserted beyond what the protocol promises (about 2 results per second).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.loadtest import check_bounds, mjpeg_frames
from realtime.config import PROJECT_ROOT

CLIENTS = 2
SECONDS = 4.0


def test_loadtest_short_mode(tmp_path: Path, media_dir: Path, ravdess_dir: Path) -> None:
    out = tmp_path / "loadtest.json"
    command = [
        sys.executable, "-m", "eval.loadtest", "--clients", str(CLIENTS), "--seconds", str(SECONDS),
        "--warmup", "1", "--server-log", str(tmp_path / "server.log"), "--json", str(out),
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report

    assert report["kind"] == "loadtest" and report["clients"] == CLIENTS
    assert report["server"]["started_by_loadtest"] and report["server"]["ready_s"] > 0
    total = report["aggregate"]
    assert total["errors"] == 0, [c["error_samples"] for c in report["per_client"]]
    assert len(report["per_client"]) == CLIENTS
    for client in report["per_client"]:
        assert client["errors"] == 0 and client["seq_gaps"] == 0
        assert 1.0 <= client["results_per_s"] <= 3.0
        assert 0 < client["frames_used"] <= client["frames_sent"]
        assert client["frames_dropped"] == client["frames_sent"] - client["frames_used"]
    f2r = total["frame_to_result_ms"]
    assert f2r["n"] > 0 and 0 < f2r["p50"] <= f2r["p95"] <= f2r["max"]
    assert total["frames_sent"] >= CLIENTS * (SECONDS * 4 - 2)
    rss = report["server_rss_mb"]
    assert rss["before"] > 50 and rss["max"] >= rss["before"]


def test_loadtest_targets_loopback_only() -> None:
    with pytest.raises(SystemExit, match="loopback"):
        check_bounds("ws://example.com/ws", 1, 1.0)
    with pytest.raises(SystemExit):
        check_bounds("ws://127.0.0.1:8000/ws", 1000, 1.0)
    with pytest.raises(SystemExit):
        check_bounds("ws://127.0.0.1:8000/ws", 1, 3600.0)
    check_bounds("ws://127.0.0.1:8000/ws", 10, 20.0)


def test_video_frames_are_jpegs(media_dir: Path) -> None:
    frames = mjpeg_frames(media_dir / "hamilton_640x480_15fps.mjpeg")
    assert len(frames) > 100
    assert all(f.startswith(b"\xff\xd8\xff") and f.rstrip(b"\x00").endswith(b"\xff\xd9") for f in frames)
