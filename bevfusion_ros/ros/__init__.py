"""The thin rclpy layer: message conversion, transport settings, nodes."""
