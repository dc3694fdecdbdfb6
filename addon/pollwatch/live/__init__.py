"""The live job view: a small web app the proxy serves itself on a virtual host
(`http://pollwatch.localhost/` by default), listing jobs as their polls arrive.

`board` hands the tracker's latest job snapshots from the event loop to the view's thread,
`rows` shapes them like `pollwatch jobs/warnings --format json`, `reads` reads the database,
`data` joins both, `app` answers requests (JSON API and the page), `addon` serves it from inside
mitmproxy without ever blocking the event loop.
"""
