"""Timestamps as the Kubernetes API writes them (RFC 3339, UTC, second precision)."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(epoch: float | None = None) -> str:
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_rfc3339(epoch: float | None = None) -> str:
    """``MicroTime`` (events' ``eventTime``)."""
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str) -> float:
    return datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
