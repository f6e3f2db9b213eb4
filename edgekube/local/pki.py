"""The local cluster's PKI (`edgekube up --secure`, the tests): a CA, the broker's, master's, nodes' and users' files.

Everything under one directory (`.edgekube/pki`): `ca/` is an `edgekube ca` directory (ca.crt, ca.key, index.json,
crl.pem, issued/NAME.crt|key) and `acl` the broker's ACL, regenerated whenever an identity is added or revoked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekube.bus.tls import TlsFiles
from edgekube.local.broker import BrokerTls
from edgekube.security.acl import render
from edgekube.security.ca import CertificateAuthority, Role
from edgekube.security.files import PUBLIC_MODE, write_atomic

BROKER = "broker"
MASTER = "edgekube-master"
ADMIN = "admin"
#: What a local client dials: the broker's certificate names both.
BROKER_NAMES = ("127.0.0.1", "localhost")


@dataclass
class LocalPki:
    root: Path

    @property
    def ca(self) -> CertificateAuthority:
        return CertificateAuthority(self.root / "ca")

    @property
    def acl_path(self) -> Path:
        return self.root / "acl"

    def ensure(self, identities: dict[str, Role]) -> LocalPki:
        """Create the CA and the broker's certificate if missing, issue each identity that has none, write the ACL."""
        ca = self.ca
        ca.init()
        held = {i.name: i.role for i in ca.active()}
        wanted = {BROKER: Role.BROKER, **identities}
        for name, role in wanted.items():
            if name not in held:
                ca.issue(name, role, sans=list(BROKER_NAMES) if role is Role.BROKER else None)
        self.write_acl()
        return self

    def issue(self, name: str, role: Role, *, force: bool = False) -> TlsFiles:
        """One more identity (the ACL is written again); its client files."""
        self.ca.issue(name, role, force=force)
        self.write_acl()
        return self.files(name)

    def revoke(self, name: str) -> None:
        """Revoke NAME: the CRL and the ACL are written again (the broker needs a reload to read them)."""
        self.ca.revoke(name)
        self.write_acl()

    def write_acl(self) -> Path:
        write_atomic(self.acl_path, render(self.ca.active()).encode(), PUBLIC_MODE)
        return self.acl_path

    def files(self, name: str) -> TlsFiles:
        """The CA, certificate and key files a client named NAME connects with."""
        ca = self.ca
        return TlsFiles(str(ca.cert_path), str(ca.issued_dir / f"{name}.crt"), str(ca.issued_dir / f"{name}.key"))

    def broker_tls(self) -> BrokerTls:
        ca = self.ca
        return BrokerTls(
            ca=ca.cert_path,
            cert=ca.issued_dir / f"{BROKER}.crt",
            key=ca.issued_dir / f"{BROKER}.key",
            crl=ca.crl_path,
            acl=self.acl_path,
        )
