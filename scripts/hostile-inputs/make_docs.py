#!/usr/bin/env python3
"""Writes the worst inputs for the drain into a folder (argv[1])."""
import os, sys, zlib

def pdf(content_streams, pages_contents):
    """content_streams: list of compressed bytes; pages_contents: list of lists of stream indexes."""
    objs = []
    # 1 catalog, 2 pages, 3 font, then streams, then pages
    n_streams = len(content_streams)
    first_stream = 4
    first_page = first_stream + n_streams
    kids = " ".join(f"{first_page + i} 0 R" for i in range(len(pages_contents)))
    objs.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objs.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages_contents)} >>".encode())
    objs.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for data in content_streams:
        objs.append(f"<< /Length {len(data)} /Filter /FlateDecode >>\nstream\n".encode() + data + b"\nendstream")
    for refs in pages_contents:
        arr = " ".join(f"{first_stream + r} 0 R" for r in refs)
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents [{arr}] >>".encode())
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs)+1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs)+1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)

def deflate_repeated(unit, total):
    c = zlib.compressobj(6)
    block = unit * max(1, 65536 // len(unit))
    parts, written = [], 0
    while written < total:
        n = min(len(block), total - written)
        parts.append(c.compress(block[:n])); written += n
    parts.append(c.flush())
    return b"".join(parts)

MIB = 1024 * 1024
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
def write(name, data):
    with open(os.path.join(d, name), "wb") as f: f.write(data)
    print(name, len(data), "bytes")

# H2: one 256 MiB stream of zeros listed four times as a page's contents.
write("bomb.pdf", pdf([deflate_repeated(b"\0", 256 * MIB)], [[0, 0, 0, 0]]))
# Within the reader's page cap (4 MiB), but ~100x its size to parse.
write("hungry.pdf", pdf([deflate_repeated(b"0 0 m\n", 7 * MIB // 2)], [[0]]))
# Minutes of work: 2,000 pages drawing one 900 KiB content stream (under both page caps).
write("slow.pdf", pdf([deflate_repeated(b"0 0 m 1 1 l S\n", 900 * 1024)], [[0]] * 2000))
# 64 MiB bombs in 40 separate streams (each under the budget, together over).
write("many-bombs.pdf", pdf([deflate_repeated(b"\0", 16 * MIB)] * 40, [[i] for i in range(40)]))
# Text formats at the upload limit: deep lists, no whitespace.
write("lists.html", ("<ul><li>a" * 5000).encode())
write("nowhitespace.txt", b"x" * (1 * MIB))
# An ordinary document, so the run also indexes something.
write("ordinary.md", b"# Handbook\n\nThe office opens at nine.\n")
