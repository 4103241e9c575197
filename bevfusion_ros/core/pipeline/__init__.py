"""The model pipeline: pre-processing, bevpool, the stages through a backend, decoding."""
