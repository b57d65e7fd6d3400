"""``meshcheck images``: the images a run pulls, for mirroring into a private registry."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pytest_meshcheck.settings import DEFAULT_ISTIO_VERSION, parse_optional_version, parse_version


def _version(raw: str) -> str:
    try:
        return parse_version(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _optional_version(raw: str) -> str:
    try:
        return parse_optional_version(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_images_command(subparsers: Any) -> argparse.ArgumentParser:
    images: argparse.ArgumentParser = subparsers.add_parser(
        "images", help="list every container image a run pulls (to mirror into a private registry)"
    )
    images.add_argument("--istio-version", type=_version, default=DEFAULT_ISTIO_VERSION)
    images.add_argument(
        "--upgrade-to", type=_optional_version, default="", help="also list the upgrade target's"
    )
    images.add_argument("--image-registry", default="", help="show them rewritten onto this registry")
    images.add_argument("--pairs", action="store_true", help="print 'SOURCE TARGET' pairs for a copy script")
    images.set_defaults(handler=run_images_command)
    return images


def run_images_command(args: argparse.Namespace) -> int:
    from pytest_meshcheck.install.images import run_images

    sources = run_images(args.istio_version, upgrade_to=args.upgrade_to)
    if args.pairs:
        if not args.image_registry:
            sys.stderr.write("meshcheck images: --pairs needs --image-registry\n")
            return 2
        targets = run_images(args.istio_version, registry=args.image_registry, upgrade_to=args.upgrade_to)
        for source, target in zip(sources, targets, strict=True):
            sys.stdout.write(f"{source} {target}\n")
        return 0
    shown = run_images(args.istio_version, registry=args.image_registry, upgrade_to=args.upgrade_to)
    sys.stdout.write("".join(f"{image}\n" for image in shown))
    return 0
