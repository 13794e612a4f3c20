"""Option groups and parsing helpers shared by CLI commands.

One decorator per option that several commands take (Polygraphy's tools/args argument groups are the
model): the same name, help text, parsing and validation everywhere.
- ``backend_options``: ``--backend`` and ``--providers`` (which runtime opens the artifact);
  ``providers_option`` alone where the backend follows the file type.
- ``json_report_option``: ``--json PATH`` writes the command's report as JSON to PATH, in every
  command (as trtexec's ``--exportTimes=<file>``); ``print_json_option``: ``--print-json`` prints it
  to stdout instead of the text report (commands whose report is quick to make: doctor, inspect).
"""

from __future__ import annotations

import click

from edgedet.errors import InputError


def int_list(text: str, name: str) -> list[int]:
    """'1,8' -> [1, 8]; InputError naming the option otherwise."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise InputError(
            f"{name} takes comma-separated integers such as 1,8; got '{text}'"
        ) from None
    if not values or any(v < 1 for v in values):
        raise InputError(f"{name} needs positive integers; got '{text}'")
    return values


def echo_progress(message: str) -> None:
    click.echo(f"  {message}", err=True)


class Fraction(click.ParamType):
    """A finite number in 0..1 (scores, IoUs, matched fractions): NaN would silently disable a
    filter."""

    name = "fraction"

    def convert(self, value, param, ctx):
        import math

        try:
            x = float(value)
        except (TypeError, ValueError):
            self.fail(
                f"{value!r} is not a number; give a fraction in 0..1 such as 0.25", param, ctx
            )
        if not math.isfinite(x) or not 0.0 <= x <= 1.0:
            self.fail(f"{value!r} is not in 0..1; give a fraction such as 0.25", param, ctx)
        return x


FRACTION = Fraction()
POSITIVE = click.IntRange(min=1)
NON_NEGATIVE = click.IntRange(min=0)


def read_class_names(path: str) -> list[str]:
    """A --class-names file: UTF-8 text, one name per line; InputError naming the file otherwise."""
    from pathlib import Path

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"--class-names file {path} cannot be read ({exc.strerror})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(
            f"--class-names file {path} is not UTF-8 text; give a text file with one name per line"
        ) from None
    if "\x00" in text:
        raise InputError(
            f"--class-names file {path} is binary; give a text file with one name per line"
        )
    names = [n.strip() for n in text.splitlines() if n.strip()]
    if not names:
        raise InputError(f"--class-names file {path} holds no names; give one name per line")
    return names


BACKENDS = ("auto", "onnxruntime", "tensorrt")
BACKEND_ALIASES = {"ort": "onnxruntime", "trt": "tensorrt"}


class Backend(click.ParamType):
    """auto, onnxruntime or tensorrt (ort and trt accepted), case-insensitive."""

    name = "backend"

    def get_metavar(self, param, ctx=None):
        return "[" + "|".join(BACKENDS) + "]"

    def convert(self, value, param, ctx):
        name = str(value).strip().lower()
        name = BACKEND_ALIASES.get(name, name)
        if name not in BACKENDS:
            self.fail(
                f"unknown backend '{value}'; choose auto, onnxruntime or tensorrt", param, ctx
            )
        return name


class Providers(click.ParamType):
    """'cuda,cpu' -> ('cuda', 'cpu'): short names or full ONNX Runtime provider names, in order.
    Whether each is installed here is checked when the model opens."""

    name = "providers"

    def convert(self, value, param, ctx):
        from edgedet.backends.onnxruntime import PROVIDER_ALIASES  # the short names' one home

        if isinstance(value, tuple):
            return value
        names = tuple(n.strip() for n in str(value).split(",") if n.strip())
        if not names:
            self.fail(f"'{value}' names no provider; give e.g. cpu or cuda,cpu", param, ctx)
        for n in names:
            if n.lower() not in PROVIDER_ALIASES and not n.endswith("ExecutionProvider"):
                short = ", ".join(PROVIDER_ALIASES)
                self.fail(
                    f"'{n}' is not an ONNX Runtime provider; use {short} or a full name "
                    "such as CPUExecutionProvider",
                    param,
                    ctx,
                )
        return names


PROVIDERS_HELP = (
    "ONNX Runtime providers in order of preference: cpu, cuda, trt, or full names (e.g. cuda,cpu)."
)
BACKEND_HELP = "auto (from the file type: .engine/.plan/.trt -> tensorrt), onnxruntime or tensorrt."


def providers_option(fn):
    """--providers, for commands whose backend follows the artifact's file type."""
    return click.option("--providers", type=Providers(), help=PROVIDERS_HELP)(fn)


SPINNING_HELP = (
    "ONNX Runtime on the CPU: how idle threads wait. run (default): busy-wait only during a call;"
    " off: sleep (faster when other work shares the cores); on: ONNX Runtime's own default, which"
    " keeps spinning after each call (docs/performance.md)."
)


def backend_options(fn):
    """--backend, --providers and --ort-spinning: which runtime opens the artifact, and ONNX
    Runtime's providers and thread waiting."""
    from edgedet.backends.onnxruntime import SPINNING  # the settings' one home

    fn = click.option(
        "--ort-spinning", "spinning", type=click.Choice(SPINNING), help=SPINNING_HELP
    )(fn)
    fn = providers_option(fn)
    return click.option(
        "--backend", type=Backend(), default="auto", show_default=True, help=BACKEND_HELP
    )(fn)


def load_options(
    artifact,
    backend: str = "auto",
    providers: tuple[str, ...] | None = None,
    spinning: str | None = None,
) -> dict:
    """Keyword arguments for edgedet.load from --backend/--providers/--ort-spinning; InputError when
    an ONNX Runtime option is given for an artifact that runs on TensorRT."""
    from pathlib import Path

    from edgedet.backends import ENGINE_SUFFIXES

    ort = {"providers": list(providers) if providers else None, "spinning": spinning}
    ort = {k: v for k, v in ort.items() if v is not None}
    if not ort:
        return {"backend": backend}
    engine = Path(str(artifact)).suffix.lower() in ENGINE_SUFFIXES
    if backend == "tensorrt" or (backend == "auto" and engine):
        flag = "--providers" if "providers" in ort else "--ort-spinning"
        raise InputError(
            f"{flag} applies to ONNX Runtime, but {artifact} runs on TensorRT; "
            f"drop {flag} or open an ONNX model"
        )
    return {"backend": backend, **ort}


def full_decode_option(fn):
    """--full-decode: every JPEG decoded at full size before the letterbox (edgedet.load's
    ``full_decode``)."""
    return click.option(
        "--full-decode",
        is_flag=True,
        help=(
            "Decode every JPEG at full size before letterboxing. By default a JPEG at least twice"
            " its letterboxed size decodes at 1/2, 1/4 or 1/8 scale, which is faster and moved"
            " nano's mAP by under 0.1 pt (docs/performance.md)."
        ),
    )(fn)


def json_report_option(fn):
    """--json PATH: also write the command's report as JSON to PATH (checked before the run)."""
    return click.option(
        "--json",
        "json_path",
        type=click.Path(dir_okay=False),
        help="Also write the report as JSON to this file.",
    )(fn)


def print_json_option(fn):
    """--print-json: the report as JSON on stdout instead of text (for scripts)."""
    return click.option(
        "--print-json", is_flag=True, help="Print the report as JSON on stdout instead of text."
    )(fn)


def check_json_path(json_path, inputs) -> None:
    """Fail before the run, not after it: --json writable, and none of the command's inputs."""
    if json_path:
        from edgedet.fileio import check_not_input, check_writable

        check_not_input([check_writable(json_path)], inputs)


def write_json_report(json_path, report: dict, err: bool = False) -> None:
    """Write --json's report atomically and say where (on stderr with ``err``: stdout is JSON)."""
    import json

    from edgedet.fileio import write_text_atomic

    write_text_atomic(json_path, json.dumps(report, indent=2, default=str) + "\n")
    click.echo(f"wrote {json_path}", err=err)
