"""``metrics.csv`` (long format, a public interface: keep the columns stable) and ``summary.md``."""
from __future__ import annotations

import pandas as pd

from .store import CSV_COLUMNS

SUMMARY_METRICS = [("reid_rank1", "max"), ("reid_rank1_same", "max"), ("reid_tar_far1e-3", "max"),
                   ("intrusion_rate", "max"), ("detection_rate", "mtcnn"), ("detection_rate", "dlib-hog"),
                   ("fid", "inception-2015-12-05"), ("kid", "inception-2015-12-05"), ("landmark_nme", "dlib68"),
                   ("landmark_fail_rate", "dlib68"), ("landmark_nme_target", "dlib68"), ("bg_psnr", ""),
                   ("bg_ssim", ""), ("sec_per_image", ""), ("skipped", "")]


def column_name(metric: str, backend: str) -> str:
    return metric + (f"[{backend}]" if backend and backend != "inception-2015-12-05" else "")


def wide_table(df: pd.DataFrame) -> pd.DataFrame:
    """methods (x ε) as rows, the headline metrics as columns, seeds averaged."""
    if df.empty:
        return pd.DataFrame()
    d = df.copy()
    d["col"] = [column_name(m, b) for m, b in zip(d["metric"], d["backend"])]
    order = [column_name(m, b) for m, b in SUMMARY_METRICS]
    d = d[d["col"].isin(order)]
    t = d.pivot_table(index=["dataset", "method", "eps"], columns="col", values="value", aggfunc="mean", sort=False)
    return t[[c for c in order if c in t.columns]]


def markdown_table(t: pd.DataFrame) -> str:
    if t.empty:
        return "(no results)\n"
    t = t.reset_index()
    cols = list(t.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in t.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_exports(store, df: pd.DataFrame) -> None:
    df[CSV_COLUMNS].to_csv(store.dir / "metrics.csv", index=False)
    skipped = store.skipped()
    text = "# Summary\n\n" + markdown_table(wide_table(df))
    text += f"\nSkipped images: {len(skipped)}\n\n"
    if skipped:
        text += "| dataset | image | stage | reason |\n|---|---|---|---|\n"
        text += "".join(f"| {d} | {i} | {st} | {r} |\n" for d, i, _, st, r in skipped)
    (store.dir / "summary.md").write_text(text)
