import { describe, expect, it } from "vitest";
import { charCount, messageError, nicknameError } from "./validation";

describe("validation mirrors the API's rules", () => {
  it("counts code points like the server", () => {
    expect(charCount("😀é")).toBe(2);
  });

  it("nickname", () => {
    expect(nicknameError(" Ana ")).toBeNull();
    expect(nicknameError("Ana\u0301")).toBeNull(); // NFC-normalised first
    expect(nicknameError("a".repeat(40))).toBeNull();
    expect(nicknameError("a".repeat(41))).toMatch(/at most 40/);
    expect(nicknameError("a@b")).toMatch(/found "@"/);
  });

  it("message", () => {
    expect(messageError("hi\nthere\ttab")).toBeNull();
    expect(messageError("  ")).toMatch(/empty/);
    expect(messageError("x".repeat(4001))).toMatch(/at most 4000/);
    expect(messageError("bell\u0007")).toMatch(/control/);
  });
});
