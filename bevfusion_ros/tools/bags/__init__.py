"""rosbag2 I/O: reading and writing, the topic layout, frames out of a bag, deterministic replay."""
