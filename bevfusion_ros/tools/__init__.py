"""Console scripts (``bevfusion-ros <command>``)."""
