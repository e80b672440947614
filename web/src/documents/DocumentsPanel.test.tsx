import { act, render, screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import axe from "axe-core";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { DocumentsPanel } from "./DocumentsPanel";
import { FakeNetwork, problem } from "../test/fakeNetwork";
import { PENDING_REFRESH_MS } from "./useDocuments";

function setup(network: FakeNetwork) {
  const onUnauthorized = vi.fn();
  const onClose = vi.fn();
  const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
  const view = render(
    <DocumentsPanel id="documents-panel" api={network.client()} onUnauthorized={onUnauthorized} onClose={onClose} />,
  );
  return { user, onUnauthorized, onClose, ...view };
}

function section(name: string): HTMLElement {
  return screen.getByRole("region", { name });
}

function withDocuments(): FakeNetwork {
  const network = new FakeNetwork();
  network.addDocument({ id: "p1", name: "handbook.pdf", scope: "private", status: "indexed", chunks: 12, pages: 4, size_bytes: 183412 });
  network.addDocument({ id: "p2", name: "notes.md", scope: "private", status: "pending", chunks: 0, size_bytes: 2048 });
  network.addDocument({ id: "p3", name: "broken.pdf", scope: "private", status: "failed", error: "no text found", chunks: 0 });
  network.addDocument({ id: "s1", name: "faq.md", scope: "shared", origin: "folder", status: "indexed", chunks: 3 });
  return network;
}

beforeEach(() => {
  vi.useFakeTimers({ shouldAdvanceTime: true });
});

afterEach(() => {
  vi.useRealTimers();
});

describe("DocumentsPanel lists", () => {
  it("is an aside labelled by its Documents heading", async () => {
    setup(new FakeNetwork());
    const aside = screen.getByRole("complementary", { name: "Documents" });
    expect(aside).toHaveAttribute("id", "documents-panel");
    expect(screen.getByRole("heading", { level: 2, name: "Documents" })).toBeInTheDocument();
    await screen.findByText("No shared documents.");
  });

  it("shows a loading state, then my and shared documents apart", async () => {
    const network = withDocuments();
    setup(network);
    expect(within(section("My documents")).getByText("Loading documents…")).toBeInTheDocument();

    const mine = await within(section("My documents")).findAllByRole("listitem");
    expect(mine.map((li) => li.querySelector(".doc-name")?.textContent)).toEqual(["handbook.pdf", "notes.md", "broken.pdf"]);
    expect(mine[0]).toHaveTextContent("179.1 KB");
    expect(mine[0]).toHaveTextContent("Indexed · 12 chunks · 4 pages");
    expect(mine[1]).toHaveTextContent("Indexing…");
    expect(within(mine[2]).getByText("Failed: no text found")).toHaveClass("status-danger");

    const shared = within(section("Shared documents")).getAllByRole("listitem");
    expect(shared).toHaveLength(1);
    expect(shared[0]).toHaveTextContent("faq.md");
    expect(shared[0]).toHaveTextContent("Indexed · 3 chunks");
    expect(within(section("Shared documents")).queryByRole("button")).not.toBeInTheDocument();
    expect(screen.queryByRole("button", { name: "Delete faq.md" })).not.toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Delete handbook.pdf" })).toBeInTheDocument();
  });

  it("shows both empty states", async () => {
    setup(new FakeNetwork());
    expect(await screen.findByText("No documents yet — upload one to ask questions about it.")).toBeInTheDocument();
    expect(screen.getByText("No shared documents.")).toBeInTheDocument();
  });

  it("deletes a document of mine after confirmation", async () => {
    const network = withDocuments();
    const { user } = setup(network);
    await user.click(await screen.findByRole("button", { name: "Delete handbook.pdf" }));

    const dialog = screen.getByRole("dialog", { name: "Delete document?" });
    expect(dialog).toHaveTextContent("handbook.pdf");
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
    await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(network.count("DELETE", "/api/documents/p1")).toBe(0);

    await user.click(screen.getByRole("button", { name: "Delete handbook.pdf" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete" }));
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(screen.queryByText("handbook.pdf")).not.toBeInTheDocument();
    await waitFor(() => expect(network.count("DELETE", "/api/documents/p1")).toBe(1));
    await waitFor(() => expect(screen.getByRole("status")).toHaveTextContent("handbook.pdf deleted"));
    expect(screen.getByRole("heading", { name: "My documents" })).toHaveFocus();
    // The list is fetched again afterwards and the document stays gone.
    await waitFor(() => expect(network.count("GET", "/api/documents")).toBeGreaterThanOrEqual(2));
    expect(screen.queryByText("handbook.pdf")).not.toBeInTheDocument();
  });

  it("puts the document back when the delete fails", async () => {
    const network = withDocuments();
    network.once("DELETE", "/api/documents/p2", problem(500, { request_id: "req-7" }));
    const { user } = setup(network);
    await user.click(await screen.findByRole("button", { name: "Delete notes.md" }));
    await user.click(within(screen.getByRole("dialog")).getByRole("button", { name: "Delete" }));

    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("Could not delete notes.md.");
    expect(alert).toHaveTextContent("request id req-7");
    expect(screen.getByRole("button", { name: "Delete notes.md" })).toBeInTheDocument();
    await user.click(within(alert).getByRole("button", { name: "Dismiss" }));
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("shows list errors with a Retry button", async () => {
    const network = withDocuments();
    network.once("GET", "/api/documents", problem(503));
    const { user } = setup(network);
    const alert = await screen.findByRole("alert");
    expect(alert).toHaveTextContent("The service is temporarily unavailable. Try again in a few seconds.");
    await user.click(within(alert).getByRole("button", { name: "Retry" }));
    expect(await screen.findByRole("button", { name: "Delete handbook.pdf" })).toBeInTheDocument();
    expect(screen.queryByRole("alert")).not.toBeInTheDocument();
  });

  it("calls onUnauthorized when the list answers 401", async () => {
    const network = new FakeNetwork();
    network.signIn("Ana");
    network.expireSessions();
    const { onUnauthorized } = setup(network);
    await waitFor(() => expect(onUnauthorized).toHaveBeenCalled());
  });

  it("refreshes every 15 s while a document is pending, and stops after", async () => {
    const network = withDocuments();
    setup(network);
    await screen.findByRole("button", { name: "Delete notes.md" });
    expect(network.count("GET", "/api/documents")).toBe(1);

    network.updateDocument("p2", { status: "indexed", chunks: 5 });
    await act(() => vi.advanceTimersByTimeAsync(PENDING_REFRESH_MS));
    expect(network.count("GET", "/api/documents")).toBe(2);
    await waitFor(() =>
      expect(screen.getByRole("button", { name: "Delete notes.md" }).closest("li")).toHaveTextContent("Indexed · 5 chunks"),
    );
    await act(() => vi.advanceTimersByTimeAsync(PENDING_REFRESH_MS * 2));
    expect(network.count("GET", "/api/documents")).toBe(2);
  });
});

describe("DocumentsPanel", () => {
  it("closes with the Close button and with Escape", async () => {
    const { user, onClose } = setup(new FakeNetwork());
    await user.click(screen.getByRole("button", { name: "Close" }));
    expect(onClose).toHaveBeenCalledTimes(1);
    await user.click(screen.getByRole("button", { name: "Upload documents" }));
    await user.keyboard("{Escape}");
    expect(onClose).toHaveBeenCalledTimes(2);
  });

  it("Escape in the delete dialog only closes the dialog", async () => {
    const { user, onClose } = setup(withDocuments());
    await user.click(await screen.findByRole("button", { name: "Delete handbook.pdf" }));
    await user.keyboard("{Escape}");
    expect(screen.queryByRole("dialog")).not.toBeInTheDocument();
    expect(onClose).not.toHaveBeenCalled();
    expect(screen.getByRole("button", { name: "Delete handbook.pdf" })).toHaveFocus();
  });

  it("has no positive tabindex and no axe violations", async () => {
    const network = withDocuments();
    const { user, container } = setup(network);
    await screen.findByRole("button", { name: "Delete handbook.pdf" });
    await user.upload(screen.getByLabelText("Choose files to upload"), [
      new File(["hi"], "ok.md"),
      new File(["x"], "bad.exe"),
    ]);
    expect(container.querySelectorAll("[tabindex]:not([tabindex='-1']):not([tabindex='0'])")).toHaveLength(0);
    vi.useRealTimers(); // axe schedules its own timers
    const results = await axe.run(container, { rules: { "color-contrast": { enabled: false } } });
    expect(results.violations.map((v) => `${v.id}: ${v.help}`)).toEqual([]);
  });
});
