"""TLS with a CA and client certificates made here, and a username and password."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.agent import Agent
from edge_agent.clock import SimClock
from edge_agent.config.loader import load_site
from edge_agent.northbound.outbox import MemoryOutbox
from simulators.broker import MosquittoBroker
from simulators.modbus_server import ModbusSimulator
from simulators.ports import free_port
from tests.conftest import receive


def issue(
    folder: Path,
    name: str,
    *,
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for `name`, signed by `ca` (or self-signed as a CA), written as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca[0].subject if ca else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            False,
        )
    certificate = builder.sign(ca[1] if ca else key, hashes.SHA256())
    (folder / f"{name}.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}-key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate, key


@pytest.fixture
async def secure_broker(tmp_path: Path) -> AsyncIterator[tuple[MosquittoBroker, Path]]:
    pki = tmp_path / "mqtt-pki"
    pki.mkdir()
    ca = issue(pki, "ca")
    issue(pki, "broker", ca=ca)
    issue(pki, "gateway", ca=ca)
    made = await asyncio.create_subprocess_exec(
        "mosquitto_passwd", "-b", "-c", str(pki / "passwd"), "gw-press-shop", "s3cret-pw"
    )
    assert await made.wait() == 0
    broker = MosquittoBroker(
        free_port(),
        anonymous=False,
        extra_config=f"""
cafile {pki / "ca.pem"}
certfile {pki / "broker.pem"}
keyfile {pki / "broker-key.pem"}
require_certificate true
password_file {pki / "passwd"}
""",
    )
    await broker.start()
    yield broker, pki
    await broker.stop()


async def test_summaries_go_over_tls_with_a_client_certificate_and_a_password(
    tmp_path: Path,
    clock: SimClock,
    meter_server: ModbusSimulator,
    secure_broker: tuple[MosquittoBroker, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker, pki = secure_broker
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret-pw")
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
broker:
  host: 127.0.0.1
  port: {broker.port}
  protocol: "5"
  username: gw-press-shop
  password: ${{MQTT_PASSWORD}}
  tls: {{ca: {pki / "ca.pem"}, certificate: {pki / "gateway.pem"},
        private_key: {pki / "gateway-key.pem"}}}
summary: {{interval_s: 10}}
devices:
  - {{name: main-meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {meter_server.port}}}
""")
    agent = Agent(load_site(site), clock)
    tls = aiomqtt.TLSParameters(
        ca_certs=str(pki / "ca.pem"),
        certfile=str(pki / "gateway.pem"),
        keyfile=str(pki / "gateway-key.pem"),
    )
    stop = asyncio.Event()
    async with aiomqtt.Client(
        "127.0.0.1", broker.port, username="gw-press-shop", password="s3cret-pw", tls_params=tls
    ) as park:
        await park.subscribe("energy/v1/test-park/press-shop/#", qos=1)
        async with asyncio.TaskGroup() as group:
            group.create_task(agent.run(stop))
            await agent.started.wait()
            await clock.advance(25)
            async with asyncio.timeout(10):
                async for message in park.messages:
                    if str(message.topic).endswith("/summary"):
                        summary = json.loads(bytes(message.payload))
                        break
            stop.set()
    assert summary["seq"] == 1


async def test_a_wrong_password_or_an_unknown_ca_is_refused(
    tmp_path: Path, secure_broker: tuple[MosquittoBroker, Path]
) -> None:
    broker, pki = secure_broker
    tls = aiomqtt.TLSParameters(
        ca_certs=str(pki / "ca.pem"),
        certfile=str(pki / "gateway.pem"),
        keyfile=str(pki / "gateway-key.pem"),
    )
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="gw-press-shop", password="wrong", tls_params=tls
        ):
            pass
    other = tmp_path / "other"
    other.mkdir()
    issue(other, "ca")
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError)):
        async with aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            username="gw-press-shop",
            password="s3cret-pw",
            tls_params=aiomqtt.TLSParameters(ca_certs=str(other / "ca.pem")),
        ):
            pass


ACL = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "acl"


@pytest.fixture
async def park_broker(tmp_path: Path) -> AsyncIterator[MosquittoBroker]:
    """A broker with the ACL the project ships, and accounts for the park, this factory and
    another factory."""
    passwd = tmp_path / "passwd"
    for index, (user, password) in enumerate(
        (("park", "park-pw"), ("press-shop", "press-pw"), ("cold-store", "cold-pw"))
    ):
        flags = ["-b", "-c"] if index == 0 else ["-b"]
        made = await asyncio.create_subprocess_exec(
            "mosquitto_passwd", *flags, str(passwd), user, password
        )
        assert await made.wait() == 0
    broker = MosquittoBroker(
        free_port(),
        anonymous=False,
        extra_config=f"password_file {passwd}\nacl_file {ACL}\n",
    )
    await broker.start()
    yield broker
    await broker.stop()


async def test_only_the_parks_account_can_command_a_factory(
    tmp_path: Path,
    clock: SimClock,
    meter_server: ModbusSimulator,
    park_broker: MosquittoBroker,
) -> None:
    """Without the ACL this test fails: the other factory's command is answered first."""
    site = tmp_path / "site.yaml"
    site.write_text(f"""
site: {{name: press-shop, park: test-park}}
broker: {{host: 127.0.0.1, port: {park_broker.port}, username: press-shop, password: press-pw}}
devices:
  - {{name: main-meter, driver: modbus-tcp, model: eastron-sdm630, host: 127.0.0.1,
     port: {meter_server.port}}}
""")
    agent = Agent(load_site(site), clock, outbox=MemoryOutbox())
    base = "energy/v1/test-park/press-shop"

    def advisory(command_id: str) -> bytes:
        body = {"type": "advisory", "id": command_id, "site": "press-shop", "advisory": True}
        return json.dumps(body).encode()

    def client(user: str, password: str) -> aiomqtt.Client:
        return aiomqtt.Client("127.0.0.1", park_broker.port, username=user, password=password)

    stop = asyncio.Event()
    async with asyncio.TaskGroup() as group:
        group.create_task(agent.run(stop))
        async with asyncio.timeout(10):
            await agent.publisher.ready.wait()  # subscribed to its command topics
        async with client("park", "park-pw") as park, client("cold-store", "cold-pw") as other:
            await park.subscribe(f"{base}/command-responses", qos=1)
            # Another factory's gateway, and this factory's own account, try first.
            await other.publish(f"{base}/commands/advisory", advisory("from-cold-store"), qos=1)
            async with client("press-shop", "press-pw") as itself:
                await itself.publish(f"{base}/commands/advisory", advisory("from-itself"), qos=1)
            await park.publish(f"{base}/commands/advisory", advisory("from-park"), qos=1)
            [answer] = await receive(park, 1, timeout_s=10)
        stop.set()
    # The broker routes in the order it receives, and the refused ones were acknowledged
    # before the park's was sent: had either got through, its answer would have come first.
    assert answer["id"] == "from-park"
    assert answer["status"] == "accepted"
    assert agent.commands.inputs.advisory is True
    assert set(agent.commands._accepted) == {"from-park"}
