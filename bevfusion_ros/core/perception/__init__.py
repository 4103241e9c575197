"""The perception node's logic without ROS: its config, sync policies, configure step, runners, health."""
