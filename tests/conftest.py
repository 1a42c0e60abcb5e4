"""Every test run parses with a parse cache of its own (dsl/parsecache.py), never the user's."""
import os
import tempfile

os.environ["DPIPOLICY_CACHE"] = tempfile.mkdtemp(prefix="dpipolicy-test-cache-")
