"""The Training page's 'Decoded images' choice (More settings) reaches the run: a run on the disk cache."""
from core import i18n, runs
from core.training.jobs import registry
from tests.app.test_training_page import demo_split, open_page  # noqa: F401 (a fixture)


def test_the_disk_cache_chosen_on_the_page_trains_the_run(demo_split):  # noqa: F811
    at = open_page()
    widget = lambda kind, key: next(w for w in at.get(kind) if w.label == i18n.t(key, "en"))
    assert widget("selectbox", "training.cache").value == "auto"
    widget("number_input", "training.img_size").set_value(32)
    widget("number_input", "training.batch_size").set_value(8)
    widget("number_input", "training.epochs").set_value(1)
    widget("selectbox", "training.cache").set_value("disk")
    next(b for b in at.button if b.label == i18n.t("training.start", "en")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    [run] = runs.list_runs(demo_split.runs)
    assert registry().wait(timeout=120)
    assert runs.read_config(run.path)["cache"] == "disk"
    assert runs.read_summary(run.path)["status"] == "finished"
    assert list(demo_split.cache.glob("images-*.npy"))  # the mapped files stay for the next run
