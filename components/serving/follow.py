"""Following `production`: a replica asks the registry where the alias points every `follow_seconds` and
swaps to that version, atomically.

The swap rule:
  - the new version is loaded and checked in full (`loaded.load`: package, index, every file) while the
    old one serves; its tags are read again after the load (an erasure may have come meanwhile), and only
    then does one reference change: `self._current = new`. A batch reads that reference once, so all its
    images come from one version.
  - a version tagged erased (`erased_versions.refusal`) is never loaded; a loaded version that gets tagged
    erased (or is deleted) is dropped at the next poll, before its successor loads: requests wait for the
    successor (up to `serving.load_wait_seconds`) rather than draw with an erased concept.
  - the registry unreachable: the loaded version keeps serving; `health` says so.
  - memory: nothing of a retired version stays alive once no batch draws with it (a weak reference says
    so; then gc.collect and glibc's malloc_trim(0)), and its weights leave RSS: they were loaded as mappings
    of their own (`weights_mapped`). Before, glibc put them in heap arenas that keep freed pages and the
    replica grew ~25% over 20 swaps (docs/results.md, "Serving").
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass

from components.serving.loaded import LoadedVersion, load


@dataclass(frozen=True)
class Seen:
    """One look at the registry."""

    production: str | None  # the version `production` points at (None: no alias)
    refusal: str | None  # why that version may not serve (it held an erased concept), or None
    loaded_gone: bool  # the loaded version is tagged erased, or no longer exists


@dataclass(frozen=True)
class Decision:
    drop: bool  # stop serving the loaded version now
    load: str | None  # the version to load and swap in


def decide(loaded: str | None, seen: Seen) -> Decision:
    """What a poll does, from what it saw (pure: the whole swap policy in one place)."""
    wanted = seen.production if seen.refusal is None else None
    return Decision(loaded is not None and seen.loaded_gone, wanted if wanted != loaded else None)


def look(client, model_name: str, loaded: str | None) -> Seen:
    """Where `production` points and whether the loaded version may still serve (raises when the
    registry cannot be reached)."""
    from mlflow.exceptions import MlflowException

    from components.registry.aliases import PRODUCTION, get_alias_version
    from components.registry.erased_versions import erased_from, refusal

    production = get_alias_version(model_name, PRODUCTION, client=client)
    tags = dict(client.get_model_version(model_name, production).tags or {}) if production else {}
    refused = refusal(model_name, production, tags) if production else None
    gone = False
    if loaded is not None:
        try:
            same = loaded == production
            gone = bool(erased_from(tags if same else dict(client.get_model_version(model_name, loaded).tags or {})))
        except MlflowException as e:
            if e.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            gone = True
    return Seen(production, refused, gone)


def erased_names(client, model_name: str) -> tuple[str, ...]:
    """Every concept erased from any version of the model (so a request naming one hears why)."""
    from components.registry.erased_versions import erased_from

    found = set()
    for v in client.search_model_versions(f"name='{model_name}'"):
        found.update(erased_from(v.tags or {}))
    return tuple(sorted(found))


def _malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS): the call that returns freed heap pages to the OS."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()
M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)
LOAD_MMAP_THRESHOLD = 128 * 1024  # while a version loads: glibc's own starting value
DRAW_MMAP_THRESHOLD = 32 << 20  # otherwise: the ceiling glibc's dynamic threshold reaches on 64-bit anyway


def _mallopt():
    try:
        return ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None


_MALLOPT = _mallopt()


@contextmanager
def weights_mapped():
    """While a version loads, every block of 128 KiB and up is a mapping of its own, unmapped when freed: its
    weights leave RSS when it retires. Only then: fixed that low, every activation of a draw is mapped too and
    a batch took 1.5x as long (0.95 -> 1.5 s, 8 images x 30 steps, tiny base); a draw meanwhile pays it, for
    the load's seconds. Left to glibc, the threshold rises to the largest block freed, and the next version's
    weights go to heap arenas that keep freed pages. No-op without glibc's mallopt."""
    if _MALLOPT is None:
        yield
        return
    _MALLOPT(M_MMAP_THRESHOLD, LOAD_MMAP_THRESHOLD)
    try:
        yield
    finally:
        _MALLOPT(M_MMAP_THRESHOLD, DRAW_MMAP_THRESHOLD)


def release_memory() -> None:
    """Collect what the retired version left (cycles included) and return the freed pages: a model's tensors
    are freed into glibc's heap arenas (one per thread that loaded or drew), which keep the pages otherwise."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:300]


class Follower:
    """Holds the version a replica serves and keeps it on `production` (a daemon thread)."""

    def __init__(self, client, model_name: str, placement, follow_seconds: float, log=print):
        self.client, self.model_name, self.placement = client, model_name, placement
        self.follow_seconds, self.log = float(follow_seconds), log
        self._current: LoadedVersion | None = None
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.registry_error: str | None = None
        self.registry_seen_at: float | None = None
        self.load_error: str | None = None
        self._failed: tuple[str, float] | None = None  # (version, when) of the last load that failed
        self.swaps: list[dict] = []  # {"from", "to", "at", "load_seconds"}: the last 50, for /version
        self._retired: weakref.ref | None = None  # the version swapped out, until its memory is released

    def current(self) -> LoadedVersion | None:
        return self._current  # one attribute read: a caller holds one version for all it does

    def retired_alive(self) -> bool:
        """Whether the version swapped out is still held (a batch that began before the swap draws with it)
        and its memory not yet given back: it is, at the latest, at the poll after that batch ends."""
        return self._retired is not None and self._retired() is not None

    def wait_current(self, timeout: float) -> LoadedVersion | None:
        """The serving version; while there is none, wait up to `timeout` seconds for one."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._current is None and (left := deadline - time.monotonic()) > 0:
                self._changed.wait(left)
            return self._current

    def _swap(self, new: LoadedVersion | None, load_seconds: float = 0.0) -> None:
        old = self._current
        with self._changed:
            self._current = new
            self._changed.notify_all()
        record = {"from": old and old.version, "to": new and new.version, "at": time.time()}
        self.swaps = [*self.swaps[-49:], record | {"load_seconds": round(load_seconds, 3)}]
        self.log(f"serving: version {record['from']} -> {record['to']} (loaded in {load_seconds:.2f} s)")
        if old is not None and old.pyfunc is not None:
            self._retired = weakref.ref(old.pyfunc)  # the weights: what a retired version costs
        del old  # the last reference here: a batch drawing with it holds its own until it ends
        self._release()

    def _release(self) -> None:
        """Once nothing holds the retired version, give its memory back (release_memory); until then, try
        again at each poll (an in-flight batch keeps it alive for one denoising loop)."""
        if self._retired is None:
            return
        gc.collect()
        if self._retired() is None:
            self._retired = None
            release_memory()

    def poll_once(self) -> None:
        """Look once; drop and load as `decide` says. Never raises: a failure is kept for /health."""
        self._release()  # a retired version a batch held at the swap, released even while the registry is down
        loaded = self._current.version if self._current else None
        try:
            seen = look(self.client, self.model_name, loaded)
        except Exception as e:  # the registry cannot be reached (or answers nonsense): keep serving
            self.registry_error = _first_line(e)
            return
        self.registry_error, self.registry_seen_at = None, time.time()
        decision = decide(loaded, seen)
        if decision.drop:
            self._swap(None)
        if decision.load is not None:
            self._load(decision.load)
        self._note_erasures()

    def _note_erasures(self) -> None:
        """The serving version, told which concepts were erased since it loaded (an erasure tags the old
        versions after `production` moved): a request naming one hears why. Same version, same weights."""
        current = self._current
        try:
            names = erased_names(self.client, self.model_name)
        except Exception:
            return
        if current is not None and names != current.erased:
            with self._changed:
                if self._current is current:
                    self._current = dataclasses.replace(current, erased=names)

    def _load(self, version: str) -> None:
        retry_after = max(10.0, 5 * self.follow_seconds)
        if self._failed and self._failed[0] == version and time.time() - self._failed[1] < retry_after:
            return
        started = time.monotonic()
        try:
            with weights_mapped():
                new = load(self.model_name, version, self.placement, self._current.erased if self._current else ())
            # checked again after the load: an erasure that came while it loaded keeps it out
            if look(self.client, self.model_name, version).loaded_gone:
                raise RuntimeError(f"version {version} was erased while it loaded")
        except Exception as e:
            self._failed, self.load_error = (version, time.time()), f"version {version}: {_first_line(e)}"
            self.log(f"serving: could not load {self.load_error}")
            return
        self._failed, self.load_error = None, None
        self._swap(new, time.monotonic() - started)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.follow_seconds)

    def start(self) -> Follower:
        self._thread = threading.Thread(target=self._run, name="lfsd-follow-production", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def health(self) -> tuple[int, dict]:
        """(HTTP status, body) of /health: 503 only while no version is loaded; a registry that cannot be
        reached is a field (the loaded version still serves)."""
        current = self._current
        seen_ago = None if self.registry_seen_at is None else round(time.time() - self.registry_seen_at, 3)
        body = {
            "version": current and current.version,
            "registry": "unreachable" if self.registry_error else "ok",
            "registry_error": self.registry_error,
            "seconds_since_registry_seen": seen_ago,
            "load_error": self.load_error,
        }
        if current is None:
            return 503, {"status": "no model"} | body
        return 200, {"status": "registry unreachable" if self.registry_error else "ok"} | body
