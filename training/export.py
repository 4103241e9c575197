"""Export a trained checkpoint to one ONNX file per stage, and write the golden outputs for CI.

    python -m training.export --checkpoint bevfusion-tiny-ref.pt --frame-json PATH/frame.json
    python -m training.export --model engines/voxelnet/model.yaml --checkpoint bevfusion-voxelnet-ref.pt \
        --frame-json PATH/frame.json --golden test/data/golden_voxelnet.npz

Golden: for a fixed generated scene, every stage's output from PyTorch (a fixed random subset of
elements plus summary statistics, to keep the file small) and the decoded boxes. The CI test runs
the ONNX Runtime pipeline on the same inputs and compares stage by stage, without torch. A voxel
model's scene is the last frame of scenes.drive (its sweeps densified), and its sparse encoder is
exported in Autoware's plugin-op contract with batch norm folded into the weights.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bevfusion_ros.core.model import ModelSpec, load_model
from bevfusion_ros.core.pipeline.postprocess import decode_boxes
from bevfusion_ros.tools.data import scenes
from training.data import SampleMaker, SweepSequenceMaker, load_rig
from training.model import BevFusionTiny, voxel_based
from training.sparse_conv import SparseEncoder, export_encoder
from training.train import MODEL_YAML, build_index

GOLDEN_SEED = 20_000_001
SUBSET = 4096


def stage_modules(model: BevFusionTiny) -> dict[str, nn.Module]:
    return {
        "camera.backbone": model.camera_backbone,
        "camera.vtransform": model.vtransform,
        "lidar.backbone": model.lidar_backbone,
        "fuser": model.fuser,
        "head.bbox": model.box_head,
        "head.map": model.map_head,
    }


def export(
    model: BevFusionTiny,
    spec: ModelSpec,
    example: dict[str, np.ndarray],
    opset: int = 17,
    directory: Path | None = None,
) -> list[Path]:
    """One ONNX file per stage, where the model YAML points (or as ``directory``/<file>); their paths."""
    model.eval()
    paths = []
    for name, module in stage_modules(model).items():
        stage = spec.stage(name)
        path = spec.path(stage) if directory is None else directory / stage.file
        paths.append(path)
        if isinstance(module, SparseEncoder):
            ins = tuple(torch.from_numpy(example[t.name]) for t in stage.inputs)
            export_encoder(module, *ins, path, output=stage.outputs[0].name)
            print(f"{name}: {path} {path.stat().st_size / 1e6:.2f} MB")
            continue
        args = tuple(torch.zeros(t.shape) for t in stage.inputs)
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=[t.name for t in stage.inputs],
            output_names=[t.name for t in stage.outputs],
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
        print(f"{name}: {path} {path.stat().st_size / 1e6:.2f} MB")
    return paths


def golden_inputs(spec: ModelSpec, frame_json: str) -> dict[str, np.ndarray]:
    """The model's inputs for the golden scene, made by the runtime's own pre-processing."""
    rig = load_rig(frame_json, spec.cameras)
    if voxel_based(spec):
        maker = SweepSequenceMaker(spec, rig)
        scene, cloud = scenes.drive(GOLDEN_SEED, spec.lidar.sweeps, frames=1)[-1]
        sample = maker.sample(scene, cloud)
        return {"images": sample["images"][None], "voxels": sample["voxels"], "coors": sample["coors"]}
    images, pillars, _, _ = SampleMaker(spec, rig).inputs(scenes.generate_scene(GOLDEN_SEED))
    return {"images": images, "lidar_pillars": pillars}


@torch.no_grad()
def golden(model: BevFusionTiny, spec: ModelSpec, inputs: dict[str, np.ndarray], out: Path) -> None:
    model.eval()
    t: dict[str, torch.Tensor] = {k: torch.from_numpy(v) for k, v in inputs.items()}
    t["camera_feature"], t["camera_depth"] = model.camera_backbone(t["images"])
    t["camera_bev"] = model.bevpool(t["camera_feature"], t["camera_depth"])
    t["camera_bev_feature"] = model.vtransform(t["camera_bev"])
    lidar = spec.stage("lidar.backbone")
    t[lidar.outputs[0].name] = model.lidar_backbone(*(t[i.name] for i in lidar.inputs))
    t["fused"] = model.fuser(t["camera_bev_feature"], t["lidar_bev_feature"])
    box_names = model.box_tensors
    t.update(zip(box_names, model.box_head(t["fused"]), strict=True))
    t["map_probs"] = model.map_head(t["fused"])
    rng = np.random.default_rng(0)
    data: dict[str, np.ndarray] = {"seed": np.array(GOLDEN_SEED)}
    for k, v in t.items():
        a = v.numpy().astype(np.float32)
        idx = np.sort(rng.choice(a.size, min(SUBSET, a.size), replace=False))
        data[f"{k}/index"] = idx
        data[f"{k}/values"] = a.reshape(-1)[idx]
        data[f"{k}/stats"] = np.array([a.mean(), a.std(), np.abs(a).max()], np.float64)
        data[f"{k}/shape"] = np.array(a.shape)
    dets = decode_boxes({k: t[k].numpy() for k in box_names}, spec.post, spec.class_names)
    data["boxes/centers"], data["boxes/sizes"], data["boxes/yaw"] = dets.centers, dets.sizes, dets.yaw
    data["boxes/scores"], data["boxes/labels"] = dets.scores, dets.labels
    data["boxes/velocities"] = dets.velocities
    np.savez_compressed(out, **data)
    print(f"golden: {out} ({out.stat().st_size / 1e3:.0f} kB, {len(dets)} boxes)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--frame-json", required=True)
    ap.add_argument("--model", default=str(MODEL_YAML))
    ap.add_argument(
        "--golden", default=str(Path(__file__).resolve().parents[1] / "test" / "data" / "golden_reference.npz")
    )
    args = ap.parse_args()
    torch.manual_seed(0)
    spec = load_model(args.model, check_files=False)
    model = BevFusionTiny(spec, build_index(spec, args.frame_json))
    model.load_state_dict(torch.load(args.checkpoint, map_location="cpu"))
    model.eval()
    if isinstance(model.lidar_backbone, SparseEncoder):
        model.lidar_backbone.fold_norms()
    inputs = golden_inputs(spec, args.frame_json)
    export(model, spec, inputs)
    Path(args.golden).parent.mkdir(parents=True, exist_ok=True)
    golden(model, spec, inputs, Path(args.golden))
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
    main()
