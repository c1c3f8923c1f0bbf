"""The run's chart: latency against throughput per method, its ceilings drawn in."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from PIL import Image

from bench.results import Results, Series

EXTRA_CEILINGS = {
    "b_select": ("a_echo", "b2_aio_select"),
    "c_insert": ("a_echo",),
    "e_repository": ("c_insert",),
}


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


CEILING_COLORS = ("black", "darkorange", "purple")


def _ceiling(ax: Axes, results: Results, name: str, color: str) -> None:
    series = results.series.get(name)
    if series is None or not series.levels:
        return
    if len(series.levels) == 1 and series.levels[0]["concurrency"] is None:
        ax.axvline(
            series.levels[0]["throughput"], color=color, linestyle=":", label=f"ceiling {name}"
        )
        return
    _curve(ax, series, ".-", color, f"ceiling {name}")


def _batches(ax: Axes, results: Results, batches: list[Series]) -> None:
    """Projection rebuilds: events/s per view against COPY, the log read and the targets."""
    ax.bar(
        [s.name.removeprefix("Rebuild ") for s in batches],
        [s.levels[0]["throughput"] for s in batches],
        color="tab:blue",
    )
    copy = results.series.get("d_copy")
    lines = [("f_notifications", 1.0, "purple"), ("d_copy", 1.0, "black")]
    for name, factor, color in lines:
        ceiling = results.series.get(name)
        if ceiling and ceiling.levels:
            ax.axhline(
                ceiling.levels[0]["throughput"] * factor,
                color=color,
                linestyle=":",
                label=f"ceiling {name}",
            )
    if copy and copy.levels:
        ax.axhline(
            0.3 * copy.levels[0]["throughput"],
            color="red",
            linestyle="--",
            alpha=0.5,
            label="target 0.3 × COPY",
        )
    ax.axhline(20_000, color="red", linestyle="-.", alpha=0.5, label="target 20,000 events/s")
    ax.set_ylabel("events/s")
    ax.set_title("projection rebuild", fontsize=9)


def draw(results: Results, path: Path) -> Path | None:
    curves = [s for s in results.operations() if s.levels and s.levels[0]["concurrency"]]
    batches = [s for s in results.operations() if s.levels and not s.levels[0]["concurrency"]]
    panels = len(curves) + (1 if batches else 0)
    if not panels:
        return None
    columns = min(3, panels)
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.8 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax, series in zip(flat, curves, strict=False):
        _curve(ax, series, "o-", "tab:blue", series.name)
        names = (series.ceiling, *EXTRA_CEILINGS.get(series.ceiling, ()))
        for name, color in zip(names, CEILING_COLORS, strict=False):
            _ceiling(ax, results, name, color)
        ax.set_xlabel(f"throughput ({series.unit})")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.set_title(f"{series.name} ({series.workers} server worker(s))", fontsize=9)
    if batches:
        _batches(flat[len(curves)], results, batches)
    for ax in flat[:panels]:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in flat[panels:]:
        ax.set_visible(False)
    figure.suptitle(
        f"license-svc bench {results.meta.get('stamp', '')}: latency (p50 solid, p99 dashed) "
        "against throughput; ceilings measured in the same run",
        fontsize=10,
    )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=64)
    plt.close(figure)
    # A 256-colour palette keeps the committed chart small (line art loses nothing visible).
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(256)
    small.save(path, optimize=True)
    return path
