"""Plotly figure builders from plain data (lists, dicts, DataFrames): no streamlit, no torch.

Pages pass the figures to `st.plotly_chart`; tests can inspect their data directly.
"""
from __future__ import annotations

import plotly.graph_objects as go

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.2))


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
