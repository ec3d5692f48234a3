"""``python -m normbench.references [--json] [--claims] [--paper KEY]``: list the reference numbers (or claims).

With ``--json``, one flat JSON list; every item has at least ``paper`` and ``value`` (claims: ``paper``,
``id``, ``check``, ``args``).
"""

from __future__ import annotations

import argparse
import json
import sys

from normbench.references import load_claims, load_references


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m normbench.references", description=__doc__)
    parser.add_argument("--json", action="store_true", help="one flat JSON list")
    parser.add_argument("--claims", action="store_true", help="list the qualitative claims instead")
    parser.add_argument("--paper", help="only this paper key, e.g. jia2017")
    args = parser.parse_args(argv)
    items = load_claims() if args.claims else load_references()
    items = [x for x in items if not args.paper or x.paper == args.paper]
    if args.json:
        json.dump([x.to_dict() for x in items], sys.stdout, indent=1)
        sys.stdout.write("\n")
    elif args.claims:
        for c in items:
            print(f"{c.key}\t{c.label}\t{c.check}\t{c.statement}")
    else:
        for r in items:
            print(f"{r.id}\t{r.metric}\t{r.statistic}\t{r.value}\t{r.units}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
