"""Write a flows CSV (the columns `dpipolicy profile build --flows` reads) from an engine's own
output: ndpiReader result files (`ndpiReader -i CAPTURE -w CAPTURE.out -v 2`), or the captures
themselves read by nfstream (the nDPI it bundles).

    python tools/flows_csv.py --release debian-4.2 out/*.out > flows.csv
    python tools/flows_csv.py --release nfstream-6.6.0/nDPI-5.0.0 --nfstream captures/*.pcap > flows.csv

The project's own evidence files (profiles/evidence/) were written this way.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import sys
from pathlib import Path

from dpipolicy.dsl.flowcsv import REQUIRED_COLUMNS, read_flows

COLUMNS = ("version", *REQUIRED_COLUMNS, "pcap_blob")
# nDPI's ndpi_confidence_t (4.10 and later, so 5.0), as nfstream reports it, in ndpiReader's words.
CONFIDENCE = {0: "Unknown", 1: "Match by port", 2: "NBPF", 3: "DPI (partial)", 4: "DPI (partial cache)",
              5: "DPI (cache)", 6: "DPI", 7: "Match by IP", 8: "DPI (aggressive)", 9: "Match by custom rule"}


def git_blob(path: Path) -> str:
    """The capture's content as git names it, so runs of one file can be told from another's."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def from_results(paths: list[Path], release: str):
    for path in paths:
        for f in read_flows(path, release):
            yield (release, f.capture, f.proto_text, f.a[0], f.a[1], f.b[0], f.b[1], f.label or "Unknown",
                   f.confidence, "")


def from_nfstream(paths: list[Path], release: str):
    from nfstream import NFStreamer
    for path in paths:
        blob = git_blob(path)
        for row in NFStreamer(source=str(path)).to_pandas().itertuples():
            proto = {6: "TCP", 17: "UDP"}.get(row.protocol, str(row.protocol))
            yield (release, path.name, proto, row.src_ip, row.src_port, row.dst_ip, row.dst_port,
                   row.application_name or "Unknown", CONFIDENCE.get(row.application_confidence, "Unknown"), blob)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--release", required=True, help="the engine release, written in the `version` column")
    parser.add_argument("--nfstream", action="store_true", help="the files are captures: read them with nfstream")
    args = parser.parse_args()
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(COLUMNS)
    rows = (from_nfstream if args.nfstream else from_results)(args.files, args.release)
    out.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
