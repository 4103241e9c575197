"""Input data for the tools: the real nuScenes frame, generated scenes, self-test frames."""
