"""Ctrl-C stays an abort after a library took SIGINT over (`components.stepping.ctrl_c_kept`): the handler in
place before is put back, and a Ctrl-C the library's handler absorbed comes out as KeyboardInterrupt. The
library here is a handler shaped like Ray Train's (a closure counting presses); tests/integration/
test_cli_interrupt.py presses Ctrl-C on a real `lfsd onboard` after real Ray Train."""

from __future__ import annotations

import os
import signal

import pytest

from components.stepping import ctrl_c_kept


@pytest.fixture(autouse=True)
def _python_default_ctrl_c():
    """Python's own SIGINT handler for each test, whatever an earlier test in this process left (a Ray Train
    fit run in-process leaves Ray's handler installed, which is the very thing `ctrl_c_kept` is about)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _take_over_like_ray_train():
    sigint_count = 0

    def sigint_handler(signum, frame):
        nonlocal sigint_count
        sigint_count += 1  # Ray Train aborts its fit here and returns: no exception reaches the caller

    signal.signal(signal.SIGINT, sigint_handler)


def test_the_previous_handler_comes_back_and_an_absorbed_ctrl_c_is_raised():
    before = signal.getsignal(signal.SIGINT)
    with ctrl_c_kept():
        _take_over_like_ray_train()
    assert signal.getsignal(signal.SIGINT) is before  # nothing pressed: no exception, handler restored

    with pytest.raises(KeyboardInterrupt), ctrl_c_kept():
        _take_over_like_ray_train()
        os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before

    with pytest.raises(KeyboardInterrupt), ctrl_c_kept():  # the fit failed because it was aborted
        _take_over_like_ray_train()
        os.kill(os.getpid(), signal.SIGINT)
        raise RuntimeError("Ray training of concept 'x' failed: the controller died")
    with pytest.raises(KeyboardInterrupt):  # and with the default handler back, Ctrl-C raises again
        os.kill(os.getpid(), signal.SIGINT)


def test_a_fit_that_ray_ends_with_sys_exit_is_an_interrupt_too():
    """Ray Train's handler calls sys.exit(0) when its controller is already gone."""
    with pytest.raises(KeyboardInterrupt), ctrl_c_kept():
        _take_over_like_ray_train()
        os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(0)
