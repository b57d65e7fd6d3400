"""``meshcheck eks up|down|reap|token``: the AWS side of the provider, from a shell.

``add_eks_commands(subparsers)`` adds an ``eks`` command to an argparse subparsers object; each
leaf sets ``handler`` (``args -> exit code``), which the console script calls.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from pytest_meshcheck.errors import MeshcheckError, ProviderError
from pytest_meshcheck.providers.eks import discovery, state
from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.naming import new_run_id
from pytest_meshcheck.providers.eks.plan import CAPACITY_TYPES, EksPlan
from pytest_meshcheck.settings import parse_duration, parse_word_list

#: Seams for tests: how AWS is reached and where output goes.
AwsFactory = Callable[[str, str], Aws]


def _aws(region: str, profile: str) -> Aws:
    return Aws(region=region, profile=profile)


def _duration(raw: str) -> float:
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_eks_commands(subparsers: Any) -> argparse.ArgumentParser:
    eks = subparsers.add_parser("eks", help="create, delete, reap EKS clusters; mint their tokens")
    commands = eks.add_subparsers(dest="eks_command", required=True)

    def common(parser: argparse.ArgumentParser, *, name_required: bool = True) -> None:
        if name_required:
            parser.add_argument("--name", required=True, help="EKS cluster name")
        parser.add_argument("--region", default="", help="AWS region (default: the AWS environment's)")
        parser.add_argument("--profile", default="", help="AWS profile (default: the AWS environment's)")

    up = commands.add_parser("up", help="create a cluster, its VPC, roles and nodes; write a kubeconfig")
    common(up)
    up.add_argument("--ttl", type=_duration, default=4 * 3600.0, help="when `eks reap` may delete it (4h)")
    up.add_argument("--version", default="1.32", help="Kubernetes version (1.32)")
    up.add_argument("--instance-types", type=parse_word_list, default=("m5.large",), help="comma list")
    up.add_argument("--nodes", type=int, default=2, help="node count (2)")
    up.add_argument("--capacity-type", choices=CAPACITY_TYPES, default="ON_DEMAND")
    up.add_argument("--vpc", default="", help="existing VPC id (never deleted)")
    up.add_argument("--subnets", type=parse_word_list, default=(), help="existing subnet ids, comma list")
    up.add_argument("--public-only", action="store_true", help="no private subnets and no NAT gateway")
    up.add_argument(
        "--addons", type=parse_word_list, default=(), help="managed add-ons: vpc-cni,kube-proxy,coredns"
    )
    up.add_argument("--admin", action="append", default=[], help="extra principal ARN given cluster-admin")
    up.add_argument(
        "--kubeconfig", type=Path, default=None, help="where to write it (default: under MESHCHECK_HOME)"
    )
    up.add_argument("--timeout", type=_duration, default=1800.0, help="longest wait for one AWS step (30m)")
    up.add_argument("--keep-on-failure", action="store_true", help="do not delete a half-made cluster")
    up.set_defaults(handler=run_up)

    down = commands.add_parser("down", help="delete a cluster and everything created with it")
    common(down)
    down.add_argument("--timeout", type=_duration, default=1800.0, help="longest wait for one AWS step (30m)")
    down.set_defaults(handler=run_down)

    reap = commands.add_parser("reap", help="delete what crashed runs left after their TTL")
    common(reap, name_required=False)
    reap.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    reap.set_defaults(handler=run_reap)

    token = commands.add_parser("token", help="print an ExecCredential with a fresh EKS token")
    common(token)
    token.set_defaults(handler=run_token)
    return eks  # type: ignore[no-any-return]


def _report(exc: MeshcheckError, out: TextIO) -> int:
    print(f"meshcheck eks: {exc.message}", file=out)
    for name, text in exc.evidence.items():
        print(f"--- {name}\n{text}", file=out)
    return 1


def run_up(
    args: argparse.Namespace,
    *,
    aws_factory: AwsFactory = _aws,
    out: TextIO | None = None,
    after_step: Callable[[str], None] = lambda step: None,
    **timing_kw: Any,
) -> int:
    from pytest_meshcheck.providers.eks.provisioner import Provisioner
    from pytest_meshcheck.providers.eks.signals import teardown_on_interrupt
    from pytest_meshcheck.providers.eks.teardown import Budget, destroy_run
    from pytest_meshcheck.providers.eks.timing import Timing

    out = out or sys.stderr
    try:
        aws = aws_factory(args.region, args.profile)
        region = aws.ensure_region()
        plan = EksPlan(
            name=args.name,
            region=region,
            version=args.version,
            instance_types=tuple(args.instance_types),
            nodes=args.nodes,
            capacity_type=args.capacity_type,
            vpc=args.vpc,
            subnets=tuple(args.subnets),
            public_only=args.public_only,
            ttl=args.ttl,
            addons=tuple(args.addons),
            admins=tuple(args.admin),
            kubeconfig=args.kubeconfig or state.home() / "eks" / f"{region}--{args.name}.kubeconfig",
            profile=args.profile,
            timeout=args.timeout,
        )
        run_id = new_run_id()
        timing = Timing(timeout=args.timeout, **timing_kw)
        state.save(
            state.RunRecord(
                name=plan.name,
                region=region,
                run_id=run_id,
                profile=args.profile,
                kubeconfig=str(plan.kubeconfig),
                addons=plan.addons,
                admins=plan.admins,
            )
        )

        def undo() -> None:
            if args.keep_on_failure:
                print(
                    f"kept the partial cluster; delete it with: meshcheck eks down --name {plan.name} "
                    f"--region {region}",
                    file=out,
                )
                return
            print(f"provisioning failed; deleting what run {run_id} created ...", file=out)
            try:
                destroy_run(
                    aws,
                    cluster=plan.name,
                    run_id=run_id,
                    timing=timing,
                    budget=Budget.from_timeout(args.timeout),
                    addon_names=plan.addons,
                    admins=plan.admins,
                )
                state.forget(plan.name, region)
            except ProviderError as exc:
                _report(exc, out)

        provisioner = Provisioner(aws, plan, run_id=run_id, timing=timing, after_step=after_step)
        with teardown_on_interrupt(undo, lambda text: print(text, file=out)):
            made = provisioner.run()
    except MeshcheckError as exc:
        return _report(exc, out)
    print(f"EKS cluster {plan.name} is ACTIVE in {region} (run {run_id}).", file=out)
    print(f"kubeconfig: {made.kubeconfig}", file=out)
    print(f"delete it with: meshcheck eks down --name {plan.name} --region {region}", file=out)
    return 0


def run_down(
    args: argparse.Namespace, *, aws_factory: AwsFactory = _aws, out: TextIO | None = None, **timing_kw: Any
) -> int:
    from pytest_meshcheck.providers.eks.teardown import Budget, destroy_run
    from pytest_meshcheck.providers.eks.timing import Timing

    out = out or sys.stderr
    record = state.load(args.name, args.region)
    try:
        aws = aws_factory(
            args.region or (record.region if record else ""),
            args.profile or (record.profile if record else ""),
        )
        region = aws.ensure_region()
        run_ids = {record.run_id} if record and record.region == region else set()
        run_ids |= set(discovery.runs_of_cluster(aws, args.name))
        if not run_ids:
            print(f"nothing of a meshcheck cluster named {args.name} found in {region}", file=out)
            state.forget(args.name, region)
            return 0
        timing = Timing(timeout=args.timeout, **timing_kw)
        for run_id in sorted(run_ids):
            log = destroy_run(
                aws,
                cluster=args.name,
                run_id=run_id,
                timing=timing,
                budget=Budget.from_timeout(args.timeout),
                addon_names=record.addons if record else (),
                admins=record.admins if record else (),
            )
            print(f"run {run_id}:\n{log}", file=out)
        state.forget(args.name, region)
    except MeshcheckError as exc:
        return _report(exc, out)
    return 0


def run_reap(
    args: argparse.Namespace, *, aws_factory: AwsFactory = _aws, out: TextIO | None = None, **timing_kw: Any
) -> int:
    from pytest_meshcheck.providers.eks.reaper import reap
    from pytest_meshcheck.providers.eks.timing import Timing

    out = out or sys.stdout
    try:
        aws = aws_factory(args.region, args.profile)
        region = aws.ensure_region()
        reaped = reap(region, args.dry_run, aws=aws, timing=Timing(timeout=1800.0, **timing_kw))
    except MeshcheckError as exc:
        return _report(exc, out)
    if not reaped:
        print(f"no expired meshcheck resources in {region}", file=out)
    for run in reaped:
        print(
            f"{run.outcome}: run {run.run_id} cluster {run.cluster or '-'} owner {run.owner or '-'} "
            f"expired {run.expires_at} ({len(run.resources)} tagged resources)",
            file=out,
        )
    return 1 if any(run.outcome.startswith("FAILED") for run in reaped) else 0


def run_token(args: argparse.Namespace, *, aws_factory: AwsFactory = _aws, out: TextIO | None = None) -> int:
    from pytest_meshcheck.providers.eks.token import exec_credential, mint

    record = state.load(args.name, args.region)
    try:
        aws = aws_factory(args.region or (record.region if record else ""), args.profile)
        region = aws.ensure_region()
        credential = exec_credential(mint(aws.credentials(), args.name, region))
    except MeshcheckError as exc:
        return _report(exc, sys.stderr)
    print(credential, file=out or sys.stdout)
    return 0
