// Preloaded by scripts/test.sh into every test file's process: the file's wall time, from its start to its
// exit, appended to $PGDR_TEST_TIMES (files run in parallel, so the runner's own event times cannot say).
const { appendFileSync } = require('node:fs');
const { basename } = require('node:path');

const out = process.env.PGDR_TEST_TIMES;
const file = process.argv[1] ?? '';
// The runner itself (started with --test) is not a test file.
if (out && file.endsWith('.test.js') && !process.execArgv.includes('--test')) {
  const started = Date.now();
  process.on('exit', (code) => {
    appendFileSync(out, `${((Date.now() - started) / 1000).toFixed(1)}\t${basename(file).replace(/\.js$/, '.ts')}\t${code}\n`);
  });
}
