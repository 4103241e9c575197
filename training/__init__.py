"""Training, export and quantisation of the reference model (torch; the `train` extra).

Never imported by the runtime.
"""
