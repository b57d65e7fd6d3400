"""A process-wide registry of the run's secrets, and the redaction every report writer applies.

Tokens reach a run from many places (the kubeconfig a provider wrote, AWS credentials in the
environment, a Kiali token a check fetched) and can leak into many others (an exception message,
captured output, an attachment, the summary). Whoever learns a secret registers it here once;
every writer in the report layer passes its text through ``redact`` before it touches disk.

Values shorter than ``MIN_SECRET_LENGTH`` are ignored: masking every "a" or "1" in a report would
destroy it and such short values are not credentials anyway.
"""

from __future__ import annotations

import base64
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

MIN_SECRET_LENGTH = 6

#: Environment variables whose values are credentials by name (AWS keys, CI tokens, passwords).
SECRET_ENV_NAME = re.compile(
    r"(SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|PRIVATE_KEY|ACCESS_KEY|API_KEY|AUTH)", re.IGNORECASE
)

#: Keys of a kubeconfig ``user`` entry that hold credentials.
KUBECONFIG_SECRET_KEYS = ("token", "password", "client-key-data")


@dataclass(frozen=True)
class _Secret:
    value: str
    label: str


class SecretRegistry:
    """The secrets known to this process, longest first so overlapping values mask fully."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._pattern: re.Pattern[str] | None = None

    def register(self, value: str, label: str) -> bool:
        """Remember ``value`` (and its base64 and URL-encoded forms); False if it is too short."""
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return False
        forms = {value, base64.b64encode(value.encode()).decode(), urllib.parse.quote(value, safe="")}
        with self._lock:
            for form in forms:
                self._secrets.setdefault(form, _Secret(form, label))
            self._pattern = None
        return True

    def clear(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._pattern = None

    def values(self) -> list[str]:
        with self._lock:
            return list(self._secrets)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._secrets:
                ordered = sorted(self._secrets, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(value) for value in ordered))
            return self._pattern

    def redact(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None or not text:
            return text
        return pattern.sub(lambda match: f"[REDACTED {self._secrets[match.group(0)].label}]", text)

    def found_in(self, data: bytes) -> list[str]:
        """Labels of the secrets that occur in raw bytes (for binary files we cannot rewrite)."""
        with self._lock:
            secrets = list(self._secrets.values())
        return sorted({secret.label for secret in secrets if secret.value.encode() in data})


REGISTRY = SecretRegistry()


def register_secret(value: str, label: str) -> bool:
    """Make ``value`` unprintable in every report of this process; ``label`` names it in its place."""
    return REGISTRY.register(value, label)


def redact(text: str) -> str:
    return REGISTRY.redact(text)


def register_environment_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Register the values of credential-named environment variables; returns their names."""
    environ = os.environ if environ is None else environ
    names = []
    for name, value in environ.items():
        if SECRET_ENV_NAME.search(name) and register_secret(value, name):
            names.append(name)
    return sorted(names)


def register_kubeconfig_secrets(path: Path) -> int:
    """Register the credentials of every user in a kubeconfig; returns how many were found.

    A kubeconfig that cannot be read or parsed registers nothing: it is the provider's job to
    report a broken kubeconfig, not the report layer's.
    """
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return 0
    if not isinstance(document, dict):
        return 0
    count = 0
    for entry in document.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        name = str(entry.get("name", "user"))
        for key in KUBECONFIG_SECRET_KEYS:
            value = user.get(key)
            if isinstance(value, str) and register_secret(value, f"kubeconfig {name} {key}"):
                count += 1
        for env_entry in (user.get("exec") or {}).get("env") or []:
            if isinstance(env_entry, dict) and SECRET_ENV_NAME.search(str(env_entry.get("name", ""))):
                value = env_entry.get("value")
                if isinstance(value, str) and register_secret(value, f"kubeconfig {name} exec env"):
                    count += 1
    return count


@dataclass(frozen=True, kw_only=True)
class ScrubResult:
    rewritten: tuple[Path, ...]
    removed: tuple[Path, ...]


def scrub_tree(paths: Iterable[Path]) -> ScrubResult:
    """Redact the registered secrets in every file under ``paths`` (files or directories).

    Text files are rewritten in place. A binary file that contains a secret cannot be redacted
    without corrupting it, so it is removed (the caller reports which).
    """
    rewritten: list[Path] = []
    removed: list[Path] = []
    if not REGISTRY.values():
        return ScrubResult(rewritten=(), removed=())
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(child for child in sorted(path.rglob("*")) if child.is_file())
    for file in files:
        if file.suffix == ".tmp":
            continue  # an atomic write in progress; its final file is scrubbed on its own
        try:
            data = file.read_bytes()
        except OSError:
            continue
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            if REGISTRY.found_in(data):
                file.unlink(missing_ok=True)
                removed.append(file)
            continue
        clean = redact(text)
        if clean != text:
            file.write_text(clean, encoding="utf-8")
            rewritten.append(file)
    return ScrubResult(rewritten=tuple(rewritten), removed=tuple(removed))
