"""Queries of ``vmtool rank`` and ``vmtool align``, and their flows.

A query is an item of a vmtool file (``file.h5#item-id``: its embeddings are read from
that file) or a media file, processed exactly as a catalog's items were (same
extractors, segmentation and model, read from the catalog) by
:func:`vmtool.pipeline.process_media`. :class:`CatalogRanker` ranks a catalog for one
query after another (the catalog, its filters, index and model are loaded once);
:func:`align_pair` aligns two sides. The commands only parse options and format what
these return. This module sits above :mod:`vmtool.ranking` (which never reaches into
models or extractors).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from vmtool.errors import ParameterError, VmtoolError
from vmtool.progress import Progress
from vmtool.ranking.catalog import catalog_model, load_item, parse_item_ref
from vmtool.ranking.segments import SegmentSet
from vmtool.store import is_hdf5

__all__ = ["load_query", "QueryLoader", "is_item_ref", "recipe_for", "check_compatible", "CatalogRanker",
           "RankedQuery", "align_pair", "PairAlignment"]


def is_item_ref(spec: str | os.PathLike) -> bool:
    """Whether *spec* is ``file.h5#item-id`` (not a media file)."""
    return parse_item_ref(spec) is not None


def load_query(
    spec: str | os.PathLike,
    modality: str,
    *,
    catalog: str | os.PathLike | None = None,
    device: str = "auto",
    segments: str | None = None,
    progress: Progress | None = None,
) -> SegmentSet:
    """One query's *modality* embeddings as a one-item :class:`SegmentSet`.

    Parameters
    ----------
    spec : str or path
        ``file.h5#item-id``, or a media file.
    modality : {"audio", "video"}
        Which side of the query to use (``video`` for v2m).
    catalog : path, optional
        The catalog whose recipe processes a media query (required for media).
    device : str
        Torch device for processing a media query.
    segments : str, optional
        Segmentation method for a media query instead of the catalog's (e.g.
        ``transnet`` for a video without sound).

    Raises
    ------
    VmtoolError
        No such file or item, the query lacks *modality*, or a media query cannot be
        processed (no catalog recipe, unreadable media).
    """
    return QueryLoader(catalog, device=device, segments=segments).load(spec, modality, progress=progress)


class QueryLoader:
    """Loads queries against one catalog: its :class:`~vmtool.pipeline.Recipe` (with the
    model and the extractors) is read on the first media query (or by :meth:`start`) and
    kept for the next ones.

    Parameters are those of :func:`load_query`.
    """

    def __init__(self, catalog: str | os.PathLike | None, *, device: str = "auto", segments: str | None = None):
        self.catalog = None if catalog is None else Path(catalog)
        self.device = device
        self.segments = segments
        self._recipe = None

    def recipe(self):
        """The catalog's recipe (read once)."""
        if self._recipe is None:
            from vmtool.pipeline import Recipe

            self._recipe = Recipe.from_catalog(self.catalog)
        return self._recipe

    def start(self, specs: Sequence[str | os.PathLike]) -> bool:
        """Start, ahead of the queries *specs*, what their processing will wait for.

        With a media file among them, the process that segments media queries beside
        this one (:func:`vmtool.pipeline.start_segmenter`) is forked now and imports the
        segmentation's libraries while the caller does other work (loads the catalog).
        Returns whether it will segment them. A :class:`VmtoolError` or ``OSError`` on
        the way (a catalog without a recipe, a fork refused) starts nothing and is not
        raised: the query reports what is wrong, in its turn.
        """
        if self.catalog is None or all(is_item_ref(s) for s in specs):
            return False
        from vmtool.pipeline import start_segmenter

        try:
            return start_segmenter(self.recipe(), device=self.device, segments=self.segments)
        except (VmtoolError, OSError):
            return False

    def load(self, spec: str | os.PathLike, modality: str, *, progress: Progress | None = None) -> SegmentSet:
        """As :func:`load_query`."""
        catalog = self.catalog
        ref = parse_item_ref(spec)
        if ref is not None:
            item = load_item(ref[0], ref[1], modality)
            if catalog is not None and Path(catalog).resolve() != ref[0].resolve():
                _warn_if_other_model(ref[0], Path(catalog))
            return item
        path = Path(spec)
        if not path.exists():
            raise VmtoolError("no such file (a query is a media file or file.h5#item-id)", path)
        if path.is_dir():
            raise VmtoolError("is a directory, expected a media file or file.h5#item-id", path)
        if is_hdf5(path):
            raise ParameterError("is a vmtool file: name one of its items as FILE.h5#ITEM-ID", path)
        if catalog is None:
            raise ParameterError("a media query needs a catalog to be processed like (pass --catalog)", path)
        from vmtool.pipeline import process_media

        q = process_media(path, self.recipe(), device=self.device, segments=self.segments, progress=progress)
        segs = q.segments.get(modality)
        clip = q.clip.get(modality)
        if segs is None and clip is None:
            have = sorted(set(q.segments) | set(q.clip))
            raise ParameterError(f"the query has no {modality} embeddings (it has: {', '.join(have) or 'none'})",
                                 path)
        dim = (segs if segs is not None else clip[None]).shape[-1]
        if segs is None:
            segs = np.zeros((0, dim), dtype=np.float32)
            spans = np.zeros((0, 2))
        else:
            segs = np.asarray(segs)
            spans = np.asarray(q.spans, dtype=np.float64).reshape(-1, 2)
            if len(spans) != len(segs):
                spans = np.stack([np.arange(len(segs)), np.arange(len(segs)) + 1.0], axis=1)
        clip_row = np.full((1, dim), np.nan, dtype=np.float32) if clip is None else np.asarray(clip).reshape(1, dim)
        return SegmentSet(segs, np.array([0, len(segs)]), spans=spans, clip=clip_row, ids=[path.stem],
                          sources=[str(path)], sha256s=[q.sha256], modality=modality)


def recipe_for(query: str | os.PathLike, target: str | os.PathLike,
               catalog: str | os.PathLike | None = None) -> Path | None:
    """The catalog whose recipe processes media sides of an alignment.

    *catalog* when given, else the file of whichever side is ``FILE.h5#ITEM-ID``
    (None when both sides are media: then processing them fails with a clear error).
    """
    if catalog is not None:
        return Path(catalog)
    for spec in (target, query):
        ref = parse_item_ref(spec)
        if ref is not None:
            return ref[0]
    return None


def check_compatible(query: SegmentSet, targets: SegmentSet, where: str | os.PathLike) -> None:
    """Raise a clear error when the query's embeddings cannot be compared with *targets*.

    Raises
    ------
    ParameterError
        Different embedding widths (naming *where*).
    """
    if query.dim != targets.dim:
        raise ParameterError(f"dimension mismatch: the query has {query.dim}-d {query.modality or ''} embeddings, "
                             f"this file {targets.dim}-d ones (embedded by another model?)", where)


def _warn_if_other_model(query_file: Path, catalog: Path) -> None:
    try:
        a, b = catalog_model(query_file), catalog_model(catalog)
    except VmtoolError:
        return
    if a and b and a.get("sha256") and b.get("sha256") and a["sha256"] != b["sha256"]:
        warnings.warn(f"{query_file} and {catalog} were embedded by different models "
                      f"({a.get('name')}, {b.get('name')}): their distances mean little", RuntimeWarning, stacklevel=3)


@dataclass
class RankedQuery:
    """One query ranked against a catalog (:meth:`CatalogRanker.rank`).

    Attributes
    ----------
    query : str
        The query as given (media file or ``FILE.h5#ITEM-ID``).
    item : SegmentSet
        Its embeddings.
    ranking : vmtool.ranking.Ranking
        The results, best first.
    sections : list of Section or None
        Per result, the best section of the track under the query (None where none
        could be placed, and for every result of a ranking read through an index).
    """

    query: str
    item: SegmentSet
    ranking: Any
    sections: list = field(default_factory=list)


class CatalogRanker:
    """Ranks a catalog's tracks for videos (v2m) or its videos for tracks (m2v), one query after another.

    Everything that does not depend on the query is done once, here: the catalog's
    embeddings (or its index), the ``--where`` selection and the metadata, the hubness
    reference, the pair classifier, and (on the first media query, or here when told
    of one: ``queries``) the recipe with the model and the extractors.

    Parameters
    ----------
    catalog : path
        A catalog written by ``vmtool embed``.
    method : str
        Ranking method (``name`` or ``name:indel``; see :mod:`vmtool.ranking.methods`).
    k : int
        Number of results.
    direction : {"v2m", "m2v"}
    prefilter : int, optional
        Rank by centroid first and re-rank the best *prefilter* with *method*. With an
        index next to the catalog (``vmtool index``) only those candidates are read.
    exclude_self : bool
        Leave out catalog items with the query's content (same file SHA-256).
    hubness : str or vmtool.ranking.hubness.Hubness, optional
        ``--hubness``: ``none`` (default), ``auto`` (the method's default,
        :func:`vmtool.ranking.hubness.resolve_hubness`), ``csls[:K]``.
    length : float, optional
        Seconds of music needed for each result's best section (default: the query's length).
    filters : sequence of vmtool.filters.Filter
        Parsed ``--where`` filters: all apply, before any distance is computed.
    device : str
        A resolved torch device.
    segments : str, optional
        Segmentation of media queries instead of the catalog's.
    stream : bool, optional
        Read the targets' segment embeddings from disk chunk by chunk for every query
        instead of loading them (exact; bounded memory). Default: when they would take
        more than half the available memory (:func:`vmtool.ranking.index.too_large`;
        both sides of the catalog with a CSLS correction, whose terms take the other
        side as reference). Not with an index (``--prefilter``), which reads only the candidates.
    queries : sequence of str, optional
        The queries that will follow, when known: with a media file among them, its
        segmentation's process starts before the catalog is loaded
        (:meth:`QueryLoader.start`), so that its imports run meanwhile.

    Attributes
    ----------
    selection : vmtool.filters.Selection or None
        What the filters kept (None without filters).
    meta : the catalog's metadata (titles and artists of the results).
    index : the index read instead of the catalog, or None.
    streamed : bool
        The targets are streamed from disk for each query.
    target_modality : {"audio", "video"}
    hubness : the correction applied (``auto`` resolved).
    terms_note : str or None
        With CSLS, after the first query: whether the targets' terms were read from
        ``CATALOG.h5.csls`` or computed (and stored there or not).
    """

    def __init__(self, catalog: str | os.PathLike, *, method: str = "btrace-mean", k: int = 10,
                 direction: str = "v2m", prefilter: int | None = None, exclude_self: bool = False,
                 hubness=None, length: float | None = None, filters: Sequence = (), device: str = "cpu",
                 segments: str | None = None, stream: bool | None = None, queries: Sequence[str] = ()):
        from vmtool.filters import catalog_filter
        from vmtool.ranking import load_catalog, parse_method, sides
        from vmtool.ranking.hubness import parse_hubness, resolve_hubness

        qmod, tmod = sides(direction)
        hub = resolve_hubness(hubness, method, prefilter=prefilter, catalog=catalog, query_modality=qmod)
        explicit = parse_hubness(hubness).active  # csls asked for, not auto's choice
        self.catalog = catalog
        self.method, self.k, self.direction, self.prefilter = method, k, direction, prefilter
        self.exclude_self, self.length, self.device, self.hubness = exclude_self, length, device, hub
        self.query_modality, self.target_modality = qmod, tmod
        self.grids = self._rhythm_grids(parse_method(method))
        self.rhythm_only = parse_method(method).name == "rhythm"
        self.loader = QueryLoader(catalog, device=device, segments=segments)
        if self.rhythm_only:  # no embeddings, no model: the tracks' beats only
            # the fit reads the video's shot cuts (TransNetV2) and places no section
            for given, option in ((length, "--length"), (segments, "--query-segments")):
                if given is not None:
                    raise ParameterError(f"method 'rhythm' takes no {option} (it reads the video's shot cuts "
                                         "and places no best section)")
            self.index = self.targets = self.pair_scorer = self.terms = self.terms_note = None
            self.streamed = False
            self.selection, self.meta = catalog_filter(catalog, list(filters), ids=self.grids[0])
            return
        clip_level = parse_method(method).level == "clip"
        started = self.loader.start(queries)  # before the catalog is loaded: a media query's imports run meanwhile
        # with --prefilter and an index next to the catalog, a query reads only its candidates
        # (filters, hubness correction and the pair classifier need the whole catalog in memory)
        self.index = None
        if prefilter is not None and parse_method(method).name not in ("centroid", "clip", "head") \
                and not filters and not explicit:
            from vmtool.ranking.index import index_path, open_index

            if index_path(catalog).exists():
                self.index = open_index(catalog, tmod)
        self.streamed = False
        if self.index is None and not clip_level and stream is not False:
            from vmtool.ranking.index import too_large

            self.streamed = bool(stream) or too_large(catalog, tmod)
            if not self.streamed and self.hubness.active and too_large(catalog, (tmod, qmod)):
                # CSLS computes the targets' terms against the catalog's other side, then held
                # beside them: unless the catalog's sidecar holds the terms already
                from vmtool.ranking.hubness import terms_stored

                self.streamed = not terms_stored(catalog, tmod, parse_method(method).learned, self.hubness.k)
            if self.streamed and (explicit or parse_method(method).name == "head" or self.grids is not None):
                what = "--hubness" if explicit else f"method {parse_method(method).label}"
                raise ParameterError(f"{what} needs the catalog in memory; it cannot be streamed from disk (--in-memory)")
            if self.streamed:
                self.hubness = resolve_hubness(hubness, method, streamed=True)
        self.targets = load_catalog(catalog, tmod, segments=not clip_level, clip=clip_level) \
            if self.index is None and not self.streamed else None
        self.pair_scorer = self._pair_scorer() if parse_method(method).name == "head" else None
        # the targets' CSLS terms, on the first query: from the catalog's sidecar, or computed once and stored there
        self.terms, self.terms_note = None, None
        self._load_reference = lambda: load_catalog(catalog, qmod, segments=not clip_level, clip=clip_level)
        self.selection, self.meta = catalog_filter(catalog, list(filters),
                                                   ids=None if self.targets is None else self.targets.ids)
        if started:
            self._ahead()

    def _ahead(self) -> None:
        """Load the ranking method's compiled kernels now (from numba's cache, by ranking one
        catalog item against the first two), while a forked process segments the media
        query: this process would wait for it later, and the first ranking then finds them
        loaded. Nothing else is computed or written, and nothing raised: a catalog that the
        query's ranking cannot use is reported by that ranking, in its turn."""
        from vmtool.ranking import rank
        from vmtool.ranking.methods import parse_method

        cat, m = self.targets, parse_method(self.method)
        if cat is None or len(cat) == 0 or m.name == "head" or self.grids is not None:
            return
        if m.level == "clip" and cat.clip is None:
            return
        usable = np.flatnonzero(np.isfinite(cat.clip).all(axis=1) if m.level == "clip" else cat.lengths > 0)
        if len(usable):
            try:
                rank(cat.subset(usable[:1]), cat.subset(usable[:2]), self.method, k=1, device=self.device,
                     hubness="none")
            except VmtoolError:
                pass

    def _rhythm_grids(self, m):
        """The catalog's ids and beat grids when *m* uses the rhythm fit (else None)."""
        if not m.uses_rhythm:
            return None
        from vmtool.ranking.rhythm import require_grids, track_grids

        if self.direction != "v2m":
            raise ParameterError(f"method {m.label!r} ranks tracks for a video: use --direction v2m")
        if self.prefilter is not None:
            raise ParameterError(f"method {m.label!r} takes no --prefilter (it reads no embeddings index)")
        if m.name == "rhythm" and self.hubness.active:
            raise ParameterError("method 'rhythm' takes no hubness correction (it compares no embeddings)")
        ids, grids = track_grids(self.catalog)
        require_grids(grids, self.catalog)
        return ids, grids

    def _rank_rhythm(self, query: str) -> RankedQuery:
        """Method ``rhythm``: the query's cuts against every track's beats, no embeddings."""
        import time

        from vmtool.ranking.rhythm import rank_rhythm
        from vmtool.store import open_collection, sha256_file
        from vmtool.structure.rhythm_fit import query_rhythm, rhythm_distances

        t0 = time.perf_counter()
        video = query_rhythm(query, device=self.device)
        ids, grids = self.grids
        try:
            d = rhythm_distances(video, grids)
        except ParameterError as exc:
            raise ParameterError(exc.reason, query) from None
        exclude = None if self.selection is None else ~self.selection.keep
        ref = parse_item_ref(query)
        if ref is not None:
            with open_collection(ref[0]) as col:
                sha, source = col.item(col.index(ref[1])).sha256, col.item(col.index(ref[1])).source
            name = ref[1]
        else:
            sha, source, name = (sha256_file(query) if self.exclude_self else ""), str(query), Path(query).stem
        with open_collection(self.catalog) as col:
            items = col.items()
        if self.exclude_self:
            same = np.array([it.sha256 == sha for it in items], dtype=bool)
            exclude = same if exclude is None else exclude | same
        res = rank_rhythm(d, ids, [it.source for it in items], k=self.k, exclude=exclude,
                          seconds=time.perf_counter() - t0)
        item = SegmentSet(np.zeros((0, 1), dtype=np.float32), np.array([0, 0]), ids=[name], sources=[source],
                          sha256s=[sha], modality=self.query_modality)
        return RankedQuery(query, item, res, [None] * len(res.results))

    def _rhythm_of(self, query: str, cat: SegmentSet) -> np.ndarray:
        """``name+rhythm``: the rhythm distance of each target of *cat* (NaN without beats)."""
        from vmtool.structure.rhythm_fit import query_rhythm, rhythm_distances

        ids, grids = self.grids
        try:
            d = dict(zip(ids, rhythm_distances(query_rhythm(query, device=self.device), grids)))
        except ParameterError as exc:
            raise ParameterError(exc.reason, query) from None
        return np.array([d.get(i, np.nan) for i in cat.ids], dtype=np.float64)

    def _pair_scorer(self):
        from vmtool.embed import pair_scorer

        return pair_scorer(self.catalog, self.device, model=self.loader.recipe().model(self.device))

    def rank(self, query: str, *, progress: Progress | None = None) -> RankedQuery:
        """Rank the catalog for *query* (a media file or ``FILE.h5#ITEM-ID``).

        Raises
        ------
        VmtoolError
            The query cannot be read or processed, or was embedded by another model.
        """
        from vmtool.ranking import rank
        from vmtool.ranking.section import sections

        if self.rhythm_only:
            return self._rank_rhythm(query)
        q = self.loader.load(query, self.query_modality, progress=progress)
        own = q.sha256s[0] if self.exclude_self else None
        if self.index is not None:
            from vmtool.ranking.index import rank_with_index

            res = rank_with_index(q, self.catalog, self.index, self.method, k=self.k, prefilter=self.prefilter,
                                  device=self.device, exclude_sha256=own)
            return RankedQuery(query, q, res, [None] * len(res.results))
        if self.streamed:
            from vmtool.ranking.index import rank_streamed

            res = rank_streamed(q, self.catalog, self.target_modality, self.method, k=self.k, exclude_sha256=own,
                                exclude=None if self.selection is None else ~self.selection.keep, device=self.device)
            return RankedQuery(query, q, res, [None] * len(res.results))
        cat = self.targets
        check_compatible(q, cat, self.catalog)
        exclude = None if self.selection is None else ~self.selection.keep
        if self.exclude_self:
            same = np.array([s == own for s in cat.sha256s], dtype=bool)
            exclude = same if exclude is None else exclude | same
        if self.hubness.active and self.terms is None:
            from vmtool.ranking.hubness import catalog_target_terms
            from vmtool.ranking.methods import parse_method

            self.terms, self.terms_note = catalog_target_terms(
                self.catalog, cat, parse_method(self.method).learned, self.hubness.k, device=self.device,
                pair_scorer=self.pair_scorer, load_reference=self._load_reference)
        res = rank(q, cat, self.method, k=self.k, prefilter=self.prefilter, exclude=exclude, device=self.device,
                   hubness=self.hubness.label, terms=self.terms, pair_scorer=self.pair_scorer,
                   rhythm=None if self.grids is None else self._rhythm_of(query, cat))
        return RankedQuery(query, q, res, sections(res, q, cat, self.catalog, self.length))


@dataclass
class PairAlignment:
    """What :func:`align_pair` gives: both sides, their track metadata and the alignment."""

    query: str
    target: str
    direction: str
    query_item: SegmentSet
    target_item: SegmentSet
    alignment: Any  # vmtool.ranking.Alignment
    query_fields: dict[str, Any]
    target_fields: dict[str, Any]
    plot: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``vmtool align --format json`` prints."""
        qm, tm = self.query_fields, self.target_fields
        return {"query": self.query, "target": self.target, "direction": self.direction,
                "query_title": qm.get("title"), "query_artist": qm.get("artist"),
                "target_title": tm.get("title"), "target_artist": tm.get("artist"), **self.alignment.to_dict()}


def align_pair(
    query: str,
    target: str,
    *,
    method: str = "nw-dtw",
    direction: str = "v2m",
    catalog: str | os.PathLike | None = None,
    device: str = "auto",
    segments: str | None = None,
    plot: str | os.PathLike | None = None,
    progress: Progress | None = None,
) -> PairAlignment:
    """Align a video with a track, segment by segment (``vmtool align``).

    Parameters
    ----------
    query, target : str
        ``FILE.h5#ITEM-ID`` or media files: the video and the track with v2m, the
        reverse with m2v. A media file is processed like the catalog of the other side,
        or like *catalog* (:func:`recipe_for`).
    method : str
        An alignment method (``nw-dtw``, ``sw-dtw``, ``btrace``...; ``name:indel``).
    segments : str, optional
        Segmentation of media sides instead of the catalog's.
    plot : path, optional
        Draw the distance matrix with the path there (checked before any work).

    Raises
    ------
    VmtoolError
        A method that does not align, a side that cannot be read or processed, sides of
        other widths, or a side without segment embeddings.
    """
    from vmtool.device import resolve_device
    from vmtool.ranking import align, parse_method, sides
    from vmtool.ranking.methods import ALIGNMENT_METHODS

    if plot is not None:
        from vmtool.ranking.plot import check_plot_path

        check_plot_path(plot)  # before embedding the query and the target
    m = parse_method(method)
    if m.uses_rhythm:
        raise ParameterError(f"method {m.label!r}: the rhythm fit ranks (vmtool rank), it does not align")
    if not m.aligns:
        raise ParameterError(f"method {m.name!r} does not align sequences; use one of {', '.join(ALIGNMENT_METHODS)}")
    qmod, tmod = sides(direction)
    loader = QueryLoader(recipe_for(query, target, catalog), device=resolve_device(device), segments=segments)
    q = loader.load(query, qmod, progress=progress)
    t = loader.load(target, tmod, progress=progress)
    check_compatible(q, t, target)
    for side, s in (("query", q), ("target", t)):
        if s.lengths[0] == 0:
            raise ParameterError(f"the {side} has no {s.modality} segment embeddings to align",
                                 query if side == "query" else target)
    al = align(q.segments(0), t.segments(0), m, query_spans=q.spans_of(0), target_spans=t.spans_of(0))
    if plot is not None:
        from vmtool.ranking.plot import plot_alignment

        plot_alignment(al, plot, title=f"{q.ids[0]} vs {t.ids[0]}: {al.method.label}, distance {al.distance:.4g}",
                       query_label=f"{qmod} ({q.ids[0]})", target_label=f"{tmod} ({t.ids[0]})")
    from vmtool.metadata import fields_of

    return PairAlignment(query, target, direction, q, t, al, fields_of(query), fields_of(target),
                         None if plot is None else Path(plot))
