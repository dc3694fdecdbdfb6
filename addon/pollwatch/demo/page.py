"""The sample API's browser page (``/`` and ``/ui/export``): a typical UI poller in JavaScript.

Kept out of api.py so the job API's Python reads without a page of HTML in the middle; the
browser tests load it in Chromium to watch fetch() poll through mitmproxy.
"""

__all__ = ["EXPORT_PAGE"]

EXPORT_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>pollwatch sample export</title>
</head>
<body>
<h1>Export</h1>
<p>Job <code id="job">-</code>: state <span id="state">starting</span>,
polls <span id="polls">0</span></p>
<script>
// Like a typical UI: create the job, then fetch() the status URL every 200 ms with the
// default cache mode until a terminal state (or 40 polls). body[data-done] marks the end.
// ?max_polls= and ?every= (ms) change the defaults, ?cache= the fetch cache mode (no-store: the
// fix for cacheable status responses); other parameters go to the create call.
(async () => {
  const page = new URLSearchParams(location.search);
  const fault = page.get('fault') || 'healthy';
  const maxPolls = Number(page.get('max_polls') || 40);
  const every = Number(page.get('every') || 200);
  const cacheMode = page.get('cache') || 'default';
  for (const name of ['fault', 'max_polls', 'every', 'cache']) page.delete(name);
  const extra = page.toString() ? '&' + page.toString() : '';
  const show = (id, text) => { document.getElementById(id).textContent = String(text); };
  const finish = () => { document.body.dataset.done = 'true'; };
  const created = await fetch('/api/exports?fault=' + encodeURIComponent(fault) + extra, {method: 'POST'});
  if (created.status !== 202) { show('state', 'error-' + created.status); finish(); return; }
  const statusUrl = new URL(created.headers.get('Location'), location.href);
  show('job', statusUrl.pathname);
  let polls = 0;
  while (polls < maxPolls) {
    const response = await fetch(statusUrl, {cache: cacheMode});
    polls += 1;
    show('polls', polls);
    if (response.status >= 400 && response.status < 500) {
      show('state', 'error-' + response.status);
      break;
    }
    if (response.ok) {
      const body = await response.json();
      show('state', body.status);
      if (body.status === 'succeeded' || body.status === 'failed') break;
    }
    await new Promise((resolve) => setTimeout(resolve, every));
  }
  finish();
})();
</script>
</body>
</html>
"""
