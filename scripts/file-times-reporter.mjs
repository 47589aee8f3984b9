// node:test reporter: the wall time of each test file, slowest first, printed once the run ends.
// Used by scripts/test.sh next to the spec reporter; a file's time runs from its first event to its last.
import { basename } from 'node:path';

export default async function* fileTimes(source) {
  const files = new Map();
  for await (const event of source) {
    const file = event.data?.file;
    if (!file) continue;
    const now = Date.now();
    const f = files.get(file) ?? { first: now, last: now, pass: 0, fail: 0 };
    f.last = now;
    if (event.data.nesting === 0 && event.type === 'test:pass') f.pass++;
    if (event.data.nesting === 0 && event.type === 'test:fail') f.fail++;
    files.set(file, f);
  }
  const rows = [...files.entries()].sort((a, b) => b[1].last - b[1].first - (a[1].last - a[1].first));
  const total = rows.reduce((s, [, f]) => s + (f.last - f.first), 0);
  yield '\nper-file times (wall clock, slowest first):\n';
  for (const [file, f] of rows) {
    yield `  ${((f.last - f.first) / 1000).toFixed(1).padStart(7)} s  ${basename(file).replace(/\.js$/, '.ts')}${f.fail ? `  (${f.fail} failed)` : ''}\n`;
  }
  yield `  ${(total / 1000).toFixed(1).padStart(7)} s  sum of files\n`;
}
