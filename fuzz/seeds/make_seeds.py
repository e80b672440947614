#!/usr/bin/env python3
"""Writes the hand-made seed inputs into fuzz/corpus/<target>/seed-*.

The corpus kept in the repository is these seeds plus what the fuzzer found
and `cargo fuzz cmin` kept; run this once to recreate the seeds (it never
removes other files). Sources: the repository's own fixtures and documents
(crates/knowledge/tests/fixtures, documents/), the shapes the API tests
send, and small hostile files like the ones issue 14 reported.
"""
import os
import struct
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(ROOT)


def put(target, name, data):
    d = os.path.join(ROOT, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def read(path):
    with open(os.path.join(REPO, path), "rb") as f:
        return f.read()


# --- router: HTTP-like requests, "=====" between requests of one input ---
SEP = "\n=====\n"


def req(line, headers=(), body=""):
    head = line + "\n" + "".join(h + "\n" for h in headers)
    return head + "\n" + body


S = "authorization: Bearer $SESSION"
O = "authorization: Bearer $OTHER"
A = "authorization: Bearer $ADMIN"
J = "content-type: application/json"


def multipart(name, content, field="file", boundary="BOUNDARY"):
    return (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{name}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n{content}\r\n--{boundary}--\r\n"
    )


MP = "content-type: multipart/form-data; boundary=BOUNDARY"
router = {
    "ping": req("GET /api/health/ping"),
    "ready": req("GET /api/health/ready", ["x-client-ip: 2001:db8::1"]),
    "openapi": req("HEAD /api/openapi.json"),
    "session": req("POST /api/session", [J], '{"nickname":"ana"}'),
    "session-bad": req("POST /api/session", [J], '{"nickname":"<script>","x":1}'),
    "preflight": req(
        "OPTIONS /api/chat",
        ["origin: https://app.example", "access-control-request-method: POST"],
    ),
    "chat-follow": SEP.join(
        [
            req("POST /api/chat", [J, S, "x-request-id: abc-123"], '{"message":"What is the vacation policy?"}'),
            req("GET /api/chat/$JOB?wait=2", [S]),
            req("GET /api/chat/$JOB/events", [S, "last-event-id: 3"]),
            req("GET /api/chat/$JOB", [O]),
        ]
    ),
    "conversation-delete": SEP.join(
        [
            req("POST /api/chat", [J, S], '{"message":"first"}'),
            req("GET /api/conversations", [S]),
            req("DELETE /api/conversations/$CONV", [S]),
            req("GET /api/chat/$JOB/events", [S]),
        ]
    ),
    "chat-conversation": SEP.join(
        [
            req("POST /api/chat", [J, S], '{"message":"first"}'),
            req("GET /api/conversations/$CONV", [S]),
            req("POST /api/chat", [J, S], '{"message":"second","conversation_id":"$CONV"}'),
            req("DELETE /api/conversations/$CONV", [O]),
        ]
    ),
    "completions": req("POST /api/chat/completions", [J], '{"message":"hi","nickname":"bia"}'),
    "conversations": req("GET /api/conversations/", [S, "origin: https://evil.example"]),
    "documents": SEP.join(
        [
            req("POST /api/documents", [S, MP], multipart("notes.md", "# Notes\n\nVacation is 30 days.")),
            req("GET /api/documents/$DOC", [S]),
            req("GET /api/documents", [O]),
            req("DELETE /api/documents/$DOC", [S]),
        ]
    ),
    "upload-admin": req("POST /api/documents/upload", [A, MP], multipart("page.html", "<p>shared</p>")),
    "ingest": req("POST /api/documents/ingest", [A]),
    "expired": req("GET /api/conversations", ["authorization: Bearer $EXPIRED"]),
    "forged": req("GET /api/documents", ["authorization: Bearer eyJzaWQiOiJ4In0.AAAA"]),
    "wrong-method": req("PATCH /api/chat/abc", [S]),
    "not-found": req("GET /api/../../etc/passwd?x=%00"),
    "bad-json": req("POST /api/chat", [J, S], '{"message": "unterminated'),
    "wrong-type": req("POST /api/chat", [J, S], '{"message": 42, "conversation_id": []}'),
    "text-plain": req("POST /api/chat", ["content-type: text/plain", S], "hello"),
    "wait-huge": req("GET /api/chat/0123456789abcdef0123456789abcdef?wait=99999999999999999999", [S]),
}
for name, text in router.items():
    put("router", name, text)

# --- upload: a Content-Type line, then the multipart body ---
ct = "multipart/form-data; boundary=BOUNDARY\n"
put("upload", "md", ct + multipart("notes.md", "# Title\n\ntext"))
put("upload", "txt-traversal", ct + multipart("../../etc/passwd.txt", "root:x:0:0"))
put("upload", "html", ct + multipart("page.HTM", read("crates/knowledge/tests/fixtures/intranet-page.html").decode()))
put("upload", "pdf", ("multipart/form-data; boundary=\"a'b(c)\"\n").encode()
    + multipart("report.pdf", "%PDF-1.4\n%%EOF", boundary="a'b(c)").encode())
put("upload", "two-files", ct + multipart("a.md", "a").replace("--BOUNDARY--\r\n", "") + multipart("b.md", "b"))
put("upload", "other-field", ct + multipart("a.md", "x", field="note"))
put("upload", "bidi-name", ct + multipart("evil\u202etxt.exe.md", "x"))
put("upload", "html-tags", ct + multipart("x.html", "<a " * 200))
put("upload", "no-boundary", "multipart/form-data\n--x\r\n\r\n")
put("upload", "lf-only", ct + "--BOUNDARY\nContent-Disposition: form-data; name=\"file\"; filename=\"a.md\"\n\nx\n--BOUNDARY--\n")

# --- session_token: Authorization header values ---
put("session_token", "bearer", "Bearer eyJzaWQiOiJzX3gifQ.c2ln")
put("session_token", "lower", "bearer    token.with.dots   ")
put("session_token", "basic", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
put("session_token", "nickname", "Ana Lu\u00edsa")
put("session_token", "job-id", "0123456789abcdef0123456789abcdef")
put("session_token", "doc-id", "d_" + "ab" * 16)
put("session_token", "json-ish", "eyJzaWQiOiIiLCJuaWNrIjoiIiwiZXhwIjo5OTk5OTk5OTk5OTl9.")

# --- loaders ---
for f in os.listdir(os.path.join(REPO, "documents")):
    data = read(os.path.join("documents", f))
    put("load_text", f, (b"\x01" if f.endswith(".md") else b"\x00") + data)
put("load_text", "crlf-bom", b"\x00\xef\xbb\xbfline one\r\nline two\rthree\r\n")
put("load_text", "md-headings", b"\x01# A\n## B\n### C\n" + b"word " * 300 + b"\n```\ncode\n```\n| a | b |\n|---|---|\n")
put("load_text", "no-spaces", b"\x00" + b"x" * 3000)
put("load_text", "combining", b"\x00a" + "\u0301".encode() * 500)
put("load_text", "nul", b"\x00a\x00b")

put("load_html", "intranet", read("crates/knowledge/tests/fixtures/intranet-page.html"))
put("load_html", "nested-lists", b"<ul><li>a" * 200)
put("load_html", "latin1", b"<meta charset=windows-1252><p>caf\xe9 \x93quoted\x94</p>")
put("load_html", "table", b"<table><tr><th>h</th><td>c<td>d</table><pre>code\n  x</pre><script>x()</script>")
put("load_html", "entities", b"<!doctype html><h1>T&amp;J &#x1F600; &nbsp;</h1><p>a<br>b</p><ol start=99><li>x</ol>")


def pdf(objects):
    """A PDF with a correct xref table; objects are bodies, numbered from 1."""
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for o in offsets:
        out += b"%010d 00000 n \n" % o
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def stream(data, extra=b""):
    return b"<< /Length %d %s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


font = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
text = b"BT /F1 12 Tf 72 720 Td (Vacation policy: 30 days) Tj ET"
put("load_pdf", "handbook", read("crates/knowledge/tests/fixtures/handbook.pdf"))
put("load_pdf", "plain", pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    stream(text),
    font,
]))
put("load_pdf", "flate-twice", pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /Contents [4 0 R 4 0 R] /Resources << /Font << /F1 5 0 R >> >> >>",
    stream(zlib.compress(text), b"/Filter /FlateDecode"),
    font,
]))
put("load_pdf", "form", pdf([
    b"<< /Type /Catalog /Pages 2 0 R >>",
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /XObject << /X1 6 0 R >> /Font << /F1 5 0 R >> >> >>",
    stream(b"/X1 Do"),
    font,
    stream(b"/X1 Do " + text, b"/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /XObject << /X1 6 0 R >> /Font << /F1 5 0 R >> >>"),
]))
put("load_pdf", "no-xref", b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n3 0 obj << /Type /Page /Contents 4 0 R >> endobj\n4 0 obj << /Length 10 >> stream\nBT (x) Tj ET\nendstream endobj\ntrailer << /Root 1 0 R >>\n%%EOF")
put("load_pdf", "header-only", b"%PDF-2.0\n%%EOF\n")

# --- fts_query: a control byte, then the question ---
for i, q in enumerate([
    "What is the vacation policy?",
    "política de férias NÃO ação",
    '"quoted" AND OR NOT NEAR(a b) * ^ column:filter -minus +plus',
    "日本語 中文 🎉",
    "o que é a e de do da",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 1 2 3 4 5 6 7 8 9",
    "Secret private vacation plan Lisbon",
]):
    put("fts_query", "q%d" % i, bytes([0x05 | ((i % 3) << 4)]) + q.encode())
put("fts_query", "vector", bytes([0x45]) + struct.pack("<8f", 1, 0, -1, 2, 0.5, 0, 0, 1) + b"vacation days")
put("fts_query", "vector-nan", bytes([0x55]) + struct.pack("<8f", float("nan"), 0, float("inf"), 2, 0.5, 0, 0, 1) + b"plan")

# --- sse: a control byte, then the body ---
put("sse", "stream", b"\x03" + b'data: {"model":"m","choices":[{"delta":{"role":"assistant"}}]}\n\n'
    b'data: {"choices":[{"delta":{"content":"Ol\xc3\xa1 "}}]}\r\n\r\n: keep-alive\n\n'
    b'event: x\nid: 1\ndata: {"choices":[{"delta":{"content":"mundo"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\ndata: [DONE]\n\n')
put("sse", "multiline", b"\x01data: {\"choices\":\ndata: []}\n\ndata: [DONE]")
put("sse", "error-event", b"\x07data: {\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_exceeded\",\"code\":\"429\"}}\n\n")
put("sse", "completion", b"\x00" + b'{"model":"gpt","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":1}}')
put("sse", "embeddings", b"\x10" + b'{"data":[{"index":1,"embedding":[0.1,0.2]},{"index":0,"embedding":[1,2]}]}')
put("sse", "error-body", b"\x00" + b'{"error":"upstream <html> failed"}')

# Valid tokens, signed with the fuzz targets' secret (fuzz/src/router.rs SECRET).
import base64, hashlib, hmac, json  # noqa: E402

SECRET = b"fuzz-secret-fuzz-secret-fuzz-secret-0123"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(claims):
    p = b64(json.dumps(claims, separators=(",", ":")).encode())
    return p + "." + b64(hmac.new(SECRET, p.encode(), hashlib.sha256).digest())


SID = "01010101-0101-4101-8101-010101010101"
put("session_token", "valid", "Bearer " + token({"sid": SID, "nick": "ana", "exp": 1738281600}))
put("session_token", "valid-odd-claims", "Bearer " + token({"sid": "x", "nick": "\u0000", "exp": 9223372036854775807, "extra": [1]}))
put("session_token", "expired", "Bearer " + token({"sid": SID, "nick": "ana", "exp": 1}))
