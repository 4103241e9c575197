"""The monitor's logic without ROS: hardware sources (tegrastats, sysfs, NVML), judgement, power."""
