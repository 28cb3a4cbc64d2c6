"""Plotly figure builders from plain data (lists, dicts, DataFrames): no streamlit, no torch.

Pages pass the figures to `st.plotly_chart`; tests can inspect their data directly.
"""
from __future__ import annotations

import plotly.graph_objects as go

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.2))
# Runs are told apart by colour on every chart of a page: a qualitative palette (Tableau 10)
# whose neighbours differ in hue. Streamlit's own theme would draw two runs in two blues.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#76b7b2", "#edc948", "#ff9da7",
           "#9c755f", "#bab0ac")


def run_colors(names: list[str]) -> dict[str, str]:
    """A distinct colour for each name, in order; pass the same mapping to every chart of a page."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def styled(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, **LAYOUT)
    return fig


def class_balance(names: list[str], counts: list[int], title: str, count_label: str) -> go.Figure:
    """Images per class as bars, with the mean as a dashed line: imbalance shows at a glance."""
    fig = go.Figure(go.Bar(x=names, y=counts, name=count_label, hovertemplate="%{x}: %{y}<extra></extra>"))
    if counts:
        fig.add_hline(y=sum(counts) / len(counts), line_dash="dash", line_color="gray")
    fig.update_yaxes(title=count_label)
    return styled(fig, title)


# --- Compare and Explain ----------------------------------------------------------------------

EPOCH_TICKS = 12


SPLIT_MARKERS = {"train": "circle", "val": "diamond"}  # a one-epoch run's two dots must differ
BIG_MARKERS = 30  # epochs up to which the markers are drawn large


def run_curves(runs: dict[str, list[dict]], metric: str, title: str, train_label: str, val_label: str,
               x_label: str = "epoch", colors: dict[str, str] | None = None, percent: bool = False,
               x: str = "epoch", x_scale: float = 1.0) -> go.Figure:
    """One metric ("loss" or "acc") per epoch for several runs: a colour per run (`colors`, else
    the palette in order), train dashed with round markers, val solid with diamonds; `x_label`
    is the axis title in the page's language. A single run (the Training page) draws train and
    val in two colours too, and names them alone in the legend.

    The x of each point is its record's `x` field divided by `x_scale` (e.g. "elapsed" seconds
    shown in minutes: 60); a point whose x is missing is left out."""
    fig = go.Figure()
    colors = colors or run_colors(list(runs))
    single = len(runs) == 1
    longest = max((len(e) for e in runs.values()), default=0)
    size = 8 if longest <= BIG_MARKERS else 4  # a long run's markers would merge into a band
    for run, epochs in runs.items():
        epochs = [e for e in epochs if e.get(x) is not None]
        xs = [e[x] / x_scale for e in epochs]
        for i, (split, dash, label) in enumerate((("train", "dash", train_label), ("val", "solid", val_label))):
            color = PALETTE[i] if single else colors.get(run, PALETTE[0])
            y = [e.get(f"{split}_{metric}") for e in epochs]
            if any(v is not None for v in y):
                fig.add_trace(go.Scatter(x=xs, y=y, mode="lines+markers", name=label if single else f"{run} · {label}",
                                         line=dict(color=color, dash=dash),
                                         marker=dict(color=color, symbol=SPLIT_MARKERS[split], size=size),
                                         legendgroup=run))
    # A tick per epoch only while they are few: Plotly measures every tick label on every redraw,
    # so a label per epoch made a long run's live chart slower to draw at each epoch.
    if x == "epoch":
        fig.update_xaxes(title=x_label, dtick=1 if longest <= EPOCH_TICKS else None)
    else:
        fig.update_xaxes(title=x_label, rangemode="tozero", hoverformat=",.2~f")
    if percent:
        fig.update_yaxes(tickformat=".0%", hoverformat=".1%")
    fig = styled(fig, title)
    # The legend under the axis title, not on it: anchored by its top, below the tick labels.
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


DARK_TEXT, LIGHT_TEXT = "#1f2937", "#ffffff"


def cell_text_colors(matrix: list[list[float]]) -> list[list[str]]:
    """White numbers on the darker half of the Blues scale, dark ones on the lighter half: every
    cell stays readable whatever its value (the scale runs from the smallest to the largest value)."""
    values = [v for row in matrix for v in row]
    low, high = (min(values), max(values)) if values else (0, 0)
    span = (high - low) or 1
    return [[LIGHT_TEXT if (v - low) / span > 0.5 else DARK_TEXT for v in row] for row in matrix]


def confusion_matrix(matrix: list[list[float]], names: list[str], title: str, true_label: str, pred_label: str,
                     percent: bool = False, selected: tuple[int, int] | None = None,
                     number_format: str = ".1%") -> go.Figure:
    """A confusion matrix whose cells can be clicked (true class down, predicted across).

    Streamlit's selection events do not fire on heatmaps, so the colours come from a heatmap and
    the clicks from an invisible square marker on each cell; `customdata` holds (true, pred).
    `selected` (true, pred) is outlined, so the cell whose images are shown stays visible.
    """
    n = len(names)
    height = max(320, 40 * n + 120)
    # Click targets smaller than a cell (about (height - 110) / n px high, less in a narrow
    # column): overlapping markers would let a click pick the neighbouring cell.
    marker_px = max(6, int(0.6 * (height - 110) / max(n, 1)))
    cells = [(i, j) for i in range(n) for j in range(n)]
    text = [format(matrix[i][j], number_format) if percent else f"{int(matrix[i][j])}" for i, j in cells]
    colors = cell_text_colors(matrix)
    fig = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=[names[j] for _, j in cells], y=[names[i] for i, _ in cells], mode="markers+text", text=text,
        customdata=[[i, j] for i, j in cells],
        textfont=dict(size=11 if n <= 6 else 9, color=[colors[i][j] for i, j in cells]),
        marker=dict(symbol="square", size=marker_px, color="rgba(0,0,0,0)"),
        hovertemplate=f"{true_label}: %{{y}}<br>{pred_label}: %{{x}}<br>%{{text}}<extra></extra>", showlegend=False,
    ))
    if selected is not None and all(0 <= k < n for k in selected):
        i, j = selected
        fig.add_shape(type="rect", x0=j - 0.5, x1=j + 0.5, y0=i - 0.5, y1=i + 0.5, xref="x", yref="y",
                      line=dict(color="#f28e2b", width=4), fillcolor="rgba(0,0,0,0)")
    fig.update_xaxes(title=pred_label, side="bottom", type="category")
    fig.update_yaxes(title=true_label, autorange="reversed", type="category", scaleanchor="x")
    fig = styled(fig, title)
    fig.update_layout(height=height, clickmode="event+select", dragmode=False)
    return fig


def grouped_bars(categories: list[str], series: dict[str, list[float]], title: str, y_label: str,
                 colors: dict[str, str] | None = None, percent: bool = False) -> go.Figure:
    """Bars grouped by category, one colour per series (e.g. per-class F1, one bar per run)."""
    colors = colors or run_colors(list(series))
    fig = go.Figure([go.Bar(x=categories, y=values, name=name, marker_color=colors.get(name, PALETTE[0]))
                     for name, values in series.items()])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=y_label, range=[0, 1.05])
    if percent:
        fig.update_yaxes(tickformat=".0%", hoverformat=".1%")
    return styled(fig, title)


def topk_bars(names: list[str], probs: list[float], title: str, highlight: str | None = None) -> go.Figure:
    """Top-k class probabilities, best on top; `highlight` (e.g. the true class) in green."""
    colors = ["#2ca02c" if n == highlight else "#1f77b4" for n in names]
    fig = go.Figure(go.Bar(x=probs, y=names, orientation="h", marker_color=colors,
                           text=[f"{p:.1%}" for p in probs], textposition="auto",
                           hovertemplate="%{y}: %{x:.2%}<extra></extra>"))
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_yaxes(autorange="reversed", type="category")
    fig = styled(fig, title)
    fig.update_layout(height=max(200, 36 * len(names) + 80))
    return fig


# --- Training ---------------------------------------------------------------------------------

def smooth(values: list[float], weight: float = 0.9) -> list[float]:
    """TensorBoard-style exponential moving average, bias-corrected so it starts at the data."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i))
    return out


LIVE_POINTS = 600


def thin(values: list, max_points: int = LIVE_POINTS) -> list:
    """Every k-th value (and the last), at most about `max_points`: a long run's live chart stays
    light to send and to draw, every second, in every tab that watches it."""
    if len(values) <= max_points:
        return values
    k = -(-len(values) // max_points)
    return values[::k] + ([values[-1]] if (len(values) - 1) % k else [])


def _legend_below(fig: go.Figure) -> go.Figure:
    """The legend under the x axis's title, not on it: anchored by its top, below the tick labels."""
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.3, x=0))
    return fig


def iteration_loss(records: list[dict], title: str, raw_label: str, smooth_label: str,
                   x_label: str = "step") -> go.Figure:
    """Loss every few steps: the raw values faint, their moving average (of all of them) bold."""
    steps = thin([r["step"] for r in records])
    losses = [r["loss"] for r in records]
    fig = go.Figure([
        go.Scatter(x=steps, y=thin(losses), mode="lines", name=raw_label, line=dict(color="rgba(59,111,216,0.3)")),
        go.Scatter(x=steps, y=thin(smooth(losses)), mode="lines", name=smooth_label,
                   line=dict(color="#3b6fd8", width=2)),
    ])
    fig.update_xaxes(title=x_label)
    return _legend_below(styled(fig, title))


LOG_SPAN = 10.0  # a learning rate that changes by this factor or more gets a log axis
LR_TICKS = 5


def lr_curve(records: list[dict], title: str, x_label: str = "step") -> go.Figure:
    """The learning rate per step: on a log axis when it spans an order of magnitude or more
    (step decays, one-cycle), else linear (a constant rate on a log axis showed a crowd of
    labels around one value); few ticks either way."""
    rates = [r["lr"] for r in records]
    fig = go.Figure(go.Scatter(x=thin([r["step"] for r in records]), y=thin(rates), mode="lines",
                               line=dict(color="#00a36c"), showlegend=False))
    positive = [r for r in rates if r > 0]
    if positive and min(positive) * LOG_SPAN <= max(positive) and len(positive) == len(rates):
        fig.update_yaxes(type="log", exponentformat="power", nticks=LR_TICKS)
    else:
        low, high = min(rates, default=0.0), max(rates, default=0.0)
        pad = (high - low) * 0.1 or abs(high) * 0.5 or 1.0  # a constant rate sits mid-height
        fig.update_yaxes(type="linear", range=[max(0.0, low - pad), high + pad],
                         nticks=LR_TICKS, tickformat=".1e")
    fig.update_xaxes(title=x_label, nticks=LR_TICKS)
    return styled(fig, title)
