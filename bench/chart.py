"""The run's chart: latency against throughput per method, its ceilings drawn in."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.results import Results, Series

EXTRA_CEILINGS = {"b_select": ("a_echo",), "c_insert": ("a_echo",), "e_repository": ("c_insert",)}


def _curve(ax: Axes, series: Series, style: str, color: str | None, label: str) -> None:
    rows = [r for r in series.levels if r.get("p50_ms") is not None and r["calls"]]
    if not rows:
        return
    xs = [r["throughput"] for r in rows]
    (line,) = ax.plot(xs, [r["p50_ms"] for r in rows], style, color=color, label=f"{label} p50")
    ax.plot(
        xs,
        [r["p99_ms"] for r in rows],
        style.replace("-", "--"),
        color=line.get_color(),
        alpha=0.45,
        label=f"{label} p99",
    )
    for x, r in zip(xs, rows, strict=True):
        ax.annotate(
            f"c{r['concurrency']}",
            (x, r["p50_ms"]),
            fontsize=6,
            textcoords="offset points",
            xytext=(2, 3),
        )


def _ceiling(ax: Axes, results: Results, name: str) -> None:
    series = results.series.get(name)
    if series is None or not series.levels:
        return
    if len(series.levels) == 1 and series.levels[0]["concurrency"] is None:
        ax.axvline(
            series.levels[0]["throughput"], color="gray", linestyle=":", label=f"ceiling {name}"
        )
        return
    _curve(ax, series, ".-", "gray" if name == series.name else None, f"ceiling {name}")


def draw(results: Results, path: Path) -> Path | None:
    operations = [s for s in results.operations() if s.levels]
    if not operations:
        return None
    columns = min(3, len(operations))
    rows = math.ceil(len(operations) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    for ax, series in zip(axes.flat, operations, strict=False):
        if len(series.levels) == 1 and series.levels[0]["concurrency"] is None:
            ax.bar([series.name], [series.levels[0]["throughput"]], color="tab:blue")
            for name in ("d_copy", "f_notifications"):
                ceiling = results.series.get(name)
                if ceiling and ceiling.levels:
                    ax.axhline(
                        ceiling.levels[0]["throughput"],
                        color="gray",
                        linestyle=":",
                        label=f"ceiling {name}",
                    )
            ax.set_ylabel(series.unit)
        else:
            _curve(ax, series, "o-", "tab:blue", series.name)
            for name in (series.ceiling, *EXTRA_CEILINGS.get(series.ceiling, ())):
                _ceiling(ax, results, name)
            ax.set_xlabel(f"throughput ({series.unit})")
            ax.set_ylabel("latency (ms)")
            ax.set_yscale("log")
        ax.set_title(f"{series.name} ({series.workers} server worker(s))", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(operations) :]:
        ax.set_visible(False)
    figure.suptitle(f"license-svc bench {results.meta.get('stamp', '')}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path
