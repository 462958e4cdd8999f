"""Prints bench/compare's table from the JSON lines in a results folder.

Throughput rows: median seconds per batch of the same event file; records/s
and MB/s follow from it; "vs raw parse" is the row's MB/s over serde_json's
raw parse (IgnoredAny) of the same bytes, measured in the same run. Peak RSS:
one invocation on the largest batch (stream: the ~6 MB batch; SQS: 5,000
messages) in a fresh process; "batch" is what the invocation added to the
process's high-water mark.
"""

import json
import sys
from pathlib import Path

MAIN_SIZE = 1000


def load(path):
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.startswith("{")]


def mb(n):
    return f"{n / 1e6:.1f} MB"


def main(results):
    results = Path(results)
    rows = []
    for name in ("rust.jsonl", "python.jsonl", "node.jsonl"):
        rows += load(results / name)
    raw = {(r["source"], r["records"]): r["median_s"] for r in rows if r["impl"].startswith("serde_json raw parse")}
    peaks = {(p["impl"], p["source"]): p for p in load(results / "peak.jsonl")}

    def table(size_filter, with_peak):
        head = "| source | records | implementation | records/s | MB/s | vs raw parse |"
        rule = "|---|---:|---|---:|---:|---:|"
        if with_peak:
            head += " peak RSS (batch) |"
            rule += "---:|"
        print(head)
        print(rule)
        for source in ("stream", "sqs"):
            for r in rows:
                if r["source"] != source or not size_filter(r["records"]):
                    continue
                base = raw.get((source, r["records"]))
                seconds = r["median_s"]
                cells = [
                    source,
                    f"{r['records']:,}",
                    r["impl"],
                    f"{r['records'] / seconds:,.0f}",
                    f"{r['bytes'] / seconds / 1e6:,.1f}",
                    f"{base / seconds:.1%}" if base else "",
                ]
                if with_peak:
                    p = peaks.get((r["impl"], source))
                    cells.append(f"{mb(p['peak_rss_bytes'])} ({mb(p['batch_peak_bytes'])})" if p else "")
                print("| " + " | ".join(cells) + " |")

    print(f"\n## {MAIN_SIZE:,}-record batches (peak RSS: one invocation on the largest batch)\n")
    table(lambda n: n == MAIN_SIZE, True)
    print("\n## Every size\n")
    table(lambda n: True, False)

    extra = load(results / "extra.jsonl")
    if extra:
        print("\n## Fan-out, cold start, sizes\n")
        for e in extra:
            print("- " + json.dumps(e))


if __name__ == "__main__":
    main(sys.argv[1])
