"""Replay a recorded bag on the vehicle computer with the shared-memory transport and probe it.

    ros2 launch bevfusion_ros replay.launch.py bag:=/data/drive_0001 rate:=1.0

Sets the Fast DDS profile and malloc tunables for every process it starts (see
config/fastdds_shm.xml for why), plays the bag with ``ros2 bag play`` and runs ``topic_probe``,
which reports per-topic counts, sizes and transport latency when the bag ends.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from bevfusion_ros.ros.transport import GLIBC_TUNABLES


def generate_launch_description():
    share = get_package_share_directory("bevfusion_ros")
    bag = LaunchConfiguration("bag")
    profile = LaunchConfiguration("fastdds_profile")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 folder to play"),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback speed factor"),
            DeclareLaunchArgument(
                "fastdds_profile",
                default_value=os.path.join(share, "config", "fastdds_shm.xml"),
                description="Fast DDS XML profile ('' for the middleware default)",
            ),
            SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile),
            SetEnvironmentVariable("FASTRTPS_DEFAULT_PROFILES_FILE", profile),
            SetEnvironmentVariable("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp"),
            SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "SYSTEM_DEFAULT"),
            SetEnvironmentVariable("GLIBC_TUNABLES", GLIBC_TUNABLES),
            Node(
                package="bevfusion_ros",
                executable="topic_probe",
                name="topic_probe",
                output="screen",
                arguments=["--bag", bag],
            ),
            ExecuteProcess(cmd=["ros2", "bag", "play", bag, "--rate", LaunchConfiguration("rate")], output="screen"),
        ]
    )
