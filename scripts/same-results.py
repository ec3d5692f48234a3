"""Compare two default-pipeline result trees, timing aside and with the module renames mapped back."""
import json, re, sys, pathlib, csv, io
a, b = map(pathlib.Path, sys.argv[1:3])
REN = {"normbench.verdicts.numbers": "normbench.compare", "normbench.studies.fig2": "normbench.fig2",
       "normbench.verdicts.claims": "normbench.claims"}
def norm(text, name):
    for k, v in REN.items(): text = text.replace(k, v)
    if name.endswith(".jsonl"):
        out = []
        for line in text.splitlines():
            r = json.loads(line); [r.pop(k, None) for k in ("seconds", "step_seconds", "epoch_seconds", "probe_seconds")]
            out.append(json.dumps(r, sort_keys=True))
        return "\n".join(out)
    if name.endswith(".csv") and "tables/" in name:
        rows = list(csv.reader(io.StringIO(text))); hdr = rows[0]
        keep = [i for i, h in enumerate(hdr) if "seconds" not in h]
        return "\n".join(",".join(r[i] for i in keep) for r in rows)
    return text
bad = 0
for f in sorted(a.rglob("*")):
    rel = f.relative_to(a)
    if f.is_dir() or rel.parts[0] in ("logs", "benchmarks") or f.suffix in (".pdf", ".png", ".pt", ".html", ".md", ".tex") or "provenance" in f.name or f.name == ".lock":
        continue
    g = b / rel
    if not g.exists(): print("missing", rel); bad += 1; continue
    if norm(f.read_text(), str(rel)) != norm(g.read_text(), str(rel)):
        print("differs", rel); bad += 1
print("compared; differing:", bad)
