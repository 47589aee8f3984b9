/**
 * The Temporal connection options of a pgdr config, in one place: the CLI's client (client/temporal.ts), the
 * worker's NativeConnection (worker/worker.ts) and the Slack endpoint all connect with these.
 *
 * `temporal.tls`: false (plain), true (TLS with the system's trusted CAs, e.g. Temporal Cloud with an API key),
 * or { caFile?, clientCertFile?, clientKeyFile?, serverName? } (a private CA and/or mTLS); the files are read
 * here, so a missing or unreadable file is reported before any connection is tried.
 */
import { Connection, type TLSConfig } from '@temporalio/client';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as tlsModule from 'node:tls';
import type { PgdrConfig } from './config';

export type TemporalSettings = Pick<PgdrConfig['temporal'], 'address' | 'tls' | 'apiKeyEnv'>;

export interface TemporalConnectionOptions {
  address: string;
  tls?: TLSConfig;
  apiKey?: string;
}

/** A file named by `temporal.tls` could not be read (names the field and the path). */
export class TemporalTlsFileError extends Error {
  constructor(
    readonly field: string,
    readonly path: string,
    reason: string,
  ) {
    super(`temporal.tls.${field}: cannot read ${path} (${reason})`);
    this.name = 'TemporalTlsFileError';
  }
}

function readTlsFile(field: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TemporalTlsFileError(field, path, e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.message);
  }
}

/** Address, TLS (files read) and the API key (from `apiKeyEnv`) for Connection.connect / NativeConnection.connect. */
export function temporalConnectionOptions(t: TemporalSettings): TemporalConnectionOptions {
  const apiKey = t.apiKeyEnv ? process.env[t.apiKeyEnv] || undefined : undefined;
  let tls: TLSConfig | undefined;
  if (t.tls === true) tls = {};
  else if (t.tls) {
    tls = {};
    if (t.tls.serverName) tls.serverNameOverride = t.tls.serverName;
    if (t.tls.caFile) tls.serverRootCACertificate = readTlsFile('caFile', t.tls.caFile);
    if (t.tls.clientCertFile && t.tls.clientKeyFile) {
      tls.clientCertPair = { crt: readTlsFile('clientCertFile', t.tls.clientCertFile), key: readTlsFile('clientKeyFile', t.tls.clientKeyFile) };
    }
  }
  return { address: t.address, ...(tls ? { tls } : {}), ...(apiKey ? { apiKey } : {}) };
}

/** Why pgdr could not use the Temporal server, as one line and a hint (`pgdr config check`, the CLI). */
export type TemporalProblemKind = 'dns' | 'refused' | 'timeout' | 'tls' | 'auth' | 'namespace' | 'other';

export class TemporalConnectionProblem extends Error {
  constructor(
    readonly kind: TemporalProblemKind,
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = 'TemporalConnectionProblem';
  }
}

/** host and port of `host:port`, `[v6]:port`. */
export function splitAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(address) ?? /^([^:]+):(\d+)$/.exec(address);
  if (!m) throw new TemporalConnectionProblem('other', `temporal.address "${address}" is not host:port`, 'e.g. temporal.example.com:7233 or 127.0.0.1:7233');
  return { host: m[1], port: Number(m[2]) };
}

const UNTRUSTED_CERT = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/**
 * Find out, step by step, whether this machine can talk to the Temporal frontend as configured: the name
 * resolves, the port accepts connections, the TLS handshake passes both ways (our CA trusts the server, the
 * server name matches, the server accepts our client certificate). Throws a TemporalConnectionProblem for the
 * first step that fails; resolves when the server speaks (gRPC's own errors only say "failed to connect").
 */
export async function probeTemporal(t: TemporalSettings, timeoutMs = 5000): Promise<void> {
  const { address } = t;
  const { host, port } = splitAddress(address);
  let ip = host;
  if (!net.isIP(host)) {
    try {
      ip = (await lookup(host)).address;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new TemporalConnectionProblem('dns', `DNS: cannot resolve host "${host}" of temporal.address ${address} (${code})`, `check the host name in temporal.address, and that this machine's resolver knows it (getent hosts ${host})`);
    }
  }
  const opts = temporalConnectionOptions(t);
  const tls = opts.tls;
  const serverName = tls?.serverNameOverride ?? (net.isIP(host) ? undefined : host);
  const caFile = typeof t.tls === 'object' ? t.tls.caFile : undefined;
  await new Promise<void>((resolve, reject) => {
    let settled = false;
    const socket = tls
      ? tlsModule.connect({
          host: ip,
          port,
          ...(serverName ? { servername: serverName } : {}),
          ...(tls.serverRootCACertificate ? { ca: Buffer.from(tls.serverRootCACertificate) } : {}),
          ...(tls.clientCertPair ? { cert: Buffer.from(tls.clientCertPair.crt), key: Buffer.from(tls.clientCertPair.key) } : {}),
          ALPNProtocols: ['h2'],
        })
      : net.connect({ host: ip, port });
    const finish = (problem?: TemporalConnectionProblem) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (problem) reject(problem);
      else resolve();
    };
    const where = `${address}${ip !== host ? ` (${ip})` : ''}`;
    const timer = setTimeout(
      () =>
        finish(
          socket.connecting
            ? new TemporalConnectionProblem('timeout', `no answer from ${where} within ${timeoutMs / 1000} s`, 'a firewall may drop the traffic, or the address is wrong')
            : undefined, // connected, handshake done, nothing refused: the gRPC calls tell the rest
        ),
      timeoutMs,
    );
    // A server that accepts us speaks first (HTTP/2 SETTINGS); one that refuses our certificate sends an alert.
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      if (!tls) finish();
    });
    socket.once('data', () => finish());
    socket.once('end', () =>
      finish(
        tls
          ? new TemporalConnectionProblem('auth', `TLS: ${where} closed the connection after the handshake`, 'the server may not accept this client certificate; check temporal.tls.clientCertFile / clientKeyFile')
          : undefined,
      ),
    );
    socket.once('error', (err: NodeJS.ErrnoException & { reason?: string; cert?: { subjectaltname?: string } }) => {
      const code = err.code ?? '';
      if (code === 'ECONNREFUSED') {
        return finish(new TemporalConnectionProblem('refused', `connection refused by ${where}`, 'is the Temporal frontend running, and listening on that address and port?'));
      }
      if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'ETIMEDOUT') {
        return finish(new TemporalConnectionProblem('timeout', `cannot reach ${where} (${code})`, 'check the address, routes and firewalls between this machine and the server'));
      }
      if (!tls) return finish(new TemporalConnectionProblem('other', `connecting to ${where} failed: ${err.message}`, 'check temporal.address'));
      if (UNTRUSTED_CERT.has(code)) {
        return finish(
          new TemporalConnectionProblem(
            'tls',
            `TLS: unknown CA — the server's certificate at ${where} is not signed by a CA we trust (${code})`,
            caFile ? `temporal.tls.caFile (${caFile}) must hold the CA that signed the server's certificate` : "set temporal.tls.caFile to the CA that signed the server's certificate",
          ),
        );
      }
      if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
        const names = err.cert?.subjectaltname || '(no names)';
        return finish(
          new TemporalConnectionProblem(
            'tls',
            `TLS: server name mismatch — the certificate at ${where} is for ${names}, not ${serverName ? `"${serverName}"` : `IP ${host}`}`,
            'set temporal.tls.serverName to a DNS name the certificate carries (or connect by that name)',
          ),
        );
      }
      if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
        return finish(new TemporalConnectionProblem('tls', `TLS: the server's certificate at ${where} is not valid now (${code})`, 'the server needs a current certificate; check its clock too'));
      }
      if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (/certificate required/i.test(err.message) && !tls.clientCertPair)) {
        return finish(new TemporalConnectionProblem('auth', `TLS: ${where} requires a client certificate (mTLS) and we sent none`, 'set temporal.tls.clientCertFile and clientKeyFile'));
      }
      if (/ALERT_(UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|ACCESS_DENIED|UNSUPPORTED_CERTIFICATE|CERTIFICATE_REVOKED|CERTIFICATE_EXPIRED|CERTIFICATE_REQUIRED)/.test(code)) {
        return finish(
          new TemporalConnectionProblem(
            'auth',
            `TLS: ${where} refused our client certificate (${(err.reason ?? code).replace(/^.*alert /, 'alert ')})`,
            "the client certificate (temporal.tls.clientCertFile) must be signed by a CA the server trusts for clients, and be valid for client authentication",
          ),
        );
      }
      if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ECONNRESET' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG') {
        return finish(new TemporalConnectionProblem('tls', `TLS handshake with ${where} failed: the server does not speak TLS there (${code})`, 'set temporal.tls: false if the server has no TLS, or check the port'));
      }
      return finish(new TemporalConnectionProblem('tls', `TLS handshake with ${where} failed: ${err.reason ?? err.message}`, 'check temporal.tls against the server\'s TLS settings'));
    });
  });
}

export interface TemporalCheckReport {
  address: string;
  /** 'mTLS' (client certificate), 'TLS', or 'plain'. */
  security: 'mTLS' | 'TLS' | 'plain';
  serverName?: string;
  serverVersion: string;
  namespace: string;
  namespaceState: string;
  retentionDays?: number;
}

/**
 * `pgdr config check` online: probe (DNS, TCP, TLS both ways), then the server's version (GetSystemInfo) and
 * the namespace (DescribeNamespace). Throws a TemporalConnectionProblem naming what failed.
 */
export async function checkTemporal(t: TemporalSettings & { namespace: string }): Promise<TemporalCheckReport> {
  await probeTemporal(t);
  const opts = temporalConnectionOptions(t);
  const connection = await Connection.connect({ ...opts, connectTimeout: '5s' }).catch((err: Error) => {
    throw new TemporalConnectionProblem('other', `gRPC connection to ${t.address} failed: ${err.message}`, t.tls ? 'the TLS handshake passed; check temporal.tls.serverName and the server logs' : 'if the server requires TLS, set temporal.tls');
  });
  const grpcProblem = (err: unknown, what: string): TemporalConnectionProblem => {
    const e = err as { code?: number; details?: string; message?: string };
    if (e.code === 5) return new TemporalConnectionProblem('namespace', `namespace "${t.namespace}" does not exist on ${t.address}`, `create it (temporal operator namespace create --namespace ${t.namespace}), or fix temporal.namespace`);
    if (e.code === 7 || e.code === 16) return new TemporalConnectionProblem('auth', `${t.address} refused ${what}: ${e.details ?? e.message}`, t.apiKeyEnv ? `check the API key in $${t.apiKeyEnv}` : 'check the client certificate (or API key) and the server\'s authorization settings');
    return new TemporalConnectionProblem('other', `${what} on ${t.address} failed: ${e.details ?? e.message}`, 'see the server logs');
  };
  try {
    const info = await connection.withDeadline(Date.now() + 5000, () => connection.workflowService.getSystemInfo({})).catch((err) => {
      throw grpcProblem(err, 'GetSystemInfo');
    });
    const ns = await connection.withDeadline(Date.now() + 5000, () => connection.workflowService.describeNamespace({ namespace: t.namespace })).catch((err) => {
      throw grpcProblem(err, 'DescribeNamespace');
    });
    const retention = ns.config?.workflowExecutionRetentionTtl?.seconds;
    const state = ns.namespaceInfo?.state ?? 0;
    return {
      address: t.address,
      security: opts.tls ? (opts.tls.clientCertPair ? 'mTLS' : 'TLS') : 'plain',
      ...(opts.tls?.serverNameOverride ? { serverName: opts.tls.serverNameOverride } : {}),
      serverVersion: info.serverVersion || 'unknown',
      namespace: t.namespace,
      namespaceState: ['unspecified', 'registered', 'deprecated', 'deleted'][state] ?? String(state),
      ...(retention !== undefined && retention !== null ? { retentionDays: Number(retention) / 86_400 } : {}),
    };
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/**
 * The error to show when connecting failed: the probe's diagnosis (DNS, refused, TLS, client certificate) when it
 * finds one, else the SDK's own error. For the worker, whose native connection only says "transport error".
 */
export async function explainConnectFailure(t: TemporalSettings, err: unknown): Promise<Error> {
  const problem = await probeTemporal(t).then(
    () => undefined,
    (p: unknown) => p,
  );
  if (problem instanceof TemporalConnectionProblem) {
    return new Error(`cannot connect to Temporal at ${t.address}: ${problem.message} (${problem.hint})`, { cause: err });
  }
  return err instanceof Error ? err : new Error(String(err));
}
