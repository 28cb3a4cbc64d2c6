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
