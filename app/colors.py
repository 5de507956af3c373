"""Colours shared by the views and the command line (no Qt here)."""

# Distinct on both the light and the dark theme and on the viridis heatmap.
PALETTE = [
    "#e6194b",
    "#3cb44b",
    "#4363d8",
    "#f58231",
    "#911eb4",
    "#42d4f4",
    "#f032e6",
    "#bfef45",
    "#fabed4",
    "#dcbeff",
]
