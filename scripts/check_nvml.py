"""On a machine with an NVIDIA GPU: the monitor's NVML source, idle and under load (for issue 6).
python3 scripts/check_nvml.py  (scripts/gpu_tests.sh installs nvidia-ml-py from .carry/wheels)"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from bevfusion_ros.core.monitor.sources import select_source


def main() -> int:
    src = select_source("nvml")
    print(f"source: {src.name} ({getattr(src, 'gpu_name', '')})")
    if src.name != "nvml":
        print(src.snapshot().problems)
        return 1
    idle = src.snapshot()
    code = (
        "import torch, time\nx = torch.randn(8192, 8192, device='cuda')\nprint('go', flush=True)\n"
        "t = time.time()\nwhile time.time() - t < 8:\n    x = x @ x\n    x = x / x.norm()\n"
        "torch.cuda.synchronize()\n"
    )
    load = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert load.stdout is not None
    load.stdout.readline()  # the GPU is busy from here on
    time.sleep(3)
    busy = max((src.snapshot() for _ in range(10) if time.sleep(0.2) is None), key=lambda s: s.total_w or 0)
    load.wait()
    src.stop()
    for name, s in (("idle", idle), ("busy", busy)):
        print(
            name,
            json.dumps(
                {
                    "total_w": s.total_w,
                    "gpu_load_pct": s.gpu_load_pct,
                    "mem_load_pct": s.emc_load_pct,
                    "temperatures_c": s.temperatures_c,
                    "ram_used_mb": s.ram_used_mb,
                    "problems": s.problems,
                }
            ),
        )
    return 0 if busy.gpu_load_pct and busy.total_w and busy.total_w > (idle.total_w or 0) else 1


if __name__ == "__main__":
    sys.exit(main())
