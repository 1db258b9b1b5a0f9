"""Northbound: payloads for the park, the outbox that keeps them, the MQTT publisher."""
