import { act, fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatBytes } from "../api/errors";
import { DocumentsPanel } from "./DocumentsPanel";
import type { Problem } from "../api/types";
import { FakeNetwork, problem } from "../test/fakeNetwork";

function setup(network = new FakeNetwork()) {
  const onUnauthorized = vi.fn();
  const onClose = vi.fn();
  const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime, applyAccept: false });
  render(<DocumentsPanel id="documents-panel" api={network.client()} onUnauthorized={onUnauthorized} onClose={onClose} />);
  return { network, user, onUnauthorized, onClose };
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

async function stageAndSend(network: FakeNetwork, user: ReturnType<typeof userEvent.setup>, files: File[]) {
  await user.upload(chooser(), files);
  await user.click(screen.getByRole("button", { name: `Upload ${files.length} file${files.length === 1 ? "" : "s"}` }));
  await waitFor(() => expect(network.uploads.length).toBeGreaterThan(0));
  return network.lastUpload();
}

beforeEach(() => {
  vi.useFakeTimers({ shouldAdvanceTime: true });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("Uploader", () => {
  it("lists chosen files with name and size before sending anything", async () => {
    const { network, user } = setup();
    const a = textFile("notes.md");
    const b = textFile("Guide.PDF", "%PDF-1.7 ...", "application/pdf");
    await user.upload(chooser(), [a, b]);

    const items = within(stagedList()).getAllByRole("listitem");
    expect(items).toHaveLength(2);
    expect(items[0]).toHaveTextContent("notes.md");
    expect(items[0]).toHaveTextContent(formatBytes(a.size));
    expect(items[1]).toHaveTextContent("Guide.PDF");
    expect(network.uploads).toHaveLength(0);
    expect(screen.getByRole("button", { name: "Upload 2 files" })).toBeEnabled();

    await user.click(screen.getByRole("button", { name: "Remove notes.md" }));
    expect(within(stagedList()).getAllByRole("listitem")).toHaveLength(1);
    expect(screen.getByRole("button", { name: "Upload 1 file" })).toBeEnabled();

    await user.click(screen.getByRole("button", { name: "Clear" }));
    expect(screen.queryByRole("list", { name: "Files to upload" })).not.toBeInTheDocument();
    expect(network.uploads).toHaveLength(0);
  });

  it("flags unsupported, too large and empty files and never sends them", async () => {
    const { network, user } = setup();
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
    await waitFor(() => expect(network.uploads).toHaveLength(1));
    expect(network.lastUpload().file.name).toBe("ok.txt");
    expect(network.lastUpload().requestHeaders.authorization).toBe(`Bearer ${network.sessions[0].token}`);
    // The refused ones stay listed with their reason until removed.
    expect(within(stagedList()).getAllByRole("listitem")).toHaveLength(3);
    expect(screen.queryByRole("button", { name: /^Upload \d+ files?$/ })).not.toBeInTheDocument();
  });

  it("shows progress, then Indexing…, then Indexed, and announces it", async () => {
    const { network, user } = setup();
    await screen.findByText("No documents yet — upload one to ask questions about it.");
    const xhr = await stageAndSend(network, user, [textFile("notes.md")]);
    expect(xhr.method).toBe("POST");
    expect(xhr.url).toBe("/api/documents");

    xhr.progress(50, 100);
    const bar = screen.getByRole("progressbar", { name: "Uploading notes.md" });
    expect(bar).toHaveAttribute("value", "50");
    expect(within(uploadsList()).getByText("50%")).toBeInTheDocument();

    await xhr.finish();
    expect(xhr.status).toBe(202);
    const { id } = network.documentNamed("notes.md");
    expect(within(uploadsList()).getByText("Indexing…")).toBeInTheDocument();
    expect(screen.queryByRole("progressbar")).not.toBeInTheDocument();
    // The list picks the new document up as pending.
    await waitFor(() => expect(screen.getByRole("button", { name: "Delete notes.md" })).toBeInTheDocument());

    // Still pending at the first check, indexed at the next.
    await act(() => vi.advanceTimersByTimeAsync(1000));
    expect(network.count("GET", `/api/documents/${id}`)).toBe(1);
    expect(within(uploadsList()).getByText("Indexing…")).toBeInTheDocument();
    network.updateDocument(id, { status: "indexed", chunks: 3, pages: 2 });
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
    const { network, user } = setup();
    const xhr = await stageAndSend(network, user, [textFile("scan.pdf", "%PDF-1.4", "application/pdf")]);
    await xhr.finish();
    network.updateDocument(network.documentNamed("scan.pdf").id, { status: "failed", error: "the PDF has no extractable text" });
    await act(() => vi.advanceTimersByTimeAsync(1000));

    const failed = within(uploadsList()).getByText("Failed: the PDF has no extractable text");
    expect(failed).toHaveClass("status-danger");
    expect(liveRegion()).toHaveTextContent("scan.pdf failed: the PDF has no extractable text");
    expect(screen.getByRole("button", { name: "Dismiss scan.pdf" })).toBeInTheDocument();
  });

  it("says when the file was already uploaded", async () => {
    const network = new FakeNetwork();
    const file = textFile("notes.md");
    network.addDocument({ name: "notes.md", status: "indexed", chunks: 2, pages: null }, await file.text());
    const { user } = setup(network);
    const xhr = await stageAndSend(network, user, [file]);
    await xhr.finish();
    expect(xhr.status).toBe(200);
    expect(within(uploadsList()).getByText("Already uploaded · Indexed · 2 chunks")).toBeInTheDocument();
  });

  it.each<{ label: string; status: number; fields: Partial<Problem>; headers: Record<string, string>; expected: string }>([
    {
      label: "413 too large, with the server's limit",
      status: 413,
      fields: { detail: "The file is over the upload limit.", limit_bytes: 2 * 1024 * 1024 },
      headers: {},
      expected: "The file is too large: the limit is 2.0 MB.",
    },
    {
      label: "415 wrong content",
      status: 415,
      fields: { rule: "content", detail: "A .pdf file must start with %PDF-." },
      headers: {},
      expected: "This file type is not supported. A .pdf file must start with %PDF-.",
    },
    {
      label: "429 rate limited, with the wait",
      status: 429,
      fields: { detail: "Slow down." },
      headers: { "Retry-After": "30" },
      expected: "Too many requests. Try again in 30 seconds.",
    },
    {
      label: "500 with a request id",
      status: 500,
      fields: { request_id: "req-42" },
      headers: {},
      expected: "The server had a problem (request id req-42). Try again; if it keeps happening, report that id.",
    },
  ])("explains a $label", async ({ status, fields, headers, expected }) => {
    const { network, user } = setup();
    network.once("POST", "/api/documents", problem(status, fields, headers));
    const xhr = await stageAndSend(network, user, [textFile("report.md")]);
    await xhr.finish();
    expect(xhr.status).toBe(status);
    const message = within(uploadsList()).getByText(expected);
    expect(message).toHaveClass("status-danger");
    expect(liveRegion()).toHaveTextContent(`report.md failed: ${expected}`);
    expect(screen.getByRole("button", { name: "Dismiss report.md" })).toBeInTheDocument();
  });

  it("offers Retry after a passing error and sends the file again", async () => {
    const { network, user } = setup();
    const first = await stageAndSend(network, user, [textFile("notes.md")]);
    await first.fail();
    expect(within(uploadsList()).getByText(/Could not reach the FlowChat server|You are offline/)).toBeInTheDocument();
    await user.click(screen.getByRole("button", { name: "Retry notes.md" }));
    await waitFor(() => expect(network.uploads).toHaveLength(2));
    await network.lastUpload().finish();
    network.updateDocument(network.documentNamed("notes.md").id, { status: "indexed", chunks: 1 });
    await act(() => vi.advanceTimersByTimeAsync(1000));
    expect(within(uploadsList()).getByText("Indexed · 1 chunk")).toBeInTheDocument();
  });

  it("calls onUnauthorized on 401", async () => {
    const { network, user, onUnauthorized } = setup();
    const xhr = await stageAndSend(network, user, [textFile("notes.md")]);
    // The session expires while the file is on its way.
    network.expireSessions();
    expect(onUnauthorized).not.toHaveBeenCalled();
    await xhr.finish();
    expect(xhr.status).toBe(401);
    expect(onUnauthorized).toHaveBeenCalled();
  });

  it("uploads one file after another", async () => {
    const { network, user } = setup();
    const first = await stageAndSend(network, user, [textFile("a.md", "# A\n"), textFile("b.md", "# B\n")]);
    expect(network.uploads).toHaveLength(1);
    expect(first.file.name).toBe("a.md");
    expect(within(uploadsList()).getByText("Waiting to upload…")).toBeInTheDocument();
    await first.finish();
    await waitFor(() => expect(network.uploads).toHaveLength(2));
    expect(network.lastUpload().file.name).toBe("b.md");
  });

  it("cancels an upload in progress", async () => {
    const { network, user } = setup();
    const xhr = await stageAndSend(network, user, [textFile("a.md")]);
    await user.click(screen.getByRole("button", { name: "Cancel upload of a.md" }));
    expect(xhr.aborted).toBe(true);
    expect(screen.queryByRole("list", { name: "Uploads" })).not.toBeInTheDocument();
  });

  it("stages dropped files and highlights the zone while dragging", async () => {
    const { network } = setup();
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
    expect(network.uploads).toHaveLength(0);
  });
});
