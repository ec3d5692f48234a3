"""The ``normbench`` command line (:mod:`.main`): one sub-command per stage, each a thin layer over the wings.

``normbench --help`` imports no torch; a command imports what it needs when it runs. ``python -m normbench.cli``
is the same program.
"""
