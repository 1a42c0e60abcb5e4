#!/bin/sh
# Rebuild the shipped nDPI engine profiles (dsl/data/profiles/) from their evidence: nDPI's
# regression suite (../shared/fixtures/ndpi-suite, see its README) and the project's fixtures
# (profiles/evidence/, made by tools/flows_csv.py), judged by the truth files of
# profiles/truth/. Run from the root of the repository; tests/test_suite_profiles.py checks
# that the shipped files are what these commands write. docs/profiles.md, "Building a profile".
set -e
suite=../shared/fixtures/ndpi-suite/flows
truth="--truth profiles/truth/ndpi-suite.yaml --truth profiles/truth/fixtures.yaml"
dpipolicy profile build profiles/base/ndpi-4.2.yaml $truth --flows $suite/4.2.csv --flows $suite/debian-4.2-on-dev-pcaps.csv --flows profiles/evidence/fixtures-debian-4.2.csv -o dsl/data/profiles/ndpi-4.2.yaml
dpipolicy profile build profiles/base/ndpi-4.4.yaml $truth --flows $suite/4.4.csv -o dsl/data/profiles/ndpi-4.4.yaml
dpipolicy profile build profiles/base/ndpi-4.6.yaml $truth --flows $suite/4.6.csv -o dsl/data/profiles/ndpi-4.6.yaml
dpipolicy profile build profiles/base/ndpi-4.8.yaml $truth --flows $suite/4.8.csv -o dsl/data/profiles/ndpi-4.8.yaml
dpipolicy profile build profiles/base/ndpi-4.10.yaml $truth --flows $suite/4.10.csv -o dsl/data/profiles/ndpi-4.10.yaml
dpipolicy profile build profiles/base/ndpi-5.0.yaml $truth --flows $suite/nfstream-5.0.csv --flows $suite/nfstream-5.0-on-4.2-pcaps.csv --flows profiles/evidence/fixtures-nfstream-5.0.csv -o dsl/data/profiles/ndpi-5.0.yaml
