// The test runner of scripts/test.sh: node:test's run() over the files in the order given (slowest first),
// `PGDR_TEST_JOBS` files at a time, with the spec reporter and its summary. (`node --test <files>` sorts the
// files by name, which starts the slowest ones last.) Flags given to this process (--require of
// scripts/file-clock.cjs) reach every test file's process.
const { run } = require('node:test');
const { spec } = require('node:test/reporters');

const files = process.argv.slice(2);
const concurrency = Number(process.env.PGDR_TEST_JOBS || 4);
const stream = run({ files, concurrency });
stream.on('test:fail', () => {
  process.exitCode = 1;
});
stream.compose(spec).pipe(process.stdout);
