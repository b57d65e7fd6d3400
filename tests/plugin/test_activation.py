"""The plugin as users meet it: opt-in, validation, header, shipped suites."""

from __future__ import annotations

import pytest

from pytest_meshcheck.settings import OPTIONS, SUITES

pytest_plugins = ["pytester"]


def test_inert_without_the_flag(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    result.stdout.no_fnmatch_line("meshcheck: *")


def test_inert_run_imports_no_heavy_dependency(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import sys
        def pytest_sessionfinish(session):
            heavy = {"boto3", "botocore", "locust", "gevent", "kubernetes", "allure", "matplotlib"}
            loaded = sorted({m.split(".")[0] for m in sys.modules} & heavy)
            print("HEAVY=" + ",".join(loaded))
        """
    )
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:allure_pytest", "-p", "no:xdist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*HEAVY="])


def test_help_lists_every_option(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    for opt in OPTIONS:
        assert opt.cli in text, opt.cli
    assert "MESHCHECK_ISTIO_VERSION" in text


def test_shipped_suites_collected_from_an_empty_directory(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--meshcheck", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    files = [line.split("::")[0].rsplit("/", 1)[-1] for line in result.stdout.lines if "::" in line]
    assert list(dict.fromkeys(files)) == [f"test_{s}.py" for s in SUITES]


def test_suites_selection(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--meshcheck", "--meshcheck-suites=gateway,mtls", "--collect-only", "-q")
    files = sorted({line.split("::")[0].rsplit("/", 1)[-1] for line in result.stdout.lines if "::" in line})
    assert files == ["test_gateway.py", "test_mtls.py"]


def test_suites_none_runs_only_the_users_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = pytester.runpytest("--meshcheck", "--meshcheck-suites=none", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("*test_gateway*")


def test_user_tests_run_alongside_the_suites_and_first(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_mine="def test_mine():\n    pass\n")
    result = pytester.runpytest("--meshcheck", "--collect-only", "-q")
    collected = [line for line in result.stdout.lines if "::" in line]
    assert collected[0].startswith("test_mine.py::test_mine")
    files = {line.split("::")[0].rsplit("/", 1)[-1] for line in collected[1:]}
    assert files == {f"test_{s}.py" for s in SUITES}


def test_the_upgrade_suite_skips_without_a_target_and_provisions_nothing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = pytester.path / "home"
    monkeypatch.setenv("MESHCHECK_HOME", str(home))
    result = pytester.runpytest("--meshcheck", "--meshcheck-suites=upgrade", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no --meshcheck-upgrade-to*"])
    assert not (home / "labs").exists(), "no lab was started for a suite that skips"


def test_the_upgrade_does_not_run_beside_other_suites_under_xdist(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--meshcheck", "--meshcheck-upgrade-to=1.27.1", "--meshcheck-suites=gateway,upgrade", "-n", "2"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--meshcheck-upgrade-to with pytest-xdist*gateway*--meshcheck-suites=upgrade*"]
    )


def test_markers_are_registered_and_strict_clean(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--meshcheck", "--strict-markers", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    markers = pytester.runpytest("--markers").stdout.str()
    for suite in SUITES:
        assert f"@pytest.mark.meshcheck_{suite}:" in markers


def test_marker_selection_of_a_suite(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--meshcheck", "-m", "meshcheck_mtls", "--collect-only", "-q")
    collected = [line for line in result.stdout.lines if "::" in line]
    assert collected
    assert all("test_mtls.py" in line for line in collected)


def test_header_shows_each_value_and_its_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\nmeshcheck_namespace = shop\nmeshcheck_load_users = 3\n")
    monkeypatch.setenv("MESHCHECK_ISTIO_VERSION", "1.26.3")
    monkeypatch.setenv("MESHCHECK_LOAD_USERS", "4")
    result = pytester.runpytest("--meshcheck", "--meshcheck-load-users=5", "--meshcheck-suites=none")
    result.stdout.fnmatch_lines(
        [
            "meshcheck: on*",
            "*cluster: lab (from default)",
            "*istio version: 1.26.3 (from env)",
            "*namespace: shop (from ini)",
            "*load users: 5 (from cli)",
        ]
    )


def test_flag_from_env_and_ini(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHCHECK", "1")
    assert pytester.runpytest("--collect-only", "-q").stdout.str().count("::") >= len(SUITES)
    monkeypatch.delenv("MESHCHECK")
    pytester.makeini("[pytest]\nmeshcheck = true\n")
    assert pytester.runpytest("--collect-only", "-q").stdout.str().count("::") >= len(SUITES)


def test_bogus_cluster_exits_4_naming_option_and_choices(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--meshcheck", "--meshcheck-cluster=bogus")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--meshcheck-cluster*MESHCHECK_CLUSTER*meshcheck_cluster*'bogus'*lab, kubeconfig, eks*"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


#: For every option that can be wrong, one wrong value and a fragment of what the error accepts.
BAD_VALUES: dict[str, tuple[str, str]] = {
    "enabled": ("maybe", "1/true/yes/on"),
    "cluster": ("gke", "lab, kubeconfig, eks"),
    "keep_cluster": ("perhaps", "1/true/yes/on"),
    "lab_faults": ("Not A Fault!", "comma list"),
    "timeout": ("soon", "duration"),
    "istio_version": ("latest", "major.minor.patch"),
    "install": ("apt", "istioctl, helm, manifest, skip"),
    "mtls_mode": ("SOMETIMES", "STRICT, PERMISSIVE"),
    "namespace": ("Book_Info", "DNS label"),
    "suites": ("injection,chaos", "injection, mtls"),
    "reports_dir": ("", "non-empty path"),
    "load_users": ("0", "at least 1"),
    "load_spawn_rate": ("-1", "greater than 0"),
    "load_duration": ("forever", "duration"),
    "load_workers": ("-2", "at least 0"),
    "load_rps": ("fast", "greater than 0"),
    "max_error_rate": ("150%", "fraction"),
    "p95_ms": ("0", "greater than 0"),
    "eks_nodes": ("none", "at least 1"),
    "eks_public_only": ("sure", "1/true/yes/on"),
    "eks_ttl": ("a while", "duration"),
    "istio_revision": ("Canary_1", "DNS label"),
    "istio_profile": ("My Profile", "DNS label"),
    "istio_download_url": ("ftp://mirror", "http:// or https:// URL"),
    "reuse": ("often", "1/true/yes/on"),
    "gateway_url": ("203.0.113.10", "http:// or https:// URL"),
    "eks_capacity_type": ("cheap", "ON_DEMAND, SPOT"),
    "eks_addons": ("Core DNS", "comma list"),
    "load_in_cluster": ("jobs", "1/true/yes/on"),
    "upgrade_to": ("next", "major.minor.patch"),
    "upgrade_strategy": ("blue-green", "canary, in-place"),
    "revision_tag": ("Prod!", "DNS label"),
    "upgrade_error_budget": ("-1", "fraction"),
    "benchmark_save": ("My Baseline", "DNS label"),
    "benchmark_compare": ("../etc", "DNS label"),
    "benchmark_tolerance": ("lots", "percentage"),
    "benchmark_duration": ("long", "duration"),
    "benchmark_warmup": ("0", "duration"),
}

FREE_TEXT = {
    "kubeconfig",
    "context",
    "locustfile",
    "eks_region",
    "eks_cluster",
    "eks_version",
    "eks_instance_types",
    "eks_vpc",
    "eks_subnets",
    "istioctl",
    "image_registry",
    "bookinfo_manifest",
    "istio_manifest",
    "expected_graph",
    "eks_admins",
    "eks_profile",
}


def test_every_validated_option_has_a_bad_value_case() -> None:
    assert set(BAD_VALUES) | FREE_TEXT == {opt.field for opt in OPTIONS}


def _bad_value_cases() -> list[tuple[str, str]]:
    flags = {opt.field for opt in OPTIONS if opt.flag}
    return [
        (field, source)
        for field in sorted(BAD_VALUES)
        for source in ("cli", "env", "ini")
        if not (source == "cli" and field in flags)  # a flag takes no value on the command line
    ]


@pytest.mark.parametrize(("field", "source"), _bad_value_cases())
def test_bad_values_are_usage_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, field: str, source: str
) -> None:
    opt = next(o for o in OPTIONS if o.field == field)
    bad, accepted = BAD_VALUES[field]
    args = ["--meshcheck"]
    if source == "cli":
        args.append(f"{opt.cli}={bad}")
    elif source == "env":
        monkeypatch.setenv(opt.env, bad)
    else:
        pytester.makeini(f"[pytest]\n{opt.ini} = {bad}\n")
    if field == "enabled":
        args = []
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    text = result.stderr.str()
    for fragment in (opt.cli, opt.env, opt.ini, repr(bad), f"from {source}", accepted):
        assert fragment in text, (fragment, text)


def test_bad_env_value_does_not_break_an_inert_run(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MESHCHECK_TIMEOUT", "soon")
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_unknown_lab_fault_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--meshcheck", "--meshcheck-lab-faults=gateway-404,no-such-fault")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown fault(s) no-such-fault; accepted: injection-off*gateway-404*"])


def test_lab_faults_need_the_lab(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--meshcheck", "--meshcheck-cluster=eks", "--meshcheck-lab-faults=gateway-404"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*faults can only be injected into the lab*--meshcheck-cluster=lab*"])
