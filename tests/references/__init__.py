"""Plain, slow reference implementations that the fast code is checked against (by the tests) and
timed against (by ``benchmarks/``, which import them from here). Not part of the library."""
