"""``vmtool train``: self-supervised training of a two-branch model on paired clips.

Adam on mini-batches of matched (video, music) pairs; a held-out validation split of
whole items; early stopping on the validation video-to-music R@10 (ties broken by mean
rank); the best weights are kept. Checkpoints are written atomically after each
improvement (and at least every ``save_every`` seconds), so an interrupted run keeps
its last complete checkpoint and ``--resume`` continues it exactly: the batch order and
dropout masks of epoch ``e`` depend only on ``(seed, e)``.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from vmtool import __version__
from vmtool.atomic import DEFAULT_WAIT, atomic_output, check_output_path, locks_output
from vmtool.errors import EXIT_INTERRUPTED, Interrupted, ParameterError
from vmtool.store import canonical_json, open_collection
from vmtool.training.data import MODALITIES, DataConfig, InputBuilder, normalisation, prepare, split_items

__all__ = ["TrainConfig", "TrainReporter", "TrainResult", "train", "retrieval_metrics", "class_labels"]


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes
    ----------
    batch_size : int
        Pairs per batch (1000 in VM-Net and Seg-VM-Net).
    lr : float
        Adam learning rate.
    weight_decay : float
    epochs : int
        Upper bound on epochs.
    max_time : float or None
        Seconds; training stops after the epoch during which it is exceeded.
    patience : int
        Epochs without validation improvement before stopping (0: never stop early).
    val_fraction : float
        Fraction of items held out for validation (0: no validation, keep the last epoch).
    seed : int
    save_every : float
        Seconds between checkpoints when validation does not improve.
    """

    batch_size: int = 1000
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 100
    max_time: float | None = None
    patience: int = 10
    val_fraction: float = 0.1
    seed: int = 0
    save_every: float = 60.0

    def validate(self) -> None:
        if self.batch_size < 2:
            raise ParameterError(f"--batch-size must be at least 2, got {self.batch_size}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ParameterError(f"--lr must be a positive number, got {self.lr!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ParameterError(f"--weight-decay must be a number >= 0, got {self.weight_decay!r}")
        if self.epochs < 1:
            raise ParameterError(f"--epochs must be at least 1, got {self.epochs}")
        if self.max_time is not None and not self.max_time > 0:
            raise ParameterError(f"--max-time must be positive, got {self.max_time!r}")
        if self.patience < 0:
            raise ParameterError(f"--patience must be >= 0, got {self.patience}")


class TrainReporter(Protocol):
    """What the training loop tells its caller (the CLI draws it on stderr)."""

    def log(self, message: str) -> None: ...

    def epoch_start(self, epoch: int, n_batches: int) -> None: ...

    def batch_done(self, batch: int, loss: float) -> None: ...

    def epoch_end(self, record: dict[str, Any]) -> None: ...


class _Silent:
    def log(self, message: str) -> None:
        pass

    def epoch_start(self, epoch: int, n_batches: int) -> None:
        pass

    def batch_done(self, batch: int, loss: float) -> None:
        pass

    def epoch_end(self, record: dict[str, Any]) -> None:
        pass


@dataclass
class TrainResult:
    path: Path
    epochs: int
    best_epoch: int
    best: dict[str, float]
    seconds: float
    stopped: str
    n_train_pairs: int
    n_val_items: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def retrieval_metrics(query: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """R@1, R@10 (%), mean and median rank of the matching target for each query row.

    Row ``i`` of *query* matches row ``i`` of *target*; distances are Euclidean.
    """
    from vmtool.ranking.evaluate import ground_truth_ranks

    q = np.asarray(query, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    d = (q * q).sum(1)[:, None] + (t * t).sum(1)[None, :] - 2 * q @ t.T
    ranks = ground_truth_ranks(d)  # the rule `vmtool evaluate` uses: 1 + strictly closer targets
    return {"r1": float(100 * np.mean(ranks <= 1)), "r10": float(100 * np.mean(ranks <= 10)),
            "mean_rank": float(ranks.mean()), "median_rank": float(np.median(ranks))}


def class_labels(n_items: int, train_items: np.ndarray, classes: np.ndarray | None,
                 source: Any = None) -> np.ndarray:
    """Prototype index of every item, ``(n_items,)`` int64: ``0..C-1`` for the classes of
    the training items, -1 for items of no training class.

    Without *classes* every training item is its own class.
    """
    label_of = np.full(n_items, -1, dtype=np.int64)
    if classes is None:
        label_of[train_items] = np.arange(len(train_items))
        return label_of
    cls = np.asarray(classes)
    if cls.shape != (n_items,) or not np.issubdtype(cls.dtype, np.integer):
        raise ParameterError(f"classes must be one integer per item ({n_items}), got shape {cls.shape} "
                             f"of {cls.dtype}", source)
    seen, inv = np.unique(cls[train_items], return_inverse=True)
    label_of[train_items] = inv
    known = np.isin(cls, seen)
    label_of[known] = np.searchsorted(seen, cls[known])
    return label_of


def _score(m: dict[str, float]) -> tuple[float, float]:
    return (m["v2m_r10"], -m["v2m_mean_rank"])


def _centroids(emb: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    items, inv = np.unique(item, return_inverse=True)
    out = np.zeros((len(items), emb.shape[1]), dtype=np.float64)
    np.add.at(out, inv, emb)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out, items


@locks_output()
def train(
    features: str | Path,
    output: str | Path,
    *,
    data: DataConfig,
    model_layers: dict[str, list[int]] | None = None,
    dropout: float = 0.2,
    loss: Any = None,
    config: TrainConfig | None = None,
    device: str = "cpu",
    resume: bool = False,
    reporter: TrainReporter | None = None,
    wait: float = DEFAULT_WAIT,
    command: str = "",
    work_dir: str | Path | None = None,
    ids: list[str] | None = None,
    classes: np.ndarray | None = None,
    model: str = "vmnet",
    model_options: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a model on the (video, music) pairs of a features file; write it to *output*.

    Parameters
    ----------
    features : path
        A collection with audio and video features (``vmtool extract`` or ``vmtool import``)
        and, for ``level="segment"``, the segmentation named in *data*.
    output : path
        The model file (written atomically; rewritten at each checkpoint).
    data : DataConfig
    model_layers : dict, optional
        ``{"audio": [...], "video": [...]}`` layer widths (defaults: VM-Net's).
    loss : LossConfig, optional
        Defaults to VM-Net's triplet loss. ``vmtool.models.loss_registry.loss_config(
        "cosface:scale=20", model=model)`` builds one from ``--loss``'s spelling.
    config : TrainConfig, optional
    device : str
        A resolved torch device.
    resume : bool
        Continue the run stored in *output* (same data, model and loss settings).
    ids : list of str, optional
        Use only these items (training and validation); default: every item.
    wait : float
        Seconds to wait for another run writing *output* (see :func:`vmtool.atomic.output_lock`).
    classes : np.ndarray [shape=(n_items,), dtype=int], optional
        The class of every item of *features*, for the ``cosface`` loss: items of one
        class share one prototype (VMCML: one class per music track, so the videos of a
        track share it). Default: one class per item (clip).
    model : {"vmnet", "dpvm"}
        The model family: VM-Net's two branches, or DPVM's dual path (Gu, Shen and Lv),
        whose *loss* is a :class:`~vmtool.models.dpvm.DPVMLossConfig` and which reads the
        emotion labels (and polarities, known negatives) of the collection.
    model_options : dict, optional
        dpvm: :class:`~vmtool.models.dpvm.DPVMConfig` fields (``fusion``, ``common``,
        ``content_layers``...) and ``betas`` (Adam's, default the paper's 0.5, 0.999).

    Returns
    -------
    TrainResult
    """
    import torch

    from vmtool.models.checkpoint import load_checkpoint, save_model
    from vmtool.models.loss_registry import LOSSES
    from vmtool.models.loss_registry import names as loss_names
    from vmtool.models.losses import LossConfig, compute_loss
    from vmtool.models.nets import ModelConfig, VMNet

    from vmtool.models.dpvm import DPVM_PAPER_DEFAULTS, METRICS, DPVMConfig, DPVMLossConfig, DPVMNet

    cfg = config or TrainConfig()
    cfg.validate()
    is_dpvm = model == "dpvm"
    if model not in ("vmnet", "dpvm"):
        raise ParameterError(f"unknown model {model!r}; use vmnet or dpvm")
    lcfg = loss or (DPVMLossConfig() if is_dpvm else LossConfig())
    if is_dpvm != isinstance(lcfg, DPVMLossConfig):
        raise ParameterError("--model dpvm has its own objective (eq. 8): --loss applies to the VM-Net family")
    if is_dpvm and lcfg.metric not in METRICS:
        raise ParameterError(f"unknown DPVM metric {lcfg.metric!r}; use {', '.join(METRICS)}")
    if not is_dpvm and (lcfg.name not in LOSSES or LOSSES[lcfg.name].model != "vmnet"):
        raise ParameterError(f"unknown loss {lcfg.name!r}; use {', '.join(loss_names('vmnet'))}")
    if not is_dpvm:
        lcfg.validate()
    needs = LOSSES[lcfg.name].needs_of(lcfg)  # what the loss asks for beyond embedded pairs (loss_registry.NEEDS)
    if is_dpvm and data.aggregation != "stats":
        raise ParameterError("--model dpvm reads statistics vectors (--aggregation stats)")
    rep = reporter or _Silent()
    output = check_output_path(output, inputs=[features])
    t_start = time.perf_counter()

    previous = None
    if resume:
        if not output.exists():
            raise ParameterError("cannot resume: the model file does not exist", output)
        previous = load_checkpoint(output)
        if "resume" not in previous:
            raise ParameterError("cannot resume: the model file holds no training state "
                                 "(it was finished or written without one)", output)

    coll = open_collection(features)
    tmpdir = Path(tempfile.mkdtemp(prefix="vmtool-train-")) if work_dir is None else Path(work_dir)
    saved: dict[str, int] = {}  # the last checkpoint this run wrote over *output*
    try:
        builder = InputBuilder(coll, data)
        n_items = len(coll)
        use = np.arange(n_items)
        if ids is not None:
            index = {x: i for i, x in enumerate(coll.ids)}
            missing = [x for x in ids if x not in index]
            if missing:
                raise ParameterError(f"{len(missing)} id(s) not in the file, e.g. {missing[0]!r}", features)
            use = np.unique(np.array([index[x] for x in ids], dtype=np.int64))
        val_mask = np.zeros(n_items, dtype=bool)
        val_mask[use] = split_items(len(use), cfg.val_fraction, cfg.seed)
        layers = model_layers or {}
        mcfg: Any = ModelConfig(
            audio_dim=builder.input_dim("audio"), video_dim=builder.input_dim("video"),
            audio_layers=list(layers.get("audio", [2048, 1024, 512])),
            video_layers=list(layers.get("video", [2048, 512])),
            dropout=float(dropout), aggregation=data.aggregation,
            fusion_head="fusion_head" in needs,
        )
        if not is_dpvm and mcfg.audio_layers[-1] != mcfg.video_layers[-1]:
            raise ParameterError(f"the audio and video layers must end with the same width "
                                 f"(got {mcfg.audio_layers[-1]} and {mcfg.video_layers[-1]})")
        rep.log(f"preparing inputs: {len(use)} items, level {data.level}, aggregation {data.aggregation}, "
                f"audio {'+'.join(builder.features['audio'])} ({builder.input_dim('audio')}-d), "
                f"video {'+'.join(builder.features['video'])} ({builder.input_dim('video')}-d)")
        tmpdir.mkdir(parents=True, exist_ok=True)
        prep = prepare(coll, builder, use, tmpdir)
        if prep.skipped:
            rep.log("skipped items: " + ", ".join(f"{v} {k}" for k, v in prep.skipped.items()))
        train_rows = np.flatnonzero(~val_mask[prep.item])
        val_rows = np.flatnonzero(val_mask[prep.item])
        if len(train_rows) < 2:
            raise ParameterError(f"only {len(train_rows)} training pair(s): need items with both audio and "
                                 f"video features", features)
        train_items = np.unique(prep.item[train_rows])
        class_names = None
        if "prototypes" in needs and lcfg.class_label and classes is None:
            from vmtool.training.labelled import label_classes

            classes, class_names = label_classes(coll, lcfg.class_label, use, features)
        label_of = class_labels(n_items, train_items, classes, features)
        prototype_names = None
        if "prototypes" in needs:
            mcfg.prototypes = int(label_of.max()) + 1
            if class_names is not None:  # prototype k is the k-th class of the training items
                prototype_names = [class_names[c] for c in np.unique(np.asarray(classes)[train_items])]
        item_t: dict[str, Any] = {}  # per-item label tensors the loss takes (dpvm, ppml)
        neg_rows = np.zeros((0, 2), dtype=np.int64)
        betas = (0.9, 0.999)
        if is_dpvm or "polarity" in needs:
            from vmtool.training.labelled import emotion_classes, negative_pairs, polarities

            opts = dict(model_options or {})
            betas = tuple(float(x) for x in opts.pop("betas", DPVM_PAPER_DEFAULTS["betas"])) if is_dpvm else betas
            if is_dpvm:
                mcfg = DPVMConfig(audio_dim=mcfg.audio_dim, video_dim=mcfg.video_dim, dropout=float(dropout),
                                  **{k: v for k, v in opts.items() if k in DPVMConfig.__dataclass_fields__})
                if mcfg.has_emotion:
                    yv, ym, emo_classes = emotion_classes(coll, lcfg.video_emotion, lcfg.music_emotion, train_items)
                    mcfg.n_emotions, mcfg.emotion_classes = len(emo_classes), emo_classes
                    item_t["y_video"], item_t["y_music"] = torch.from_numpy(yv), torch.from_numpy(ym)
                # known negatives: the first row of each item of a stored pair, both training items
                first = np.full(n_items, -1, dtype=np.int64)
                uniq, at = np.unique(prep.item[train_rows], return_index=True)
                first[uniq] = train_rows[at]
                pairs = negative_pairs(coll, train_items)
                neg_rows = first[pairs].reshape(-1, 2) if len(pairs) else neg_rows
            if "polarity" in needs:
                item_t["polarity"] = torch.from_numpy(polarities(coll, lcfg.polarity, train_items))
            item_t = {k: t.to(device) for k, t in item_t.items()}
        norm = {}
        for mod in MODALITIES:
            arr = prep.audio if mod == "audio" else prep.video
            mean, std = normalisation(arr, prep.frame_rows(mod, train_rows) if prep.frame_offsets else train_rows)
            norm[mod] = {"mean": torch.from_numpy(mean), "std": torch.from_numpy(std)}

        torch.manual_seed(cfg.seed)
        net = (DPVMNet(mcfg) if is_dpvm else VMNet(mcfg)).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=betas)
        import hashlib

        chosen = "\n".join(coll.ids[i] for i in use)
        full_config = {"model": mcfg.to_dict(), "loss": lcfg.to_dict(), "data": data.to_dict(),
                       **({"optimizer": {"betas": list(betas)}} if is_dpvm else {}),
                       "train": asdict(cfg),
                       **({"classes": {"label": lcfg.class_label, "names": prototype_names}}
                          if prototype_names is not None else {}),
                       "items": {"count": int(len(use)), "sha256": hashlib.sha256(chosen.encode()).hexdigest()}}
        history: list[dict[str, Any]] = []
        best: dict[str, float] = {}
        best_state = None
        best_epoch = 0
        start_epoch = 1
        since_best = 0
        elapsed_before = 0.0
        if previous is not None:
            old = previous["config"]
            mine = dict(full_config)
            for k in ("train",):
                mine.pop(k)
            theirs = {k: v for k, v in old.items() if k != "train"}
            if canonical_json(theirs) != canonical_json(mine):
                raise ParameterError("cannot resume: data, model or loss settings differ from the stored run",
                                     output)
            st = previous["resume"]
            net.load_state_dict(st["state_dict"])
            opt.load_state_dict(st["optimizer"])
            start_epoch = int(st["epoch"]) + 1
            since_best = int(st.get("since_best", 0))
            training = previous.get("training", {})
            history = list(training.get("history", []))
            best = dict(training.get("best", {}))
            best_epoch = int(training.get("best_epoch", 0))
            best_state = previous["state_dict"]
            elapsed_before = float(training.get("seconds", 0.0))
            rep.log(f"resuming at epoch {start_epoch} (best so far: epoch {best_epoch})")

        mean_t = {m: norm[m]["mean"].to(device) for m in MODALITIES}
        std_t = {m: norm[m]["std"].to(device) for m in MODALITIES}
        loss_fn = LOSSES[lcfg.name].function()  # DPVM's step; the VM-Net family's goes through compute_loss

        def batch_tensors(rows: np.ndarray, frame_rng: np.random.Generator | None = None):
            rows = np.sort(rows)
            if prep.frame_offsets is not None:  # T frames drawn at random (thesis, section 5.2.3)
                a = torch.from_numpy(prep.sample("audio", rows, data.frames, frame_rng)).to(device)
                v = torch.from_numpy(prep.sample("video", rows, data.frames, frame_rng)).to(device)
            else:
                a = torch.from_numpy(np.ascontiguousarray(prep.audio[rows])).to(device)
                v = torch.from_numpy(np.ascontiguousarray(prep.video[rows])).to(device)
            a = (a - mean_t["audio"]) / std_t["audio"]
            v = (v - mean_t["video"]) / std_t["video"]
            return rows, a, v

        def embed_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            net.eval()
            outs_a, outs_v = [], []
            frame_rng = np.random.default_rng([cfg.seed, 0, 2])  # the same draw at every validation
            with torch.inference_mode():
                for lo in range(0, len(rows), 2048):
                    _, a, v = batch_tensors(rows[lo:lo + 2048], frame_rng)
                    ea, ev = net(a, v)
                    outs_a.append(ea.cpu().numpy())
                    outs_v.append(ev.cpu().numpy())
            return np.concatenate(outs_a), np.concatenate(outs_v)

        def validate() -> dict[str, float]:
            rows = np.sort(val_rows)
            ea, ev = embed_rows(rows)
            if data.level == "segment":
                ea, _ = _centroids(ea, prep.item[rows])
                ev, _ = _centroids(ev, prep.item[rows])
            v2m = retrieval_metrics(ev, ea)
            m2v = retrieval_metrics(ea, ev)
            return {**{f"v2m_{k}": v for k, v in v2m.items()}, **{f"m2v_{k}": v for k, v in m2v.items()},
                    "val_items": float(len(ea))}

        def checkpoint(epoch: int, keep_state: bool, stopped: str = "") -> None:
            state = {k: t.detach().cpu().clone() for k, t in net.state_dict().items()}
            data_out = {
                "vmtool_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "command": command,
                "config": full_config,
                "state_dict": best_state if best_state is not None else state,
                "normalisation": {m: {"mean": norm[m]["mean"], "std": norm[m]["std"]} for m in MODALITIES},
                "features": coll.config,
                "feature_names": {m: builder.features[m] for m in MODALITIES},
                "segmentation": _segmentation_info(coll, data),
                "training": {
                    "epochs": epoch, "best_epoch": best_epoch, "best": best, "history": history,
                    "seconds": elapsed_before + time.perf_counter() - t_start,
                    "stopped": stopped, "train_pairs": int(len(train_rows)),
                    "train_items": int(len(train_items)),
                    "val_items": int(len(np.unique(prep.item[val_rows]))) if len(val_rows) else 0,
                    "features_file": str(features), "device": device,
                },
            }
            if keep_state:
                data_out["resume"] = {"state_dict": state, "optimizer": opt.state_dict(), "epoch": epoch,
                                      "since_best": since_best}
            with atomic_output(output) as tmp:
                save_model(data_out, tmp)
            saved.update(epoch=epoch, best_epoch=best_epoch)

        n_train = len(train_rows)
        bs = min(cfg.batch_size, n_train)
        n_batches = max(1, n_train // bs)  # the incomplete last batch is dropped (batch norm, fixed-size negatives)
        rep.log(f"training on {n_train} pairs from {len(train_items)} items, "
                f"validating on {len(np.unique(prep.item[val_rows])) if len(val_rows) else 0} items; "
                f"{n_batches} batch(es) of {bs} per epoch; device {device}")
        last_save = time.perf_counter()
        stopped = "epochs"
        epoch = start_epoch - 1
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.perf_counter()
            net.train()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            order = train_rows[np.random.default_rng([cfg.seed, epoch]).permutation(n_train)]
            frame_rng = np.random.default_rng([cfg.seed, epoch, 1])  # new frames every epoch
            rep.epoch_start(epoch, n_batches)
            losses = []
            parts_sum: dict[str, float] = {}
            for bi in range(n_batches):
                rows, a, v = batch_tensors(order[bi * bs:(bi + 1) * bs], frame_rng)
                clips = torch.from_numpy(prep.item[rows]).to(device)
                if is_dpvm:
                    extra = None
                    if len(neg_rows):
                        pick = neg_rows[np.random.default_rng([cfg.seed, epoch, bi]).permutation(len(neg_rows))[:bs]]
                        _, _, xv = batch_tensors(pick[:, 0])
                        _, xa, _ = batch_tensors(pick[:, 1])
                        # batch_tensors sorts its rows: realign the music rows with the video rows
                        order_v, order_m = np.argsort(np.argsort(pick[:, 0])), np.argsort(np.argsort(pick[:, 1]))
                        extra = (xv[torch.from_numpy(order_v)], xa[torch.from_numpy(order_m)])
                    total, parts = loss_fn(lcfg, net, a, v, clips, extra=extra,
                                             **{k: t[clips] for k, t in item_t.items()})
                else:
                    ea, ev = net(a, v)
                    kw = {}
                    if "raw_inputs" in needs:
                        kw = {"v_in": v if v.dim() == 2 else v.mean(1), "m_in": a if a.dim() == 2 else a.mean(1)}
                    if "class_labels" in needs:
                        kw["labels"] = torch.from_numpy(label_of[prep.item[rows]]).to(device)
                    if "polarity" in needs:
                        kw["polarity"] = item_t["polarity"][clips]
                    total, parts = compute_loss(lcfg, ev, ea, clips, model=net, **kw)
                opt.zero_grad(set_to_none=True)
                total.backward()
                opt.step()
                lv = float(total.detach())
                if not math.isfinite(lv):
                    # the hyper-parameters were checked up front, so the step size is the suspect
                    raise ParameterError(f"the loss became {lv} at epoch {epoch}, batch {bi + 1}: training "
                                         f"diverged with --lr {cfg.lr:g}; try a smaller --lr")
                losses.append(lv)
                for k, val in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + val
                rep.batch_done(bi + 1, lv)
            record: dict[str, Any] = {"epoch": epoch, "loss": float(np.mean(losses)),
                                      **{f"loss_{k}": v / n_batches for k, v in parts_sum.items()},
                                      "seconds": time.perf_counter() - t0,
                                      "pairs_per_s": n_batches * bs / max(time.perf_counter() - t0, 1e-9)}
            improved = False
            if len(val_rows):
                metrics = validate()
                record.update(metrics)
                if not best or _score(metrics) > _score(best):
                    improved = True
            else:
                metrics = {}
                improved = True  # no validation: keep the last epoch
            if improved:
                best = {k: float(v) for k, v in metrics.items()} if metrics else {"loss": record["loss"]}
                best_epoch = epoch
                best_state = {k: t.detach().cpu().clone() for k, t in net.state_dict().items()}
                since_best = 0
            else:
                since_best += 1
            record["best"] = improved
            history.append(record)
            rep.epoch_end(record)
            elapsed = elapsed_before + time.perf_counter() - t_start
            if cfg.patience and since_best >= cfg.patience:
                stopped = f"early stop: no validation improvement for {cfg.patience} epochs"
                break
            if cfg.max_time is not None and elapsed >= cfg.max_time:
                stopped = f"max time ({cfg.max_time:g} s) reached"
                break
            if improved or time.perf_counter() - last_save >= cfg.save_every:
                checkpoint(epoch, keep_state=True)
                last_save = time.perf_counter()
        else:
            stopped = f"{cfg.epochs} epochs done"
        # a run stopped early has converged: drop the optimiser state (it triples the file);
        # a run stopped by --epochs or --max-time keeps it, so --resume can continue it
        checkpoint(epoch, keep_state=not stopped.startswith("early stop"), stopped=stopped)
        return TrainResult(output, epoch, best_epoch, best, elapsed_before + time.perf_counter() - t_start, stopped,
                           int(len(train_rows)), int(len(np.unique(prep.item[val_rows]))) if len(val_rows) else 0,
                           history)
    except KeyboardInterrupt as exc:
        if not saved:  # *output* is as it was
            raise
        # the model file was replaced: say what it holds now, not "nothing was written"
        raise Interrupted(f"interrupted; {output} holds the checkpoint written after epoch {saved['epoch']} "
                          f"(best epoch {saved['best_epoch']}); vmtool train --resume continues from it",
                          getattr(exc, "exit_code", EXIT_INTERRUPTED)) from None
    finally:
        coll.close()
        if work_dir is None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _segmentation_info(coll, data: DataConfig) -> dict[str, Any] | None:
    if data.level != "segment" or not data.segments:
        return None
    g = coll.ragged("segmentations", data.segments)
    return {"method": data.segments, "config": g.attrs.get("config", {}), "version": g.attrs.get("version", "")}
