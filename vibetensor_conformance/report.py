"""Tables, totals, the BackendBench summary and the JSON file of a conformance run."""
import json
import os
import platform
import tempfile
from collections import Counter
from importlib import resources

HEADER = ("op", "dtype", "samples", "pass", "fail", "unsup", "grad ok", "grad fail", "grad unsup", "first problem")


def backendbench_ops():
    """[(ATen overload, [OpInfo entry names])] of the BackendBench correctness suite (297 overloads)."""
    text = resources.files("vibetensor_conformance").joinpath("backendbench_ops.tsv").read_text()
    rows = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            overload, entries = line.split("\t")
            rows.append((overload, entries.split(";")))
    return rows


def backendbench_entries():
    return {e for _, entries in backendbench_ops() for e in entries}


def problem(entry):
    if entry.samples == 0 and entry.skipped:
        return f"torch itself rejects all {entry.skipped} samples here"
    return entry.first_failure or entry.first_unsupported or entry.first_grad_failure or ""


def table(results, width=100):
    """One row per (entry, dtype)."""
    rows = [HEADER]
    for r in results:
        rows.append((r.full_name, r.dtype, str(r.samples), str(r.passed), str(r.failed), str(r.unsupported),
                     str(r.grad_passed), str(r.grad_failed), str(r.grad_unsupported), clip(problem(r), width)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    lines = []
    for row in rows:
        cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(lines)


def clip(text, width):
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


def totals(results, device):
    """Per dtype: entries fully passing (forward and gradients), forward only, and sample counts."""
    out = {}
    for dtype in sorted({r.dtype for r in results}, key=lambda d: [r.dtype for r in results].index(d)):
        rs = [r for r in results if r.dtype == dtype]
        out[dtype] = {
            "device": device,
            "entries": len(rs),
            "fully_passing": sum(r.fully_passing for r in rs),
            "forward_passing": sum(r.forward_ok for r in rs),
            "samples": sum(r.samples for r in rs),
            "passed": sum(r.passed for r in rs),
            "failed": sum(r.failed for r in rs),
            "unsupported": sum(r.unsupported for r in rs),
            "skipped": sum(r.skipped for r in rs),
            "grad_passed": sum(r.grad_passed for r in rs),
            "grad_failed": sum(r.grad_failed for r in rs),
            "grad_unsupported": sum(r.grad_unsupported for r in rs),
        }
    return out


def total_lines(tot):
    lines = []
    for dtype, t in tot.items():
        lines.append(f"{t['fully_passing']} ops fully passing of {t['entries']} ({dtype}, {t['device']}); "
                     f"forward only: {t['forward_passing']}; samples {t['passed']} passed / {t['failed']} failed / "
                     f"{t['unsupported']} not supported; gradients {t['grad_passed']} passed / {t['grad_failed']} "
                     f"failed / {t['grad_unsupported']} not supported")
    return lines


def backendbench_summary(results):
    """Per dtype: which ATen overloads fully pass. An overload passes in a dtype when every OpInfo
    entry that exercises it (and supports the dtype) was run and passes all its samples forward
    (BackendBench checks forward results); 'untested' when none of its entries ran."""
    by = {(r.full_name, r.dtype): r for r in results}
    out = {}
    for dtype in dict.fromkeys(r.dtype for r in results):
        status, with_grad = {}, 0
        for overload, entries in backendbench_ops():
            ran = [by[e, dtype] for e in entries if (e, dtype) in by]
            status[overload] = "untested" if not ran else ("pass" if all(r.forward_ok for r in ran) else "fail")
            with_grad += bool(ran) and all(r.fully_passing for r in ran)
        counts = Counter(status.values())
        out[dtype] = {"passing": counts["pass"], "failing": counts["fail"], "untested": counts["untested"],
                      "passing_with_grad": with_grad, "of": len(status), "overloads": status}
    return out


def backendbench_lines(summary):
    return [f"BackendBench: {s['passing']} of {s['of']} ATen overloads fully passing ({dtype}, forward; "
            f"{s['passing_with_grad']} with gradients too)"
            + (f"; {s['untested']} untested" if s["untested"] else "") for dtype, s in summary.items()]


def categories(results, top=15):
    """The most common problems over all samples: [(category, samples, entries)]."""
    samples, entries = Counter(), Counter()
    for r in results:
        for cat, n in r.reasons.items():
            samples[cat] += n
            entries[cat] += 1
    return [(cat, n, entries[cat]) for cat, n in samples.most_common(top)]


def category_lines(results, top=15):
    cats = categories(results, top)
    if not cats:
        return []
    return ["Top problems (samples, entries):"] + [f"  {n:6d} {e:4d}  {cat}" for cat, n, e in cats]


def write_json(path, results, options, wall_time, device, backendbench=None):
    """The run as JSON, written atomically (temp file + rename)."""
    import torch
    data = {
        "options": options,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "wall_time_s": round(wall_time, 2),
        "totals": totals(results, device),
        "entries": [r.as_dict() for r in results],
        "categories": [{"category": c, "samples": n, "entries": e} for c, n, e in categories(results, top=50)],
    }
    if backendbench is not None:
        data["backendbench"] = backendbench
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, path)
    return data
