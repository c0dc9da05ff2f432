"""Per-clip metadata for the structure study: BPM, time signature, music and video genre.

The metadata is a CSV file with a header line. The Harmonix Set's ``metadata.csv``
(columns ``File``, ``BPM``, ``Time Signature``, ``Genre``, among others) is read as it
is; other layouts name their columns with a mapping ``FIELD=HEADER``
(:func:`parse_column_mapping`). Fields:

================  ==================  ==================================================
field             default header      meaning
================  ==================  ==================================================
``file``          ``File``            the clip: its item id, file name or file stem
``bpm``           ``BPM``             tempo in quarter notes per minute
``time_signature``  ``Time Signature``  ``4|4``, ``6|8``, ``3/4``... (``N`` alone: N/4)
``music_genre``   ``Genre``           any text (empty: unknown)
``video_genre``   ``Video Genre``     any text (empty: unknown)
================  ==================  ==================================================

Headers match case-insensitively, ignoring surrounding spaces. Only ``file`` is
required; a default column that is absent leaves its field unknown for every clip.

The Harmonix BPM counts quarter notes whatever the metre: for ``0036_breakingthegirl``
(``6|8``, 89 BPM) the annotated bars last 2.02 s = 3 x 60/89 s, six eighth-note beats.
So a bar holds ``numerator x 4 / denominator`` beats of ``60 / BPM`` seconds
(:attr:`TimeSignature.beats_per_bar`: 4 for ``4|4``, 3 for ``6|8`` and ``3|4``).
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vmtool.errors import ParameterError, VmtoolError

__all__ = [
    "FIELDS",
    "DEFAULT_COLUMNS",
    "TimeSignature",
    "MetadataRow",
    "Metadata",
    "parse_time_signature",
    "parse_column_mapping",
    "read_metadata",
    "UNKNOWN",
]

FIELDS = ("file", "bpm", "time_signature", "music_genre", "video_genre")
DEFAULT_COLUMNS = {
    "file": "File",
    "bpm": "BPM",
    "time_signature": "Time Signature",
    "music_genre": "Genre",
    "video_genre": "Video Genre",
}
#: the genre of a clip without one
UNKNOWN = "unknown"
#: tempi outside this range (BPM) are refused as implausible
BPM_RANGE = (10.0, 400.0)

_TS = re.compile(r"^\s*(\d{1,2})\s*(?:[|/:]\s*(\d{1,2}))?\s*$")


@dataclass(frozen=True)
class TimeSignature:
    """A time signature such as 4/4 or 6/8.

    Attributes
    ----------
    numerator, denominator : int
    text : str
        As written.
    """

    numerator: int
    denominator: int
    text: str = ""

    @property
    def beats_per_bar(self) -> float:
        """Quarter-note beats (``60 / BPM`` s each) per bar: ``numerator * 4 / denominator``."""
        return self.numerator * 4.0 / self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def parse_time_signature(text: str) -> TimeSignature:
    """Parse ``"4|4"`` (Harmonix), ``"6/8"``, ``"3:4"`` or ``"3"`` (3/4).

    Raises
    ------
    ParameterError
        Not ``N``, ``N|D`` or ``N/D`` with ``1 <= N <= 32`` and ``D`` one of 1, 2, 4,
        8, 16, 32.

    Examples
    --------
    >>> parse_time_signature("6|8").beats_per_bar, parse_time_signature(" 3/4 ").beats_per_bar
    (3.0, 3.0)
    """
    m = _TS.match(str(text))
    if not m:
        raise ParameterError(f"time signature {text!r} is not N|D or N/D (e.g. 4|4, 6/8)")
    num = int(m.group(1))
    den = int(m.group(2)) if m.group(2) is not None else 4
    if not 1 <= num <= 32 or den not in (1, 2, 4, 8, 16, 32):
        raise ParameterError(f"time signature {text!r}: expected 1 to 32 beats over 1, 2, 4, 8, 16 or 32")
    return TimeSignature(num, den, str(text).strip())


def parse_column_mapping(specs: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """The CSV header of every field: the defaults updated by ``FIELD=HEADER`` specs.

    Raises
    ------
    ParameterError
        A spec without ``=``, an unknown field, or an empty header.

    Examples
    --------
    >>> parse_column_mapping(["file=name", "video_genre = Style"])["video_genre"]
    'Style'
    """
    out = dict(DEFAULT_COLUMNS)
    if specs is None:
        return out
    items = specs.items() if isinstance(specs, Mapping) else []
    if not isinstance(specs, Mapping):
        parsed = []
        for s in specs:
            if "=" not in str(s):
                raise ParameterError(f"column mapping {s!r} is not FIELD=HEADER (fields: {', '.join(FIELDS)})")
            k, v = str(s).split("=", 1)
            parsed.append((k, v))
        items = parsed
    for k, v in items:
        k, v = str(k).strip().lower().replace("-", "_").replace(" ", "_"), str(v).strip()
        if k not in FIELDS:
            raise ParameterError(f"unknown metadata field {k!r}; fields: {', '.join(FIELDS)}")
        if not v:
            raise ParameterError(f"metadata field {k!r}: empty column name")
        out[k] = v
    return out


@dataclass
class MetadataRow:
    """One clip's metadata; None where the CSV has no usable value.

    ``problems`` lists the values that could not be used (a bad BPM, an unreadable
    time signature), in words.
    """

    file: str
    line: int
    bpm: float | None = None
    time_signature: TimeSignature | None = None
    time_signature_text: str = ""
    music_genre: str | None = None
    video_genre: str | None = None
    problems: list[str] = field(default_factory=list)


def _key(name: str) -> str:
    """Stem of a file name or path (directories and the last extension dropped)."""
    base = str(name).strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return stem if dot and stem and 1 <= len(ext) <= 5 and ext.isalnum() else base


@dataclass
class Metadata:
    """Rows of a metadata CSV, looked up by clip.

    Attributes
    ----------
    path : str
    columns : dict
        Field -> header actually used (fields whose column is absent are left out).
    missing : list of str
        Default columns that the file does not have (their fields stay unknown).
    rows : list of MetadataRow
    duplicates : list of str
        ``file`` values given more than once (the first row is used).
    """

    path: str
    columns: dict[str, str]
    missing: list[str]
    rows: list[MetadataRow]
    duplicates: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._exact: dict[str, MetadataRow] = {}
        self._stem: dict[str, MetadataRow] = {}
        self._fold: dict[str, MetadataRow] = {}
        for r in self.rows:
            self._exact.setdefault(r.file, r)
            self._stem.setdefault(_key(r.file), r)
            self._fold.setdefault(_key(r.file).casefold(), r)
        self.used: set[int] = set()

    def match(self, item_id: str, source: str = "") -> MetadataRow | None:
        """The row of a clip: its ``file`` equals the item id, the source's file name or
        stem (extensions and directories ignored), compared exactly, then case-blind."""
        src = str(source).replace("\\", "/").rsplit("/", 1)[-1]
        keys = [k for k in (item_id, src, _key(src)) if k]
        row = None
        for k in keys:
            row = self._exact.get(k) or self._stem.get(_key(k))
            if row is not None:
                break
        if row is None:
            for k in keys:
                row = self._fold.get(_key(k).casefold())
                if row is not None:
                    break
        if row is not None:
            self.used.add(id(row))
        return row

    def unused(self) -> list[MetadataRow]:
        """Rows no clip matched so far."""
        return [r for r in self.rows if id(r) not in self.used]


def read_metadata(path: str | os.PathLike, columns: Iterable[str] | Mapping[str, str] | None = None) -> Metadata:
    """Read a metadata CSV (comma, semicolon or tab separated; UTF-8, a BOM is fine).

    Parameters
    ----------
    path : path
    columns : mapping or iterable of ``FIELD=HEADER``, optional
        Headers of the fields (see :func:`parse_column_mapping`); a header named
        explicitly must exist.

    Returns
    -------
    Metadata
        Values that cannot be used (a BPM that is not a number in 10..400, a time
        signature :func:`parse_time_signature` refuses) are None in their row, with a
        note in ``row.problems``; empty genres are None.

    Raises
    ------
    VmtoolError
        The file is missing or not UTF-8 text.
    ParameterError
        No header line, no ``file`` column, or an explicitly mapped column that is absent.
    """
    p = Path(path)
    if not p.is_file():
        raise VmtoolError("metadata file not found", p)
    mapping = parse_column_mapping(columns)
    explicit = set(mapping.items()) - set(DEFAULT_COLUMNS.items())
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise VmtoolError(f"metadata is not UTF-8 text ({exc.reason} at byte {exc.start})", p) from None
    except OSError as exc:
        raise VmtoolError(f"cannot read the metadata ({exc.strerror})", p) from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise ParameterError("metadata has no header line", p)
    first = lines[0]
    delim = max((",", ";", "\t"), key=first.count) if any(c in first for c in ",;\t") else ","
    reader = csv.reader(lines, delimiter=delim)
    header = [h.strip() for h in next(reader)]
    folded = {h.casefold(): i for i, h in reversed(list(enumerate(header)))}
    idx: dict[str, int] = {}
    used: dict[str, str] = {}
    missing: list[str] = []
    for fld, name in mapping.items():
        i = folded.get(name.casefold())
        if i is None:
            if fld == "file" or (fld, name) in explicit:
                raise ParameterError(
                    f"metadata has no column {name!r} (field {fld}); columns: {', '.join(header)}; "
                    f"map another one with --column {fld}=HEADER", p)
            missing.append(name)
            continue
        idx[fld] = i
        used[fld] = header[i]
    rows: list[MetadataRow] = []
    seen: set[str] = set()
    dups: list[str] = []
    for lineno, rec in enumerate(reader, start=2):
        if not rec or all(not c.strip() for c in rec):
            continue

        def get(fld: str, rec=rec) -> str:
            i = idx.get(fld)
            return rec[i].strip() if i is not None and i < len(rec) else ""

        name = get("file")
        if not name:
            continue
        if name in seen:
            dups.append(name)
            continue
        seen.add(name)
        row = MetadataRow(file=name, line=lineno)
        raw = get("bpm")
        if raw:
            try:
                bpm = float(raw)
            except ValueError:
                bpm = math.nan
            if math.isfinite(bpm) and BPM_RANGE[0] <= bpm <= BPM_RANGE[1]:
                row.bpm = bpm
            else:
                row.problems.append(f"BPM {raw!r} is not a tempo in {BPM_RANGE[0]:g}..{BPM_RANGE[1]:g}")
        raw = get("time_signature")
        row.time_signature_text = raw
        if raw:
            try:
                row.time_signature = parse_time_signature(raw)
            except ParameterError as exc:
                row.problems.append(exc.reason)
        row.music_genre = get("music_genre") or None
        row.video_genre = get("video_genre") or None
        rows.append(row)
    return Metadata(path=str(p), columns=used, missing=missing, rows=rows, duplicates=dups)
