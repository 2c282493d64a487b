"""Training progress: a bar with an ETA on a terminal, nothing in a log. In-process the launcher advances
it from the loop's `on_step`; under Ray the rank-0 worker writes a progress file the driver polls
(`components/ray_train/progress_file.py`), since Ray Train returns reported rows only after fit()."""

from __future__ import annotations

import io
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from components.ray_train import progress_file
from components.ray_train.progress_file import FILE, Mark, StepWriter, follow

THREAD = "lfsd-training-progress"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Recorder:
    """Stands in for `components.progress.progress`: what bars were opened, and every advance."""

    def __init__(self):
        self.opened: list[tuple[str, int, int]] = []
        self.advances: list[int] = []

    @contextmanager
    def __call__(self, description, total, stream=None, enabled=True, start=0):
        self.opened.append((description, total, start))
        yield self.advances.append


def _poller_alive() -> bool:
    return any(t.name == THREAD and t.is_alive() for t in threading.enumerate())


def test_the_writer_fixes_the_start_at_its_first_step_and_always_writes_the_last(tmp_path):
    path = tmp_path / "run" / FILE  # the run folder need not exist yet
    write = StepWriter(path, total=50, min_interval=60.0)
    write(31)  # a resumed attempt: its checkpoint was taken after step 30
    assert progress_file.read_mark(path) == Mark(step=31, total=50, start=30)
    write(32)  # within min_interval: skipped
    assert progress_file.read_mark(path) == Mark(step=31, total=50, start=30)
    write(50)  # the last step is always written
    assert progress_file.read_mark(path) == Mark(step=50, total=50, start=30)
    assert [p.name for p in path.parent.iterdir()] == [FILE]  # no temp file left behind


def test_a_missing_or_foreign_file_is_no_mark(tmp_path):
    assert progress_file.read_mark(tmp_path / FILE) is None
    (tmp_path / FILE).write_text("{not json")
    assert progress_file.read_mark(tmp_path / FILE) is None
    assert progress_file.step_writer(None, 10) is None  # no path asked for: the hook stays off


def test_progress_is_asked_for_only_on_a_terminal_and_a_local_storage(tmp_path):
    assert progress_file.progress_path(str(tmp_path), "run-1", stream=_Terminal()) == tmp_path / "run-1" / FILE
    assert progress_file.progress_path(str(tmp_path), "run-1", stream=io.StringIO()) is None
    assert progress_file.progress_path("s3://bucket/ray", "run-1", stream=_Terminal()) is None


def test_the_driver_follows_steps_written_by_another_thread(tmp_path):
    path, out = tmp_path / FILE, _Terminal()

    def worker():
        write = StepWriter(path, total=20, min_interval=0.0)
        for step in range(1, 21):
            write(step)
            time.sleep(0.005)

    with follow(path, "training dog", stream=out, interval=0.01):
        assert _poller_alive()
        t = threading.Thread(target=worker)
        t.start()
        t.join()
    text = out.getvalue()
    assert "training dog" in text and "20/20" in text and "ETA" in text
    assert not _poller_alive()  # stopped with the body
    assert not path.exists()  # the driver removes the file at the end


def test_off_a_terminal_there_is_no_thread_and_no_output(tmp_path):
    path, out = tmp_path / FILE, io.StringIO()
    with follow(path, "training dog", stream=out, interval=0.01):
        assert not _poller_alive()
        StepWriter(path, total=3)(3)
        time.sleep(0.05)
    assert out.getvalue() == ""


def test_the_bar_opens_at_the_resumed_step_and_never_runs_backwards(tmp_path, monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(progress_file, "progress", recorder)
    path = tmp_path / FILE
    with ExitStack() as bar:
        follower = progress_file._Follower(path, "training dog", _Terminal(), bar)
        follower.tick()  # no mark yet: no bar
        assert recorder.opened == []
        progress_file.write_mark(path, Mark(step=34, total=100, start=30))
        follower.tick()
        progress_file.write_mark(path, Mark(step=40, total=100, start=30))
        follower.tick()
        progress_file.write_mark(path, Mark(step=36, total=100, start=35))  # the worker group restarted from step 35
        follower.tick()
        progress_file.write_mark(path, Mark(step=45, total=100, start=35))
        follower.tick()
    assert recorder.opened == [("training dog", 100, 30)]
    assert recorder.advances == [4, 6, 5]


def test_a_mark_left_by_a_killed_attempt_is_not_shown(tmp_path, monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(progress_file, "progress", recorder)
    path = tmp_path / FILE
    progress_file.write_mark(path, Mark(step=15, total=20, start=0))
    with follow(path, "training dog", stream=_Terminal(), interval=0.01):
        time.sleep(0.05)
    assert recorder.opened == []


def test_the_bar_closes_when_fit_raises(tmp_path):
    path, out = tmp_path / FILE, _Terminal()
    with pytest.raises(RuntimeError, match="worker died"), follow(path, "training dog", stream=out, interval=0.01):
        StepWriter(path, total=10, min_interval=0.0)(4)
        time.sleep(0.05)
        raise RuntimeError("worker died")
    assert not _poller_alive()
    assert "4/10" in out.getvalue()


def _request(tmp_path: Path, tiny_training_config):
    from components.training.launch import TrainRequest

    return TrainRequest(
        base_dir=tmp_path,
        previous_checkpoint=None,
        concept_dir=tmp_path / "dog",
        references="refs",
        out=tmp_path / "out",
        method="lfs",
        cfg=tiny_training_config,
    )


@pytest.mark.parametrize("terminal", [True, False])
def test_the_in_process_launcher_draws_a_bar_only_on_a_terminal(tmp_path, tiny_training_config, monkeypatch, terminal):
    from components.training import launch

    def fake_run(req, report=None, hooks=None):
        for step in range(1, req.cfg.steps + 1):
            hooks.on_step(step)
        return "trained"

    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(launch, "run_request", fake_run)
    monkeypatch.setattr("sys.stderr", err)
    assert launch.in_process(threads=1)(_request(tmp_path, tiny_training_config)) == "trained"
    steps = tiny_training_config.steps
    if terminal:
        assert "training dog" in err.getvalue() and f"{steps}/{steps}" in err.getvalue()
    else:
        assert err.getvalue() == ""


def test_the_loop_calls_on_step_after_every_step(tiny_base_dir, two_concepts, tiny_training_config, tmp_path):
    from components.lifelong import LifelongModel
    from components.training.concept import read_concept
    from components.training.loop import WorkerHooks, train_task
    from components.training.methods import get_method

    seen: list[int] = []
    train_task(
        LifelongModel.from_base(tiny_base_dir, "finetune"),
        read_concept(two_concepts[0]),
        get_method("finetune"),
        tiny_training_config,
        tmp_path / "01",
        hooks=WorkerHooks(on_step=seen.append),
    )
    assert seen == list(range(1, tiny_training_config.steps + 1))
