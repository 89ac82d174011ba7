"""The conformance server: ``python clients/conformance/serve.py CONNECTION.json``.

Starts inferd.toml twice in this process, plaintext without auth and over TLS with two bearer
tokens (a CA and a certificate for ``localhost`` and 127.0.0.1 are made in a temporary
folder), holds the only slot of ``busy`` with one request so that every other one is refused,
then writes where to connect to CONNECTION.json (written whole, then renamed) and serves until
SIGTERM or SIGINT. Every language's runner reads that file (``INFERD_CONFORMANCE``)."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import signal
import sys
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HERE = Path(__file__).resolve().parent
TOKENS = {"all": "conformance-token-all", "wine-only": "conformance-token-wine"}


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "inferd-conformance-ca")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    paths[2].write_bytes(private)
    return paths


async def main(connection: Path) -> None:
    os.environ.setdefault("INFERD_METRICS_ADDRESS", "127.0.0.1:0")
    sys.path.insert(0, str(HERE))
    from conformance_models import Busy

    from inferd.client import AsyncClient
    from inferd.config import load_config
    from inferd.server.app import create_server

    folder = Path(tempfile.mkdtemp(prefix="inferd-conformance-"))
    ca, cert, key = certificates(folder)
    config = load_config(HERE / "inferd.toml")
    tokens = [{"name": "all", "token": TOKENS["all"]}, {"name": "wine-only", "token": TOKENS["wine-only"], "models": ["wine"]}]
    secure_config = config.with_server(tls={"cert": str(cert), "key": str(key)}, auth={"tokens": tokens})
    plain, secure = await create_server(config), await create_server(secure_config)
    address = f"127.0.0.1:{plain.port}"
    holder = AsyncClient(address, tls=False)
    held = asyncio.ensure_future(holder.infer("busy", {"hold": True}, timeout=None))
    await asyncio.get_running_loop().run_in_executor(None, Busy.entered.wait, 60)
    written = {
        "plain": address, "secure": f"127.0.0.1:{secure.port}", "ca": str(ca), "server_name": "localhost",
        "tokens": TOKENS, "max_message_bytes": config.server.max_message_bytes,
    }  # fmt: skip
    connection.with_suffix(".tmp").write_text(json.dumps(written, indent=2))
    connection.with_suffix(".tmp").rename(connection)
    print(f"conformance server: {address} (plaintext), {written['secure']} (TLS, tokens)", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    Busy.released.set()
    await asyncio.wait({held}, timeout=5)
    await holder.close()
    await asyncio.gather(plain.stop(grace=1), secure.stop(grace=1))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
