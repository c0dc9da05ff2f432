"""Options shared by ``vmtool rank``, ``align`` and ``evaluate``."""

from __future__ import annotations

import enum
from typing import Annotated, Optional

import typer

from vmtool.errors import ParameterError


class Direction(str, enum.Enum):
    v2m = "v2m"
    m2v = "m2v"


def method_callback(value: str) -> str:
    """Check ``--method`` (``name`` or ``name:indel``): a bad value is a usage error."""
    from vmtool.ranking.methods import parse_method

    try:
        return parse_method(value).label
    except ParameterError as exc:
        raise typer.BadParameter(exc.reason) from None


def _as_usage_error(parse, value):
    """Run ``parse(value)`` (a library parser); its ParameterError becomes a usage error (exit 2)."""
    try:
        parse(value)
    except ParameterError as exc:
        raise typer.BadParameter(exc.reason) from None
    return value


def methods_callback(value: str) -> str:
    from vmtool.ranking.methods import parse_methods

    return _as_usage_error(parse_methods, value)


def scenarios_callback(value: Optional[list[str]]) -> Optional[list[str]]:
    from vmtool.ranking.evaluate import parse_scenarios

    return value if value is None else _as_usage_error(parse_scenarios, value)


def directions_callback(value: str) -> str:
    from vmtool.ranking.evaluate import parse_directions

    return _as_usage_error(parse_directions, value)


def query_segments_callback(value: Optional[str]) -> Optional[str]:
    """``--query-segments`` names one of segment's methods, with its parameters as
    ``METHOD:KEY=VALUE,...``: anything else is a usage error."""
    if value is None:
        return value
    from vmtool.segmentation import registry

    def check(spec: str) -> str:
        if spec.partition(":")[0].strip() not in registry.names():
            raise ParameterError(f"unknown segmentation method {spec!r}; methods: {', '.join(registry.names())}")
        # checks what is given; the catalog's recorded parameters fill in the rest (a
        # catalog segmented with fixed windows gives their length)
        registry.parse_spec(spec)
        return spec

    return _as_usage_error(check, value)


def segmentation_methods(incomplete: str) -> list[str]:
    """Completions of ``--query-segments``: the registered segmentation methods."""
    from vmtool.segmentation import registry

    return [name for name in registry.names() if name.startswith(incomplete)]


QuerySegmentsOpt = Annotated[Optional[str], typer.Option(
    "--query-segments", metavar="METHOD[:KEY=VALUE,...]", callback=query_segments_callback,
    autocompletion=segmentation_methods,
    help="Segment a media query with this method instead of the catalog's (e.g. transnet for a video without "
         "sound; fixed:window=5 for 5-s windows; transnet:threshold=0.3).")]


def pair_scorer_for(catalog, methods, device: str):
    """The catalog model's pair classifier when a method is ``head`` (BCE models), else None."""
    from vmtool.ranking.methods import parse_methods

    if not any(m.name == "head" for m in parse_methods(methods)):
        return None
    from vmtool.embed import pair_scorer

    return pair_scorer(catalog, device)
