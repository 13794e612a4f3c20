"""`edgedet` command line: a thin click layer over the library.

Each command lives in its own module and calls one library function. User
mistakes (:class:`edgedet.errors.EdgeDetError`) print one line on stderr and exit
non-zero; Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import sys

import click

from edgedet import __version__
from edgedet.errors import EdgeDetError

COMMANDS = {
    "export": "edgedet.cli.export:export_cmd",
    "infer": "edgedet.cli.infer:infer_cmd",
    "eval": "edgedet.cli.evaluate:eval_cmd",
    "bench": "edgedet.cli.bench:bench_cmd",
    "demo": "edgedet.cli.demo:demo_cmd",
    "doctor": "edgedet.cli.doctor:doctor_cmd",
    "compare": "edgedet.cli.compare:compare_cmd",
    "quantize": "edgedet.cli.quantize:quantize_cmd",
    "check-qdq": "edgedet.cli.quantize:check_qdq_cmd",
    "attach-nms": "edgedet.cli.attach:attach_cmd",
    "build": "edgedet.cli.build:build_cmd",
    "inspect": "edgedet.cli.inspect:inspect_cmd",
    "plugin": "edgedet.cli.plugin:plugin_group",
    "deploy": "edgedet.cli.deploy:deploy_group",
    "serve": "edgedet.cli.serve:serve_cmd",
}


class LazyGroup(click.Group):
    """Imports a command's module only when that command runs (keeps `edgedet --help` fast)."""

    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(__import__(module, fromlist=[attr]), attr)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except EdgeDetError as exc:
            click.echo(f"edgedet: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("edgedet: interrupted (no partial output was written)", err=True)
            sys.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgedet")
def cli() -> None:
    """Export, quantise, build, run and benchmark object detectors for edge GPUs."""


def main() -> None:
    cli(prog_name="edgedet")


if __name__ == "__main__":
    main()
