"""Loaded by `pollwatch run` as `mitmdump -s` script; same as addon/pollwatch_addon.py.

The fix switch comes after the watcher, so the watcher sees the original responses; the live job
view comes last, so it copies what the watcher has just learnt."""

from pollwatch.live.addon import LiveView
from pollwatch.mitm.addon import PollWatch
from pollwatch.mitm.fix import FixSwitch

watch = PollWatch()
addons = [watch, FixSwitch(watch), LiveView(watch)]
