"""ROS-free core: numpy data types, geometry, pre/post-processing and backends."""
