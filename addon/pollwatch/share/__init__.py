"""Sharing safely: what is never stored, secret detectors, consistent pseudonyms, sanitized copies
of recordings and the scan that checks them."""
