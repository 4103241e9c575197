"""BEVFusion perception on the vehicle: the perception node (lifecycle, autostarts) and the monitor.

    ros2 launch bevfusion_ros bevfusion.launch.py calibration_file:=/etc/vehicle/calibration.yaml
    ros2 launch bevfusion_ros bevfusion.launch.py model:=/opt/models/bevfusion.yaml backend:=tensorrt
    ros2 launch bevfusion_ros bevfusion.launch.py calibration_file:=BAG/calibration.yaml bag:=BAG rate:=0.5

Arguments: params_file (ros__parameters YAML, default config/perception.yaml), model (model YAML,
'' = the bundled reference model), backend (onnxruntime | tensorrt), calibration_file, autostart
(configure + activate at start; false: drive it with ``ros2 lifecycle set``), use_sim_time,
monitor (start the monitor node) and monitor_params_file, bag / rate / lidar_topic (play a bag
into the nodes with the package's player once the node subscribes to lidar_topic; rosbag2 is not
needed), middleware (RMW_IMPLEMENTATION, default rmw_fastrtps_cpp) and fastdds_profile (default
config/fastdds_shm.xml): give '' to either to keep what the environment says. Values given here
override the params files.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import Condition, LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import LifecycleNode, Node
from launch_ros.parameter_descriptions import ParameterValue

from bevfusion_ros.ros.transport import launch_middleware


def generate_launch_description():
    share = get_package_share_directory("bevfusion_ros")
    arg = LaunchConfiguration
    use_sim_time = ParameterValue(arg("use_sim_time"), value_type=bool)
    overrides = {
        "model": arg("model"),
        "backend": arg("backend"),
        "calibration_file": arg("calibration_file"),
        "autostart": ParameterValue(arg("autostart"), value_type=bool),
        "use_sim_time": use_sim_time,
    }
    args = [
        ("params_file", os.path.join(share, "config", "perception.yaml"), "perception node parameters (YAML)"),
        ("model", "", "model YAML ('' = bundled reference model)"),
        ("backend", "onnxruntime", "onnxruntime | tensorrt"),
        ("calibration_file", None, "calibration YAML (lidar->camera, K per camera)"),
        ("autostart", "true", "configure and activate at start (false: ros2 lifecycle set ...)"),
        ("use_sim_time", "false", "use /clock (bag replay)"),
        ("monitor", "true", "start the monitor node (power, load, temperature, latency diagnostics)"),
        ("monitor_params_file", os.path.join(share, "config", "monitor.yaml"), "monitor node parameters (YAML)"),
        ("bag", "", "rosbag2 folder to play into the nodes ('' = none)"),
        ("rate", "1.0", "playback speed factor of bag"),
        ("loop", "1", "play bag this many times"),
        ("lidar_topic", "/lidar/points", "the player starts once the node subscribes to this topic"),
        (
            "wait_subscribers",
            "1",
            "the player starts once this many subscribers match lidar_topic (the node, plus a test or recorder)",
        ),
        ("middleware", "rmw_fastrtps_cpp", "RMW_IMPLEMENTATION ('' = keep the environment's)"),
        ("fastdds_profile", os.path.join(share, "config", "fastdds_shm.xml"), "Fast DDS XML ('' = environment's)"),
    ]
    return LaunchDescription(
        [
            *(DeclareLaunchArgument(n, default_value=d, description=h) for n, d, h in args),
            OpaqueFunction(function=launch_middleware),
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
                prefix="nice -n 10",  # a watcher must not take CPU from the node it watches
            ),
            Node(
                package="bevfusion_ros",
                executable="bag_player",
                name="bag_player",
                output="screen",
                arguments=[
                    arg("bag"),
                    "--rate",
                    arg("rate"),
                    "--loop",
                    arg("loop"),
                    "--wait-subscribers",
                    arg("wait_subscribers"),
                    "--wait-topics",
                    arg("lidar_topic"),
                    "--wait-sensors",
                    "--wait-timeout",
                    "600",
                    "--delay",
                    "1.0",
                ],
                # bag != '': a predicate, as Humble has no NotEqualsSubstitution and Kilted deprecates
                # LaunchConfigurationNotEquals
                condition=Condition(predicate=lambda context: arg("bag").perform(context) != ""),
            ),
        ]
    )
