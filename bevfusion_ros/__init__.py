"""BEVFusion camera+LiDAR perception for ROS 2.

``bevfusion_ros.core`` never imports rclpy; ``bevfusion_ros.ros`` is the thin rclpy layer;
``bevfusion_ros.tools`` holds the console scripts.
"""

__version__ = "0.1.0"
