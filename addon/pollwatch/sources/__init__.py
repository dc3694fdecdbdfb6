"""Recordings in, observations out: one reader per recording format, and the offline analysis run
that feeds them through the same core as the live proxy."""
