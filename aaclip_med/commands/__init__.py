"""One module per ``aaclip-med`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
