"""The ``facelift`` console script: subcommands dispatch to small command dataclasses."""

from __future__ import annotations

import sys

import tyro

from facelift.cli.common import run_command
from facelift.cli.evaluate import BenchCommand, EvalCommand
from facelift.cli.reconstruct import ReconstructCommand, ReconstructViewsCommand
from facelift.cli.render import DemoCommand, RenderCommand
from facelift.cli.serve import ServeCommand
from facelift.cli.synth import SynthCommand
from facelift.cli.train import TrainCommand

COMMANDS = {
    "bench": BenchCommand,
    "demo": DemoCommand,
    "eval": EvalCommand,
    "reconstruct": ReconstructCommand,
    "reconstruct-views": ReconstructViewsCommand,
    "render": RenderCommand,
    "serve": ServeCommand,
    "synth": SynthCommand,
    "train": TrainCommand,
}


def version_line() -> str:
    """``facelift 0.1.0 (torch 2.13.0+cpu, CUDA: none)``: what ``facelift --version`` prints."""
    import torch

    import facelift

    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CUDA: none"
    if torch.version.cuda:
        cuda += f", {torch.cuda.device_count()} device(s)" if torch.cuda.is_available() else ", no device"
    return f"facelift {facelift.__version__} (torch {torch.__version__}, {cuda})"


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; returns the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["--version"], ["-V"]):
        print(version_line())
        return 0
    command = tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv, prog="facelift")
    return run_command(command.run)


def entrypoint() -> None:
    sys.exit(main())


if __name__ == "__main__":  # python -m facelift.cli.main
    entrypoint()
