"""The report's faces: the sample grid re-draws exactly the measured images, and ``bench sheet``'s
contact sheet lays out chosen faces under a head per method."""
import shutil

import numpy as np
import pandas as pd

from bench.report.page import ReportSpec, write_report


def test_sample_grid_shows_exactly_the_measured_images(tmp_path):
    """Each tile is re-drawn with the run's per-image seed: its digest equals what the run stored."""
    from bench import RunConfig, evaluate
    from bench.measure.analysis import image_digest
    from bench.report.samples import measured_samples, sample_grid

    out = tmp_path / "run"
    evaluate(RunConfig(methods=["dppix", "mask-noise"], eps=[1.0, 4.0], limit=4, seeds=[3], out=str(out),
                       quiet=True, metrics=["background"], executor="local"), argv=["test"])
    seen = list(measured_samples(out, ReportSpec(eps=[1.0]), n_faces=2))  # the report's ε only, not the store's
    assert {c for _, c, *_ in seen} == {("dppix", "1.0"), ("mask-noise", "")} and len(seen) == 4
    for image_id, cell, _, _, res, digest in seen:
        assert digest is not None and image_digest(res) == digest, (image_id, cell)
    assert sample_grid([out], ReportSpec(), tmp_path, n_faces=2).is_file()
    # a committed run keeps metrics.csv only: the grid is drawn from another store, and the page says which
    committed = tmp_path / "committed"
    committed.mkdir()
    shutil.copy(out / "metrics.csv", committed / "metrics.csv")
    assert sample_grid([committed], ReportSpec(), tmp_path / "none") is None
    index = write_report([committed], tmp_path / "rep", ReportSpec(), samples_from=out)
    assert (tmp_path / "rep" / "samples.png").is_file() and "drawn from the store of run run:" in index.read_text()
    # that store holds ε = 4, which the committed table lacks: the grid shows only what the table measured
    only_eps1 = pd.read_csv(out / "metrics.csv", keep_default_na=False)
    only_eps1[only_eps1.eps.astype(str) != "4.0"].to_csv(committed / "metrics.csv", index=False)
    write_report([committed], tmp_path / "rep1", ReportSpec(), samples_from=out)
    from PIL import Image
    wide, narrow = (Image.open(d / "samples.png").size[0] for d in (tmp_path / "rep", tmp_path / "rep1"))
    assert narrow == wide * 3 // 4  # original, dppix 1, mask-noise: one column of four gone


def test_contact_sheet_has_a_row_per_face_and_a_column_per_cell(tmp_path):
    """Two sample faces under original, blur and pixelate-8: 3 tiles of 128 px per row, a head above;
    the anonymised tiles differ from the original's and from each other."""
    from PIL import Image

    from kpdp.datasets import get_dataset
    from bench.report.samples import contact_sheet

    # "original" asked for too: shown once, as the first column
    out = contact_sheet(get_dataset("lfw-sample"), [0, 1], [("original", None), ("blur", None), ("pixelate-8", None)],
                        tmp_path / "sheet.png")
    sheet = np.asarray(Image.open(out))
    assert sheet.shape[1] == 3 * 128 and sheet.shape[0] > 2 * 128
    tiles = sheet[-128:].reshape(128, 3, 128, 3).transpose(1, 0, 2, 3)  # the last face's row
    assert np.abs(tiles[0].astype(int) - tiles[1]).mean() > 2 and np.abs(tiles[1].astype(int) - tiles[2]).mean() > 2
    head = sheet[: sheet.shape[0] - 2 * 128]
    assert (head < 128).any() and (head == 255).mean() > 0.5  # dark text on white
