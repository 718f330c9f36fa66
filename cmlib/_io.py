"""Atomic file output and content hashing, shared by every module that writes.

The rule of the project: a result is either complete or absent.  Writers
produce a temporary file (or directory) beside the destination and rename it
into place only when it is complete, so an interrupted write (Ctrl-C, kill,
power loss) never leaves a half-written or clobbered result behind.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .errors import InputError, OutputExistsError


#: Longest file name (bytes) and path (bytes) the common Linux file systems accept.
NAME_MAX = 255
PATH_MAX = 4096
#: Room a temporary name needs beyond the final name: "." + ".tmp-<pid>-<8 hex>".
_TMP_OVERHEAD = 1 + 5 + 10 + 1 + 8


def check_path_length(path: str | os.PathLike, what: str = "output") -> Path:
    """Raise :class:`InputError` if a component of ``path`` or the whole path exceeds the OS limits."""
    path = Path(path)
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise InputError(f"the name '{part[:40]}...' in {what} '{str(path)[:60]}...' is "
                             f"{len(os.fsencode(part))} bytes long; file systems allow {NAME_MAX}. "
                             "Choose a shorter name.")
    if len(os.fsencode(os.path.abspath(path))) > PATH_MAX - 64:
        raise InputError(f"the path of {what} is {len(os.fsencode(os.path.abspath(path)))} bytes long; the "
                         f"system allows {PATH_MAX} (with room for a temporary name). Choose a shorter path.")
    return path


def temp_prefix(final: Path) -> str:
    """Hidden-name prefix of temporary files beside ``final``, shortened (with a hash) if the name is long."""
    name = final.name
    if len(os.fsencode(name)) + _TMP_OVERHEAD > NAME_MAX:
        digest = hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
        keep = name.encode()[:NAME_MAX - _TMP_OVERHEAD - 10].decode("utf-8", "ignore")
        name = f"{keep}~{digest}"
    return f".{name}.tmp-"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(final: str | os.PathLike) -> list[Path]:
    """Remove temporary files of ``final`` left by processes that no longer run (kill -9, power loss).

    Temporary names carry the writer's process id (``.NAME.tmp-PID-XXXXXXXX``);
    those of live processes are kept.  Returns the removed paths.
    """
    final = Path(final)
    prefix = temp_prefix(final)
    removed = []
    try:
        entries = list(final.parent.iterdir()) if str(final.parent) else list(Path(".").iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        try:
            pid = int(entry.name[len(prefix):].split("-")[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            _remove(entry)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def output_lock(final: str | os.PathLike, what: str = "output") -> Iterator[None]:
    """Hold an advisory lock on ``final`` for the life of the block (released by the OS if the process dies).

    A second writer to the same path fails at once with :class:`OutputExistsError`
    naming the running one, instead of both writing and the later one winning.
    """
    import fcntl

    final = Path(final)
    lock = final.with_name(temp_prefix(final)[:-len(".tmp-")] + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                other = os.read(fd, 32).decode().strip() or "?"
            except OSError:
                other = "?"
            raise OutputExistsError(f"another process (pid {other}) is writing {what} '{final}' right now; "
                                    "wait for it to finish or choose another path.") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.unlink(lock)
    finally:
        os.close(fd)


def prepare_output(path: str | os.PathLike, *, overwrite: bool = False, what: str = "output",
                   allow_directory: bool = False) -> Path:
    """Check that ``path`` may be written and create its parent directory.

    Raises :class:`OutputExistsError` if it exists and ``overwrite`` is false
    (or, unless ``allow_directory``, if it is a directory: ``overwrite`` never
    replaces a directory by a file), and :class:`InputError` if its name is
    too long or its directory cannot be created or written.
    """
    path = check_path_length(path, what)
    if path.is_dir() and not allow_directory:
        raise OutputExistsError(f"{what} '{path}' is a directory; choose a file path (--overwrite does not "
                                "replace directories).")
    if path.exists() and not overwrite:
        raise OutputExistsError(
            f"{what} '{path}' already exists; pass --overwrite (overwrite=True) to replace it, "
            "or choose another path."
        )
    if path.exists() and path.is_dir() and not overwrite:
        raise OutputExistsError(f"{what} '{path}' is a directory; choose a file path.")
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the directory '{parent}' for {what} '{path}': {exc.strerror or exc}. "
            "Choose a writable location."
        ) from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"the directory '{parent}' is not writable, so {what} '{path}' cannot be created. "
            "Choose a writable location."
        )
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = False, what: str = "output",
                directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file or
    directory is removed and ``path`` is left exactly as it was.
    """
    final = prepare_output(path, overwrite=overwrite, what=what, allow_directory=directory)
    tmp = final.with_name(f"{temp_prefix(final)}{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory and final.exists():
            # os.replace cannot replace a non-empty directory: move the old one aside first.
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


@contextlib.contextmanager
def exclusive_atomic_path(path: str | os.PathLike, *, overwrite: bool = False, what: str = "output",
                          lock: bool = True) -> Iterator[Path]:
    """Like :func:`atomic_path` for one file, safe against a second writer and against kills.

    * an advisory lock (:func:`output_lock`; ``lock=False`` if the caller holds
      it already) makes a second writer to the same path fail at once;
    * without ``overwrite`` the finished file is published with ``os.link``,
      which fails if the path appeared meanwhile (never a silent clobber);
    * temporary files of dead earlier writers are removed first;
    * on any exception (KeyboardInterrupt, SIGTERM turned into one, a full
      disk) the temporary file is removed and ``path`` is left as it was.
    """
    final = prepare_output(path, overwrite=overwrite, what=what)
    with (output_lock(final, what) if lock else contextlib.nullcontext()):
        remove_stale_temporaries(final)
        if final.exists() and not overwrite:            # created while we waited
            raise OutputExistsError(f"{what} '{final}' already exists; pass --overwrite (overwrite=True) to "
                                    "replace it, or choose another path.")
        tmp = final.with_name(f"{temp_prefix(final)}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            yield tmp
            if overwrite:
                if final.is_dir():
                    raise OutputExistsError(f"{what} '{final}' became a directory; nothing was replaced.")
                os.replace(tmp, final)
            else:
                try:
                    os.link(tmp, final)
                except FileExistsError:
                    raise OutputExistsError(f"{what} '{final}' was created by another process while this one "
                                            "ran; it was kept and this result discarded. Choose another path "
                                            "or pass --overwrite.") from None
                _remove(tmp)
        except BaseException:
            _remove(tmp)
            raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (fsync'ed before the rename)."""
    with atomic_path(path, overwrite=overwrite) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"), overwrite=overwrite)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """Deterministic, human-readable JSON (sorted keys, numpy-aware)."""
    return json.dumps(obj, indent=2, sort_keys=True, default=_json_default, allow_nan=True) + "\n"


def atomic_write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = True) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_text(path, to_json(obj), overwrite=overwrite)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, "r", encoding="utf-8") as fh:
        return json.load(fh)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


class ArrayHasher:
    """Incremental SHA-256 over numpy arrays (dtype, shape and bytes).

    Feed arrays in a fixed order, chunk by chunk if they are large; two data
    sets with the same content give the same digest whatever the file layout
    (compression, chunking, HDF5 object timestamps).
    """

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def update(self, name: str, array: np.ndarray) -> "ArrayHasher":
        a = np.ascontiguousarray(array)
        self._h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        self._h.update(a.tobytes())
        return self

    def update_stream(self, name: str, blocks) -> "ArrayHasher":
        """Hash a large array given as consecutive blocks along axis 0.

        The digest depends only on the concatenated content, not on how it was
        split into blocks, so files written or read in different chunk sizes
        hash the same.
        """
        n = 0
        tail: tuple = ()
        dtype = None
        for block in blocks:
            b = np.ascontiguousarray(block)
            dtype, tail = b.dtype.str, b.shape[1:]
            n += b.shape[0]
            self._h.update(b.tobytes())
        self._h.update(f"|{name}|{dtype}|{(n,) + tuple(tail)}|".encode())
        return self

    def hexdigest(self) -> str:
        return self._h.hexdigest()


def stable_hash(obj: Any, length: int = 12) -> str:
    """Short hex digest of a JSON-serialisable object (key order does not matter)."""
    return hashlib.sha256(to_json(obj).encode()).hexdigest()[:length]


def read_toml(path: str | os.PathLike, *, missing: str, invalid: str) -> tuple[Path, dict]:
    """A TOML file as ``(path, dict)``, or :class:`InputError` naming the problem and the fix.

    ``missing`` and ``invalid`` are the messages for a file that does not exist and one that is not
    TOML; they may use ``{path}`` and (``invalid``) ``{error}``.
    """
    import tomllib

    p = Path(path)
    if not p.is_file():
        raise InputError(missing.format(path=p))
    try:
        return p, tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(invalid.format(path=p, error=exc)) from None
