"""One benchmark run as plain data: its metrics and everything needed to judge whether two runs
are comparable (load shape, environment, versions, whether the load generator was the bottleneck).

The JSON form is what ``--meshcheck-benchmark-save`` stores and ``--meshcheck-benchmark-compare``
reads back, so it is versioned (``SCHEMA``) and read defensively: a baseline is a file a person may
have copied between machines or edited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pytest_meshcheck.benchmark.metrics import MetricValue

SCHEMA = "meshcheck-benchmark/1"


@dataclass(frozen=True, kw_only=True)
class LoadShape:
    """The fixed load each benchmark target gets. ``mode`` is ``closed-loop`` (each user sends its
    next request when the last one answered, so the rate depends on the latency) or
    ``constant-rate`` (a target rate, ``target_rps``, that the generator tries to reach)."""

    mode: str
    users: int
    spawn_rate: float
    workers: int
    target_rps: float | None
    duration_s: float
    warmup_s: float
    request: str = "GET /productpage"

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "users": self.users,
            "spawn_rate": self.spawn_rate,
            "workers": self.workers,
            "target_rps": self.target_rps,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "request": self.request,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LoadShape:
        target = data.get("target_rps")
        return cls(
            mode=str(data["mode"]),
            users=int(data["users"]),
            spawn_rate=float(data.get("spawn_rate", 0.0)),
            workers=int(data.get("workers", 0)),
            target_rps=None if target is None else float(target),
            duration_s=float(data["duration_s"]),
            warmup_s=float(data.get("warmup_s", 0.0)),
            request=str(data.get("request", "")),
        )

    def describe(self) -> str:
        rate = "closed loop" if self.target_rps is None else f"constant rate {self.target_rps:g} req/s"
        return (
            f"{self.users} users ({rate}), {self.duration_s:g}s measured after {self.warmup_s:g}s "
            f"warm-up, {self.request}"
        )


@dataclass(frozen=True, kw_only=True)
class GeneratorNote:
    """How busy the load generator was while it measured one target."""

    saturated: bool
    #: Highest share of one core any generating process used (None when it was not sampled).
    busiest_share: float | None
    requests: int
    failures: int

    def to_json(self) -> dict[str, Any]:
        return {
            "saturated": self.saturated,
            "busiest_share": self.busiest_share,
            "requests": self.requests,
            "failures": self.failures,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GeneratorNote:
        share = data.get("busiest_share")
        return cls(
            saturated=bool(data.get("saturated", False)),
            busiest_share=None if share is None else float(share),
            requests=int(data.get("requests", 0)),
            failures=int(data.get("failures", 0)),
        )


@dataclass(frozen=True, kw_only=True)
class BenchmarkRecord:
    """A benchmark run. ``environment`` holds strings only (cluster kind, Istio version, revision,
    host cores ...): the keys compare warns about when two runs differ."""

    created: str
    load_shape: LoadShape
    environment: Mapping[str, str]
    metrics: Mapping[str, MetricValue]
    generators: Mapping[str, GeneratorNote] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    name: str = ""

    @property
    def generator_saturated(self) -> bool:
        return any(note.saturated for note in self.generators.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "name": self.name,
            "created": self.created,
            "load_shape": self.load_shape.to_json(),
            "environment": dict(self.environment),
            "generator_saturated": self.generator_saturated,
            "generators": {target: note.to_json() for target, note in self.generators.items()},
            "metrics": {name: value.to_json() for name, value in self.metrics.items()},
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BenchmarkRecord:
        """Parse a saved record; ``ValueError`` says what is wrong with it."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema is {data.get('schema')!r}, expected {SCHEMA!r}")
        try:
            return cls(
                name=str(data.get("name", "")),
                created=str(data["created"]),
                load_shape=LoadShape.from_json(data["load_shape"]),
                environment={str(k): str(v) for k, v in (data.get("environment") or {}).items()},
                metrics={str(k): MetricValue.from_json(v) for k, v in data["metrics"].items()},
                generators={
                    str(k): GeneratorNote.from_json(v) for k, v in (data.get("generators") or {}).items()
                },
                notes=tuple(str(note) for note in data.get("notes") or ()),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed benchmark record ({type(exc).__name__}: {exc})") from exc

    def with_name(self, name: str) -> BenchmarkRecord:
        return replace(self, name=name)
