"""kafka-python's settings come from the same kafka block as Spark's Kafka source."""

from __future__ import annotations

import pytest

from connectors.kafka.client import client_config
from streamlake.config.settings import KafkaSettings
from streamlake.errors import ConfigError

SCRAM_JAAS = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="ingest" password="p@ss \\"quoted\\"";'
)


def test_plaintext_needs_only_the_servers() -> None:
    kafka = KafkaSettings(bootstrap_servers="b1:9092,b2:9092")
    assert client_config(kafka) == {
        "bootstrap_servers": "b1:9092,b2:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_scram_credentials_come_from_the_jaas_line() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b:9096",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        options={"sasl.jaas.config": SCRAM_JAAS, "ssl.truststore.location": "/etc/ca.pem"},
    )
    config = client_config(kafka)
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "ingest",
        'p@ss "quoted"',
    )
    assert config["ssl_cafile"] == "/etc/ca.pem"


def test_msk_iam_needs_no_password() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b:9098", security_protocol="SASL_SSL", sasl_mechanism="AWS_MSK_IAM"
    )
    config = client_config(kafka)
    assert config["sasl_mechanism"] == "AWS_MSK_IAM"
    assert "sasl_plain_password" not in config and "ssl_cafile" not in config


def test_plain_without_credentials_names_the_key() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b:9092", security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN"
    )
    with pytest.raises(ConfigError) as caught:
        client_config(kafka)
    assert caught.value.key == "kafka.options.sasl.jaas.config"
