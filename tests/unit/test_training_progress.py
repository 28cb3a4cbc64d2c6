"""What a run is doing, as the page hears it: reading and caching its images (with counts),
building the model, training, testing; and where a resumed run waits in the queue."""
from __future__ import annotations

import threading


from core import runs
from core.data.cache import decode_many
from core.training import engine
from tests.unit.test_training_core import cache, config, split, stop_after_epoch, train  # noqa: F401 - fixtures
from tests.unit.test_training_jobs import poll


def test_decoding_reports_its_progress(split):
    paths = sorted((split / "train").rglob("*.jpg"))
    heard = []
    lock = threading.Lock()

    def on_progress(done: int, total: int) -> None:
        with lock:
            heard.append((done, total))

    decode_many(paths, 16, workers=2, on_progress=on_progress)
    assert {total for _, total in heard} == {len(paths)}
    assert sorted(done for done, _ in heard) == list(range(1, len(paths) + 1))  # 60 images: every one heard
    assert max(heard)[0] == len(paths)


def test_a_run_says_each_phase_before_its_first_step(split, tmp_path):
    heard = []
    train(config(split, epochs=1), tmp_path / "runs", tmp_path / "cache", on_progress=heard.append)
    phases = [p["phase"] for p in heard]
    order = [phase for i, phase in enumerate(phases) if i == 0 or phases[i - 1] != phase]
    assert order == ["loading", "caching", "building", "training", "testing"]
    caching = [p for p in heard if p["phase"] == "caching"]
    assert {p["part"] for p in caching} == {"train", "val"}
    last_train = [p for p in caching if p["part"] == "train"][-1]
    assert last_train["done"] == last_train["total"] == 60
    assert heard[-1]["epoch"] == 1 and heard[-1]["batch"] == heard[-1]["batches"]  # testing keeps the last counts

    heard.clear()  # the second run finds its images cached: nothing to decode
    train(config(split, epochs=1), tmp_path / "runs", tmp_path / "cache", on_progress=heard.append)
    assert "caching" not in {p["phase"] for p in heard}


def test_a_resumed_run_goes_to_the_front_of_the_queue_and_says_behind_whom(split, cache, tmp_path, registry,
                                                                           monkeypatch):
    """Issue 14: Resume put the run behind a queued one, and the page did not say it waited."""
    stopped, _ = train(config(split, epochs=3, name="stopped"), tmp_path, cache, **stop_after_epoch(1))
    release = threading.Event()
    real_loop = engine.Trainer._loop

    def held_loop(self):
        if self.cfg.name == "busy":
            release.wait(60)
        return real_loop(self)

    monkeypatch.setattr(engine.Trainer, "_loop", held_loop)
    busy = registry.submit(config(split, name="busy"), tmp_path, cache)
    waiting = registry.submit(config(split, name="waiting"), tmp_path, cache)
    assert poll(lambda: registry.active() == busy)
    assert registry.resume(stopped, cache) == stopped.name
    assert registry.queued() == [stopped.name, waiting]
    assert registry.snapshot(stopped.name)["ahead"] == [busy]
    assert registry.snapshot(waiting)["ahead"] == [busy, stopped.name]
    assert registry.snapshot(busy)["ahead"] == []
    release.set()
    assert registry.wait(timeout=120)
    assert runs.read_summary(stopped)["status"] == "finished"
    assert [r["epoch"] for r in runs.read_metrics(stopped, "epoch")] == [1, 2, 3]


def test_more_epochs_through_the_registry(split, cache, tmp_path, registry):
    run_dir, _ = train(config(split, epochs=1), tmp_path, cache)
    assert registry.more_epochs(run_dir, 2, cache) == run_dir.name
    assert registry.wait(timeout=120)
    snap = registry.snapshot(run_dir.name)
    assert snap["status"] == "finished"
    assert [r["epoch"] for r in snap["records"] if r["type"] == "epoch"] == [1, 2, 3]
    assert snap["records"] == runs.read_metrics(run_dir)
