"""Scoring: nuScenes metrics (devkit) and run-to-run agreement."""
