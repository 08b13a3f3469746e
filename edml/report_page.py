"""The pieces of edml's HTML reports (the trainer's, batch scoring's): one self-contained
page, plots inline as PNG, tables from data frames."""

from __future__ import annotations

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

__all__ = ["figure", "page", "png", "table"]

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 960px;
       color: #222; }
table.t, table.f { border-collapse: collapse; margin: .5em 0 1.5em; }
table.t td, table.t th, table.f td, table.f th { padding: .25em .8em;
  border-bottom: 1px solid #ddd; text-align: right; }
table.f th { text-align: left; }
img { max-width: 100%; }
"""


def png(fig: Figure) -> str:
    """The figure as base64 PNG, and closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def figure(title: str, fig: Figure) -> str:
    return (f'<h2>{html.escape(title)}</h2><img alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{png(fig)}">')


def table(frame: pd.DataFrame, digits: int = 3) -> str:
    return str(frame.to_html(float_format=lambda v: f"{v:.{digits}f}", border=0, classes="t"))


def page(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style></head><body>\n"
            f"{body}\n</body></html>\n")
