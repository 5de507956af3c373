"""The Race workspace."""
