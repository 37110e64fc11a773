"""``muelle-certs``: the TLS material of a muelle deployment (see deploy/README.md).

    muelle-certs ca DIR                       a new CA: DIR/ca.pem, DIR/ca-key.pem
    muelle-certs issue CA_DIR OUT_DIR --name gateway-b --dns b.example --ip 10.0.0.2
    muelle-certs renew CA_DIR OUT_DIR         same identity and names, new key and dates
    muelle-certs show OUT_DIR/cert.pem        identity, names, usage, expiry
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from clients.certs import authority
from vocab.errors import MuelleError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="muelle-certs",
                                     description="certificates for muelle's mutual TLS")
    sub = parser.add_subparsers(dest="verb", required=True)
    ca = sub.add_parser("ca", help="create a certificate authority")
    ca.add_argument("dir", type=Path)
    ca.add_argument("--name", default="muelle CA", help="the CA's common name")
    ca.add_argument("--days", type=int, default=authority.CA_DAYS)
    ca.add_argument("--force", action="store_true", help="replace an existing CA")
    issue = sub.add_parser("issue", help="issue a server and/or client certificate")
    issue.add_argument("ca_dir", type=Path)
    issue.add_argument("out_dir", type=Path, help="gets cert.pem, key.pem (0600), ca.pem")
    issue.add_argument("--name", required=True,
                       help="the identity (CN) that [authz] tables name")
    issue.add_argument("--dns", action="append", default=[], help="a DNS name SAN (repeat)")
    issue.add_argument("--ip", action="append", default=[], help="an IP address SAN (repeat)")
    issue.add_argument("--kind", choices=authority.KINDS, default="both",
                       help="server, client or both (default: both, as services are both)")
    issue.add_argument("--days", type=int, default=authority.CERT_DAYS)
    renew = sub.add_parser("renew", help="reissue a certificate with a new key and dates")
    renew.add_argument("ca_dir", type=Path)
    renew.add_argument("out_dir", type=Path)
    renew.add_argument("--days", type=int, default=authority.CERT_DAYS)
    show = sub.add_parser("show", help="print a certificate's identity and expiry")
    show.add_argument("cert", type=Path)
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if getattr(args, "days", 1) < 1:
            raise MuelleError("--days must be at least 1")
        if args.verb == "ca":
            print(authority.init_ca(args.dir, args.name, args.days, args.force))
        elif args.verb == "issue":
            print(authority.issue(args.ca_dir, args.out_dir, args.name, args.dns, args.ip,
                                  args.kind, args.days))
        elif args.verb == "renew":
            print(authority.renew(args.ca_dir, args.out_dir, args.days))
        else:
            info = authority.describe(args.cert)
            print(f"identity:  {info.name}\nkind:      {info.kind}\n"
                  f"dns:       {', '.join(info.dns) or '-'}\nips:       "
                  f"{', '.join(info.ips) or '-'}\nnot after: {info.not_after.isoformat()}")
    except (MuelleError, OSError) as exc:
        print(f"muelle-certs: {exc}", file=sys.stderr)
        return 1
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
