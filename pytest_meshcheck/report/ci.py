"""Which CI system runs us, read from the variables each one sets, in Allure's executor format.

The executor block is what links an Allure report (and our summary) back to the pipeline run that
produced it, so a release manager can go from a red report to the job log in one click.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any


def _github(env: Mapping[str, str]) -> dict[str, Any] | None:
    if env.get("GITHUB_ACTIONS") != "true":
        return None
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    repo = env.get("GITHUB_REPOSITORY", "")
    run_id = env.get("GITHUB_RUN_ID", "")
    build_url = f"{server}/{repo}/actions/runs/{run_id}" if repo and run_id else ""
    attempt = env.get("GITHUB_RUN_ATTEMPT", "")
    name = f"{env.get('GITHUB_WORKFLOW', 'workflow')} #{env.get('GITHUB_RUN_NUMBER', run_id)}"
    return {
        "name": "GitHub Actions",
        "type": "github",
        "url": f"{server}/{repo}" if repo else server,
        "buildOrder": _number(env.get("GITHUB_RUN_NUMBER")),
        "buildName": name + (f" (attempt {attempt})" if attempt and attempt != "1" else ""),
        "buildUrl": build_url,
    }


def _gitlab(env: Mapping[str, str]) -> dict[str, Any] | None:
    if env.get("GITLAB_CI") != "true":
        return None
    return {
        "name": "GitLab CI",
        "type": "gitlab",
        "url": env.get("CI_PROJECT_URL", env.get("CI_SERVER_URL", "")),
        "buildOrder": _number(env.get("CI_PIPELINE_IID") or env.get("CI_PIPELINE_ID")),
        "buildName": f"{env.get('CI_PROJECT_PATH', 'pipeline')} #{env.get('CI_PIPELINE_IID', '')}".strip(),
        "buildUrl": env.get("CI_JOB_URL") or env.get("CI_PIPELINE_URL", ""),
    }


def _jenkins(env: Mapping[str, str]) -> dict[str, Any] | None:
    if not env.get("JENKINS_URL") or not env.get("BUILD_URL"):
        return None
    return {
        "name": "Jenkins",
        "type": "jenkins",
        "url": env.get("JENKINS_URL", ""),
        "buildOrder": _number(env.get("BUILD_NUMBER")),
        "buildName": env.get("BUILD_TAG") or f"{env.get('JOB_NAME', 'job')} #{env.get('BUILD_NUMBER', '')}",
        "buildUrl": env.get("BUILD_URL", ""),
    }


def _buildkite(env: Mapping[str, str]) -> dict[str, Any] | None:
    if env.get("BUILDKITE") != "true":
        return None
    build_url = env.get("BUILDKITE_BUILD_URL", "")
    job = env.get("BUILDKITE_JOB_ID", "")
    pipeline = env.get("BUILDKITE_PIPELINE_SLUG", "pipeline")
    return {
        "name": "Buildkite",
        "type": "buildkite",
        "url": build_url.split("/builds/")[0] if build_url else "",
        "buildOrder": _number(env.get("BUILDKITE_BUILD_NUMBER")),
        "buildName": f"{pipeline} #{env.get('BUILDKITE_BUILD_NUMBER', '')}",
        "buildUrl": f"{build_url}#{job}" if build_url and job else build_url,
    }


def _number(raw: str | None) -> int | None:
    try:
        return int(raw) if raw else None
    except ValueError:
        return None


DETECTORS = (_github, _gitlab, _jenkins, _buildkite)


def executor_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Allure's executor.json for the CI system we run in, or a ``local`` executor outside CI."""
    env = os.environ if environ is None else environ
    for detect in DETECTORS:
        executor = detect(env)
        if executor is not None:
            executor["reportName"] = "meshcheck"
            return {key: value for key, value in executor.items() if value not in (None, "")}
    return {"name": "local", "type": "local", "buildName": socket.gethostname(), "reportName": "meshcheck"}
