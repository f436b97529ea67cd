"""``bench compare RUN --methods A,B [--metric M]``: the paired difference of two cells' strongest
attacks, or of a utility metric (:mod:`bench.run.compare`), a thin shell over
:func:`bench.run.compare.compare` and :func:`bench.run.compare.compare_utility`."""
from __future__ import annotations


def _eps(text: str | None) -> tuple:
    if not text:
        return None, None
    parts = [float(x) for x in text.split(",")]
    if len(parts) not in (1, 2):
        raise ValueError(f"--eps takes one ε for both methods or one per method, got {text!r}")
    return (parts[0], parts[-1])


def cmd_compare(a) -> int:
    from bench.run.compare import PAIRED_METRICS, compare, compare_utility
    from bench.methods import split_specs

    methods = split_specs(a.methods)
    if len(methods) != 2:
        raise ValueError(f"--methods takes exactly two method specs, got {len(methods)}: {a.methods!r}")
    eps_a, eps_b = _eps(a.eps)
    if a.metric not in PAIRED_METRICS:
        diffs = compare_utility(a.run, methods[0], methods[1], eps_a, eps_b, metric=a.metric, dataset=a.dataset,
                                seed=a.seed)
        if not diffs:
            raise ValueError("no utility metric of this run pairs on these two cells")
        print(f"{a.metric}, paired identity bootstrap (95 %) on the images both cells measured "
              f"({diffs[0].n_probes} images of {diffs[0].n_people} people for {diffs[0].metric})")
        print(f"  A  {methods[0]}\n  B  {methods[1]}")
        for d in diffs:
            label = f"{d.metric}[{d.backend}]" if d.backend else d.metric
            same_n = (d.n_probes, d.n_people) == (diffs[0].n_probes, diffs[0].n_people)
            _print_difference(d, label if same_n else f"{label} ({d.n_probes} images of {d.n_people} people)")
        return 0
    d = compare(a.run, methods[0], methods[1], eps_a, eps_b, metric=a.metric, dataset=a.dataset, seed=a.seed)
    print(f"{d.metric}, strongest valid attack, {d.n_probes} probes of {d.n_people} people, paired identity "
          "bootstrap (95 %)")
    for tag, m, value, (lo, hi), who in (("A", methods[0], d.a, d.a_interval, d.a_attack),
                                         ("B", methods[1], d.b, d.b_interval, d.b_attack)):
        print(f"  {tag}  {value:.3f} [{lo:.3f}, {hi:.3f}]  {who}  {m}")
    lo, hi = d.interval
    print(f"  A - B  {d.difference:+.3f} [{lo:+.3f}, {hi:+.3f}]: {_verdict(d)}")
    return 0


def _verdict(d) -> str:
    return "the data support a difference" if d.apart else "no difference the data support (the interval holds 0)"


def _print_difference(d, label: str) -> None:
    (alo, ahi), (blo, bhi), (lo, hi) = d.a_interval, d.b_interval, d.interval
    print(f"  {label or d.metric}: A {d.a:.3f} [{alo:.3f}, {ahi:.3f}]  B {d.b:.3f} [{blo:.3f}, {bhi:.3f}]  "
          f"A - B {_signed(d.difference)} [{_signed(lo)}, {_signed(hi)}]: {_verdict(d)}")


def _signed(x: float) -> str:
    """Three decimals, or two significant digits where three decimals would print a nonzero as 0."""
    return f"{x:+.3f}" if x == 0 or abs(x) >= 5e-4 else f"{x:+.1e}"


def add_commands(sub):
    s = sub.add_parser("compare", help="paired difference of two cells' strongest re-identification (or a utility "
                                       "metric), same probes")
    s.add_argument("run", help="a run directory (its results.sqlite)")
    s.add_argument("--methods", required=True, help="two method specs, A,B (brackets keep their commas)")
    s.add_argument("--eps", help="one ε for both, or two (A,B); ignored for a method without ε")
    s.add_argument("--metric", default="reid_rank1",
                   help="reid_rank1 (default), reid_rank1_same or intrusion_rate: the strongest attack; or a utility "
                        "metric that pairs per image (expression_agreement, attribute_agreement, identity_diversity, "
                        "landmark_nme, pose_error, seam_edge_ratio, skin_tone_error, ...; not FID/KID); all: every utility "
                        "metric that pairs")
    s.add_argument("--dataset", help="the run's data set to compare on (default: its first)")
    s.add_argument("--seed", type=int, help="the run seed of both cells (default: the run's first)")
    s.set_defaults(func=cmd_compare)
    return sub
