"""TLS for tests: a throwaway CA and a certificate for 127.0.0.1, and the local broker seen
through a TLS-terminating proxy (Tansu 0.6.0's own TLS cannot be turned on: its --cert
and --key options refuse each other), so clients speak SSL end to end to the proxy."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edml.local.broker import TansuBroker
from edml.local.processes import free_port
from tests.faults import proxy_to

__all__ = ["TlsBroker", "make_certificates", "tls_broker"]


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key), PEM, valid for a day."""
    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(minutes=5),
             "not_valid_after": now + datetime.timedelta(days=1)}
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edml test CA")])
    ca = (x509.CertificateBuilder(subject_name=ca_name, issuer_name=ca_name,
                                  public_key=ca_key.public_key(),
                                  serial_number=x509.random_serial_number(), **valid)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder(
        subject_name=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        issuer_name=ca_name, public_key=key.public_key(),
        serial_number=x509.random_serial_number(), **valid)
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(ca_key, hashes.SHA256()))
    paths = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass(frozen=True)
class TlsBroker:
    bootstrap: str
    ca: Path


@contextmanager
def tls_broker(workdir: Path) -> Iterator[TlsBroker]:
    ca, cert, key = make_certificates(workdir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    port = free_port()
    broker = TansuBroker.start(workdir, advertised_port=port)
    try:
        with proxy_to(broker.port, tls=context, listen=port):
            yield TlsBroker(f"127.0.0.1:{port}", ca)
    finally:
        broker.stop()
