"""What moto does not model, checked with botocore's Stubber: add-ons, access entries, the
CREATING -> ACTIVE and DELETING -> gone transitions, terminal failures, AWS's DependencyViolation
answers, and the order of every call across services during teardown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pytest_meshcheck.errors import ProviderError, ReadinessTimeout
from pytest_meshcheck.providers.eks import addons, cluster
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.teardown import Budget, destroy_run
from pytest_meshcheck.providers.eks.timing import Timing

from .stubs import StubbedAws
from .support import FakeClock

RUN = "20260101000000-abc123"
ROLE = "arn:aws:iam::123456789012:role/meshcheck/meshcheck-gate-abc123-cluster"
TAGS = {
    T.RUN_ID: RUN,
    T.CLUSTER: "gate",
    T.OWNER: "arn:aws:iam::123456789012:user/ci",
    T.EXPIRES_AT: "2026-01-01T04:00:00Z",
}


def described(status: str, tags: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "cluster": {
            "name": "gate",
            "arn": "arn:aws:eks:us-east-1:123456789012:cluster/gate",
            "status": status,
            "endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
            "version": "1.32",
            "certificateAuthority": {"data": "Q0E="},
            "tags": tags if tags is not None else TAGS,
            "resourcesVpcConfig": {"clusterSecurityGroupId": "sg-eks"},
        }
    }


@pytest.fixture
def stubbed() -> StubbedAws:
    return StubbedAws()


def create_request(token: str = "tok") -> dict[str, Any]:
    return {
        "name": "gate",
        "version": "1.32",
        "roleArn": ROLE,
        "resourcesVpcConfig": {
            "subnetIds": ["subnet-a", "subnet-b"],
            "endpointPublicAccess": True,
            "endpointPrivateAccess": True,
        },
        "accessConfig": {
            "authenticationMode": "API_AND_CONFIG_MAP",
            "bootstrapClusterCreatorAdminPermissions": True,
        },
        "tags": TAGS,
        "clientRequestToken": token,
    }


def create(stubbed: StubbedAws, timing: Timing) -> None:
    cluster.create(
        stubbed.client("eks"),
        name="gate",
        version="1.32",
        role_arn=ROLE,
        subnets=["subnet-a", "subnet-b"],
        tags=TAGS,
        token="tok",
        timing=timing,
    )


def test_create_retries_while_iam_propagates_then_waits_creating_to_active(
    stubbed: StubbedAws, timing: Timing, clock: FakeClock
) -> None:
    stubbed.fail(
        "eks",
        "create_cluster",
        "InvalidParameterException",
        f"Role with arn: {ROLE}, could not be assumed because it does not exist or the trusted "
        "entity is not correct",
        params=create_request(),
    )
    stubbed.ok("eks", "create_cluster", described("CREATING"), create_request())
    stubbed.ok("eks", "describe_cluster", described("CREATING"), {"name": "gate"})
    stubbed.ok("eks", "describe_cluster", described("CREATING"), {"name": "gate"})
    stubbed.ok("eks", "describe_cluster", described("ACTIVE"), {"name": "gate"})
    stubbed.ok("eks", "describe_cluster", described("ACTIVE"), {"name": "gate"})
    create(stubbed, timing)
    info = cluster.wait_active(stubbed.client("eks"), "gate", timing, 600)
    assert (info.status, info.endpoint, info.certificate_authority) == (
        "ACTIVE",
        "https://ABC.gr7.us-east-1.eks.amazonaws.com",
        "Q0E=",
    )
    assert stubbed.calls == ["eks.CreateCluster", "eks.CreateCluster", *["eks.DescribeCluster"] * 4]
    assert len(clock.sleeps) == 1  # one pause between the two create attempts
    stubbed.assert_done()


def test_iam_that_never_propagates_times_out(stubbed: StubbedAws, clock: FakeClock) -> None:
    timing = Timing(timeout=5.0, delay=1.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(6):
        stubbed.fail(
            "eks",
            "create_cluster",
            "InvalidParameterException",
            "The role with name x cannot be assumed by Amazon EKS",
        )
    with pytest.raises(ReadinessTimeout, match="IAM role"):
        create(stubbed, timing)


def test_unsupported_zone_reports_the_zones_eks_offers(stubbed: StubbedAws, timing: Timing) -> None:
    stubbed.fail(
        "eks",
        "create_cluster",
        "UnsupportedAvailabilityZoneException",
        "Cannot create cluster because us-east-1e does not have sufficient capacity",
        validZones=["us-east-1a", "us-east-1b", "us-east-1c"],
    )
    with pytest.raises(cluster.UnsupportedZones) as caught:
        create(stubbed, timing)
    assert caught.value.valid_zones == ("us-east-1a", "us-east-1b", "us-east-1c")


def test_failed_cluster_is_an_error_not_a_timeout(stubbed: StubbedAws, timing: Timing) -> None:
    stubbed.ok("eks", "describe_cluster", described("CREATING"))
    stubbed.ok("eks", "describe_cluster", described("FAILED"))
    with pytest.raises(ProviderError, match="failure") as caught:
        cluster.wait_active(stubbed.client("eks"), "gate", timing, 600)
    assert not isinstance(caught.value, ReadinessTimeout)


def test_cluster_stuck_creating_times_out(stubbed: StubbedAws, clock: FakeClock) -> None:
    timing = Timing(timeout=60.0, delay=0.0, monotonic=clock.monotonic, sleep=clock.sleep)
    for _ in range(4):
        stubbed.ok("eks", "describe_cluster", described("CREATING"))
    with pytest.raises(ReadinessTimeout, match="ACTIVE"):
        cluster.wait_active(stubbed.client("eks"), "gate", timing, 3)


def test_a_name_taken_by_another_run_is_refused(stubbed: StubbedAws, timing: Timing) -> None:
    stubbed.fail("eks", "create_cluster", "ResourceInUseException", "Cluster already exists with name: gate")
    stubbed.ok("eks", "describe_cluster", described("ACTIVE", {**TAGS, T.RUN_ID: "someone-else"}))
    with pytest.raises(ProviderError, match="another run"):
        create(stubbed, timing)


def test_a_retry_that_finds_its_own_cluster_counts_as_created(stubbed: StubbedAws, timing: Timing) -> None:
    stubbed.fail("eks", "create_cluster", "ResourceInUseException", "Cluster already exists with name: gate")
    stubbed.ok("eks", "describe_cluster", described("CREATING"))
    create(stubbed, timing)
    stubbed.assert_done()


def test_addons_are_created_then_awaited_and_deleted_then_awaited(
    stubbed: StubbedAws, timing: Timing
) -> None:
    def addon(name: str, status: str) -> dict[str, Any]:
        return {"addon": {"addonName": name, "clusterName": "gate", "status": status}}

    for name in ("vpc-cni", "coredns"):
        stubbed.ok(
            "eks",
            "create_addon",
            addon(name, "CREATING"),
            {"clusterName": "gate", "addonName": name, "resolveConflicts": "OVERWRITE", "tags": TAGS},
        )
    stubbed.ok("eks", "describe_addon", addon("vpc-cni", "CREATING"))
    stubbed.ok("eks", "describe_addon", addon("vpc-cni", "ACTIVE"))
    stubbed.ok("eks", "describe_addon", addon("coredns", "ACTIVE"))
    addons.create(stubbed.client("eks"), "gate", ["vpc-cni", "coredns"], tags=TAGS, timing=timing, timeout=60)
    stubbed.ok("eks", "create_access_entry", {}, {"clusterName": "gate", "principalArn": ROLE, "tags": TAGS})
    stubbed.ok(
        "eks",
        "associate_access_policy",
        {},
        {
            "clusterName": "gate",
            "principalArn": ROLE,
            "policyArn": addons.CLUSTER_ADMIN_POLICY,
            "accessScope": {"type": "cluster"},
        },
    )
    addons.grant_admin(stubbed.client("eks"), "gate", [ROLE], TAGS)
    assert stubbed.calls == [
        "eks.CreateAddon",
        "eks.CreateAddon",
        "eks.DescribeAddon",
        "eks.DescribeAddon",
        "eks.DescribeAddon",
        "eks.CreateAccessEntry",
        "eks.AssociateAccessPolicy",
    ]
    stubbed.assert_done()


def test_addon_stuck_in_delete_failed_is_reported(stubbed: StubbedAws, timing: Timing) -> None:
    stubbed.ok("eks", "delete_addon", {})
    stubbed.ok("eks", "describe_addon", {"addon": {"addonName": "coredns", "status": "DELETE_FAILED"}})
    with pytest.raises(ProviderError, match="coredns"):
        addons.delete(stubbed.client("eks"), "gate", ["coredns"], timing, 60)


def tagged(**extra: Any) -> dict[str, Any]:
    return {"Tags": T.as_list(TAGS), **extra}


def stub_full_teardown(s: StubbedAws) -> None:
    """The AWS answers of one realistic teardown, including the refusals real AWS gives."""
    gone = ("ResourceNotFoundException", "not found")
    lb_arn = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/a1b2/c3"
    s.ok("eks", "describe_cluster", described("ACTIVE"))
    # Kubernetes is deleting the Service's load balancer: still there at the first look, gone at the second.
    s.ok("elbv2", "describe_load_balancers", {"LoadBalancers": [{"LoadBalancerArn": lb_arn}]})
    s.ok(
        "elbv2",
        "describe_tags",
        {
            "TagDescriptions": [
                {"ResourceArn": lb_arn, "Tags": [{"Key": "kubernetes.io/cluster/gate", "Value": "owned"}]}
            ]
        },
    )
    s.ok("elb", "describe_load_balancers", {"LoadBalancerDescriptions": []})
    s.ok("elbv2", "describe_load_balancers", {"LoadBalancers": []})
    s.ok("elb", "describe_load_balancers", {"LoadBalancerDescriptions": []})
    # Node groups, then add-ons and access entries, then the cluster: each DELETING, then gone.
    s.ok("eks", "list_nodegroups", {"nodegroups": ["gate-nodes"]}, {"clusterName": "gate"})
    s.ok("eks", "delete_nodegroup", {}, {"clusterName": "gate", "nodegroupName": "gate-nodes"})
    s.ok("eks", "describe_nodegroup", {"nodegroup": {"nodegroupName": "gate-nodes", "status": "DELETING"}})
    s.fail("eks", "describe_nodegroup", *gone, status=404)
    s.ok("eks", "delete_addon", {}, {"clusterName": "gate", "addonName": "coredns"})
    s.fail("eks", "describe_addon", *gone, status=404)
    s.fail(
        "eks", "delete_access_entry", *gone, status=404, params={"clusterName": "gate", "principalArn": ROLE}
    )
    s.ok("eks", "delete_cluster", described("DELETING"), {"name": "gate"})
    s.ok("eks", "describe_cluster", described("DELETING"))
    s.fail("eks", "describe_cluster", *gone, status=404)
    # With the cluster gone, what Kubernetes left is removed by the cluster tag.
    s.ok("elbv2", "describe_load_balancers", {"LoadBalancers": []})
    s.ok("elb", "describe_load_balancers", {"LoadBalancerDescriptions": []})
    s.ok("elbv2", "describe_target_groups", {"TargetGroups": []})
    s.ok(
        "ec2",
        "describe_security_groups",
        {
            "SecurityGroups": [
                {
                    "GroupId": "sg-elb",
                    "GroupName": "k8s-elb-a1b2",
                    "VpcId": "vpc-1",
                    "Tags": [{"Key": "kubernetes.io/cluster/gate", "Value": "owned"}],
                },
                {
                    "GroupId": "sg-eks",
                    "GroupName": "eks-cluster-sg-gate",
                    "VpcId": "vpc-1",
                    "Tags": [
                        {"Key": "kubernetes.io/cluster/gate", "Value": "owned"},
                        {"Key": "aws:eks:cluster-name", "Value": "gate"},
                    ],
                },
            ]
        },
    )
    s.fail(
        "ec2",
        "delete_security_group",
        "DependencyViolation",
        "resource sg-elb has a dependent object",
        params={"GroupId": "sg-elb"},
    )
    s.ok("ec2", "delete_security_group", {}, {"GroupId": "sg-elb"})
    # The network, by the run tag.
    vpc_filter = [{"Name": "vpc-id", "Values": ["vpc-1"]}]
    s.ok("ec2", "describe_vpcs", {"Vpcs": [tagged(VpcId="vpc-1")]})
    s.ok(
        "ec2",
        "describe_network_interfaces",
        {
            "NetworkInterfaces": [
                {"NetworkInterfaceId": "eni-left", "Status": "available", "VpcId": "vpc-1"},
                {"NetworkInterfaceId": "eni-nat", "Status": "in-use", "VpcId": "vpc-1"},
            ]
        },
        {"Filters": vpc_filter},
    )
    s.ok("ec2", "delete_network_interface", {}, {"NetworkInterfaceId": "eni-left"})
    s.ok("ec2", "describe_nat_gateways", {"NatGateways": [tagged(NatGatewayId="nat-1", State="available")]})
    s.ok("ec2", "delete_nat_gateway", {"NatGatewayId": "nat-1"}, {"NatGatewayId": "nat-1"})
    s.ok("ec2", "describe_nat_gateways", {"NatGateways": [{"NatGatewayId": "nat-1", "State": "deleting"}]})
    s.ok("ec2", "describe_nat_gateways", {"NatGateways": [{"NatGatewayId": "nat-1", "State": "deleted"}]})
    s.ok("ec2", "describe_addresses", {"Addresses": [tagged(AllocationId="eipalloc-1")]})
    s.fail(
        "ec2",
        "release_address",
        "InvalidIPAddress.InUse",
        "Address eipalloc-1 is in use",
        params={"AllocationId": "eipalloc-1"},
    )
    s.ok("ec2", "release_address", {}, {"AllocationId": "eipalloc-1"})
    s.ok(
        "ec2",
        "describe_route_tables",
        {
            "RouteTables": [
                tagged(
                    RouteTableId="rtb-1",
                    Associations=[{"RouteTableAssociationId": "rtbassoc-1", "Main": False}],
                )
            ]
        },
    )
    s.ok("ec2", "disassociate_route_table", {}, {"AssociationId": "rtbassoc-1"})
    s.ok("ec2", "delete_route_table", {}, {"RouteTableId": "rtb-1"})
    s.ok(
        "ec2",
        "describe_internet_gateways",
        {
            "InternetGateways": [
                tagged(InternetGatewayId="igw-1", Attachments=[{"VpcId": "vpc-1", "State": "available"}])
            ]
        },
    )
    s.ok("ec2", "detach_internet_gateway", {}, {"InternetGatewayId": "igw-1", "VpcId": "vpc-1"})
    s.ok("ec2", "delete_internet_gateway", {}, {"InternetGatewayId": "igw-1"})
    s.ok("ec2", "describe_subnets", {"Subnets": [tagged(SubnetId="subnet-1")]})
    s.fail(
        "ec2",
        "delete_subnet",
        "DependencyViolation",
        "The subnet 'subnet-1' has dependencies",
        params={"SubnetId": "subnet-1"},
    )
    s.ok(
        "ec2",
        "describe_network_interfaces",
        {"NetworkInterfaces": [{"NetworkInterfaceId": "eni-late", "Status": "available", "VpcId": "vpc-1"}]},
        {"Filters": vpc_filter},
    )
    s.ok("ec2", "delete_network_interface", {}, {"NetworkInterfaceId": "eni-late"})
    s.ok("ec2", "delete_subnet", {}, {"SubnetId": "subnet-1"})
    s.ok(
        "ec2",
        "describe_security_groups",
        {
            "SecurityGroups": [
                {"GroupId": "sg-default", "GroupName": "default", "VpcId": "vpc-1"},
                {
                    "GroupId": "sg-eks",
                    "GroupName": "eks-cluster-sg-gate",
                    "VpcId": "vpc-1",
                    "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-eks"}]}],
                },
            ]
        },
        {"Filters": vpc_filter},
    )
    s.ok(
        "ec2",
        "revoke_security_group_ingress",
        {},
        {
            "GroupId": "sg-eks",
            "IpPermissions": [{"IpProtocol": "-1", "UserIdGroupPairs": [{"GroupId": "sg-eks"}]}],
        },
    )
    s.ok("ec2", "delete_security_group", {}, {"GroupId": "sg-eks"})
    s.ok("ec2", "delete_vpc", {}, {"VpcId": "vpc-1"})
    # IAM: only this run's roles; policies detached before the role goes.
    s.ok(
        "iam",
        "list_roles",
        {
            "Roles": [
                {
                    "RoleName": n,
                    "Path": "/meshcheck/",
                    "RoleId": "AROAEXAMPLE0000000000",
                    "CreateDate": datetime(2026, 1, 1, tzinfo=UTC),
                    "Arn": f"arn:aws:iam::123456789012:role/meshcheck/{n}",
                }
                for n in ("ours", "another-run")
            ]
        },
        {"PathPrefix": "/meshcheck/"},
    )
    s.ok("iam", "list_role_tags", {"Tags": T.as_list(TAGS)}, {"RoleName": "ours"})
    s.ok(
        "iam", "list_role_tags", {"Tags": T.as_list({**TAGS, T.RUN_ID: "other"})}, {"RoleName": "another-run"}
    )
    s.ok(
        "iam",
        "list_attached_role_policies",
        {
            "AttachedPolicies": [
                {
                    "PolicyName": "AmazonEKSClusterPolicy",
                    "PolicyArn": "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy",
                }
            ]
        },
        {"RoleName": "ours"},
    )
    s.ok(
        "iam",
        "detach_role_policy",
        {},
        {"RoleName": "ours", "PolicyArn": "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"},
    )
    s.ok("iam", "list_role_policies", {"PolicyNames": []}, {"RoleName": "ours"})
    s.ok("iam", "list_instance_profiles_for_role", {"InstanceProfiles": []}, {"RoleName": "ours"})
    s.ok("iam", "delete_role", {}, {"RoleName": "ours"})


def test_teardown_runs_in_reverse_dependency_order(stubbed: StubbedAws, timing: Timing) -> None:
    stub_full_teardown(stubbed)
    kube_calls: list[str] = []

    def delete_services() -> None:
        kube_calls.append(f"after {len(stubbed.calls)} AWS calls")

    log = destroy_run(
        stubbed,
        cluster="gate",
        run_id=RUN,
        timing=timing,
        budget=Budget.from_timeout(60),
        delete_services=delete_services,
        addon_names=["coredns"],
        admins=[ROLE],
    )
    stubbed.assert_done()
    assert kube_calls == ["after 1 AWS calls"], "Kubernetes cleanup runs right after confirming the cluster"
    assert [step for step, _ in log.steps] == [
        "kubernetes services",
        "load balancers",
        "node groups",
        "add-ons and access entries",
        "cluster",
        "leftover load balancers",
        "network",
        "IAM roles",
    ]
    assert stubbed.calls == [
        "eks.DescribeCluster",
        # waiting for Kubernetes to remove its load balancer: present, then gone
        "elbv2.DescribeLoadBalancers",
        "elbv2.DescribeTags",
        "elb.DescribeLoadBalancers",
        "elbv2.DescribeLoadBalancers",
        "elb.DescribeLoadBalancers",
        "eks.ListNodegroups",
        "eks.DeleteNodegroup",
        "eks.DescribeNodegroup",
        "eks.DescribeNodegroup",
        "eks.DeleteAddon",
        "eks.DescribeAddon",
        "eks.DeleteAccessEntry",
        "eks.DeleteCluster",
        "eks.DescribeCluster",
        "eks.DescribeCluster",
        # leftovers of Kubernetes, by the cluster tag, once nothing can recreate them
        "elbv2.DescribeLoadBalancers",
        "elb.DescribeLoadBalancers",
        "elbv2.DescribeTargetGroups",
        "ec2.DescribeSecurityGroups",
        "ec2.DeleteSecurityGroup",
        "ec2.DeleteSecurityGroup",
        # the network, by run tag
        "ec2.DescribeVpcs",
        "ec2.DescribeNetworkInterfaces",
        "ec2.DeleteNetworkInterface",
        "ec2.DescribeNatGateways",
        "ec2.DeleteNatGateway",
        "ec2.DescribeNatGateways",
        "ec2.DescribeNatGateways",
        "ec2.DescribeAddresses",
        "ec2.ReleaseAddress",
        "ec2.ReleaseAddress",
        "ec2.DescribeRouteTables",
        "ec2.DisassociateRouteTable",
        "ec2.DeleteRouteTable",
        "ec2.DescribeInternetGateways",
        "ec2.DetachInternetGateway",
        "ec2.DeleteInternetGateway",
        "ec2.DescribeSubnets",
        "ec2.DeleteSubnet",
        "ec2.DescribeNetworkInterfaces",
        "ec2.DeleteNetworkInterface",
        "ec2.DeleteSubnet",
        "ec2.DescribeSecurityGroups",
        "ec2.RevokeSecurityGroupIngress",
        "ec2.DeleteSecurityGroup",
        "ec2.DeleteVpc",
        # the roles, policies first
        "iam.ListRoles",
        "iam.ListRoleTags",
        "iam.ListRoleTags",
        "iam.ListAttachedRolePolicies",
        "iam.DetachRolePolicy",
        "iam.ListRolePolicies",
        "iam.ListInstanceProfilesForRole",
        "iam.DeleteRole",
    ]


def test_teardown_stops_at_the_first_failing_step_and_says_how_to_resume(
    stubbed: StubbedAws, timing: Timing
) -> None:
    stubbed.ok("eks", "describe_cluster", described("ACTIVE"))
    for service, op, key in (
        ("elbv2", "describe_load_balancers", "LoadBalancers"),
        ("elb", "describe_load_balancers", "LoadBalancerDescriptions"),
    ):
        stubbed.ok(service, op, {key: []})
    stubbed.ok("eks", "list_nodegroups", {"nodegroups": ["gate-nodes"]})
    stubbed.ok("eks", "delete_nodegroup", {})
    stubbed.ok(
        "eks", "describe_nodegroup", {"nodegroup": {"nodegroupName": "gate-nodes", "status": "DELETE_FAILED"}}
    )
    with pytest.raises(
        ProviderError, match=r"stopped at node groups.*meshcheck eks down --name gate"
    ) as caught:
        destroy_run(stubbed, cluster="gate", run_id=RUN, timing=timing, budget=Budget.from_timeout(60))
    assert "node groups: FAILED" in caught.value.evidence["teardown"]
    assert "eks.DeleteCluster" not in stubbed.calls
    assert not any(call.startswith(("ec2.DescribeVpcs", "iam.")) for call in stubbed.calls)


def test_a_cluster_of_another_run_is_never_touched(stubbed: StubbedAws, timing: Timing) -> None:
    stubbed.ok("eks", "describe_cluster", described("ACTIVE", {**TAGS, T.RUN_ID: "other"}))
    stubbed.ok("ec2", "describe_vpcs", {"Vpcs": []})
    stubbed.ok("ec2", "describe_nat_gateways", {"NatGateways": []})
    stubbed.ok("ec2", "describe_addresses", {"Addresses": []})
    stubbed.ok("ec2", "describe_route_tables", {"RouteTables": []})
    stubbed.ok("ec2", "describe_internet_gateways", {"InternetGateways": []})
    stubbed.ok("ec2", "describe_subnets", {"Subnets": []})
    stubbed.ok("iam", "list_roles", {"Roles": []}, {"PathPrefix": "/meshcheck/"})
    destroy_run(stubbed, cluster="gate", run_id=RUN, timing=timing, budget=Budget.from_timeout(60))
    stubbed.assert_done()
    assert not any(call.startswith("eks.Delete") for call in stubbed.calls)
