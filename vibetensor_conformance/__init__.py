"""`vibetensor conformance`: which PyTorch ops vibetensor runs correctly, measured on PyTorch's own
OpInfo sample inputs (torch.testing._internal.common_methods_invocations.op_db).

    vibetensor conformance                         every OpInfo entry, float32, CPU, with gradients
    vibetensor conformance --op 'add|mul|nn\\.functional\\..*' --dtype float32 --dtype bfloat16
    vibetensor conformance --backendbench --json conformance.json

This package imports torch (it is the oracle), so it lives beside vibetensor, never inside it; it
needs torch installed (the `test` extra). Importing this module itself does not import torch.
"""
import argparse
import sys
import time

DESCRIPTION = __doc__


def parser():
    ap = argparse.ArgumentParser(
        prog="vibetensor conformance", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="An entry fully passes when every sample passes forward and every gradient checked passes. "
               "Random ops are checked by properties (shape, dtype, support, moments against torch's draws).")
    ap.add_argument("--device", default="cpu",
                    help="where our side runs: cpu or cuda (torch, the oracle, runs there too when it has CUDA, else on CPU)")
    ap.add_argument("--dtype", action="append", dest="dtypes", metavar="DTYPE",
                    help="dtype to test (repeatable; default float32), e.g. float32, bfloat16, float64, int64")
    ap.add_argument("--op", dest="op_filter", metavar="REGEX",
                    help="only entries whose name (or name.variant) fully matches REGEX, "
                         "e.g. 'add|nn\\.functional\\..*'")
    ap.add_argument("--backendbench", action="store_true",
                    help="only the OpInfo entries that exercise BackendBench's 297 ATen overloads, and print which "
                         "overloads fully pass")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    ap.add_argument("--grad", action=argparse.BooleanOptionalAction, default=True,
                    help="also compare input gradients for differentiable samples (default: on)")
    ap.add_argument("--max-samples", type=int, default=None, metavar="N", help="at most N samples per entry")
    ap.add_argument("--timeout", type=float, default=600.0, metavar="S",
                    help="seconds one entry may run before its remaining samples are abandoned (default 600)")
    ap.add_argument("--failing", action="store_true", help="list only entries that do not fully pass")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only the totals")
    return ap


def main(argv=None):
    """Run the conformance suite; exit status 0 (a report, not a gate: failures are data)."""
    args = parser().parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("vibetensor conformance needs PyTorch as the oracle: pip install 'vibetensor[test]'", file=sys.stderr)
        return 2
    from vibetensor_conformance import report, runner
    dtypes = args.dtypes or ["float32"]
    names = report.backendbench_entries() if args.backendbench else None
    for d in dtypes:
        if not isinstance(getattr(torch, d, None), torch.dtype):
            print(f"unknown dtype {d!r}", file=sys.stderr)
            return 2
    t0 = time.perf_counter()
    show = (lambda r: print(f"  {r.full_name} ({r.dtype}): {r.passed}/{r.samples}", file=sys.stderr, flush=True)) \
        if not args.quiet and sys.stderr.isatty() else None
    results = runner.run(dtypes, args.device, args.op_filter, names, args.grad, args.max_samples, args.timeout,
                         progress=show)
    wall = time.perf_counter() - t0
    shown = [r for r in results if not r.fully_passing] if args.failing else results
    if not args.quiet:
        print(report.table(shown))
        print()
        for line in report.category_lines(results):
            print(line)
        print()
    summary = report.backendbench_summary(results) if args.backendbench else None
    for line in report.total_lines(report.totals(results, args.device)):
        print(line)
    if summary:
        for line in report.backendbench_lines(summary):
            print(line)
    print(f"wall time {wall:.1f} s")
    if args.json:
        options = {k: v for k, v in vars(args).items()}
        options["dtypes"] = dtypes
        report.write_json(args.json, results, options, wall, args.device, summary)
        print(f"wrote {args.json}")
    return 0
