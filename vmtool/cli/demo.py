"""``vmtool demo``: the whole pipeline on built-in demo data (nothing is downloaded)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from vmtool.cli._common import (
    DeviceOpt,
    Format,
    FormatOpt,
    QuietOpt,
    RichProgress,
    VersionOpt,
    WorkersOpt,
    command_line,
    echo_json,
    handle_errors,
    info,
    print_table,
)

HELP = """Run the whole pipeline on generated music videos: the main job on built-in data.

Generates a corpus of music videos (music with known tempo and sections, visuals that follow the music), then runs what the subcommands run: extract (handcrafted audio, colour/motion video) -> segment (olda music structure) -> train (segment level, VM-Net triplet loss) on all but the held-out clips -> embed every clip into a catalog -> evaluate the held-out clips, among themselves (the papers' protocol) and against the whole catalog (what a user searching it sees), each without and with the CSLS hubness correction -> rank the catalog's tracks for the first held-out video (nw-dtw with rank's default CSLS correction, the best setting measured over three demo seeds; its own music's rank is printed, with and without the correction) -> align that video with its best track. Prints the top results, the two evaluation tables and where the files and plots are. Every file in DIR is a normal vmtool file: try vmtool info, rank, align or evaluate on them. About 3-4 minutes on 2 CPU cores with the defaults.

With --corpus-only, only writes DIR/media/clip_*.mp4 (ids: the file stems), DIR/train-ids.txt and DIR/test-ids.txt (the last --held-out clips), for your own pipelines (examples/Makefile).

\b
Examples:
  vmtool demo
  vmtool demo --dir /tmp/demo --clips 60 --held-out 10
  vmtool demo --dir corpus --corpus-only && vmtool extract corpus/media/*.mp4 -o feats.h5
  vmtool demo --format json -q | jq '.query.own_track_rank'
"""


def register(app: typer.Typer) -> None:
    app.command("demo", help=HELP)(demo_cmd)


@handle_errors
def demo_cmd(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Option("--dir", file_okay=False, metavar="DIR",
                                            help="Where to write the demo files.")] = Path("demo-out"),
    clips: Annotated[int, typer.Option("--clips", min=4, max=100000, help="Clips in the corpus.")] = 120,
    held_out: Annotated[int, typer.Option("--held-out", min=2, help="Clips not trained on (the last ones).")] = 20,
    duration: Annotated[float, typer.Option("--duration", min=2.0, max=600.0, help="Seconds per clip.")] = 24.0,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs at most.")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed gives the same files and model.")] = 0,
    corpus_only: Annotated[bool, typer.Option("--corpus-only", help="Only generate the media and id lists.")] = False,
    fmt: FormatOpt = Format.table,
    device: DeviceOpt = "auto",
    workers: WorkersOpt = 2,
    quiet: QuietOpt = False,
    version: VersionOpt = False,
) -> None:
    from vmtool.demo import DemoConfig, make_demo_corpus, run_demo
    from vmtool.device import resolve_device

    cfg = DemoConfig(clips=clips, held_out=held_out, duration=duration, seed=seed, epochs=epochs, workers=workers)
    cfg.validate()
    if corpus_only:
        with RichProgress(enabled=not quiet) as progress:
            corpus = make_demo_corpus(directory, cfg, progress=progress)
        if fmt is Format.json:
            echo_json({"media": [str(p) for p in corpus.media], "train_ids": str(corpus.train_list),
                       "test_ids": str(corpus.test_list)})
        info(f"wrote {len(corpus.media)} clips to {directory / 'media'}, {corpus.train_list} "
             f"({len(corpus.train_ids)} ids) and {corpus.test_list} ({len(corpus.test_ids)} ids)", quiet)
        return

    from vmtool.cli.train import _Reporter

    dev = resolve_device(device)
    with RichProgress(enabled=not quiet) as progress, _Reporter(quiet, bars=False) as reporter:
        res = run_demo(directory, cfg, device=dev, progress=progress, reporter=reporter,
                       log=lambda m: info(m, quiet), command=command_line(ctx))
    if fmt is Format.json:
        echo_json(res.to_dict())
    else:
        _print(res)
    info(f"done in {sum(res.timings.values()):.0f} s; all files are in {directory}", quiet)


def _print(res) -> None:
    from rich.table import Table

    from vmtool.cli.align import _table as align_table
    from vmtool.cli.evaluate import _tables as eval_tables
    from vmtool.cli.rank import _table as rank_table

    out = sys.stdout
    how = res.ranking.method.label + ("" if res.ranking.hubness == "none" else f" with CSLS ({res.ranking.hubness})")
    out.write(f"Top {len(res.ranking.results)} tracks for the held-out video {res.query} (the first held-out video; "
              f"{how}, vmtool rank's default for {res.ranking.method.name}). Its own music is number "
              f"{res.truth_rank} of {res.candidates} ({res.truth_rank_none} without hubness correction, "
              f"{res.truth_rank_csls} with CSLS):\n\n")
    rank_table(res.ranking)
    out.write(f"\nEvaluation on the {len(res.corpus.test_ids)} held-out clips "
              "(each video queries the held-out tracks):\n\n")
    eval_tables(res.evaluation)
    if res.evaluation_all is not None:
        out.write(f"The same {len(res.corpus.test_ids)} held-out videos searching the whole catalog "
                  f"({res.candidates} tracks, as a user would):\n\n")
        eval_tables(res.evaluation_all)
    out.write(f"Alignment of {res.query_id} with its best track {res.ranking.results[0].id}:\n\n")
    align_table(res.alignment, res.query_set, res.target_set)
    out.write("\nFiles:\n\n")
    t = Table(box=None, show_header=False, pad_edge=False)
    t.add_column(style="bold")
    t.add_column()
    f = res.files
    for path, what in ((f["media"], f"{len(res.corpus.media)} generated music videos (truth.json: the generator's truth)"),
                       (f["train_ids"], "ids trained on"), (f["test_ids"], "ids held out"),
                       (f["features"], "features (vmtool extract)"),
                       (f["segments"], "features + olda segments (vmtool segment)"),
                       (f["model"], "model (vmtool train)"), (f["catalog"], "catalog with the model (vmtool embed)"),
                       (f["evaluation_plot"], "distance histograms (vmtool evaluate --plot)"),
                       (f["alignment_plot"], "distance matrix and path (vmtool align --plot)"),
                       (f["csls_terms"], "the tracks' CSLS terms (vmtool rank keeps them there)"),
                       (f["results"], "all of the above as JSON")):
        t.add_row(str(path), what)
    print_table(t)
    c = f["catalog"]
    out.write(f"\nNext: vmtool info {c}; vmtool rank {res.query} {c} -m nw-dtw; "
              f"vmtool evaluate {c} --ids {f['test_ids']} -s all\n")
