"""Summary of a recorded perception run: frames in/out, every drop by its cause, latency
percentiles, detections per frame, and a BEV PNG of the last processed frame."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.model import Grid, ModelSpec
from bevfusion_ros.core.perception.timing import MONITOR_NODE, PERCEPTION_NODE, PERCEPTION_NODE_PATH, FrameTiming
from bevfusion_ros.core.pipeline.postprocess import Segmentation

# causes under which the node counts a LiDAR sweep that produced no output
NODE = PERCEPTION_NODE_PATH
DROP_CAUSES = ("dropped_busy", "dropped_too_many_masked", "lidar_duplicate", "lidar_out_of_order")


def _messages(bag: Path, topics: set[str]) -> dict[str, list[Any]]:
    from rclpy.serialization import deserialize_message

    from bevfusion_ros.ros.msgtypes import message_class
    from bevfusion_ros.tools.bags.io import iter_raw, open_reader

    out: dict[str, list[Any]] = {t: [] for t in topics}
    reader = open_reader(bag)
    try:
        for topic, msgtype, _, raw in iter_raw(reader, topics):
            out[topic].append(deserialize_message(raw, message_class(msgtype)))
    finally:
        reader.close()
    return out


def _pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(np.max(values))}


def summarise(
    outputs: Path,
    bag: Path,
    spec: ModelSpec,
    sweeps: int,
    out_dir: Path,
    node_exit: int | None,
    monitor_log: Path | None = None,
) -> dict[str, Any]:
    from bevfusion_ros.ros import build, convert

    classes = spec.map.classes if spec.map else ()
    topics = {f"{NODE}/timing", f"{NODE}/detections", "/diagnostics", *(f"{NODE}/map/{c}" for c in classes)}
    msgs = _messages(outputs, topics)
    frames = [FrameTiming.decode({kv.key: kv.value for kv in m.status[0].values}) for m in msgs[f"{NODE}/timing"]]
    diag: dict[str, str] = {}
    # /diagnostics also carries the monitor's statuses ("bevfusion_monitor: ..."): the perception
    # node's counters are in its own newest message (diagnostic_updater puts the node's name in front).
    own = [m for m in msgs["/diagnostics"] if any(s.name.startswith(f"{PERCEPTION_NODE}: ") for s in m.status)]
    if own:
        for s in own[-1].status:
            diag.update({kv.key: kv.value for kv in s.values})
    drops = {c: int(diag.get(c, 0)) for c in DROP_CAUSES}
    drops.update({k: int(v) for k, v in diag.items() if k.startswith("frame_dropped_")})
    received = int(diag.get("/lidar/points received", 0))
    without_lidar = int(diag.get("frames_without_lidar", 0))  # camera-anchored while the LiDAR was lost
    frames_out = len(frames)
    summary: dict[str, Any] = {
        "bag": str(bag),
        "model": spec.name,
        "lidar_sweeps_in_bag": sweeps,
        "lidar_sweeps_received": received,
        "frames_without_lidar": without_lidar,
        "frames_out": frames_out,
        "frames_per_mode": dict(Counter(f.mode for f in frames)),
        "drops": drops,
        "lost_in_transport": sweeps - received,
        "unexplained_drops": sweeps + without_lidar - frames_out - sum(drops.values()),
        "masked_camera_frames": int(sum(f.masked_cameras > 0 for f in frames)),
        "latency_ms": _pct([f.latency_ms for f in frames]),
        "total_ms": _pct([f.stages_ms["total"] for f in frames]),
        "host_ms": _pct([f.host_ms for f in frames]),
        "detections_per_frame": float(np.mean([f.detections for f in frames])) if frames else 0.0,
        "detection_score_threshold": spec.post.score_threshold,
        "node_exit_code": node_exit,
    }
    if monitor_log is not None:
        summary["monitor"] = monitor_summary(msgs["/diagnostics"], monitor_log)
    dets = msgs[f"{NODE}/detections"]
    if dets:
        last = dets[-1]
        stamp = build.stamp_ns(last.header.stamp)
        det = convert.detection3d_array_to_detections(last, spec.class_names)
        seg = _segmentation(msgs, classes, stamp)
        points = _points(bag, spec, stamp)
        from bevfusion_ros.tools.viz.plots import bev_figure

        shown = det.select(det.scores >= 0.3)
        bev_figure(
            out_dir / "bev_last_frame.png",
            points,
            shown,
            None,
            seg,
            title=f"{spec.name} via the perception node: frame {stamp}, {len(shown)} boxes >= 0.3",
        )
        summary["bev_png"] = str(out_dir / "bev_last_frame.png")
    (out_dir / "summary.md").write_text(markdown(summary))
    return summary


def monitor_summary(diag_msgs: list[Any], log: Path) -> dict[str, Any]:
    """Per monitor check: how often it was OK/WARN/ERROR during the run and its last message."""
    names = {0: "OK", 1: "WARN", 2: "ERROR"}
    checks: dict[str, dict[str, Any]] = {}
    for m in diag_msgs:
        for s in m.status:
            if s.name.startswith(f"{MONITOR_NODE}: "):
                c = checks.setdefault(s.name[len(MONITOR_NODE) + 2 :], {"OK": 0, "WARN": 0, "ERROR": 0})
                c[names.get(int.from_bytes(s.level, "little"), "ERROR")] += 1
                c["last"] = s.message
    rows = len(log.read_text().splitlines()) if log.is_file() else 0
    return {"checks": checks, "log_rows": rows, "log": str(log)}


def _segmentation(msgs: dict[str, list[Any]], classes: tuple[str, ...], stamp: int) -> Segmentation | None:
    from bevfusion_ros.ros import build
    from bevfusion_ros.tools.bags.replay import occupancy

    layers = []
    grid: Grid | None = None
    for c in classes:
        match = [m for m in msgs[f"{NODE}/map/{c}"] if build.stamp_ns(m.header.stamp) == stamp]
        if not match:
            return None
        cells, grid = occupancy(match[-1])
        layers.append(cells.astype(np.float32) / 100.0)
    if grid is None:
        return None
    return Segmentation(np.stack(layers), classes, grid)


def _points(bag: Path, spec: ModelSpec, stamp: int) -> Any:
    from bevfusion_ros.tools.bags.frames import read_frames

    for f in read_frames(bag, spec):
        if f.stamp_ns == stamp:
            return f.points
    return None


def markdown(s: dict[str, Any]) -> str:
    lat, tot, host = s["latency_ms"], s["total_ms"], s["host_ms"]
    drops = ", ".join(f"{k} {v}" for k, v in s["drops"].items() if v) or "none"
    lines = [
        f"# Perception node on {s['bag']}",
        "",
        f"- model {s['model']}; node exit code {s['node_exit_code']}",
        f"- LiDAR sweeps: {s['lidar_sweeps_in_bag']} in the bag, {s['lidar_sweeps_received']} received; "
        f"camera-anchored frames while the LiDAR was lost: {s['frames_without_lidar']}; "
        f"**{s['frames_out']} frames out**",
        "- sensor modes of the frames out: " + ", ".join(f"{m} {n}" for m, n in sorted(s["frames_per_mode"].items())),
        f"- drops by cause: {drops}; lost in transport {s['lost_in_transport']}; "
        f"**unexplained {s['unexplained_drops']}**",
        f"- frames with a masked camera: {s['masked_camera_frames']}",
        f"- detections per frame: {s['detections_per_frame']:.1f} (every published box: score >= "
        f"{s['detection_score_threshold']:g}, the model's postprocess.score_threshold)",
    ]
    if lat:
        lines += [
            f"- latency (frame complete -> outputs published) p50 {lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms",
            f"- pipeline total p50 {tot['p50']:.0f} ms, p99 {tot['p99']:.0f} ms; "
            f"host share (conversion, pre/post, publish) p50 {host['p50']:.0f} ms",
        ]
    if "monitor" in s:
        lines += ["", "Monitor node (`bevfusion_monitor:` diagnostics during the run, counts of OK/WARN/ERROR):", ""]
        for name, c in s["monitor"]["checks"].items():
            lines.append(f"- {name}: {c['OK']} OK, {c['WARN']} WARN, {c['ERROR']} ERROR; last: {c.get('last', '')}")
        lines.append(f"- {s['monitor']['log_rows']} rows in {s['monitor']['log']}")
    if "bev_png" in s:
        lines.append(f"- BEV of the last frame: {s['bev_png']}")
    return "\n".join(lines) + "\n"
