"""dpipolicy: carrier traffic policies that are proved before they ship.

The pipeline is `dsl` (text to checked policy), `compiler` (policy to match-rule table) and
`verifier` (z3 proofs on the table); `api` ties them together and `cli` is the command line.
"""
__version__ = "0.1.0"
