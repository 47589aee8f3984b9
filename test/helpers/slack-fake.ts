/**
 * A local HTTP fake of the Slack Web API (point @slack/web-api at it with `slackApiUrl`). It records every
 * call (method, token, form fields with `blocks`/`attachments` parsed) and answers like Slack does, or
 * with a failure you queue (e.g. 500 or 429 with Retry-After) to test retries.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface SlackCall {
  method: string;
  token: string | undefined;
  fields: Record<string, unknown>;
  at: number;
}

export interface QueuedFailure {
  status: number;
  body?: unknown;
  retryAfterSeconds?: number;
}

export class SlackFake {
  readonly calls: SlackCall[] = [];
  private failures: QueuedFailure[] = [];
  private server?: Server;
  private seq = 100;
  url = '';

  /** The next `n` calls answer with this failure. */
  failNext(f: QueuedFailure, n = 1): void {
    for (let i = 0; i < n; i++) this.failures.push(f);
  }

  /** Calls of one Web API method, e.g. 'chat.postMessage'. */
  callsOf(method: string): SlackCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    const { port } = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${port}/api/`;
    return this.url;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const method = (req.url ?? '').replace(/^\/api\//, '').split('?')[0];
    const fields: Record<string, unknown> = {};
    if ((req.headers['content-type'] ?? '').includes('application/json')) {
      Object.assign(fields, raw ? JSON.parse(raw) : {});
    } else {
      for (const [k, v] of new URLSearchParams(raw)) {
        fields[k] = (k === 'blocks' || k === 'attachments') && v.startsWith('[') ? JSON.parse(v) : v;
      }
    }
    const auth = req.headers.authorization;
    this.calls.push({ method, token: auth?.replace(/^Bearer /, ''), fields, at: Date.now() });
    const failure = this.failures.shift();
    if (failure) {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (failure.retryAfterSeconds !== undefined) headers['retry-after'] = String(failure.retryAfterSeconds);
      res.writeHead(failure.status, headers);
      res.end(JSON.stringify(failure.body ?? { ok: false, error: failure.status === 429 ? 'ratelimited' : 'internal_error' }));
      return;
    }
    const ts = `1700000000.${String(this.seq++).padStart(6, '0')}`;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: true, channel: (fields.channel as string) ?? 'C1', ts: (fields.ts as string) ?? ts, message: { ts } }));
  }
}
