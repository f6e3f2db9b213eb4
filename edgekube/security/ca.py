"""The fleet's certificate authority: a CA key in a directory, client and broker certificates, revocation and CRL.

Layout of the CA directory (`edgekube ca init --dir DIR`): `ca.crt`, `ca.key` (0600), `index.json` (every identity
ever issued: name, role, serial, not_after, revoked), `crl.pem`, and `issued/NAME.crt` + `NAME.key` (0600). The
name is the certificate's CN, which Mosquitto takes as the MQTT username (`use_identity_as_username true`), so a
name is unique across roles; the role is recorded in the index and in the certificate's OU.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgekube.model.errors import ConflictError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.names import check_dns1123_subdomain
from edgekube.security.files import PUBLIC_MODE, SECRET_MODE, locked, write_atomic

CA_DAYS = 3650
CERT_DAYS = 825
#: The CRL's nextUpdate. Mosquitto (OpenSSL) refuses EVERY client certificate once the CRL has expired, so it must
#: be refreshed (`edgekube ca crl`) and the broker reloaded before then; a year leaves room for a yearly rollout.
CRL_DAYS = 365
#: How far back notBefore goes, so a node whose clock is a little behind accepts a fresh certificate.
CLOCK_SKEW = timedelta(minutes=5)
ORGANIZATION = "edgekube"


class Role(StrEnum):
    """What an identity may do on the bus (see edgekube.security.acl)."""

    NODE = "node"
    MASTER = "master"
    ADMIN = "admin"
    VIEWER = "viewer"
    BROKER = "broker"  # the broker's server certificate, not a client


@dataclass
class Identity:
    """One certificate issued by the CA, as index.json records it."""

    name: str
    role: str
    serial: str  # hexadecimal
    not_after: str  # ISO 8601, UTC
    revoked: bool = False
    revoked_at: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Identity:
        return cls(
            name=str(data["name"]),
            role=str(data["role"]),
            serial=str(data["serial"]),
            not_after=str(data["not_after"]),
            revoked=bool(data.get("revoked", False)),
            revoked_at=data.get("revoked_at"),
        )


@dataclass(frozen=True)
class Issued:
    """Where `issue` wrote the certificate and its key."""

    identity: Identity
    cert: Path
    key: Path


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: small, fast on a Pi, and what every TLS stack (OpenSSL in Mosquitto, Python's ssl) supports.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(pem, pkcs8, serialization.NoEncryption())


def _san(value: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        check_dns1123_subdomain(value.lower(), "--san")
    except ValidationError:
        raise ValidationError(f"--san {value!r}: neither an IP address nor a DNS name") from None
    return x509.DNSName(value.lower())


def check_days(days: int, what: str = "--days") -> int:
    if days < 1:
        raise ValidationError(f"{what} {days}: must be at least 1")
    return days


class CertificateAuthority:
    """The CA in `directory`; every method reads the files again (several `edgekube ca` runs may share it)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def cert_path(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def key_path(self) -> Path:
        return self.dir / "ca.key"

    @property
    def index_path(self) -> Path:
        return self.dir / "index.json"

    @property
    def crl_path(self) -> Path:
        return self.dir / "crl.pem"

    @property
    def issued_dir(self) -> Path:
        return self.dir / "issued"

    @property
    def initialised(self) -> bool:
        return self.cert_path.exists()

    # -- init -------------------------------------------------------------------------------------------
    def init(self, days: int = CA_DAYS) -> bool:
        """Create the CA; False (and nothing changed) when `directory` already holds one."""
        check_days(days)
        if self.initialised:
            return False
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with locked(self.dir):
            if self.initialised:
                return False
            key = _new_key()
            name = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.COMMON_NAME, "edgekube fleet CA"),
                ]
            )
            now = _now()
            ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW)
                .not_valid_after(now + timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256())
            )
            # Key first: a directory with ca.crt counts as initialised.
            write_atomic(self.key_path, _key_pem(key), SECRET_MODE)
            self._write_index([])
            self._write_crl(key, cert, [], CRL_DAYS)
            write_atomic(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
        return True

    # -- reading ----------------------------------------------------------------------------------------
    def _require(self) -> None:
        if not self.initialised:
            raise EdgekubeError(
                f"{self.dir}: no certificate authority here (no ca.crt)",
                hint=f"create it with `edgekube ca init --dir {self.dir}`",
            )

    def _load(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        self._require()
        try:
            key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
            cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise EdgekubeError(f"{self.dir}: cannot load the CA: {exc}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise EdgekubeError(f"{self.key_path}: not an EC key (was it made by `edgekube ca init`?)")
        return key, cert

    def identities(self) -> list[Identity]:
        """Every identity issued, oldest first (revoked ones too)."""
        self._require()
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
            return [Identity.from_json(item) for item in data["identities"]]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise EdgekubeError(f"{self.index_path}: cannot read the index: {exc}") from None

    def active(self) -> list[Identity]:
        """Identities not revoked, one per name (the newest)."""
        newest: dict[str, Identity] = {}
        for ident in self.identities():
            if not ident.revoked:
                newest[ident.name] = ident
        return list(newest.values())

    def _write_index(self, identities: list[Identity]) -> None:
        text = json.dumps({"identities": [asdict(i) for i in identities]}, indent=2) + "\n"
        write_atomic(self.index_path, text.encode(), PUBLIC_MODE)

    # -- issue ------------------------------------------------------------------------------------------
    def issue(
        self,
        name: str,
        role: Role,
        *,
        sans: list[str] | None = None,
        days: int = CERT_DAYS,
        out: Path | None = None,
        force: bool = False,
    ) -> Issued:
        """Issue NAME's certificate and key into `out` (default DIR/issued).

        `force` replaces (and revokes) one already issued to NAME; a name held by another role is always refused.
        """
        check_dns1123_subdomain(name, "node name" if role is Role.NODE else "name")
        check_days(days)
        alt_names = [_san(s) for s in sans or []]
        if sans and role is not Role.BROKER:
            raise ValidationError("--san: only the broker's certificate (--role broker) carries names")
        out = out if out is not None else self.issued_dir
        key_ca, cert_ca = self._load()
        with locked(self.dir):
            index = self.identities()
            held = [i for i in index if i.name == name and not i.revoked]
            for other in held:
                if other.role != role.value:
                    raise ConflictError(
                        f"{name!r} is already the {other.role} identity (serial {other.serial}): names are unique "
                        "across roles, since the broker takes the certificate's name as the MQTT username",
                        hint=f"pick another name, or revoke it first: `edgekube ca revoke {name} --dir {self.dir}`",
                    )
            if held and not force:
                raise ConflictError(
                    f"{name!r} already has a {role.value} certificate (serial {held[-1].serial}, "
                    f"valid until {held[-1].not_after})",
                    hint="use the files issued then, or --force to issue a new one (the old one is revoked)",
                )
            key = _new_key()
            now = _now()
            subject = x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role.value),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
            not_after = min(now + timedelta(days=days), cert_ca.not_valid_after_utc)
            usage = ExtendedKeyUsageOID.SERVER_AUTH if role is Role.BROKER else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(cert_ca.subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_SKEW)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key_ca.public_key()), critical=False)
            )
            if role is Role.BROKER:
                names = [x509.DNSName(name), *alt_names]
                builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            cert = builder.sign(key_ca, hashes.SHA256())
            identity = Identity(name=name, role=role.value, serial=f"{cert.serial_number:x}", not_after=_iso(not_after))
            out.mkdir(mode=0o700, parents=True, exist_ok=True)
            cert_path, key_path = out / f"{name}.crt", out / f"{name}.key"
            write_atomic(key_path, _key_pem(key), SECRET_MODE)
            write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
            for old in held:  # --force: the certificate it replaces must not keep working
                old.revoked, old.revoked_at = True, _iso(now)
            index.append(identity)
            self._write_index(index)
            if held:
                self._write_crl(key_ca, cert_ca, index, CRL_DAYS)
        return Issued(identity, cert_path, key_path)

    # -- revoke and CRL ---------------------------------------------------------------------------------
    def revoke(self, name: str) -> list[Identity]:
        """Revoke every certificate of NAME and rewrite the CRL; NotFoundError if NAME holds none."""
        key_ca, cert_ca = self._load()
        with locked(self.dir):
            index = self.identities()
            targets = [i for i in index if i.name == name and not i.revoked]
            if not targets:
                known = any(i.name == name for i in index)
                raise NotFoundError(
                    f"{name!r}: {'already revoked' if known else 'no certificate issued to this name'}",
                    hint=f"`edgekube ca list --dir {self.dir}` shows every identity",
                )
            for ident in targets:
                ident.revoked, ident.revoked_at = True, _iso(_now())
            self._write_index(index)
            self._write_crl(key_ca, cert_ca, index, CRL_DAYS)
        return targets

    def refresh_crl(self, days: int = CRL_DAYS) -> Path:
        """Write the CRL again with a fresh nextUpdate (`days` from now)."""
        check_days(days)
        key_ca, cert_ca = self._load()
        with locked(self.dir):
            self._write_crl(key_ca, cert_ca, self.identities(), days)
        return self.crl_path

    def _write_crl(
        self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate, index: list[Identity], days: int
    ) -> None:
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(cert.subject)
            .last_update(now - CLOCK_SKEW)
            .next_update(now + timedelta(days=days))
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1000)), critical=False)
        )
        for ident in index:
            if ident.revoked:
                when = datetime.strptime(ident.revoked_at or _iso(now), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(int(ident.serial, 16)).revocation_date(when).build()
                )
        crl = builder.sign(key, hashes.SHA256())
        write_atomic(self.crl_path, crl.public_bytes(serialization.Encoding.PEM), PUBLIC_MODE)
