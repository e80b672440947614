import { render, screen, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it, vi } from "vitest";
import type { ConversationSummary } from "../api/types";
import { Sidebar, type SidebarProps } from "./Sidebar";

const conversation = (id: string, title: string, updated_at: string): ConversationSummary => ({
  id,
  title,
  message_count: 2,
  created_at: updated_at,
  updated_at,
});

const LIST = [
  conversation("c2", "Laptop policy", "2026-11-26T10:05:00.000Z"),
  conversation("c1", "Chair allowance", "2026-11-25T09:00:00.000Z"),
];

function renderSidebar(props: Partial<SidebarProps> = {}) {
  const all: SidebarProps = {
    id: "side",
    conversations: LIST,
    currentId: "c1",
    onSelect: vi.fn(),
    onNew: vi.fn(),
    onDelete: vi.fn(async () => true),
    open: false,
    onClose: vi.fn(),
    ...props,
  };
  render(<Sidebar {...all} />);
  return { ...all, nav: screen.getByRole("navigation", { name: "Conversations" }) };
}

describe("Sidebar", () => {
  it("lists conversations in order and marks the open one", () => {
    const { nav } = renderSidebar();
    const titles = within(nav).getAllByRole("listitem").map((li) => within(li).getAllByRole("button")[0]);
    expect(titles.map((b) => b.querySelector(".conversation-title")?.textContent)).toEqual(["Laptop policy", "Chair allowance"]);
    expect(titles[0]).not.toHaveAttribute("aria-current");
    expect(titles[1]).toHaveAttribute("aria-current", "page");
  });

  it("switches conversation and starts a new chat", async () => {
    const user = userEvent.setup();
    const { nav, onSelect, onNew } = renderSidebar();
    await user.click(within(nav).getByRole("button", { name: /^Laptop policy/ }));
    expect(onSelect).toHaveBeenCalledWith("c2");
    await user.click(within(nav).getByRole("button", { name: "New chat" }));
    expect(onNew).toHaveBeenCalled();
  });

  it("deletes only after confirming", async () => {
    const user = userEvent.setup();
    const { nav, onDelete } = renderSidebar();
    const remove = within(nav).getByRole("button", { name: 'Delete conversation "Laptop policy"' });

    await user.click(remove);
    let dialog = screen.getByRole("dialog", { name: "Delete conversation?" });
    expect(dialog).toHaveTextContent("Laptop policy");
    expect(within(dialog).getByRole("button", { name: "Cancel" })).toHaveFocus();
    await user.click(within(dialog).getByRole("button", { name: "Cancel" }));
    expect(screen.queryByRole("dialog")).toBeNull();
    expect(onDelete).not.toHaveBeenCalled();

    await user.click(remove);
    dialog = screen.getByRole("dialog", { name: "Delete conversation?" });
    const confirm = within(dialog).getByRole("button", { name: "Delete" });
    expect(confirm).toHaveClass("danger");
    await user.click(confirm);
    expect(onDelete).toHaveBeenCalledWith(LIST[0]);
    expect(screen.queryByRole("dialog")).toBeNull();
  });

  it("shows the empty and loading states", () => {
    const { nav } = renderSidebar({ conversations: [] });
    expect(within(nav).getByText("No conversations yet")).toBeInTheDocument();
  });

  it("says the list is loading", () => {
    const { nav } = renderSidebar({ conversations: null });
    expect(within(nav).getByText("Loading conversations…")).toBeInTheDocument();
  });

  it("closes the overlay on Escape", async () => {
    const user = userEvent.setup();
    const { onClose, nav } = renderSidebar({ open: true });
    expect(within(nav).getByRole("button", { name: "New chat" })).toHaveFocus();
    await user.keyboard("{Escape}");
    expect(onClose).toHaveBeenCalled();
  });
});
