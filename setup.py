from glob import glob
from os.path import isdir, isfile

from setuptools import find_packages, setup

PACKAGE = "bevfusion_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={f"{PACKAGE}.core.cuda": ["*.cu"]},  # compiled at run time by pycuda
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml") + glob("config/*.rviz")),
        (f"share/{PACKAGE}/config/engines", glob("config/engines/*.yaml")),
        (f"share/{PACKAGE}/engines", glob("engines/*.yaml") + glob("engines/*.md")),
        (f"share/{PACKAGE}/engines/reference", [p for p in glob("engines/reference/*") if isfile(p)]),
        (f"share/{PACKAGE}/engines/reference/int8", glob("engines/reference/int8/*.onnx")),
        (f"share/{PACKAGE}/engines/voxelnet", glob("engines/voxelnet/*")),
        *((f"share/{PACKAGE}/{d}", glob(f"{d}/*")) for d in sorted(glob("engines/examples/*")) if isdir(d)),
    ],
    python_requires=">=3.10",
    # numpy/opencv/yaml come from the ROS distribution's rosdep keys on a vehicle (package.xml);
    # on a pip-only machine requirements/constraints.txt pins them.
    install_requires=["numpy", "PyYAML", "tqdm"],
    extras_require={
        "bags": ["rosbags", "opencv-python-headless"],
        # the reference backend (on a Jetson: NVIDIA's onnxruntime-gpu wheel for JetPack)
        "onnx": ["onnxruntime", "onnx"],  # onnx: cutting a graph with TensorRT-plugin ops
        "viz": ["matplotlib"],
        # the monitor's power/load/temperature source on a desktop or datacenter NVIDIA GPU
        "nvml": ["nvidia-ml-py"],
        # evaluate over many bags as Ray tasks, on this machine or a cluster (tools/eval/fleet.py)
        "fleet": ["ray"],
        # training and export of the reference model (training/); never needed at run time
        "train": ["torch", "onnx"],
        # onnx: the FAKE TensorRT parser in test/fakes reads the ONNX files
        "dev": [
            "pytest", "pytest-timeout", "hypothesis", "ruff", "mypy", "types-PyYAML", "types-tqdm", "import-linter",
            "onnx",
        ],
    },
    zip_safe=False,
    maintainer="bevfusion_ros maintainers",
    maintainer_email="bevfusion_ros@example.com",
    description="BEVFusion camera+LiDAR perception for ROS 2 on Jetson AGX Orin",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "bevfusion-ros = bevfusion_ros.tools.cli:main",
            "bag_player = bevfusion_ros.tools.commands.play:main",
            "topic_probe = bevfusion_ros.tools.commands.probe:main",
            "perception_node = bevfusion_ros.ros.perception_node:main",
            "monitor_node = bevfusion_ros.ros.monitor_node:main",
        ],
    },
)
