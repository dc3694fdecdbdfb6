"""pollwatch in a test suite: the pytest plugin (`plugin.py`, loaded through the `pytest11` entry
point), failure variants derived from one healthy recording (`variants.py`, `cases.py`), the
proxies the fixtures start (`proxy.py`), what makes a test fail (`verdict.py`) and the module
`pollwatch regress` writes (`regress.py`).

Nothing is imported here: pytest loads the plugin in every run of this environment, so the
package must cost nothing until a fixture is used.
"""
