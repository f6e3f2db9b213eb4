"""TLS for the MQTT client: the CA, certificate and key files checked into an SSLContext, and readable failures.

Every problem becomes one BusError line with a hint, naming the file and never its contents. A key file that
other users can read is refused (group-readable is allowed, for a service account's group): a key anyone on the
machine can copy is no identity.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass

from edgekube.model.errors import BusError

CA_HINT = "use the fleet's ca.crt (`edgekube ca init --dir DIR` made it)"
CERT_HINT = "issue one with `edgekube ca issue NAME --role ROLE --dir DIR`"


@dataclass(frozen=True)
class TlsFiles:
    """PEM files: the CA that signed the broker's certificate; this client's certificate and key. Empty: unused."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca or self.cert or self.key)

    def context(self) -> ssl.SSLContext:
        """A client SSLContext that verifies the broker (name included) and presents this client's certificate."""
        if not self.ca:
            raise BusError("TLS: a client certificate or key was given without the CA file", hint=f"{CA_HINT}")
        if bool(self.cert) != bool(self.key):
            given, missing = ("certificate", "key") if self.cert else ("key", "certificate")
            raise BusError(f"TLS: a client {given} was given without its {missing}", hint="give both, or neither")
        _readable(self.ca, "CA file", CA_HINT)
        try:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca)
            context.check_hostname = True  # the broker's certificate must name the host dialled (PahoBus relies on it)
        except ssl.SSLError as exc:
            raise BusError(f"TLS CA file {self.ca}: not a PEM certificate ({_why(exc)})", hint=CA_HINT) from None
        if self.cert:
            _readable(self.cert, "certificate", CERT_HINT)
            _readable(self.key, "key", CERT_HINT)
            _private(self.key)
            try:
                context.load_cert_chain(self.cert, self.key)
            except ssl.SSLError as exc:
                if "KEY_VALUES_MISMATCH" in str(exc) or "key values mismatch" in str(exc):
                    raise BusError(
                        f"TLS key {self.key} does not belong to the certificate {self.cert}",
                        hint="use the NAME.key issued together with NAME.crt",
                    ) from None
                raise BusError(
                    f"TLS certificate {self.cert} or key {self.key}: cannot be loaded ({_why(exc)})", hint=CERT_HINT
                ) from None
        return context


def _readable(path: str, what: str, hint: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        raise BusError(f"TLS {what} {path}: no such file", hint=hint) from None
    except IsADirectoryError:
        raise BusError(f"TLS {what} {path}: is a directory, not a PEM file", hint=hint) from None
    except PermissionError:
        raise BusError(
            f"TLS {what} {path}: not readable by this user (uid {os.geteuid()})",
            hint="run as the file's owner or give the service's group read access (chmod 640, chgrp)",
        ) from None


def _private(path: str) -> None:
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o007:
        raise BusError(
            f"TLS key {path}: other users can read or write it (mode {mode:04o}); refusing to use it",
            hint=f"chmod 600 {path} (or 640 with a group of the service's own)",
        )


def _why(exc: ssl.SSLError) -> str:
    return str(exc.reason or exc.strerror or exc).lower().replace("_", " ")


def explain(exc: BaseException, *, tls: bool) -> tuple[str, str]:
    """(what happened, hint) for an error raised while connecting, in words an operator can act on."""
    if tls and isinstance(exc, ConnectionResetError):
        return (
            "the broker reset the connection during the TLS handshake",
            "this port may speak plain MQTT: drop --tls-ca/--tls-cert/--tls-key or use the broker's TLS port",
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the broker's certificate is not trusted: {exc.verify_message}",
            "is --tls-ca the fleet's ca.crt, and does the broker's certificate name the host dialled "
            "(`edgekube ca issue broker --role broker --san HOST`)?",
        )
    if isinstance(exc, ssl.SSLError):
        why = _why(exc)
        if "wrong version number" in why or "record layer failure" in why:
            return (
                f"TLS handshake failed ({why})",
                "this port speaks plain MQTT: drop --tls-ca/--tls-cert/--tls-key or use the broker's TLS port",
            )
        if "alert" in why or "certificate" in why:
            return (
                f"the broker refused this client's certificate ({why})",
                "is it issued by the broker's CA, unexpired and not revoked (`edgekube ca list --dir DIR`)?",
            )
        return f"TLS handshake failed ({why})", "check --tls-ca/--tls-cert/--tls-key and the broker's log"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused", "is the broker running, and is this its port?"
    if isinstance(exc, OSError):
        return (exc.strerror or str(exc) or type(exc).__name__), "is the broker running and reachable?"
    return str(exc) or type(exc).__name__, ""
