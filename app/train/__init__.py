"""The Train workspace."""
