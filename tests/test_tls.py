"""TLS and mutual TLS through real servers, with certificates made here: a client that trusts
the server's CA is served; a plaintext client, one that trusts other CAs, and (under mutual
TLS) one without a certificate the server's client CA signed are refused."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import RunningServer, service_config
from tls_certificates import Authority, Issued

from inferd import TLS, Client, ConfigError, InferdError, Unavailable
from inferd.config import ModelConfig, TLSConfig, load_config
from inferd.server.app import server_credentials


@dataclass
class Certificates:
    ca: Authority
    other_ca: Authority
    server: Issued
    client: Issued
    stranger: Issued  # a client certificate the server's client CA did not sign


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("certificates")
    ca, other = Authority(folder, "inferd-test-ca"), Authority(folder, "other-ca")
    return Certificates(
        ca=ca,
        other_ca=other,
        server=ca.issue("inferd.test", server=True),
        client=ca.issue("client", server=False),
        stranger=other.issue("stranger", server=False),
    )


def _server(certificates: Certificates, *, mutual: bool) -> RunningServer:
    tls = TLSConfig(
        cert=str(certificates.server.cert),
        key=str(certificates.server.key),
        client_ca=str(certificates.ca.cert) if mutual else None,
    )
    config = service_config().model_copy(update={"models": {"echo": ModelConfig.model_validate({"workflow": "echo"})}})
    return RunningServer(config.with_server(tls=tls))


@pytest.fixture(scope="module")
def tls_server(certificates: Certificates) -> Iterator[RunningServer]:
    running = _server(certificates, mutual=False)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def mtls_server(certificates: Certificates) -> Iterator[RunningServer]:
    running = _server(certificates, mutual=True)
    yield running
    running.stop()


def test_a_client_that_trusts_the_servers_ca_is_served(tls_server: RunningServer, certificates: Certificates) -> None:
    with Client(tls_server.address, tls=TLS(ca=certificates.ca.cert), timeout=30) as client:
        assert client.infer("echo", "over TLS").output == "over TLS"
        assert client.health() == "SERVING"
    # The certificate names inferd.test too: reached by address, checked against that name.
    tls = TLS(ca=certificates.ca.cert.read_bytes(), server_name="inferd.test")
    with Client(tls_server.address, tls=tls, timeout=30) as client:
        assert client.infer("echo", "by name").output == "by name"


@pytest.mark.parametrize("who", ["plaintext", "other CA", "wrong name"])
def test_clients_that_cannot_verify_are_refused(tls_server: RunningServer, certificates: Certificates, who: str) -> None:
    tls: TLS | bool = {
        "plaintext": False,
        "other CA": TLS(ca=certificates.other_ca.cert),
        "wrong name": TLS(ca=certificates.ca.cert, server_name="elsewhere.test"),
    }[who]
    with Client(tls_server.address, tls=tls, timeout=10) as client, pytest.raises(Unavailable):
        client.infer("echo", "x")


def test_mutual_tls_serves_only_clients_with_a_certificate_of_its_ca(
    mtls_server: RunningServer, certificates: Certificates
) -> None:
    client_tls = TLS(ca=certificates.ca.cert, cert=certificates.client.cert, key=certificates.client.key)
    with Client(mtls_server.address, tls=client_tls, timeout=30) as client:
        assert client.infer("echo", "mutual").output == "mutual"
    stranger = TLS(ca=certificates.ca.cert, cert=certificates.stranger.cert, key=certificates.stranger.key)
    for tls in (TLS(ca=certificates.ca.cert), stranger):
        with Client(mtls_server.address, tls=tls, timeout=10) as client, pytest.raises(InferdError) as error:
            client.infer("echo", "x")
        assert error.value.details["status"] == "UNAVAILABLE"


def test_the_environment_configures_tls_for_the_cli_and_the_healthcheck(
    tls_server: RunningServer, certificates: Certificates
) -> None:
    environment = {"INFERD_ADDRESS": tls_server.address, "INFERD_TLS_CA": str(certificates.ca.cert), "PATH": ""}
    checked = subprocess.run(
        [sys.executable, "-m", "inferd.healthcheck"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert (checked.returncode, checked.stdout.strip()) == (0, "SERVING"), checked.stderr
    called = subprocess.run(
        [sys.executable, "-m", "inferd", "infer", "echo", "--text", "hi", "--tls-ca", str(certificates.ca.cert),
         "--address", tls_server.address, "--timeout", "30"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (called.returncode, called.stdout.strip()) == (0, "hi"), called.stderr
    for flags in (["--tls-cert", str(certificates.client.cert)], ["--tls-ca", "/no/such/ca.pem"]):
        refused = subprocess.run(
            [sys.executable, "-m", "inferd", "models", "--address", tls_server.address, *flags],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert refused.returncode == 1 and refused.stderr.startswith("inferd: INVALID_ARGUMENT: TLS settings:"), refused.stderr
        assert "Traceback" not in refused.stderr
    assert TLS.from_environment({}) is None
    assert TLS.from_environment({"INFERD_TLS": "1"}) == TLS()
    assert TLS.from_environment({"INFERD_TLS_SERVER_NAME": "a.test"}) == TLS(server_name="a.test")


def test_tls_configuration_from_the_file_and_the_environment(tmp_path: Path, certificates: Certificates) -> None:
    path = tmp_path / "inferd.toml"
    path.write_text('[server.tls]\ncert = "server.pem"\nkey = "server.key"\n')
    config = load_config(path, environ={})
    assert config.server.tls == TLSConfig(cert="server.pem", key="server.key")
    with pytest.raises(ConfigError) as error:  # relative to the file, which has no such files
        server_credentials(config)
    assert str(error.value).startswith("[server.tls] key: cannot read server.key")
    overridden = load_config(path, environ={"INFERD_TLS_CERT": str(certificates.server.cert),
                                            "INFERD_TLS_KEY": str(certificates.server.key)})  # fmt: skip
    assert overridden.server.tls is not None and overridden.server.tls.cert == str(certificates.server.cert)
    assert server_credentials(overridden) is not None
    path.write_text('[server.tls]\ncert = "server.pem"\n')
    with pytest.raises(ConfigError) as error:
        load_config(path, environ={})
    assert "server.tls.key" in str(error.value)


def test_a_key_or_certificate_that_does_not_load_is_a_config_error(tmp_path: Path, certificates: Certificates) -> None:
    """Said at start, naming the files, not as grpc's 'Failed to bind' on the port."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cert, key, ca = (str(path) for path in (certificates.server.cert, certificates.server.key, certificates.ca.cert))
    cases = [
        (TLSConfig(cert=cert, key=str(certificates.client.key)), "do not load as a PEM certificate chain and its private key"),
        (TLSConfig(cert=str(garbage), key=key), "do not load as a PEM certificate chain and its private key"),
        (TLSConfig(cert=cert, key=key, client_ca=str(garbage)), "client_ca"),
    ]
    for tls, words in cases:
        with pytest.raises(ConfigError) as error:
            server_credentials(service_config().with_server(tls=tls))
        assert str(error.value).startswith("[server.tls]") and words in str(error.value)
    assert server_credentials(service_config().with_server(tls=TLSConfig(cert=cert, key=key, client_ca=ca))) is not None
