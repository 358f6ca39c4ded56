#!/usr/bin/env python3
"""Reads the TRX files under a results folder and prints per-suite counts and the closing line
`N passed, N failed` (xunit v3 on Microsoft.Testing.Platform prints none CI can read)."""
import glob
import os
import sys
import xml.etree.ElementTree as ET

root = sys.argv[1] if len(sys.argv) > 1 else "TestResults"
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
passed = failed = skipped = 0
files = sorted(glob.glob(os.path.join(root, "**", "*.trx"), recursive=True))
for path in files:
    counters = ET.parse(path).getroot().find("t:ResultSummary/t:Counters", ns)
    if counters is None:
        continue
    p = int(counters.get("passed", 0))
    f = int(counters.get("failed", 0)) + int(counters.get("error", 0)) + int(counters.get("timeout", 0)) + int(counters.get("aborted", 0))
    s = int(counters.get("notExecuted", 0))
    passed, failed, skipped = passed + p, failed + f, skipped + s
    print(f"  {os.path.relpath(path, root)}: {p} passed, {f} failed, {s} skipped")
if not files:
    print("no test results found", file=sys.stderr)
    failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
