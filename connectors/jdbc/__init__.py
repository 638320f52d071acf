"""Relational tables pulled incrementally over JDBC (source kind ``jdbc``)."""
