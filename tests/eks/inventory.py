"""What exists in the (moto) account: the leak check every teardown test ends with."""

from __future__ import annotations

from typing import Any

from pytest_meshcheck.providers.eks.aws import Aws
from pytest_meshcheck.providers.eks.naming import IAM_PATH


def inventory(aws: Aws) -> dict[str, list[str]]:
    ec2, eks, iam = aws.client("ec2"), aws.client("eks"), aws.client("iam")
    cfn = aws.client("cloudformation")
    clusters = eks.list_clusters()["clusters"]
    nodegroups = [f"{c}/{n}" for c in clusters for n in eks.list_nodegroups(clusterName=c)["nodegroups"]]
    custom_vpcs = [v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"] if not v.get("IsDefault")]
    subnets: list[str] = []
    if custom_vpcs:
        subnets = [
            s["SubnetId"]
            for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": custom_vpcs}])["Subnets"]
        ]
    found: dict[str, Any] = {
        "clusters": clusters,
        "nodegroups": nodegroups,
        "vpcs": custom_vpcs,
        "subnets": subnets,
        "nat_gateways": [
            n["NatGatewayId"]
            for n in ec2.describe_nat_gateways()["NatGateways"]
            if n["State"] not in ("deleted", "deleting")
        ],
        "eips": [a["AllocationId"] for a in ec2.describe_addresses()["Addresses"]],
        "internet_gateways": [
            g["InternetGatewayId"]
            for g in ec2.describe_internet_gateways()["InternetGateways"]
            if any(a.get("VpcId") in custom_vpcs for a in g.get("Attachments", []))
            or any(t["Key"].startswith("meshcheck:") for t in g.get("Tags", []))
        ],
        "stacks": [
            s["StackName"]
            for s in cfn.list_stacks()["StackSummaries"]
            if s["StackStatus"] != "DELETE_COMPLETE"
        ],
        "roles": [r["RoleName"] for r in iam.list_roles(PathPrefix=IAM_PATH)["Roles"]],
        "load_balancers": [
            lb["LoadBalancerArn"] for lb in aws.client("elbv2").describe_load_balancers()["LoadBalancers"]
        ],
    }
    return found


def leftovers(aws: Aws) -> dict[str, list[str]]:
    return {kind: items for kind, items in inventory(aws).items() if items}
