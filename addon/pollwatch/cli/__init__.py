"""The `pollwatch` command line: thin commands over the library, one module per command group
(`app` registers them all; the console script is `pollwatch.cli.app:main`)."""
