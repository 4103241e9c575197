"""Sensor data the pipeline reads: cameras and their rig, calibration, geometry, images, point clouds."""
