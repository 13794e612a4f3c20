"""`edgedet` command line: a thin click layer over the library.

Each command lives in its own module and calls one library function. User
mistakes (:class:`edgedet.errors.EdgeDetError`) print one line on stderr and exit
non-zero; Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import contextlib
import sys
import warnings

import click

from edgedet import __version__
from edgedet.errors import EdgeDetError, first_line

# name -> "module:attribute", imported only when the command runs. `exporters.*` entries are the
# torch tier: named here as strings, so the runtime package never imports it (tests/test_tiers.py).
COMMANDS = {
    "export": "exporters.cli:export_cmd",
    "infer": "edgedet.cli.infer:infer_cmd",
    "eval": "edgedet.cli.evaluate:eval_cmd",
    "bench": "edgedet.cli.bench:bench_cmd",
    "demo": "exporters.cli:demo_cmd",
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
            # e.g. a module half-imported when Ctrl-C came, then reported as missing
            if _SIGINT_SEEN:
                _interrupted()
            click.echo(f"edgedet: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            _interrupted()
        except Exception:
            # a library turned the KeyboardInterrupt into its own error (e.g. mid-import)
            if _SIGINT_SEEN:
                _interrupted()
            raise

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """Usage errors as one line (click prints Usage/Try/Error); Python warnings as one line
        each."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        with _one_line_warnings(), _note_sigint():
            try:
                super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            except click.exceptions.Exit as exc:
                sys.exit(exc.exit_code)
            except click.ClickException as exc:
                where = (
                    f" (see `edgedet {exc.ctx.info_name} --help`)"
                    if getattr(exc, "ctx", None) and exc.ctx.parent is not None
                    else " (see `edgedet --help`)"
                )
                click.echo(f"edgedet: error: {exc.format_message()}{where}", err=True)
                sys.exit(exc.exit_code)
            except (click.exceptions.Abort, KeyboardInterrupt):
                _interrupted()
        sys.exit(0)


_SIGINT_SEEN = False


def _interrupted():
    click.echo("edgedet: interrupted; finished outputs were kept, none is half-written", err=True)
    sys.exit(130)


@contextlib.contextmanager
def _note_sigint():
    """Remember that Ctrl-C was pressed, so an error a library raised in its place still exits
    130."""
    import signal
    import threading

    global _SIGINT_SEEN
    _SIGINT_SEEN = False  # per run (tests invoke the CLI many times in one process)
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        global _SIGINT_SEEN
        _SIGINT_SEEN = True
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def _one_line_warnings():
    """Warnings reach the terminal as one `edgedet: warning:` line each, without source lines;
    library deprecation notices and numpy floating-point chatter are not the user's concern."""

    def show(message, category, filename, lineno, file=None, line=None):
        click.echo(f"edgedet: warning: {first_line(message, None) or category.__name__}", err=True)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        for quiet in (
            DeprecationWarning,
            PendingDeprecationWarning,
            FutureWarning,
            RuntimeWarning,
            ImportWarning,
        ):
            warnings.simplefilter("ignore", quiet)
        warnings.showwarning = show
        yield


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgedet")
def cli() -> None:
    """Export, quantise, build, run and benchmark object detectors for edge GPUs."""


def main() -> None:
    cli(prog_name="edgedet")


if __name__ == "__main__":
    main()
