"""The option table and its resolver.

Every setting is declared once, in ``OPTIONS``. Each entry yields three spellings: the command line
``--meshcheck-X``, the ini key ``meshcheck_X`` and the environment variable ``MESHCHECK_X``. A value
is taken from the first source that has one, in the order CLI > env > ini > default, parsed and
validated up front, and frozen into ``Settings``. Parsing happens before anything touches a cluster
so a typo costs a second, not a fifteen-minute EKS provisioning.

This module knows nothing about pytest; ``plugin.py`` registers the options and turns
``ConfigError`` into ``pytest.UsageError``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_meshcheck.errors import ConfigError

#: The conformance suites shipped in the wheel, in the order they run.
SUITES: tuple[str, ...] = (
    "injection",
    "mtls",
    "gateway",
    "graph",
    "versions",
    "load",
    "upgrade",
    "benchmark",
)

CLUSTER_KINDS: tuple[str, ...] = ("lab", "kubeconfig", "eks")
INSTALL_METHODS: tuple[str, ...] = ("auto", "istioctl", "helm", "manifest", "skip")
MTLS_MODES: tuple[str, ...] = ("STRICT", "PERMISSIVE")
UPGRADE_STRATEGIES: tuple[str, ...] = ("canary", "in-place")

#: Istio release installed when nothing else is asked for: the newest patch release we know of
#: (its addon pins are in install/addons.py). Bump both together.
DEFAULT_ISTIO_VERSION = "1.30.3"

SOURCES: tuple[str, ...] = ("cli", "env", "ini", "default")


# --------------------------------------------------------------------------------------------
# Value parsers. Each takes the raw string and returns the typed value or raises ValueError
# with a short description of what is accepted (used in the UsageError).
# --------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("one of 1/true/yes/on or 0/false/no/off")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(raw: str) -> float:
    """Seconds from ``90``, ``90s``, ``1.5m``, ``1h30m`` or ``500ms``."""
    text = raw.strip().lower()
    accepted = "a positive duration such as 90, 90s, 5m, 1h30m or 500ms"
    if not text:
        raise ValueError(accepted)
    try:
        seconds = float(text)
    except ValueError:
        pos = 0
        seconds = 0.0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                raise ValueError(accepted) from None
            pos = match.end()
            amount = float(match.group(1))
            seconds += amount * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]
        if pos != len(text):
            raise ValueError(accepted) from None
    if seconds <= 0:
        raise ValueError(accepted)
    return seconds


def parse_positive_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError("a whole number of at least 1") from None
    if value < 1:
        raise ValueError("a whole number of at least 1")
    return value


def parse_non_negative_int(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError("a whole number of at least 0") from None
    if value < 0:
        raise ValueError("a whole number of at least 0")
    return value


def parse_positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("a number greater than 0") from None
    if not 0 < value < float("inf"):
        raise ValueError("a number greater than 0")
    return value


def parse_optional_positive_float(raw: str) -> float | None:
    if raw.strip() == "":
        return None
    return parse_positive_float(raw)


def parse_rate(raw: str) -> float:
    """A fraction from ``0.01`` or ``1%``; always returned as a fraction in [0, 1]."""
    text = raw.strip()
    accepted = "a fraction from 0 to 1 (0.01) or a percentage (1%)"
    try:
        value = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(accepted) from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(accepted)
    return value


def parse_percent(raw: str) -> float:
    """A tolerance in percent: ``10`` or ``10%`` both mean 10 percent."""
    text = raw.strip().removesuffix("%")
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a percentage from 0 to 1000, e.g. 10 or 10%") from None
    if not 0.0 <= value <= 1000.0:
        raise ValueError("a percentage from 0 to 1000, e.g. 10 or 10%")
    return value


def parse_text(raw: str) -> str:
    return raw.strip()


def parse_optional_path(raw: str) -> Path | None:
    text = raw.strip()
    return Path(text).expanduser() if text else None


def parse_path(raw: str) -> Path:
    text = raw.strip()
    if not text:
        raise ValueError("a non-empty path")
    return Path(text).expanduser()


_VERSION = re.compile(r"^\d+\.\d+\.\d+(?:-[0-9A-Za-z.]+)?$")


def parse_version(raw: str) -> str:
    text = raw.strip().removeprefix("v")
    if not _VERSION.match(text):
        raise ValueError("an Istio release such as 1.27.1 (major.minor.patch, optional -suffix)")
    return text


def parse_optional_version(raw: str) -> str:
    return "" if raw.strip() == "" else parse_version(raw)


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def parse_dns_label(raw: str) -> str:
    text = raw.strip()
    if not _DNS_LABEL.match(text):
        raise ValueError(
            "a DNS label: lower-case letters, digits and '-', starting and ending alphanumeric, "
            "at most 63 characters"
        )
    return text


def parse_optional_dns_label(raw: str) -> str:
    return "" if raw.strip() == "" else parse_dns_label(raw)


def parse_url(raw: str) -> str:
    text = raw.strip().rstrip("/")
    if text and not re.match(r"^https?://[^/\s]+", text):
        raise ValueError("an http:// or https:// URL, e.g. http://203.0.113.10:80")
    return text


def choice(*choices: str, lower: bool = True) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        text = raw.strip()
        if lower:
            text = text.lower()
        else:
            text = text.upper()
        if text not in choices:
            raise ValueError(", ".join(choices))
        return text

    parse.choices = choices  # type: ignore[attr-defined]
    return parse


def parse_suites(raw: str) -> tuple[str, ...]:
    """``all``, ``none`` or a comma list of suite names, returned in the canonical order."""
    text = raw.strip().lower()
    accepted = "all, none, or a comma list of: " + ", ".join(SUITES)
    if text in ("", "none"):
        return ()
    if text == "all":
        return SUITES
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in SUITES]
    if unknown or not names:
        raise ValueError(accepted)
    return tuple(name for name in SUITES if name in names)


_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def parse_name_list(raw: str) -> tuple[str, ...]:
    """A comma list of lower-case names; membership is checked by whoever owns the names."""
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    for name in names:
        if not _NAME.match(name):
            raise ValueError("a comma list of names such as injection-off,gateway-404")
    return tuple(dict.fromkeys(names))


def parse_word_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Option:
    """One setting. ``name`` is the suffix after ``meshcheck``; ``""`` is the on/off switch."""

    name: str
    field: str
    help: str
    default: str
    parse: Callable[[str], Any]
    flag: bool = False
    metavar: str = ""
    group: str = "general"

    @property
    def cli(self) -> str:
        return "--meshcheck" + (f"-{self.name}" if self.name else "")

    @property
    def ini(self) -> str:
        return "meshcheck" + (f"_{self.name.replace('-', '_')}" if self.name else "")

    @property
    def env(self) -> str:
        return "MESHCHECK" + (f"_{self.name.replace('-', '_').upper()}" if self.name else "")

    @property
    def label(self) -> str:
        return self.name.replace("-", " ") if self.name else "meshcheck"

    @property
    def spellings(self) -> str:
        return f"{self.cli} (env {self.env}, ini {self.ini})"


def _opt(
    name: str, field_name: str, default: str, parse: Callable[[str], Any], help: str, **kw: Any
) -> Option:
    return Option(name=name, field=field_name, default=default, parse=parse, help=help, **kw)


OPTIONS: tuple[Option, ...] = (
    _opt(
        "",
        "enabled",
        "false",
        parse_bool,
        "Run the mesh conformance gate: provision a cluster, install the mesh, run the suites.",
        flag=True,
    ),
    _opt(
        "cluster",
        "cluster",
        "lab",
        choice(*CLUSTER_KINDS),
        "Where the mesh runs: the embedded lab, an existing cluster from a kubeconfig, or a new EKS cluster.",
        metavar="|".join(CLUSTER_KINDS),
        group="cluster",
    ),
    _opt(
        "kubeconfig",
        "kubeconfig",
        "",
        parse_optional_path,
        "Kubeconfig for --meshcheck-cluster=kubeconfig (default: $KUBECONFIG, then ~/.kube/config).",
        metavar="PATH",
        group="cluster",
    ),
    _opt(
        "context",
        "context",
        "",
        parse_text,
        "Kubeconfig context to use (default: the current context).",
        metavar="NAME",
        group="cluster",
    ),
    _opt(
        "keep-cluster",
        "keep_cluster",
        "false",
        parse_bool,
        "Do not tear down what the run provisioned; print how to remove it later.",
        flag=True,
        group="cluster",
    ),
    _opt(
        "lab-faults",
        "lab_faults",
        "",
        parse_name_list,
        "Comma list of lab faults to inject (lab only), to prove a suite catches its regression.",
        metavar="NAMES",
        group="cluster",
    ),
    _opt(
        "timeout",
        "timeout",
        "300s",
        parse_duration,
        "Longest wait for any readiness condition (rollouts, pods, load balancers).",
        metavar="DURATION",
        group="cluster",
    ),
    _opt(
        "istio-version",
        "istio_version",
        DEFAULT_ISTIO_VERSION,
        parse_version,
        "Istio release to install (and the version the control plane must report).",
        metavar="VERSION",
        group="mesh",
    ),
    _opt(
        "install",
        "install",
        "auto",
        choice(*INSTALL_METHODS),
        "How Istio is installed; auto picks per provider (lab: manifest, otherwise istioctl).",
        metavar="|".join(INSTALL_METHODS),
        group="mesh",
    ),
    _opt(
        "istio-revision",
        "istio_revision",
        "",
        parse_optional_dns_label,
        "Istio revision to install and inject with (empty: the default revision).",
        metavar="REV",
        group="mesh",
    ),
    _opt(
        "istio-profile",
        "istio_profile",
        "default",
        parse_dns_label,
        "istioctl/helm installation profile (default, demo, minimal, ...).",
        metavar="PROFILE",
        group="mesh",
    ),
    _opt(
        "istioctl",
        "istioctl",
        "",
        parse_optional_path,
        "istioctl binary to use instead of downloading the release for --meshcheck-istio-version.",
        metavar="PATH",
        group="mesh",
    ),
    _opt(
        "istio-download-url",
        "istio_download_url",
        "https://github.com/istio/istio/releases/download",
        parse_url,
        "Base URL of Istio release archives (point it at a mirror for air-gapped runs).",
        metavar="URL",
        group="mesh",
    ),
    _opt(
        "istio-manifest",
        "istio_manifest",
        "",
        parse_optional_path,
        "Rendered Istio bundle for --meshcheck-install=manifest (e.g. `istioctl manifest generate` output).",
        metavar="PATH",
        group="mesh",
    ),
    _opt(
        "reuse",
        "reuse",
        "false",
        parse_bool,
        "Skip installs that are already present and healthy at the requested version.",
        flag=True,
        group="mesh",
    ),
    _opt(
        "image-registry",
        "image_registry",
        "",
        parse_text,
        "Registry (and path) replacing the registry of every image the run deploys (a private mirror).",
        metavar="REGISTRY",
        group="mesh",
    ),
    _opt(
        "bookinfo-manifest",
        "bookinfo_manifest",
        "",
        parse_optional_path,
        "Your own Bookinfo manifest instead of the shipped one.",
        metavar="PATH",
        group="mesh",
    ),
    _opt(
        "expected-graph",
        "expected_graph",
        "",
        parse_optional_path,
        "YAML file of the service-graph edges your app must show in Kiali (default: Bookinfo's).",
        metavar="PATH",
        group="suites",
    ),
    _opt(
        "gateway-url",
        "gateway_url",
        "",
        parse_url,
        "Reach the ingress gateway at this URL instead of discovering it from its Service.",
        metavar="URL",
        group="mesh",
    ),
    _opt(
        "mtls-mode",
        "mtls_mode",
        "STRICT",
        choice(*MTLS_MODES, lower=False),
        "Mesh-wide PeerAuthentication mode the run installs and the mtls suite asserts.",
        metavar="|".join(MTLS_MODES),
        group="mesh",
    ),
    _opt(
        "namespace",
        "namespace",
        "bookinfo",
        parse_dns_label,
        "Namespace of the Bookinfo sample.",
        metavar="NAME",
        group="mesh",
    ),
    _opt(
        "suites",
        "suites",
        "all",
        parse_suites,
        "Shipped suites to run: all, none, or a comma list of " + ", ".join(SUITES) + ".",
        metavar="LIST",
        group="suites",
    ),
    _opt(
        "reports-dir",
        "reports_dir",
        "reports",
        parse_path,
        "Directory for Allure results, the JSON verdict and other run output.",
        metavar="DIR",
        group="reports",
    ),
    _opt(
        "load-users",
        "load_users",
        "5",
        parse_positive_int,
        "Concurrent Locust users driving traffic through the ingress gateway.",
        metavar="N",
        group="load",
    ),
    _opt(
        "load-spawn-rate",
        "load_spawn_rate",
        "5",
        parse_positive_float,
        "Locust users started per second.",
        metavar="N",
        group="load",
    ),
    _opt(
        "load-duration",
        "load_duration",
        "30s",
        parse_duration,
        "How long the load suite drives traffic.",
        metavar="DURATION",
        group="load",
    ),
    _opt(
        "load-workers",
        "load_workers",
        "0",
        parse_non_negative_int,
        "Locust worker processes (0: one standalone Locust process; N: a master and N workers).",
        metavar="N",
        group="load",
    ),
    _opt(
        "load-rps",
        "load_rps",
        "",
        parse_optional_positive_float,
        "Target total requests per second (constant-rate pacing); empty for closed-loop load.",
        metavar="RPS",
        group="load",
    ),
    _opt(
        "locustfile",
        "locustfile",
        "",
        parse_optional_path,
        "Your own locustfile instead of the shipped Bookinfo one.",
        metavar="PATH",
        group="load",
    ),
    _opt(
        "max-error-rate",
        "max_error_rate",
        "1%",
        parse_rate,
        "Highest acceptable share of failed requests under load (0.01 or 1%).",
        metavar="RATE",
        group="load",
    ),
    _opt(
        "p95-ms",
        "p95_ms",
        "400",
        parse_positive_float,
        "Highest acceptable 95th-percentile latency under load, in milliseconds.",
        metavar="MS",
        group="load",
    ),
    _opt(
        "load-in-cluster",
        "load_in_cluster",
        "false",
        parse_bool,
        "Run Locust as Jobs inside the cluster (next to the gateway) instead of on this machine.",
        flag=True,
        group="load",
    ),
    _opt(
        "upgrade-to",
        "upgrade_to",
        "",
        parse_optional_version,
        "Istio release the upgrade suite upgrades to (from --meshcheck-istio-version); empty skips it.",
        metavar="VERSION",
        group="upgrade",
    ),
    _opt(
        "upgrade-strategy",
        "upgrade_strategy",
        "canary",
        choice(*UPGRADE_STRATEGIES),
        "canary: the new version as a revision beside the old, namespaces moved, old removed; "
        "in-place: the installed revision upgraded.",
        metavar="|".join(UPGRADE_STRATEGIES),
        group="upgrade",
    ),
    _opt(
        "revision-tag",
        "revision_tag",
        "",
        parse_optional_dns_label,
        "Canary upgrades move namespaces by this revision tag (e.g. prod) instead of istio.io/rev=REV.",
        metavar="TAG",
        group="upgrade",
    ),
    _opt(
        "upgrade-error-budget",
        "upgrade_error_budget",
        "0.1%",
        parse_rate,
        "Highest acceptable share of failed requests during the upgrade window (0.001 or 0.1%).",
        metavar="RATE",
        group="upgrade",
    ),
    _opt(
        "benchmark-save",
        "benchmark_save",
        "",
        parse_optional_dns_label,
        "Store this run's benchmark results under this name in the reports dir.",
        metavar="NAME",
        group="benchmark",
    ),
    _opt(
        "benchmark-compare",
        "benchmark_compare",
        "",
        parse_optional_dns_label,
        "Compare this run's benchmark results with the saved ones of this name; fail on regressions.",
        metavar="NAME",
        group="benchmark",
    ),
    _opt(
        "benchmark-tolerance",
        "benchmark_tolerance",
        "25",
        parse_percent,
        "How much worse (percent, per metric) a compared benchmark may be before it is a regression.",
        metavar="PERCENT",
        group="benchmark",
    ),
    _opt(
        "benchmark-duration",
        "benchmark_duration",
        "20s",
        parse_duration,
        "How long each benchmark load shape is measured (after the warm-up).",
        metavar="DURATION",
        group="benchmark",
    ),
    _opt(
        "benchmark-warmup",
        "benchmark_warmup",
        "5s",
        parse_duration,
        "Load sent before each benchmark measurement and discarded.",
        metavar="DURATION",
        group="benchmark",
    ),
    _opt(
        "eks-region",
        "eks_region",
        "",
        parse_text,
        "AWS region for --meshcheck-cluster=eks (default: the AWS environment's region).",
        metavar="REGION",
        group="eks",
    ),
    _opt(
        "eks-cluster",
        "eks_cluster",
        "",
        parse_text,
        "Name of an existing EKS cluster to use; it is never deleted by the run.",
        metavar="NAME",
        group="eks",
    ),
    _opt(
        "eks-version",
        "eks_version",
        "1.32",
        parse_text,
        "Kubernetes version of a new EKS cluster.",
        metavar="VERSION",
        group="eks",
    ),
    _opt(
        "eks-instance-types",
        "eks_instance_types",
        "m5.large",
        parse_word_list,
        "Comma list of EC2 instance types for the managed node group.",
        metavar="TYPES",
        group="eks",
    ),
    _opt(
        "eks-nodes",
        "eks_nodes",
        "2",
        parse_positive_int,
        "Desired node count of the managed node group.",
        metavar="N",
        group="eks",
    ),
    _opt(
        "eks-vpc",
        "eks_vpc",
        "",
        parse_text,
        "Existing VPC id to use instead of creating one.",
        metavar="VPC_ID",
        group="eks",
    ),
    _opt(
        "eks-subnets",
        "eks_subnets",
        "",
        parse_word_list,
        "Comma list of existing subnet ids (with --meshcheck-eks-vpc).",
        metavar="IDS",
        group="eks",
    ),
    _opt(
        "eks-public-only",
        "eks_public_only",
        "false",
        parse_bool,
        "Cheaper VPC layout: public subnets only, no NAT gateway.",
        flag=True,
        group="eks",
    ),
    _opt(
        "eks-capacity-type",
        "eks_capacity_type",
        "ON_DEMAND",
        choice("ON_DEMAND", "SPOT", lower=False),
        "Capacity type of the managed node group.",
        metavar="ON_DEMAND|SPOT",
        group="eks",
    ),
    _opt(
        "eks-addons",
        "eks_addons",
        "",
        parse_name_list,
        "Comma list of EKS managed add-ons to install (vpc-cni, kube-proxy, coredns).",
        metavar="NAMES",
        group="eks",
    ),
    _opt(
        "eks-admins",
        "eks_admins",
        "",
        parse_word_list,
        "Comma list of extra IAM principal ARNs given cluster-admin on a new cluster.",
        metavar="ARNS",
        group="eks",
    ),
    _opt(
        "eks-profile",
        "eks_profile",
        "",
        parse_text,
        "AWS profile to use (default: the AWS environment's).",
        metavar="PROFILE",
        group="eks",
    ),
    _opt(
        "eks-ttl",
        "eks_ttl",
        "4h",
        parse_duration,
        "How long after creation `meshcheck eks reap` may delete the run's resources.",
        metavar="DURATION",
        group="eks",
    ),
)

OPTIONS_BY_FIELD: Mapping[str, Option] = {opt.field: opt for opt in OPTIONS}


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Settings:
    """The effective, validated settings of one run. ``sources`` says where each value came from.

    Fields have no defaults here on purpose: defaults live in ``OPTIONS`` only. Build one with
    ``resolve`` (or ``default_settings`` in tests).
    """

    enabled: bool
    cluster: str
    kubeconfig: Path | None
    context: str
    keep_cluster: bool
    lab_faults: tuple[str, ...]
    timeout: float
    istio_version: str
    install: str
    istio_revision: str
    istio_profile: str
    istioctl: Path | None
    istio_download_url: str
    istio_manifest: Path | None
    reuse: bool
    image_registry: str
    bookinfo_manifest: Path | None
    expected_graph: Path | None
    gateway_url: str
    mtls_mode: str
    namespace: str
    suites: tuple[str, ...]
    reports_dir: Path
    load_users: int
    load_spawn_rate: float
    load_duration: float
    load_workers: int
    load_rps: float | None
    locustfile: Path | None
    max_error_rate: float
    p95_ms: float
    load_in_cluster: bool
    upgrade_to: str
    upgrade_strategy: str
    revision_tag: str
    upgrade_error_budget: float
    benchmark_save: str
    benchmark_compare: str
    benchmark_tolerance: float
    benchmark_duration: float
    benchmark_warmup: float
    eks_region: str
    eks_cluster: str
    eks_version: str
    eks_instance_types: tuple[str, ...]
    eks_nodes: int
    eks_vpc: str
    eks_subnets: tuple[str, ...]
    eks_public_only: bool
    eks_capacity_type: str
    eks_addons: tuple[str, ...]
    eks_admins: tuple[str, ...]
    eks_profile: str
    eks_ttl: float
    sources: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, str] = field(default_factory=dict)

    @property
    def install_method(self) -> str:
        """The installer actually used: ``auto`` means manifest on the lab, istioctl elsewhere."""
        if self.install != "auto":
            return self.install
        return "manifest" if self.cluster == "lab" else "istioctl"

    def source_of(self, field_name: str) -> str:
        return self.sources.get(field_name, "default")

    def describe(self) -> list[tuple[str, str, str]]:
        """(label, shown value, source) for every option, in table order, for the report header."""
        rows = []
        for opt in OPTIONS:
            value = self.raw.get(opt.field, opt.default)
            rows.append((opt.label, value if value != "" else "(unset)", self.source_of(opt.field)))
        return rows

    def to_json(self) -> str:
        """Serialise the raw values and their sources (for handing to xdist workers)."""
        return json.dumps({"raw": dict(self.raw), "sources": dict(self.sources)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        return build_settings(data["raw"], data["sources"])


def _check_table() -> None:
    fields = {f.name for f in dataclasses.fields(Settings)} - {"sources", "raw"}
    declared = set(OPTIONS_BY_FIELD)
    if fields != declared:  # pragma: no cover - guards edits to this file
        raise RuntimeError(f"option table and Settings disagree: {sorted(fields ^ declared)}")


_check_table()


def build_settings(raw: Mapping[str, str], sources: Mapping[str, str]) -> Settings:
    """Parse raw string values (one per field) into ``Settings``; raise ConfigError on a bad one."""
    values: dict[str, Any] = {}
    for opt in OPTIONS:
        text = raw.get(opt.field, opt.default)
        try:
            values[opt.field] = opt.parse(text)
        except ValueError as exc:
            source = sources.get(opt.field, "default")
            raise ConfigError(
                f"{opt.spellings}: {text!r} (from {source}) is not valid; accepted: {exc}",
                option=opt.cli,
                value=text,
                accepted=str(exc),
            ) from None
    return Settings(**values, sources=dict(sources), raw=dict(raw))


def resolve(
    *,
    cli: Mapping[str, str | None],
    env: Mapping[str, str] | None = None,
    ini: Mapping[str, str | None] | None = None,
) -> Settings:
    """Resolve every option from its sources, CLI > env > ini > default.

    ``cli`` and ``ini`` map field names to strings, or to None where that source has no value;
    ``env`` is the process environment (keys are the ``MESHCHECK_*`` names).
    """
    env = os.environ if env is None else env
    ini = ini or {}
    raw: dict[str, str] = {}
    sources: dict[str, str] = {}
    for opt in OPTIONS:
        candidates: Sequence[tuple[str, str | None]] = (
            ("cli", cli.get(opt.field)),
            ("env", env.get(opt.env)),
            ("ini", ini.get(opt.field)),
        )
        for source, value in candidates:
            if value is not None:
                raw[opt.field] = str(value)
                sources[opt.field] = source
                break
        else:
            raw[opt.field] = opt.default
            sources[opt.field] = "default"
    return build_settings(raw, sources)


def default_settings(**overrides: str) -> Settings:
    """Settings from defaults only, with some fields given as raw strings (for tests and tools)."""
    return resolve(cli=dict(overrides), env={}, ini={})
