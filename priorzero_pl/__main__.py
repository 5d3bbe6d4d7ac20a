"""``python -m priorzero_pl`` is the ``priorzero`` command."""

from priorzero_pl.cli import main

main()
