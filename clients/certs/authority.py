"""A certificate authority for muelle's mutual TLS, on the ``cryptography`` library.

Files use Docker's names so one directory serves muelle and the docker CLI alike
(``DOCKER_CERT_PATH``): ``ca.pem`` (the CA certificate), ``cert.pem`` and ``key.pem``.
A CA directory holds ``ca.pem`` and ``ca-key.pem``. Keys are ECDSA P-256 (fast to make,
supported by grpc, OpenSSL, Node and Go peers) and written 0600 from the start.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vocab.errors import FailedPrecondition, InvalidArgument, NotFound

CA_DAYS = 3650
CERT_DAYS = 365
# Issued a little in the past: a peer whose clock is slightly behind still accepts it.
CLOCK_SKEW = datetime.timedelta(minutes=5)
KINDS = ("server", "client", "both")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write via a temp file and rename (a reloading service never reads half a file),
    created with ``mode`` so a key is never readable by others, even for an instant."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def init_ca(directory: Path, name: str = "muelle CA", days: int = CA_DAYS,
            force: bool = False) -> Path:
    """A new self-signed CA in ``directory`` (ca.pem, ca-key.pem); returns ca.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "ca-key.pem").exists() and not force:
        raise FailedPrecondition(f"{directory} already holds a CA (ca-key.pem); "
                                 f"--force replaces it and invalidates what it signed")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(directory / "ca-key.pem", _key_pem(key), 0o600)
    _write(directory / "ca.pem", _cert_pem(cert), 0o644)
    return directory / "ca.pem"


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((ca_dir / "ca-key.pem").read_bytes(), None)
    except FileNotFoundError as exc:
        raise NotFound(f"no CA in {ca_dir}: {exc.filename} is missing "
                       f"(make one with `muelle-certs ca {ca_dir}`)") from None
    except ValueError as exc:
        raise InvalidArgument(f"{ca_dir}: not a PEM CA certificate and key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidArgument(f"{ca_dir}/ca-key.pem: not an EC key made by muelle-certs")
    return cert, key


def _alt_names(dns: Sequence[str], ips: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns)]
    for ip in dict.fromkeys(ips):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise InvalidArgument(f"--ip {ip!r} is not an IP address") from None
    return names


def issue(ca_dir: Path, out_dir: Path, name: str, dns: Sequence[str] = (),
          ips: Sequence[str] = (), kind: str = "both", days: int = CERT_DAYS,
          not_before: datetime.datetime | None = None) -> Path:
    """A certificate for identity ``name`` (its CN, also a DNS SAN) signed by the CA in
    ``ca_dir``, valid for ``dns`` names and ``ips`` as a server, and/or as a client.
    Writes ``out_dir``/cert.pem, key.pem (0600) and a copy of ca.pem; returns cert.pem.
    ``not_before`` (tests: an expired certificate) defaults to now."""
    if kind not in KINDS:
        raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not name or any(c in name for c in "/\\\n\0"):
        raise InvalidArgument(f"{name!r} is not an identity name")
    ca_cert, ca_key = _load_ca(ca_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or _now() - CLOCK_SKEW
    usages = {"server": [ExtendedKeyUsageOID.SERVER_AUTH],
              "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
              "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]}
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + datetime.timedelta(days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(usages[kind]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    alt = _alt_names([name, *dns] if _is_dns_name(name) else dns, ips)
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(out_dir / "key.pem", _key_pem(key), 0o600)
    _write(out_dir / "cert.pem", _cert_pem(cert), 0o644)
    _write(out_dir / "ca.pem", _cert_pem(ca_cert), 0o644)
    return out_dir / "cert.pem"


def _is_dns_name(name: str) -> bool:
    labels = name.split(".")
    return all(label and len(label) <= 63 and label.replace("-", "").isalnum()
               and label.isascii() for label in labels)


@dataclass(frozen=True)
class CertInfo:
    name: str
    dns: list[str]
    ips: list[str]
    kind: str
    not_before: datetime.datetime
    not_after: datetime.datetime


def describe(cert_path: Path) -> CertInfo:
    """What a certificate says: its identity, SANs, usages and validity."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError:
        raise NotFound(f"{cert_path} does not exist") from None
    except ValueError as exc:
        raise InvalidArgument(f"{cert_path}: not a PEM certificate: {exc}") from None
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns, ips = san.get_values_for_type(x509.DNSName), \
            [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = set(eku)
    except x509.ExtensionNotFound:
        usages = set()
    server = ExtendedKeyUsageOID.SERVER_AUTH in usages
    client = ExtendedKeyUsageOID.CLIENT_AUTH in usages
    return CertInfo(str(cn[0].value) if cn else "", list(dns), ips,
                    "both" if server and client else "server" if server else "client",
                    cert.not_valid_before_utc, cert.not_valid_after_utc)


def renew(ca_dir: Path, cert_dir: Path, days: int = CERT_DAYS) -> Path:
    """A new key and certificate in ``cert_dir`` with the identity, SANs and usage of the
    one there; services pick it up without a restart (they reload changed files)."""
    old = describe(cert_dir / "cert.pem")
    dns = [d for d in old.dns if d != old.name]
    return issue(ca_dir, cert_dir, old.name, dns, old.ips, old.kind, days)
