"""`python -m processor.cli` runs `nsm`, for environments where the script is not on PATH."""

from processor.cli import main

main(prog_name="nsm")
