#!/usr/bin/env python3
"""Regenerate the README's quantization tables and plot from committed results.

Reads ``benchmarks/results/quantization-*.json`` (written by
bench_quantization.py), rewrites the block between the markers
``<!-- quantization:begin -->`` and ``<!-- quantization:end -->`` in README.md,
and draws ``docs/bench/quantization.png`` (recall vs single-thread QPS per
engine and kind). One command, no measurement:

    python benchmarks/readme_tables.py            # --check: fail if README is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- quantization:begin -->", "<!-- quantization:end -->"
ORDER = ["vjson-float32", "vjson-int8", "vjson-binary", "hnswlib", "usearch-i8"]


def ordered(engines: dict) -> list[str]:
    """Engines in ORDER, each followed by its oversample variants (KIND@F, by F)."""
    out = []
    for e in ORDER:
        if e in engines:
            out.append(e)
        out += sorted((v for v in engines if v.startswith(e + "@")), key=lambda v: float(v.split("@")[1]))
    return out


def oversample_curve(ds: dict, defaults: dict) -> list[str]:
    """The binary kind against int8 across oversample factors: the best recall each reaches and its speed."""
    names = [e for e in ordered(ds["engines"]) if e.startswith(("vjson-binary", "vjson-int8"))]
    if not any("@" in e for e in names):
        return []
    # the kinds' default factors, as the run recorded them (keys: the core's kind numbers)
    default = {"vjson-int8": defaults.get("2"), "vjson-binary": defaults.get("3")}
    out = ["| kind, oversample | best recall@10 | QPS at recall 0.95 | QPS at the best recall |",
           "|---|---:|---:|---:|"]
    for e in names:
        r = ds["engines"][e]
        best = max(r["sweep"], key=lambda p: (p["recall"], p["qps_1t"]))
        factor = r.get("oversample") or default.get(e) or "default"
        out.append(f"| {e.split('@')[0].removeprefix('vjson-')}, {factor} | {best['recall']:.3f} | "
                   f"{fmt(r['at_target']['qps'])} | {fmt(best['qps_1t'])} |")
    return out


def load(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("quantization-*.json"))]


def fmt(x, spec="{:,.0f}"):
    return "-" if x is None else spec.format(x)


def tables(runs: list[dict]) -> str:
    out = []
    for run in runs:
        v = run["versions"]
        hb = run.get("hnswlib_build", {})
        for ds in run["datasets"]:
            eng = {e: ds["engines"][e] for e in ordered(ds["engines"])}
            ratios = ds["ratios"]
            out.append(f"**{ds['name']}**: {ds['n']:,} x {ds['dim']}-d {ds['metric']}, {ds['queries']:,} queries; "
                       f"commit `{run['git']['commit']}`, {run['started']}, {run['machine']['cpu']} "
                       f"({run['machine']['cpus_usable']} CPUs, shared); vjson {v['vjson']}, hnswlib {v['hnswlib']} "
                       f"({', '.join(hb.get('wheel_tags', [])) or '?'}; {hb.get('instructions_with_ymm', '?')} ymm / "
                       f"{hb.get('instructions_with_zmm', '?')} zmm instructions), usearch {v['usearch']}.\n")
            out.append("| engine | QPS at recall@10 0.95 (1 thread) | ef there | best recall | "
                       "build (median, s) | RAM B/vector | disk B/vector | RSS after queries |")
            out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
            for e, r in eng.items():
                at = r["at_target"]
                best = max(p["recall"] for p in r["sweep"])
                rss = r.get("rss", {}).get("rss")
                if "@" in e:  # a variant shares its kind's database: only the speed differs
                    out.append(f"| {e} | {fmt(at['qps'])} | {fmt(at['ef'], '{:.0f}')} | {best:.3f} | | | | |")
                    continue
                out.append(f"| {e} | {fmt(at['qps'])} | {fmt(at['ef'], '{:.0f}')} | {best:.3f} | "
                           f"{fmt(ds['build']['median_s'].get(e), '{:.2f}')} | {fmt(r.get('ram_bytes_per_vector'))} | "
                           f"{fmt(r.get('disk_bytes_per_vector'))} | {fmt(rss / 2**20 if rss else None, '{:.0f} MiB')} |")
            out.append("")
            out.append("| ratio | value |")
            out.append("|---|---:|")
            for key, val in ratios.items():
                if key != "target_recall":
                    out.append(f"| {key} | {val:.2f}x |")
            curve = oversample_curve(ds, run["params"].get("oversample_default", {}))
            if curve:
                out.append("\nThe binary kind across oversample factors (`KIND@F`: the same database "
                           "searched with `oversample=F`), against int8:\n")
                out += curve
            out.append(f"\nBuilds: {ds['build']['reps']} per engine on the first {ds['build']['rows']:,} rows, "
                       f"{ds['build']['threads']} threads, interleaved. RSS: a fresh process opens the database "
                       "read-only and runs every query once at ef 64.\n")
    return "\n".join(out)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sets = [ds for run in runs for ds in run["datasets"]]
    fig, axes = plt.subplots(1, len(sets), figsize=(7 * len(sets), 5), squeeze=False)
    for ax, ds in zip(axes[0], sets):
        for e in ordered(ds["engines"]):
            sw = ds["engines"][e]["sweep"]
            ax.plot([p["recall"] for p in sw], [p["qps_1t"] for p in sw], "o--" if "@" in e else "o-",
                    label=e, lw=1 if "@" in e else 1.5)
        ax.axvline(0.95, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries / second, 1 thread")
        ax.set_title(f"{ds['name']}: {ds['n']:,} x {ds['dim']}-d")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--plot", default=str(ROOT / "docs" / "bench" / "quantization.png"))
    ap.add_argument("--check", action="store_true", help="exit 1 if the README differs from the results")
    args = ap.parse_args(argv)
    runs = load(Path(args.results))
    if not runs:
        print("no results/quantization-*.json", file=sys.stderr)
        return 1
    readme = Path(args.readme)
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"{readme}: markers {BEGIN} / {END} missing", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{tables(runs)}\n{END}{tail}"
    if args.check:
        return 0 if new == text else 1
    readme.write_text(new)
    plot(runs, Path(args.plot))
    print(f"wrote {readme} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
