"""``bevfusion-ros overlay``: the real frame's LiDAR points projected into its six camera images."""

from bevfusion_ros.tools.infer import add_overlay_arguments as add_arguments
from bevfusion_ros.tools.infer import run_overlay as run

__all__ = ["add_arguments", "run"]
