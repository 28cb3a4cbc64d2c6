"""The Data page as a user drives it: demo set -> health report -> split -> augmentation preview."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import i18n
from core.data.split import read_split_info
from tests.conftest import ROOT
from tests.unit.test_data_scan import (
    NUMBERED_READING,
    make_bad_folder,
    make_numbered_folder,
)


def open_data_page(lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.session_state["lang"] = lang
    at.run()
    return at.switch_page("views/data.py").run()


def button(at: AppTest, key: str, lang: str = "en"):
    label = i18n.t(key, lang)
    return next(b for b in at.button if b.label == label)


def metric(at: AppTest, key: str) -> str:
    return next(m.value for m in at.metric if m.label == i18n.t(key, "en"))


def image_urls(at: AppTest) -> list[str]:
    return [img.url for el in at.get("image") for img in el.proto.imgs]


def test_create_the_demo_set_and_split_it_from_the_page(workspace):
    at = open_data_page()
    assert not at.exception
    at.button(key="make_demo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    demo = workspace.datasets / "demo"
    assert at.text_input[0].value == str(demo) and (demo / "annotations.csv").is_file()
    assert metric(at, "data.page.images") == "1000" and metric(at, "data.page.problems") == "0"
    assert len(at.get("plotly_chart")) == 1 and len(image_urls(at)) == 5 * 6 + 9

    at.button(key="split_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    out = workspace.splits / "demo"
    assert read_split_info(out)["counts"]["circle"] == {"train": 120, "val": 40, "test": 40}
    assert (out / "test" / "annotations.csv").is_file()
    assert workspace.state()["current_split"] == str(out)
    assert any(str(out) in s.value for s in at.success)

    # Splitting again asks first, and only replaces after "Replace it".
    at.slider[0].set_value(10).run()
    at.button(key="split_button").click().run()
    assert any(str(out) in w.value for w in at.warning)
    assert read_split_info(out)["ratios"]["val"] == 0.2
    button(at, "data.page.replace_yes").click().run()
    assert not at.exception
    assert read_split_info(out)["ratios"]["val"] == 0.1


def test_a_bad_folder_gets_messages_not_tracebacks(workspace, tmp_path):
    at = open_data_page("zh")
    at.text_input[0].set_value(str(tmp_path / "nowhere")).run()
    assert not at.exception and any("nowhere" in e.value for e in at.error)
    bad = make_bad_folder(tmp_path / "bad")
    at.text_input[0].set_value(str(bad)).run()
    assert not at.exception, [e.value for e in at.exception]
    tables = [df.value for df in at.dataframe]
    assert any("cat/bomb.png" in t.to_string() for t in tables)  # the problem list
    assert any("empty" in w.value for w in at.warning)  # no usable image
    # Bug 11: the empty class is left out with a note (not a refusal); the 1-image class is the user's choice.
    assert any("empty" in i.value and i18n.t("data.class_note.empty", "zh") in i.value for i in at.info)
    (choice,) = [r for r in at.radio if r.key == "data_small_classes"]
    assert "one" in choice.label and choice.value == "leave_out"
    assert choice.options == [i18n.t("data.page.small." + s, "zh") for s in ("leave_out", "train_only")]
    at.button(key="split_button").click().run()
    assert not at.exception and not at.error
    out = workspace.splits / "bad"
    info = read_split_info(out)
    assert {i["class"]: i["reason"] for i in info["left_out"]} == {"empty": "empty", "one": "too_small"}
    at.radio(key="data_small_classes").set_value("train_only").run()
    assert read_split_info(out)["train_only"] == []  # nothing written before Split
    at.button(key="split_button").click().run()
    button(at, "data.page.replace_yes", "zh").click().run()
    assert not at.exception
    info = read_split_info(out)
    assert info["train_only"] == ["one"] and info["counts"]["one"] == {"train": 1, "val": 0, "test": 0}


def test_a_split_that_runs_use_is_kept_and_the_new_one_is_a_version(workspace, tmp_path):
    """Bug 5: replacing a split that runs trained on changed their test data under them."""
    from core.runs import create_run
    from tests.unit.test_training_core import config

    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(make_numbered_folder(tmp_path / "flowers"))).run()
    at.button(key="split_button").click().run()
    out = workspace.splits / "flowers"
    first = read_split_info(out)
    run = create_run(config(out), workspace.runs)
    at.run()
    note = next(i.value for i in at.info if run.name in i.value)
    assert str(workspace.splits / "flowers-2") in note
    at.slider[0].set_value(30).run()
    at.button(key="split_button").click().run()  # no "Replace it?": the split in use is never replaced
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert read_split_info(out) == first
    assert read_split_info(workspace.splits / "flowers-2")["ratios"]["val"] == 0.3
    assert any(str(workspace.splits / "flowers-2") in s.value for s in at.success)
    assert workspace.state()["current_split"] == str(workspace.splits / "flowers-2")


def test_the_image_cache_shows_its_size_and_clears(workspace, tmp_path):
    from core.data.cache import cache_size, load_images
    from core.data.split import split_dataset

    split_dataset(make_numbered_folder(tmp_path / "flowers"), tmp_path / "split")
    load_images(tmp_path / "split", "train", 64, cache_dir=workspace.cache)
    assert cache_size(workspace.cache) > 0
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(tmp_path / "flowers")).run()
    size_mb = round(cache_size(workspace.cache) / 2**20, 1)
    assert any(f"{size_mb} MB" in c.value for c in at.caption)
    at.button(key="clear_cache").click().run()
    assert not at.exception and cache_size(workspace.cache) == 0
    assert not list(workspace.cache.glob("images-*"))
    assert any(i18n.t("data.page.cache_cleared", "en", size_mb=size_mb) == s.value for s in at.success)


def test_real_photo_folder_checked_split_and_previewed(workspace, clothing: Path):
    at = open_data_page()
    at.text_input[0].set_value(str(clothing)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "data.page.classes") == "5" and metric(at, "data.page.images") == "400"
    at.button(key="split_button").click().run()
    out = workspace.splits / "clothing-mini"
    assert sum(c["test"] for c in read_split_info(out)["counts"].values()) == 80
    before = image_urls(at)[-8:]
    next(s for s in at.selectbox if s.label == i18n.t("data.page.preset", "en")).set_value("strong").run()
    button(at, "data.page.reroll").click().run()
    assert not at.exception
    assert len(image_urls(at)) == 5 * 6 + 9 and image_urls(at)[-8:] != before


def test_split_preview_shows_display_names_in_natural_order(workspace, tmp_path):
    folder = make_numbered_folder(tmp_path / "flowers")
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(folder)).run()
    assert not at.exception, [e.value for e in at.exception]
    preview = at.dataframe[-1].value
    assert list(preview.index) == NUMBERED_READING + ["total"]
    assert list(at.dataframe[0].value["Name"]) == NUMBERED_READING  # the health table agrees


def test_an_existing_split_is_shown_as_a_split_and_imported_as_given(workspace, tmp_path):
    """Issue 12: train/ + valid/ was listed as a dataset whose classes are "train" and "valid"."""
    from tests.unit.test_data_existing import files_of, make_existing, make_part

    root = make_existing(tmp_path / "flowers", {"train": 4, "valid": 2})
    make_part(root / "test", 1, classes=("daisy", "rose"), seed=900)  # test lacks tulip
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(root)).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("an existing split: train 12 / valid 6 / test 2, 3 classes" in i.value for i in at.info)
    assert metric(at, "data.page.classes") == "3" and metric(at, "data.page.images") == "20"
    columns = [i18n.t("data.page.col_class", "en"), i18n.t("data.page.col_display", "en"), "train", "valid", "test"]
    assert list(at.dataframe[0].value.columns) == columns
    assert list(at.dataframe[0].value[columns[0]]) == ["daisy", "rose", "tulip"]
    assert any("test lacks these classes: tulip" in w.value for w in at.warning)
    at.button(key="import_existing").click().run()
    assert not at.exception and any("tulip" in e.value for e in at.error)  # refused, naming the class
    out = workspace.splits / "flowers"
    assert not out.exists()
    at.checkbox(key="data_leave_out_missing").check().run()
    at.button(key="import_existing").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    info = read_split_info(out)
    assert info["kept_as_given"] and info["classes"] == ["daisy", "rose"]
    assert files_of(out / "val") == {p for p in files_of(root / "valid") if not p.startswith("tulip")}
    assert workspace.state()["current_split"] == str(out)
    assert any(str(out) in s.value for s in at.success)

    # pooled and split again instead: the usual sliders, on every part's images
    at.toggle(key="data_resplit").set_value(True).run()
    assert not at.exception and metric(at, "data.page.images") == "20"
    assert list(at.dataframe[0].value[columns[0]]) == ["daisy", "rose", "tulip"]
    assert at.dataframe[-1].value.loc["total"].sum() == 20  # the split preview of the pooled images


def test_separate_folders_and_cifar_batches_from_the_page(workspace, tmp_path):
    from tests.unit.test_data_cifar import make_cifar10
    from tests.unit.test_data_existing import files_of, make_part

    train = make_part(tmp_path / "here" / "training_set", 10)
    test = make_part(tmp_path / "there" / "test_set", 2, seed=500)
    at = open_data_page()
    at.text_input(key="data_parts_train").set_value(str(train))
    at.text_input(key="data_parts_test").set_value(str(test))
    at.button(key="data_parts_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("training_set 30 / test_set 6, 3 classes" in i.value for i in at.info)
    assert at.slider(key="data_hold_out").value == 10  # no validation folder: 10% of train held out
    at.slider(key="data_hold_out").set_value(20).run()
    at.button(key="import_existing").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    info = read_split_info(workspace.splits / "training_set")
    assert info["counts"]["rose"] == {"train": 8, "val": 2, "test": 2}
    assert files_of(workspace.splits / "training_set" / "test") == files_of(test)

    src = make_cifar10(tmp_path / "cifar-10-batches-py")
    at.text_input(key="data_folder_input").set_value(str(tmp_path)).run()  # the folder holding it
    assert not at.exception, [e.value for e in at.exception]
    assert any("cifar-10 batches: train 40 / test 8, 4 classes" in i.value for i in at.info)
    at.button(key="import_cifar").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    info = read_split_info(workspace.splits / "cifar-10")
    assert info["source"] == str(src) and info["counts"]["cat"] == {"train": 9, "val": 1, "test": 2}
    assert workspace.state()["current_split"] == str(workspace.splits / "cifar-10")


def make_classes(root: Path, sizes: dict[str, int]) -> Path:
    from tests.unit.test_data_scan import noise_image, save

    for k, (name, n) in enumerate(sizes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            save(noise_image(1000 * k + i), root / name / f"{name}_{i}.png")
    return root


def test_folder_and_split_settings_are_remembered(workspace, tmp_path):
    """Issue 14: after another page, or in a new tab, the folder box was empty and the sliders
    back at their defaults although a split was current."""
    folder = make_numbered_folder(tmp_path / "flowers")
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(folder)).run()
    at.slider(key="data_val").set_value(30).run()
    at.slider(key="data_test").set_value(10).run()
    at.number_input(key="data_seed").set_value(7).run()
    at.button(key="split_button").click().run()
    assert not at.exception and read_split_info(workspace.splits / "flowers")["seed"] == 7
    at.switch_page("views/model.py").run()
    at.switch_page("views/data.py").run()  # back in the same tab
    assert at.text_input(key="data_folder_input").value == str(folder)
    assert (at.slider(key="data_val").value, at.slider(key="data_test").value) == (30, 10)
    assert at.number_input(key="data_seed").value == 7

    again = open_data_page()  # a new tab: the workspace's last settings
    assert again.text_input(key="data_folder_input").value == str(folder)
    assert (again.slider(key="data_val").value, again.number_input(key="data_seed").value) == (30, 7)
    # A workspace from before settings were kept: the current split says where its images came from.
    state = workspace.state()
    state.pop("settings")
    (workspace.root / "state.json").write_text(__import__("json").dumps(state))
    assert open_data_page().text_input(key="data_folder_input").value == str(folder)


def test_any_class_can_be_excluded_from_the_split(workspace, tmp_path):
    folder = make_classes(tmp_path / "clothes", {"hat": 5, "shirt": 5, "sock": 5})
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(folder)).run()
    key = f"data_exclude:{folder}"
    assert at.multiselect(key=key).options == ["hat", "shirt", "sock"]
    at.multiselect(key=key).set_value(["shirt"]).run()
    assert not at.exception
    preview = at.dataframe[-1].value
    assert list(preview.index) == ["hat", "sock", "total"] and preview.loc["total"].sum() == 10
    at.button(key="split_button").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    info = read_split_info(workspace.splits / "clothes")
    assert info["classes"] == ["hat", "sock"]
    assert info["left_out"] == [{"class": "shirt", "reason": "excluded", "images": 5}]
    assert not (workspace.splits / "clothes" / "train" / "shirt").exists() and (folder / "shirt").is_dir()


def test_label_conflicts_are_listed_with_both_labels(workspace, tmp_path):
    from tests.unit.test_data_scan import CHINESE

    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(make_bad_folder(tmp_path / "bad"))).run()
    assert not at.exception
    assert any("1 photo(s) are in more than one class folder" in w.value for w in at.warning)
    table = next(df.value for df in at.dataframe if "Labels" in df.value.columns)
    assert table.to_dict("records") == [{"Labels": f"cat / {CHINESE}",
                                         "Files": f"cat/ok_1.jpg = {CHINESE}/dup_of_cat.jpg"}]
    assert not any(e.label.startswith("Exact duplicates") for e in at.expander)  # not a plain duplicate


def test_class_imbalance_ratio_and_warning(workspace, tmp_path):
    folder = make_classes(tmp_path / "clothes", {"hat": 4, "shirt": 13, "sock": 6})
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(folder)).run()
    assert metric(at, "data.page.imbalance") == "3.2 : 1"
    assert any("Unbalanced classes (3.2 : 1" in w.value and "shirt has 13 images, hat only 4" in w.value
               for w in at.warning)
    # no Name column without a cat_to_name.json: it would repeat the folder names
    assert list(at.dataframe[0].value.columns) == ["Folder", "Images", "Problems", "Note"]

    balanced = make_classes(tmp_path / "even", {"hat": 4, "shirt": 12})  # 3 : 1 is not above the limit
    at.text_input(key="data_folder_input").set_value(str(balanced)).run()
    assert metric(at, "data.page.imbalance") == "3.0 : 1" and not any("Unbalanced" in w.value for w in at.warning)

    zh = open_data_page("zh")
    zh.text_input(key="data_folder_input").set_value(str(folder)).run()
    assert any("类别不均衡（3.2 : 1" in w.value for w in zh.warning)


def test_augmentation_preset_labels_are_translated(workspace, tmp_path):
    folder = make_classes(tmp_path / "clothes", {"hat": 3, "shirt": 3})
    for lang, word in (("en", "course ("), ("zh", "课程（")):
        at = open_data_page(lang)
        at.text_input(key="data_folder_input").set_value(str(folder)).run()
        preset = next(s for s in at.selectbox if s.label == i18n.t("data.page.preset", lang))
        assert preset.value == "seed"  # the config value stays
        assert [o for o in preset.options if o.startswith(word)] and "seed" not in " ".join(preset.options)


def test_label_conflicts_inside_a_part_of_an_existing_split(workspace, tmp_path):
    from tests.unit.test_data_existing import make_existing

    root = make_existing(tmp_path / "flowers", {"train": 3, "valid": 1})
    (root / "train" / "rose" / "also_daisy.png").write_bytes((root / "train" / "daisy" / "daisy_0.png").read_bytes())
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(root)).run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(df.value for df in at.dataframe if "Labels" in df.value.columns)
    assert table.to_dict("records") == [{"Labels": "daisy / rose",
                                         "Files": "train/daisy/daisy_0.png = train/rose/also_daisy.png"}]


def test_a_course_recipes_split_shares_fill_the_sliders(workspace):
    from core.data.demo import make_demo

    make_demo(workspace.datasets / "flowers", classes=3, per_class=10, size=32, seed=0)
    at = open_data_page()
    at.text_input(key="data_folder_input").set_value(str(workspace.datasets / "flowers")).run()
    at.slider(key="data_val").set_value(10).run()
    at.number_input(key="data_seed").set_value(7).run()
    lesson = i18n.t("recipes.flowers_resnet18_cbam.title", "en")
    at.selectbox(key="data_split_recipe").set_value(lesson).run()  # the lesson's 60/20/20, seed 42
    assert not at.exception, [e.value for e in at.exception]
    assert (at.slider(key="data_val").value, at.slider(key="data_test").value,
            at.number_input(key="data_seed").value) == (20, 20, 42)
    at.slider(key="data_test").set_value(30).run()  # still the user's to change
    at.button(key="split_button").click().run()
    ratios = read_split_info(workspace.splits / "flowers")["ratios"]
    assert (ratios["val"], ratios["test"]) == (0.2, 0.3)
