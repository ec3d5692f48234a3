"""Compare two result trees of one configuration, timing aside.

    python scripts/same-results.py BEFORE/results/smoke AFTER/results/smoke [--rename OLD=NEW ...]

Every text output of BEFORE must exist in AFTER with the same content once wall-clock fields are dropped:
in ``*.jsonl`` records the keys of ``TIMING_KEYS``, in ``tables/*.csv`` every column whose header names
seconds. Images, PDFs, checkpoints, logs, benchmarks, provenance and rendered reports are skipped (they
carry timestamps or pixels). ``--rename OLD=NEW`` maps a string of BEFORE (e.g. a module path moved by a
refactor) to AFTER's spelling before comparing. Exit status 1 when any file differs or is missing.
"""

import argparse
import csv
import io
import json
import pathlib
import sys

TIMING_KEYS = ("seconds", "step_seconds", "epoch_seconds", "probe_seconds")
SKIP_DIRS = ("logs", "benchmarks")
SKIP_SUFFIXES = (".pdf", ".png", ".pt", ".html", ".md", ".tex")


def normalised(text: str, name: str, renames: dict[str, str]) -> str:
    """The content compared: renames applied, timing fields dropped."""
    for old, new in renames.items():
        text = text.replace(old, new)
    if name.endswith(".jsonl"):
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
        return "\n".join(
            json.dumps({k: v for k, v in r.items() if k not in TIMING_KEYS}, sort_keys=True) for r in records
        )
    if name.endswith(".csv") and "tables/" in name:
        rows = list(csv.reader(io.StringIO(text)))
        keep = [i for i, header in enumerate(rows[0] if rows else []) if "seconds" not in header]
        return "\n".join(",".join(row[i] for i in keep if i < len(row)) for row in rows)
    return text


def compared(path: pathlib.Path, root: pathlib.Path) -> bool:
    rel = path.relative_to(root)
    return not (
        path.is_dir()
        or rel.parts[0] in SKIP_DIRS
        or path.suffix in SKIP_SUFFIXES
        or "provenance" in path.name
        or path.name == ".lock"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("before", type=pathlib.Path)
    parser.add_argument("after", type=pathlib.Path)
    parser.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    args = parser.parse_args(argv)
    renames = dict(item.split("=", 1) for item in args.rename)
    bad = 0
    for path in sorted(p for p in args.before.rglob("*") if compared(p, args.before)):
        rel = path.relative_to(args.before)
        other = args.after / rel
        if not other.exists():
            print("missing", rel)
            bad += 1
        elif normalised(path.read_text(), str(rel), renames) != normalised(other.read_text(), str(rel), {}):
            print("differs", rel)
            bad += 1
    print(f"compared; differing or missing: {bad}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
