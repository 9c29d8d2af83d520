"""The catalog's backup for `docpress repair`: a full copy, plus a journal of the writes since.

Copying the whole catalog after every write cost 7-14 s at a million pages (a 2.6 GB file),
whatever the write. So a write appends what it changed to a journal instead: the statements
its committed transactions ran, with their parameters, replayed in order onto the copy by a
repair. A full copy is taken again when the journal would pass JOURNAL_SHARE of the
catalog's size (every write, for a small index), when a write ran something the journal
cannot replay, or when the chain is broken (a writer that committed and died before
journaling: the generation it left is not where the journal ends).

Files, beside the catalog:
    catalog.backup        the full copy; its state row BACKUP_TOKEN names its journal
    catalog.journal       JSON lines {"from", "to", "sha", "statements"}, appended and synced
    catalog.journal.json  {"token", "end": the generation the journal reaches, "bytes"},
                          renamed into place after each append
A crash at any point leaves a copy and a journal that replay to a state the catalog had: a
journal of another token is ignored, a torn last line stops the replay before it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
import uuid
from pathlib import Path

from indexer.layout import CATALOG_BACKUP, CATALOG_JOURNAL, CATALOG_JOURNAL_STATE

JOURNAL_SHARE = 0.1  # a journal past this share of the catalog's bytes: a full copy instead
BACKUP_TOKEN = "backup.token"  # state key of the copy: which journal continues it
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
READS = ("SELECT", "PRAGMA", "EXPLAIN")  # (the catalog's pragmas set modes or checkpoint)


class RecordingConnection(sqlite3.Connection):
    """A connection that can record its committed writes (statement, parameter rows) between
    start() and take(). Transactions are opened and closed by explicit statements here
    (isolation_level=None): a rolled-back transaction's writes are dropped."""

    _recording = False

    def start(self) -> None:
        self._recording, self._committed, self._open, self._replayable = True, [], None, True

    @property
    def recording(self) -> bool:
        return self._recording

    def take(self) -> list | None:
        """The committed writes since start() and stop recording; None when one of them
        cannot be replayed (a schema change, a script)."""
        if not self._recording:
            return None
        self._recording = False
        return self._committed if self._replayable else None

    def _note(self, sql: str, rows: list) -> None:
        verb = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if verb in ("BEGIN",):
            self._open = []
        elif verb in ("COMMIT", "END"):
            self._committed.extend(self._open or [])
            self._open = None
        elif verb == "ROLLBACK":
            self._open = None
        elif verb in WRITES:
            (self._open if self._open is not None else self._committed).append((sql, rows))
        elif verb not in READS:  # a schema change, a savepoint, a CTE: not replayed, a full copy
            self._replayable = False

    def execute(self, sql, parameters=()):
        if self._recording:
            if isinstance(parameters, dict):  # named parameters: journaled as a full copy
                self._replayable = False
            self._note(sql, [list(parameters) if not isinstance(parameters, dict) else []])
        return super().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        if self._recording:
            seq_of_parameters = list(seq_of_parameters)
            if any(isinstance(p, dict) for p in seq_of_parameters):  # named: a full copy instead
                self._replayable = False
            self._note(sql, [list(p) if not isinstance(p, dict) else [] for p in seq_of_parameters])
        return super().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script):
        if self._recording:
            self._replayable = False
        return super().executescript(sql_script)


def _plain(value):
    """A parameter as JSON can hold it exactly: what SQLite stored as a blob (bytes, or any
    object with the buffer protocol, as numpy scalars) as base64 of the same bytes."""
    return {"b64": base64.b64encode(bytes(memoryview(value))).decode()}  # TypeError: not journaled


def _parameter(value):
    return base64.b64decode(value["b64"]) if isinstance(value, dict) else value


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _generation(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM state WHERE key='generation'").fetchone()
    return int(row[0]) if row else 0


class CatalogBackup:
    """The backup files of one index folder."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.copy = self.directory / CATALOG_BACKUP
        self.journal = self.directory / CATALOG_JOURNAL
        self.state_file = self.directory / CATALOG_JOURNAL_STATE

    # -- writing --------------------------------------------------------------------------
    def full(self, db: sqlite3.Connection) -> None:
        """A consistent full copy (written aside, then renamed), and an empty journal after it."""
        token = uuid.uuid4().hex
        tmp = Path(str(self.copy) + ".tmp")
        tmp.unlink(missing_ok=True)
        copy = sqlite3.connect(tmp)
        try:
            db.backup(copy)
            copy.execute("INSERT INTO state(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE "
                         "SET value = excluded.value", (BACKUP_TOKEN, token))
            copy.commit()
            generation = _generation(copy)
        finally:
            copy.close()
        _fsync_file(tmp)
        os.replace(tmp, self.copy)
        # from here the old journal no longer matches the copy's token: never replayed onto it
        empty = self.journal.with_name(self.journal.name + ".tmp")
        empty.write_bytes(b"")
        os.replace(empty, self.journal)
        _write_json(self.state_file, {"token": token, "end": generation, "bytes": 0})

    def save(self, db: sqlite3.Connection, writes: list | None, start: int) -> str:
        """After a write that began at generation `start` and ran `writes` (None: unknown):
        append them to the journal, or take a full copy when that is the sound or the cheaper
        choice. Returns "journal" or "full"."""
        end = _generation(db)
        state = _read_json(self.state_file)
        try:
            line = self._line(writes, start, end) if writes is not None else None
        except (TypeError, ValueError):  # a parameter JSON cannot hold: a full copy instead
            line = None
        try:
            size = os.path.getsize(self.journal) if state else 0
        except OSError:
            size = 0
        # pages in use, whether still in the write-ahead log or folded into the file
        catalog_bytes = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
        chained = (state is not None and line is not None and state.get("end") == start
                   and state.get("bytes") == size and self.copy.exists())
        if not chained or size + len(line) > JOURNAL_SHARE * catalog_bytes:
            self.full(db)
            return "full"
        if writes:
            with open(self.journal, "ab") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            _write_json(self.state_file, {"token": state["token"], "end": end, "bytes": size + len(line)})
        return "journal"

    @staticmethod
    def _line(writes: list, start: int, end: int) -> bytes:
        statements = json.dumps(writes, default=_plain, separators=(",", ":"))
        sha = hashlib.sha256(statements.encode()).hexdigest()
        return (f'{{"from":{start},"to":{end},"sha":"{sha}","statements":{statements}}}\n').encode()

    # -- repair ---------------------------------------------------------------------------
    def replay(self, db: sqlite3.Connection) -> int:
        """Replay the journal onto `db`, a catalog restored from the copy; returns the writes
        replayed. Stops at the first line that is torn, damaged or does not follow on."""
        token = db.execute("SELECT value FROM state WHERE key=?", (BACKUP_TOKEN,)).fetchone()
        state = _read_json(self.state_file)
        if token is None or state is None or state.get("token") != token[0]:
            return 0
        replayed = 0
        try:
            lines = self.journal.read_bytes().splitlines()
        except OSError:
            return 0
        for raw in lines:
            try:
                line = json.loads(raw)
                statements = json.dumps(line["statements"], separators=(",", ":"))
                if hashlib.sha256(statements.encode()).hexdigest() != line["sha"]:
                    break
                if _generation(db) != line["from"]:
                    break
                db.execute("BEGIN IMMEDIATE")
                for sql, rows in line["statements"]:
                    db.executemany(sql, [[_parameter(v) for v in row] for row in rows])
                if _generation(db) != line["to"]:
                    db.execute("ROLLBACK")
                    break
                db.execute("COMMIT")
            except (ValueError, KeyError, TypeError, sqlite3.Error):
                if db.in_transaction:
                    db.execute("ROLLBACK")
                break
            replayed += 1
        return replayed

