"""Replay a recorded bag on the vehicle computer with the shared-memory transport and probe it.

    ros2 launch bevfusion_ros replay.launch.py bag:=/data/drive_0001 rate:=1.0

Sets the middleware, the Fast DDS profile and the malloc tunables for every process it starts (see
config/fastdds_shm.xml for why; middleware:='' / fastdds_profile:='' keep the environment's), runs
``topic_probe`` and the package's bag player, which starts once the probe has subscribed; the probe
reports per-topic counts, sizes and transport latency when the bag ends.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bevfusion_ros.ros.transport import launch_middleware


def generate_launch_description():
    share = get_package_share_directory("bevfusion_ros")
    bag = LaunchConfiguration("bag")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 folder to play"),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
            DeclareLaunchArgument("middleware", default_value="rmw_fastrtps_cpp", description="'' = environment's"),
            DeclareLaunchArgument(
                "fastdds_profile",
                default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                description="Fast DDS XML profile ('' = the environment's)",
            ),
            OpaqueFunction(function=launch_middleware),
            SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "SYSTEM_DEFAULT"),
            Node(
                package="bevfusion_ros",
                executable="topic_probe",
                name="topic_probe",
                output="screen",
                arguments=["--bag", bag],
            ),
            Node(
                package="bevfusion_ros",
                executable="bag_player",
                name="bag_player",
                output="screen",
                arguments=[bag, "--rate", LaunchConfiguration("rate"), "--wait-subscribers", "1", "--delay", "1.0"],
            ),
        ]
    )
