/**
 * The API's input rules (crates/domain), checked before sending so people
 * see the same message without a round trip. The server stays the authority.
 */

export const NICKNAME_MAX_CHARS = 40;
export const MESSAGE_MAX_CHARS = 4000;

/** Length in Unicode code points, as the server counts. */
export function charCount(text: string): number {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

/** `null` when the nickname is acceptable, else the server's message for it. */
export function nicknameError(raw: string): string | null {
  const nickname = raw.trim().normalize("NFC");
  const count = charCount(nickname);
  if (count === 0) return "nickname must not be empty";
  if (count > NICKNAME_MAX_CHARS) return `nickname must be at most ${NICKNAME_MAX_CHARS} characters (got ${count})`;
  for (const c of nickname) {
    if (!/^[\p{Alphabetic}\p{N} \-_.']$/u.test(c)) {
      return `nickname may contain only letters, digits, spaces and - _ . ' (found ${JSON.stringify(c)})`;
    }
  }
  return null;
}

/** `null` when the message is acceptable, else why not. */
export function messageError(raw: string): string | null {
  const message = raw.trim();
  const count = charCount(message);
  if (count === 0) return "message must not be empty";
  if (count > MESSAGE_MAX_CHARS) return `message must be at most ${MESSAGE_MAX_CHARS} characters (got ${count})`;
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(message)) {
    return "message must not contain control characters other than newline and tab";
  }
  return null;
}
