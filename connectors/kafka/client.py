"""kafka-python client settings from the environment's ``kafka`` block, so that topic
administration, producers and health probes connect the way Spark's Kafka source does:
plaintext, TLS, SASL/PLAIN, SASL/SCRAM or MSK IAM."""

from __future__ import annotations

import re
from typing import Any

from streamlake.config.settings import KafkaSettings, require_bootstrap
from streamlake.errors import ConfigError

_JAAS_VALUE = r'{}\s*=\s*"((?:[^"\\]|\\.)*)"'


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for kafka-python's clients (admin, producer, consumer)."""
    config: dict[str, Any] = {
        "bootstrap_servers": require_bootstrap(kafka),
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        config["sasl_mechanism"] = kafka.sasl_mechanism
    if kafka.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        username, password = jaas_credentials(kafka.options.get("sasl.jaas.config", ""))
        config["sasl_plain_username"] = username
        config["sasl_plain_password"] = password
    truststore = kafka.options.get("ssl.truststore.location", "")
    if kafka.security_protocol in ("SSL", "SASL_SSL") and truststore.endswith(".pem"):
        # kafka-python reads PEM only; a JKS truststore is for the JVM, and the system's
        # CAs (which trust MSK's certificates) serve the Python clients.
        config["ssl_cafile"] = truststore
    return config


def jaas_credentials(jaas: str) -> tuple[str, str]:
    """username and password from a PlainLoginModule or ScramLoginModule JAAS line."""
    found = [re.search(_JAAS_VALUE.format(key), jaas) for key in ("username", "password")]
    if not all(found):
        raise ConfigError(
            "SASL PLAIN and SCRAM need a sasl.jaas.config with username and password",
            "e.g. org.apache.kafka.common.security.plain.PlainLoginModule required "
            'username="..." password="${env:KAFKA_PASSWORD}";',
            key="kafka.options.sasl.jaas.config",
        )
    return tuple(m.group(1).replace('\\"', '"') for m in found if m)  # type: ignore[return-value]
