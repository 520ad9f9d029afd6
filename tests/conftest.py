"""Shared test settings."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tests run tiny models and maps on a shared 2-core machine, where a second intra-op
    thread only adds contention (a small ResNet test took 25 s with 2 threads, 1 s with 1).
    Restored after each test, so a test may still ask for more."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class _Interrupter:
    """``interrupt(owner, name, n)``: ``owner.name`` raises KeyboardInterrupt (a Ctrl-C) at
    its n-th call and runs as before until then; ``.restore()`` puts the original back."""

    def __init__(self, monkeypatch):
        self.monkeypatch = monkeypatch
        self.saved = []

    def __call__(self, owner, name: str, n: int) -> list:
        real = getattr(owner, name)
        calls = []

        def dying(*args, **kwargs):
            calls.append(1)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        self.saved.append((owner, name, real))
        self.monkeypatch.setattr(owner, name, dying)
        return calls

    def restore(self) -> None:
        while self.saved:
            owner, name, real = self.saved.pop()
            self.monkeypatch.setattr(owner, name, real)


@pytest.fixture
def interrupt(monkeypatch):
    return _Interrupter(monkeypatch)
