"""`ekctl dashboard [--viewer]`: print a one-time login URL for the master's live dashboard (docs/dashboard.md).

The master issues the token; which role it grants is proven by the broker's ACL: asked on `api/request` (only
admins may write there) it is an admin's, on the read-only `api/read` a viewer's. An identity whose certificate
says `viewer` (its OU, edgekube ca) asks as a viewer by itself.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from edgekube.cli import config
from edgekube.cli.context import Context

#: Hosts a master binds to that a browser cannot dial: the URL names the broker's host instead.
_ANY = ("0.0.0.0", "::", "")


def certificate_role(cert: str) -> str:
    """The role edgekube ca wrote in the certificate's OU ("" without TLS or when unreadable)."""
    if not cert:
        return ""
    try:
        loaded = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    except (OSError, ValueError):
        return ""
    units = loaded.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return str(units[0].value) if units else ""


def run(ctx: Context) -> int:
    tls = {key: getattr(ctx.args, key, None) for key in config.ENV_TLS}
    connection = config.resolve(
        ctx.args.mqtt_host,
        ctx.args.mqtt_port,
        os.environ,
        Path.cwd(),
        tls=tls,
        brokers=getattr(ctx.args, "broker", None),
    )
    viewer = bool(ctx.args.viewer) or certificate_role(connection.tls_cert) == "viewer"
    login = ctx.client().dashboard_login(admin=not viewer)
    host = str(login.get("host") or "")
    if host in _ANY:
        host = connection.host
    if ":" in host:
        host = f"[{host}]"
    url = f"{login.get('scheme', 'http')}://{host}:{login.get('port')}{login.get('path', '/')}"
    ctx.out.write(f"{url}\n")
    role = login.get("role", "viewer")
    ctx.err.write(f"open it within a minute; it works once and logs this browser in as {role} for 12 hours\n")
    return 0
