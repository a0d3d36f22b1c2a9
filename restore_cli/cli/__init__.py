"""The ``restore`` command line: Typer commands over the library, and nothing else.

One module per command group (``tasks`` and ``run``, ``models``, ``eval``, ``train``,
``bench``), the options they share written once (``options``, ``engine_options``), plain
man-page help (``help``), how errors and progress are shown (``console``, ``progress``), the
app that ties them together (``app``) and the console script's launcher (``launcher``). It is
the only package that imports Typer or spells a ``--flag``: the library raises typed errors
that name settings by parameter, and the CLI turns them into one-line messages, flags and exit
codes. It may import every other package; none imports it.
"""
