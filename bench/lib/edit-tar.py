#!/usr/bin/env python3
"""Rewrites a layer tar as bench/big.mjs's v2: streams IN to OUT, appending a line to every 50th
regular file and overwriting three 4 KiB regions (at 10%, 50% and 90%) of the member named BIG.
Prints the number of members changed. Streaming (r|, w|): memory stays flat for any size but BIG,
which is edited in memory."""
import io
import sys
import tarfile

# End the archive after its two zero blocks, as `tar -b1` does (bench/big.mjs says why).
tarfile.RECORDSIZE = tarfile.BLOCKSIZE
source, target, big = sys.argv[1], sys.argv[2], sys.argv[3]
changed = 0
regular = 0
with tarfile.open(source, "r|") as tin, tarfile.open(target, "w|", format=tarfile.PAX_FORMAT) as tout:
    for member in tin:
        if not member.isreg():
            tout.addfile(member)
            continue
        data = tin.extractfile(member)
        if member.name == big:
            content = bytearray(data.read())
            for fraction in (0.1, 0.5, 0.9):
                at = int(len(content) * fraction)
                content[at : at + 4096] = bytes((at + i) % 251 for i in range(4096))
            changed += 1
        elif regular % 50 == 0:
            content = data.read() + b"\nskiff bench v2 edit\n"
            changed += 1
        else:
            tout.addfile(member, data)
            regular += 1
            continue
        regular += 1
        member.size = len(content)
        tout.addfile(member, io.BytesIO(bytes(content)))
print(changed)
