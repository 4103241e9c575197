"""The topic and frame layout of the bags make-bag writes (and a vehicle records with the same names):

/cameras/<cam>/image_raw            sensor_msgs/Image (or .../image_raw/compressed)
/cameras/<cam>/camera_info          sensor_msgs/CameraInfo
/lidar/points                       sensor_msgs/PointCloud2
/ground_truth/detections            vision_msgs/Detection3DArray
/ground_truth/map/<class>           nav_msgs/OccupancyGrid
"""

from __future__ import annotations

LIDAR_FRAME = "lidar_top"
BASE_FRAME = "base_link"
ODOM_FRAME = "odom"  # /tf odom -> base_link: the ego motion of a driven scene (make-bag --ego-speed)
LIDAR_TOPIC = "/lidar/points"
GT_TOPIC = "/ground_truth/detections"
# the same boxes as autoware_perception_msgs/DetectedObjects: their velocities (vision_msgs has none)
GT_OBJECTS_TOPIC = "/ground_truth/objects"
GT_MAP_PREFIX = "/ground_truth/map/"


def camera_frame(name: str) -> str:
    return name.lower()


def image_topic(name: str, compressed: bool = False) -> str:
    return f"/cameras/{camera_frame(name)}/image_raw" + ("/compressed" if compressed else "")


def info_topic(name: str) -> str:
    return f"/cameras/{camera_frame(name)}/camera_info"
