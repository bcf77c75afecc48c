"""The benchmark's results as Markdown tables, a PNG plot and ratios against an earlier run."""

from __future__ import annotations

from pathlib import Path

from realtime.bench.grid import KEY


def markdown(rows: list[dict]) -> str:
    lines = ["| model | backend | precision | batch | size | impl | fps | p50 ms | p99 ms | "
             "speed-up | max Δp | mask Dice | peak MB |", "|" + "---|" * 13]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | "
                         f"{r['size']} | {r['impl']} | failed: {r['error']} |||||||")
            continue
        peak = f"{r['peak_memory_mb']:.0f}" if r["peak_memory_mb"] is not None else "-"
        speedup = f"{r['speedup']:.2f}×" if r.get("speedup") else "-"
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['precision']} | {r['batch']} | {r['size']} | "
            f"{r['impl']} | {r['fps']:.1f} | {r['latency_ms']['p50']:.1f} | "
            f"{r['latency_ms']['p99']:.1f} | {speedup} | {r['max_prob_diff']:.1e} | "
            f"{r['mask_dice']:.3f} | {peak} |")
    return "\n".join(lines)


def markdown_e2e(rows: list[dict]) -> str:
    lines = ["| pipeline | size | backend | fps | details |", "|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['pipeline']} | | | failed | {r['error']} |")
            continue
        if r["pipeline"] == "annotate":
            b = r["busy_s"]
            detail = (f"busy s: decode {b['decode_s']:.1f}, infer {b['infer_s']:.1f}, write "
                      f"{b['write_s']:.1f} (wall {r['wall_s']:.1f})")
            fps = f"{r['fps']:.1f}"
        else:
            lat = r["latency_ms"]
            detail = (f"shown of a {r['source_fps']} fps source; latency p50 {lat['p50']:.1f} / "
                      f"p99 {lat['p99']:.1f} ms, mask age p50 {r['mask_age_ms']['p50']:.0f} ms")
            fps = f"{r['fps']['displayed']:.1f} shown, {r['fps']['processed']:.1f} segmented"
        lines.append(f"| {r['pipeline']} | {r['size']} | {r['backend']} | {fps} | {detail} |")
    return "\n".join(lines)


def compare(new: dict, old: dict) -> str:
    lines = [f"compared with {old['env'].get('cpu')} / {old['env'].get('gpu') or 'no GPU'} "
             f"({old.get('date')})", "| model | backend | precision | batch | size | impl | "
             "old fps | new fps | ratio |", "|" + "---|" * 9]
    index = {tuple(r[k] for k in KEY): r for r in old["results"] if r.get("fps")}
    for r in new["results"]:
        before = index.get(tuple(r[k] for k in KEY))
        if before is None or not r.get("fps"):
            continue
        lines.append(f"| {' | '.join(str(r[k]) for k in KEY)} | {before['fps']:.1f} | "
                     f"{r['fps']:.1f} | {r['fps'] / before['fps']:.2f}× |")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in result["results"] if r.get("fps")]
    labels = [f"{r['model']} {r['size']}\n{r['backend']} {r['precision']} b{r['batch']}"
              for r in rows]
    groups = list(dict.fromkeys(labels))
    impls = list(dict.fromkeys(r["impl"] for r in rows))
    width = 0.8 / max(1, len(impls))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups) + 2), 4.2), dpi=110)
    for j, impl in enumerate(impls):
        xs, ys = [], []
        for r, label in zip(rows, labels):
            if r["impl"] == impl:
                xs.append(groups.index(label) + (j - (len(impls) - 1) / 2) * width)
                ys.append(r["fps"])
        bars = ax.bar(xs, ys, width, label=impl)
        ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylabel("frames per second (batch / median latency)")
    env = result["env"]
    ax.set_title(f"M2SNet frames/s — {env.get('gpu') or env.get('cpu')}, "
                 f"{env.get('threads')} threads, torch {env.get('torch')} — {result['date']}",
                 fontsize=9)
    ax.legend(title="subtraction unit", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
