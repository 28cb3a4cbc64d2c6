"""A folder that is already split (train/ valid/ test/, as the flowers-102 course data ships)
through the real UI: the Data page shows it as a split, imports it as given, and a run trains on it."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from core import i18n
from core.data.demo import make_demo
from tests.e2e.streamlit_ui import (
    alerts, assert_no_exception, click, expect_text, fill_number, open_app, open_page, text_input,
)


def en(key: str, **params) -> str:
    return i18n.t(key, "en", **params)


def course_layout(root: Path) -> dict[str, set[str]]:
    """train/ valid/ test/ (mixed case, as people name them), each with the same class folders."""
    demo = make_demo(root / "generated", classes=3, per_class=20, size=32, seed=3)
    parts: dict[str, set[str]] = {"Train": set(), "valid": set(), "TEST": set()}
    for cls in sorted(p for p in demo.iterdir() if p.is_dir()):
        for i, image in enumerate(sorted(cls.iterdir())):
            part = "Train" if i < 12 else "valid" if i < 16 else "TEST"
            (root / "flowers" / part / cls.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(image, root / "flowers" / part / cls.name / image.name)
            parts[part].add(f"{cls.name}/{image.name}")
    return parts


def test_an_existing_split_is_shown_as_a_split_imported_as_given_and_trained(start_server, browser, tmp_path):
    parts = course_layout(tmp_path)
    source = tmp_path / "flowers"
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    server = start_server()
    page = open_app(browser, server.url)

    text_input(page, en("data.page.folder"), str(source))
    # Shown as a split, not as three classes called Train, valid and TEST.
    expect_text(page, en("data.page.import_button"))
    summary = " ".join(alerts(page, "info"))
    assert "an existing split" in summary and "3 classes" in summary, summary
    assert_no_exception(page)
    click(page, en("data.page.import_button"))
    assert_no_exception(page)

    imported = server.workspace / "splits" / "flowers"
    info = json.loads((imported / "split.json").read_text())
    assert info["kept_as_given"] is True and info["id"]
    # Every file stayed in the part it was given in; the source folder is untouched.
    for given, part in (("Train", "train"), ("valid", "val"), ("TEST", "test")):
        found = {p.relative_to(imported / part).as_posix() for p in (imported / part).rglob("*.*")}
        assert found == parts[given], part
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before

    open_page(page, server.url, "training")  # the imported split is this tab's current one: preselected
    fill_number(page, en("training.img_size"), 32)
    fill_number(page, en("training.batch_size"), 16)
    fill_number(page, en("training.epochs"), 1)
    click(page, en("training.start"))
    assert_no_exception(page)

    from core.runs import list_runs

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        found = list_runs(server.workspace / "runs")
        if found and found[0].status not in ("queued", "running"):
            break
        page.wait_for_timeout(1000)
    [run] = list_runs(server.workspace / "runs")
    assert run.status == "finished", run
    config = json.loads((run.path / "config.json").read_text())
    assert Path(config["data"]).resolve() == imported.resolve() and config["split_id"] == info["id"]
    assert (config["n_train"], config["n_val"], config["n_test"]) == (36, 12, 12)
