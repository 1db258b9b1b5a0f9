"""The one place the OPC UA driver touches asyncua: a session, secured and checked.

Trust is ours to decide: the server's certificate must be in the trusted folder (or, with
trust-on-first-use switched on, is put there the first time). An unknown certificate is
copied to the rejected folder and the connection refused, with the thumbprint to check.
"""

from __future__ import annotations

import hashlib
import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asyncua import Client, Node, ua
from asyncua.crypto import security_policies
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers.base import DeviceUnavailable
from edge_agent.clock import Clock

from .config import OpcUaDevice

__all__ = ["Sample", "Session", "UaStatusCodeError", "UntrustedServer"]

logging.getLogger("asyncua").setLevel(logging.CRITICAL)

_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_CURRENT_TIME = ua.NodeId(2258)  # Server.ServerStatus.CurrentTime


class UntrustedServer(DeviceUnavailable):
    """The server's certificate is not in the trust list; retried, so trusting it suffices."""


@dataclass(frozen=True, slots=True)
class Sample:
    value: Any
    good: bool
    status: str
    source_at: datetime | None


def thumbprint(der: bytes) -> str:
    return hashlib.sha1(der, usedforsecurity=False).hexdigest().upper()


class _Handler:
    """asyncua calls this with every data change of the subscription, and when the server
    says the subscription itself changed (timed out, deleted): then it is no longer fed."""

    def __init__(self, latest: dict[str, Sample]) -> None:
        self._latest = latest
        self.notifications = 0
        self.broken: str | None = None

    def status_change_notification(self, status: Any) -> None:
        self.broken = str(getattr(status, "Status", status))

    def datachange_notification(self, node: Node, value: Any, data: Any) -> None:
        self.notifications += 1
        self._latest[node.nodeid.to_string()] = _sample(data.monitored_item.Value)


def _sample(data_value: ua.DataValue) -> Sample:
    status = data_value.StatusCode or ua.StatusCode(ua.StatusCodes.Good)
    value = data_value.Value.Value if data_value.Value is not None else None
    stamp = data_value.SourceTimestamp or data_value.ServerTimestamp
    if stamp is not None and stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return Sample(value, status.is_good(), status.name, stamp)


class Session:
    def __init__(self, device: OpcUaDevice, clock: Clock) -> None:
        self._device = device
        self._clock = clock
        self._client: Client | None = None
        self.latest: dict[str, Sample] = {}
        self._handler = _Handler(self.latest)

    @property
    def notifications(self) -> int:
        return self._handler.notifications

    async def open(self) -> None:
        device = self._device
        client = Client(device.endpoint, timeout=device.timeout_s)
        client.application_uri = device.security.application_uri
        if device.username:
            client.set_user(device.username)
        if device.password:
            client.set_password(device.password)
        try:
            if device.security.policy != "None":
                await self._secure(client)
            await self._clock.wait_for(client.connect(), device.timeout_s * 2)
        except DeviceUnavailable:
            raise
        except (OSError, TimeoutError, UaError, ConnectionError) as exc:
            raise DeviceUnavailable(f"{device.endpoint}: {type(exc).__name__}: {exc}") from None
        self._client = client

    async def _secure(self, client: Client) -> None:
        security = self._device.security
        cert, key = await client.setup_self_signed_certificate(
            security.private_key,
            security.certificate,
            extended=[ExtendedKeyUsageOID.CLIENT_AUTH],
            host_name=socket.gethostname(),
        )
        endpoints = await self._clock.wait_for(
            client.connect_and_get_server_endpoints(), self._device.timeout_s * 2
        )
        policy = _POLICIES[security.policy]
        mode = _MODES[security.mode]
        try:
            endpoint = Client.find_endpoint(endpoints, mode, policy.URI)
        except UaError:
            offered = ", ".join(
                sorted(
                    {
                        f"{e.SecurityPolicyUri.rsplit('#', 1)[-1]} {e.SecurityMode.name}"
                        for e in endpoints
                    }
                )
            )
            raise DeviceUnavailable(
                f"{self._device.endpoint} offers no {security.policy} {security.mode} "
                f"endpoint; it offers: {offered}"
            ) from None
        der = bytes(endpoint.ServerCertificate)
        self._check_trust(der)
        await client.set_security(policy, cert, key, server_certificate=der, mode=mode)

    def _check_trust(self, der: bytes) -> None:
        security = self._device.security
        print_ = thumbprint(der)
        trusted = security.trusted
        for known in trusted.glob("*") if trusted.is_dir() else []:
            try:
                if thumbprint(_to_der(known.read_bytes())) == print_:
                    return
            except ValueError:
                continue
        subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        name = f"{self._device.name}-{print_[:16]}.der"
        if security.trust_on_first_use and not any(trusted.glob("*")):
            trusted.mkdir(parents=True, exist_ok=True)
            (trusted / name).write_bytes(der)
            logging.getLogger(__name__).warning(
                "%s: trusting the server certificate on first use: %s, SHA-1 %s",
                self._device.name,
                subject,
                print_,
            )
            return
        security.rejected.mkdir(parents=True, exist_ok=True)
        (security.rejected / name).write_bytes(der)
        raise UntrustedServer(
            f"{self._device.endpoint}: the server certificate ({subject}, SHA-1 {print_}) is "
            f"not trusted. If the thumbprint is the one the machine shows, move "
            f"{security.rejected / name} to {trusted}/; the agent connects at its next retry"
        )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await self._clock.wait_for(client.disconnect(), self._device.timeout_s)
            except Exception:  # a close must never raise; the server may be gone
                client.disconnect_socket()

    def _connected(self) -> Client:
        if self._client is None:
            raise DeviceUnavailable(f"{self._device.endpoint}: not connected")
        return self._client

    async def read(self, node_ids: Sequence[str]) -> list[Sample]:
        """One Read service call for all of them; each node's own status comes back."""
        client = self._connected()
        params = ua.ReadParameters()
        for node_id in node_ids:
            rv = ua.ReadValueId()
            rv.NodeId = ua.NodeId.from_string(node_id)
            rv.AttributeId = ua.AttributeIds.Value
            params.NodesToRead.append(rv)
        params.TimestampsToReturn = ua.TimestampsToReturn.Both
        results = await self._call(client.uaclient.read(params))
        return [_sample(dv) for dv in results]

    async def keepalive(self) -> None:
        """A cheap request: a session that cannot answer it is gone; and a subscription the
        server has given up on is as good as gone."""
        if self._handler.broken is not None:
            raise DeviceUnavailable(
                f"{self._device.endpoint}: the subscription ended: {self._handler.broken}"
            )
        await self.read([_CURRENT_TIME.to_string()])

    async def resolve(self, browse_path: str) -> str | None:
        """The node id at `browse_path` from the Root, or None when there is no such node."""
        client = self._connected()
        try:
            node = await self._call(client.nodes.root.get_child(browse_path.split("/")))
        except UaStatusCodeError:
            return None
        return str(node.nodeid.to_string())

    async def subscribe(
        self,
        node_ids: Sequence[str],
        interval_s: float,
        queue_size: int,
        deadbands: dict[str, tuple[float, int]],
    ) -> None:
        """`deadbands`: node id -> (value, type): type 1 absolute, 2 percent of EURange."""
        client = self._connected()
        subscription = await self._call(
            client.create_subscription(interval_s * 1000, self._handler)
        )
        plain = [n for n in node_ids if n not in deadbands]
        if plain:
            await self._call(
                subscription.subscribe_data_change(
                    [client.get_node(n) for n in plain], queuesize=queue_size
                )
            )
        for node_id, (deadband, kind) in deadbands.items():
            await self._call(
                subscription.deadband_monitor(
                    client.get_node(node_id), deadband, deadbandtype=kind, queuesize=queue_size
                )
            )

    async def write(self, node_id: str, value: float | bool) -> None:
        """Encode `value` as the node's own DataType, as servers require."""
        client = self._connected()
        node = client.get_node(node_id)
        variant_type = await self._call(node.read_data_type_as_variant_type())
        cast = (
            bool
            if variant_type is ua.VariantType.Boolean
            else (float if variant_type in (ua.VariantType.Float, ua.VariantType.Double) else int)
        )
        await self._call(node.write_value(ua.DataValue(ua.Variant(cast(value), variant_type))))

    async def call(self, object_id: str, method_id: str, value: float | bool) -> None:
        client = self._connected()
        method = ua.NodeId.from_string(method_id)  # a str would be taken as a browse name
        await self._call(client.get_node(object_id).call_method(method, value))

    async def _call(self, awaitable: Any) -> Any:
        try:
            return await self._clock.wait_for(awaitable, self._device.timeout_s)
        except UaStatusCodeError:
            raise
        except (OSError, TimeoutError, ConnectionError, UaError) as exc:
            raise DeviceUnavailable(
                f"{self._device.endpoint}: {type(exc).__name__}: {exc or 'no answer'}"
            ) from None


def _to_der(data: bytes) -> bytes:
    """A certificate file in the trust folder, DER or PEM, as DER."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    x509.load_der_x509_certificate(data)
    return data
