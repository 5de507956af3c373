"""The Landscape workspace."""
