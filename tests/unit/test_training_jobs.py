"""core.training.jobs: a queue of runs on one background thread, failures kept, no duplicates,
no thread left behind."""
from __future__ import annotations

import threading
import time

import pytest

from core import runs
from core.training import engine
from core.training.jobs import THREAD_NAME
from tests.unit.test_training_core import cache, config, split  # noqa: F401 - shared fixtures


def poll(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def trainer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_queued_runs_execute_in_order(split, cache, tmp_path, registry, monkeypatch):
    events = []
    real_run = engine.Trainer.run

    def logged_run(self, resume=False):
        events.append(("start", self.cfg.name))
        try:
            return real_run(self, resume)
        finally:
            events.append(("end", self.cfg.name))

    monkeypatch.setattr(engine.Trainer, "run", logged_run)
    first = registry.submit(config(split, name="first"), tmp_path, cache)
    second = registry.submit(config(split, name="second", epochs=2), tmp_path, cache)
    assert first != second
    assert registry.wait(timeout=120)
    assert events == [("start", "first"), ("end", "first"), ("start", "second"), ("end", "second")]
    for run_id, epochs in ((first, 1), (second, 2)):
        snap = registry.snapshot(run_id)
        assert snap["status"] == "finished" and snap["message"] == ""
        assert [r["epoch"] for r in snap["records"] if r["type"] == "epoch"] == list(range(1, epochs + 1))
        assert any(r["type"] == "iter" for r in snap["records"])
        assert snap["progress"]["epoch"] == epochs and snap["progress"]["batch"] == snap["progress"]["batches"]
        summary = runs.read_summary(tmp_path / run_id)
        assert summary["status"] == "finished" and summary["epochs_done"] == epochs
    assert [r.id for r in runs.list_runs(tmp_path)] == [second, first]  # newest first
    assert registry.active() is None and registry.queued() == [] and not registry.busy()
    assert trainer_threads() == []


def test_an_exception_in_the_job_thread_fails_that_run_with_its_message(split, cache, tmp_path, registry,
                                                                        monkeypatch):
    real_loop = engine.Trainer._loop

    def broken_loop(self):
        if self.cfg.name == "broken":
            raise RuntimeError("the GPU caught fire")
        return real_loop(self)

    monkeypatch.setattr(engine.Trainer, "_loop", broken_loop)
    bad = registry.submit(config(split, name="broken"), tmp_path, cache)
    good = registry.submit(config(split, name="fine"), tmp_path, cache)
    assert registry.wait(timeout=120)
    snap = registry.snapshot(bad)
    assert snap["status"] == "failed" and snap["message"] == "RuntimeError: the GPU caught fire"
    summary = runs.read_summary(tmp_path / bad)
    assert summary["status"] == "failed" and "the GPU caught fire" in summary["message"]
    assert {r.id: r.message for r in runs.list_runs(tmp_path)}[bad] == summary["message"]
    assert registry.snapshot(good)["status"] == "finished"  # the worker went on with the queue


def test_a_user_error_in_the_job_keeps_its_key_for_translation(split, cache, tmp_path, registry, monkeypatch):
    class NanLoss(engine.nn.CrossEntropyLoss):
        def forward(self, logits, target):
            return super().forward(logits, target) * float("inf")

    monkeypatch.setattr(engine.nn, "CrossEntropyLoss", NanLoss)
    run_id = registry.submit(config(split), tmp_path, cache)
    assert registry.wait(timeout=120)
    snap = registry.snapshot(run_id)
    assert snap["status"] == "failed" and snap["message_key"] == "training.nan_loss"
    assert snap["message_params"] == {"epoch": 1, "step": 1} and "epoch 1" in snap["message"]


def test_two_identical_submits_within_the_window_make_one_run(split, cache, tmp_path, registry):
    cfg = config(split, epochs=1)
    first = registry.submit(cfg, tmp_path, cache)
    again = registry.submit(config(split, epochs=1), tmp_path, cache)  # a second tab, same settings
    assert again == first
    other = registry.submit(config(split, epochs=1, seed=4), tmp_path, cache)  # different settings: a new run
    assert other != first
    assert registry.wait(timeout=120)
    assert sorted(r.id for r in runs.list_runs(tmp_path)) == sorted([first, other])


def test_the_same_settings_after_stop_start_a_new_run(split, cache, tmp_path, registry):
    """Stop, then Start again at once with the same settings (within the duplicate window):
    a new run, not the stopped one handed back."""
    first = registry.submit(config(split, epochs=20), tmp_path, cache)
    registry.stop(first)
    again = registry.submit(config(split, epochs=20), tmp_path, cache)
    assert again != first
    registry.stop(again)
    assert registry.wait(timeout=60)
    assert {r.id: r.status for r in runs.list_runs(tmp_path)} == {first: "stopped", again: "stopped"}


def test_stop_and_submit_repeatedly_leave_no_thread(split, cache, tmp_path, registry):
    ids = []
    for i in range(3):
        running = registry.submit(config(split, name=f"r{i}", epochs=20), tmp_path, cache)
        waiting = registry.submit(config(split, name=f"q{i}"), tmp_path, cache)
        assert registry.queued()[-1] == waiting
        registry.stop(waiting)  # leaves the queue without ever running
        assert waiting not in registry.queued()
        if i == 0:  # stop one run while it trains, the others at once
            assert poll(lambda: registry.snapshot(running)["progress"].get("batch"))
            assert registry.active() == running
        registry.stop(running)
        ids += [running, waiting]
        assert registry.wait(timeout=60)
        assert trainer_threads() == []
    for run_id in ids:
        assert registry.snapshot(run_id)["status"] == "stopped"
        assert runs.read_summary(tmp_path / run_id)["status"] == "stopped"
    # a stopped run never ran past its first epoch and can be resumed
    summary = runs.read_summary(tmp_path / ids[0])
    assert summary.get("epochs_done", 0) <= 1
    assert registry.resume(tmp_path / ids[0], cache) == ids[0]
    registry.stop(ids[0])
    assert registry.wait(timeout=60) and trainer_threads() == []
    registry.stop("no-such-run")  # harmless
    assert registry.snapshot("no-such-run") is None


def test_a_run_that_never_started_training_resumes_from_the_beginning(split, cache, tmp_path, registry):
    """Stopped while queued, or cut off by a closed app before its first checkpoint: no last.pt,
    yet Resume trains it, from epoch 1."""
    running = registry.submit(config(split, name="first", epochs=20), tmp_path, cache)
    waiting = registry.submit(config(split, name="second", epochs=2), tmp_path, cache)
    registry.stop(waiting)
    registry.stop(running)
    assert registry.wait(timeout=60)
    assert not (tmp_path / waiting / "last.pt").exists()
    assert registry.resume(tmp_path / waiting, cache) == waiting
    assert registry.wait(timeout=120)
    assert runs.read_summary(tmp_path / waiting)["status"] == "finished"
    assert [r["epoch"] for r in runs.read_metrics(tmp_path / waiting, "epoch")] == [1, 2]


def test_a_finished_run_cannot_be_resumed(split, cache, tmp_path, registry):
    from core.errors import UserError

    run_id = registry.submit(config(split, epochs=1), tmp_path, cache)
    assert registry.wait(timeout=120)
    with pytest.raises(UserError) as caught:
        registry.resume(tmp_path / run_id, cache)
    assert caught.value.key == "training.cannot_resume"


def test_a_resumed_run_shows_each_step_once(split, cache, tmp_path, registry):
    """Stopped mid-epoch, then resumed: the live records are what metrics.jsonl holds, the
    redone steps once (read before the partial epoch was dropped, they showed twice)."""
    from core.runs import create_run

    stop = threading.Event()
    cfg = config(split, epochs=2, log_every=1)
    run_dir = create_run(cfg, tmp_path)
    engine.Trainer(cfg, run_dir, cache_dir=cache, stop=stop,
                   on_progress=lambda p: stop.set() if (p.get("epoch"), p.get("batch")) == (2, 2) else None).run()
    assert [r["step"] for r in runs.read_metrics(run_dir, "iter")] == [1, 2, 3, 4, 5, 6]  # 5, 6: the cut epoch

    assert registry.resume(run_dir, cache) == run_dir.name
    assert registry.wait(timeout=120)
    snap = registry.snapshot(run_dir.name)
    assert snap["status"] == "finished"
    assert [r["step"] for r in snap["records"] if r["type"] == "iter"] == list(range(1, 9))
    assert snap["records"] == runs.read_metrics(run_dir)


def test_a_finished_run_whose_test_split_went_away_says_so_live(split, cache, tmp_path, registry, monkeypatch):
    import shutil

    data = tmp_path / "split"
    shutil.copytree(split, data)
    real_evaluate = engine.evaluate_run

    def split_deleted_first(*args, **kwargs):
        shutil.rmtree(data)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate_run", split_deleted_first)
    run_id = registry.submit(config(data), tmp_path / "runs", cache)
    assert registry.wait(timeout=120)
    snap = registry.snapshot(run_id)
    assert snap["status"] == "finished" and snap["message_key"] == "training.test_split_missing"
    assert snap["message_params"]["path"] == str(data / "test") and str(data / "test") in snap["message"]
