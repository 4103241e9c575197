"""Evaluation of recorded and replayed runs, and its reports."""
