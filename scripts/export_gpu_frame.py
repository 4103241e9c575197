"""Decode the real nuScenes frame into one npz for the lent GPU machine (it has no OpenCV):
.venv/bin/python scripts/export_gpu_frame.py  ->  .carry/frame_decoded.npz (git-ignored, carried)"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bevfusion_ros.core.model import load_model
from bevfusion_ros.tools.data.nuscenes_frame import load_frame

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frame", default=str(REPO.parent / "shared" / "data" / "nuscenes_frame"))
    ap.add_argument("--out", default=str(REPO / ".carry" / "frame_decoded.npz"))
    args = ap.parse_args()
    spec = load_model(REPO / "engines" / "reference" / "model.yaml")
    f = load_frame(Path(args.frame))
    by = {c.name: c for c in f.cameras}
    cams = [by[n] for n in spec.cameras]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        names=np.array(spec.cameras),
        images=np.stack([c.image_bgr for c in cams]),
        points=f.points.astype(np.float32),
        K=np.stack([c.intrinsics.K for c in cams]),
        wh=np.array([[c.intrinsics.width, c.intrinsics.height] for c in cams]),
        lidar2cam=np.stack([c.lidar2cam for c in cams]),
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
