"""One module per CLI verb, each with `add_arguments(parser)` and `main(args) -> int`."""
