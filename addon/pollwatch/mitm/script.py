"""Loaded by `pollwatch run` as `mitmdump -s` script; same as addon/pollwatch_addon.py."""

from pollwatch.mitm.addon import PollWatch

addons = [PollWatch()]
