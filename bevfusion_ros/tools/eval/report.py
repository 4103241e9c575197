"""The evaluation report: plots (matplotlib) people look at, a Markdown page that links them, a
self-contained HTML page that inlines them, and a short text summary for the terminal."""

from __future__ import annotations

import base64
import html
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from bevfusion_ros.core.pipeline.postprocess import Segmentation
from bevfusion_ros.tools.eval.evaluation import EvaluationResult
from bevfusion_ros.tools.eval.records import FrameView


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _f(v: Any, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, fmt)


def _panels(plt: Any, n: int, cols: int, size: tuple[float, float]) -> tuple[Any, list[Any]]:
    """A grid of ``n`` small panels, ``cols`` wide; the spare cells are hidden."""
    rows = math.ceil(n / cols)
    fig, grid = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), dpi=90, squeeze=False)
    axes = list(grid.flat)
    for ax in axes[n:]:
        ax.axis("off")
    return fig, axes[:n]


def _finish_panels(plt: Any, fig: Any, axes: list[Any], title: str, path: Path) -> None:
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_ap(runs: list[dict[str, Any]], path: Path) -> bool:
    scored = [r for r in runs if r["detection"]]
    if not scored:
        return False
    plt = _plt()
    classes = list(scored[0]["detection"]["label_aps"])
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    width = 0.8 / len(scored)
    for k, r in enumerate(scored):
        aps = [float(np.mean(list(r["detection"]["label_aps"][c].values()))) for c in classes]
        ax.bar(np.arange(len(classes)) + k * width, aps, width, label=f"{r['name']} (mAP {r['mean_ap']:.3f})")
    ax.set_xticks(np.arange(len(classes)) + width * (len(scored) - 1) / 2, classes, rotation=30, ha="right")
    ax.set_ylabel("AP (mean over 0.5/1/2/4 m)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    ax.set_title("Per-class AP")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_groups(groups: list[tuple[str, dict[str, Any]]], runs: list[str], title: str, path: Path) -> bool:
    """mAP and mIoU per bag or per tag, a bar per run: the drive or the weather that regresses."""
    if not any(g["runs"].get(r, {}).get("mean_ap") is not None for _, g in groups for r in runs):
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.2 * len(groups) + 4), 4), dpi=100, squeeze=False)
    width = 0.8 / len(runs)
    x = np.arange(len(groups))
    for ax, key, label in zip(axes[0], ("mean_ap", "miou"), ("mAP", "mIoU"), strict=True):
        for k, run in enumerate(runs):
            values = [g["runs"].get(run, {}).get(key) for _, g in groups]
            ax.bar(x + k * width, [np.nan if v is None else v for v in values], width, label=run)
        ax.set_xticks(x + width * (len(runs) - 1) / 2, [name for name, _ in groups], rotation=30, ha="right")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_pr(runs: list[dict[str, Any]], path: Path) -> bool:
    scored = [r for r in runs if r.get("pr_curves")]
    if not scored:
        return False
    plt = _plt()
    classes = list(scored[0]["pr_curves"])
    fig, axes = _panels(plt, len(classes), 5, (3.0, 2.6))
    for ax, c in zip(axes, classes, strict=False):
        for k, r in enumerate(scored):
            pr = r["pr_curves"][c]
            ax.plot(pr["recall"], pr["precision"], ls="-" if k == 0 else "--", label=r["name"])
        ax.set_title(c, fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=7)
    _finish_panels(plt, fig, axes, "Precision-recall at 2 m centre distance (nuscenes-devkit)", path)
    return True


def plot_latency(runs: list[dict[str, Any]], samples: dict[str, dict[str, list[float]]], path: Path) -> bool:
    stages = [s for s in next(iter(samples.values()), {}) if samples]
    if not stages:
        return False
    plt = _plt()
    fig, axes = _panels(plt, len(stages), 4, (3.6, 2.5))
    for ax, st in zip(axes, stages, strict=False):
        every = [v for per_stage in samples.values() for v in per_stage.get(st, [])]
        bins = np.histogram_bin_edges(every, bins=30) if every else 30
        for name, per_stage in samples.items():
            v = per_stage.get(st)
            if v:
                ax.hist(v, bins=bins, alpha=0.55, label=name)
        ax.set_title(f"{st} [ms]", fontsize=9)
        ax.tick_params(labelsize=7)
    _finish_panels(plt, fig, axes, "Latency per stage (per frame)", path)
    return True


def plot_scatter(ref: str, name: str, pairs: list[tuple[float, float]], path: Path) -> bool:
    if not pairs:
        return False
    plt = _plt()
    p = np.asarray(pairs)
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.scatter(p[:, 0], p[:, 1], s=6, alpha=0.5)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel(f"score, {ref}")
    ax.set_ylabel(f"score, {name}")
    ax.set_title(f"Box scores, {ref} vs {name}\n(on an axis: found by one run only)", fontsize=9)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def plot_frame(view: FrameView, label: str, path: Path) -> None:
    from bevfusion_ros.core.eval.agreement import MIN_SCORE, confident
    from bevfusion_ros.tools.viz.plots import draw_bev

    plt = _plt()
    gt = view.ground_truth
    gt_seg = None
    if gt.map is not None and gt.map_grid is not None and view.segmentation is not None:
        gt_seg = Segmentation(gt.map.astype(np.float32), view.segmentation.classes, gt.map_grid)
    fig, (a, b) = plt.subplots(1, 2, figsize=(16, 8), dpi=80)
    draw_bev(a, view.points, None, gt.detections, gt_seg, title="ground truth (boxes and map)")
    shown = confident(view.detections, MIN_SCORE)
    draw_bev(
        b,
        view.points,
        shown,
        gt.detections,
        view.segmentation,
        title=f"prediction: {len(shown)} boxes >= {MIN_SCORE}, map >= 0.5",
    )
    fig.suptitle(f"{label}: frame {view.stamp_ns} ns, F1 {view.f1:.2f} (2 m, score >= {MIN_SCORE})")
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path)
    plt.close(fig)


def evaluation_json(result: EvaluationResult) -> str:
    """evaluation.json: every number of the result, strict JSON (NaN and infinities as null) for CI tools."""
    return json.dumps(_finite(result.summary()), indent=1, default=_json)


# what differs between two evaluations of the same frames: how long things took, and where
TIMING_KEYS = frozenset({"latency_ms", "frames_per_s", "wall_s", "evaluation_frames_per_s", "fleet", "p99_ms"})


def without_timings(o: Any) -> Any:
    """An evaluation.json (or part of one) without TIMING_KEYS: what must be equal however it ran."""
    if isinstance(o, dict):
        return {k: without_timings(v) for k, v in o.items() if k not in TIMING_KEYS}
    if isinstance(o, list):
        return [without_timings(v) for v in o]
    return o


def _finite(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def write_report(result: EvaluationResult, out: Path) -> None:
    """report.md, report.html (plots inlined), summary.txt and plots/ for one evaluation."""
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    for old in plots.glob("*.png"):
        old.unlink()
    images: list[tuple[str, str]] = []  # (caption, file relative to out)

    def add(ok: bool, caption: str, name: str) -> None:
        if ok:
            images.append((caption, f"plots/{name}"))

    res = result.summary()
    runs = [dict(entry, pr_curves=r.pr_curves) for entry, r in zip(res["runs"], result.runs, strict=True)]
    add(plot_ap(runs, plots / "ap_per_class.png"), "Per-class AP", "ap_per_class.png")
    add(plot_pr(runs, plots / "pr_curves.png"), "Precision-recall curves", "pr_curves.png")
    samples = {r.name: r.latency_samples for r in result.runs if r.latency_samples}
    add(plot_latency(runs, samples, plots / "latency.png"), "Latency per stage", "latency.png")
    names = [r["name"] for r in runs]
    bags = [(b["bag"], b) for b in res["bags"]]
    add(plot_groups(bags, names, "Per bag", plots / "per_bag.png"), "Per bag", "per_bag.png")
    tags = list(res["tags"].items())
    add(plot_groups(tags, names, "Per tag", plots / "per_tag.png"), "Per tag", "per_tag.png")
    ref = runs[0]["name"]
    for k, (name, cmp) in enumerate(result.agreement.items()):
        add(
            plot_scatter(ref, name, cmp.pairs, plots / f"scores_{k}.png"), f"Scores: {ref} vs {name}", f"scores_{k}.png"
        )
    for label, items in (("worst", result.extremes.lowest()), ("best", result.extremes.highest())):
        for i, (_, view) in enumerate(items):
            plot_frame(view, f"{label} frame {i + 1}", plots / f"{label}_{i + 1}.png")
            images.append((f"{label.capitalize()} frame {i + 1} ({ref})", f"plots/{label}_{i + 1}.png"))
    md = markdown(res, images)
    (out / "report.md").write_text(md)
    (out / "report.html").write_text(to_html(md, f"Evaluation of {res['bag']}", out))
    (out / "summary.txt").write_text(summary_text(res, out))


def _run_rows(res: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in res["runs"]:
        lat = r["latency_ms"].get("total", {})
        m = r["map"]
        rows.append(
            [
                r["name"],
                r["model"],
                str(r["frames"]),
                _f(r["mean_ap"]),
                _f(r["nd_score"]),
                _f(r.get("mean_ave")),
                _f(m["miou"]) if m else "n/a",
                _f(lat.get("p50"), ".1f"),
                _f(lat.get("p95"), ".1f"),
                _f(lat.get("p99"), ".1f"),
                _f(r["frames_per_s"], ".2f"),
            ]
        )
    return rows


RUN_HEADER = ["run", "model", "frames", "mAP", "NDS", "mAVE m/s", "mIoU", "p50 ms", "p95 ms", "p99 ms", "frames/s"]
MODE_HEADER = ["run", "sensor mode", "frames", "scored", "mAP", "NDS", "mIoU"]


def _mode_rows(res: dict[str, Any]) -> list[list[str]]:
    """Accuracy per sensor mode, where a run had frames without a sensor (else nothing to split)."""
    rows = []
    for r in res["runs"]:
        modes = r.get("modes", {})
        if set(modes) <= {"full"}:
            continue
        for mode, m in modes.items():
            rows.append(
                [r["name"], mode, str(m["frames"]), str(m["frames_scored"]), _f(m.get("mean_ap")),
                 _f(m.get("nd_score")), _f(m.get("miou"))]
            )  # fmt: skip
    return rows


MODES_TITLE = "Accuracy per sensor mode (frames run without a lost sensor's branch, scored on their own)"


def _cmp_rows(res: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in res["runs"][1:]:
        c = res["comparisons"][r["name"]]
        d_map = "n/a"
        same = c.get("same_frames", {})
        if same.get("mean_ap") is not None and same["reference_mean_ap"]:
            diff = same["mean_ap"] - same["reference_mean_ap"]
            d_map = f"{diff:+.4f} ({100 * diff / same['reference_mean_ap']:+.1f} %) on {same['frames']} frames"
        rows.append(
            [
                r["name"],
                str(c["frames"]),
                f"{_f(c['a_found_in_b'], '.3f')} / {_f(c['b_found_in_a'], '.3f')}",
                _f(c["centre_m"].get("p95"), ".3f"),
                _f(c["yaw_deg"].get("p95"), ".2f"),
                _f(c["score_delta"].get("mean"), "+.4f"),
                _f(c["score_delta_abs"].get("p95"), ".4f"),
                _f(c["seg_miou"]),
                d_map,
            ]
        )
    return rows


CMP_HEADER = [
    "vs first run",
    "frames",
    "boxes found (first in it / it in first)",
    "centre p95 m",
    "yaw p95 deg",
    "score delta mean",
    "|score delta| p95",
    "map IoU between runs",
    "mAP delta (same frames)",
]


def _group_table(
    res: dict[str, Any], groups: list[tuple[str, dict[str, Any]]], kind: str
) -> tuple[list[str], list[list[str]]]:
    """Per bag or per tag: frames, then mAP / NDS / mIoU of each run, then what went wrong."""
    names = [r["name"] for r in res["runs"]]
    header = [kind, "tags" if kind == "bag" else "bags", "frames", *(f"{n} mAP / NDS / mIoU" for n in names)]
    if kind == "bag":
        header.append("status")
    rows = []
    for name, g in groups:
        scores = [g["runs"].get(n, {}) for n in names]
        first: dict[str, Any] = next(iter(g["runs"].values()), {})
        frames = g.get("frames", first.get("frames", 0))
        tags = ", ".join(f"{k}={v}" for k, v in g["tags"].items()) if kind == "bag" else str(g["bags"])
        cells = [f"{_f(s.get('mean_ap'))} / {_f(s.get('nd_score'))} / {_f(s.get('miou'))}" for s in scores]
        row = [name, tags, str(frames), *cells]
        if kind == "bag":
            row.append(
                f"error: {g['error']}" if g["error"] else f"incomplete: {g['incomplete']}" if g["incomplete"] else "ok"
            )
        rows.append(row)
    return header, rows


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(res: dict[str, Any], images: list[tuple[str, str]]) -> str:
    lines = [f"# Evaluation of {res['bag']}", ""]
    lines += [f"**{_verdict(res)}**", ""]
    lines += _table(RUN_HEADER, _run_rows(res))
    thr = res["evaluation_frames_per_s"]
    lines += [
        "",
        f"Evaluation throughput: {_f(thr, '.2f')} frames/s over {res['frames']} frames "
        f"({res['wall_s']:.1f} s, every run, decoding and scoring included; this machine).",
    ]
    if res["fleet"].get("tasks", 1) > 1:
        f = res["fleet"]
        where = (
            f"the Ray cluster at {f['ray_address']}"
            if f["ray_address"]
            else (f"a local Ray instance of {f['workers']} workers" if f["workers"] > 1 else "this process")
        )
        merge = f"merging and scoring took {f['merge_s']:.1f} s"
        lines += ["", f"{f['bags']} bags in {f['tasks']} tasks on {where}; {merge}."]
    if res["bags"]:
        lines += ["", "## Per bag", ""]
        lines += _table(*_group_table(res, [(b["bag"], b) for b in res["bags"]], "bag"))
    if res["tags"]:
        lines += ["", "## Per tag", ""]
        lines += _table(*_group_table(res, list(res["tags"].items()), "tag"))
    if modes := _mode_rows(res):
        lines += ["", f"## {MODES_TITLE}", ""]
        lines += _table(MODE_HEADER, modes)
    if len(res["runs"]) > 1:
        lines += ["", "## Agreement with the first run (same frames, boxes with score >= 0.3, matched within 2 m)", ""]
        lines += _table(CMP_HEADER, _cmp_rows(res))
    for r in res["runs"]:
        det = r["detection"]
        if not det:
            continue
        lines += ["", f"## {r['name']}: per class", ""]
        lines += [
            "| class | ground-truth boxes | AP | ATE m | ASE | AOE rad | AVE m/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for c, aps in det["label_aps"].items():
            tp = det["label_tp_errors"][c]
            n = r["gt_per_class"].get(c, 0)
            ap = f"{np.mean(list(aps.values())):.3f}" + ("" if n else " (no ground truth: 0 by the devkit)")
            ave = _f(tp["vel_err"]) if r.get("predicts_velocity") else "n/a (no velocity head)"
            lines.append(
                f"| {c} | {n} | {ap} | {_f(tp['trans_err'])} | {_f(tp['scale_err'])} | {_f(tp['orient_err'])} | {ave} |"
            )
        if r["map"]:
            lines += ["", "| map class | IoU (best threshold) |", "|---|---|"]
            lines += [f"| {c} | {_f(v)} ({r['map']['best_threshold'][c]}) |" for c, v in r["map"]["iou"].items()]
        lines += [
            "",
            "Stage latency (ms): "
            + ", ".join(
                f"{k} p50 {_f(v.get('p50'), '.1f')} / p99 {_f(v.get('p99'), '.1f')}" for k, v in r["latency_ms"].items()
            ),
        ]
    lines += ["", "## Gates", ""]
    lines += [f"- {'PASS' if g['passed'] else 'FAIL'} {g['name']} ({g['run']}): {g['text']}" for g in res["gates"]] or [
        "- none given (--min-map, --max-map-drop, --max-p99-ms)"
    ]
    lines += ["", "## Input", ""]
    drops = ", ".join(f"{k} {v}" for k, v in res["drops"].items()) or "none"
    lines.append(f"- frames dropped before inference: {drops}")
    if any(r["detection"] for r in res["runs"]) or res["frames_without_ground_truth"]:
        lines.append(f"- frames without ground truth: {res['frames_without_ground_truth']}")
    else:
        lines.append("- ground truth: none in the bag, so no accuracy is scored (latency and agreement only)")
    if res["sync"]:
        lines.append("- sync policy: " + ", ".join(f"{k} {v}" for k, v in res["sync"].items()))
    if res["incomplete"]:
        lines.append(f"- **incomplete: {res['incomplete']}**")
    lines += [f"- {n}" for n in res["notes"]]
    lines += ["", "## Plots", ""]
    lines += [f"![{c}]({p})" for c, p in images]
    return "\n".join(lines) + "\n"


def _verdict(res: dict[str, Any]) -> str:
    if res["incomplete"]:
        return f"INCOMPLETE: {res['incomplete']}"
    if not res["gates"]:
        return "No gates given."
    failed = [g for g in res["gates"] if not g["passed"]]
    return "All gates pass." if not failed else "FAILED: " + "; ".join(f"{g['name']} ({g['run']})" for g in failed)


def to_html(markdown_text: str, title: str, out: Path) -> str:
    """report.md rendered as one HTML page, plots inlined: the same sections, tables and notes as
    the Markdown (one source), in the few Markdown forms ``markdown`` writes."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
        ".fail{color:#b00}.pass{color:#070}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}</style>",
        "</head><body>",
    ]
    table: list[list[str]] = []
    items: list[str] = []

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split(" | ")]

    def close() -> None:
        if table:
            head = "".join(f"<th>{_inline(c)}</th>" for c in table[0])
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in table[1:])
            parts.append(f"<table><tr>{head}</tr>{body}</table>")
            table.clear()
        if items:
            parts.append("<ul>" + "".join(items) + "</ul>")
            items.clear()

    for line in markdown_text.splitlines():
        if line.startswith("|"):
            if not set(line) <= set("|-: "):  # the header's separator row
                table.append(cells(line))
            continue
        if line.startswith("- "):
            text = line[2:]
            cls = " class='fail'" if text.startswith(("FAIL", "**incomplete")) else ""
            cls = " class='pass'" if text.startswith("PASS") else cls
            items.append(f"<li{cls}>{_inline(text)}</li>")
            continue
        close()
        if line.startswith("!["):
            caption, rel = line[2:].split("](", 1)
            data = base64.b64encode((out / rel.rstrip(")")).read_bytes()).decode()
            parts.append(f"<h3>{html.escape(caption)}</h3><img alt='{html.escape(caption)}' "
                         f"src='data:image/png;base64,{data}'>")  # fmt: skip
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            parts.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            parts.append(f"<p>{_inline(line)}</p>")
    close()
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline(text: str) -> str:
    """Markdown's **bold** and `code` inside a line, the rest escaped."""
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def summary_text(res: dict[str, Any], out: Path) -> str:
    rate = _f(res["evaluation_frames_per_s"], ".2f")
    lines = [f"evaluation of {res['bag']}: {res['frames']} frames, {rate} frames/s"]
    for row in _run_rows(res):
        lines.append("  " + ", ".join(f"{h} {v}" for h, v in zip(RUN_HEADER, row, strict=True)))
    for row in _cmp_rows(res):
        lines.append("  " + ", ".join(f"{h} {v}" for h, v in zip(CMP_HEADER, row, strict=True)))
    lines += [f"  {'PASS' if g['passed'] else 'FAIL'} {g['name']} ({g['run']}): {g['text']}" for g in res["gates"]]
    lines += [f"  note: {n}" for n in res["notes"]]
    lines.append(f"  {_verdict(res)} Report: {out / 'report.html'} ({out / 'report.md'}, {out / 'evaluation.json'})")
    return "\n".join(lines) + "\n"
