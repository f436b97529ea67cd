"""Plot a generator training log (``losses.csv`` of ``python -m kpdp train``) as one PNG of small
panels, one per logged loss: ``python scripts/plot_losses.py OUT/losses.csv reports/training/x.png``."""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot(csv: str, png: str) -> None:
    df = pd.read_csv(csv)
    cols = [c for c in df.columns if c not in ("step", "sec_per_step")]
    fig, axes = plt.subplots(1, len(cols), figsize=(2.6 * len(cols), 2.4), constrained_layout=True)
    for ax, c in zip(axes, cols):
        ax.plot(df["step"], df[c], lw=1)
        ax.set_title(c, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{csv}: {len(df)} log points, median {df['sec_per_step'].median():.2f} s/step", fontsize=9)
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    plot(sys.argv[1], sys.argv[2])
