"""Test controls: injected faults and forbidden verbs, plus the identity behind a token."""

from __future__ import annotations

import base64
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import errors as e

DEFAULT_USER = "system:serviceaccount:default:app-resource-pipeline"
TOKEN_PREFIX = "fake-token."
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")


def token_for(user: str) -> str:
    """A dummy bearer token that names its user, so any process can tell who is calling."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(user.encode()).decode().rstrip("=")


def user_for(authorization: str | None) -> str:
    # The scheme is case-insensitive (the in-cluster loader sends "bearer").
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.startswith(TOKEN_PREFIX):
        encoded = token[len(TOKEN_PREFIX) :]
        try:
            return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        except ValueError:
            pass
    return DEFAULT_USER


@dataclass
class Faults:
    """What api.fail() set: shares of requests to fail, reset or delay."""

    rate: float = 0.0
    status: int = 503
    reset_rate: float = 0.0
    latency: float = 0.0
    lost_response_rate: float = 0.0
    only: frozenset[str] | None = None
    rng: random.Random = field(default_factory=random.Random)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hang: bool = False  # requests get no answer until these faults are replaced
    resources: frozenset[str] | None = None  # only requests on these (plural) resources
    released: threading.Event = field(default_factory=threading.Event)  # set: hangs end

    def applies(self, verb: str, resource: str | None = None) -> bool:
        return (self.only is None or verb in self.only) and (
            self.resources is None or resource in self.resources
        )

    def roll(self, share: float) -> bool:
        if share <= 0:
            return False
        with self.lock:
            return self.rng.random() < share

    def error(self) -> e.ApiError:
        if self.status == 429:
            return e.too_many_requests()
        if self.status == 503:
            return e.service_unavailable()
        reasons = {
            500: "InternalError",
            504: "Timeout",
            502: "BadGateway",
            409: "Conflict",
            410: "Expired",
        }
        return e.ApiError(
            self.status, reasons.get(self.status, "Unknown"), f"injected fault ({self.status})"
        )


def make_faults(
    rate: float = 0.0,
    status: int = 503,
    reset_rate: float = 0.0,
    latency: float = 0.0,
    seed: int | None = None,
    only: Iterable[str] | None = None,
    lost_response_rate: float = 0.0,
    hang: bool = False,
    resources: Iterable[str] | None = None,
) -> Faults:
    if only is not None:
        only = frozenset(only)
        unknown = only - set(VERBS)
        if unknown:
            raise ValueError(f"unknown verbs {sorted(unknown)}; expected some of {VERBS}")
    return Faults(
        rate,
        status,
        reset_rate,
        latency,
        lost_response_rate,
        only,
        random.Random(seed),
        hang=hang,
        resources=None if resources is None else frozenset(resources),
    )


@dataclass
class Rules:
    """Forbidden (verb, resource, namespace) triples; namespace None means every namespace."""

    forbidden: set[tuple[str, str, str | None]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def forbid(self, verb: str, resource: str, namespace: str | None) -> None:
        if verb != "*" and verb not in VERBS:
            raise ValueError(f"unknown verb {verb!r}; expected one of {VERBS} or '*'")
        with self.lock:
            self.forbidden.add((verb, resource, namespace))

    def clear(self) -> None:
        with self.lock:
            self.forbidden.clear()

    def denies(self, verb: str, resource: str, namespace: str | None) -> bool:
        with self.lock:
            rules = list(self.forbidden)
        return any(
            v in ("*", verb) and r in ("*", resource) and (ns is None or ns == namespace)
            for v, r, ns in rules
        )
