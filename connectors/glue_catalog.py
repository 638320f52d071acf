"""The AWS Glue Data Catalog, where lake tables are registered for Athena and Spectrum."""

from __future__ import annotations

from typing import Any


def database_exists(glue: Any, name: str) -> bool:
    try:
        glue.get_database(Name=name)
        return True
    except glue.exceptions.EntityNotFoundException:
        return False


def ensure_database(glue: Any, name: str, description: str = "") -> bool:
    """Create the database if it does not exist; True if created."""
    if database_exists(glue, name):
        return False
    try:
        glue.create_database(DatabaseInput={"Name": name, "Description": description})
    except glue.exceptions.AlreadyExistsException:
        return False
    return True
