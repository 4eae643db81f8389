"""`fmnist-batch merge`: combine the outputs of classify --shard runs (the work is outputs.shards.merge)."""

from __future__ import annotations

import argparse

from fmnist_batch.cli.arguments import add_discovery_options, extensions, formatter, positive_int
from fmnist_batch.cli.env import Environment, ExitStatus, exit_codes_help
from fmnist_batch.outputs.formats import format_names

MERGE_MEANINGS = {
    ExitStatus.OK: "merged; every slice is there and finished (and with --inputs, every file has a row)",
    ExitStatus.SOME_FAILED: "merged, with gaps (listed on stderr): a slice missing or unfinished, files "
    "with no row, a shard whose settings are not recorded",
    ExitStatus.USAGE: "refused, nothing written: a path in two rows, different columns or splits, shards "
    "made with other settings or of other inputs; or a usage error",
    ExitStatus.TEMPFAIL: "another run holds the output's lock (EX_TEMPFAIL)",
}


def add_merge(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "merge",
        help="combine the outputs of classify --shard runs into one, checking for overlaps and gaps",
        description="Write the rows of the SHARD outputs (CSV or JSON Lines, as written by classify --shard "
        "K/N -o FILE), shard by shard, into OUTPUT, atomically. A path with more than one row is refused. "
        "Gaps are reported: from the FILE.shard.json record each shard run writes next to its output, a "
        "slice of 1..N that no output holds or whose run did not finish; with --inputs, files that no "
        "output has a row for. Shards made with other settings (model, top-k, min-confidence, conversion) "
        "or of other inputs are refused, naming what differs; OUTPUT keeps the shards' settings, so "
        "classify --resume on it refuses other settings.",
        epilog="examples:\n"
        "  fmnist-batch merge labels.csv out/labels-1.csv out/labels-2.csv out/labels-3.csv\n"
        "  fmnist-batch merge labels.csv out/labels-*.csv --shards 3          # expect 3 slices\n"
        "  fmnist-batch merge labels.csv out/labels-*.csv --inputs /srv/photos  # every file covered?\n\n"
        + exit_codes_help(MERGE_MEANINGS),
        formatter_class=formatter,
    )
    p.add_argument("output", metavar="OUTPUT", help="the merged output file")
    p.add_argument("shard_outputs", nargs="+", metavar="SHARD", help="the shard runs' output files")
    p.add_argument(
        "--format", choices=format_names(), help="output format (default: from the name, else csv)"
    )
    p.add_argument(
        "--shards",
        type=positive_int,
        metavar="N",
        help="the number of slices the outputs must cover (default: what their records say)",
    )
    p.add_argument(
        "--inputs",
        nargs="+",
        metavar="INPUT",
        help="the shard runs' inputs, named as they named them: list the files no output has a row for",
    )
    add_discovery_options(p)
    p.add_argument(
        "--wait", action="store_true", help="if another run is writing the output, wait for it (else exit 75)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and gaps")
    p.set_defaults(run=run_merge)


def run_merge(args: argparse.Namespace, env: Environment) -> int:
    from fmnist_batch.discover import check_inputs
    from fmnist_batch.outputs.shards import merge

    if args.inputs:
        check_inputs(args.inputs)
    report = merge(
        args.output,
        args.shard_outputs,
        fmt=args.format,
        count=args.shards,
        inputs=args.inputs,
        recursive=args.recursive,
        extensions=extensions(args),
        on_warning=None if args.quiet else lambda m: env.info(f"warning: {m}"),
        wait=args.wait,
    )
    for gap in report.gaps:
        env.info(f"fmnist-batch: gap: {gap}")
    if not args.quiet:
        slices = (
            f", {report.count} slices" if report.count is not None else ", slices not checked (no records)"
        )
        env.info(f"merged {len(args.shard_outputs)} files, {report.rows} rows into {args.output}{slices}")
    return ExitStatus.SOME_FAILED if report.gaps else ExitStatus.OK
