"""The ``vmtool`` command line: one small module per subcommand.

Heavy libraries (torch, librosa, msaf) are imported inside command bodies, so
``vmtool --help`` and shell completion stay fast.
"""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from vmtool import __version__


class _Group(TyperGroup):
    """Records the raw arguments so commands can store the exact command line."""

    def parse_args(self, ctx, args):
        ctx.meta["vmtool_argv"] = list(args)
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_Group,
    name="vmtool",
    help="Recommend music for a video (and videos for music) from content and structure.\n\n"
    "Subcommands read and write HDF5 files, so they chain in shell pipelines and Makefiles.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vmtool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """vmtool: video-to-music recommendation toolkit."""


from vmtool.cli import align as _align  # noqa: E402
from vmtool.cli import analyze_structure as _analyze_structure  # noqa: E402
from vmtool.cli import demo as _demo  # noqa: E402
from vmtool.cli import extract as _extract  # noqa: E402
from vmtool.cli import import_ as _import  # noqa: E402
from vmtool.cli import index as _index  # noqa: E402
from vmtool.cli import info as _info  # noqa: E402
from vmtool.cli import label as _label  # noqa: E402
from vmtool.cli import merge as _merge  # noqa: E402
from vmtool.cli import rank as _rank  # noqa: E402
from vmtool.cli import render as _render  # noqa: E402
from vmtool.cli import embed as _embed  # noqa: E402
from vmtool.cli import evaluate as _evaluate  # noqa: E402
from vmtool.cli import segment as _segment  # noqa: E402
from vmtool.cli import train as _train  # noqa: E402

for _mod in (_extract, _import, _label, _merge, _segment, _train, _embed, _index, _rank, _align, _render, _evaluate, _analyze_structure, _info, _demo):
    _mod.register(app)


def main() -> None:
    """Run the command line on ``sys.argv`` (ends with ``SystemExit``, as typer's apps do)."""
    import os
    import sys

    from vmtool.cli._common import HARD_EXIT

    try:
        app(prog_name="vmtool")
    finally:
        if HARD_EXIT:
            # after a write that failed for lack of space, HDF5's exit handlers can crash the
            # interpreter (segmentation fault, exit 139); the output is already discarded
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(HARD_EXIT[-1])


def console_main() -> None:
    """The ``vmtool`` program (console script, ``python -m vmtool``): :func:`main`, then the
    process ends with the command's exit code as soon as its exit handlers have run
    (:func:`_end_at_once`). Code that calls :func:`main` itself keeps the usual exit."""
    import atexit

    ended: list[int] = []
    # only as the first exit handler (so run last): one registered before the command
    # started (e.g. coverage measuring this process) must still run
    if getattr(atexit, "_ncallbacks", lambda: 1)() == 0:
        atexit.register(_end_at_once, ended)
    try:
        main()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            ended.append(exc.code or 0)
        raise


def _end_at_once(ended: list[int]) -> None:
    """End the process with the command's exit code, without the interpreter's teardown.

    Runs last among the exit handlers: the command has finished, its outputs are
    written and closed, and the handlers registered after this one have run (the forked
    segmentation process stopped, temporary directories removed, logs flushed). What a
    normal exit does after that is free every module and object, numba's compiled code
    and OpenBLAS's threads: 0.2-0.3 s of a one-file ``vmtool rank`` on 2 cores
    (docs/performance.md, "Start-up"), for nothing. Not skipped when the command did not
    end with an exit code, when stdout or stderr cannot be flushed (the normal exit
    reports it), or while an HDF5 file is open (HDF5's own exit handler closes it); not
    registered at all when another exit handler was registered before the command
    started (it would be skipped).
    """
    import os
    import sys

    if not ended:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    h5py = sys.modules.get("h5py")
    if h5py is not None:
        try:
            if h5py.h5f.get_obj_count(h5py.h5f.OBJ_ALL, h5py.h5f.OBJ_FILE):
                return
        except Exception:  # noqa: BLE001 - cannot tell: the normal exit closes what is open
            return
    os._exit(ended[-1])
