/**
 * A scripted HTTP server for component tests: the `fetch` the ApiClient is
 * given. Routes answer with real `Response` objects; every request is kept.
 */
export interface Recorded {
  method: string;
  path: string;
  body: unknown;
  headers: Headers;
}

type Handler = (request: Recorded) => Response | Promise<Response>;

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": status >= 400 ? "application/problem+json" : "application/json", ...headers },
  });
}

export function problem(status: number, detail: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}): Response {
  return json(status, { type: "urn:flowchat:problem:x", title: "Problem", status, detail, request_id: "req-123", ...extra }, headers);
}

export class FakeServer {
  readonly requests: Recorded[] = [];
  private readonly routes: Array<{ method: string; pattern: RegExp; handler: Handler }> = [];

  on(method: string, pattern: RegExp | string, handler: Handler | Response | unknown): this {
    const regex = typeof pattern === "string" ? new RegExp(`^${pattern.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`) : pattern;
    const h: Handler =
      typeof handler === "function" ? (handler as Handler) : handler instanceof Response ? () => handler.clone() : () => json(200, handler);
    this.routes.unshift({ method, pattern: regex, handler: h });
    return this;
  }

  readonly fetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input), "http://localhost");
    const method = init?.method ?? "GET";
    const body = typeof init?.body === "string" ? JSON.parse(init.body) : undefined;
    const recorded = { method, path: url.pathname + url.search, body, headers: new Headers(init?.headers) };
    this.requests.push(recorded);
    const route = this.routes.find((r) => r.method === method && r.pattern.test(url.pathname + url.search));
    if (!route) return problem(404, `no route for ${method} ${url.pathname}`);
    return route.handler(recorded);
  };
}
