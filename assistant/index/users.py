"""The newsroom's users and their personal keys, kept in the store of truth beside its change log.

A user is a name and a role (`reader` or `admin`). `add` makes a key and returns it once; only its scrypt hash
is stored (`hashlib.scrypt`, a salt per key). A key names its record (`nak_<id>_<secret>`), so checking one is
one read of the store: every worker and machine on one Chroma server sees a removal at the next request, with
no restart. A key checked once is remembered by this process (by its SHA-256) only for as long as its record
is unchanged, so scrypt runs once per key and process, never per request.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import numpy as np

from assistant.errors import AssistantError
from assistant.index.chroma import Chroma

KEY_PREFIX = "nak_"
_KEY = re.compile(r"^nak_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}  # ~16 MB and a few tens of ms: once per key and process


class Role(StrEnum):
    """What a personal key (or a signed-in user) may do: a reader asks and reads, an admin also changes."""

    READER = "reader"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    name: str
    role: Role
    created: str = ""

    def to_json(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.value, "created": self.created}


def check_name(name: str) -> str:
    """A user name as the sign-in proxy sends it (a login or an e-mail address), else AssistantError."""
    if not NAME.match(name or ""):
        raise AssistantError(f"{name!r} is not a user name",
                             "use letters, digits and . _ @ + - (a login or an e-mail address, at most 128)")
    return name


def _hash(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _matches(secret: str, stored: str) -> bool:
    try:
        _, salt, _digest = stored.split("$")
        return hmac.compare_digest(_hash(secret, bytes.fromhex(salt)), stored)
    except ValueError:
        return False


class Users:
    """Users and keys in the log collection (ids `user:<key id>`, metadata kind=user, name, role, hash)."""

    def __init__(self, chroma: Chroma):
        self.chroma = chroma
        self._checked: dict[str, str] = {}  # sha256(key) -> the stored hash it matched
        self._lock = threading.Lock()

    def _get(self, **kwargs) -> dict[str, Any]:
        got = self.chroma.call("read", "get", log_collection=True, create=False, include=["metadatas"], **kwargs)
        return got or {"ids": [], "metadatas": []}

    def _records(self, name: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        where: dict[str, Any] = {"kind": "user"} if name is None else {"$and": [{"kind": "user"}, {"name": name}]}
        got = self._get(where=where)
        return list(zip(got["ids"], got["metadatas"]))

    def add(self, name: str, role: Role | str) -> str:
        """Create `name` with `role`; returns its key, which is not stored and cannot be shown again."""
        check_name(name)
        role = Role(role)
        if self._records(name):
            raise AssistantError(f"user {name!r} already exists",
                                 f"remove it first (assistant users remove {name}) to give it a new key")
        key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        meta = {"kind": "user", "name": name, "role": role.value, "hash": _hash(secret, secrets.token_bytes(16)),
                "created": datetime.now(UTC).isoformat(timespec="seconds")}
        self.chroma.call("write", "upsert", log_collection=True, ids=[f"user:{key_id}"], metadatas=[meta],
                         embeddings=np.ones((1, 1), dtype=np.float32))
        return f"{KEY_PREFIX}{key_id}_{secret}"

    def all(self) -> list[User]:
        users = [User(m["name"], Role(m["role"]), m.get("created", "")) for _, m in self._records()]
        return sorted(users, key=lambda u: u.name.lower())

    def get(self, name: str) -> User | None:
        """The user of that name (how a signed-in user's role is found), or None."""
        records = self._records(name) if NAME.match(name or "") else []
        return User(records[0][1]["name"], Role(records[0][1]["role"])) if records else None

    def remove(self, name: str) -> bool:
        """Delete `name` and its key; False when there is no such user."""
        ids = [i for i, _ in self._records(name)]
        if ids:
            self.chroma.call("write", "delete", log_collection=True, ids=ids)
        return bool(ids)

    def export(self) -> list[tuple[str, dict[str, Any]]]:
        """Every user record as (id, metadata: name, role, the key's hash, created): what a backup carries."""
        return sorted(self._records(), key=lambda r: r[0])

    def restore(self, rows: list[tuple[str, dict[str, Any]]]) -> int:
        """Put records `export` gave back under their own ids (restoring twice doubles nothing); how many."""
        kept = [(i, {k: m[k] for k in ("name", "role", "hash", "created") if k in m} | {"kind": "user"})
                for i, m in rows if isinstance(i, str) and i.startswith("user:") and isinstance(m, dict)
                and NAME.match(str(m.get("name", ""))) and m.get("role") in tuple(Role)]
        if kept:
            self.chroma.call("write", "upsert", log_collection=True, ids=[i for i, _ in kept],
                             metadatas=[m for _, m in kept], embeddings=np.ones((len(kept), 1), dtype=np.float32))
        return len(kept)

    def verify(self, key: str) -> User | None:
        """The user whose key this is, or None (malformed, unknown, removed or wrong secret)."""
        match = _KEY.match(key or "")
        if not match:
            return None
        got = self._get(ids=[f"user:{match.group(1)}"])
        if not got["ids"] or got["metadatas"][0].get("kind") != "user":
            return None
        meta = got["metadatas"][0]
        tag = hashlib.sha256(key.encode()).hexdigest()
        with self._lock:
            known = self._checked.get(tag)
        if known != meta["hash"]:
            if not _matches(match.group(2), meta["hash"]):
                return None
            with self._lock:
                if len(self._checked) > 10_000:
                    self._checked.clear()
                self._checked[tag] = meta["hash"]
        return User(meta["name"], Role(meta["role"]), meta.get("created", ""))


def is_personal_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)
