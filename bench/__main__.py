"""``python -m bench [NAME ...] [--n N]``: run the benchmarks (``make bench`` runs them all).

NAME is one of throughput, scale, signup, dkim (default: all four, in that order). Options after
the names go to each benchmark, e.g. ``python -m bench throughput --n 2000 --db sqlite``.
Each prints a table and saves JSON under bench/results/. Not part of the test suite.
"""

import sys

from bench import dkim, scale, signup, throughput

BENCHMARKS = {
    "throughput": throughput.main,
    "scale": scale.main,
    "signup": signup.main,
    "dkim": dkim.main,
}


def main(argv: list[str]) -> int:
    """Dispatch to the named benchmarks with the remaining options."""
    names = [arg for arg in argv if arg in BENCHMARKS]
    options = [arg for arg in argv if arg not in BENCHMARKS]
    for name in names or list(BENCHMARKS):
        print(f"== {name} ==", flush=True)
        BENCHMARKS[name](options)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
