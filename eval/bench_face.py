"""Per-face inference benchmark: the local face classifier on one real face crop, and the detector.

Detects the face in a real photo once, crops it as the server does, then times
``LocalFaceClassifier.predict_batch([crop])`` (gray conversion, resize, both flips, ONNX Runtime)
and ``FaceDetector.detect(image)`` separately. Prints one JSON object with median and p95 in ms.

Example::

    python eval/bench_face.py --threads 1 --runs 300
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from realtime.face import FaceDetector, LocalFaceClassifier, crop_face  # noqa: E402


def timings_ms(call: Callable[[], object], runs: int, warmup: int = 10) -> dict[str, float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    return {"median": round(float(np.median(samples)), 3), "p95": round(float(np.percentile(samples, 95)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", type=Path, default=PROJECT_ROOT / "weights" / "face_local.onnx")
    parser.add_argument(
        "--image", type=Path, default=PROJECT_ROOT.parent / "shared" / "media" / "obama_640x480.jpg"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="ONNX Runtime intra-op threads (MODEL_THREADS)"
    )
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--margin", type=float, default=0.2)
    args = parser.parse_args()

    image = cv2.imread(str(args.image))
    if image is None:
        raise SystemExit(f"cannot read {args.image}")
    detector = FaceDetector()
    boxes = detector.detect(image)
    if not boxes:
        raise SystemExit(f"no face found in {args.image}")
    crop = crop_face(image, boxes[0], args.margin)
    classifier = LocalFaceClassifier.load(args.weights, threads=args.threads)
    result = {
        "model": classifier.name,
        "threads": args.threads,
        "runs": args.runs,
        "image": args.image.name,
        "crop_shape": list(crop.shape),
        "classify_ms": timings_ms(lambda: classifier.predict_batch([crop]), args.runs),
        "detect_ms": timings_ms(lambda: detector.detect(image), max(1, args.runs // 3)),
        "cpu_count": os.cpu_count(),
        "load_average_1min": round(os.getloadavg()[0], 2),  # other work on the machine slows both
    }
    detector.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
