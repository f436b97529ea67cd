"""What the passes after the grid share: the run's calibration and the cells they attack."""
from bench.run.passes import cells_to_attack, run_calibration


def test_the_runs_thresholds_are_reused_per_recognizer():
    meta = {"threshold:lfw:dlib": {"value": 0.61}, "threshold:celeba:dlib": {"value": 0.5}}
    assert run_calibration(meta, "lfw", ["dlib", "facenet-casia"]) == {("threshold", "dlib"): 0.61}


def test_reference_cells_come_first_once_then_the_selected_ones():
    methods = [("original", None), ("blur", None), ("kpdp", 1.0), ("kpdp", 4.0)]
    todo = cells_to_attack(methods, run_seeds=[0, 1], seeds=[0, 1], selected=lambda m, e: m == "kpdp" and e == 1.0)
    assert todo == [("original", None, 0), ("blur", None, 0), ("kpdp", 1.0, 0), ("kpdp", 1.0, 1)]
    assert cells_to_attack(methods, [0], [0], lambda m, e: True).count(("blur", None, 0)) == 1


def test_sanity_verdicts_are_logged_and_merged_with_the_runs_earlier_ones():
    from bench.metrics.registry import Row
    from bench.run.passes import check_sanity

    class Store:
        def set_meta(self, **kw):
            self.meta = kw

    rows = {"original": [Row("reid_rank1", "max", 0.98, 50, 0.95, 1.0, "ignorant"),
                         Row("reid_rank1", "max", 0.10, 50, 0.03, 0.2, "broken")]}
    meta = {"attacker_sanity:lfw": {"verdicts": {"lazy": "ok"}, "min_original_rank1": 0.9}}
    store, said = Store(), []
    invalid = check_sanity(store, meta, "lfw", rows, ["broken"], said.append)
    assert list(invalid) == ["broken"] and "attacker 'broken' failed its sanity check on lfw" in said[0]
    recorded = store.meta["attacker_sanity:lfw"]
    assert recorded["verdicts"] == {"lazy": "ok", "broken": invalid["broken"]} and recorded["min_original_rank1"] == 0.9


def test_a_pass_counts_the_outcomes_another_pass_kept_in_its_strongest_attack(tmp_path):
    """recon-* after semi-finetune (or the reverse): the second pass's strongest attack must count
    the first's per-probe hits, read back from the store; a run whose probes changed is left out."""
    import numpy as np

    from bench.attackers.outcomes import Outcomes
    from bench.attackers.reid_group import attack_rows
    from bench.metrics.reid_scores import REID_METRICS, REID_RANK1
    from bench.metrics.registry import STRONGEST
    from bench.run.passes import add_kept_outcomes, keep_outcomes
    from bench.store.results import ResultStore

    groups = np.repeat(np.arange(10), 2)  # 20 probes of 10 people
    weak = {m: np.zeros(20, bool) for m in REID_METRICS}
    strong = {m: np.arange(20) < 15 for m in REID_METRICS}  # re-identifies 15 of 20
    store = ResultStore(tmp_path)
    first = Outcomes(hits={("semi-finetune", "facenet-casia"): strong}, groups=groups, pair_groups=groups)
    keep_outcomes(store, "lfw", "blur", None, 0, first, ["semi-finetune"])

    second = Outcomes(hits={("recon-wiener", "dlib"): weak}, groups=groups, pair_groups=groups)
    added = add_kept_outcomes(store, "lfw", "blur", None, 0, second, skip={"recon-wiener"})
    assert added == {"semi-finetune": ["facenet-casia"]}
    rows = attack_rows(second, [REID_RANK1], {"recon-wiener": ["dlib"], **added}, {}, boot_seed=0)
    best = [r for r in rows if r.attacker == STRONGEST]
    assert len(best) == 1 and best[0].value == 0.75

    other_probes = Outcomes(hits={}, groups=np.arange(30), pair_groups=np.arange(30))
    assert add_kept_outcomes(store, "lfw", "blur", None, 0, other_probes, skip=set()) == {}
    assert add_kept_outcomes(store, "lfw", "kpdp", 1.0, 0, second, skip=set()) == {}  # another cell: nothing kept
    store.close()
