"""`edgekube ca ...`: init, issue, revoke, crl, list and acl on a CA directory (an interface Ansible relies on)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgekube.security.ca import CA_DAYS, CERT_DAYS, CRL_DAYS, CertificateAuthority, Role
from edgekube.security.files import PUBLIC_MODE, write_atomic

RELOAD_HINT = "then reload the broker (`kill -HUP $(pidof mosquitto)` or `systemctl reload mosquitto`)"


def _out(text: str) -> None:
    print(text, flush=True)


def cmd_init(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(Path(args.dir))
    if ca.init(days=args.days):
        _out(f"initialised the certificate authority in {ca.dir}: ca.crt, ca.key (0600), index.json, crl.pem")
    else:
        _out(f"{ca.dir}: already initialised (ca.crt exists); nothing changed")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(Path(args.dir))
    issued = ca.issue(
        args.name,
        Role(args.role),
        sans=args.san,
        days=args.days,
        out=Path(args.out) if args.out else None,
        force=args.force,
    )
    ident = issued.identity
    _out(f"issued {ident.role} {ident.name}: {issued.cert}, {issued.key} (0600); serial {ident.serial}")
    _out(f"valid until {ident.not_after}")
    if ident.role != Role.BROKER.value:
        _out(f"regenerate the broker's ACL (`edgekube ca acl --dir {ca.dir} --out FILE`), {RELOAD_HINT}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(Path(args.dir))
    for ident in ca.revoke(args.name):
        _out(f"revoked {ident.role} {ident.name} (serial {ident.serial})")
    _out(f"CRL rewritten: {ca.crl_path}")
    _out(f"copy it and the ACL (`edgekube ca acl --dir {ca.dir} --out FILE`) to the broker, {RELOAD_HINT}")
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(Path(args.dir))
    path = ca.refresh_crl(days=args.days)
    _out(f"CRL rewritten: {path} (next update in {args.days} days); {RELOAD_HINT}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    ca = CertificateAuthority(Path(args.dir))
    rows = [("NAME", "ROLE", "SERIAL", "NOT-AFTER", "STATUS")]
    rows += [
        (i.name, i.role, i.serial, i.not_after, f"revoked {i.revoked_at}" if i.revoked else "valid")
        for i in ca.identities()
    ]
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]) - 1)]
    for row in rows:
        _out("   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "   " + row[-1])
    return 0


def cmd_acl(args: argparse.Namespace) -> int:
    from edgekube.security.acl import render  # noqa: PLC0415

    text = render(CertificateAuthority(Path(args.dir)).active())
    if args.out:
        write_atomic(Path(args.out), text.encode(), PUBLIC_MODE)
        print(f"wrote {args.out}; {RELOAD_HINT}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `ca` and its subcommands to the `edgekube` command."""
    ca = sub.add_parser("ca", help="the fleet's certificate authority: identities, revocation, the broker's ACL")
    verbs = ca.add_subparsers(dest="ca_command", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, help=help_text)
        p.add_argument("--dir", required=True, help="the CA directory (ca.crt, ca.key, index.json, crl.pem)")
        return p

    p = verb("init", "create the CA (does nothing if DIR/ca.crt exists)")
    p.add_argument("--days", type=int, default=CA_DAYS, help=f"validity of the CA certificate (default {CA_DAYS})")
    p.set_defaults(func=cmd_init)

    p = verb("issue", "issue NAME's certificate and key (the name is the MQTT username)")
    p.add_argument("name", metavar="NAME", help="node name (DNS-1123), or the user's, master's or broker's name")
    p.add_argument("--role", required=True, choices=[r.value for r in Role])
    p.add_argument("--san", action="append", metavar="DNS_OR_IP", help="broker only: a name clients dial (repeat)")
    p.add_argument("--days", type=int, default=CERT_DAYS, help=f"validity (default {CERT_DAYS})")
    p.add_argument("--out", metavar="OUTDIR", help="where NAME.crt and NAME.key go (default DIR/issued)")
    p.add_argument("--force", action="store_true", help="issue again for a name that has one (revokes the old one)")
    p.set_defaults(func=cmd_issue)

    p = verb("revoke", "revoke NAME's certificate and rewrite the CRL")
    p.add_argument("name", metavar="NAME")
    p.set_defaults(func=cmd_revoke)

    p = verb("crl", "write the CRL again with a fresh next update")
    p.add_argument("--days", type=int, default=CRL_DAYS, help=f"until the next update (default {CRL_DAYS})")
    p.set_defaults(func=cmd_crl)

    p = verb("list", "list every identity issued")
    p.set_defaults(func=cmd_list)

    p = verb("acl", "write the Mosquitto ACL for every identity not revoked")
    p.add_argument("--out", metavar="FILE", help="default: standard output")
    p.set_defaults(func=cmd_acl)
