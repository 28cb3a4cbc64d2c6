"""Plotly figure builders from plain data (lists, dicts, DataFrames): no streamlit, no torch.

Pages pass the figures to `st.plotly_chart`; tests can inspect their data directly.
"""
from __future__ import annotations

import plotly.graph_objects as go

LAYOUT = dict(margin=dict(l=10, r=10, t=40, b=10), height=320, legend=dict(orientation="h", y=-0.2))


def styled(fig: go.Figure, title: str) -> go.Figure:
    fig.update_layout(title=title, **LAYOUT)
    return fig
