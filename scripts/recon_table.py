"""The table of reports/recon/README.md: cross-image rank-1 (the maximum over the recognizers) of
every attacker on each cell of a run's ``metrics.csv``, the strongest embedding attacker (before
the reconstruction attackers) and the reconstruction attackers, each with its 95 % interval.
Several ``metrics.csv`` (copies of one run, each attacked on other cells) are read in order, each
cell from the first that holds reconstruction rows for it.

    python scripts/recon_table.py runs/recon-1000/metrics.csv [more metrics.csv ...]
"""
import sys

import pandas as pd

EMBEDDING = ["ignorant", "lazy", "semi-linear", "semi-wccn", "semi-lda", "semi-finetune"]
RECON = ["recon-wiener", "recon-learned"]


def cell(r) -> str:
    return f"{r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]"


def main(*paths: str) -> None:
    parts, seen = [], set()
    for path in paths:
        df = pd.read_csv(path)
        df = df[(df.metric == "reid_rank1") & (df.backend == "max")]
        key = df.method + "@" + df.eps.fillna(-1.0).astype(str)  # pandas 3 keeps NaN through astype(str)
        attacked = set(key[df.attacker.isin(RECON)]) - seen
        parts.append(df[key.isin(attacked)])
        seen |= attacked
    df = pd.concat(parts)
    rows = []
    for (method, eps), g in df.groupby(["method", "eps"], dropna=False, sort=False):
        by = {a: r for a, r in zip(g.attacker, g.itertuples())}
        valid = {a: r for a, r in by.items() if r.valid == 1}
        emb = [valid[a] for a in EMBEDDING if a in valid]
        best_emb = max(emb, key=lambda r: r.value) if emb else None
        name = method if pd.isna(eps) else f"{method} ε {eps:g}"
        line = [name, str(int(g.n.iloc[0]))]
        line.append(f"{cell(best_emb)} ({best_emb.attacker})" if best_emb is not None else "–")
        for a in RECON:
            r = by.get(a)
            line.append("–" if r is None else cell(r) + ("" if r.valid == 1 else " (invalid)"))
        wins = []
        for a in RECON:
            r = valid.get(a)
            if r is not None and best_emb is not None and r.ci_low > best_emb.ci_high:
                wins.append(f"{a}, intervals apart")
            elif r is not None and best_emb is not None and r.value > best_emb.value:
                wins.append(f"{a}, intervals overlap")
        line.append("; ".join(wins) or "no")
        rows.append(line)
    head = ["cell", "probes", "strongest embedding attacker", "recon-wiener", "recon-learned", "higher than the strongest"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for line in rows:
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:])
