"""BEVFusion perception on the vehicle: the perception node (lifecycle, autostarts) and the monitor.

    ros2 launch bevfusion_ros bevfusion.launch.py calibration_file:=/etc/vehicle/calibration.yaml
    ros2 launch bevfusion_ros bevfusion.launch.py model:=/opt/models/bevfusion.yaml backend:=tensorrt

Arguments: params_file (ros__parameters YAML, default config/perception.yaml), model (model YAML,
'' = the bundled reference model), backend (onnxruntime | tensorrt), calibration_file, use_sim_time
(true when replaying a bag with --clock), fastdds_profile (Fast DDS XML, see config/fastdds_shm.xml),
monitor (start the monitor node, default true), monitor_params_file (default config/monitor.yaml).
Values given here override the params files.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from bevfusion_ros.ros.transport import GLIBC_TUNABLES


def generate_launch_description():
    share = get_package_share_directory("bevfusion_ros")
    arg = LaunchConfiguration
    use_sim_time = ParameterValue(arg("use_sim_time"), value_type=bool)
    overrides = {
        "model": arg("model"),
        "backend": arg("backend"),
        "calibration_file": arg("calibration_file"),
        "use_sim_time": use_sim_time,
    }
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "params_file",
                default_value=os.path.join(share, "config", "perception.yaml"),
                description="perception node parameters (ros__parameters YAML)",
            ),
            DeclareLaunchArgument("model", default_value="", description="model YAML ('' = bundled reference model)"),
            DeclareLaunchArgument("backend", default_value="onnxruntime", description="onnxruntime | tensorrt"),
            DeclareLaunchArgument("calibration_file", description="calibration YAML (lidar->camera, K per camera)"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
            DeclareLaunchArgument(
                "fastdds_profile",
                default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                description="Fast DDS XML profile ('' for the middleware default)",
            ),
            DeclareLaunchArgument(
                "monitor",
                default_value="true",
                description="start the monitor node (power, load, temperature, latency diagnostics)",
            ),
            DeclareLaunchArgument(
                "monitor_params_file",
                default_value=os.path.join(share, "config", "monitor.yaml"),
                description="monitor node parameters (ros__parameters YAML)",
            ),
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", arg("fastdds_profile")),
            SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", arg("fastdds_profile")),
            SetEnvironmentVariable("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
            SetEnvironmentVariable("GLIBC_TUNABLES", GLIBC_TUNABLES),
            LifecycleNode(
                package="bevfusion_ros",
                executable="perception_node",
                name="bevfusion_perception",
                namespace="",
                output="screen",
                parameters=[arg("params_file"), overrides],
            ),
            Node(
                package="bevfusion_ros",
                executable="monitor_node",
                name="bevfusion_monitor",
                output="screen",
                parameters=[arg("monitor_params_file"), {"use_sim_time": use_sim_time}],
                condition=IfCondition(arg("monitor")),
            ),
        ]
    )
