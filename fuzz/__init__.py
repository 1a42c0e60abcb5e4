"""The fuzz harness (docs/reliability.md): random and mutated inputs through the real command line.

Promise checked on every input: no traceback, no exit code 4 (or any code outside 0-3), no
hang (a per-input time bound), every error located, and well-formed output in the format
asked for. `python -m fuzz --inputs N --seed S --jobs J` runs it; tests/test_fuzz.py runs a
bounded slice in CI.

Modules, one concern each: `corpus` (the shipped and test files to start from), `generate`
(policies and specs drawn from the grammar), `mutate` (byte, token and structure mutations),
`inputs` (input number -> files and a command line, deterministically), `oracle` (running one
input in-process and judging the promise), `pool` (worker processes and the time bound),
`__main__` (the command line, the table and the JSON record).
"""
