"""One module per ``bevfusion-ros`` subcommand (argparse + run); imported only by ``tools.cli``."""
