"""Everything that touches mitmproxy at run time: the addon, flow -> observation, the `-s` script,
mitmdump command lines, and the few places where mitmproxy 11 and 12 differ."""
