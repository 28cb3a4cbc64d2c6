"""The Explain page's test-image picker in core: listing, class filter, a run's mistakes (read
from its predictions.csv), pages; and which runs a request from another page names."""
from pathlib import Path

import pandas as pd
import pytest

from core.atomic import write_json
from core.data.demo import make_demo
from core.data.split import split_dataset
from core.explain import pictures
from core.explain.pictures import PAGE_SIZE, Picture


@pytest.fixture
def split(tmp_path):
    make_demo(tmp_path / "demo", classes=3, per_class=10, size=16, seed=0)
    split_dataset(tmp_path / "demo", tmp_path / "split", val=0.2, test=0.3, mode="copy")
    return tmp_path / "split"


def test_listing_and_class_filter(split):
    listed = pictures.listed(split)
    assert len(listed) == 9 and all(p.path.is_file() and p.path.parent.name == p.folder for p in listed)
    assert pictures.listed(split.parent / "nowhere") == [] and pictures.listed(None) == []
    one = listed[0].folder
    assert [p.path for p in pictures.filtered(listed, one)] == [p.path for p in listed if p.folder == one]


def test_only_the_mistakes_of_a_run_from_its_predictions_csv(split, tmp_path):
    listed = pictures.listed(split)
    classes = sorted({p.folder for p in listed})
    run = tmp_path / "run"
    run.mkdir()
    write_json(run / "config.json", {"classes": classes, "data": str(split)})
    rows = []
    for k, p in enumerate(listed):  # every third image predicted as the next class
        true = classes.index(p.folder)
        pred = (true + 1) % len(classes) if k % 3 == 0 else true
        rows.append({"path": str(p.path.relative_to(split / "test")), "true": classes[true], "pred": classes[pred],
                     "confidence": 0.9, "loss": 0.1})
    pd.DataFrame(rows).to_csv(run / "predictions.csv", index=False)
    wrong = pictures.mistakes(run)
    expected = [p.path for k, p in enumerate(listed) if k % 3 == 0]
    assert [p.path for p in pictures.filtered(listed, None, wrong)] == expected
    assert [p.path for p in pictures.filtered(listed, listed[0].folder, wrong)] == [listed[0].path]
    (run / "predictions.csv").unlink()
    assert pictures.mistakes(run) is None  # no test predictions: unknown, not "no mistakes"


def test_pages_of_five_thousand_images():
    many = [Picture(Path(f"/t/c{k % 7}/img{k:05d}.png"), f"c{k % 7}", f"class {k % 7}") for k in range(5000)]
    assert pictures.pages(len(many)) == -(-5000 // PAGE_SIZE)
    last = pictures.page(many, pictures.pages(len(many)))
    assert len(last) == 5000 - (pictures.pages(len(many)) - 1) * PAGE_SIZE
    assert pictures.page(many, 10_000) == last and pictures.page(many, 0) == many[:PAGE_SIZE]
    assert pictures.page_of(many, f"/t/c{1234 % 7}/img01234.png") == 1234 // PAGE_SIZE + 1
    assert pictures.page_of(many, "/t/c3/none.png") is None
    seen = [p for n in range(1, pictures.pages(len(many)) + 1) for p in pictures.page(many, n)]
    assert seen == many
    assert pictures.pages(0) == 1 and pictures.page([], 1) == []


def test_requested_runs_by_id_or_folder_path(tmp_path):
    runs = [tmp_path / "runs" / name for name in ("r1", "r2", "r3")]
    assert pictures.requested_runs(["r3", str(runs[0]), "gone", "r3"], runs) == [runs[2], runs[0]]
    assert pictures.requested_runs([], runs) == []
