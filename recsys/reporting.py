"""Small helpers that turn results into what a person reads in the Dagster UI."""

from __future__ import annotations

import polars as pl


def markdown_table(frame: pl.DataFrame, limit: int = 10) -> str:
    """The first rows of a frame as a Markdown table (the UI renders Markdown metadata)."""
    head = frame.head(limit)
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


# Line colours of the MSE chart: the champion stands out, baselines recede.
CHART_STYLE = {
    "champion": {"color": "#4F43DD", "linewidth": 2.4, "label": "champion"},
    "bias": {"color": "#D97706", "linewidth": 1.4, "label": "user+item bias"},
    "bias_event_time": {"color": "#059669", "linewidth": 1.4, "label": "bias, user term at event time"},
    "global_mean": {"color": "#9CA3AF", "linewidth": 1.4, "label": "global mean"},
}


def mse_chart_png(history: pl.DataFrame, title: str = "MSE per day, scored before training on the day") -> bytes:
    """A line chart of each model's MSE per day (columns `partition_key`, one per model, `promoted`),
    promotions of the champion marked: what a person reads at a glance. PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    from matplotlib import pyplot as plt

    days = history["partition_key"].to_list()
    figure, axes = plt.subplots(figsize=(10, 3.6), dpi=100)
    for model, style in CHART_STYLE.items():
        if model in history.columns:
            axes.plot(range(len(days)), history[model].to_list(), marker="o", markersize=3, **style)
    promoted = [i for i, flag in enumerate(history["promoted"].to_list()) if flag]
    if promoted and "champion" in history.columns:
        champion = history["champion"].to_list()
        axes.scatter(promoted, [champion[i] for i in promoted], marker="*", s=140, color="#4F43DD", zorder=5, label="new champion")
    step = max(1, len(days) // 10)
    axes.set_xticks(range(0, len(days), step), [d[5:] for d in days[::step]])
    axes.set_xlabel("day (partition)")
    axes.set_ylabel("MSE")
    axes.set_title(title, fontsize=11)
    axes.grid(alpha=0.3)
    # Beside the plot, not over the lines.
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def markdown_image(png: bytes, alt: str) -> str:
    """A PNG inlined into Markdown metadata, so the UI shows it without a file server."""
    import base64

    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
