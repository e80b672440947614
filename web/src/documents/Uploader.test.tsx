import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatBytes } from "../api/errors";
import { DocumentsPanel } from "./DocumentsPanel";
import { FakeServer, FakeXhr, makeDoc, problem } from "./testing";

function setup(server = new FakeServer()) {
  const onUnauthorized = vi.fn();
  const onClose = vi.fn();
  const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime, applyAccept: false });
  render(<DocumentsPanel id="documents-panel" api={server.api} onUnauthorized={onUnauthorized} onClose={onClose} />);
  return { server, user, onUnauthorized, onClose };
}

function textFile(name: string, content = "# Notes\n\nSome text.\n", type = "text/markdown"): File {
  return new File([content], name, { type });
}

function sizedFile(name: string, size: number): File {
  const file = new File(["x"], name);
  Object.defineProperty(file, "size", { value: size });
  return file;
}

const chooser = () => screen.getByLabelText("Choose files to upload");
const stagedList = () => screen.getByRole("list", { name: "Files to upload" });
const uploadsList = () => screen.getByRole("list", { name: "Uploads" });
const liveRegion = () => screen.getByRole("status");

async function stageAndSend(user: ReturnType<typeof userEvent.setup>, files: File[]) {
  await user.upload(chooser(), files);
  await user.click(screen.getByRole("button", { name: `Upload ${files.length} file${files.length === 1 ? "" : "s"}` }));
  await waitFor(() => expect(FakeXhr.instances.length).toBeGreaterThan(0));
  return FakeXhr.last();
}

function accepted(id: string, name: string, size = 21) {
  const document = makeDoc({ id, name, status: "pending", chunks: 0, size_bytes: size });
  return { document_id: id, job_id: `job-${id}`, status: "pending", document };
}

beforeEach(() => {
  vi.useFakeTimers({ shouldAdvanceTime: true });
  FakeXhr.install();
});

afterEach(() => {
  FakeXhr.uninstall();
  vi.useRealTimers();
});

describe("Uploader", () => {
  it("lists chosen files with name and size before sending anything", async () => {
    const { user } = setup();
    const a = textFile("notes.md");
    const b = textFile("Guide.PDF", "%PDF-1.7 ...", "application/pdf");
    await user.upload(chooser(), [a, b]);

    const items = within(stagedList()).getAllByRole("listitem");
    expect(items).toHaveLength(2);
    expect(items[0]).toHaveTextContent("notes.md");
    expect(items[0]).toHaveTextContent(formatBytes(a.size));
    expect(items[1]).toHaveTextContent("Guide.PDF");
    expect(FakeXhr.instances).toHaveLength(0);
    expect(screen.getByRole("button", { name: "Upload 2 files" })).toBeEnabled();

    await user.click(screen.getByRole("button", { name: "Remove notes.md" }));
    expect(within(stagedList()).getAllByRole("listitem")).toHaveLength(1);
    expect(screen.getByRole("button", { name: "Upload 1 file" })).toBeEnabled();

    await user.click(screen.getByRole("button", { name: "Clear" }));
    expect(screen.queryByRole("list", { name: "Files to upload" })).not.toBeInTheDocument();
    expect(FakeXhr.instances).toHaveLength(0);
  });

  it("flags unsupported, too large and empty files and never sends them", async () => {
    const { user } = setup();
    await user.upload(chooser(), [
      textFile("photo.png", "png", "image/png"),
      sizedFile("huge.pdf", 4 * 1024 * 1024 + 1),
      new File([], "empty.txt"),
      textFile("ok.txt", "hello", "text/plain"),
    ]);
    const items = within(stagedList()).getAllByRole("listitem");
    expect(items[0]).toHaveTextContent("Not supported: use .txt, .md, .markdown, .pdf, .html or .htm");
    expect(items[1]).toHaveTextContent("Too large: the limit is 4.0 MB");
    expect(items[2]).toHaveTextContent("Empty file");
    expect(items[3]).not.toHaveTextContent(/Not supported|Too large|Empty/);

    await user.click(screen.getByRole("button", { name: "Upload 1 file" }));
    await waitFor(() => expect(FakeXhr.instances).toHaveLength(1));
    expect(FakeXhr.last().file.name).toBe("ok.txt");
    expect(FakeXhr.last().requestHeaders.authorization).toBe("Bearer tok");
    // The refused ones stay listed with their reason until removed.
    expect(within(stagedList()).getAllByRole("listitem")).toHaveLength(3);
    expect(screen.queryByRole("button", { name: /^Upload \d+ files?$/ })).not.toBeInTheDocument();
  });

  it("shows progress, then Indexing…, then Indexed, and announces it", async () => {
    const { server, user } = setup();
    await screen.findByText("No documents yet — upload one to ask questions about it.");
    const xhr = await stageAndSend(user, [textFile("notes.md")]);
    expect(xhr.method).toBe("POST");
    expect(xhr.url).toBe("/api/documents");

    xhr.progress(50, 100);
    const bar = screen.getByRole("progressbar", { name: "Uploading notes.md" });
    expect(bar).toHaveAttribute("value", "50");
    expect(within(uploadsList()).getByText("50%")).toBeInTheDocument();

    const body = accepted("d1", "notes.md");
    server.documents.push(body.document);
    await xhr.respond(202, body, { Location: "/api/documents/d1" });
    expect(within(uploadsList()).getByText("Indexing…")).toBeInTheDocument();
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    // The list picks the new document up as pending.
    await waitFor(() => expect(screen.getByRole("button", { name: "Delete notes.md" })).toBeInTheDocument());

    // Still pending at the first check, indexed at the next.
    await act(() => vi.advanceTimersByTimeAsync(1000));
    expect(server.count("GET", "/api/documents/d1")).toBe(1);
    expect(within(uploadsList()).getByText("Indexing…")).toBeInTheDocument();
    server.setStatus("d1", { status: "indexed", chunks: 3, pages: 2 });
    await act(() => vi.advanceTimersByTimeAsync(1000));

    expect(within(uploadsList()).getByText("Indexed · 3 chunks · 2 pages")).toBeInTheDocument();
    expect(liveRegion()).toHaveTextContent("notes.md indexed");
    await waitFor(() =>
      expect(screen.getByRole("button", { name: "Delete notes.md" }).closest("li")).toHaveTextContent("Indexed · 3 chunks"),
    );

    await user.click(screen.getByRole("button", { name: "Dismiss notes.md" }));
    expect(screen.queryByRole("list", { name: "Uploads" })).not.toBeInTheDocument();
  });

  it("shows the reason when indexing fails", async () => {
    const { server, user } = setup();
    const xhr = await stageAndSend(user, [textFile("scan.pdf", "%PDF-1.4", "application/pdf")]);
    const body = accepted("d2", "scan.pdf");
    server.documents.push(body.document);
    await xhr.respond(202, body);
    server.setStatus("d2", { status: "failed", error: "the PDF has no extractable text" });
    await act(() => vi.advanceTimersByTimeAsync(1000));

    const failed = within(uploadsList()).getByText("Failed: the PDF has no extractable text");
    expect(failed).toHaveClass("status-danger");
    expect(liveRegion()).toHaveTextContent("scan.pdf failed: the PDF has no extractable text");
    expect(screen.getByRole("button", { name: "Dismiss scan.pdf" })).toBeInTheDocument();
  });

  it("says when the file was already uploaded", async () => {
    const { user } = setup();
    const xhr = await stageAndSend(user, [textFile("notes.md")]);
    const document = makeDoc({ id: "d3", name: "notes.md", status: "indexed", chunks: 2, pages: null });
    await xhr.respond(200, { document_id: "d3", job_id: null, status: "indexed", document });
    expect(within(uploadsList()).getByText("Already uploaded · Indexed · 2 chunks")).toBeInTheDocument();
  });

  it.each<{ label: string; status: number; body: unknown; headers: Record<string, string>; expected: string }>([
    {
      label: "413 too large, with the server's limit",
      status: 413,
      body: problem(413, { detail: "The file is over the upload limit.", limit_bytes: 2 * 1024 * 1024 }),
      headers: {},
      expected: "The file is too large: the limit is 2.0 MB.",
    },
    {
      label: "415 wrong content",
      status: 415,
      body: problem(415, { rule: "content", detail: "A .pdf file must start with %PDF-." }),
      headers: {},
      expected: "This file type is not supported. A .pdf file must start with %PDF-.",
    },
    {
      label: "429 rate limited, with the wait",
      status: 429,
      body: problem(429, { detail: "Slow down." }),
      headers: { "Retry-After": "30" },
      expected: "Too many requests. Try again in 30 seconds.",
    },
    {
      label: "500 with a request id",
      status: 500,
      body: problem(500, { request_id: "req-42" }),
      headers: {},
      expected: "The server had a problem (request id req-42). Try again; if it keeps happening, report that id.",
    },
  ])("explains a $label", async ({ status, body, headers, expected }) => {
    const { user } = setup();
    const xhr = await stageAndSend(user, [textFile("report.md")]);
    await xhr.respond(status, body, headers);
    const message = within(uploadsList()).getByText(expected);
    expect(message).toHaveClass("status-danger");
    expect(liveRegion()).toHaveTextContent(`report.md failed: ${expected}`);
    expect(screen.getByRole("button", { name: "Dismiss report.md" })).toBeInTheDocument();
  });

  it("offers Retry after a passing error and sends the file again", async () => {
    const { server, user } = setup();
    const first = await stageAndSend(user, [textFile("notes.md")]);
    await first.fail();
    expect(within(uploadsList()).getByText(/Could not reach the FlowChat server|You are offline/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry notes.md" }));
    await waitFor(() => expect(FakeXhr.instances).toHaveLength(2));
    const body = accepted("d9", "notes.md");
    server.documents.push({ ...body.document, status: "indexed", chunks: 1 });
    await FakeXhr.last().respond(202, body);
    await act(() => vi.advanceTimersByTimeAsync(1000));
    expect(within(uploadsList()).getByText("Indexed · 1 chunk")).toBeInTheDocument();
  });

  it("calls onUnauthorized on 401", async () => {
    const { user, onUnauthorized } = setup();
    const xhr = await stageAndSend(user, [textFile("notes.md")]);
    await xhr.respond(401, problem(401));
    expect(onUnauthorized).toHaveBeenCalled();
  });

  it("uploads one file after another", async () => {
    const { server, user } = setup();
    const first = await stageAndSend(user, [textFile("a.md"), textFile("b.md")]);
    expect(FakeXhr.instances).toHaveLength(1);
    expect(first.file.name).toBe("a.md");
    expect(within(uploadsList()).getByText("Waiting to upload…")).toBeInTheDocument();
    const body = accepted("da", "a.md");
    server.documents.push(body.document);
    await first.respond(202, body);
    await waitFor(() => expect(FakeXhr.instances).toHaveLength(2));
    expect(FakeXhr.last().file.name).toBe("b.md");
  });

  it("cancels an upload in progress", async () => {
    const { user } = setup();
    const xhr = await stageAndSend(user, [textFile("a.md")]);
    await user.click(screen.getByRole("button", { name: "Cancel upload of a.md" }));
    expect(xhr.aborted).toBe(true);
    expect(screen.queryByRole("list", { name: "Uploads" })).not.toBeInTheDocument();
  });

  it("stages dropped files and highlights the zone while dragging", async () => {
    setup();
    const zone = screen.getByText("Drag files here, or").closest(".drop-zone")!;
    fireEvent.dragEnter(zone, { dataTransfer: { types: ["Files"], files: [] } });
    expect(zone).toHaveClass("is-dragging");
    expect(screen.getByText("Drop to add these files")).toBeInTheDocument();
    fireEvent.dragLeave(zone);
    expect(zone).not.toHaveClass("is-dragging");

    const file = textFile("dropped.html", "<p>hi</p>", "text/html");
    fireEvent.dragEnter(zone, { dataTransfer: { types: ["Files"], files: [] } });
    fireEvent.drop(zone, { dataTransfer: { types: ["Files"], files: [file] } });
    expect(zone).not.toHaveClass("is-dragging");
    expect(within(stagedList()).getByText("dropped.html")).toBeInTheDocument();
    expect(FakeXhr.instances).toHaveLength(0);
  });
});
