"""``vmtool embed``: joint-space embeddings of every item, per clip and per segment.

The catalog written here is self-contained: besides the embeddings it stores the
model's inference weights (``/model``, the bytes of a weights-only checkpoint) and the
recipe that produced it (features, segmentation), so ``vmtool rank query.mp4
catalog.h5`` processes a raw query exactly as the catalog was processed, with no other
file (:mod:`vmtool.pipeline`, which runs :class:`Embedder` on the query held in memory).

Clip embeddings: a clip-level model embeds the whole clip; a segment-level model gives
the normalised mean of its segment embeddings (its centroid), the representation it
was validated with. Segment embeddings: each segment of the model's segmentation (or
``segments=``) is embedded like a training window.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output, same_file
from vmtool.batch import Checkpoint
from vmtool.errors import FormatError, ParameterError
from vmtool.labels import copy_labels
from vmtool.metadata import copy_metadata
from vmtool.progress import Progress
from vmtool.segmentation.base import segment_edges
from vmtool.store import CollectionWriter, canonical_json, open_collection, read_kind

__all__ = ["embed", "Embedder", "EmbedReport", "load_catalog_model", "pair_scorer", "EMBEDDING_NAMES"]

EMBEDDING_NAMES = {("audio", "clip"): "audio", ("video", "clip"): "video",
                   ("audio", "segment"): "audio_segments", ("video", "segment"): "video_segments"}


@dataclass
class EmbedReport:
    output: Path
    items: int
    clip: dict[str, int] = field(default_factory=dict)  # modality -> items embedded
    segments: dict[str, int] = field(default_factory=dict)  # modality -> segment rows
    segmentation: str | None = None
    skipped: list[str] = field(default_factory=list)
    reused: int = 0  # items whose embeddings were kept from the existing catalog (resume)
    prototypes: int = 0  # items whose music clip embedding is their track's trained prototype

    def to_dict(self) -> dict[str, Any]:
        return {"output": str(self.output), "items": self.items, "clip": self.clip, "segments": self.segments,
                "segmentation": self.segmentation, "skipped": self.skipped, "reused": self.reused,
                "prototypes": self.prototypes}


def _inference_bytes(data: dict[str, Any]) -> bytes:
    import torch

    keep = {k: v for k, v in data.items() if k != "resume"}
    training = dict(keep.get("training", {}))
    training.pop("history", None)
    keep["training"] = training
    buf = io.BytesIO()
    torch.save(keep, buf)
    return buf.getvalue()


class Embedder:
    """Embeds items of a features collection with a loaded model: the per-item step of
    :func:`embed`, and of :func:`vmtool.pipeline.process_media` for a raw query.

    *coll* is an open :class:`vmtool.store.Collection`, or anything with its read
    interface, such as the one item :class:`vmtool.pipeline.MemoryItem` holds in memory.
    """

    def __init__(self, coll, model, segments: str | None):
        from vmtool.training.data import DataConfig, InputBuilder

        self.model = model
        self.coll = coll
        dcfg = DataConfig.from_dict(model.data_config)
        names = model.data.get("feature_names") or {}
        dcfg.audio_features = list(names.get("audio", dcfg.audio_features))
        dcfg.video_features = list(names.get("video", dcfg.video_features))
        dcfg.stats = list(dcfg.resolved_stats())
        self.level = dcfg.level
        dcfg.level = "clip"  # windows are chosen here, per item
        dcfg.segments = None
        self.builder = InputBuilder(coll, dcfg, optional_modality=True)
        self.modalities = [mod for mod in ("audio", "video") if self.builder.features[mod]]
        if not self.modalities:
            raise ParameterError("none of the model's features is in the file (the model needs "
                                 + "; ".join(f"{m}: {', '.join(names.get(m, []))}" for m in ("audio", "video"))
                                 + ")", coll.path)
        for mod in self.modalities:
            want = model.model_config.audio_dim if mod == "audio" else model.model_config.video_dim
            have = self.builder.input_dim(mod)
            if have != want:
                raise ParameterError(f"{mod} inputs are {have}-d but the model expects {want}-d "
                                     f"(features {', '.join(self.builder.features[mod])})", coll.path)
        _check_features(coll, model)
        self.segmentation = segments
        self.seg = None
        if segments is not None:
            if segments not in coll.names("segmentations"):
                raise ParameterError(f"no segmentation {segments!r} in the file (it has: "
                                     f"{', '.join(coll.names('segmentations')) or 'none'}); run vmtool segment",
                                     coll.path)
            self.seg = coll.ragged("segmentations", segments)

    def item(self, i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]:
        """Clip vectors and segment matrices of item *i* for each modality it has, and the spans."""
        return embed_inputs(self.model, self.level, *self.inputs(i))

    def inputs(self, i: int) -> tuple[dict[str, tuple[np.ndarray | None, np.ndarray | None]], np.ndarray | None]:
        """The model inputs of item *i*: per modality (segment windows, whole clip), and the spans."""
        b = self.builder
        dur = b.duration(i)
        spans = None
        if self.seg is not None and self.seg.present(i):
            bounds = np.asarray(self.seg.rows(i), dtype=np.float64)
            spans = segment_edges(bounds[(bounds > 0) & (bounds < dur)], dur)
        out: dict[str, tuple[np.ndarray | None, np.ndarray | None]] = {}
        for mod in ("audio", "video"):
            if not b.has(i, mod):
                continue
            seg_x = b.inputs(i, mod, spans) if spans is not None else None
            # a segment-level model's clip vector is its segments' centroid (no clip input)
            clip_x = None if (self.level == "segment" and seg_x is not None) else b.inputs(i, mod, np.array([[0.0, dur]]))
            out[mod] = (seg_x, clip_x)
        return out, spans


def embed_inputs(model, level: str, inputs: dict[str, tuple[np.ndarray | None, np.ndarray | None]],
                 spans: np.ndarray | None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray | None]:
    """Clip vectors and segment matrices from the inputs :meth:`Embedder.inputs` gives."""
    clip: dict[str, np.ndarray] = {}
    segs: dict[str, np.ndarray] = {}
    for mod, (seg_x, clip_x) in inputs.items():
        if seg_x is not None:
            segs[mod] = model.embed(mod, seg_x)
        if clip_x is None:
            c = segs[mod].astype(np.float64).mean(0)
            clip[mod] = (c / max(np.linalg.norm(c), 1e-12)).astype(np.float32)
        else:
            clip[mod] = model.embed(mod, clip_x)[0]
    return clip, segs, spans


# --- items embedded on a Dask cluster (vmtool.cluster): the client reads the inputs, the
# workers run the model; the model's inference bytes go to each worker once
_WORKER: dict[str, Any] = {}


def _worker_init(blob: bytes, sha256: str, device: str) -> None:
    import torch

    from vmtool.models.checkpoint import LoadedModel

    data = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    _WORKER["model"] = LoadedModel(Path("model"), data, device, sha256=sha256)


def _worker_run(level: str, inputs, spans):
    return embed_inputs(_WORKER["model"], level, inputs, spans)


class _ClusterTasks:
    """The items to embed as ``(label, args)`` tasks, read from the features file when submitted."""

    def __init__(self, emb: Embedder, todo: list[int]):
        self.emb, self.todo = emb, todo

    def __len__(self) -> int:
        return len(self.todo)

    def __getitem__(self, j: int) -> tuple[str, tuple]:
        i = self.todo[j]
        return self.emb.coll.ids[i], (self.emb.level, *self.emb.inputs(i))


def _on_cluster(emb: Embedder, model, todo: list[int], device: str, scheduler: str,
                progress: Progress, checkpoint: Checkpoint) -> dict[int, tuple]:
    from vmtool.cluster import runner_for

    runner = runner_for(scheduler, progress=progress, checkpoint=checkpoint)
    progress.batch_start(len(todo))
    tasks = _ClusterTasks(emb, todo)
    return {todo[j]: res for j, res in runner(tasks, _worker_run, progress=progress, initializer=_worker_init,
                                              initargs=(_inference_bytes(model.data), model.sha256, device))}


def _check_features(coll, model) -> None:
    """The features file must have been extracted like the model's training file."""
    want = model.data.get("features") or {}
    have = coll.config or {}
    for mod in ("audio", "video"):
        for name in (model.data.get("feature_names") or {}).get(mod, []):
            w = (want.get(mod) or {}).get(name)
            h = (have.get(mod) or {}).get(name)
            if w is not None and h is not None and json.dumps(w, sort_keys=True) != json.dumps(h, sort_keys=True):
                raise ParameterError(f"feature {name!r} was extracted with other settings than the model's "
                                     f"training data (compare 'vmtool info' of both files)", coll.path)
    if want.get("rate") is not None and have.get("rate") is not None and float(want["rate"]) != float(have["rate"]):
        raise ParameterError(f"features are at {have['rate']} Hz but the model was trained at {want['rate']} Hz",
                             coll.path)


def _model_attr(model, segmentation: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "sha256": model.sha256,
        "name": model.path.name,
        "dim": model.dim,
        "level": model.level,
        "config": model.data["config"],
        "feature_names": model.data.get("feature_names"),
        "features": model.data.get("features"),
        "segmentation": segmentation,
    }


@locks_output()
def embed(
    features: str | os.PathLike,
    model_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    segments: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    resume: bool = False,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    progress: Progress | None = None,
    scheduler: str | None = None,
    prototypes: bool = True,
) -> EmbedReport:
    """Embed every item of a features file; write a catalog to *output*.

    Parameters
    ----------
    features : path
        A collection with the features the model was trained on (and the segmentation).
    model_path : path
        A model file written by ``vmtool train``.
    output : path
        The catalog (written atomically; may not be the features file).
    segments : str, optional
        Segmentation for the segment embeddings; default: the model's (segment-level
        models), else the only one... none (clip-level models get clip embeddings only).
    dtype : {"float32", "float16"}
        Storage type of the embeddings.
    resume : bool
        When *output* is a catalog made by the same model (same SHA-256), with the same
        segmentation parameters and storage type, keep its embeddings of every item with
        the same id, SHA-256 and segment boundaries; embed only the others. With
        *scheduler*, also reuse the items a stopped run recorded in *output*'s
        checkpoint (:class:`vmtool.batch.Checkpoint`).
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    scheduler : str, optional
        Run the model on a Dask cluster (see :mod:`vmtool.cluster`): the client reads each
        item's inputs and sends them with its task, so workers need no shared storage.
    prototypes : bool
        For a model trained with one cosface prototype per class of a label column
        (``--loss cosface:class_label=track``, VMCML): the music clip embedding of an item whose class
        the model was trained on is that class's prototype (unit norm), as VMCML retrieves
        seen music; other items, and all with False, go through the music branch.
    """
    from vmtool.models.checkpoint import load_model

    if dtype not in ("float32", "float16"):
        raise ParameterError(f"--dtype must be float32 or float16, got {dtype!r}")
    progress = progress or Progress()
    out = check_output_path(output, inputs=[model_path])
    src = Path(features)
    if same_file(out, src):
        raise ParameterError("the catalog must be a new file, not the features file", out)
    model = load_model(model_path, device)
    seg_info = model.data.get("segmentation")
    if segments is None and seg_info:
        segments = seg_info["method"]
    coll = open_collection(src)
    previous: _Previous | None = None
    try:
        emb = Embedder(coll, model, segments)
        seen = seen_prototypes(model, coll) if prototypes else {}
        n = len(coll)
        rows: dict[tuple[str, str], list[np.ndarray | None]] = {k: [None] * n for k in EMBEDDING_NAMES}
        spans_rows: list[np.ndarray | None] = [None] * n
        report = EmbedReport(out, n, segmentation=segments)
        seg_attr = None
        if segments is not None:
            g = coll.ragged("segmentations", segments)
            seg_attr = {"method": segments, "config": g.attrs.get("config", {}), "version": g.attrs.get("version", "")}
        np_dtype = np.float16 if dtype == "float16" else np.float32
        previous = _Previous.open(out, coll, model, seg_attr, np_dtype) if resume and out.exists() else None
        kept_all = [previous.item(i) if previous is not None else None for i in range(n)]
        checkpoint = Checkpoint(out, resume=resume, progress=progress)  # a stopped cluster run's items
        computed = _on_cluster(emb, model, [i for i, k in enumerate(kept_all) if k is None], device, scheduler,
                               progress, checkpoint) if scheduler else {}
        progress.batch_start(n)
        for i in range(n):
            name = coll.ids[i]
            progress.file_start(name, 1.0)
            kept = kept_all[i]
            if kept is not None:
                report.reused += 1
                clip, segs, spans = kept
            elif i in computed:
                clip, segs, spans = computed.pop(i)
            else:
                clip, segs, spans = emb.item(i)
            if not clip:
                report.skipped.append(name)
            if "audio" in clip and i in seen:
                clip = {**clip, "audio": seen[i]}
                report.prototypes += 1
            for mod, vec in clip.items():
                rows[(mod, "clip")][i] = vec[None, :]
                report.clip[mod] = report.clip.get(mod, 0) + 1
            for mod, mat in segs.items():
                rows[(mod, "segment")][i] = mat
                report.segments[mod] = report.segments.get(mod, 0) + len(mat)
            spans_rows[i] = spans
            progress.file_done(name, True)
        if previous is not None:
            previous.close()  # before the catalog is replaced
        with atomic_output(out) as tmp:
            w = CollectionWriter(tmp, config=coll.config, command=command, display_path=out)
            try:
                for it in coll.items():
                    w.add(it, {})
                w.flush()
                copy_labels(coll, w)  # evaluate --label reads them from the catalog
                copy_metadata(coll._f, w._f)  # titles and artists travel with the items
                if segments is not None:
                    g = coll.ragged("segmentations", segments)
                    w.write_element("segmentations", segments, [g.rows(i) for i in range(n)], dim=None,
                                    dtype=np.float64, present=[g.present(i) for i in range(n)],
                                    attrs={k: v for k, v in g.attrs.items() if k != "element"})
                for (mod, level), name in EMBEDDING_NAMES.items():
                    r = rows[(mod, level)]
                    if level == "segment" and segments is None:
                        continue
                    attrs = {"modality": mod, "level": level, "extractor": "vmtool-embed",
                             "model_sha256": model.sha256}
                    comps = None
                    if level == "segment":
                        attrs["segmentation"] = segments
                        comps = {"spans": [s if r[i] is not None else None for i, s in enumerate(spans_rows)]}
                    w.write_element("embeddings", name, r, dim=model.dim, dtype=np_dtype, attrs=attrs,
                                    present=[x is not None for x in r], companions=comps)
                w.set_attr("model", _model_attr(model, seg_attr))
                blob = np.frombuffer(_inference_bytes(model.data), dtype=np.uint8)
                w._f.create_dataset("model", data=blob, compression="gzip", compression_opts=1)
                w._f["model"].attrs["format"] = "torch weights-only checkpoint (vmtool-model)"
                w.close()
            except BaseException as exc:
                w.abort(exc)
                raise
        checkpoint.finish()
        return report
    finally:
        if previous is not None:
            previous.close()
        coll.close()


class _Previous:
    """The embeddings an existing catalog holds for the items of a features file."""

    def __init__(self, cat, coll, segments: str | None):
        self.cat = cat
        self.coll = coll
        where = {(i, h): k for k, (i, h) in enumerate(zip(cat.ids, cat.sha256s))}
        self.index = [where.get((i, h)) for i, h in zip(coll.ids, coll.sha256s)]
        self.segments = segments
        self.elements = {key: cat.ragged("embeddings", name) for key, name in EMBEDDING_NAMES.items()
                         if name in cat.names("embeddings")}

    @classmethod
    def open(cls, path: Path, coll, model, seg_attr: dict[str, Any] | None, np_dtype) -> _Previous | None:
        """The catalog at *path* if its embeddings can be reused for this run, else None."""
        from vmtool.store import read_kind

        kind, _ = read_kind(path)
        if kind != "collection":
            raise FormatError(f"is a vmtool {kind!r} file, not a catalog to resume", path)
        cat = open_collection(path)
        attr = cat.attrs.get("model")
        attr = json.loads(attr) if isinstance(attr, str) else (attr or {})
        same = (attr.get("sha256") == model.sha256
                and canonical_json(attr.get("segmentation")) == canonical_json(seg_attr)
                and all(np.dtype(cat._f[f"embeddings/{name}/data"].dtype) == np.dtype(np_dtype)
                        for name in cat.names("embeddings")))
        if not same:
            cat.close()
            return None
        return cls(cat, coll, seg_attr["method"] if seg_attr else None)

    def item(self, i: int):
        """(clip, segments, spans) of item *i* as stored, or None when it must be embedded."""
        k = self.index[i]
        if k is None:
            return None
        spans = None
        if self.segments is not None:
            new, old = self.coll.ragged("segmentations", self.segments), self.cat.ragged("segmentations", self.segments)
            if new.present(i) != old.present(k) or not np.array_equal(new.rows(i), old.rows(k)):
                return None
        clip: dict[str, np.ndarray] = {}
        segs: dict[str, np.ndarray] = {}
        for (mod, level), rg in self.elements.items():
            if not rg.present(k):
                continue
            rows = np.asarray(rg.rows(k), dtype=np.float32)
            if level == "clip":
                clip[mod] = rows[0]
            else:
                segs[mod] = rows
                spans = np.asarray(rg.companion("spans", k), dtype=np.float64)
        return clip, segs, spans

    def close(self) -> None:
        self.cat.close()  # h5py: closing twice is harmless


def seen_prototypes(model, coll) -> dict[int, np.ndarray]:
    """Item index -> the unit prototype of its class, for the items of *coll* whose value
    of the model's class label column is one of the classes it was trained on (VMCML's
    seen music); empty for models without named classes or files without that column."""
    classes = model.data["config"].get("classes")
    weights = getattr(model.net, "prototypes", None)
    if not classes or weights is None or classes["label"] not in coll.label_names():
        return {}
    from vmtool.labels import labels_as_text

    values = labels_as_text(coll.label(classes["label"]))
    w = weights.detach().float().cpu().numpy()
    w = (w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    at = {name: k for k, name in enumerate(classes["names"])}
    return {i: w[at[v]] for i, v in enumerate(values) if v in at}


def load_catalog_model(catalog: str | os.PathLike, device: str = "cpu", *, backend: str = "auto"):
    """The model stored in a catalog (``/model``), ready for inference.

    *backend*: ``auto`` runs it in numpy on the CPU when :mod:`vmtool.models.inference`
    computes its network (every network vmtool trains; a query then never imports torch),
    else in torch; ``torch`` or ``numpy`` forces one (``numpy`` raises
    :class:`vmtool.models.torchzip.Unsupported` for a network it does not compute).
    """
    import h5py

    from vmtool.models.checkpoint import MODEL_FORMAT, LoadedModel

    p = Path(catalog)
    read_kind(p)  # an HDF5 vmtool file, self-contained
    with h5py.File(p, "r") as f:
        if "model" not in f:
            raise FormatError("holds no model (dataset '/model'); it is not a catalog written by vmtool embed", p)
        blob = f["model"][()].tobytes()
        attr = f.attrs.get("model")
    data = None
    numpy_read = backend == "numpy" or (backend == "auto" and device == "cpu")
    if numpy_read:
        from vmtool.models.torchzip import Unsupported, read_checkpoint

        try:
            data = read_checkpoint(blob)
        except Unsupported:
            if backend == "numpy":
                raise
            numpy_read = False
    if data is None:
        import torch

        try:
            data = torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
        except Exception as exc:
            raise FormatError(f"dataset '/model' is not a readable model: {type(exc).__name__}", p) from exc
    if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
        raise FormatError("dataset '/model' is not a vmtool model", p)
    try:
        sha = json.loads(attr)["sha256"] if attr is not None else ""
    except (TypeError, ValueError, KeyError) as exc:
        raise FormatError("root attribute 'model' is not the JSON vmtool embed writes", p) from exc
    if numpy_read:
        from vmtool.models.inference import numpy_model
        from vmtool.models.torchzip import Unsupported

        try:
            return numpy_model(data, p, str(sha))
        except Unsupported:
            if backend == "numpy":
                raise
        return load_catalog_model(catalog, device, backend="torch")  # tensors for torch's network
    return LoadedModel(p, data, device, sha256=str(sha))


def pair_scorer(catalog: str | os.PathLike, device: str = "cpu", model=None):
    """The pair classifier of a catalog's model (BCE models, Prétet et al. 2021): a
    function of (video, audio) embeddings to logits. *model*: the catalog's model when
    already loaded.

    Raises
    ------
    ParameterError
        The model has no pair classifier (not trained with ``--loss bce``).
    """
    model = model if model is not None else load_catalog_model(catalog, device)
    if not model.has_head:
        raise ParameterError("method 'head' needs a model trained with --loss bce; this catalog's model has no "
                             "pair classifier", catalog)
    return model.pair_logits
