"""The cluster's network, built with direct EC2 calls rather than one CloudFormation stack.

Why direct calls: every resource is tagged with the run id *as it is created*, so teardown and the
reaper rediscover exactly what exists by tag, whatever step a run died in. A stack would add a
second source of truth with its own failure mode (DELETE_FAILED on a DependencyViolation from an
ENI or ELB security group the stack does not own), whose recovery is the same manual, by-tag EC2
deletion this module needs anyway. One path, exercised on every run, is easier to trust.

The shape follows eksctl's: DNS support and hostnames on, public subnets tagged for internet-facing
load balancers and private ones for internal ones, an internet gateway, one NAT gateway with its
Elastic IP, and route tables. ``public_only`` drops the private half and the NAT gateway (cheaper;
nodes get public addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from pytest_meshcheck.errors import ProviderError
from pytest_meshcheck.providers.eks import tags as T
from pytest_meshcheck.providers.eks.aws import aws_errors, error_code, is_not_found, tolerate_not_found
from pytest_meshcheck.providers.eks.naming import Names
from pytest_meshcheck.providers.eks.timing import Timing, wait

VPC_CIDR = "192.168.0.0/16"
#: Error codes meaning "not deletable yet, something still uses it": retried until the deadline.
_NOT_YET = frozenset({"DependencyViolation", "ResourceInUse", "InvalidIPAddress.InUse"})
SUBNET_PREFIX = 19  # eight /19 slots in the /16
ZONES = 2


@dataclass(frozen=True, kw_only=True)
class Network:
    vpc_id: str
    public_subnets: tuple[str, ...] = ()
    private_subnets: tuple[str, ...] = ()
    #: zone of each subnet, so a retry after UnsupportedAvailabilityZoneException can filter them
    zones: Mapping[str, str] = field(default_factory=dict)
    owned: bool = True

    @property
    def cluster_subnets(self) -> tuple[str, ...]:
        return self.public_subnets + self.private_subnets

    @property
    def node_subnets(self) -> tuple[str, ...]:
        return self.private_subnets or self.public_subnets


def _slot(index: int) -> str:
    net = ipaddress.ip_network(VPC_CIDR)
    return str(list(net.subnets(new_prefix=SUBNET_PREFIX))[index])


def choose_zones(ec2: Any, count: int = ZONES, exclude: Sequence[str] = ()) -> list[str]:
    with aws_errors("listing availability zones"):
        zones = ec2.describe_availability_zones(
            Filters=[
                {"Name": "state", "Values": ["available"]},
                {"Name": "zone-type", "Values": ["availability-zone"]},
            ]
        )["AvailabilityZones"]
    names = sorted(z["ZoneName"] for z in zones if z["ZoneName"] not in exclude)
    if len(names) < 2:
        raise ProviderError(f"EKS needs subnets in two availability zones; this region offers {names}")
    return names[:count]


class _Builder:
    """Creates the pieces one by one; the caller's ``on_created`` sees each id (for the tests)."""

    def __init__(self, ec2: Any, names: Names, run_tags: Mapping[str, str], timing: Timing) -> None:
        self.ec2 = ec2
        self.names = names
        self.tags = dict(run_tags)
        self.timing = timing
        self.k8s_tag = {T.K8S_CLUSTER_PREFIX + names.cluster: "shared"}

    def vpc(self) -> str:
        vpc_id: str = self.ec2.create_vpc(
            CidrBlock=VPC_CIDR, TagSpecifications=T.ec2_spec("vpc", self.tags, self.names.resource("vpc"))
        )["Vpc"]["VpcId"]
        wait(self.ec2.get_waiter("vpc_available"), self.timing, f"VPC {vpc_id}", VpcIds=[vpc_id])
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsSupport={"Value": True})
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        return vpc_id

    def internet_gateway(self, vpc_id: str) -> str:
        igw_id: str = self.ec2.create_internet_gateway(
            TagSpecifications=T.ec2_spec("internet-gateway", self.tags, self.names.resource("igw"))
        )["InternetGateway"]["InternetGatewayId"]
        self.ec2.attach_internet_gateway(InternetGatewayId=igw_id, VpcId=vpc_id)
        return igw_id

    def route_table(self, vpc_id: str, kind: str, **route: str) -> str:
        rt_id: str = self.ec2.create_route_table(
            VpcId=vpc_id, TagSpecifications=T.ec2_spec("route-table", self.tags, self.names.resource(kind))
        )["RouteTable"]["RouteTableId"]
        self.ec2.create_route(RouteTableId=rt_id, DestinationCidrBlock="0.0.0.0/0", **route)
        return rt_id

    def subnet(self, vpc_id: str, zone: str, slot: int, public: bool, route_table: str) -> str:
        role = {T.ELB_ROLE: "1"} if public else {T.INTERNAL_ELB_ROLE: "1"}
        kind = "public" if public else "private"
        subnet_id: str = self.ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=_slot(slot),
            AvailabilityZone=zone,
            TagSpecifications=T.ec2_spec(
                "subnet", {**self.tags, **self.k8s_tag, **role}, self.names.resource(kind, zone)
            ),
        )["Subnet"]["SubnetId"]
        if public:
            self.ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
        self.ec2.associate_route_table(RouteTableId=route_table, SubnetId=subnet_id)
        return subnet_id

    def nat_gateway(self, subnet_id: str) -> str:
        allocation = self.ec2.allocate_address(
            Domain="vpc",
            TagSpecifications=T.ec2_spec("elastic-ip", self.tags, self.names.resource("nat-eip")),
        )["AllocationId"]
        nat_id: str = self.ec2.create_nat_gateway(
            SubnetId=subnet_id,
            AllocationId=allocation,
            TagSpecifications=T.ec2_spec("natgateway", self.tags, self.names.resource("nat")),
        )["NatGateway"]["NatGatewayId"]
        wait(
            self.ec2.get_waiter("nat_gateway_available"),
            self.timing,
            f"NAT gateway {nat_id}",
            NatGatewayIds=[nat_id],
        )
        return nat_id


def create_network(
    ec2: Any,
    *,
    names: Names,
    run_tags: Mapping[str, str],
    timing: Timing,
    public_only: bool,
    zones: Sequence[str],
) -> Network:
    build = _Builder(ec2, names, run_tags, timing)
    with aws_errors(f"creating the VPC for {names.cluster}"):
        vpc_id = build.vpc()
        igw_id = build.internet_gateway(vpc_id)
        public_rt = build.route_table(vpc_id, "public-rt", GatewayId=igw_id)
        public = [build.subnet(vpc_id, zone, i, True, public_rt) for i, zone in enumerate(zones)]
        private: list[str] = []
        if not public_only:
            nat_id = build.nat_gateway(public[0])
            private_rt = build.route_table(vpc_id, "private-rt", NatGatewayId=nat_id)
            private = [
                build.subnet(vpc_id, zone, len(zones) + i, False, private_rt) for i, zone in enumerate(zones)
            ]
    zone_of = dict(zip(public, zones, strict=True)) | dict(zip(private, zones, strict=False))
    return Network(vpc_id=vpc_id, public_subnets=tuple(public), private_subnets=tuple(private), zones=zone_of)


def rezone(
    ec2: Any,
    network: Network,
    valid_zones: Sequence[str],
    *,
    names: Names,
    run_tags: Mapping[str, str],
    timing: Timing,
) -> Network:
    """After EKS rejected a zone: keep subnets in ``valid_zones``, add new ones where needed.

    Subnets in rejected zones stay (one may hold the NAT gateway) and are deleted at teardown with
    everything else of the run. A reused VPC is only filtered, never added to.
    """
    keep = {s for s, z in network.zones.items() if z in valid_zones}
    covered = {network.zones[s] for s in keep}
    if not network.owned:
        if len(covered) < 2:
            raise ProviderError(
                f"EKS accepts only zones {list(valid_zones)}; the given subnets cover {sorted(covered)}"
            )
        return replace(
            network,
            public_subnets=tuple(s for s in network.public_subnets if s in keep),
            private_subnets=tuple(s for s in network.private_subnets if s in keep),
        )
    wanted = [z for z in sorted(valid_zones) if z not in covered][: max(0, ZONES - len(covered))]
    build = _Builder(ec2, names, run_tags, timing)
    zones = dict(network.zones)
    public = [s for s in network.public_subnets if s in keep]
    private = [s for s in network.private_subnets if s in keep]
    with aws_errors("adding subnets in the zones EKS supports"):
        used = {
            str(s["CidrBlock"])
            for s in ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [network.vpc_id]}])["Subnets"]
        }
        free = (i for i in range(2 ** (SUBNET_PREFIX - 16)) if _slot(i) not in used)
        tables = _route_tables_by_kind(ec2, network)
        for zone in wanted:
            subnet = build.subnet(network.vpc_id, zone, next(free), True, tables["public"])
            public.append(subnet)
            zones[subnet] = zone
            if network.private_subnets:
                subnet = build.subnet(network.vpc_id, zone, next(free), False, tables["private"])
                private.append(subnet)
                zones[subnet] = zone
    return Network(
        vpc_id=network.vpc_id,
        public_subnets=tuple(public),
        private_subnets=tuple(private),
        zones=zones,
        owned=True,
    )


def _route_tables_by_kind(ec2: Any, network: Network) -> dict[str, str]:
    found: dict[str, str] = {}
    for table in ec2.describe_route_tables(Filters=[{"Name": "vpc-id", "Values": [network.vpc_id]}])[
        "RouteTables"
    ]:
        for assoc in table.get("Associations", []):
            subnet = assoc.get("SubnetId")
            if subnet in network.public_subnets:
                found["public"] = table["RouteTableId"]
            elif subnet in network.private_subnets:
                found["private"] = table["RouteTableId"]
    return found


def describe_existing(ec2: Any, vpc_id: str, subnet_ids: Sequence[str]) -> Network:
    """A user-supplied VPC (never deleted): subnets given, or all of the VPC's subnets."""
    filters = [{"Name": "vpc-id", "Values": [vpc_id]}]
    with aws_errors(f"describing VPC {vpc_id}"):
        kwargs: dict[str, Any] = {"SubnetIds": list(subnet_ids)} if subnet_ids else {"Filters": filters}
        subnets = ec2.describe_subnets(**kwargs)["Subnets"]
    if not subnets:
        raise ProviderError(f"VPC {vpc_id} has no subnets to put the cluster in")
    public = tuple(s["SubnetId"] for s in subnets if s.get("MapPublicIpOnLaunch"))
    private = tuple(s["SubnetId"] for s in subnets if not s.get("MapPublicIpOnLaunch"))
    return Network(
        vpc_id=vpc_id,
        public_subnets=public,
        private_subnets=private,
        zones={s["SubnetId"]: s["AvailabilityZone"] for s in subnets},
        owned=False,
    )


# ------------------------------------------------------------------------------------------------
# Teardown: everything tagged with the run id, in dependency order.
# ------------------------------------------------------------------------------------------------


def _tagged(run_id: str) -> list[dict[str, Any]]:
    return [{"Name": f"tag:{T.RUN_ID}", "Values": [run_id]}]


def _mine(items: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
    """Re-check the run tag on what a filtered describe returned: deleting is irreversible, and
    not every endpoint honours every tag filter."""
    return [item for item in items if T.from_list(item.get("Tags")).get(T.RUN_ID) == run_id]


def _nothing() -> None:
    return None


def _retry_dependency(
    timing: Timing, what: str, delete: Callable[[], object], between: Callable[[], None]
) -> None:
    """AWS refuses some deletes (DependencyViolation) until it has released ENIs and the like."""
    from botocore.exceptions import ClientError

    def attempt() -> tuple[bool, str]:
        try:
            delete()
        except ClientError as exc:
            if is_not_found(exc):
                return True, ""
            if error_code(exc) not in _NOT_YET:
                raise ProviderError(f"AWS failed while deleting {what}: {exc}") from exc
            between()
            return False, str(exc)
        return True, ""

    timing.poll(f"{what} to become deletable", attempt, describe=str)


def delete_network(ec2: Any, run_id: str, timing: Timing) -> list[str]:
    """Delete every EC2 network resource tagged with ``run_id``; return what was deleted."""
    deleted: list[str] = []
    filters = _tagged(run_id)
    with aws_errors(f"listing the network of run {run_id}"):
        vpcs = [v["VpcId"] for v in _mine(ec2.describe_vpcs(Filters=filters)["Vpcs"], run_id)]

    def release_enis() -> None:
        if not vpcs:
            return
        with aws_errors("listing network interfaces"):
            enis = ec2.describe_network_interfaces(Filters=[{"Name": "vpc-id", "Values": vpcs}])[
                "NetworkInterfaces"
            ]
        for eni in enis:
            if eni.get("Status") == "available" and eni.get("VpcId") in vpcs:
                with tolerate_not_found(f"deleting ENI {eni['NetworkInterfaceId']}"):
                    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])
                    deleted.append(eni["NetworkInterfaceId"])

    release_enis()

    with aws_errors("listing NAT gateways"):
        nats = [
            n
            for n in _mine(ec2.describe_nat_gateways(Filter=filters)["NatGateways"], run_id)
            if n["State"] not in ("deleted",)
        ]
    for nat in nats:
        with tolerate_not_found(f"deleting NAT gateway {nat['NatGatewayId']}"):
            ec2.delete_nat_gateway(NatGatewayId=nat["NatGatewayId"])
            deleted.append(nat["NatGatewayId"])
    if nats:
        wait(
            ec2.get_waiter("nat_gateway_deleted"),
            timing,
            "NAT gateway deletion",
            NatGatewayIds=[n["NatGatewayId"] for n in nats],
        )

    with aws_errors("listing Elastic IPs"):
        addresses = _mine(ec2.describe_addresses(Filters=filters)["Addresses"], run_id)
    for address in addresses:
        if address.get("AssociationId"):
            with tolerate_not_found(f"disassociating {address['AllocationId']}"):
                ec2.disassociate_address(AssociationId=address["AssociationId"])
        _retry_dependency(
            timing,
            f"Elastic IP {address['AllocationId']}",
            partial(ec2.release_address, AllocationId=address["AllocationId"]),
            _nothing,
        )
        deleted.append(address["AllocationId"])

    with aws_errors("listing route tables"):
        tables = _mine(ec2.describe_route_tables(Filters=filters)["RouteTables"], run_id)
    for table in tables:
        for assoc in table.get("Associations", []):
            if not assoc.get("Main") and assoc.get("RouteTableAssociationId"):
                with tolerate_not_found(f"disassociating {assoc['RouteTableAssociationId']}"):
                    ec2.disassociate_route_table(AssociationId=assoc["RouteTableAssociationId"])
        if any(a.get("Main") for a in table.get("Associations", [])):
            continue
        with tolerate_not_found(f"deleting route table {table['RouteTableId']}"):
            ec2.delete_route_table(RouteTableId=table["RouteTableId"])
            deleted.append(table["RouteTableId"])

    with aws_errors("listing internet gateways"):
        gateways = _mine(ec2.describe_internet_gateways(Filters=filters)["InternetGateways"], run_id)
    for gateway in gateways:
        igw = gateway["InternetGatewayId"]
        for attachment in gateway.get("Attachments", []):
            _retry_dependency(
                timing,
                f"internet gateway {igw} attachment",
                partial(ec2.detach_internet_gateway, InternetGatewayId=igw, VpcId=attachment["VpcId"]),
                release_enis,
            )
        with tolerate_not_found(f"deleting internet gateway {igw}"):
            ec2.delete_internet_gateway(InternetGatewayId=igw)
            deleted.append(igw)

    with aws_errors("listing subnets"):
        subnets = _mine(ec2.describe_subnets(Filters=filters)["Subnets"], run_id)
    for subnet in subnets:
        _retry_dependency(
            timing,
            f"subnet {subnet['SubnetId']}",
            partial(ec2.delete_subnet, SubnetId=subnet["SubnetId"]),
            release_enis,
        )
        deleted.append(subnet["SubnetId"])

    if vpcs:
        deleted += delete_security_groups(
            ec2,
            [{"Name": "vpc-id", "Values": vpcs}],
            timing,
            release_enis,
            skip=lambda group: group.get("VpcId") not in vpcs,
        )

    for vpc_id in vpcs:
        _retry_dependency(timing, f"VPC {vpc_id}", partial(ec2.delete_vpc, VpcId=vpc_id), release_enis)
        deleted.append(vpc_id)
    return deleted


def delete_security_groups(
    ec2: Any,
    filters: list[dict[str, Any]],
    timing: Timing,
    between: Callable[[], None] = lambda: None,
    skip: Callable[[dict[str, Any]], bool] = lambda group: False,
) -> list[str]:
    """Delete non-default groups matching ``filters``, first revoking rules that reference each
    other (two groups that allow each other cannot be deleted one at a time)."""
    with aws_errors("listing security groups"):
        groups = [
            g
            for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
            if g["GroupName"] != "default" and not skip(g)
        ]
    for group in groups:
        ingress = [p for p in group.get("IpPermissions", []) if p.get("UserIdGroupPairs")]
        egress = [p for p in group.get("IpPermissionsEgress", []) if p.get("UserIdGroupPairs")]
        with tolerate_not_found(f"revoking rules of {group['GroupId']}"):
            if ingress:
                ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=ingress)
            if egress:
                ec2.revoke_security_group_egress(GroupId=group["GroupId"], IpPermissions=egress)
    for group in groups:
        _retry_dependency(
            timing,
            f"security group {group['GroupId']}",
            partial(ec2.delete_security_group, GroupId=group["GroupId"]),
            between,
        )
    return [g["GroupId"] for g in groups]
