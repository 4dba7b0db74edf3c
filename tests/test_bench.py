"""The benchmark in its short mode: runs end to end on real inputs and writes well-formed JSON.

No wall-clock speed is asserted (the machine may be busy); only that the figures are present,
positive and consistent (p95 >= median, counts as asked).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from realtime.config import PROJECT_ROOT

UPDATES = 20
SESSIONS = 2


def _positive_stats(figure: dict, n: int) -> None:
    assert figure["n"] == n
    assert 0 < figure["min"] <= figure["median"] <= figure["p95"] <= figure["max"]


def test_bench_short_mode(tmp_path: Path, media_dir: Path, ravdess_dir: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable, "-m", "eval.bench",
        "--updates", str(UPDATES), "--warmup", "2", "--backends", "local",
        "--sessions", str(SESSIONS), "--session-seconds", "1.5",
        "--cache-dir", str(tmp_path / "cache"), "--log-dir", str(tmp_path), "--json", str(out),
    ]
    done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert json.loads(done.stdout) == report  # printed and written alike

    assert report["kind"] == "bench" and report["machine"]["cpus"] >= 1
    local = report["backends"]["local"]
    assert local["updates"] == UPDATES and local["face_model"] and local["voice_model"]
    assert local["faces_found"] > UPDATES // 2  # the Hamilton clip shows a face in most frames
    for way in ("engine", "session", "baseline"):
        stages = local["stages_ms"][way]
        _positive_stats(stages["total"], UPDATES)
        if way != "session":  # the session skips the voice model on silence and the face without a frame
            assert set(stages) == {"decode", "detect", "face", "voice", "fusion", "total"}
            assert sum(stages[s]["median"] for s in ("decode", "detect", "face", "voice", "fusion")) > 0
    assert local["tick_ms"]["engine_sequential"] == local["stages_ms"]["engine"]["total"]
    assert local["speedup_median"]["baseline_over_engine"] > 0

    server = report["server"]["local"]
    assert 0 < server["ready_s"] < 180
    rss = server["rss_mb"]
    assert 50 < rss["after_ready"] <= rss["with_1_session"] + 1e-6
    assert rss[f"with_{SESSIONS}_sessions"] > 50
    assert server["errors"] == 0
