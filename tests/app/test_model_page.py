"""The Model page: build a three-block CBAM network by clicking, see its parameter total, save it."""
import json

from streamlit.testing.v1 import AppTest

from core.models import build_model, list_specs, load_spec
from tests.conftest import ROOT


def open_model_page(lang: str = "en") -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.session_state["lang"] = lang
    at.run()
    return at.switch_page("views/model.py").run()


def by_key_suffix(widgets, suffix: str) -> list:
    return [w for w in widgets if w.key and w.key.endswith(suffix)]


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_build_a_three_block_cbam_network_and_save_it(workspace):
    at = open_model_page()
    at.number_input(key="img_size").set_value(32).run()  # the course's size (the default is 64 without a split)
    at.radio(key="model_mode").set_value("builder").run()
    while by_key_suffix(at.button, "_remove"):  # start from an empty list
        by_key_suffix(at.button, "_remove")[0].click().run()
    assert not by_key_suffix(at.button, "_remove")
    add = next(b for b in at.button if b.label == "Add block")
    for _ in range(3):
        add.click().run()
    for select in by_key_suffix(at.selectbox, "_attention"):
        select.set_value("cbam")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [n.value for n in by_key_suffix(at.number_input, "_out")] == [32, 64, 128]
    expected = build_model({"preset": "cbam_cnn"}, 10, 32)  # the same blocks and head as the course's CBAM-CNN
    assert metric(at, "Parameters") == f"{sum(p.numel() for p in expected.parameters()):,}" == "1,150,896"

    # Move the last block up: the network changes, the total stays; then save it by name.
    by_key_suffix(at.button, "_up")[2].click().run()
    assert [n.value for n in by_key_suffix(at.number_input, "_out")] == [32, 128, 64]
    at.text_input(key="save_name").set_value("my cbam")
    next(b for b in at.button if b.label == "Save model").click().run()
    assert list_specs(workspace.models) == ["my cbam"]
    spec = load_spec(workspace.models, "my cbam")["spec"]
    assert [(b["out"], b["attention"]) for b in spec["blocks"]] == [(32, "cbam"), (128, "cbam"), (64, "cbam")]

    # Duplicate it, switch away, and load the copy back into the builder.
    at.text_input(key="copy_my cbam").set_value("second")
    next(b for b in at.button if b.label == "Duplicate").click().run()
    assert list_specs(workspace.models) == ["my cbam", "second"]
    at.radio(key="model_mode").set_value("preset").run()
    at.selectbox(key="saved_pick").set_value("second").run()
    next(b for b in at.button if b.label == "Load").click().run()
    assert at.radio(key="model_mode").value == "builder"
    assert [n.value for n in by_key_suffix(at.number_input, "_out")] == [32, 128, 64]
    assert any("second" in s.value for s in at.success)


def test_a_spec_that_shrinks_too_far_says_which_block(workspace):
    at = open_model_page()
    at.number_input(key="img_size").set_value(32).run()
    at.radio(key="model_mode").set_value("builder").run()
    add = next(b for b in at.button if b.label == "Add block")
    for _ in range(3):  # the CBAM-CNN start has 3 pooling blocks; 6 pools shrink 32 px below 1x1
        add.click().run()
    assert any("Block 6" in e.value for e in at.error)
    assert not at.exception


def test_classes_come_from_the_current_split_and_backbones_show_weights(workspace):
    split = workspace.splits / "flowers"
    split.mkdir()
    (split / "split.json").write_text(json.dumps({"classes": ["a", "b", "c"]}))
    workspace.remember(current_split=str(split))
    at = open_model_page()
    assert at.number_input(key="num_classes").value == 3
    at.radio(key="model_mode").set_value("transfer").run()
    at.selectbox(key="tl_backbone").set_value("resnet18").run()
    at.selectbox(key="freeze_policy").set_value("head").run()
    assert not at.exception and not at.error
    assert metric(at, "Trainable") == f"{512 * 3 + 3:,}"
    assert any("resnet18" in c.value for c in at.caption)


def test_add_remove_and_move_blocks_many_times_keeps_widget_keys_unique(workspace):
    """Block ids survive reruns: add / remove-first / add / remove-first / add once raised
    StreamlitDuplicateElementKey because the id counter restarted on every rerun."""
    at = open_model_page()
    at.radio(key="model_mode").set_value("builder").run()  # starts from the CBAM-CNN preset: 3 blocks
    assert len(by_key_suffix(at.button, "_remove")) == 3
    for action in ("add", "remove", "add", "remove", "add"):
        if action == "add":  # found again each time: an element belongs to the run that drew it
            next(b for b in at.button if b.label == "Add block").click().run()
        else:
            by_key_suffix(at.button, "_remove")[0].click().run()
        assert not at.exception, [e.value for e in at.exception]
    assert len(by_key_suffix(at.button, "_remove")) == 4
    outs = [n.value for n in by_key_suffix(at.number_input, "_out")]
    assert outs == [128, 256, 512, 1024]  # 32, 64, 128 + 256 - 32 + 512 - 64 + 1024

    by_key_suffix(at.button, "_down")[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [n.value for n in by_key_suffix(at.number_input, "_out")] == [256, 128, 512, 1024]
    keys = [w.key for w in at.button if w.key]
    assert len(keys) == len(set(keys))


def make_split_of(workspace, name: str, side: int, classes=("a", "b", "c")):
    """A split folder whose training photos are `side` x `side` (what the image size defaults from)."""
    import numpy as np
    from PIL import Image

    split = workspace.splits / name
    for c in classes:
        (split / "train" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((side, side + 10, 3), 40 * i, np.uint8)).save(split / "train" / c / f"{i}.png")
    (split / "split.json").write_text(json.dumps({"classes": list(classes)}))
    return split


def test_one_image_size_from_the_split_shared_by_sessions(workspace):
    """Issue 14: the Model page sized its table at 32 px while Training trained at 64 px. The
    size now comes from the split's photos (32 px photos: 32; large photos: 64) and a size the
    user sets is the one ui.image_size() gives (Training's default), also in a new tab."""
    import ui  # noqa: F401  (the helper the Training page reads; exercised through the page here)

    small = make_split_of(workspace, "tiny", 32)
    workspace.remember(current_split=str(small))
    at = open_model_page()
    assert at.number_input(key="img_size").value == 32
    at.number_input(key="img_size").set_value(48).run()
    assert not at.exception
    assert workspace.state()["settings"]["img_size"] == {"split": str(small), "size": 48}
    at.switch_page("views/data.py").run()
    at.switch_page("views/model.py").run()  # the widget is drawn again: the size stays
    assert at.number_input(key="img_size").value == 48
    assert open_model_page().number_input(key="img_size").value == 48  # a new tab: the workspace's last

    big = make_split_of(workspace, "photos", 300)
    workspace.remember(current_split=str(big))
    assert open_model_page().number_input(key="img_size").value == 64  # its own default, capped for a CPU


def test_saved_models_are_renamed_and_deleted_after_confirmation(workspace):
    from core.models import save_spec

    save_spec(workspace.models, "first", {"preset": "simple_cnn"})
    save_spec(workspace.models, "second", {"preset": "cbam_cnn"})
    at = open_model_page()
    at.selectbox(key="saved_pick").set_value("first").run()
    at.text_input(key="copy_first").set_value("renamed")
    at.button(key="spec_rename").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert list_specs(workspace.models) == ["renamed", "second"]
    assert load_spec(workspace.models, "renamed")["preset"] == "simple_cnn"
    assert at.selectbox(key="saved_pick").value == "renamed"
    # renaming onto an existing name is refused with a message
    at.text_input(key="copy_renamed").set_value("second")
    at.button(key="spec_rename").click().run()
    assert not at.exception and any("second" in e.value for e in at.error)
    assert list_specs(workspace.models) == ["renamed", "second"]

    at.button(key="spec_delete").click().run()
    assert any("renamed" in w.value for w in at.warning)
    assert list_specs(workspace.models) == ["renamed", "second"]  # nothing deleted before "yes"
    at.button(key="spec_delete_no").click().run()
    assert list_specs(workspace.models) == ["renamed", "second"] and not at.warning
    at.button(key="spec_delete").click().run()
    at.button(key="spec_delete_yes").click().run()
    assert not at.exception
    assert list_specs(workspace.models) == ["second"]
    assert any("renamed" in s.value for s in at.success)


def test_model_page_in_chinese_translates_options_and_outline(workspace):
    from core import i18n

    at = open_model_page("zh")
    at.session_state["model_mode"] = "builder"  # (AppTest formats options outside the page: in English)
    at.run()
    assert not at.exception
    outline = at.code[0].value
    assert "分类头" in outline and "展平" in outline and "全连接 → 类别数" in outline
    assert "head" not in outline and "flatten" not in outline and "classes" not in outline
    act = by_key_suffix(at.selectbox, "_act")[0]
    assert act.options[-1] == i18n.t("models.page.act_none", "zh") == "无"
    buttons = [b.label for b in at.button]
    assert "上移" in buttons and "删除" in buttons and "↑" not in buttons and "✕" not in buttons
